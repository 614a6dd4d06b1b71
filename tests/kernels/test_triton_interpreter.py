"""The Triton kernels, run on CPU tensors under the Triton interpreter, against the references.

The launchers run CPU tensors through interpreted copies of the kernel modules (see
kernels/triton/compat.py), so no TRITON_INTERPRET setting is needed here and other test files in
the same process are unaffected. Shapes are small (CI has two cores).
"""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("triton")

from elas_compile.kernels import cslt_layout as L  # noqa: E402
from elas_compile.kernels import reference as R  # noqa: E402
from elas_compile.kernels.triton import sparse24_backward as B  # noqa: E402
from elas_compile.kernels.triton.relu2_sparsify import relu2_sparsify24_compress  # noqa: E402

from sparse24_cases import DTYPES, KINDS, bits, make  # noqa: E402

small = st.tuples(st.sampled_from([64, 128]), st.sampled_from([64, 128, 256]))
cases = dict(shape=small, dtype=st.sampled_from(DTYPES), kind=st.sampled_from(KINDS), seed=st.integers(0, 2**16))


@settings(max_examples=12, deadline=None)
@given(**cases)
def test_forward_matches_reference(shape, dtype, kind, seed):
    y = make(kind, *shape, dtype, seed)
    p = relu2_sparsify24_compress(y)
    assert p.shape == L.packed_shape(*shape) and p.dtype == dtype
    assert torch.equal(bits(p), bits(L.relu2_sparsify24_compress_reference(y)))  # values and metadata
    assert torch.equal(B.sparse24_decompress(p, *shape), R.relu2_sparsify24(y))


@settings(max_examples=8, deadline=None)
@given(**cases)
def test_sparsify_without_relu2(shape, dtype, kind, seed):
    x = make(kind, *shape, dtype, seed)
    p = relu2_sparsify24_compress(x, apply_relu2=False)
    assert torch.equal(bits(p), bits(L.compress24_reference(x)))
    assert torch.equal(B.sparse24_decompress(p, *shape), R.sparsify24(x))


@settings(max_examples=6, deadline=None)
@given(**cases)
def test_backward_matches_reference(shape, dtype, kind, seed):
    y = make(kind, *shape, dtype, seed)
    g = make("normal", *shape, dtype, seed + 1)
    p = relu2_sparsify24_compress(y)
    out = R.relu2_sparsify24(y)
    assert torch.equal(B.relu2_sparsify24_backward(g, p, y, "ste", *shape), R.relu2_sparsify24_backward(g, y, out, "ste"))
    # masked from packed: 2 * g * sqrt(v) in float32 then rounded; the interpreter may keep more
    # precision than the float32 reference (double rounding): allow one ulp.
    d = B.relu2_sparsify24_backward(g, p, None, "masked", *shape)
    d_ref = L.relu2_sparsify24_backward_reference(g, p, None, "masked", *shape)
    ulp = 2.0 ** (-7 if dtype == torch.bfloat16 else -10)
    close = (d.double() - d_ref.double()).abs() <= ulp * d_ref.double().abs() + 2.0**-24
    assert (close | (d == d_ref)).all()  # (d == d_ref: inf where relu(y)**2 overflowed)
    with pytest.raises(ValueError, match="pass y=None"):
        B.relu2_sparsify24_backward(g, p, y, "masked", *shape)


@pytest.mark.parametrize("config", [(32, 64, 4), (16, 128, 4), (128, 256, 4)])
def test_block_configs(config):
    y = make("ties", 128, 256, torch.bfloat16, 3)
    assert torch.equal(bits(relu2_sparsify24_compress(y, config=config)), bits(L.relu2_sparsify24_compress_reference(y)))
    p = L.relu2_sparsify24_compress_reference(y)
    assert torch.equal(B.sparse24_decompress(p, 128, 256, config=config), R.relu2_sparsify24(y))


def test_non_power_of_two_tiles():
    y = make("ties", 192, 192, torch.float16, 6)  # 3 x 3 programs of 64 x 64
    p = relu2_sparsify24_compress(y)
    assert torch.equal(bits(p), bits(L.relu2_sparsify24_compress_reference(y)))
    assert torch.equal(B.sparse24_decompress(p, 192, 192), R.relu2_sparsify24(y))


def test_strided_and_3d_inputs():
    base = make("normal", 128, 512, torch.float16, 4)
    y = base[:, 128:384]  # row stride 512, 16-byte aligned
    assert torch.equal(bits(relu2_sparsify24_compress(y)), bits(L.relu2_sparsify24_compress_reference(y.contiguous())))
    y = base.reshape(-1)[2:2 + 128 * 256].view(128, 256)  # misaligned start: copied
    assert torch.equal(bits(relu2_sparsify24_compress(y)), bits(L.relu2_sparsify24_compress_reference(y)))
    y3 = base[:, :256].contiguous().view(2, 64, 256)
    g3 = make("normal", 128, 256, torch.float16, 5).view(2, 64, 256)
    p = relu2_sparsify24_compress(y3)
    d = B.relu2_sparsify24_backward(g3, p, None, "masked", 128, 256)
    assert d.shape == g3.shape
    assert torch.equal(d, L.relu2_sparsify24_backward_reference(g3, p, None, "masked", 128, 256))


def test_rejects_bad_shapes():
    with pytest.raises(ValueError):
        relu2_sparsify24_compress(torch.zeros(32, 128, dtype=torch.bfloat16))
    with pytest.raises(ValueError):
        relu2_sparsify24_compress(torch.zeros(128, 128, dtype=torch.float32))
    with pytest.raises(ValueError):
        relu2_sparsify24_compress(torch.zeros(64, 96, dtype=torch.bfloat16))
    p = L.relu2_sparsify24_compress_reference(torch.zeros(128, 128, dtype=torch.bfloat16))
    with pytest.raises(ValueError):
        B.sparse24_decompress(p, 128, 256)


@settings(max_examples=4, deadline=None)
@given(**cases)
def test_backward_writes_dense_s_in_the_same_pass(shape, dtype, kind, seed):
    y = make(kind, *shape, dtype, seed)
    g = make("normal", *shape, dtype, seed + 1)
    p = relu2_sparsify24_compress(y)
    for mode, yy in (("masked", None), ("ste", y)):
        d, s = B.relu2_sparsify24_backward(g, p, yy, mode, *shape, write_s=True)
        assert torch.equal(d, B.relu2_sparsify24_backward(g, p, yy, mode, *shape))
        assert torch.equal(s, R.relu2_sparsify24(y))
