"""The repository's top-level folders must not shadow installed distributions of the same name."""
import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_kernels_folder_is_not_a_regular_package():
    # a regular package (with __init__.py) at the repository root would win over the `kernels`
    # distribution that transformers imports whenever the root is on sys.path
    assert not os.path.exists(os.path.join(ROOT, "kernels", "__init__.py"))


def test_import_kernels_from_the_repository_root_finds_the_distribution():
    if importlib.util.find_spec("kernels") is None:
        pytest.skip("no `kernels` distribution installed")
    code = "import kernels, sys; sys.stdout.write(kernels.__file__ or '')"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out and not out.startswith(os.path.join(ROOT, "kernels")), out


def test_elas_compile_kernels_imports_from_the_repository_root():
    code = "import elas_compile.kernels.reference as r, sys; sys.stdout.write(r.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.endswith(os.path.join("kernels", "reference.py")), out


def test_the_library_needs_torch_and_sympy_only():
    """`import elas_compile`, apply, a forward and explain with the train extra's packages blocked."""
    code = textwrap.dedent("""
        import sys
        for name in ("transformers", "tokenizers", "safetensors", "tqdm", "matplotlib", "numpy"):
            sys.modules[name] = None  # import name -> ImportError
        import torch, elas_compile

        class MLP(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.gate, self.up = torch.nn.Linear(64, 128, bias=False), torch.nn.Linear(64, 128, bias=False)
                self.down = torch.nn.Linear(128, 64, bias=False)

            def forward(self, x):
                return self.down(torch.nn.functional.silu(self.gate(x)) * self.up(x))

        model = elas_compile.apply(torch.nn.Sequential(MLP()), elas_compile.ELASConfig(rank=16))
        assert model(torch.randn(4, 64)).shape == (4, 64)
        print(elas_compile.explain(model).totals["params_after"])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "10240", out.stderr[-2000:]


def test_the_cli_names_the_train_extra_when_it_is_missing(monkeypatch, capsys):
    from elas_compile import cli

    monkeypatch.setattr(cli, "missing_train_extra", lambda: ["safetensors"])
    assert cli.main(["train", "--steps", "1"]) == 2
    assert 'pip install "elas-compile[train]"' in capsys.readouterr().err
