"""The persistent TMA GEMMs with the 2:4 epilogue (``triton_tma_gemm``) under the Triton interpreter
on CPU tensors: the epilogues must give exactly what the reference ops give on the rounded product,
with several output tiles per program (the persistent loop)."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")
pytest.importorskip("triton.tools.tensor_descriptor")

from elas_compile.kernels import cslt_layout as L  # noqa: E402
from elas_compile.kernels import triton_tma_gemm as T  # noqa: E402

from sparse24_cases import DTYPES, assert_grad_epilogue, assert_up_epilogue, bits, gemm_operands as _operands  # noqa: E402


@pytest.mark.parametrize("dtype,m,k,n", [(DTYPES[0], 128, 40, 128), (DTYPES[-1], 64, 64, 320)])
def test_up_tma_epilogue(dtype, m, k, n):  # k not a multiple of BLOCK_K; 4 and 5 tiles over 3 programs
    a, b = _operands(m, k, n, dtype, m + k)
    packed, y = T.up_relu2_compress_tma(a, b, write_y=True)
    assert_up_epilogue(packed, y, a, b)
    packed2, none = T.up_relu2_compress_tma(a, b)
    assert none is None and torch.equal(bits(packed2), bits(packed))
    none, y2 = T.up_relu2_compress_tma(a, b, write_y=True, compress=False)  # the plain GEMM
    assert none is None and torch.equal(bits(y2), bits(y))


@pytest.mark.parametrize("dtype,mode", [(DTYPES[0], "masked"), (DTYPES[-1], "ste")])
def test_grad_tma_epilogue(dtype, mode):
    m, k, n = 128, 32, 192
    a, b = _operands(m, k, n, dtype, 7)
    packed, y = T.up_relu2_compress_tma(a, b, write_y=True)
    g, w = _operands(m, k, n, dtype, 8)
    w = w.t()  # k x n, strided: the launcher makes it contiguous for TMA
    y_arg = y if mode == "ste" else None
    d, s = T.grad_relu2_tma(g, w, packed, y_arg, mode, write_s=True)
    assert_grad_epilogue(d, g, w, packed, y_arg, mode)
    assert torch.equal(bits(s), bits(L.decompress24_reference(packed, m, n)))
    d2, none = T.grad_relu2_tma(g, w, packed, y_arg, mode)
    assert none is None and torch.equal(bits(d2), bits(d))


def test_tma_shape_errors():
    a, b = _operands(64, 16, 64, torch.bfloat16, 0)
    with pytest.raises(ValueError, match="rows % 64"):
        T.up_relu2_compress_tma(a[:48], b)  # rows not a multiple of 64
    with pytest.raises(ValueError, match="multiple of 8"):
        T.up_relu2_compress_tma(a[:, :12], b[:, :12])
    with pytest.raises(ValueError, match="nothing to write"):
        T.up_relu2_compress_tma(a, b, compress=False)
    with pytest.raises(ValueError, match="packed"):
        T.grad_relu2_tma(a, b.t(), torch.empty(0, dtype=a.dtype), None, "masked")
