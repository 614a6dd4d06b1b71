"""The cuSPARSELt plan cache (kernels/cusparselt): finding its toolchain, building once across
processes, and (on a GPU) products equal to torch._cslt_sparse_mm's."""
import threading
import time

import pytest
import torch

from elas_compile.kernels import native
from elas_compile.kernels.cusparselt import library as plan_cache


def _fake_wheels(root, header=True, cusparse=True):
    (root / "cusparselt" / "include").mkdir(parents=True)
    (root / "cusparselt" / "lib").mkdir(parents=True)
    (root / "cu13" / "include").mkdir(parents=True)
    if header:
        (root / "cusparselt" / "include" / "cusparseLt.h").write_text("#define CUSPARSELT_VER_MINOR 8\n")
    (root / "cusparselt" / "lib" / "libcusparseLt.so.0").write_bytes(b"")
    if cusparse:
        (root / "cu13" / "include" / "cusparse.h").write_text("")


def _use(monkeypatch, root):
    monkeypatch.setattr(plan_cache, "_nvidia_dirs", lambda sub: sorted(root.glob(f"*/{sub}")))
    monkeypatch.setattr(plan_cache, "_toolkit_include", lambda: [])


def test_toolchain_found_in_the_nvidia_wheels(tmp_path, monkeypatch):
    _fake_wheels(tmp_path)
    _use(monkeypatch, tmp_path)
    monkeypatch.setenv("CXX", "/usr/bin/true")
    tools, reason = plan_cache.find_toolchain()
    assert reason is None and tools["cusparselt"] == "8" and tools["cxx"] == "/usr/bin/true"
    assert tools["lib"].name == "libcusparseLt.so.0" and (tmp_path / "cu13" / "include") in tools["includes"]
    assert plan_cache.library_path(tools).name.startswith("libelas_cslt-")


@pytest.mark.parametrize("header,cusparse,why", [(False, True, "nvidia-cusparselt"), (True, False, "cusparse.h")])
def test_toolchain_says_what_is_missing(tmp_path, monkeypatch, header, cusparse, why):
    _fake_wheels(tmp_path, header=header, cusparse=cusparse)
    _use(monkeypatch, tmp_path)
    tools, reason = plan_cache.find_toolchain()
    assert tools is None and why in reason


def test_build_once_runs_the_compiler_once_across_concurrent_builders(tmp_path):
    target, calls = tmp_path / "lib.so", []

    def slow_compile(tmp):
        calls.append(tmp)
        time.sleep(0.3)  # the other builder arrives while this one holds the lock
        tmp.write_bytes(b"built")

    results = []
    threads = [threading.Thread(target=lambda: results.append(native.build_once(target, slow_compile)))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and sorted(results) == [False, True] and target.read_bytes() == b"built"
    assert not list(tmp_path.glob("*.tmp"))


def test_a_failed_build_leaves_no_library(tmp_path):
    def broken(tmp):
        tmp.write_bytes(b"half")
        raise RuntimeError("compiler error")

    with pytest.raises(RuntimeError, match="compiler error"):
        native.build_once(tmp_path / "lib.so", broken)
    assert not (tmp_path / "lib.so").exists() and not list(tmp_path.glob("*.tmp"))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_plan_cache_products_equal_torchs():
    from elas_compile import cusparselt

    assert plan_cache.unavailable_reason() is None, plan_cache.unavailable_reason()
    g = torch.Generator(device="cuda").manual_seed(0)
    y = torch.randn(512, 1024, device="cuda", generator=g).bfloat16()
    packed = torch.ops.elas.relu2_sparsify24_compress(y)
    w = torch.randn(384, 1024, device="cuda", generator=g).bfloat16()
    for b in (w.t(), w.t().contiguous()):
        for alg in cusparselt.valid_algorithms(packed, b)[:4]:
            got = cusparselt._call(packed, b, cusparselt.Plan(alg, False))
            want = torch._cslt_sparse_mm(packed, b, alg_id=alg)
            assert torch.equal(got, want), alg
