"""Plan a rewrite without touching the model: every replacement built, every module left alone
given its reason. ``apply`` swaps the plan in only when all of it was built."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch.nn as nn

from elas_compile.config import ELASConfig
from elas_compile.errors import ELASError, ShapeError
from elas_compile.lowrank import LowRankLinear
from elas_compile.passes.model.attention import find_attention_projections
from elas_compile.passes.model.experts import build_elas_experts
from elas_compile.passes.model.match_experts import ExpertsMatch, looks_like_experts, match_experts
from elas_compile.passes.model.match_mlp import WHERE, MLPMatch, Skip, looks_like_mlp, match_mlp
from elas_compile.passes.model.rewrite_mlp import build_elas_mlp
from elas_compile.passes.model.trace import projection_shape
from elas_compile.summary import ApplySummary, Rewritten

FilterFn = Callable[[nn.Module, str], bool]
REFERENCE_NOTE = "reference 2:4 ops: "  # a note saying why the fused 2:4 kernel cannot run a module


@dataclass
class Plan:
    swaps: list = field(default_factory=list)  # (path, new module)
    summary: ApplySummary = field(default_factory=ApplySummary)
    refusals: list = field(default_factory=list)  # (path, gate activation): UnsupportedActivationError


def _inside(path: str, parents) -> bool:
    return any(path == p or path.startswith(p + ".") for p in parents)


def _check_sizes(path: str, d: int, width: int, rank: int, config: ELASConfig) -> None:
    if config.sparsity and width % 4 != 0:
        raise ShapeError(
            f"module '{path}': the new intermediate width {width} is not a multiple of 4, which 2:4 "
            f"sparsity needs. Use an ELASConfig with ffn_width_multiple a multiple of 4 (default 128).")
    if rank >= min(d, width):
        raise ShapeError(
            f"module '{path}': rank {rank} is not below min(hidden {d}, width {width}) of its factors, so they "
            "would be no low-rank factorization. Use a smaller ELASConfig.rank (e.g. 0.25: a quarter of the "
            "hidden size).")


def _notes(match, config: ELASConfig, new) -> tuple:
    notes = list(getattr(match, "notes", ()))
    notes += [f"dropout p={p} {WHERE[w]} kept" for w, p in getattr(match, "dropouts", ())]
    if getattr(match, "bias_up", False) or getattr(match, "bias_down", False):
        notes.append("biases kept on the factors' U side")
    notes += [REFERENCE_NOTE + b for b in new.elas_info["fused_kernel_blockers"]]
    return tuple(notes)


def plan_ffn(model: nn.Module, config: ELASConfig, filter_fn: Optional[FilterFn]) -> Plan:
    """Every MLP and experts module of ``model``: its replacement, or the reason it is left."""
    plan = Plan()
    taken: list[str] = []
    for path, module in model.named_modules():
        if _inside(path, taken):
            continue
        if filter_fn is not None and not filter_fn(module, path):
            if looks_like_mlp(module) or looks_like_experts(module):
                plan.summary.left.append((path, "excluded by filter_fn"))
            continue
        match = match_mlp(module, path)
        if match is None:
            match = match_experts(module, path)
        if match is None:
            continue
        if isinstance(match, Skip):
            if match.gate_activation is not None:
                plan.refusals.append((path, match.gate_activation))
            plan.summary.left.append((path, match.reason))
            continue
        if path == "":
            raise ELASError(
                f"apply() got a bare MLP ({type(model).__name__}); it rewrites MLPs inside a model in place. "
                "Wrap it, e.g. apply(nn.Sequential(mlp)), and use the wrapper.")
        if isinstance(match, ExpertsMatch) and config.experts == "keep":
            plan.summary.left.append((path, "routed experts kept, as ELASConfig(experts='keep') asks"))
            continue
        _check_sizes(path, match.hidden, config.ffn_width(match.intermediate, match.kind),
                     config.rank_for(match.hidden), config)
        build = build_elas_mlp if isinstance(match, MLPMatch) else build_elas_experts
        new = build(module, match, config, path)
        plan.swaps.append((path, new))
        plan.summary.rewritten.append(Rewritten(path, new.elas_info["kind"] if isinstance(match, ExpertsMatch)
                                                else f"mlp/{match.kind}", _notes(match, config, new)))
        taken.append(path)
    return plan


def plan_attention(model: nn.Module, config: ELASConfig, plan: Plan, filter_fn: Optional[FilterFn],
                   example_inputs: Optional[Sequence]) -> None:
    """Add the attention projections (found by data flow) to ``plan``; a projection whose factors
    would not be smaller than its weight is left dense, with the reason."""
    roles = find_attention_projections(model, example_inputs)
    if not roles:
        plan.summary.left.append(("", "targets include 'attention' but a probe forward ran no attention op "
                                      "(scaled_dot_product_attention or softmax(q·kᵀ)·v)"))
    ffn = [p for p, _ in plan.swaps]
    for path, module in model.named_modules():
        if path not in roles or _inside(path, ffn):
            continue
        if filter_fn is not None and not filter_fn(module, path):
            plan.summary.left.append((path, "excluded by filter_fn"))
            continue
        i, o = projection_shape(module)
        rank = config.rank_for(i)
        if rank * (i + o) >= i * o:
            plan.summary.left.append((path, f"attention {roles[path]} projection {i} -> {o} left dense: rank-{rank} "
                                            f"factors would hold {rank * (i + o)} parameters, its weight {i * o}"))
            continue
        plan.swaps.append((path, LowRankLinear.from_linear(module, rank, config.lowrank_form, config.init)))
        bias = ("bias kept",) if getattr(module, "bias", None) is not None else ()
        plan.summary.rewritten.append(Rewritten(path, f"attention {roles[path]}", bias))
