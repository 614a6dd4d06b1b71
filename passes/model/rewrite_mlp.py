"""Build the ELAS replacement of one matched MLP as a readable FX GraphModule.

``print(module.code)`` of the result shows, in order: the low-rank up projection (V then U),
the squared ReLU, ``torch.ops.elas.sparsify24``, the down projection's V factor as
``torch.ops.elas.sparse24_linear`` and its U factor. The 2:4 step reads the module attribute
``sparsity_mode`` ("dense" during the warm-up, then "masked" or "ste"), so switching costs
torch.compile one recompile.
"""
from __future__ import annotations

import operator
from typing import Optional

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F

import elas_compile.ops  # noqa: F401  (registers torch.ops.elas)
from elas_compile.config import ELASConfig
from elas_compile.diagnostics import warn_once
from elas_compile.lowrank import LowRankLinear, svd_factors
from elas_compile.modes import Mode
from elas_compile.passes.model.match_mlp import MLPMatch
from elas_compile.passes.model.trace import projection_bias, projection_weight
from elas_compile.sparsity_state import SparsityState


class ELASMLP(SparsityState, torch.fx.GraphModule):
    """A squared-ReLU, low-rank, 2:4-sparse MLP made by :func:`elas_compile.apply`.

    Attributes: ``up_proj`` / ``down_proj`` (LowRankLinear holders of the factors),
    ``sparsity_mode`` (str), ``kernels`` (``ELASConfig.kernels``: the backend request the compiler
    pass resolves), ``elas_info`` (what was replaced: for ``explain``). The state dict carries
    ``sparsity_mode`` and ``elas_backward`` (:class:`~elas_compile.sparsity_state.SparsityState`).
    """

    def reset_parameters(self) -> None:
        """Re-draw both factors' random init (what ``apply`` gave them): the step after
        ``to_empty`` of a model built on the meta device."""
        self.up_proj.reset_parameters()
        self.down_proj.reset_parameters()

    def init_weights(self, *args, **kwargs) -> None:
        """torchtitan's per-module init hook (its blocks call ``feed_forward.init_weights(std)``):
        the factors get the ELAS init of :meth:`reset_parameters`; the dense weights' std is not
        the right scale for a factor, so it is not used."""
        self.reset_parameters()

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            info = self.__dict__.get("elas_info")
            if info is None or name.startswith("_"):
                raise
        # code written for the original MLP (an init that reads feed_forward.w1, a TP plan, ...)
        raise AttributeError(
            f"'ELASMLP' object has no attribute '{name}': '{info['path']}' was rewritten by "
            "elas_compile.apply, which replaced the original projections with the low-rank factors "
            "up_proj and down_proj. Run code that reads the original MLP (e.g. OLMo-core's "
            "init_weights, which reads feed_forward.w1) before apply; ELAS modules initialise "
            "themselves (reset_parameters)."
        ) from None


def _call(graph: torch.fx.Graph, target, args, name: str) -> torch.fx.Node:
    return graph.create_node("call_function", target, args, name=name)


def _lowrank_call(graph: torch.fx.Graph, name: str, form: str, first_factor, bias: bool = False, second_factor=None):
    """Emit U·(σ)(V·x) (+ bias) where V·x is produced by ``first_factor(v_weight_node)``; the U
    factor by ``second_factor(h, u, bias_or_None)`` when given, else ``F.linear``."""
    v = graph.get_attr(f"{name}.v")
    h = first_factor(v)
    if form == "cola":
        h = _call(graph, F.silu, (h,), f"{name}_silu")
    u = graph.get_attr(f"{name}.u")
    if second_factor is not None:
        return second_factor(h, u, graph.get_attr(f"{name}.bias") if bias else None)
    args = (h, u, graph.get_attr(f"{name}.bias")) if bias else (h, u)
    return _call(graph, F.linear, args, name)


def _dropouts(graph: torch.fx.Graph, node: torch.fx.Node, names: list) -> torch.fx.Node:
    for name in names:
        node = graph.call_module(name, (node,))
    return node


def build_graph(form: str, sparsity: bool, bias_up: bool = False, bias_down: bool = False,
                dropouts: Optional[dict] = None, wgrad_dense_fraction: Optional[float] = None) -> torch.fx.Graph:
    """The ELAS MLP's graph; ``dropouts`` maps "input" / "hidden" / "output" to the names of the
    dropout modules there (a hidden dropout acts after the 2:4 step, which zeros stay zero).
    ``wgrad_dense_fraction`` (an MLP built for backward ``masked-tokens24``): the up projection's
    U factor becomes ``elas.tokens24_up_linear`` and both weight-gradient ops get the fraction,
    so the mode's weight gradients exist on every path (eager, reference, fused)."""
    dropouts = dropouts or {}
    g = torch.fx.Graph()
    x = _dropouts(g, g.placeholder("x"), dropouts.get("input", []))
    mode = g.get_attr("sparsity_mode") if sparsity else None
    tokens24 = sparsity and wgrad_dense_fraction is not None
    up_u = (lambda h, u, b: _call(g, torch.ops.elas.tokens24_up_linear.default,  # noqa: E731
                                  (h, u, b, mode, wgrad_dense_fraction), "up_proj")) if tokens24 else None
    up = _lowrank_call(g, "up_proj", form, lambda v: _call(g, F.linear, (x, v), "up_proj_vx"), bias_up, up_u)
    relu = _call(g, torch.relu, (up,), "relu")
    act = _call(g, operator.pow, (relu, 2), "relu_squared")
    if sparsity:
        kernels = g.get_attr("kernels")
        act = _call(g, torch.ops.elas.sparsify24.default, (act, mode), "sparse_act")
        sparse_in = act = _dropouts(g, act, dropouts.get("hidden", []))
        down_args = (kernels, wgrad_dense_fraction) if tokens24 else (kernels,)
        first = lambda v: _call(g, torch.ops.elas.sparse24_linear.default, (sparse_in, v, mode, *down_args),  # noqa: E731
                                "down_proj_vx")
    else:
        dense_in = _dropouts(g, act, dropouts.get("hidden", []))
        first = lambda v: _call(g, F.linear, (dense_in, v), "down_proj_vx")  # noqa: E731
    out = _lowrank_call(g, "down_proj", form, first, bias_down)
    g.output(_dropouts(g, out, dropouts.get("output", [])))
    return g


