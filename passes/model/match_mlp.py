"""Find MLPs by graph structure (torch.fx), not by class name.

A module looks like an MLP when two or three of its children are projections (``nn.Linear`` or
transformers' ``Conv1D``) of which one maps d -> F (or 2F) and another F -> d. It is traced with
every child as a leaf (leaving no state behind: passes/model/trace.py), and its graph must be one of

- gated:  ``down(act(gate(x)) * up(x))``        (operands of the product in either order)
- fused:  ``h = gate_up(x); a, b = h.chunk(2, k) / h.split(F, k); down(act(a) * b)``
- plain:  ``down(act(up(x)))``

with dropout allowed on the input, before ``down`` and after it. ``act`` is identified by what it
computes (passes/model/activations.py): a gate must be SiLU or GELU (exact or tanh); a plain
MLP's activation may be any elementwise function, since ReLU² replaces it. Anything else is
returned as a :class:`Skip` with the reason in words, for ``apply``'s summary.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Optional, Tuple, Union

import torch
import torch.fx
import torch.nn as nn

from elas_compile.passes.model.activations import GATE_ACTIVATIONS, classify_node, dropout_p, is_dropout, is_mul
from elas_compile.passes.model.trace import is_projection, projection_shape, trace_children_as_leaves

WHERE = {"input": "on the input", "hidden": "before the down projection", "output": "after the down projection"}


@dataclass(frozen=True)
class MLPMatch:
    """What the matcher found in one MLP module."""

    kind: str  # "gated" | "fused" | "plain"
    activation: str
    hidden: int  # input and output features (d)
    intermediate: int  # original intermediate width (F)
    up: str  # child name of the up (or fused gate-up) projection
    down: str
    gate: Optional[str]  # child name of the gate projection (gated kind only)
    gate_half: Optional[int]  # which half of the fused projection is the gate (fused kind only)
    bias_up: bool = False  # the up projection (or the up half of the fused one) has a bias
    bias_down: bool = False
    bias_gate: bool = False
    dropouts: Tuple[Tuple[str, float], ...] = ()  # (where, p) of each dropout with p > 0, kept
    notes: Tuple[str, ...] = ()  # what the rewrite drops beyond the gate and the activation


@dataclass(frozen=True)
class Skip:
    """A module that looks like an MLP and is left alone, with the reason in words.
    ``gate_activation`` is set for a gated MLP with an unsupported gate, which ``apply`` refuses."""

    reason: str
    gate_activation: Optional[str] = None


class _NoMatch(Exception):
    pass


def _projections(module: nn.Module) -> dict[str, Tuple[int, int]]:
    return {n: projection_shape(c) for n, c in module.named_children() if is_projection(c)}


def looks_like_mlp(module: nn.Module) -> bool:
    """Two or three projection children, one d -> F (or 2F) and another F -> d."""
    shapes = _projections(module)
    if len(shapes) not in (2, 3):
        return False
    return any(a != b and ia == ob and oa in (ib, 2 * ib) for a, (ia, oa) in shapes.items()
               for b, (ib, ob) in shapes.items())


def _describe(node: torch.fx.Node, modules) -> str:
    if node.op == "call_module":
        return f"module '{node.target}' ({type(modules[node.target]).__name__})"
    if node.op == "call_method":
        return f".{node.target}()"
    if node.op == "get_attr":
        return f"attribute '{node.target}'"
    return getattr(node.target, "__name__", str(node.target))


class _Reader:
    """Walks the traced graph from the output back to the input, marking what it explains."""

    def __init__(self, gm: torch.fx.GraphModule, training: bool) -> None:
        self.modules = dict(gm.named_modules())
        self.training = training
        self.used: set = set()
        self.dropouts: list = []  # (where, p)

    def projection(self, node) -> Optional[str]:
        if isinstance(node, torch.fx.Node) and node.op == "call_module" and is_projection(self.modules[node.target]):
            return node.target
        return None

    def skip_dropouts(self, node, where: str):
        while isinstance(node, torch.fx.Node) and is_dropout(node, self.modules):
            p = dropout_p(node, self.modules, self.training)
            if p is None:
                raise _NoMatch(f"a dropout {WHERE[where]} whose probability is not a constant")
            self.used.add(node)
            self.dropouts.append((where, p))
            node = node.args[0]
        return node

    def split_half(self, node) -> Optional[Tuple[torch.fx.Node, int, int]]:
        """(projection node, half index, dim) if ``node`` is one half of a chunk(2)/split(F) of a projection."""
        if not (isinstance(node, torch.fx.Node) and node.op == "call_function" and node.target is operator.getitem):
            return None
        split, index = node.args
        if not isinstance(split, torch.fx.Node) or index not in (0, 1) or not (
                (split.op == "call_method" and split.target in ("chunk", "split"))
                or (split.op == "call_function" and split.target in (torch.chunk, torch.split))):
            return None
        src, *rest = split.args
        if self.projection(src) is None:
            return None
        out = projection_shape(self.modules[src.target])[1]
        arg = rest[0] if rest else split.kwargs.get("chunks", split.kwargs.get("split_size_or_sections"))
        dim = rest[1] if len(rest) > 1 else split.kwargs.get("dim", 0)
        chunked = split.target in ("chunk", torch.chunk) and arg == 2
        if not (chunked or arg in (out // 2, [out // 2] * 2, (out // 2,) * 2)):
            return None
        if dim == 0 or not isinstance(dim, int):  # dim 0 is tokens or batch, never the features
            raise _NoMatch(f"its fused projection '{src.target}' is split on dim {dim}, not on the features")
        self.used |= {node, split}
        return src, index, dim


def _read(gm: torch.fx.GraphModule, training: bool, path: str) -> Union[MLPMatch, Skip]:
    r = _Reader(gm, training)
    nodes = [n for n in gm.graph.nodes]
    inputs = [n for n in nodes if n.op == "placeholder" and n.users]
    if len(inputs) != 1:
        names = ", ".join(n.target for n in inputs)
        raise _NoMatch(f"its forward takes {len(inputs)} inputs ({names}); an MLP takes one")
    x = inputs[0]
    out = nodes[-1].args[0]
    down_node = r.skip_dropouts(out, "output")
    down = r.projection(down_node)
    if down is None:
        what = _describe(down_node, r.modules) if isinstance(down_node, torch.fx.Node) else type(down_node).__name__
        raise _NoMatch(f"its output is not a projection's but {what}'s")
    mid = r.skip_dropouts(down_node.args[0], "hidden")
    r.used |= {x, down_node, mid}

    def reads_input(node) -> bool:
        src = node.args[0]
        if src is x:
            return True
        if isinstance(src, torch.fx.Node) and is_dropout(src, r.modules) and src.args[0] is x:
            if src not in r.used:
                r.skip_dropouts(src, "input")
            return True
        return False

    kind = None
    if is_mul(mid) and len(mid.args) == 2:
        for act_node, other in (mid.args, mid.args[::-1]):
            if not isinstance(act_node, torch.fx.Node) or not act_node.args or act_node.op == "placeholder":
                continue
            act = classify_node(act_node, r.modules)
            if act is None:
                continue
            gate_src = act_node.args[0]
            gate, up = r.projection(gate_src), r.projection(other)
            if gate and up and gate != up and reads_input(gate_src) and reads_input(other):
                kind = dict(kind="gated", gate=gate, up=up, gate_half=None)
                r.used |= {act_node, gate_src, other}
                break
            g, u = r.split_half(gate_src), r.split_half(other)
            if g and u and g[0] is u[0] and g[1] != u[1] and reads_input(g[0]):
                kind = dict(kind="fused", gate=None, up=g[0].target, gate_half=g[1])
                r.used |= {act_node, g[0]}
                break
        if kind is None:
            raise _NoMatch("it multiplies two values that are not act(gate(x)) and up(x)")
        if act not in GATE_ACTIVATIONS:
            return Skip(f"a gated MLP with a '{act}' gate", gate_activation=act)
    else:
        act = classify_node(mid, r.modules) if isinstance(mid, torch.fx.Node) and mid.args else None
        up = r.projection(mid.args[0]) if act is not None else None
        if up is None or not reads_input(mid.args[0]):
            what = _describe(mid, r.modules) if isinstance(mid, torch.fx.Node) else "its input"
            raise _NoMatch(f"the down projection reads {what}, not act(up(x)) or act(gate(x)) * up(x)")
        if act == "identity":
            raise _NoMatch("nothing between its projections: a linear bottleneck, not an MLP")
        kind = dict(kind="plain", gate=None, up=up, gate_half=None)
        r.used.add(mid.args[0])
    extra = [n for n in nodes if n not in r.used and n.op not in ("placeholder", "output")]
    if extra:
        listed = ", ".join(_describe(n, r.modules) for n in extra[:4])
        raise _NoMatch(f"it computes more than an MLP ({listed}{', ...' if len(extra) > 4 else ''}), which the "
                       "rewrite would drop")
    return _finish(r, kind, act, down, path, mid if kind["kind"] == "plain" else None)


def _finish(r: _Reader, kind: dict, act: str, down: str, path: str, act_node) -> Union[MLPMatch, Skip]:
    mods = r.modules
    f, d = projection_shape(mods[down])
    up_in, up_out = projection_shape(mods[kind["up"]])
    widths = [up_out // 2 if kind["kind"] == "fused" else up_out]
    if kind["gate"]:
        g_in, g_out = projection_shape(mods[kind["gate"]])
        widths.append(g_out)
        up_in = up_in if g_in == up_in else -1
    if up_in != d or any(w != f for w in widths):
        return Skip(f"its projections' sizes ({d} -> {widths} -> {f} -> {d}) do not chain as an MLP's")
    has_bias = lambda name: name is not None and getattr(mods[name], "bias", None) is not None  # noqa: E731
    notes = [f"dropout p=0 {WHERE[w]} dropped (the identity)" for w, p in r.dropouts if p == 0]
    bias_gate = has_bias(kind["gate"]) or (kind["kind"] == "fused" and has_bias(kind["up"]))
    if bias_gate:
        notes.append("the gate's bias goes with the gate")
    if act_node is not None and act_node.op == "call_module":
        learned = [n for n, _ in mods[act_node.target].named_parameters()]
        if learned:
            notes.append(f"activation '{act_node.target}' has learnable parameters ({', '.join(learned)}); "
                         "ReLU² has none")
    return MLPMatch(activation=act, hidden=d, intermediate=f, down=down, bias_up=has_bias(kind["up"]),
                    bias_down=has_bias(down), bias_gate=bias_gate,
                    dropouts=tuple((w, p) for w, p in r.dropouts if p > 0), notes=tuple(notes), **kind)


def match_mlp(module: nn.Module, path: str) -> Union[MLPMatch, Skip, None]:
    """The MLP pattern ``module`` computes, a :class:`Skip` with the reason when it looks like an MLP
    but is not one the rewrite can replace, or None when it does not look like an MLP at all."""
    if not looks_like_mlp(module):
        return None
    gm, why = trace_children_as_leaves(module)
    if gm is None:
        return Skip(why)
    try:
        return _read(gm, module.training, path)
    except _NoMatch as e:
        return Skip(str(e))
