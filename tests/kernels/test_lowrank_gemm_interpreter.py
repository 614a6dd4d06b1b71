"""The GEMM kernels with the 2:4 epilogue (``triton_lowrank_gemm``) under the Triton interpreter on
CPU tensors: the epilogue must give exactly what the reference ops give on the rounded product."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")

from elas_compile.kernels import cslt_layout as L  # noqa: E402
from elas_compile.kernels import triton_lowrank_gemm as G  # noqa: E402

from sparse24_cases import DTYPES, assert_grad_epilogue, assert_up_epilogue, bits, gemm_operands as _operands  # noqa: E402


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,k,n", [(64, 48, 64), (128, 64, 128)])
def test_up_gemm_epilogue(dtype, m, k, n):
    a, b = _operands(m, k, n, dtype, m + k)
    packed, y = G.up_relu2_compress(a, b, write_y=True)
    assert_up_epilogue(packed, y, a, b)
    packed2, none = G.up_relu2_compress(a, b[:, :k].t().contiguous().t())  # strided b, no y
    assert none is None and torch.equal(bits(packed2), bits(packed))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["masked", "ste"])
def test_grad_gemm_epilogue(dtype, mode):
    m, k, n = 64, 32, 128
    a, b = _operands(m, k, n, dtype, 7)
    packed, y = G.up_relu2_compress(a, b, write_y=True)
    g, w = _operands(m, k, n, dtype, 8)
    w = w.t()  # k x n, strided
    y_arg = y if mode == "ste" else None
    d = G.grad_relu2_sparse24(g, w, packed, y_arg, mode)
    assert_grad_epilogue(d, g, w, packed, y_arg, mode)
    if mode == "masked":  # exactly zero off the 2:4 pattern (and where relu² kept a zero)
        assert (d[L.decompress24_reference(packed, m, n) == 0] == 0).all()


def test_gemm_shape_errors():
    a, b = _operands(64, 16, 64, torch.bfloat16, 0)
    with pytest.raises(ValueError):
        G.up_relu2_compress(a[:48], b)  # rows not a multiple of 64
    with pytest.raises(ValueError):
        G.up_relu2_compress(a, b[:, :8])
    with pytest.raises(ValueError):
        G.grad_relu2_sparse24(a, b.t(), torch.empty(0, dtype=a.dtype), None, "ste")