def _svd_init(new: LowRankLinear, weight: torch.Tensor, rows: bool) -> None:
    """SVD-init the factors from ``weight``; features beyond the original width stay random."""
    fu, fv = svd_factors(weight, new.rank)
    with torch.no_grad():
        if rows:  # up projection: output features are the intermediate ones
            n = min(fu.shape[0], new.u.shape[0])
            new.u[:n].copy_(fu[:n])
            new.v.copy_(fv)
        else:  # down projection: input features are the intermediate ones
            n = min(fv.shape[1], new.v.shape[1])
            new.u.copy_(fu)
            new.v[:, :n].copy_(fv[:, :n])


def fused_kernel_blockers(match: MLPMatch) -> list[str]:
    """Why the fused 2:4 kernel (elas::lowrank_relu2_sparse24_linear: no bias, the 2:4 output read
    by the down projection alone) cannot run this MLP; the reference 2:4 ops run it instead."""
    blockers = []
    if match.bias_up:
        blockers.append("the up projection has a bias (the fused op takes none)")
    if any(where == "hidden" for where, _ in match.dropouts):
        blockers.append("a dropout sits between the 2:4 step and the down projection")
    return blockers


def _copy_bias(new: LowRankLinear, bias) -> None:
    """The original bias into ``new``'s; entries beyond the original width stay zero."""
    if bias is not None:
        with torch.no_grad():
            n = min(bias.shape[0], new.bias.shape[0])
            new.bias[:n].copy_(bias[:n])


def build_elas_mlp(original: nn.Module, match: MLPMatch, config: ELASConfig, path: str) -> ELASMLP:
    """The ELAS module that replaces ``original`` (which is left untouched)."""
    children = dict(original.named_children())
    up_mod, down_mod = children[match.up], children[match.down]
    w_up, w_down = projection_weight(up_mod), projection_weight(down_mod)
    b_up, b_down = projection_bias(up_mod) if match.bias_up else None, projection_bias(down_mod)
    if match.kind == "fused":  # the up half of the fused projection
        w_up = w_up.chunk(2, 0)[1 - match.gate_half]
        b_up = b_up.chunk(2, 0)[1 - match.gate_half] if b_up is not None else None
    d, f_old = match.hidden, match.intermediate
    f_new = config.ffn_width(f_old, match.kind)
    rank = config.rank_for(d)
    kw = dict(form=config.lowrank_form, device=w_up.device, dtype=w_up.dtype)
    root = nn.Module()
    root.up_proj = LowRankLinear(d, f_new, rank, bias=match.bias_up, **kw)
    root.down_proj = LowRankLinear(f_new, d, rank, bias=match.bias_down, **kw)
    if config.init == "svd":
        _svd_init(root.up_proj, w_up, rows=True)
        _svd_init(root.down_proj, w_down, rows=False)
        warn_once("init='svd' keeps the up and down projections' leading singular directions; the gate is "
                  "dropped and the activation changes, so outputs change.")
    _copy_bias(root.up_proj, b_up)
    _copy_bias(root.down_proj, b_down)
    dropouts: dict = {}
    for i, (where, p) in enumerate(match.dropouts):
        name = f"{where}_dropout_{i}"
        setattr(root, name, nn.Dropout(p))
        dropouts.setdefault(where, []).append(name)
    root.sparsity_mode = config.initial_mode
    root.kernels = config.kernels
    tokens24 = config.wgrad_dense_fraction if config.backward == Mode.MASKED_TOKENS24.value else None
    graph = build_graph(config.lowrank_form, config.sparsity, match.bias_up, match.bias_down, dropouts, tokens24)
    module = ELASMLP(root, graph, class_name="ELASMLP")
    module.up_proj, module.down_proj = root.up_proj, root.down_proj
    module.sparsity_mode = config.initial_mode
    module.kernels = config.kernels
    module.elas_backward = config.backward
    module.elas_info = {
        "path": path, "kind": match.kind, "activation": match.activation, "hidden": d,
        "intermediate": f_old, "new_intermediate": f_new, "rank": rank, "form": config.lowrank_form,
        "sparsity": config.sparsity, "bias_up": match.bias_up, "bias_down": match.bias_down,
        "bias_gate": match.bias_gate, "dropouts": match.dropouts, "notes": match.notes,
        "fused_kernel_blockers": fused_kernel_blockers(match) if config.sparsity else [],
        "wgrad_dense_fraction": tokens24,  # None unless built for backward masked-tokens24
    }
    return module
