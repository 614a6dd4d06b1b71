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


def test_cutlass_backend_matches_the_triton_backend():
    """The CUTLASS ops' CPU references (relu² of the float32 accumulator) against the Triton path's,
    on small integers (every y exact, so both keep the same positions)."""
    gen = torch.Generator().manual_seed(3)
    h, wu, wd, g = (torch.randint(-2, 3, shape, generator=gen).bfloat16() for shape in
                    ((200, 16), (128, 16), (32, 128), (200, 32)))
    for t in (h, wu, wd):
        t.requires_grad_()

    def run(backend):
        out = lowrank_relu2_sparse24(h, wu, wd, "masked", backend)
        return (out, *torch.autograd.grad(out, (h, wu, wd), g))

    for a, b in zip(run("cutlass"), run("triton")):
        assert _rel(a, b) < 1e-2 and a.shape == b.shape
    with pytest.raises(ValueError, match="masked backward only"):
        lowrank_relu2_sparse24(h, wu, wd, "ste", "cutlass")
    with pytest.raises(ValueError, match="backend must be one of"):
        lowrank_relu2_sparse24(h, wu, wd, "masked", "reference")


def test_masked_saves_no_dense_activation():
    h, wu, wd = _inputs(128)
    out, packed, saved_y = torch.ops.elas.lowrank_relu2_sparse24_linear(h, wu, wd, "masked", "triton")
    assert saved_y.numel() == 0 and packed.numel() == 128 * 128 * 9 // 16


def test_opcheck():
    h, wu, wd = _inputs(128)
    opcheck(torch.ops.elas.lowrank_relu2_sparse24_linear.default, (h, wu, wd, "masked", "triton"),
            test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))


def test_cslt_mm_reference():
    dense = torch.ops.elas.sparsify24(torch.randn(128, 128), "masked").to(torch.bfloat16)
    packed = torch.ops.elas.sparsify24_compress(dense)
    b = torch.randn(128, 16, dtype=torch.bfloat16)
    torch.testing.assert_close(torch.ops.elas.cslt_mm(packed, b, 128, 128), dense @ b)
