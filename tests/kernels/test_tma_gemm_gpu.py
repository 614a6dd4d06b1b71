"""The persistent TMA GEMMs with the 2:4 epilogue on a CUDA GPU (skipped without one): against
cuBLAS products and the reference ops, every swept configuration."""
from __future__ import annotations

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
pytest.importorskip("triton")

from elas_compile.kernels import cslt_layout as L  # noqa: E402
from elas_compile.kernels import triton_tma_gemm as T  # noqa: E402

from sparse24_cases import DTYPES, assert_up_gemm, bits, gemm_operands, grad_reference, rel_err  # noqa: E402


def _ops(m, k, n, dtype, seed):
    return gemm_operands(m, k, n, dtype, seed, "cuda")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,k,n", [(4096, 512, 2048), (192, 64, 320), (128, 40, 64)])
def test_up_tma(dtype, m, k, n):
    a, b = _ops(m, k, n, dtype, m)
    packed, y = T.up_relu2_compress_tma(a, b, write_y=True)
    assert_up_gemm(packed, y, a, b)
    assert (y == a @ b.t()).float().mean() > 0.95  # mostly the cuBLAS rounding


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["masked", "ste"])
def test_grad_tma(dtype, mode):
    m, k, n = 2048, 256, 1024
    a, b = _ops(m, k, n, dtype, 1)
    packed, y = T.up_relu2_compress_tma(a, b, write_y=True)
    g, w = _ops(m, k, n, dtype, 2)
    yy = y if mode == "ste" else None
    d, s = T.grad_relu2_tma(g, w.t(), packed, yy, mode, write_s=True)
    ref = grad_reference(g, w, packed, yy, mode)
    assert (d == ref).float().mean() > 0.95 and rel_err(d, ref) < 1e-2
    assert torch.equal(bits(s), bits(L.decompress24_reference(packed, m, n)))


def test_every_tma_config():
    m, k, n = 1024, 192, 2048
    a, b = _ops(m, k, n, torch.bfloat16, 3)
    g, w = _ops(m, k, n, torch.bfloat16, 4)
    for cfg in T.SWEEP_CONFIGS:
        packed, y = T.up_relu2_compress_tma(a, b, write_y=True, config=cfg)
        assert_up_gemm(packed, y, a, b, cfg)
        d, s = T.grad_relu2_tma(g, w.t(), packed, None, "masked", write_s=True, config=cfg)
        ref = grad_reference(g, w, packed, None, "masked")
        assert rel_err(d, ref) < 1e-2, cfg
        assert torch.equal(bits(s), bits(L.decompress24_reference(packed, m, n))), cfg
