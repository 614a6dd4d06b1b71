"""CPU checks of the optional CUTLASS kernels' Python side (the kernels themselves:
tests/kernels/test_cutlass_gpu.py): the ops' reference paths agree with the default ops, and the
build tool names what is missing."""
from __future__ import annotations

import pytest
import torch

from elas_compile.kernels import cslt_layout as L
from elas_compile.kernels.cutlass import build as cutlass_build, ops as cutlass_ext


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


def test_build_names_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("CUTLASS_PATH", raising=False)
    with pytest.raises(RuntimeError, match="CUTLASS headers not found"):
        cutlass_build.build(None, tmp_path / "x.so")
    assert cutlass_build.main(["--cutlass", str(tmp_path), "--out", str(tmp_path / "x.so")]) == 1


def test_library_path_follows_the_sources():
    path = cutlass_build.default_library_path()
    assert cutlass_build.source_hash() in path.name and path.suffix == ".so"
    assert cutlass_ext.unavailable_reason("cpu") == "not a CUDA device"
