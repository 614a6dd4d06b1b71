"""CPU tests of the pure-PyTorch cuSPARSELt layout reference and of the elas:: op registrations."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from elas_compile.kernels import cslt_layout as L
from elas_compile.kernels import reference as R
from elas_compile.kernels.triton import ops as triton_ops  # noqa: F401  (registers torch.ops.elas)

from sparse24_cases import DTYPES, KINDS, bits, make, shapes  # noqa: E402


def test_shape_rules():
    assert L.cslt_shape_ok(128, 128, torch.bfloat16)
    assert L.cslt_shape_ok(256, 11008, torch.float16)
    assert L.cslt_shape_ok(64, 192, torch.bfloat16)
    assert not L.cslt_shape_ok(32, 128, torch.bfloat16)
    assert not L.cslt_shape_ok(128, 96, torch.bfloat16)
    assert L.cslt_shape_ok(128, 128, torch.bfloat16, device="cpu")  # shape rules only off CUDA
    assert not L.cslt_shape_ok(128, 128, torch.float32)
    assert L.packed_shape(256, 512) == (256, 288)
    with pytest.raises(ValueError):
        L.compress24_reference(torch.zeros(32, 128, dtype=torch.bfloat16))


@pytest.mark.parametrize("shape", [(128, 128), (256, 384), (384, 256)])
@pytest.mark.parametrize("layout", L.LAYOUTS)
def test_meta_index_is_a_permutation(shape, layout):
    idx = L.meta_nibble_index(*shape, layout=layout).reshape(-1)
    assert torch.equal(idx.sort().values, torch.arange(4 * L.meta_numel(*shape)))


def _pytorch_writer_meta(x: torch.Tensor) -> torch.Tensor:
    """Independent model of PyTorch's MetadataCuSparseLt writer (SparseSemiStructuredPack.h,
    SparseSemiStructuredTile.cu): warps of 4 x 8 threads, 8 x 8 tiles, two warp shuffles, then
    _get_meta_offset. Returns the metadata region as int16."""
    rows, cols = x.shape
    keep = (x != 0).view(rows, cols // 4, 4)
    nib = [[None] * (cols // 4) for _ in range(rows)]
    for r in range(rows):
        for gi in range(cols // 4):
            ks = [k for k in range(4) if keep[r, gi, k]]
            nib[r][gi] = ks[0] | (ks[1] << 2)
    meta = [None] * (rows * cols // 16)

    def byte(v, i):
        return (v >> (8 * i)) & 0xFF

    for wx in range(0, rows, 32):
        for wy in range(0, cols, 64):
            for half, rbase in ((0, 0), (32, 4)):  # meta_ab, meta_cd
                m = {}
                for tx in range(4):
                    for ty in range(8):
                        v = 0
                        for row in range(4):
                            r = wx + tx * 8 + rbase + row
                            v |= nib[r][(wy + ty * 8) // 4] << (8 * row)
                            v |= nib[r][(wy + ty * 8) // 4 + 1] << (8 * row + 4)
                        m[tx, ty] = v

                def lines(tx, ty):
                    left = ty % 2 == 0
                    partner = m[tx, ty ^ 1]
                    s0, s1 = byte(partner, int(not left)), byte(partner, int(not left) + 2)
                    sh_own, sh_p = (1 - int(left)) * 8, int(left) * 8
                    l0 = (byte(m[tx, ty], 1 - int(left)) << sh_own) | (s0 << sh_p)
                    l1 = (byte(m[tx, ty], 3 - int(left)) << sh_own) | (s1 << sh_p)
                    return l0, l1

                for tx in range(4):
                    for ty in range(8):
                        bottom = tx % 2 == 1
                        l0, l1 = lines(tx, ty)
                        p0, p1 = lines(tx ^ 1, ty)
                        recv = p0 if (tx ^ 1) % 2 == 1 else p1  # the partner sends line0 if it is bottom
                        final = recv | (l1 << 16) if bottom else (recv << 16) | l0
                        tr, tc = tx * 8, ty * 8
                        base = ((wx // 128) * 512 + (wy // 64) * 512 * (rows // 128) + (((wx + tr) % 128) // 32) * 64
                                + (((wy + tc) % 64) // 32) * 256 + ((tr % 32) // 16) * 4 + ((tc % 32) // 16) * 2 + half)
                        idx = (int(ty % 2 == 1) + 2 * int(bottom)) * 4
                        for h in range(2):
                            o = base + 2 * idx + h
                            assert meta[o] is None
                            meta[o] = (final >> (16 * h)) & 0xFFFF
    assert all(v is not None for v in meta)
    return torch.tensor([v - 65536 if v >= 32768 else v for v in meta], dtype=torch.int16)


@pytest.mark.parametrize("shape", [(128, 128), (256, 256), (128, 384)])
def test_sm80_layout_matches_pytorch_writer(shape):
    """The ``sm80_pytorch`` layout option is PyTorch's MetadataCuSparseLt writer (diagnostics)."""
    x = R.sparsify24(make("normal", *shape, torch.bfloat16, 0))
    packed = L.compress24_reference(x, layout="sm80_pytorch").reshape(-1)
    assert torch.equal(packed[L.values_numel(*shape):].view(torch.int16), _pytorch_writer_meta(x))


