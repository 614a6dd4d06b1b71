"""Exact sparse dX (issue 21 item 1): the Triton backward pass writes dy compressed with S's
pattern (under the Triton interpreter here), the ``triton-sparse-dx`` backend computes dh on the
compressed dy, and ``elas_compile.backends`` selects it only where it is asked for."""
import pytest
import torch

import elas_compile
from elas_compile.backends import FUSED_ON_CPU_ENV, SPARSE_DX, fallback_warning, resolve_backend
from elas_compile.fused_ffn import lowrank_relu2_sparse24
from elas_compile.kernels.cslt_layout import (compress24_reference, decompress24_reference,
                                              relu2_sparsify24_backward_reference,
                                              relu2_sparsify24_compress_reference, values_numel)

pytest.importorskip("triton")


def _case(m, f, dtype, positive=False):
    g = torch.Generator().manual_seed(m + f)
    y = torch.randn(m, f, generator=g)
    y = y.abs() + 0.1 if positive else y
    y[:4, :8] = 0  # all-zero groups of S: kept positions with zero values
    return relu2_sparsify24_compress_reference(y.to(dtype)), torch.randn(m, f, generator=g).to(dtype)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_the_backward_pass_writes_dy_compressed_with_the_pattern_of_s(dtype):
    from elas_compile.kernels.triton import sparse24_backward as bwd
    from elas_compile.kernels.triton.ops import compress_at_pattern_reference

    m, f = 64, 128
    packed, ds = _case(m, f, dtype)
    dy, s, dy_packed = bwd.relu2_sparsify24_backward(ds, packed, None, "masked", m, f, write_s=True,
                                                     write_dy_packed=True)
    ref = relu2_sparsify24_backward_reference(ds, packed, None, "masked", m, f)
    assert torch.equal(dy.view(torch.int16), ref.view(torch.int16))
    assert torch.equal(s, decompress24_reference(packed, m, f))
    assert torch.equal(dy_packed.view(torch.int16), compress_at_pattern_reference(ref, packed, m, f).view(torch.int16))
    nv = values_numel(m, f)
    assert torch.equal(dy_packed.reshape(-1)[nv:].view(torch.int16), packed.reshape(-1)[nv:].view(torch.int16))
    assert torch.equal(decompress24_reference(dy_packed, m, f), ref)


def test_where_every_kept_dy_is_nonzero_it_is_the_reference_compress_of_dy():
    from elas_compile.kernels.triton import sparse24_backward as bwd

    m, f = 64, 64
    packed, ds = _case(m, f, torch.bfloat16, positive=True)
    ds[ds == 0] = 1.0
    dy, _, dy_packed = bwd.relu2_sparsify24_backward(ds, packed, None, "masked", m, f, write_s=True,
                                                     write_dy_packed=True)
    assert torch.equal(dy_packed.view(torch.int16), compress24_reference(dy).view(torch.int16))


def test_the_op_on_a_cpu_matches_the_triton_pass_and_ste_is_refused():
    from elas_compile.kernels.triton import sparse24_backward as bwd

    m, f = 64, 64
    packed, ds = _case(m, f, torch.bfloat16)
    op = torch.ops.elas.relu2_sparsify24_backward_expand_packed(ds, packed, m, f)
    tr = bwd.relu2_sparsify24_backward(ds, packed, None, "masked", m, f, write_s=True, write_dy_packed=True)
    for a, b in zip(op, tr):
        assert torch.equal(a.view(torch.int16), b.view(torch.int16))
    with pytest.raises(ValueError, match="masked mode only"):
        bwd.relu2_sparsify24_backward(ds, packed, ds, "ste", m, f, write_dy_packed=True)


@pytest.mark.parametrize("mode", ["masked", "masked-tokens24"])
def test_the_sparse_dx_backend_gives_the_triton_backends_gradients(mode):
    """On a CPU the fused op runs its kernels' references: dh from the decompressed compressed dy
    is dh from dy, bit for bit."""
    g = torch.Generator().manual_seed(0)
    h = torch.randn(100, 32, generator=g).bfloat16().requires_grad_()
    wu = (torch.randn(128, 32, generator=g) / 6).bfloat16().requires_grad_()
    wd = (torch.randn(16, 128, generator=g) / 11).bfloat16().requires_grad_()
    go = torch.randn(100, 16, generator=g).bfloat16()
    grads = {}
    for backend in ("triton", SPARSE_DX):
        out = lowrank_relu2_sparse24(h, wu, wd, mode, backend)
        grads[backend] = (out,) + torch.autograd.grad(out, (h, wu, wd), go)
    for a, b in zip(grads["triton"], grads[SPARSE_DX]):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="masked backward only"):
        lowrank_relu2_sparse24(h, wu, wd, "ste", SPARSE_DX)


def test_it_is_chosen_where_asked_for_in_masked_modes_only(monkeypatch):
    monkeypatch.setenv(FUSED_ON_CPU_ENV, "1")
    kw = dict(device="cpu", dtype=torch.bfloat16, width=256, rank_in=64, rank_out=64, tokens=4096)
    for mode in ("masked", "masked-tokens24"):
        assert resolve_backend(SPARSE_DX, mode=mode, **kw).backend == SPARSE_DX
    ste = resolve_backend(SPARSE_DX, mode="ste", **kw)
    assert ste.backend == "triton" and "masked modes only" in ste.reason
    assert "cannot run here" in fallback_warning(SPARSE_DX, ste)
    assert resolve_backend("auto", mode="masked", **kw).backend == "cutlass"  # chosen by name only
    assert elas_compile.ELASConfig(kernels=SPARSE_DX).kernels == SPARSE_DX
