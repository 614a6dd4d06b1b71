"""Find routed experts stored as stacked parameters, by their layout and what they compute.

transformers 5 keeps an MoE layer's routed experts in one module: ``gate_up_proj`` (E, 2F, d) and
``down_proj`` (E, d, F) (or transposed: (E, d, 2F) and (E, F, d)), optional ``*_bias`` (E, n),
called as ``experts(hidden_states (T, d), top_k_index (T, k), top_k_weights (T, k))`` and
computing ``sum_k w_k · down_e(act(gate_e(x)) · up_e(x))`` (``up_proj`` and ``act(up_e(x))`` for
experts without a gate); Llama 4's experts take rows already grouped by expert, as many for each
(``experts(rows)``). The layout is read from the shapes, the gate from a trace of the module's
``_apply_gate`` (passes/model/match_mlp.py's rules) or, without one, from which of the four
gate/up layouts a probe of a few tokens computes; when the weights hold values the whole function
is checked on that probe. Any other module holding stacked (3-D) weights, or
its projections as bare parameters, is reported with the reason it is left alone.
"""
from __future__ import annotations

import inspect
import operator
from dataclasses import dataclass
from typing import Optional, Tuple, Union

import torch
import torch.fx
import torch.nn as nn

from elas_compile.passes.model.activations import GATE_ACTIVATIONS, KNOWN, classify_module, classify_node, is_mul
from elas_compile.passes.model.match_mlp import Skip
from elas_compile.passes.model.trace import is_projection, preserved, trace_children_as_leaves


@dataclass(frozen=True)
class ExpertsMatch:
    kind: str  # "gated" | "plain"
    activation: str
    num_experts: int
    hidden: int  # d
    intermediate: int  # F, per expert
    transposed: bool  # weights stored (E, in, out)
    gate_half: Optional[int]  # which half of gate_up is the gate (gated)
    interleaved: bool  # gate and up columns alternate (gate, up, gate, up, ...)
    dispatch: str  # "routed" (hidden_states, top_k_index, top_k_weights) or "sorted" (rows grouped by expert)
    bias_up: bool
    bias_down: bool
    bias_gate: bool


def looks_like_experts(module: nn.Module) -> bool:
    """Direct stacked (3-D) weights, or two or more bare weight matrices and no projection child."""
    if isinstance(module, (nn.modules.conv._ConvNd, nn.Embedding, nn.EmbeddingBag)):
        return False
    params = [p for p in module.parameters(recurse=False)]
    if any(p.dim() == 3 for p in params):
        return True
    no_projection = not any(is_projection(c) for c in module.children())
    return no_projection and sum(p.dim() >= 2 for p in params) >= 2


def _layout(params: dict, module) -> Union[Tuple[str, int, int, int, bool], str]:
    """(kind, E, d, F, transposed) from the shapes, or why they do not fit."""
    down = params.get("down_proj")
    up_name = "gate_up_proj" if "gate_up_proj" in params else "up_proj"
    up = params.get(up_name)
    if down is None or up is None or up.dim() != 3 or down.dim() != 3:
        listed = ", ".join(f"{n} {list(p.shape)}" for n, p in params.items())
        return (f"it holds its weights as bare or stacked parameters ({listed}), not as nn.Linear children "
                "nor in transformers' experts layout (gate_up_proj / up_proj and down_proj, 3-D)")
    e, a, b = down.shape
    k = 2 if up_name == "gate_up_proj" else 1
    fits = {False: tuple(up.shape) == (e, k * b, a), True: tuple(up.shape) == (e, b, k * a)}
    transposed = getattr(module, "is_transposed", None)
    if k == 1 and transposed is None:
        return "its up_proj and down_proj shapes fit both layouts and it does not say which (is_transposed)"
    choices = [t for t, ok in fits.items() if ok and transposed in (None, t)]
    if len(choices) != 1:
        return f"its {up_name} {list(up.shape)} and down_proj {list(down.shape)} do not chain as experts"
    t = choices[0]
    d, f = (b, a) if t else (a, b)
    return ("gated" if k == 2 else "plain", e, d, f, t)


