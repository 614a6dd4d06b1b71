"""The cuSPARSELt plan choice of ``elas::cslt_mm`` (fastest id whose product agrees), on CPU with
stand-in timings; the GPU path is exercised by tests/test_fused_ffn_gpu.py."""
import warnings

import pytest
import torch

from elas_compile import cusparselt as C


def test_fastest_agreeing_plan_wins():
    times = {C.Plan(0, False): 0.20, C.Plan(1, False): 0.12, C.Plan(6, True): 0.10}
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        got = C.pick_fastest(times, times.get, lambda p: p.alg != 6)  # the fastest is wrong
    assert got == C.Plan(1, False)
    assert any("algorithm 6" in str(x.message) and "skipped" in str(x.message) for x in w)
    assert C.pick_fastest(times, times.get, lambda p: True) == C.Plan(6, True)


def test_no_agreeing_plan_raises():
    with pytest.raises(RuntimeError, match="no cuSPARSELt algorithm"):
        C.pick_fastest([C.Plan(0, False)], lambda p: 1.0, lambda p: False)


def test_forced_algorithm(monkeypatch):
    monkeypatch.setenv("ELAS_CSLT_ALG", "3")
    packed, b = torch.empty(64, 36, dtype=torch.bfloat16), torch.empty(64, 16, dtype=torch.bfloat16)
    assert C.plan_for(packed, b, 64, 64) == C.Plan(3, False)
    assert C.algorithm_for(packed, b, 64, 64) == 3
