"""CPU checks of the optional CUTLASS kernels' Python side (the kernels themselves:
tests/kernels/test_cutlass_gpu.py; their build: tests/test_cutlass_build.py): the ops' reference
paths agree with the default ops."""
from __future__ import annotations

import torch

from elas_compile.kernels import cslt_layout as L
from elas_compile.kernels.cutlass import ops as cutlass_ext


def exact(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-2, 3, shape, generator=g).bfloat16()


def test_up_reference_is_the_default_compression():
    h, w = exact((128, 16), 0), exact((192, 16), 1)  # small integers: every product exact
    got = torch.ops.elas.cutlass_up_relu2_sparse24(h, w)
    assert torch.equal(got.view(torch.int16), L.relu2_sparsify24_compress_reference(h @ w.t()).view(torch.int16))


def test_grad_reference_is_the_default_backward():
    h, u = exact((64, 16), 2), exact((128, 16), 3)
    packed = torch.ops.elas.cutlass_up_relu2_sparse24(h, u)
    g, w = exact((64, 8), 4), exact((8, 128), 5)
    dy, s = torch.ops.elas.cutlass_grad_relu2_sparse24(g, w, packed)
    ref_dy, ref_s = torch.ops.elas.relu2_sparsify24_backward_expand(g @ w, packed, None, "masked", 64, 128)
    assert torch.equal(s, ref_s) and torch.equal(dy, ref_dy)


def test_fake_shapes():
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode():
        h, w = torch.empty(128, 32, dtype=torch.bfloat16), torch.empty(256, 32, dtype=torch.bfloat16)
        packed = torch.ops.elas.cutlass_up_relu2_sparse24(h, w)
        dy, s = torch.ops.elas.cutlass_grad_relu2_sparse24(h, w.t(), packed)
    assert packed.shape == L.packed_shape(128, 256) and dy.shape == s.shape == (128, 256)


def test_cpu_needs_no_library():
    assert cutlass_ext.unavailable_reason("cpu") == "not a CUDA device"
