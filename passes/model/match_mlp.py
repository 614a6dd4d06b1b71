"""Find MLPs by graph structure (torch.fx), not by class name.

A candidate is any module with two or three ``nn.Linear`` children. It is traced with every
child as a leaf, and its graph must be exactly one of:

- gated:  ``down(act(gate(x)) * up(x))``        (operands of the product in either order)
- fused:  ``h = gate_up(x); a, b = h.chunk(2, -1) / h.split(F, -1); down(act(a) * b)``
- plain:  ``down(act(up(x)))``

where ``act`` is identified by what it computes (passes/activations.py). Gated and fused
MLPs need a SiLU or GELU (exact or tanh) gate.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Optional

import torch
import torch.fx
import torch.nn as nn

from elas_compile.errors import UnsupportedActivationError
from elas_compile.passes.model.activations import GATE_ACTIVATIONS, classify_node, is_mul


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
    bias: bool  # whether any original projection had a bias


class _LeafTracer(torch.fx.Tracer):
    """Treat every child module as a leaf: the candidate's own forward is what we read."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return True


def trace_children_as_leaves(module: nn.Module) -> Optional[torch.fx.GraphModule]:
    try:
        graph = _LeafTracer().trace(module)
    except Exception:  # data-dependent control flow, unsupported args, ...: not an MLP we can read
        return None
    return torch.fx.GraphModule(module, graph)


def _is_candidate(module: nn.Module) -> bool:
    n_linear = sum(isinstance(c, nn.Linear) for c in module.children())
    return n_linear in (2, 3)


def _linear_of(node, modules) -> Optional[str]:
    if isinstance(node, torch.fx.Node) and node.op == "call_module" and isinstance(modules[node.target], nn.Linear):
        return node.target
    return None


def _half_of_split(node, modules, width: int):
    """(linear name, half index) if ``node`` is getitem(i) of chunk(2, -1)/split(width//2, -1) of a linear."""
    if not (isinstance(node, torch.fx.Node) and node.op == "call_function" and node.target is operator.getitem):
        return None
    split, index = node.args
    if not isinstance(split, torch.fx.Node) or index not in (0, 1):
        return None
    if split.op == "call_method" and split.target in ("chunk", "split"):
        src, *rest = split.args
    elif split.op == "call_function" and split.target in (torch.chunk, torch.split):
        src, *rest = split.args
    else:
        return None
    name = _linear_of(src, modules)
    if name is None:
        return None
    out = modules[name].out_features
    arg = rest[0] if rest else split.kwargs.get("chunks", split.kwargs.get("split_size_or_sections"))
    dim = rest[1] if len(rest) > 1 else split.kwargs.get("dim", 0)
    halves = (split.target in ("chunk", torch.chunk) and arg == 2) or arg in (out // 2, [out // 2] * 2, (out // 2,) * 2)
    if not halves or dim != -1:  # the last dim must be split; other dims are not an MLP
        return None
    return name, index


def match_mlp(module: nn.Module, path: str) -> Optional[MLPMatch]:
    """The MLP pattern ``module`` computes, or None if it is not an MLP we recognise.

    Raises UnsupportedActivationError for a gated MLP whose gate is not SiLU/GELU.
    """
    if not _is_candidate(module):
        return None
    gm = trace_children_as_leaves(module)
    if gm is None:
        return None
    modules = dict(gm.named_modules())
    nodes = list(gm.graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    outputs = [n for n in nodes if n.op == "output"]
    if len(placeholders) != 1 or len(outputs) != 1:
        return None
    x = placeholders[0]
    out = outputs[0].args[0]
    down = _linear_of(out, modules)
    if down is None:
        return None
    inner = out.args[0]
    used = {x, out, outputs[0], inner}

    def lin_from_x(node):
        name = _linear_of(node, modules)
        return name if name is not None and node.args[0] is x else None

    def bias(*names):
        return any(modules[n].bias is not None for n in names if n)

    d, f_in = modules[down].out_features, modules[down].in_features
    if is_mul(inner) and len(inner.args) == 2:
        a, b = inner.args
        for act_node, other in ((a, b), (b, a)):
            if not isinstance(act_node, torch.fx.Node) or len(act_node.args) < 1:
                continue
            act = classify_node(act_node, modules)
            if act is None:
                continue
            gate_src = act_node.args[0]
            gate, up = lin_from_x(gate_src), lin_from_x(other)
            if gate and up and gate != up:
                kind = dict(kind="gated", gate=gate, up=up, gate_half=None)
                used |= {act_node, gate_src, other}
            else:
                g_half = _half_of_split(gate_src, modules, 2 * f_in)
                u_half = _half_of_split(other, modules, 2 * f_in)
                if not (g_half and u_half and g_half[0] == u_half[0] and g_half[1] != u_half[1]):
                    continue
                fused = g_half[0]
                if gm.graph.find_nodes(op="call_module", target=fused)[0].args[0] is not x:
                    continue
                kind = dict(kind="fused", gate=None, up=fused, gate_half=g_half[1])
                split = gate_src.args[0]
                used |= {act_node, gate_src, other, split, split.args[0]}
            if act not in GATE_ACTIVATIONS:
                raise UnsupportedActivationError(
                    f"module '{path}' is a gated MLP with a '{act}' gate; elas_compile supports SiLU and GELU "
                    f"(exact or tanh) gates. Skip it with apply(..., filter_fn=lambda mod, fqn: fqn != '{path}')."
                )
            if len(used) != len(nodes):
                return None  # extra computation we would drop: not a plain MLP
            up_out = modules[kind["up"]].out_features // (2 if kind["kind"] == "fused" else 1)
            if up_out != f_in or modules[kind["up"]].in_features != d:
                return None
            return MLPMatch(activation=act, hidden=d, intermediate=f_in, down=down,
                            bias=bias(down, kind["up"], kind["gate"]), **kind)
        return None
    act = classify_node(inner, modules) if isinstance(inner, torch.fx.Node) and inner.args else None
    if act is None:
        return None
    up = lin_from_x(inner.args[0])
    used |= {inner.args[0]}
    if up is None or len(used) != len(nodes) or modules[up].out_features != f_in or modules[up].in_features != d:
        return None
    if act == "unknown":
        raise UnsupportedActivationError(
            f"module '{path}' looks like an MLP down(act(up(x))) but its activation is not one elas_compile "
            f"recognises. Skip it with apply(..., filter_fn=lambda mod, fqn: fqn != '{path}')."
        )
    return MLPMatch(kind="plain", activation=act, hidden=d, intermediate=f_in, up=up, down=down,
                    gate=None, gate_half=None, bias=bias(up, down))
