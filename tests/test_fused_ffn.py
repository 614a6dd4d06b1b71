"""elas::lowrank_relu2_sparse24_linear (the fast FFN op) against the reference ops, on CPU."""
import pytest
import torch
from torch.library import opcheck

import elas_compile  # noqa: F401
from elas_compile.fused_ffn import lowrank_relu2_sparse24


def _inputs(m, r=16, f=128, r2=32, dtype=torch.bfloat16):
    g = torch.Generator().manual_seed(m)
    h = torch.randn(m, r, generator=g).to(dtype).requires_grad_()
    wu = (torch.randn(f, r, generator=g) * 0.3).to(dtype).requires_grad_()
    wd = (torch.randn(r2, f, generator=g) * 0.1).to(dtype).requires_grad_()
    return h, wu, wd


def _rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


@pytest.mark.parametrize("mode", ["masked", "ste"])
@pytest.mark.parametrize("m", [128, 200])  # 200: padded to 256 rows inside the op
def test_matches_reference_ops(mode, m):
    h, wu, wd = _inputs(m)
    out = lowrank_relu2_sparse24(h, wu, wd, mode)
    g = torch.randn_like(out)
    got = torch.autograd.grad(out, (h, wu, wd), g)
    # reference: the same bf16 y (so the same positions are kept), then float64 ops
    y = (h.detach() @ wu.detach().t()).double().requires_grad_()
    s = torch.ops.elas.relu2_sparsify24(y, mode)
    wd64 = wd.detach().double().requires_grad_()
    ref = s @ wd64.t()
    gy, gwd = torch.autograd.grad(ref, (y, wd64), g.double())
    assert _rel(out, ref) < 1e-2
    assert _rel(got[2], gwd) < 1e-2
    assert _rel(got[0], gy @ wu.detach().double()) < 2e-2
    assert _rel(got[1], gy.t() @ h.detach().double()) < 2e-2


@pytest.mark.parametrize("mode", ["masked", "ste"])
def test_fused_gemm_paths_agree(mode, monkeypatch):
    """Every ELAS_FUSED_GEMM / ELAS_DV_KERNEL choice gives the default path's output and grads."""
    h, wu, wd = _inputs(200)
    g = torch.randn(200, 32, generator=torch.Generator().manual_seed(1)).bfloat16()

    def run(fused, dv):
        monkeypatch.setenv("ELAS_FUSED_GEMM", fused)
        monkeypatch.setenv("ELAS_DV_KERNEL", dv)
        out = lowrank_relu2_sparse24(h, wu, wd, mode)
        return (out, *torch.autograd.grad(out, (h, wu, wd), g))

    want = run("0", "0")
    for fused, dv in (("up", "0"), ("grad", "0"), ("1", "0"), ("1", "1"), ("up,grad", "1")):
        for a, b in zip(run(fused, dv), want):
            assert _rel(a, b) < 1e-2, (fused, dv)


def test_masked_saves_no_dense_activation():
    h, wu, wd = _inputs(128)
    out, packed, saved_y = torch.ops.elas.lowrank_relu2_sparse24_linear(h, wu, wd, "masked")
    assert saved_y.numel() == 0 and packed.numel() == 128 * 128 * 9 // 16


def test_opcheck():
    h, wu, wd = _inputs(128)
    opcheck(torch.ops.elas.lowrank_relu2_sparse24_linear.default, (h, wu, wd, "masked"),
            test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))


def test_cslt_mm_reference():
    dense = torch.ops.elas.sparsify24(torch.randn(128, 128), "masked").to(torch.bfloat16)
    packed = torch.ops.elas.sparsify24_compress(dense)
    b = torch.randn(128, 16, dtype=torch.bfloat16)
    torch.testing.assert_close(torch.ops.elas.cslt_mm(packed, b, 128, 128), dense @ b)
