"""Autograd of the torch.ops.elas ops in both backward modes, and torch.library.opcheck."""
import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings
from torch.library import opcheck

import elas_compile  # noqa: F401
from elas_compile.kernels.reference import relu2, sparsify24_mask


def _x(rows=5, cols=16, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, cols, generator=g, dtype=dtype).requires_grad_()


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 5), st.integers(1, 5), st.integers(0, 1000))
def test_sparsify24_masked_grad_equals_masked_reference(rows, groups, seed):
    x = _x(rows, groups * 4, seed=seed)
    g = torch.randn(rows, groups * 4, dtype=torch.float64)
    (gx,) = torch.autograd.grad(torch.ops.elas.sparsify24(x, "masked"), x, g)
    mask = sparsify24_mask(x.detach())
    (ref,) = torch.autograd.grad(x * mask, x, g)
    torch.testing.assert_close(gx, ref)


def test_sparsify24_ste_passes_gradient_everywhere():
    x = _x()
    g = torch.randn_like(x)
    (gx,) = torch.autograd.grad(torch.ops.elas.sparsify24(x, "ste"), x, g)
    torch.testing.assert_close(gx, g)


@pytest.mark.parametrize("mode", ["masked", "ste", "dense"])
def test_relu2_sparsify24_grad(mode):
    y = _x(6, 32)
    g = torch.randn(6, 32, dtype=torch.float64)
    (gy,) = torch.autograd.grad(torch.ops.elas.relu2_sparsify24(y, mode), y, g)
    yd = y.detach().clone().requires_grad_()
    r = relu2(yd)
    if mode == "masked":  # exact gradient of the masked function
        r = r * sparsify24_mask(r.detach())
    (ref,) = torch.autograd.grad(r, yd, g)
    torch.testing.assert_close(gy, ref)


def test_relu2_sparsify24_matches_unfused_ops():
    y = _x(4, 16).detach()
    fused = torch.ops.elas.relu2_sparsify24(y, "masked")
    unfused = torch.ops.elas.sparsify24(torch.relu(y) ** 2, "masked")
    torch.testing.assert_close(fused, unfused)


def test_sparse24_linear_grads():
    x = torch.ops.elas.sparsify24(_x(2 * 3, 16).detach(), "masked").reshape(2, 3, 16).requires_grad_()
    w = torch.randn(8, 16, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda a, b: torch.ops.elas.sparse24_linear(a, b, "masked"), (x, w))


@pytest.mark.parametrize("mode", ["masked", "ste", "dense"])
def test_opcheck(mode):
    x = torch.randn(4, 16, requires_grad=True)
    w = torch.randn(8, 16, requires_grad=True)
    opcheck(torch.ops.elas.sparsify24.default, (x, mode))
    opcheck(torch.ops.elas.relu2_sparsify24.default, (x, mode))
    opcheck(torch.ops.elas.sparse24_linear.default, (x, w, mode))
