"""Issue 21 item 4 on a CUDA GPU: the properties of test_sparse24_backward_properties.py with the
compiled Triton kernels, cuSPARSELt (``elas::cslt_mm``) and, where built, the CUTLASS kernels,
against the same float64 reference (tests/sparse24_float64.py), at larger shapes. Skipped
without CUDA."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from elas_compile.backends import SPARSE_DX
from elas_compile.kernels.cslt_layout import cslt_layout_verified

from sparse24_float64 import (DTYPES, FRACTIONS, SUBNORMAL_STEP, UNIT, Y_KINDS, assert_weight_grad, assert_within,
                              check_paths_rounded_once, check_sparse_dx_pass, check_tokens24_compress, integer_ffn,
                              operand, operands, pad_rows, sparse_dx_case, tokens24_select)

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

TOKENS = st.integers(1, 4096)
FEATURES = st.sampled_from([64, 256, 1024])
SEEDS = st.integers(0, 2**31 - 1)


@pytest.fixture(autouse=True)
def _cusparselt_and_full_precision_sums():
    """The sparse GEMMs must run on cuSPARSELt (not the reference fallback), and cuBLAS must sum
    in float32 for the exact-integer properties (no reduced-precision split-K reductions)."""
    if not cslt_layout_verified(torch.device("cuda")):
        pytest.skip("cuSPARSELt on this GPU does not write the layout elas_compile's kernels write")
    matmul = torch.backends.cuda.matmul
    saved = matmul.allow_bf16_reduced_precision_reduction, matmul.allow_fp16_reduced_precision_reduction
    matmul.allow_bf16_reduced_precision_reduction = matmul.allow_fp16_reduced_precision_reduction = False
    yield
    matmul.allow_bf16_reduced_precision_reduction, matmul.allow_fp16_reduced_precision_reduction = saved


def _backends(dtype):
    from elas_compile.kernels.cutlass import ops as cutlass

    return ["triton", SPARSE_DX] + (["cutlass"] if dtype == torch.bfloat16 and cutlass.available("cuda") else [])


@settings(max_examples=12, deadline=None)
@given(m=TOKENS, f=FEATURES, case=operands)
def test_tokens24_compress_and_its_sparse_product(m, f, case):
    from elas_compile.kernels.triton import tokens24

    a = operand(m, f, **case).cuda()
    a_pad = pad_rows(a, 64)
    packed, dropped = tokens24.tokens24_compress(a_pad)
    check_tokens24_compress(a, packed, dropped)
    b = torch.randn(a_pad.shape[0], 128, generator=torch.Generator().manual_seed(case["seed"] + 1)).to(a)
    got = torch.ops.elas.cslt_mm(packed, b, f, a_pad.shape[0])
    sel = tokens24_select(a_pad.double())
    bound = 2 * UNIT[a.dtype] * (sel.abs().t() @ b.double().abs()) + SUBNORMAL_STEP[a.dtype]
    assert_within(got, sel.t() @ b.double(), bound, "cslt_mm of the compressed transpose")


@settings(max_examples=12, deadline=None)
@given(m=TOKENS, f=FEATURES, r=st.sampled_from([64, 256]), case=operands, fraction=FRACTIONS)
def test_weight_gradients_on_cusparselt_are_the_float64_split_product(m, f, r, case, fraction):
    from elas_compile import tokens24

    a = operand(m, f, **case).cuda()
    b = torch.randn(m, r, generator=torch.Generator().manual_seed(case["seed"] + 1)).to(a.dtype).cuda()
    got = tokens24.weight_grad(pad_rows(a, 64), pad_rows(b, 64), fraction)
    assert_weight_grad(got, a, b, fraction, "cuSPARSELt")


@settings(max_examples=10, deadline=None)
@given(m=TOKENS, f=st.sampled_from([256, 1024]), dtype=st.sampled_from(DTYPES), seed=SEEDS, fraction=FRACTIONS,
       exact_groups=st.booleans())
def test_masked_tokens24_gradients_are_the_float64_ones_rounded_once(m, f, dtype, seed, fraction, exact_groups):
    check_paths_rounded_once(integer_ffn(m, f, 64, seed, exact_groups), dtype, fraction, exact_groups,
                             _backends(dtype), device="cuda")


@settings(max_examples=12, deadline=None)
@given(m=TOKENS, f=FEATURES, dtype=st.sampled_from(DTYPES), kind=st.sampled_from(Y_KINDS), seed=SEEDS)
def test_sparse_dx_writes_dy_with_the_float64_pattern_of_s_and_dh_follows(m, f, dtype, kind, seed):
    check_sparse_dx_pass(*(t.cuda() for t in sparse_dx_case(m, f, dtype, kind, seed, rank=128)))
