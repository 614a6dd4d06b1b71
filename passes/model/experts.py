"""ELAS routed experts: each expert a low-rank squared-ReLU MLP with 2:4 activations.

Replaces a transformers-style experts module (passes/model/match_experts.py) and is called the
same way: ``experts(hidden_states (T, d), top_k_index (T, k), top_k_weights (T, k)) -> (T, d)``
(the (token, expert) pairs are sorted by expert), or, for Llama 4's, ``experts(rows (E·n, d))``
with the rows already grouped by expert. Every projection runs as one ``elas::grouped_linear``
(a per-expert loop in the reference). The 2:4 step acts per row along
the expert's width, as in a dense ELAS MLP: each row is one token routed to one expert, so the
pattern of every token is its own whatever the routing.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

import elas_compile.ops  # noqa: F401  (registers torch.ops.elas.sparsify24)
from elas_compile.config import ELASConfig
from elas_compile.diagnostics import warn_once
from elas_compile.lowrank import init_factors, svd_factors
from elas_compile.modes import Mode
from elas_compile.passes.model.grouped_linear import grouped_linear
from elas_compile.passes.model.match_experts import ExpertsMatch
from elas_compile.sparsity_state import SparsityState


class StackedLowRank(nn.Module):
    """E low-rank linears: expert e computes ``U[e] (σ)(V[e] x) (+ bias[e])``. Parameters ``u``
    (E, out, r), ``v`` (E, r, in) and ``bias`` (E, out) or None."""

    def __init__(self, num_experts: int, in_features: int, out_features: int, rank: int, form: str = "plain",
                 bias: bool = False, device=None, dtype=None) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.num_experts, self.in_features, self.out_features, self.rank, self.form = (
            num_experts, in_features, out_features, rank, form)
        self.u = nn.Parameter(torch.empty(num_experts, out_features, rank, **kw))
        self.v = nn.Parameter(torch.empty(num_experts, rank, in_features, **kw))
        self.bias = nn.Parameter(torch.empty(num_experts, out_features, **kw)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Each expert's factors drawn like a LowRankLinear's (:func:`init_factors`); biases zero."""
        for e in range(self.num_experts):
            init_factors(self.u[e], self.v[e])
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor, counts: torch.Tensor, expert_ids: torch.Tensor) -> torch.Tensor:
        h = grouped_linear(x, self.v, counts)
        if self.form == "cola":
            h = F.silu(h)
        y = grouped_linear(h, self.u, counts)
        return y if self.bias is None else y + self.bias[expert_ids]

    def extra_repr(self) -> str:
        return (f"num_experts={self.num_experts}, in_features={self.in_features}, out_features={self.out_features}, "
                f"rank={self.rank}, form={self.form}, bias={self.bias is not None}")


