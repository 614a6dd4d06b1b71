"""The repository's top-level folders must not shadow installed distributions of the same name."""
import importlib.util
import os
import subprocess
import sys

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
