"""Wrap a (rewritten) model for a run: activation checkpointing, torch.compile, DDP or FSDP2.

Order, per transformer block: activation checkpointing (``checkpoint_wrapper``, non-reentrant),
then ``torch.compile`` (FSDP: each block, never the whole model), then ``fully_shard``; the root
is sharded last (embeddings, final norm, LM head). With ``ddp`` or one process, ``--compile``
compiles the whole model together with its next-token loss (``NextTokenLoss``: the fp32 logits'
log-softmax fuses into the loss instead of being written to memory).

The ELAS modules need nothing special: FSDP2 all-gathers a block's parameters before its forward
(and again before its backward, so checkpointed blocks recompute with full weights), so the
``torch.ops.elas`` ops only ever see plain tensors. State-dict names are unchanged by the
wrappers as far as ``torch.distributed.checkpoint.state_dict`` is concerned (it strips
``_checkpoint_wrapped_module.`` and ``_orig_mod.``).
"""
from __future__ import annotations

from typing import List, Tuple

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


def checkpoint_blocks(blocks: List[Tuple[nn.Module, str]]) -> None:
    """Recompute each block's activations in the backward (``torch.utils.checkpoint``)."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointImpl, checkpoint_wrapper

    for parent, name in blocks:
        parent.register_module(name, checkpoint_wrapper(getattr(parent, name),
                                                        checkpoint_impl=CheckpointImpl.NO_REENTRANT))


def compile_blocks(blocks: List[Tuple[nn.Module, str]], rt: Runtime, backend: str = "inductor") -> None:
    for parent, name in blocks:
        parent.register_module(name, rt.compile_model(getattr(parent, name), backend))


def shard(model: nn.Module, blocks: List[Tuple[nn.Module, str]], mesh=None) -> None:
    """FSDP2: ``fully_shard`` each block, then the root (parameters become DTensors, Shard(0))."""
    from torch.distributed.fsdp import fully_shard

    for parent, name in blocks:
        fully_shard(getattr(parent, name), mesh=mesh)
    fully_shard(model, mesh=mesh)


def wrap_model(model: nn.Module, rt: Runtime, *, activation_checkpointing: bool = False,
               compile_backend: str = "inductor", mesh=None) -> nn.Module:
    """Prepare ``model`` (in place) for ``rt.parallel``; returns the module to call: a ``[B, T+1]``
    token batch (and optionally ``reduction``) -> the next-token loss (:class:`NextTokenLoss`).

    ``model`` itself stays the module whose parameters the optimizer, the sparsity schedule and the
    checkpoints use (under FSDP2 the returned module wraps it as it is: blocks compiled, loss eager)."""
    blocks = transformer_blocks(model)
    if (activation_checkpointing or rt.parallel == "fsdp") and not blocks:
        raise TrainError(f"no transformer blocks (an nn.ModuleList of layers) found in {type(model).__name__}: "
                         f"--parallel fsdp and --activation-checkpointing wrap each block")
    if activation_checkpointing:
        checkpoint_blocks(blocks)
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