class _Gate(nn.Module):
    def __init__(self, experts: nn.Module) -> None:
        super().__init__()
        self.experts = experts

    def forward(self, h):
        return self.experts._apply_gate(h)


def _half(node, h) -> Optional[Tuple[int, bool]]:
    """(half index, interleaved) if ``node`` is one half of ``h`` along its last dim:
    ``h.chunk(2, dim=-1)[i]`` or ``h[..., i::2]``."""
    if not (isinstance(node, torch.fx.Node) and node.op == "call_function" and node.target is operator.getitem):
        return None
    src, index = node.args
    if src is h and isinstance(index, tuple) and len(index) == 2 and index[0] is Ellipsis and isinstance(
            index[1], slice):
        s = index[1]
        if s.step == 2 and s.stop is None and (s.start or 0) in (0, 1):
            return s.start or 0, True
        return None
    if not (isinstance(src, torch.fx.Node) and src.target in ("chunk", torch.chunk) and src.args[0] is h):
        return None
    chunks = src.args[1] if len(src.args) > 1 else src.kwargs.get("chunks")
    dim = src.args[2] if len(src.args) > 2 else src.kwargs.get("dim", 0)
    return (index, False) if chunks == 2 and dim == -1 and index in (0, 1) else None


def _read_gate(module: nn.Module) -> Union[Tuple[str, int, bool], Skip, None]:
    """(activation, gate half, interleaved) of ``module._apply_gate``, why it cannot be read, or
    None when the module has no ``_apply_gate`` (then the probe tells)."""
    if not callable(getattr(module, "_apply_gate", None)):
        return None
    with preserved(module):
        gm, why = trace_children_as_leaves(_Gate(module))
    if gm is None:
        return Skip(f"its _apply_gate: {why}")
    nodes = list(gm.graph.nodes)
    h, out = nodes[0], nodes[-1].args[0]
    modules = dict(gm.named_modules())
    if is_mul(out) and len(out.args) == 2:
        for act_node, other in (out.args, out.args[::-1]):
            if not isinstance(act_node, torch.fx.Node) or not act_node.args:
                continue
            g, u = _half(act_node.args[0], h), _half(other, h)
            act = classify_node(act_node, modules) if g and u else None
            used = {h, out, act_node, act_node.args[0], other, act_node.args[0].args[0], other.args[0], nodes[-1]}
            if act is not None and g[1] == u[1] and g[0] != u[0] and len(used) == len(nodes):
                return act, g[0], g[1]
    ops = ", ".join(str(getattr(n.target, "__name__", n.target)) for n in nodes[1:-1])
    return Skip(f"its gate computes {ops}, not act(gate) * up of the two halves of gate_up_proj's output")


def _expected(m: ExpertsMatch, params: dict, x: torch.Tensor, experts: list, weights: list, act) -> torch.Tensor:
    """What experts of ``m``'s description give for rows ``x`` routed to ``experts`` with ``weights``."""
    w_up = params["gate_up_proj" if m.kind == "gated" else "up_proj"]
    rows = []
    for t, e in enumerate(experts):
        y = x[t] @ (w_up[e] if m.transposed else w_up[e].t())
        if m.bias_up:
            y = y + params["gate_up_proj_bias" if m.kind == "gated" else "up_proj_bias"][e]
        if m.kind == "gated":
            halves = (y[0::2], y[1::2]) if m.interleaved else y.chunk(2)
            y = act(halves[m.gate_half]) * halves[1 - m.gate_half]
        else:
            y = act(y)
        y = y @ (params["down_proj"][e] if m.transposed else params["down_proj"][e].t())
        if m.bias_down:
            y = y + params["down_proj_bias"][e]
        rows.append(y * weights[t])
    return torch.stack(rows)


