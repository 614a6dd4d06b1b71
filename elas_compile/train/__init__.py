"""``elas-compile train`` and ``bench``: pre-train LLaMA-like models with ELAS or a baseline.

One idea per module: :mod:`.presets` (model sizes), :mod:`.variant` (ELAS / baselines),
:mod:`.options` (command-line options), :mod:`.validate` (checks of every option), :mod:`.run`
(one run, start to end), :mod:`.rundir` (the run folder: checks, lock, clean-up), :mod:`.setup`
(data and model of a run), :mod:`.loop` (the training steps), :mod:`.signals` (SIGTERM / Ctrl-C),
:mod:`.report` (log lines, ``train.log``, TensorBoard, W&B), :mod:`.optim` (AdamW, LR schedule),
:mod:`.checkpoint` (the checkpoint folder, checksums), :mod:`.dcp` (sharded save/load with
torch.distributed.checkpoint), :mod:`.distributed` (torchrun process group, ranks, collectives),
:mod:`.parallel` (activation checkpointing, compile, DDP/FSDP2 wrapping), :mod:`.metrics`
(CSV/JSON), :mod:`.plot` (loss curves), :mod:`.runtime` (device, precision, compile mode, CPU
threads, RNG), :mod:`.bench` (throughput benchmark).
"""
from elas_compile.train.errors import TrainError

__all__ = ["TrainError"]
