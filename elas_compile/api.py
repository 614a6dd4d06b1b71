"""elas_compile.apply: rewrite an unmodified LLaMA-like model into an ELAS model, in place.

All-or-nothing: every MLP is matched and every replacement built before the model is touched,
so an exception leaves the model exactly as it was.
"""
from __future__ import annotations

import logging
from typing import Callable, Optional

import torch
import torch.nn as nn

from elas_compile.config import ELASConfig
from elas_compile.errors import ELASError, AlreadyAppliedError, AlreadyCompiledError, NothingMatchedError, ShapeError
from elas_compile.init import check_svd_init, install_hf_init
from elas_compile.lowrank import LowRankLinear
from elas_compile.passes.model.match_mlp import match_mlp
from elas_compile.passes.model.rewrite_mlp import ELASMLP, build_elas_mlp

log = logging.getLogger("elas_compile")

FilterFn = Callable[[nn.Module, str], bool]


def _check_model(model: nn.Module) -> None:
    if isinstance(model, torch._dynamo.eval_frame.OptimizedModule):
        raise AlreadyCompiledError(
            "apply() got a model already wrapped by torch.compile; call elas_compile.apply(model) "
            "first, then torch.compile(model)."
        )
    for name, module in model.named_modules():
        if isinstance(module, ELASMLP):
            raise AlreadyAppliedError(
                f"module '{name}' is already an ELAS MLP: elas_compile.apply was applied to this model "
                "before. Apply it once, to the original model."
            )


def _plan_mlps(model: nn.Module, config: ELASConfig, filter_fn: Optional[FilterFn]):
    plan = []
    taken: set[str] = set()
    for path, module in model.named_modules():
        if any(path.startswith(t + ".") for t in taken):
            continue  # inside an MLP already planned
        if filter_fn is not None and not filter_fn(module, path):
            continue
        match = match_mlp(module, path)
        if match is None:
            continue
        if path == "":
            raise ELASError(
                f"apply() got a bare MLP ({type(model).__name__}); it rewrites MLPs inside a model in place. "
                "Wrap it, e.g. apply(nn.Sequential(mlp)), and use the wrapper."
            )
        f_new = config.ffn_width(match.intermediate)
        if config.sparsity and f_new % 4 != 0:
            raise ShapeError(
                f"module '{path}': the new intermediate width {f_new} is not a multiple of 4, which 2:4 "
                f"sparsity needs. Use an ELASConfig with ffn_width_multiple a multiple of 4 (default 128)."
            )
        plan.append((path, build_elas_mlp(module, match, config, path)))
        taken.add(path)
    return plan


def _plan_attention(model: nn.Module, config: ELASConfig, mlp_paths: list[str], filter_fn):
    """Every other nn.Linear inside the blocks (parents of the MLPs): the attention projections."""
    plan = []
    blocks = {p.rpartition(".")[0] for p in mlp_paths}
    for path, module in model.named_modules():
        inside_block = any(path.startswith(b + ".") for b in blocks if b)
        inside_mlp = any(path == m or path.startswith(m + ".") for m in mlp_paths)
        if not (isinstance(module, nn.Linear) and inside_block and not inside_mlp):
            continue
        if filter_fn is not None and not filter_fn(module, path):
            continue
        rank = config.rank_for(module.in_features)
        plan.append((path, LowRankLinear.from_linear(module, rank, config.lowrank_form, config.init)))
    return plan


def _swap(model: nn.Module, plan) -> None:
    done = []
    try:
        for path, new in plan:
            parent_path, _, name = path.rpartition(".")
            parent = model.get_submodule(parent_path)
            done.append((parent, name, getattr(parent, name)))
            setattr(parent, name, new)
    except BaseException:
        for parent, name, old in reversed(done):
            setattr(parent, name, old)
        raise


def apply(model: nn.Module, config: ELASConfig = ELASConfig(), *, filter_fn: Optional[FilterFn] = None) -> nn.Module:
    """Rewrite ``model`` in place into an ELAS model and return it.

    Every MLP found by structure (gated SiLU/GELU, fused gate-up, or plain) becomes
    ``down(sparsify24(relu(up(x)) ** 2))`` with low-rank ``up`` and ``down``; with
    ``config.targets`` containing ``"attention"`` the other linears of those blocks become low rank too.

    ``filter_fn(module, fqn) -> bool`` limits the rewrite to modules for which it returns True.
    Then call ``torch.compile(model)``; drive the dense warm-up with :class:`SparsitySchedule`.
    """
    if not isinstance(config, ELASConfig):
        raise TypeError(f"apply() expects an ELASConfig, got {type(config).__name__}")
    _check_model(model)
    check_svd_init(model, config)
    mlp_plan = _plan_mlps(model, config, filter_fn)
    if not mlp_plan:
        raise NothingMatchedError(
            f"no MLP in {type(model).__name__} matched a supported pattern (gated SiLU/GELU, fused gate-up, "
            "or plain down(act(up(x))) with nn.Linear projections); nothing was changed. See "
            "docs/sharp_edges.md, or check filter_fn if you passed one."
        )
    mlp_paths = [p for p, _ in mlp_plan]
    attn_plan = _plan_attention(model, config, mlp_paths, filter_fn) if "attention" in config.targets else []
    _swap(model, mlp_plan + attn_plan)
    from elas_compile.passes.compile import inductor

    inductor.install()  # the ELAS passes only: they touch ELAS ops alone
    model.elas_config = config
    install_hf_init(model)  # transformers' init_weights() then initialises the factors (meta-device flows)
    log.info("elas_compile: rewrote %d MLPs and %d attention projections", len(mlp_plan), len(attn_plan))
    return model


def elas_mlps(model: nn.Module) -> list[tuple[str, ELASMLP]]:
    """The ELAS MLP modules of a rewritten model, with their paths."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, ELASMLP)]
