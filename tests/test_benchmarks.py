"""``python -m benchmarks`` on a CPU: the suite table, the ffn and step smoke runs and what they
write, the kernels suite's refusal, fresh compile caches per variant, the ratio arithmetic, and the
tools/ scripts importing from their paths."""
import importlib
import os
import subprocess

import pytest
import torch

from bench_helpers import ROOT, suite_outputs  # (puts the repository root on sys.path)

from benchmarks import compile_cache, environment  # noqa: E402
from benchmarks.__main__ import main  # noqa: E402
from benchmarks.environment import gpu_slug  # noqa: E402
from benchmarks.suites import SUITES, ffn, step  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def test_entry_point_lists_every_suite(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert set(SUITES) == {"kernels", "ffn", "step", "memory", "prefill", "wgrad24", "quality"}
    assert all(f"  {name} " in out for name in SUITES)
    assert sorted(p.stem for p in (ROOT / "benchmarks" / "suites").glob("[!_]*.py")) == sorted(SUITES)


def test_kernels_refuses_on_cpu_with_one_line(tmp_path, capsys):
    assert main(["kernels", "--device", "cpu", "--root", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("kernels: needs a CUDA GPU")
    assert not any(tmp_path.iterdir())


def test_ffn_on_cpu_writes_every_variant_labelled_and_a_fresh_cache_each(tmp_path, capsys, monkeypatch):
    seen = {}  # variant -> the Inductor cache directory its measurement ran under
    real = ffn.time_mode

    def spy(module, mode, x, gy, repeats):
        directory = os.environ["TORCHINDUCTOR_CACHE_DIR"]
        from torch._inductor.runtime.cache_dir_utils import cache_dir

        assert cache_dir() == directory and os.path.isdir(directory)
        seen[type(module).__name__ + str(len(seen))] = directory
        return real(module, mode, x, gy, repeats)

    monkeypatch.setattr(ffn, "time_mode", spy)
    before = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    args = ["ffn", "--device", "cpu", "--modes", "eager", "--repeats", "1", "--tokens", "128", "--root", str(tmp_path)]
    assert main(args) == 0
    folder, rows, meta, report = suite_outputs(tmp_path, "ffn")
    assert list(rows[0]) == ffn.COLUMNS
    by_variant = {r["variant"]: r for r in rows}
    assert list(by_variant) == list(ffn.ffn_models.VARIANT_NAMES)
    runs_on_cpu = ["full", "lowrank", "elas-masked-reference", "elas-ste-reference", "elas-masked-tokens24-reference"]
    for name, row in by_variant.items():
        assert row["note"] == "CPU: not meaningful"
        assert row["fwd_vs_lowrank"] == row["fwd_bwd_vs_lowrank"] == row["saved_vs_lowrank"] == ""
        if name in runs_on_cpu:
            assert row["status"] == "ok" and float(row["fwd_ms"]) > 0 and float(row["fwd_bwd_ms"]) > 0
            assert float(row["saved_MiB"]) > 0
        else:
            assert row["status"].startswith("skipped: ") and row["fwd_ms"] == ""
    assert by_variant["elas-masked-reference"]["backend"] == "reference (eager)"
    # a fresh, different cache directory per variant, gone afterwards, the environment restored
    assert len(seen) == len(runs_on_cpu) and len(set(seen.values())) == len(runs_on_cpu)
    assert not any(os.path.exists(d) for d in seen.values())
    assert os.environ.get("TORCHINDUCTOR_CACHE_DIR") == before
    assert {b["cache_dir"] for b in meta["backends"].values()} <= set(seen.values())
    assert meta["backends"]["elas-ste-reference d=128"]["resolved"] == "reference"
    assert meta["command"] == "python -m benchmarks " + " ".join(args)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    if commit.returncode == 0:
        assert meta["commit"] == commit.stdout.strip() and isinstance(meta["dirty"], bool)
    assert meta["device"] == "cpu" and meta["torch"] == torch.__version__
    assert (folder / "plot.png").read_bytes()[:4] == b"\x89PNG"
    assert "CPU: not meaningful" in report and meta["command"] in report and "## Ratios" not in report
    assert f"../results/{folder.name}/results.csv" in report
    assert "CPU: not meaningful" in capsys.readouterr().out


def test_ffn_compiled_on_cpu_records_the_kernels_elas_compiled(tmp_path):
    assert main(["ffn", "--device", "cpu", "--variants", "elas-masked-reference", "--repeats", "1",
                 "--tokens", "64", "--root", str(tmp_path)]) == 0
    _, rows, meta, _ = suite_outputs(tmp_path, "ffn")
    (row,) = [r for r in rows if r["status"] == "ok"]
    assert row["mode"] == "default" and float(row["fwd_bwd_ms"]) > 0
    (info,) = meta["backends"].values()
    assert info["requested"] == info["resolved"] == "reference"
    assert info["elas_rewrites_compiled"].get("relu2_sparsify24_fused_pre_grad", 0) >= 1  # the pass ran: no cache hit


def test_ffn_refuses_cuda_modes_and_unknown_variants_on_cpu(tmp_path, capsys):
    assert main(["ffn", "--device", "cpu", "--modes", "graph", "--root", str(tmp_path)]) == 2
    assert "need a CUDA GPU" in capsys.readouterr().err
    assert main(["ffn", "--device", "cpu", "--variants", "turbo", "--root", str(tmp_path)]) == 2
    assert "unknown variant(s) turbo" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_step_on_cpu_runs_each_variant_in_its_own_cache(tmp_path, monkeypatch):
    from elas_compile.train import bench

    seen = []

    def fake_bench_one(preset, variant, rt, batch, seq, vocab, steps, warmup, seed, loss_in_graph=True, **kwargs):
        seen.append(os.environ["TORCHINDUCTOR_CACHE_DIR"])
        return {"params_m": 1.0, "step_ms": 2.0, "tokens_per_s": 1000.0 * len(seen), "peak_mem_gb": None}

    monkeypatch.setattr(bench, "bench_one", fake_bench_one)
    assert main(["step", "--device", "cpu", "--preset", "llama-tiny", "--memory", "--root", str(tmp_path)]) == 0
    _, rows, meta, report = suite_outputs(tmp_path, "step")
    assert [r["variant"] for r in rows] == step.VARIANTS and {r["mode"] for r in rows} == {"eager"}
    assert all(r["note"] == "CPU: not meaningful" and r["vs_full"] == "" and r["status"] == "ok" for r in rows)
    assert len(set(seen)) == len(step.VARIANTS) and not any(os.path.exists(d) for d in seen)
    assert meta["options"]["presets"] == ["llama-tiny"] and "## Ratios" not in report


def test_step_refuses_paper_presets_on_cpu(tmp_path, capsys):
    assert main(["step", "--device", "cpu", "--root", str(tmp_path)]) == 2
    assert "pass --preset llama-tiny" in capsys.readouterr().err


def test_ffn_ratios_are_against_dense_low_rank_at_the_same_shape_and_mode():
    def row(variant, mode, fwd, fwd_bwd, saved=None):
        return {"d": 8, "F": 128, "r": 16, "variant": variant, "mode": mode, "status": "ok", "fwd_ms": fwd,
                "fwd_bwd_ms": fwd_bwd, "saved_MiB": saved}

    rows = [row("lowrank", "graph", 2.0, 4.0), row("elas-masked-triton", "graph", 1.0, 5.0),
            row("lowrank", "default", 3.0, 6.0, 100.0), row("elas-masked-triton", "default", 3.0, 3.0, 25.0),
            {"d": 8, "F": 128, "r": 16, "variant": "elas-ste-cutlass", "mode": "-", "status": "skipped: x"}]
    ffn.add_ratios(rows)
    assert (rows[1]["fwd_vs_lowrank"], rows[1]["fwd_bwd_vs_lowrank"]) == (2.0, 0.8)
    assert (rows[3]["fwd_bwd_vs_lowrank"], rows[3]["saved_vs_lowrank"]) == (2.0, 0.25)
    assert "saved_vs_lowrank" not in rows[1] and "fwd_vs_lowrank" not in rows[4]
    assert ffn.summary(rows)[0].startswith("d=8 F=128 r=16, graph: fwd+bwd elas-masked-triton 0.80x (fwd 2.00x)")


def test_step_ratios_compare_with_full_and_the_matching_low_rank():
    rows = [{"preset": "p", "mode": "m", "variant": v, "tokens_per_s": t} for v, t in
            [("full", 100.0), ("lowrank-attn", 150.0), ("lowrank", 120.0), ("elas-masked-attn", 165.0),
             ("elas-masked", 132.0)]]
    step.add_ratios(rows)
    got = {r["variant"]: (round(r["vs_full"], 3), round(r["vs_lowrank"], 3)) for r in rows if "vs_lowrank" in r}
    assert rows[0]["vs_full"] == 1.0 and "vs_lowrank" not in rows[0]  # full rank has no low-rank twin
    assert got == {"lowrank-attn": (1.5, 1.0), "lowrank": (1.2, 1.0), "elas-masked-attn": (1.65, 1.1),
                   "elas-masked": (1.32, 1.1)}
    assert step.lowrank_of("elas-masked-cola-attn") == "lowrank-cola-attn"


def test_fresh_compile_cache_moves_inductors_cache_and_forgets_the_old_path(tmp_path, monkeypatch):
    from torch._inductor.codecache import CacheBase

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "outer"))
    compile_cache.clear_inductor_memory_caches()
    outer = CacheBase.get_local_cache_path()  # memoised: stale unless the in-memory caches are cleared
    with compile_cache.fresh_compile_cache("a b/c") as first:
        assert CacheBase.get_local_cache_path().is_relative_to(first)
        assert os.environ["TRITON_CACHE_DIR"] == os.path.join(first, "triton")
    with compile_cache.fresh_compile_cache("a b/c") as second:
        assert second != first and CacheBase.get_local_cache_path().is_relative_to(second)
    assert not os.path.exists(first) and not os.path.exists(second)
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "outer") and "TRITON_CACHE_DIR" not in os.environ
    assert CacheBase.get_local_cache_path() == outer


