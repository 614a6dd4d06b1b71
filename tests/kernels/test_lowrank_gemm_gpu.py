"""The GEMM kernels with the 2:4 epilogue on a CUDA GPU (skipped without one): against cuBLAS
products and the reference ops, every swept configuration, through cuSPARSELt, and as ops."""
from __future__ import annotations

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
pytest.importorskip("triton")

from elas_compile.cusparselt import valid_algorithms  # noqa: E402
from elas_compile.kernels import cslt_layout as L  # noqa: E402
from elas_compile.kernels import triton_lowrank_gemm as G  # noqa: E402
from elas_compile.kernels import triton_ops  # noqa: E402,F401

from sparse24_cases import DTYPES, assert_up_gemm, gemm_operands, grad_reference, rel_err  # noqa: E402


def _ops(m, k, n, dtype, seed):
    return gemm_operands(m, k, n, dtype, seed, "cuda")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,k,n", [(4096, 512, 2048), (192, 64, 320), (128, 40, 64)])
def test_up_gemm(dtype, m, k, n):
    a, b = _ops(m, k, n, dtype, m)
    packed, y = G.up_relu2_compress(a, b, write_y=True)
    assert_up_gemm(packed, y, a, b)
    assert (y == a @ b.t()).float().mean() > 0.95  # mostly the cuBLAS rounding
    w = torch.randn(n, 256, device="cuda", dtype=dtype)
    ref = L.decompress24_reference(packed, m, n).double() @ w.double()
    for alg in valid_algorithms(packed, w):
        assert rel_err(torch._cslt_sparse_mm(packed, w, alg_id=alg), ref) < 1e-2, alg


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["masked", "ste"])
def test_grad_gemm(dtype, mode):
    m, k, n = 2048, 256, 1024
    a, b = _ops(m, k, n, dtype, 1)
    packed, y = G.up_relu2_compress(a, b, write_y=True)
    g, w = _ops(m, k, n, dtype, 2)
    yy = y if mode == "ste" else None
    d = G.grad_relu2_sparse24(g, w.t(), packed, yy, mode)
    ref = grad_reference(g, w, packed, yy, mode)
    assert (d == ref).float().mean() > 0.95 and rel_err(d, ref) < 1e-2


def test_every_gemm_config():
    m, k, n = 512, 192, 1024
    a, b = _ops(m, k, n, torch.bfloat16, 3)
    g, w = _ops(m, k, n, torch.bfloat16, 4)
    for cfg in G.SWEEP_CONFIGS:
        packed, y = G.up_relu2_compress(a, b, write_y=True, config=cfg)
        assert_up_gemm(packed, y, a, b, cfg)
        d = G.grad_relu2_sparse24(g, w.t(), packed, None, "masked", config=cfg)
        ref = grad_reference(g, w, packed, None, "masked")
        assert rel_err(d, ref) < 1e-2, cfg


def test_gemm_ops_opcheck():
    a, b = _ops(256, 64, 512, torch.bfloat16, 5)
    packed, y = torch.ops.elas.up_relu2_sparsify24_compress(a, b, True)
    g, w = _ops(256, 64, 512, torch.bfloat16, 6)
    checks = ("test_schema", "test_faketensor", "test_aot_dispatch_static")
    torch.library.opcheck(torch.ops.elas.up_relu2_sparsify24_compress, (a, b, False), test_utils=checks)
    torch.library.opcheck(torch.ops.elas.grad_relu2_sparse24, (g, w.t(), packed, None, "masked"), test_utils=checks)
    torch.library.opcheck(torch.ops.elas.grad_relu2_sparse24, (g, w.t(), packed, y, "ste"), test_utils=checks)
    torch.library.opcheck(torch.ops.elas.tn_sparse24_mm, (g, packed, 256, 512), test_utils=checks)
