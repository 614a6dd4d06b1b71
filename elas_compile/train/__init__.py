"""``elas-compile train`` and ``bench``: pre-train LLaMA-like models with ELAS or a baseline.

One idea per module: :mod:`.presets` (model sizes), :mod:`.variant` (ELAS / baselines),
:mod:`.options` (command-line options), :mod:`.setup` (data and model of a run), :mod:`.loop`
(the training loop), :mod:`.optim` (AdamW, LR schedule), :mod:`.checkpoint` (the checkpoint
folder), :mod:`.dcp` (sharded save/load with torch.distributed.checkpoint), :mod:`.distributed`
(torchrun process group, ranks, collectives), :mod:`.parallel` (activation checkpointing, compile,
DDP/FSDP2), :mod:`.metrics` (CSV/JSON), :mod:`.plot` (loss curves), :mod:`.runtime` (device,
precision, rank, RNG), :mod:`.bench` (throughput benchmark).
"""
from elas_compile.train.errors import TrainError

__all__ = ["TrainError"]