def _probe(module: nn.Module, candidates: list, params: dict) -> Union[ExpertsMatch, str]:
    """The first of ``candidates`` (ExpertsMatch) that ``module`` computes on a probe, else why none."""
    m = candidates[0]
    w_up = params["gate_up_proj" if m.kind == "gated" else "up_proj"]
    gen = torch.Generator().manual_seed(0)
    if m.dispatch == "routed":  # two tokens, to the first and the last expert
        x = torch.randn(2, m.hidden, generator=gen).to(w_up)
        experts, weights = [0, m.num_experts - 1], [1.0, 0.5]
        args = (x, torch.tensor([[0], [m.num_experts - 1]], device=w_up.device), torch.tensor([[1.0], [0.5]]).to(w_up))
    else:  # rows already sorted by expert, two per expert
        x = torch.randn(2 * m.num_experts, m.hidden, generator=gen).to(w_up)
        experts, weights = [e for e in range(m.num_experts) for _ in range(2)], [1.0] * (2 * m.num_experts)
        args = (x,)
    with torch.no_grad(), preserved(module):
        got = module(*args)
        act = KNOWN.get(m.activation) or module.act_fn
        wants = [_expected(c, params, x, experts, weights, act) for c in candidates]
    if not isinstance(got, torch.Tensor) or got.shape != wants[0].shape:
        call = "(hidden_states, top_k_index, top_k_weights)" if len(args) == 3 else "(hidden_states)"
        return f"called as experts{call} it returns {type(got).__name__}"
    tol = 1e-4 if w_up.dtype == torch.float32 else 3e-2
    errs = [(got.float() - w.float()).abs().max().item() for w in wants]
    for c, err, want in zip(candidates, errs, wants):
        if err <= tol * max(1.0, want.abs().max().item()):
            return c
    what = "act(gate_e(x)) · up_e(x)" if m.kind == "gated" else "act(up_e(x))"
    return f"on a probe it does not compute sum_k w_k · down_e({what}) (max |diff| {min(errs):.3g})"


def _dispatch(module: nn.Module) -> Optional[str]:
    """"routed": forward(hidden_states, top_k_index, top_k_weights); "sorted": forward(rows) with the
    rows already grouped by expert, as many for each (Llama 4)."""
    params = list(inspect.signature(module.forward).parameters.values())
    required = [p for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(params) >= 3 and len(required) <= 3:
        return "routed"
    return "sorted" if len(params) == 1 == len(required) else None


def match_experts(module: nn.Module, path: str) -> Union[ExpertsMatch, Skip, None]:
    """The routed experts ``module`` holds, a :class:`Skip` with the reason, or None when it does
    not look like experts."""
    if not looks_like_experts(module):
        return None
    params = dict(module.named_parameters(recurse=False))
    layout = _layout(params, module)
    if isinstance(layout, str):
        return Skip(layout)
    kind, e, d, f, transposed = layout
    dispatch = _dispatch(module)
    if dispatch is None:
        return Skip("its forward is neither experts(hidden_states, top_k_index, top_k_weights) nor experts(rows)")
    act_fn = getattr(module, "act_fn", None)
    gate = _read_gate(module) if kind == "gated" else None
    if isinstance(gate, Skip):
        return gate
    act = gate[0] if gate else classify_module(act_fn) if isinstance(act_fn, nn.Module) else None
    if act is None or act == "identity":
        return Skip("its act_fn is not an elementwise activation")
    if kind == "gated" and act not in GATE_ACTIVATIONS:
        return Skip(f"gated experts with a '{act}' gate", gate_activation=act)
    if kind == "plain":
        layouts = [(None, False)]
    else:  # (gate half, interleaved): read from _apply_gate, else each one tried on the probe
        layouts = [(gate[1], gate[2])] if gate else [(h, i) for i in (False, True) for h in (0, 1)]
    up_bias = ("gate_up_proj_bias" if kind == "gated" else "up_proj_bias") in params
    candidates = [ExpertsMatch(kind=kind, activation=act, num_experts=e, hidden=d, intermediate=f,
                               transposed=transposed, gate_half=h, interleaved=i, dispatch=dispatch, bias_up=up_bias,
                               bias_down="down_proj_bias" in params, bias_gate=kind == "gated" and up_bias)
                  for h, i in layouts]
    if any(p.is_meta for p in params.values()):
        if len(candidates) > 1:
            return Skip("how its gate and up combine is read from values, and its weights are on the meta device")
        return candidates[0]
    found = _probe(module, candidates, params)
    return Skip(found) if isinstance(found, str) else found
