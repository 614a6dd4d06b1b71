"""Build the ELAS replacement of one matched MLP as a readable FX GraphModule.

``print(module.code)`` of the result shows, in order: the low-rank up projection (V then U),
the squared ReLU, ``torch.ops.elas.sparsify24``, the down projection's V factor as
``torch.ops.elas.sparse24_linear`` and its U factor. The 2:4 step reads the module attribute
``sparsity_mode`` ("dense" during the warm-up, then "masked" or "ste"), so switching costs
torch.compile one recompile.
"""
from __future__ import annotations

import operator
import warnings

import torch
import torch.fx
import torch.nn as nn
import torch.nn.functional as F

import elas_compile.ops  # noqa: F401  (registers torch.ops.elas)
from elas_compile.config import ELASConfig
from elas_compile.lowrank import LowRankLinear, init_factors, svd_factors
from elas_compile.passes.model.match_mlp import MLPMatch


class ELASMLP(torch.fx.GraphModule):
    """A squared-ReLU, low-rank, 2:4-sparse MLP made by :func:`elas_compile.apply`.

    Attributes: ``up_proj`` / ``down_proj`` (LowRankLinear holders of the factors),
    ``sparsity_mode`` (str), ``kernels`` (``ELASConfig.kernels``: the backend request the compiler
    pass resolves), ``elas_info`` (what was replaced: for ``explain``).
    """


def _call(graph: torch.fx.Graph, target, args, name: str) -> torch.fx.Node:
    return graph.create_node("call_function", target, args, name=name)


def _lowrank_call(graph: torch.fx.Graph, name: str, form: str, first_factor):
    """Emit U·(σ)(V·x) where V·x is produced by ``first_factor(v_weight_node)``."""
    v = graph.get_attr(f"{name}.v")
    h = first_factor(v)
    if form == "cola":
        h = _call(graph, F.silu, (h,), f"{name}_silu")
    u = graph.get_attr(f"{name}.u")
    return _call(graph, F.linear, (h, u), name)


def build_graph(form: str, sparsity: bool) -> torch.fx.Graph:
    g = torch.fx.Graph()
    x = g.placeholder("x")
    up = _lowrank_call(g, "up_proj", form, lambda v: _call(g, F.linear, (x, v), "up_proj_vx"))
    relu = _call(g, torch.relu, (up,), "relu")
    act = _call(g, operator.pow, (relu, 2), "relu_squared")
    if sparsity:
        mode = g.get_attr("sparsity_mode")
        kernels = g.get_attr("kernels")
        act = _call(g, torch.ops.elas.sparsify24.default, (act, mode), "sparse_act")
        sparse_in = act
        first = lambda v: _call(g, torch.ops.elas.sparse24_linear.default, (sparse_in, v, mode, kernels),  # noqa: E731
                                "down_proj_vx")
    else:
        dense_in = act
        first = lambda v: _call(g, F.linear, (dense_in, v), "down_proj_vx")  # noqa: E731
    out = _lowrank_call(g, "down_proj", form, first)
    g.output(out)
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


_warned_svd = False


def build_elas_mlp(original: nn.Module, match: MLPMatch, config: ELASConfig, path: str) -> ELASMLP:
    """The ELAS module that replaces ``original`` (which is left untouched)."""
    global _warned_svd
    children = dict(original.named_children())
    w_up, w_down = children[match.up].weight, children[match.down].weight
    d, f_old = match.hidden, match.intermediate
    f_new = config.ffn_width(f_old)
    rank = config.rank_for(d)
    kw = dict(form=config.lowrank_form, device=w_up.device, dtype=w_up.dtype)
    root = nn.Module()
    root.up_proj = LowRankLinear(d, f_new, rank, **kw)
    root.down_proj = LowRankLinear(f_new, d, rank, **kw)
    if config.init == "svd":
        up_weight = w_up if match.kind != "fused" else w_up.chunk(2, 0)[1 - match.gate_half]
        _svd_init(root.up_proj, up_weight, rows=True)
        _svd_init(root.down_proj, w_down, rows=False)
        if not _warned_svd:
            _warned_svd = True
            warnings.warn("elas_compile: init='svd' keeps the up and down projections' leading singular "
                          "directions; the gate is dropped and the activation changes, so outputs change.")
    else:
        for lr in (root.up_proj, root.down_proj):
            init_factors(lr.u, lr.v)
    root.sparsity_mode = config.initial_mode
    root.kernels = config.kernels
    module = ELASMLP(root, build_graph(config.lowrank_form, config.sparsity), class_name="ELASMLP")
    module.up_proj, module.down_proj = root.up_proj, root.down_proj
    module.sparsity_mode = config.initial_mode
    module.kernels = config.kernels
    module.elas_backward = config.backward
    module.elas_info = {
        "path": path, "kind": match.kind, "activation": match.activation, "hidden": d,
        "intermediate": f_old, "new_intermediate": f_new, "rank": rank, "form": config.lowrank_form,
        "sparsity": config.sparsity, "bias": match.bias,
    }
    return module
