"""GPU checks of the 2:4 Triton kernels against cuSPARSELt (skipped without CUDA).

* torch._cslt_compress writes the layout of cslt_layout (values and metadata);
* the fused forward kernel's buffer is bit-identical to the reference and multiplies correctly in
  torch._cslt_sparse_mm for every algorithm id cuSPARSELt accepts;
* the backward kernels match the reference; the compressed dy1 multiplies correctly;
* the elas:: ops compile with torch.compile (Inductor) to the same results.
"""
from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.gpu

if not torch.cuda.is_available():
    pytest.skip("needs CUDA", allow_module_level=True)
triton = pytest.importorskip("triton")

from elas_compile.kernels import cslt_layout as L  # noqa: E402
from elas_compile.kernels import reference as R  # noqa: E402
from elas_compile.kernels.triton import ops as triton_ops  # noqa: E402,F401  (registers torch.ops.elas)
from elas_compile.kernels.triton import sparse24_backward as B  # noqa: E402
from elas_compile.kernels.triton.relu2_sparsify import SWEEP_CONFIGS, relu2_sparsify24_compress  # noqa: E402

DTYPES = [torch.bfloat16, torch.float16]
DEV = "cuda"


def make(kind: str, rows: int, cols: int, dtype, seed: int = 0) -> torch.Tensor:
    g = torch.Generator(device=DEV).manual_seed(seed)
    if kind == "normal":
        x = torch.randn(rows, cols, device=DEV, generator=g)
    elif kind == "ties":
        x = torch.randint(-3, 4, (rows, cols), device=DEV, generator=g).float() * 0.5
        x = torch.where(torch.rand(rows, cols, device=DEV, generator=g) < 0.5, x, -x)  # -0.0 too
    elif kind == "sparse":
        x = torch.randn(rows, cols, device=DEV, generator=g) * (torch.rand(rows, cols, device=DEV, generator=g) < 0.3)
    elif kind == "zeros":
        x = torch.zeros(rows, cols, device=DEV)
        x[::7] = torch.randn(cols, device=DEV, generator=g)
    elif kind == "scales":
        e = torch.randint(-20, 21, (rows, 1), device=DEV, generator=g).float()
        x = torch.randn(rows, cols, device=DEV, generator=g) * 10.0**e
        if dtype == torch.float16:
            x = x.clamp(-200, 200)
    else:
        raise ValueError(kind)
    return x.to(dtype)


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.int16)


from elas_compile.cusparselt import valid_algorithms as valid_alg_ids  # noqa: E402


def rel_err(out, ref):
    return ((out.double() - ref).norm() / ref.norm().clamp_min(1e-30)).item()


ALIGNED_SHAPES = [(64, 64), (128, 128), (192, 320), (256, 512), (384, 256), (1024, 2048)]


def test_layout_verified_on_this_gpu():
    assert L.cslt_layout_verified(DEV)
    assert L.cslt_shape_ok(192, 320, torch.bfloat16, device=DEV)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ALIGNED_SHAPES)
def test_cslt_compress_matches_reference_layout(dtype, shape):
    x = R.sparsify24(make("normal", *shape, dtype))  # exactly two nonzeros per group
    c = torch._cslt_compress(x)
    assert tuple(c.shape) == L.packed_shape(*shape) and c.dtype == dtype
    assert torch.equal(bits(c), bits(L.compress24_reference(x)))
    assert torch.equal(L.decompress24_reference(c, *shape), x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["normal", "ties", "sparse", "zeros", "scales"])
@pytest.mark.parametrize("shape", [(128, 128), (192, 320), (2048, 1024)])
@pytest.mark.parametrize("hw_cvt", [None, False])
def test_forward_kernel_bitexact(dtype, kind, shape, hw_cvt):
    y = make(kind, *shape, dtype, seed=hash((kind, shape)) % 1000)
    p = relu2_sparsify24_compress(y, hw_cvt=hw_cvt)
    ref = L.relu2_sparsify24_compress_reference(y)
    assert torch.equal(bits(p), bits(ref))
    assert torch.equal(B.sparse24_decompress(p, *shape), R.relu2_sparsify24(y))
    x = make(kind, *shape, dtype, seed=1)
    assert torch.equal(bits(relu2_sparsify24_compress(x, apply_relu2=False)), bits(L.compress24_reference(x)))


