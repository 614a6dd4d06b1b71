"""Wrap a (rewritten) model for a run: activation checkpointing, torch.compile, DDP or FSDP2.

Activation checkpointing (``--activation-checkpointing``, non-reentrant ``checkpoint_wrapper``):

- ``block``: each transformer block keeps only its input; everything else is recomputed in the
  backward.
- ``selective``: each block's attention module (its projections, RoPE and SDPA) keeps only its
  input and is recomputed in the backward; the rest of the block saves what it saves without
  checkpointing, ELAS's compressed 2:4 FFN activation included (recomputing the FFN would run its
  GEMMs again to free what ELAS already keeps compressed).

Order, per transformer block: activation checkpointing, then ``torch.compile`` (FSDP: each
block, never the whole model), then ``fully_shard``; the root is sharded last (embeddings, final
norm, LM head). With ``ddp`` or one process, ``--compile`` compiles the whole model together with
its next-token loss (``NextTokenLoss``: the fp32 logits' log-softmax fuses into the loss instead
of being written to memory).

The ELAS modules need nothing special: FSDP2 all-gathers a block's parameters before its forward
(and again before its backward, so checkpointed blocks recompute with full weights), so the
``torch.ops.elas`` ops only ever see plain tensors. State-dict names are unchanged by the
wrappers as far as ``torch.distributed.checkpoint.state_dict`` is concerned (it strips
``_checkpoint_wrapped_module.`` and ``_orig_mod.``).
"""
from __future__ import annotations

from typing import List, Tuple, Union

import torch
import torch.nn as nn

from elas_compile.train.errors import TrainError
from elas_compile.train.lm_loss import NextTokenLoss
from elas_compile.train.runtime import Runtime


def transformer_blocks(model: nn.Module) -> List[Tuple[nn.Module, str]]:
    """``(container, name)`` of every transformer block: children of a ``nn.ModuleList`` whose class
    is in the model's ``_no_split_modules`` (transformers), else of its largest ``nn.ModuleList``."""
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) > 0]
    names = set(getattr(model, "_no_split_modules", None) or ())

    def is_block(m: nn.Module) -> bool:
        inner = getattr(m, "_checkpoint_wrapped_module", getattr(m, "_orig_mod", m))
        return type(inner).__name__ in names

    chosen = [ml for ml in lists if names and all(is_block(c) for c in ml)]
    if not chosen and lists:
        chosen = [max(lists, key=lambda ml: sum(p.numel() for p in ml.parameters()))]
    return [(ml, name) for ml in chosen for name, _ in ml.named_children()]


CHECKPOINT_POLICIES = ("none", "block", "selective")
ATTENTION_NAMES = ("self_attn", "attn", "attention", "self_attention")
SKIP_SIDE_EFFECTS = "skip_fwd_side_effects_in_bwd_under_checkpoint"


def checkpoint_policy(value: Union[str, bool, None]) -> str:
    """The policy ``value`` names: one of :data:`CHECKPOINT_POLICIES`; ``True`` (a run started
    when the option was a flag) is ``block``, ``False``/``None`` is ``none``."""
    if value is None or value is False:
        return "none"
    if value is True:
        return "block"
    if value not in CHECKPOINT_POLICIES:
        raise TrainError(f"unknown --activation-checkpointing {value!r}; use one of {', '.join(CHECKPOINT_POLICIES)}")
    return value


def _checkpoint(parent: nn.Module, name: str) -> None:
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointImpl, checkpoint_wrapper

    parent.register_module(name, checkpoint_wrapper(getattr(parent, name), checkpoint_impl=CheckpointImpl.NO_REENTRANT))


def checkpoint_blocks(blocks: List[Tuple[nn.Module, str]]) -> None:
    """Recompute each block's activations in the backward (``torch.utils.checkpoint``)."""
    for parent, name in blocks:
        _checkpoint(parent, name)


def attention_of(block: nn.Module) -> str:
    """The name of ``block``'s attention child: a class named ``*Attention`` or an attribute named
    as transformers names it (:data:`ATTENTION_NAMES`)."""
    found = [name for name, child in block.named_children()
             if type(child).__name__.endswith("Attention") or name in ATTENTION_NAMES]
    if len(found) != 1:
        what = f"{len(found)} candidates ({', '.join(found)})" if found else "none"
        raise TrainError(f"--activation-checkpointing selective recomputes a block's attention module, but "
                         f"{type(block).__name__} has {what} among its children; use --activation-checkpointing "
                         f"block")
    return found[0]


def checkpoint_attention(blocks: List[Tuple[nn.Module, str]]) -> None:
    """Recompute each block's attention module in the backward; the rest of the block is untouched."""
    for parent, name in blocks:
        block = getattr(parent, name)
        _checkpoint(block, attention_of(block))


