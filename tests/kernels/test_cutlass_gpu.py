"""GPU checks of the CUTLASS kernels (skipped without an sm_90 GPU and the built library).

* exact inputs (small integers: every accumulator, relu² and tie exact): the compressed buffer is
  bit-identical to the reference, values and metadata, including shapes whose last tile is partial;
* random inputs: the kernel's relu² of the float32 accumulator matches the float32 reference up to
  accumulation order (a few groups may rank differently), and the buffer multiplies correctly in
  cuSPARSELt;
* the backward kernel: S is the forward's, expanded exactly; dy matches the masked reference;
* the ops run inside a CUDA graph and under torch.compile.
"""
from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.gpu

if not torch.cuda.is_available():
    pytest.skip("needs CUDA", allow_module_level=True)

from elas_compile.kernels import cslt_layout as L  # noqa: E402
from elas_compile.kernels.cutlass import ops as C  # noqa: E402

if not C.available("cuda"):
    pytest.skip(f"CUTLASS kernels unavailable: {C.unavailable_reason('cuda')}", allow_module_level=True)

DEV = "cuda"
SHAPES = [(128, 128, 64), (192, 320, 16), (256, 512, 128), (1024, 2048, 512), (4096, 1536, 256)]


def reference(h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return torch.ops.elas.cutlass_up_relu2_sparse24(h.cpu(), w.cpu())


@pytest.mark.parametrize("m,n,k", SHAPES)
def test_exact_inputs_bit_identical(m, n, k):
    g = torch.Generator(device=DEV).manual_seed(m + n + k)
    h = torch.randint(-1, 2, (m, k), device=DEV, generator=g).bfloat16()
    w = torch.randint(-1, 2, (n, k), device=DEV, generator=g).bfloat16() if k <= 16 else \
        (torch.rand(n, k, device=DEV, generator=g) < 16 / k).bfloat16()  # at most ~16 nonzeros: |acc| small
    packed = C.up_relu2_sparse24_check(h, w)
    ref = reference(h, w)
    dense, ref_dense = L.decompress24_reference(packed.cpu(), m, n), L.decompress24_reference(ref, m, n)
    torch.testing.assert_close(dense, ref_dense, rtol=0, atol=0)
    assert torch.equal(packed.cpu().view(torch.int16), ref.view(torch.int16))


@pytest.mark.parametrize("m,n,k", SHAPES)
def test_random_inputs_match_reference(m, n, k):
    g = torch.Generator(device=DEV).manual_seed(7 * m + n)
    h = torch.randn(m, k, device=DEV, generator=g).bfloat16()
    w = (torch.randn(n, k, device=DEV, generator=g) / k**0.5).bfloat16()
    packed = C.up_relu2_sparse24_check(h, w)
    ref = reference(h, w)
    _, i0, i1 = L.unpack24_reference(packed.cpu(), m, n)
    _, r0, r1 = L.unpack24_reference(ref, m, n)
    same = (i0 == r0) & (i1 == r1)
    assert same.float().mean() > 0.999, same.float().mean()
    dense, ref_dense = L.decompress24_reference(packed.cpu(), m, n), L.decompress24_reference(ref, m, n)
    rows = same.all(-1)  # rows ranked identically: values within one bf16 rounding
    torch.testing.assert_close(dense[rows].float(), ref_dense[rows].float(), rtol=2**-7, atol=1e-6)
    b = (torch.randn(n, 64, device=DEV, generator=g) / n**0.5).bfloat16()
    got = torch._cslt_sparse_mm(packed, b)
    want = L.decompress24_reference(packed, m, n).float() @ b.float()
    torch.testing.assert_close(got.float(), want, rtol=2e-2, atol=2e-2 * want.abs().max().item())


def test_cuda_graph_and_compile():
    h = torch.randn(512, 256, device=DEV).bfloat16()
    w = (torch.randn(1024, 256, device=DEV) / 16).bfloat16()
    eager = torch.ops.elas.cutlass_up_relu2_sparse24(h, w)
    graph = torch.cuda.CUDAGraph()
    torch.ops.elas.cutlass_up_relu2_sparse24(h, w)  # warm-up outside capture
    with torch.cuda.graph(graph):
        captured = torch.ops.elas.cutlass_up_relu2_sparse24(h, w)
    captured.zero_()
    graph.replay()
    assert torch.equal(captured, eager)
    compiled = torch.compile(lambda a, b: torch.ops.elas.cutlass_up_relu2_sparse24(a, b), fullgraph=True)
    assert torch.equal(compiled(h, w), eager)


def test_bad_shape_names_the_rule():
    h = torch.randn(100, 64, device=DEV).bfloat16()
    w = torch.randn(128, 64, device=DEV).bfloat16()
    with pytest.raises(ValueError):
        torch.ops.elas.cutlass_up_relu2_sparse24(h, w)


def grad_operands(m, n, k, seed):
    """(packed S of a random up projection, g: m x k, w: k x n) for the backward kernel."""
    gen = torch.Generator(device=DEV).manual_seed(seed)
    h = torch.randn(m, k, device=DEV, generator=gen).bfloat16()
    u = (torch.randn(n, k, device=DEV, generator=gen) / k**0.5).bfloat16()
    g = torch.randn(m, k, device=DEV, generator=gen).bfloat16()
    w = (torch.randn(k, n, device=DEV, generator=gen) / k**0.5).bfloat16()
    return C.up_relu2_sparse24_check(h, u), g, w


@pytest.mark.parametrize("m,n,k", SHAPES)
def test_grad_matches_reference(m, n, k):
    packed, g, w = grad_operands(m, n, k, seed=3 * m + k)
    dy, s = C.grad_relu2_sparse24_check(g, w, packed)
    assert torch.equal(s.cpu(), L.decompress24_reference(packed.cpu(), m, n))
    ref_dy, ref_s = torch.ops.elas.cutlass_grad_relu2_sparse24(g.cpu(), w.cpu(), packed.cpu())
    assert torch.equal(ref_s, s.cpu())
    assert ((dy.cpu() == 0) == (ref_dy == 0)).float().mean() > 0.999  # same kept positions
    torch.testing.assert_close(dy.cpu().float(), ref_dy.float(), rtol=2e-2, atol=1e-3 * ref_dy.float().abs().max().item())


def test_grad_in_cuda_graph():
    packed, g, w = grad_operands(512, 1024, 128, seed=1)
    eager = torch.ops.elas.cutlass_grad_relu2_sparse24(g, w, packed)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = torch.ops.elas.cutlass_grad_relu2_sparse24(g, w, packed)
    graph.replay()
    assert torch.equal(captured[0], eager[0]) and torch.equal(captured[1], eager[1])

