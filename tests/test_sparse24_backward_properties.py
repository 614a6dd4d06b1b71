"""Issue 21 item 4: properties of the 2:4 backward, drawn by hypothesis, against the float64
reference of ``tests/sparse24_float64.py`` (its own top-2-of-4 selection, not kernels/reference.py).
CPU tensors: the Triton kernels run under the Triton interpreter (the launchers hand CPU tensors
to interpreted copies of the kernel modules, kernels/triton/compat.py), the fused op runs its
kernels' CPU references. The same properties on a GPU: test_sparse24_backward_properties_gpu.py."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from elas_compile.backends import SPARSE_DX
from elas_compile.kernels import reference

from sparse24_float64 import (DTYPES, FRACTIONS, Y_KINDS, assert_weight_grad, check_paths_rounded_once,
                              check_sparse_dx_pass, check_tokens24_compress, integer_ffn, operand, operands, pad_rows,
                              sparse_dx_case)

pytest.importorskip("triton")

TOKENS = st.integers(1, 128)  # padded to 64 or 128 with zero tokens, as the fused op pads
FEATURES = st.sampled_from([64, 128])
SEEDS = st.integers(0, 2**31 - 1)


@settings(max_examples=20, deadline=None)
@given(m=TOKENS, f=FEATURES, case=operands)
def test_tokens24_compress_writes_the_float64_top_two_of_every_four_tokens(m, f, case):
    from elas_compile.kernels.triton import tokens24

    a = operand(m, f, **case)
    packed, dropped = tokens24.tokens24_compress(pad_rows(a, 64))
    check_tokens24_compress(a, packed, dropped)
    if case["pattern"] == "exact":  # nothing to drop: aᵀ itself
        assert not dropped.any()


@settings(max_examples=30, deadline=None)
@given(m=TOKENS, f=FEATURES, r=st.sampled_from([16, 32]), case=operands, fraction=FRACTIONS)
def test_weight_gradients_are_the_float64_split_product(m, f, r, case, fraction):
    """The reference and the fused backends' composition (tokens padded to 64 as the fused op
    pads them), within one rounding of the float64 product over the same selection."""
    from elas_compile import tokens24

    a = operand(m, f, **case)
    b = torch.randn(m, r, generator=torch.Generator().manual_seed(case["seed"] + 1)).to(a.dtype)
    assert_weight_grad(reference.tokens24_weight_grad(a, b, fraction), a, b, fraction, "reference")
    got = tokens24.weight_grad(pad_rows(a, 64), pad_rows(b, 64), fraction)
    assert got.dtype == b.dtype
    assert_weight_grad(got, a, b, fraction, "fused")


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 130), f=FEATURES, dtype=st.sampled_from(DTYPES), seed=SEEDS, fraction=FRACTIONS,
       exact_groups=st.booleans())
def test_masked_tokens24_gradients_are_the_float64_ones_rounded_once(m, f, dtype, seed, fraction, exact_groups):
    """Small-integer operands (every intermediate exact, every sum exact in float32): the
    reference path and the fused op on each backend give the float64 forward, dh and split weight
    gradients rounded once; where every group of 4 tokens is exact, the masked gradients."""
    backends = ["triton", SPARSE_DX] + (["cutlass"] if dtype == torch.bfloat16 else [])
    check_paths_rounded_once(integer_ffn(m, f, 16, seed, exact_groups), dtype, fraction, exact_groups, backends)


@settings(max_examples=15, deadline=None)
@given(m=TOKENS, f=FEATURES, dtype=st.sampled_from(DTYPES), kind=st.sampled_from(Y_KINDS), seed=SEEDS)
def test_sparse_dx_writes_dy_with_the_float64_pattern_of_s_and_dh_follows(m, f, dtype, kind, seed):
    """triton-sparse-dx: the Triton forward, then the backward pass that also writes dy
    compressed; dh = dy·Uup on the compressed dy (``elas::cslt_mm``)."""
    check_sparse_dx_pass(*sparse_dx_case(m, f, dtype, kind, seed))