def compile_checkpointed_regions() -> None:
    """Let Dynamo compile checkpointed regions of transformers models instead of breaking the graph
    at each. transformers 5 installs output-capturing forward hooks on every decoder layer and
    attention module; they read a module-level context variable that the model's forward sets, a
    side effect Dynamo refuses inside a checkpoint (it would not be replayed by the recomputation),
    so every checkpointed block or attention ran eagerly between compiled pieces. In training the
    hooks collect nothing (no ``output_hidden_states``): not replaying them is right, and this
    Dynamo option (process-wide: Dynamo reads it while tracing) says so."""
    if not hasattr(torch._dynamo.config, SKIP_SIDE_EFFECTS):
        from elas_compile.diagnostics import warn_once

        warn_once(f"torch {torch.__version__} has no torch._dynamo.config.{SKIP_SIDE_EFFECTS}: compiled models break "
                  f"their graph at each checkpointed region, which then runs eagerly (a newer torch compiles it)")
        return
    setattr(torch._dynamo.config, SKIP_SIDE_EFFECTS, True)


def checkpoint_activations(blocks: List[Tuple[nn.Module, str]], policy: str) -> None:
    """Apply checkpointing ``policy`` (:data:`CHECKPOINT_POLICIES`) to ``blocks`` in place."""
    if policy != "none":
        compile_checkpointed_regions()
    if policy == "block":
        checkpoint_blocks(blocks)
    elif policy == "selective":
        checkpoint_attention(blocks)


def compile_blocks(blocks: List[Tuple[nn.Module, str]], rt: Runtime, backend: str = "inductor") -> None:
    for parent, name in blocks:
        parent.register_module(name, rt.compile_model(getattr(parent, name), backend))


def shard(model: nn.Module, blocks: List[Tuple[nn.Module, str]], mesh=None) -> None:
    """FSDP2: ``fully_shard`` each block, then the root (parameters become DTensors, Shard(0))."""
    from torch.distributed.fsdp import fully_shard

    for parent, name in blocks:
        fully_shard(getattr(parent, name), mesh=mesh)
    fully_shard(model, mesh=mesh)


def wrap_model(model: nn.Module, rt: Runtime, *, activation_checkpointing: Union[str, bool] = "none",
               compile_backend: str = "inductor", mesh=None) -> nn.Module:
    """Prepare ``model`` (in place) for ``rt.parallel``; returns the module to call: a ``[B, T+1]``
    token batch (and optionally ``reduction``) -> the next-token loss (:class:`NextTokenLoss`).
    ``activation_checkpointing``: a policy of :data:`CHECKPOINT_POLICIES` (see the module's doc).

    ``model`` itself stays the module whose parameters the optimizer, the sparsity schedule and the
    checkpoints use (under FSDP2 the returned module wraps it as it is: blocks compiled, loss eager)."""
    policy = checkpoint_policy(activation_checkpointing)
    blocks = transformer_blocks(model)
    if (policy != "none" or rt.parallel == "fsdp") and not blocks:
        raise TrainError(f"no transformer blocks (an nn.ModuleList of layers) found in {type(model).__name__}: "
                         f"--parallel fsdp and --activation-checkpointing wrap each block")
    checkpoint_activations(blocks, policy)
    if rt.parallel == "fsdp":
        if rt.compile:
            compile_blocks(blocks, rt, compile_backend)
        if mesh is None:
            from torch.distributed.device_mesh import init_device_mesh

            mesh = init_device_mesh(rt.device.type, (rt.world_size,))
        shard(model, blocks, mesh)
        return NextTokenLoss(model)  # the blocks are compiled; the loss stays eager
    fwd: nn.Module = NextTokenLoss(model)
    if rt.parallel == "ddp":  # DDP outermost, as torch.compile expects it
        from torch.nn.parallel import DistributedDataParallel as DDP

        fwd = DDP(fwd, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
    return rt.compile_model(fwd, compile_backend)


def plain_parameters(module: nn.Module) -> bool:
    """True if no parameter of ``module`` is a DTensor right now (FSDP2 unsharded it)."""
    from torch.distributed.tensor import DTensor

    return not any(isinstance(p, DTensor) for p in module.parameters())


def grad_norm_(params: List[torch.Tensor], max_norm: float) -> float:
    """The global gradient norm (over the DTensor shards of every rank too); clips the gradients
    to ``max_norm`` first when it is > 0."""
    from torch.distributed.tensor import DTensor

    if max_norm > 0:
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    else:
        norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    if isinstance(norm, DTensor):
        norm = norm.full_tensor()
    return float(norm)
