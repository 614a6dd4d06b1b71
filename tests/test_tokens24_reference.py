"""The token-wise 2:4 weight gradients of backward ``masked-tokens24``: the pure-PyTorch reference
(kernels/reference.py), the Triton pass that writes the compressed operand (under the Triton
interpreter) and the composition the fused backends run (elas_compile/tokens24.py)."""
import pytest
import torch

from elas_compile.kernels import reference
from elas_compile.kernels.cslt_layout import compress24_reference, decompress24_reference

triton = pytest.importorskip("triton")


def _sparse(m, f, density=0.5, dtype=torch.bfloat16, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(m, f, generator=g)
    return torch.where(torch.rand(m, f, generator=g) < density, a, torch.zeros(())).to(dtype)


def _two_per_group(m, f, seed=0):
    """tokens x features with at most 2 nonzeros in every group of 4 tokens of every feature."""
    a = _sparse(m, f, density=1.0, dtype=torch.float64, seed=seed)
    keep = torch.rand(m, f, generator=torch.Generator().manual_seed(seed + 1)).reshape(-1, 4, f).argsort(1) < 2
    return torch.where(keep.reshape(m, f), a, torch.zeros((), dtype=a.dtype))


def test_groups_with_at_most_two_nonzeros_are_kept_exactly():
    a = _two_per_group(32, 8)
    assert torch.equal(reference.sparsify24_tokens(a), a)
    assert torch.equal(reference.tokens24_dropped(a), torch.zeros(8, dtype=torch.int32))
    assert reference.tokens24_exact_fraction(a) == 1.0
    b = torch.randn(32, 5, dtype=torch.float64)
    torch.testing.assert_close(reference.tokens24_weight_grad(a, b, 0.0), a.t() @ b)


def test_a_dense_column_keeps_the_two_largest_of_every_four_tokens_and_counts_what_it_drops():
    a = torch.tensor([[1.0, 0.0], [-3.0, 0.0], [2.0, 5.0], [0.5, 0.0], [0.0, 1.0], [0.0, 0.0], [4.0, 0.0], [-4.0, 0.0]])
    got = reference.sparsify24_tokens(a)
    assert got[:, 0].tolist() == [0.0, -3.0, 2.0, 0.0, 0.0, 0.0, 4.0, -4.0]
    assert torch.equal(got[:, 1], a[:, 1])
    assert reference.tokens24_dropped(a).tolist() == [2, 0]
    assert reference.tokens24_exact_fraction(a) == 0.75


def test_a_token_count_that_is_not_a_multiple_of_four_is_a_short_last_group():
    a = _sparse(30, 16, density=0.9, dtype=torch.float64)
    padded = torch.cat([a, a.new_zeros(2, 16)])
    assert torch.equal(reference.sparsify24_tokens(a), reference.sparsify24_tokens(padded)[:30])
    assert torch.equal(reference.tokens24_dropped(a), reference.tokens24_dropped(padded))
    b = torch.randn(30, 3, dtype=torch.float64)
    torch.testing.assert_close(reference.tokens24_weight_grad(a, b, 0.25),
                               reference.tokens24_weight_grad(padded, torch.cat([b, b.new_zeros(2, 3)]), 0.25))
    last = reference.sparsify24_tokens(a)[28:]  # two real tokens: a group of at most 2 is exact
    assert torch.equal(last, a[28:])


def test_the_densest_columns_get_the_exact_product():
    a = _sparse(64, 20, density=0.3, dtype=torch.float64)
    a[:, 7] = torch.randn(64, dtype=torch.float64)  # dense: drops the most
    a[:, 3] = torch.randn(64, dtype=torch.float64)
    b = torch.randn(64, 4, dtype=torch.float64)
    dense = reference.dense_columns(reference.tokens24_dropped(a), 0.1)
    assert sorted(dense.tolist()) == [3, 7]
    got = reference.tokens24_weight_grad(a, b, 0.1)
    exact = a.t() @ b
    torch.testing.assert_close(got[[3, 7]], exact[[3, 7]])
    others = [i for i in range(20) if i not in (3, 7)]
    torch.testing.assert_close(got[others], (reference.sparsify24_tokens(a).t() @ b)[others])
    torch.testing.assert_close(reference.tokens24_weight_grad(a, b, 1.0), exact)


def test_ties_in_dropped_counts_pick_the_lower_column():
    assert reference.dense_columns(torch.tensor([1, 3, 3, 0, 3], dtype=torch.int32), 0.4).tolist() == [1, 2]
    assert reference.dense_columns(torch.tensor([1, 2], dtype=torch.int32), 0.0).numel() == 0


@pytest.mark.parametrize("m,f,dtype", [(64, 64, torch.bfloat16), (128, 192, torch.bfloat16), (64, 128, torch.float16)])
def test_the_triton_pass_writes_the_reference_compressed_transpose_and_counts(m, f, dtype):
    from elas_compile.kernels.triton import tokens24

    a = _sparse(m, f, density=0.6, dtype=dtype, seed=m + f)
    a[:8, 0] = 0.0  # all-zero groups
    a[8:16, 1] = -0.0  # negative zeros are zeros
    a[16:24, 2] = 1.5  # ties: the lower token wins
    a[24:28, 3] = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=dtype)
    a[:, 5] = torch.randn(m).to(dtype)  # a dense column
    packed, dropped = tokens24.tokens24_compress(a)
    ref = compress24_reference(a.t().contiguous())
    assert torch.equal(packed.view(torch.int16), ref.view(torch.int16))
    assert torch.equal(dropped, reference.tokens24_dropped(a))
    assert torch.equal(decompress24_reference(packed, f, m), reference.sparsify24_tokens(a).t())


def test_the_op_on_a_cpu_matches_the_triton_pass():
    from elas_compile.kernels.triton import tokens24

    a = _sparse(64, 128, density=0.7)
    p_op, d_op = torch.ops.elas.tokens24_compress(a)
    p_tr, d_tr = tokens24.tokens24_compress(a)
    assert torch.equal(p_op.view(torch.int16), p_tr.view(torch.int16)) and torch.equal(d_op, d_tr)
    with pytest.raises(ValueError, match="cols % 64"):
        torch.ops.elas.tokens24_compress(a[:60])  # tokens are the compressed columns


def test_the_fused_weight_gradient_equals_the_reference():
    from elas_compile import tokens24

    a = _sparse(128, 64, density=0.6)
    b = torch.randn(128, 16).to(torch.bfloat16)
    for fraction in (0.0, 0.05, 0.1):
        got = tokens24.weight_grad(a, b, fraction)
        ref = reference.tokens24_weight_grad(a, b, fraction)
        assert got.dtype == b.dtype
        torch.testing.assert_close(got.float(), ref.float(), rtol=1e-2, atol=1e-2)


def test_unaligned_shapes_run_the_reference_with_one_warning():
    from elas_compile import tokens24
    from elas_compile.diagnostics import reset_warnings

    reset_warnings()
    a = _sparse(30, 64, density=0.6)
    b = torch.randn(30, 16).to(torch.bfloat16)
    with pytest.warns(UserWarning, match="multiples of 64"):
        got = tokens24.weight_grad(a, b, 0.05)
    assert torch.equal(got, reference.tokens24_weight_grad(a, b, 0.05))