def test_commit_comes_from_git_else_from_the_option(monkeypatch):
    here = environment.git_state("ignored")
    if here["commit_from"] == "git":  # a checkout: the option cannot override git
        assert len(here["commit"]) == 40 and here["commit"] != "ignored"
    monkeypatch.setattr(environment, "_git", lambda *args: None)  # a copied tree without .git
    assert environment.git_state("abc123-dirty") == {"commit": "abc123", "dirty": True, "commit_from": "--commit"}
    assert environment.git_state("abc123")["dirty"] is False
    assert environment.git_state(None) == {"commit": None, "dirty": None, "commit_from": None}


@pytest.mark.parametrize("name, slug", [("NVIDIA H100 80GB HBM3", "h100"), ("NVIDIA H200", "h200"),
                                        ("NVIDIA A100-SXM4-80GB", "a100"), ("Some GPU", "some-gpu"), (None, "cpu")])
def test_gpu_slug(name, slug):
    assert gpu_slug(name) == slug


TOOLS = sorted(p for p in (ROOT / "tools").iterdir() if p.suffix in (".py", ".cu") and p.name != "__init__.py")


@pytest.mark.parametrize("path", TOOLS, ids=[p.name for p in TOOLS])
def test_tools_import_from_their_paths_and_are_listed(path):
    """Each tool imports without a GPU (they touch CUDA only in main) and tools/README.md lists it."""
    assert f"`{path.name}`" in (ROOT / "tools" / "README.md").read_text()
    if path.suffix == ".py":
        module = importlib.import_module(f"tools.{path.stem}")
        assert callable(module.main)
