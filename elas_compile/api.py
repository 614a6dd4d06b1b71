"""elas_compile.apply: rewrite an unmodified model into an ELAS model, in place.

All-or-nothing: every MLP is matched and every replacement built before the model is touched,
so an exception leaves the model exactly as it was. What was rewritten, and why every module that
looks like an MLP was left alone, is recorded in ``model.elas_summary`` (``explain`` prints it).
"""
from __future__ import annotations

import logging
from typing import Callable, Optional, Sequence

import torch
import torch.nn as nn

from elas_compile.config import ELASConfig
from elas_compile.diagnostics import warn_once
from elas_compile.errors import (AlreadyAppliedError, AlreadyCompiledError, NothingMatchedError,
                                 UnsupportedActivationError)
from elas_compile.init import check_svd_init, install_hf_init
from elas_compile.passes.model.experts import ELASExperts
from elas_compile.passes.model.plan import REFERENCE_NOTE, plan_attention, plan_ffn
from elas_compile.passes.model.rewrite_mlp import ELASMLP

log = logging.getLogger("elas_compile")

FilterFn = Callable[[nn.Module, str], bool]


def _check_model(model: nn.Module) -> None:
    compiled = [name or "<root>" for name, m in model.named_modules()
                if isinstance(m, torch._dynamo.eval_frame.OptimizedModule)]
    if compiled:
        raise AlreadyCompiledError(
            f"apply() got a model holding modules already wrapped by torch.compile ({', '.join(compiled[:3])}"
            f"{' ...' if len(compiled) > 3 else ''}): their originals would keep running. Call "
            "elas_compile.apply(model) on the uncompiled model first, then torch.compile.")
    for name, module in model.named_modules():
        if isinstance(module, (ELASMLP, ELASExperts)):
            raise AlreadyAppliedError(
                f"module '{name}' is already an ELAS module: elas_compile.apply was applied to this model "
                "before. Apply it once, to the original model.")


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


def apply(model: nn.Module, config: ELASConfig = ELASConfig(), *, filter_fn: Optional[FilterFn] = None,
          example_inputs: Optional[Sequence] = None) -> nn.Module:
    """Rewrite ``model`` in place into an ELAS model and return it.

    Every MLP found by structure (gated SiLU/GELU, fused gate-up, or plain; nn.Linear or GPT-2's
    Conv1D projections; biases and dropout kept) becomes ``down(sparsify24(relu(up(x)) ** 2))``
    with low-rank ``up`` and ``down``; routed experts stored as stacked parameters become ELAS
    experts (``config.experts``); with ``config.targets`` containing ``"attention"`` the
    projections feeding each attention op, and reading its output, become low rank too (found
    by running the model once on ``example_inputs``, default token ids of shape (1, 8)).

    ``filter_fn(module, fqn) -> bool`` limits the rewrite to modules for which it returns True.
    ``model.elas_summary`` says what was rewritten and why each MLP-like module was left alone.
    Then call ``torch.compile(model)``; drive the dense warm-up with :class:`SparsitySchedule`.
    """
    if not isinstance(config, ELASConfig):
        raise TypeError(f"apply() expects an ELASConfig, got {type(config).__name__}")
    _check_model(model)
    check_svd_init(model, config)
    plan = plan_ffn(model, config, filter_fn)
    if plan.refusals:
        raise UnsupportedActivationError(plan.refusals)
    if not plan.swaps:
        raise NothingMatchedError(
            f"no MLP in {type(model).__name__} was rewritten (elas_compile rewrites gated SiLU/GELU, fused gate-up "
            "and plain down(act(up(x))) MLPs of nn.Linear or Conv1D projections, and transformers' stacked "
            "experts); nothing was changed. See docs/sharp_edges.md, or check filter_fn if you passed one.",
            plan.summary.left)
    if "attention" in config.targets:
        plan_attention(model, config, plan, filter_fn, example_inputs)
    _swap(model, plan.swaps)
    from elas_compile.passes.compile import inductor

    inductor.install()  # the ELAS passes only: they touch ELAS ops alone
    model.elas_config = config
    model.elas_summary = plan.summary
    install_hf_init(model)  # transformers' init_weights() then initialises the factors (meta-device flows)
    notes = [n for r in plan.summary.rewritten for n in r.notes]
    for reason in dict.fromkeys(n[len(REFERENCE_NOTE):] for n in notes if n.startswith(REFERENCE_NOTE)):
        warn_once(f"some ELAS modules run the reference 2:4 ops under torch.compile, not the fused kernel: {reason} "
                  "(explain(model) lists them)")
    log.info("elas_compile: %s", "; ".join(plan.summary.lines()))
    return model


def elas_mlps(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The ELAS FFN modules of a rewritten model (MLPs and routed experts), with their paths: the
    modules :class:`SparsitySchedule` switches."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (ELASMLP, ELASExperts))]
