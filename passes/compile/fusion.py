"""Graph rewrites that put the fast ELAS kernels in place of the readable reference ops.

Works on torch.fx graphs at two levels:
- pre-grad (Dynamo's torch-level graph, before autograd is traced): the whole
  ``linear(h, Uup) -> relu -> **2 -> elas.sparsify24 -> elas.sparse24_linear(., Vdown, mode, kernels)``
  chain becomes ``elas.lowrank_relu2_sparse24_linear(h, Uup, Vdown, mode, backend)`` (compressed
  saved activations, sparse GEMM) where ``elas_compile.backends.resolve_backend`` picks a fused
  backend for ``kernels`` on this device, dtype and shapes; otherwise ``relu -> **2 ->
  elas.sparsify24`` becomes ``elas.relu2_sparsify24`` (the reference backend), with one warning
  when that is a fallback. ``dense``-mode (warm-up) 2:4 ops become plain dense ops.
- post-grad (aten level, inside Inductor): ``aten.relu -> aten.pow(2) -> elas.sparsify24``
  becomes ``elas.relu2_sparsify24`` (one fused kernel).

The passes touch ELAS ops and the nodes that feed only them: every node they erase is one they
matched and replaced (no dead-code elimination of the user's graph, which would delete unused
in-place ops such as a router's ``scatter_``). Each rewrite bumps
``torch._dynamo.utils.counters["elas"][name]``.
"""
from __future__ import annotations

import operator

import torch
import torch.fx
import torch.nn.functional as F
from torch._dynamo.utils import counters

from elas_compile import fused_ffn  # noqa: F401  (registers elas::lowrank_relu2_sparse24_linear)
from elas_compile.backends import FUSED_BACKENDS, fallback_warning, resolve_backend
from elas_compile.diagnostics import warn_once

aten = torch.ops.aten
elas = torch.ops.elas
_LINEAR = (F.linear, torch._C._nn.linear)
_RELU = (torch.relu, F.relu, aten.relu.default)


def _is(node, targets) -> bool:
    return isinstance(node, torch.fx.Node) and node.op == "call_function" and node.target in targets


def _is_relu(node) -> bool:
    return _is(node, _RELU) or (isinstance(node, torch.fx.Node) and node.op == "call_method" and node.target == "relu")


def _is_square_of(node):
    """The input x if ``node`` computes x ** 2 (or x * x), else None."""
    if _is(node, (operator.pow, torch.pow, aten.pow.Tensor_Scalar)) and len(node.args) == 2 and node.args[1] == 2:
        return node.args[0]
    if _is(node, (operator.mul, torch.mul, aten.mul.Tensor)) and len(node.args) == 2 and node.args[0] is node.args[1]:
        return node.args[0]
    if _is(node, (torch.square, aten.square.default)):
        return node.args[0]
    if isinstance(node, torch.fx.Node) and node.op == "call_method" and node.target == "pow" and node.args[1:] == (2,):
        return node.args[0]
    return None


def _val(node):
    meta = node.meta if isinstance(node, torch.fx.Node) else {}
    return meta.get("example_value", meta.get("val"))


def _kernels_of(down) -> str:
    """The ``kernels`` argument of an ``elas.sparse24_linear`` node (its default if absent)."""
    return down.args[3] if len(down.args) > 3 else down.kwargs.get("kernels", "auto")


def _relu_of(sp):
    """The relu node if ``sp`` = elas.sparsify24(relu(y) ** 2, mode) with a single-use square, else None."""
    sq = sp.args[0]
    relu = _is_square_of(sq)
    if relu is None or not _is_relu(relu) or len(sq.users) != 1:
        return None
    return relu


def _replace(graph, old, target, args, name: str):
    with graph.inserting_before(old):
        new = graph.call_function(target, args)
    new.meta.update(old.meta)
    old.replace_all_uses_with(new)
    graph.erase_node(old)
    counters["elas"][name] += 1
    return new


def _erase_if_unused(graph, node) -> None:
    if isinstance(node, torch.fx.Node) and not node.users:
        graph.erase_node(node)


