"""The one selection point: ``resolve_backend`` and the warnings of its fallbacks."""
import pytest
import torch

from elas_compile import ELASConfig
from elas_compile.backends import FUSED_ON_CPU_ENV, fallback_warning, resolve_backend

BF16 = torch.bfloat16


def resolve(kernels, device="cpu", dtype=BF16, width=256, rank=32, mode="masked"):
    return resolve_backend(kernels, device=device, dtype=dtype, width=width, rank_in=rank, rank_out=rank, mode=mode)


def test_cpu_gets_the_reference_and_says_why(monkeypatch):
    monkeypatch.delenv(FUSED_ON_CPU_ENV, raising=False)
    res = resolve("auto")
    assert res.backend == "reference" and "cutlass and triton: device cpu" in res.reason
    assert fallback_warning("auto", res) is None  # the only path on a CPU: nothing to warn about
    res = resolve("cutlass")
    assert res.backend == "reference"
    assert "cannot run here" in fallback_warning("cutlass", res) and "'reference'" in fallback_warning("cutlass", res)


def test_reference_when_asked_and_shapes_dtypes_block_the_fused_backends(monkeypatch):
    monkeypatch.setenv(FUSED_ON_CPU_ENV, "1")
    assert resolve("reference") == ("reference", "asked for (ELASConfig(kernels='reference'))")
    assert resolve("auto").backend == "cutlass" and resolve("triton").backend == "triton"
    res = resolve("auto", dtype=torch.float32)
    assert res.backend == "reference" and "dtype torch.float32" in res.reason
    res = resolve("auto", width=200)
    assert res.backend == "reference" and "FFN width 200 must be a multiple of 64" in res.reason
    res = resolve("auto", rank=24)
    assert res.backend == "reference" and "multiples of 16" in res.reason


def test_cutlass_needs_bf16_and_the_masked_backward(monkeypatch):
    monkeypatch.setenv(FUSED_ON_CPU_ENV, "1")
    res = resolve("auto", mode="ste")
    assert res.backend == "triton" and "masked backward only" in res.reason
    res = resolve("auto", dtype=torch.float16)
    assert res.backend == "triton" and "cutlass: dtype torch.float16" in res.reason
    assert "using 'triton'" in fallback_warning("cutlass", resolve("cutlass", mode="ste"))


def test_bad_requests_are_refused():
    with pytest.raises(ValueError, match="kernels='fast'"):
        resolve("fast")
    with pytest.raises(ValueError, match="mode must be one of"):
        resolve("auto", mode="dense")
    with pytest.raises(ValueError, match="ELASConfig.kernels='fast' is invalid"):
        ELASConfig(kernels="fast")


def test_few_tokens_take_the_reference_path_unless_a_backend_is_named(monkeypatch):
    from elas_compile.backends import SPARSE_MIN_TOKENS

    monkeypatch.setenv(FUSED_ON_CPU_ENV, "1")
    res = resolve_backend("auto", device="cpu", dtype=BF16, width=256, rank_in=32, rank_out=32, mode="masked",
                          tokens=SPARSE_MIN_TOKENS - 64)
    assert res.backend == "reference" and "SPARSE_MIN_TOKENS" in res.reason
    assert fallback_warning("auto", res) is None  # a choice, not a fallback
    many = dict(device="cpu", dtype=BF16, width=256, rank_in=32, rank_out=32, mode="masked", tokens=SPARSE_MIN_TOKENS)
    assert resolve_backend("auto", **many).backend == "cutlass"
    assert resolve_backend("triton", **dict(many, tokens=64)).backend == "triton"