def test_every_block_config():
    """All configurations the benchmark sweeps (so any of them can become the default)."""
    rows, cols = 512, 1024
    y = make("ties", rows, cols, torch.bfloat16, seed=11)
    gr = make("normal", rows, cols, torch.bfloat16, seed=12)
    ref = bits(L.relu2_sparsify24_compress_reference(y))
    for cfg in SWEEP_CONFIGS:
        assert torch.equal(bits(relu2_sparsify24_compress(y, config=cfg)), ref), cfg
    p = relu2_sparsify24_compress(y)
    dense = B.relu2_sparsify24_backward(gr, p, None, "masked", rows, cols)
    ste = B.relu2_sparsify24_backward(gr, p, y, "ste", rows, cols)
    s = B.sparse24_decompress(p, rows, cols)
    for cfg in B.SWEEP_CONFIGS:
        assert torch.equal(B.relu2_sparsify24_backward(gr, p, None, "masked", rows, cols, config=cfg), dense), cfg
        assert torch.equal(B.relu2_sparsify24_backward(gr, p, y, "ste", rows, cols, config=cfg), ste), cfg
        assert torch.equal(B.sparse24_decompress(p, rows, cols, config=cfg), s), cfg
        d_s = B.relu2_sparsify24_backward(gr, p, None, "masked", rows, cols, config=cfg, write_s=True)
        assert torch.equal(d_s[0], dense) and torch.equal(d_s[1], s), cfg
        e_s = B.relu2_sparsify24_backward(gr, p, y, "ste", rows, cols, config=cfg, write_s=True)
        assert torch.equal(e_s[0], ste) and torch.equal(e_s[1], s), cfg


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(512, 1024, 768), (192, 320, 64), (64, 64, 128)])
def test_sparse_mm_every_alg_id(dtype, shape):
    rows, cols, n = shape
    y = make("normal", rows, cols, dtype, seed=3)
    p = torch.ops.elas.relu2_sparsify24_compress(y)
    s = R.relu2_sparsify24(y).double()
    w = make("normal", n, cols, dtype, seed=4)  # nn.Linear weight [out, in]
    for b in (w.t(), w.t().contiguous()):  # the accepted ids differ between the two (bf16 on H100)
        ids = valid_alg_ids(p, b)
        assert ids, "no cuSPARSELt algorithm accepted the buffer"
        ref = s @ b.double()
        for a in ids:
            out = torch._cslt_sparse_mm(p, b, alg_id=a)
            assert out.shape == (rows, n)
            assert rel_err(out, ref) < 1e-2, (a, rel_err(out, ref))
    best = torch._cslt_sparse_mm_search(p, w.t().contiguous())
    assert best in ids


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["normal", "ties", "sparse", "scales"])
def test_backward_kernels(dtype, kind):
    rows, cols = 256, 512
    y = make(kind, rows, cols, dtype, seed=5)
    gr = make("normal", rows, cols, dtype, seed=6)
    p = relu2_sparsify24_compress(y)
    out = R.relu2_sparsify24(y)
    # ste: bit-exact with the reference
    assert torch.equal(B.relu2_sparsify24_backward(gr, p, y, "ste", rows, cols), R.relu2_sparsify24_backward(gr, y, out, "ste"))
    # masked from the packed buffer alone: sqrt(v) instead of relu(y) (v = inf where relu(y)**2
    # overflows the dtype: excluded)
    d = B.relu2_sparsify24_backward(gr, p, None, "masked", rows, cols)
    ref = R.relu2_sparsify24_backward(gr.double(), y.double(), out.double(), "masked")
    fin = torch.isfinite(out)
    tol = 2.0 ** (-6 if dtype == torch.bfloat16 else -8)
    err = (d.double() - ref).abs()
    assert (err <= tol * ref.abs() + 2.0**-11 * gr.double().abs() + 2.0**-24)[fin].all()  # + fp16 subnormal step
    d_ref = L.relu2_sparsify24_backward_reference(gr, p, None, "masked", rows, cols)
    ulp = (d.float() - d_ref.float()).abs() <= 2**-7 * d_ref.float().abs()  # <= 1 ulp (sqrt rounding)
    # tl.sqrt flushes float32-subnormal v (relu(y) < 1.1e-19) to 0: excluded from the ulp check
    normal_v = B.sparse24_decompress(p, rows, cols).float().abs() >= 2.0**-126
    assert ulp[fin & (normal_v | (out == 0))].all()


def test_ops_under_torch_compile():
    rows, cols = 256, 512
    y = make("normal", 2, rows // 2 * cols, torch.bfloat16).view(2, rows // 2, cols)  # 3-D input
    gr = make("normal", rows, cols, torch.bfloat16, seed=2).view(2, rows // 2, cols)

    def f(y, gr):
        p = torch.ops.elas.relu2_sparsify24_compress(y)
        s = torch.ops.elas.sparse24_decompress(p, rows, cols)
        d = torch.ops.elas.relu2_sparsify24_backward_expand(gr, p, None, "masked", rows, cols)
        e = torch.ops.elas.relu2_sparsify24_backward_expand(gr, p, y, "ste", rows, cols)
        return p, s, *d, *e

    eager = f(y, gr)
    torch._dynamo.reset()
    comp = torch.compile(f, fullgraph=True)(y, gr)
    for a, b in zip(eager, comp):
        assert a.shape == b.shape and torch.equal(bits(a), bits(b))
    assert torch.equal(eager[1], R.relu2_sparsify24(y.reshape(rows, cols)))
    p = eager[0]
    for op, args in [
        (torch.ops.elas.relu2_sparsify24_compress, (y,)),
        (torch.ops.elas.sparse24_decompress, (p, rows, cols)),
        (torch.ops.elas.relu2_sparsify24_backward_expand, (gr, p, None, "masked", rows, cols)),
    ]:
        torch.library.opcheck(op, args, test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_static"))


def test_strided_input():
    base = make("normal", 256, 1024, torch.bfloat16)
    y = base[:, 256:768]  # row stride 1024
    assert torch.equal(bits(relu2_sparsify24_compress(y)), bits(L.relu2_sparsify24_compress_reference(y.contiguous())))