def _drop_dense(graph) -> None:
    for node in list(graph.find_nodes(op="call_function", target=elas.sparsify24.default)):
        if node.args[1] == "dense":
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
            counters["elas"]["dense_sparsify24_removed"] += 1
    for node in list(graph.find_nodes(op="call_function", target=elas.sparse24_linear.default)):
        if node.args[2] == "dense":
            _replace(graph, node, torch._C._nn.linear, (node.args[0], node.args[1]), "dense_sparse24_linear_to_linear")
    for node in list(graph.find_nodes(op="call_function", target=elas.tokens24_up_linear.default)):
        if node.args[3] == "dense":
            _replace(graph, node, torch._C._nn.linear, tuple(node.args[:3]), "dense_tokens24_up_linear_to_linear")


def _up_linear(y):
    """(h, Uup) if ``y`` is a bias-free linear (or the ``masked-tokens24`` graph's
    elas.tokens24_up_linear) with one user, else None."""
    if len(getattr(y, "users", ())) != 1:
        return None
    if _is(y, _LINEAR) and len(y.args) == 2 and y.kwargs.get("bias") is None:
        return y.args
    if _is(y, (elas.tokens24_up_linear.default,)) and y.args[2] is None:
        return y.args[:2]
    return None


def _fuse_ffn(graph, sp) -> bool:
    """Rewrite linear -> relu² -> sparsify24 -> sparse24_linear into the fused op when a fused
    backend can run it."""
    users = list(sp.users)
    if len(users) != 1 or not _is(users[0], (elas.sparse24_linear.default,)) or users[0].args[0] is not sp:
        return False
    down = users[0]
    relu = _relu_of(sp)
    if relu is None or len(relu.users) != 1:
        return False
    y = relu.args[0]
    up = _up_linear(y)
    if up is None:
        return False
    h, w_up_u = up
    w_down_v, mode, kernels = down.args[1], down.args[2], _kernels_of(down)
    tokens24_args = tuple(down.args[4:5])  # a masked-tokens24 graph's wgrad_dense_fraction
    vals = [_val(n) for n in (y, w_up_u, w_down_v)]
    if any(v is None for v in vals):
        return False
    y_val, u_val, v_val = vals
    tokens = y_val.numel() // y_val.shape[-1] if all(isinstance(n, int) for n in y_val.shape) else None
    resolution = resolve_backend(kernels, device=y_val.device, dtype=y_val.dtype, width=y_val.shape[-1],
                                 rank_in=u_val.shape[1], rank_out=v_val.shape[0], mode=mode, tokens=tokens)
    warning = fallback_warning(kernels, resolution)
    if warning is not None:
        warn_once(warning)
    if resolution.backend not in FUSED_BACKENDS:
        return False
    with graph.inserting_before(down):
        fused = graph.call_function(elas.lowrank_relu2_sparse24_linear.default,
                                    (h, w_up_u, w_down_v, mode, resolution.backend, *tokens24_args))
        out = graph.call_function(operator.getitem, (fused, 0))
    out.meta.update(down.meta)
    down.replace_all_uses_with(out)
    for node in (down, sp, sp.args[0], relu, y):
        graph.erase_node(node)
    counters["elas"][f"lowrank_relu2_sparse24_linear_{resolution.backend}"] += 1
    return True


def fuse_relu2_sparsify(graph, name: str) -> None:
    for sp in list(graph.find_nodes(op="call_function", target=elas.sparsify24.default)):
        relu = _relu_of(sp)
        if relu is None:
            continue
        y = relu.args[0]
        sq = sp.args[0]
        _replace(graph, sp, elas.relu2_sparsify24.default, (y, sp.args[1]), name)
        graph.erase_node(sq)
        _erase_if_unused(graph, relu)


def pre_grad_rewrite(graph: torch.fx.Graph) -> None:
    _drop_dense(graph)
    for sp in list(graph.find_nodes(op="call_function", target=elas.sparsify24.default)):
        _fuse_ffn(graph, sp)
    fuse_relu2_sparsify(graph, "relu2_sparsify24_fused_pre_grad")


def post_grad_rewrite(graph: torch.fx.Graph) -> None:
    fuse_relu2_sparsify(graph, "relu2_sparsify24_fused_post_grad")
