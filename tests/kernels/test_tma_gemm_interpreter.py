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

from sparse24_cases import DTYPES, bits, gemm_operands as _operands  # noqa: E402


@pytest.mark.parametrize("dtype,m,k,n", [(DTYPES[0], 128, 40, 128), (DTYPES[-1], 64, 64, 320)])
def test_up_tma_epilogue(dtype, m, k, n):  # k not a multiple of BLOCK_K; 4 and 5 tiles over 3 programs
    a, b = _operands(m, k, n, dtype, m + k)
    packed, y = T.up_relu2_compress_tma(a, b, write_y=True)
    ref_y = a.double() @ b.double().t()
    assert ((y.double() - ref_y).abs() <= 2 * 2.0**-8 * ref_y.abs() + 1e-3).all()  # one rounding
    assert torch.equal(bits(packed), bits(L.relu2_sparsify24_compress_reference(y)))
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
    ds = (g.float() @ w.float()).to(dtype)  # the kernel's product may round differently in a few places
    ref = L.relu2_sparsify24_backward_reference(ds, packed, y_arg, mode, m, n)
    assert (d == ref).float().mean() > 0.99
    torch.testing.assert_close(d.float(), ref.float(), rtol=2e-2, atol=1e-4)
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
