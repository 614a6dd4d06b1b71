"""Properties of the 2:4 sparsify op (reference and torch.ops.elas.sparsify24)."""
import hypothesis.strategies as st
import pytest
import torch
from hypothesis import given, settings

import elas_compile  # noqa: F401
from elas_compile.kernels.reference import sparsify24, sparsify24_mask

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]


@st.composite
def tensors(draw):
    rows = draw(st.integers(1, 6))
    groups = draw(st.integers(1, 6))
    dtype = draw(st.sampled_from(DTYPES))
    # small integer values make ties, zeros and all-zero groups common
    kind = draw(st.sampled_from(["int", "float"]))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    if kind == "int":
        x = torch.randint(-3, 4, (rows, groups * 4), generator=g).to(dtype)
    else:
        x = torch.randn(rows, groups * 4, generator=g).to(dtype)
    return x


@settings(max_examples=60, deadline=None)
@given(tensors(), st.sampled_from(["masked", "ste"]))
def test_sparsify24_properties(x, mode):
    y = torch.ops.elas.sparsify24(x, mode)
    assert y.shape == x.shape and y.dtype == x.dtype
    mask = sparsify24_mask(x)
    groups_mask = mask.reshape(-1, 4)
    assert (groups_mask.sum(-1) == 2).all(), "exactly two positions kept per group"
    xg, yg = x.reshape(-1, 4), y.reshape(-1, 4)
    nonzero = (xg != 0).sum(-1)
    assert ((yg != 0).sum(-1) == nonzero.clamp(max=2)).all(), "2 nonzeros kept unless the group has fewer"
    # every kept magnitude >= every pruned magnitude of its group
    a = xg.abs().float()
    kept_min = torch.where(groups_mask, a, torch.full_like(a, float("inf"))).min(-1).values
    pruned_max = torch.where(~groups_mask, a, torch.full_like(a, -1.0)).max(-1).values
    assert (kept_min >= pruned_max).all()
    assert torch.equal(torch.where(mask, x, torch.zeros_like(x)), y), "kept values unchanged"
    assert torch.equal(torch.ops.elas.sparsify24(y, mode), y), "idempotent"


def test_tie_rule_lower_index_wins():
    x = torch.tensor([[2.0, -2.0, 2.0, 1.0, 0.0, 0.0, 0.0, 0.0, -0.0, 0.0, 3.0, 0.0]])
    assert sparsify24_mask(x).tolist() == [[True, True, False, False, True, True, False, False, True, False, True, False]]


@pytest.mark.parametrize("shape", [(8,), (2, 3, 16), (1, 1, 1, 4)])
def test_any_leading_shape(shape):
    x = torch.randn(shape)
    assert torch.equal(torch.ops.elas.sparsify24(x, "masked"), sparsify24(x))


def test_dense_mode_is_identity():
    x = torch.randn(3, 8)
    assert torch.equal(torch.ops.elas.sparsify24(x, "dense"), x)


def test_rejects_bad_last_dim():
    with pytest.raises(ValueError, match="multiple of 4"):
        torch.ops.elas.sparsify24(torch.randn(2, 6), "masked")
    with pytest.raises(ValueError, match="mode"):
        torch.ops.elas.sparsify24(torch.randn(2, 8), "sparse")
