"""Hugging Face ``Trainer`` integration: the sparsity schedule steps with the optimizer.

    schedule = elas_compile.SparsitySchedule(model)
    trainer = Trainer(model=model, args=args, train_dataset=data,
                      callbacks=[ELASTrainerCallback(schedule)])

The schedule counts optimizer steps (``on_step_end``, after each optimizer step, so gradient
accumulation counts once per step). A resumed run (``trainer.train(resume_from_checkpoint=...)``)
continues the count from the Trainer's restored ``global_step``. Each checkpoint folder the
Trainer writes gets ELAS's ``config.json`` and ``elas_config.json``
(:func:`elas_compile.checkpoint.write_configs`): :func:`elas_compile.from_pretrained` loads it, and
transformers' own ``from_pretrained`` refuses it instead of loading random MLPs.
"""
from __future__ import annotations

from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from elas_compile.checkpoint import write_configs
from elas_compile.schedule import SparsitySchedule


class ELASTrainerCallback(TrainerCallback):
    """Steps ``schedule`` once per optimizer step of a ``transformers.Trainer``."""

    def __init__(self, schedule: SparsitySchedule) -> None:
        if not isinstance(schedule, SparsitySchedule):
            raise TypeError(f"ELASTrainerCallback takes an elas_compile.SparsitySchedule, got {type(schedule).__name__}")
        self.schedule = schedule

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step:  # resumed from a checkpoint: the schedule is where the optimizer is
            self.schedule.load_state_dict({"steps": state.global_step, "warmup_steps": self.schedule.warmup_steps})

    def on_step_end(self, args, state, control, **kwargs):
        self.schedule.step()

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if args.should_save and folder.is_dir():
            write_configs(folder, self.schedule.model)