class ELASExperts(SparsityState, nn.Module):
    """Routed experts rewritten by :func:`elas_compile.apply`: ``down(sparsify24(relu(up(x)) ** 2))``
    per expert, ``up`` / ``down`` stacked low-rank factors. Attributes like :class:`ELASMLP`'s:
    ``sparsity_mode``, ``elas_backward``, ``kernels``, ``elas_info``; :class:`SparsitySchedule`
    switches them with the MLPs."""

    def __init__(self, num_experts: int, hidden: int, width: int, rank: int, config: ELASConfig,
                 bias_up: bool, bias_down: bool, dispatch: str = "routed", device=None, dtype=None) -> None:
        super().__init__()
        self.dispatch = dispatch
        kw = dict(form=config.lowrank_form, device=device, dtype=dtype)
        self.num_experts = num_experts
        self.up_proj = StackedLowRank(num_experts, hidden, width, rank, bias=bias_up, **kw)
        self.down_proj = StackedLowRank(num_experts, width, hidden, rank, bias=bias_down, **kw)
        self.sparsity = config.sparsity
        self.sparsity_mode = config.initial_mode
        self.elas_backward = config.backward
        self.kernels = config.kernels
        if config.backward == Mode.MASKED_TOKENS24.value:
            warn_once("routed experts compute the exact masked weight gradients: backward='masked-tokens24' makes "
                      "the weight gradients 2:4 along tokens in the dense MLPs only (ELASConfig(experts='keep') "
                      "leaves the experts alone)")

    def reset_parameters(self) -> None:
        self.up_proj.reset_parameters()
        self.down_proj.reset_parameters()

    def _experts(self, x: torch.Tensor, counts: torch.Tensor, expert_ids: torch.Tensor) -> torch.Tensor:
        act = torch.relu(self.up_proj(x.to(self.up_proj.v.dtype), counts, expert_ids)) ** 2
        if self.sparsity:
            act = torch.ops.elas.sparsify24(act, self.sparsity_mode)
        return self.down_proj(act, counts, expert_ids)

    def forward(self, hidden_states: torch.Tensor, top_k_index: Optional[torch.Tensor] = None,
                top_k_weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.dispatch == "sorted":
            rows = hidden_states.shape[0] // self.num_experts
            expert_ids = torch.arange(self.num_experts, device=hidden_states.device).repeat_interleave(rows)
            counts = torch.full((self.num_experts,), rows, dtype=torch.int64, device=hidden_states.device)
            return self._experts(hidden_states, counts, expert_ids).to(hidden_states.dtype)
        tokens, k = top_k_index.shape
        expert_ids, order = torch.sort(top_k_index.reshape(-1), stable=True)
        counts = torch.zeros(self.num_experts, dtype=torch.int64, device=expert_ids.device)
        counts = counts.scatter_add(0, expert_ids, torch.ones_like(expert_ids))
        out = self._experts(hidden_states[order // k], counts, expert_ids)
        out = out * top_k_weights.reshape(-1)[order].unsqueeze(-1).to(out.dtype)
        unsorted = torch.zeros_like(out).index_copy(0, order, out)
        return unsorted.view(tokens, k, -1).sum(1).to(hidden_states.dtype)


def _svd_init(new: StackedLowRank, weights: torch.Tensor, rows: bool) -> None:
    """Per expert, the SVD factors of its weight (out, in); features beyond its width stay random."""
    with torch.no_grad():
        for e in range(new.num_experts):
            fu, fv = svd_factors(weights[e], new.rank)
            if rows:
                n = min(fu.shape[0], new.u.shape[1])
                new.u[e, :n].copy_(fu[:n])
                new.v[e].copy_(fv)
            else:
                n = min(fv.shape[1], new.v.shape[2])
                new.u[e].copy_(fu)
                new.v[e, :, :n].copy_(fv[:, :n])


def canonical(original: nn.Module, m: ExpertsMatch):
    """The original up (E, F, d) and down (E, d, F) weights and their biases (E, F) / (E, d) or None."""
    params = dict(original.named_parameters(recurse=False))
    up = params["gate_up_proj" if m.kind == "gated" else "up_proj"]
    up = up.transpose(1, 2) if m.transposed else up
    down = params["down_proj"].transpose(1, 2) if m.transposed else params["down_proj"]
    b_up = params.get("gate_up_proj_bias" if m.kind == "gated" else "up_proj_bias")
    if m.kind == "gated":  # keep the up half: rows 1 - gate_half of the two halves
        pick = (lambda t: t[:, 1 - m.gate_half::2]) if m.interleaved else (lambda t: t.chunk(2, 1)[1 - m.gate_half])
        up = pick(up)
        b_up = pick(b_up) if b_up is not None else None
    return up, down, b_up, params.get("down_proj_bias")


def build_elas_experts(original: nn.Module, m: ExpertsMatch, config: ELASConfig, path: str) -> ELASExperts:
    """The ELAS experts that replace ``original`` (which is left untouched)."""
    up, down, b_up, b_down = canonical(original, m)
    width = config.ffn_width(m.intermediate, m.kind)
    rank = config.rank_for(m.hidden)
    new = ELASExperts(m.num_experts, m.hidden, width, rank, config, b_up is not None, b_down is not None,
                      m.dispatch, device=up.device, dtype=up.dtype)
    if config.init == "svd":
        _svd_init(new.up_proj, up, rows=True)
        _svd_init(new.down_proj, down, rows=False)
    with torch.no_grad():
        if b_up is not None:
            n = min(m.intermediate, width)
            new.up_proj.bias[:, :n].copy_(b_up[:, :n])
        if b_down is not None:
            new.down_proj.bias.copy_(b_down)
    new.elas_info = {
        "path": path, "kind": f"experts/{m.kind}", "activation": m.activation, "hidden": m.hidden,
        "intermediate": m.intermediate, "new_intermediate": width, "rank": rank, "form": config.lowrank_form,
        "sparsity": config.sparsity, "num_experts": m.num_experts, "bias_up": m.bias_up,
        "bias_down": m.bias_down, "bias_gate": m.bias_gate, "dropouts": (), "notes": (),
        "fused_kernel_blockers": ["routed experts run the reference ops (no grouped sparse GEMM is built)"]
        if config.sparsity else [],
    }
    return new