def test_reference_reproduces_cusparselt_dumps():
    """Buffers written by torch._cslt_compress on an H100 (cuSPARSELt 0.8.0), stored in data/."""
    blob = torch.load(os.path.join(os.path.dirname(__file__), "data", "cslt_h100_dumps.pt"))
    for name, (x, c) in blob["dumps"].items():
        rows, cols = x.shape
        assert torch.equal(L.decompress24_reference(c, rows, cols), x), name
        if name != "one_nonzero":  # cuSPARSELt encodes groups with < 2 nonzeros its own way
            assert torch.equal(bits(L.compress24_reference(x)), bits(c)), name


@settings(max_examples=25, deadline=None)
@given(shape=shapes, dtype=st.sampled_from(DTYPES), kind=st.sampled_from(KINDS), seed=st.integers(0, 2**16))
def test_roundtrip_and_value_order(shape, dtype, kind, seed):
    x = make(kind, *shape, dtype, seed)
    pruned = R.sparsify24(x)
    packed = L.compress24_reference(x)
    assert packed.shape == L.packed_shape(*shape) and packed.dtype == dtype
    assert torch.equal(L.decompress24_reference(packed, *shape), pruned)
    assert torch.equal(bits(L.compress24_reference(pruned)), bits(packed))  # idempotent on pruned input
    vals, i0, i1 = L.unpack24_reference(packed, *shape)
    assert (i0 < i1).all()
    keep = R.sparsify24_mask(x).view(shape[0], -1, 4)
    assert torch.equal(keep.gather(-1, i0.unsqueeze(-1)).all(-1), torch.ones_like(i0, dtype=torch.bool))
    assert torch.equal(keep.gather(-1, i1.unsqueeze(-1)).all(-1), torch.ones_like(i1, dtype=torch.bool))


@settings(max_examples=20, deadline=None)
@given(shape=shapes, dtype=st.sampled_from(DTYPES), kind=st.sampled_from(KINDS), seed=st.integers(0, 2**16))
def test_reference_backward(shape, dtype, kind, seed):
    y = make(kind, *shape, dtype, seed)
    g = make("normal", *shape, dtype, seed + 1)
    out = R.relu2_sparsify24(y)
    p = L.relu2_sparsify24_compress_reference(y)
    assert torch.equal(L.relu2_sparsify24_backward_reference(g, p, y, "ste", *shape),
                       R.relu2_sparsify24_backward(g, y, out, "ste"))
    d = L.relu2_sparsify24_backward_reference(g, p, None, "masked", *shape)
    ref = R.relu2_sparsify24_backward(g.double(), y.double(), out.double(), "masked")
    fin = torch.isfinite(out)
    tol = 2.0 ** (-6 if dtype == torch.bfloat16 else -8)
    assert ((d.double() - ref).abs() <= tol * ref.abs() + 2.0**-11 * g.double().abs() + 2.0**-24)[fin].all()  # + fp16 subnormal step


def test_ops_cpu_and_opcheck():
    y = make("ties", 128, 256, torch.bfloat16, 1)
    g = make("normal", 128, 256, torch.bfloat16, 2)
    p = torch.ops.elas.relu2_sparsify24_compress(y)
    assert torch.equal(bits(p), bits(L.relu2_sparsify24_compress_reference(y)))
    assert torch.equal(torch.ops.elas.sparse24_decompress(p, 128, 256), R.relu2_sparsify24(y))
    y3 = y.view(2, 64, 256)
    assert torch.equal(bits(torch.ops.elas.relu2_sparsify24_compress(y3)), bits(p))
    d, s = torch.ops.elas.relu2_sparsify24_backward_expand(g, p, None, "masked", 128, 256)
    assert torch.equal(s, R.relu2_sparsify24(y))
    assert torch.equal(d, L.relu2_sparsify24_backward_reference(g, p, None, "masked", 128, 256))
    d, s = torch.ops.elas.relu2_sparsify24_backward_expand(g, p, y, "ste", 128, 256)
    assert torch.equal(d, R.relu2_sparsify24_backward(g, y, R.relu2_sparsify24(y), "ste"))
    for op, args in [
        (torch.ops.elas.relu2_sparsify24_compress, (y,)),
        (torch.ops.elas.sparsify24_compress, (g,)),
        (torch.ops.elas.sparse24_decompress, (p, 128, 256)),
        (torch.ops.elas.relu2_sparsify24_backward_expand, (g, p, None, "masked", 128, 256)),
        (torch.ops.elas.relu2_sparsify24_backward_expand, (g, p, y, "ste", 128, 256)),
    ]:
        torch.library.opcheck(op, args, test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_static"))
    with pytest.raises(ValueError, match="needs y"):
        torch.ops.elas.relu2_sparsify24_backward_expand(g, p, None, "ste", 128, 256)
    with pytest.raises(ValueError, match="contiguous"):
        torch.ops.elas.sparse24_decompress(p.t().contiguous().t(), 128, 256)


def test_ops_without_triton():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["triton"] = None  # import triton -> ImportError
        import torch
        from elas_compile.kernels import cslt_layout as L
        from elas_compile.kernels.triton import ops as triton_ops
        assert not triton_ops.HAS_TRITON
        y = torch.randn(128, 128, dtype=torch.bfloat16)
        p = torch.ops.elas.relu2_sparsify24_compress(y)
        assert torch.equal(p, L.relu2_sparsify24_compress_reference(y))
        g = torch.randn_like(y)
        torch.library.opcheck(torch.ops.elas.relu2_sparsify24_backward_expand, (g, p, None, "masked", 128, 128),
                              test_utils=("test_schema", "test_faketensor"))
        print("ok")
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-2000:]
