"""CPU checks of the optional CUTLASS kernels' Python side (the kernels themselves:
tests/kernels/test_cutlass_gpu.py): the ops' reference paths agree with the default ops, the FFN
op asked for CUTLASS on a CPU warns once and gives the default path's result, and the build tool
names what is missing."""
from __future__ import annotations

import warnings

import pytest
import torch

from elas_compile import fused_ffn
from elas_compile.kernels import cslt_layout as L
from elas_compile.kernels import cutlass_build, cutlass_ext


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


def test_ffn_asked_for_cutlass_on_cpu_warns_once_and_matches(monkeypatch):
    torch.manual_seed(0)
    h = torch.randn(64, 32, dtype=torch.bfloat16, requires_grad=True)
    u = torch.randn(128, 32, dtype=torch.bfloat16, requires_grad=True)
    v = torch.randn(16, 128, dtype=torch.bfloat16, requires_grad=True)
    ref = fused_ffn.lowrank_relu2_sparse24(h, u, v, "masked")
    ref.sum().backward()
    ref_grads = [t.grad.clone() for t in (h, u, v)]
    for t in (h, u, v):
        t.grad = None
    monkeypatch.setenv("ELAS_CUTLASS", "1")
    monkeypatch.setattr(fused_ffn, "_cutlass_warned", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fused_ffn.lowrank_relu2_sparse24(h, u, v, "masked")
        out.sum().backward()
    messages = [str(w.message) for w in caught if "ELAS_CUTLASS" in str(w.message)]
    assert len(messages) == 1 and "not a CUDA device" in messages[0]  # once, for up and grad alike
    assert torch.equal(out, ref)
    for t, r in zip((h, u, v), ref_grads):
        assert torch.equal(t.grad, r)


def test_build_names_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("CUTLASS_PATH", raising=False)
    with pytest.raises(RuntimeError, match="CUTLASS headers not found"):
        cutlass_build.build(None, tmp_path / "x.so")
    assert cutlass_build.main(["--cutlass", str(tmp_path), "--out", str(tmp_path / "x.so")]) == 1


def test_library_path_follows_the_sources():
    path = cutlass_build.default_library_path()
    assert cutlass_build.source_hash() in path.name and path.suffix == ".so"
    assert cutlass_ext.unavailable_reason("cpu") == "not a CUDA device"


def test_auto_is_silent_where_the_kernels_cannot_run(monkeypatch):
    monkeypatch.delenv("ELAS_CUTLASS", raising=False)
    monkeypatch.setattr(fused_ffn, "_cutlass_warned", set())
    h = torch.randn(64, 32, dtype=torch.bfloat16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not fused_ffn.use_cutlass("up", h, 64, 128, 32)
        assert not fused_ffn.use_cutlass("grad", h, 64, 128, 32)
