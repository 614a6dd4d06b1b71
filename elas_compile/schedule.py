"""SparsitySchedule: dense warm-up, then 2:4 sparsity, optionally a dense final phase."""
from __future__ import annotations

from typing import Optional, Union

import torch.nn as nn


class SparsitySchedule:
    """Call ``.step()`` once per optimizer step; after ``warmup_steps`` steps the ELAS MLPs of
    ``model`` switch from dense to 2:4 sparse (their configured backward mode).

    ``warmup_steps=None`` takes the model's ``ELASConfig.dense_warmup_steps``. ``dense_final``
    ends sparsity for the last steps of a run of ``total_steps``, as Hu et al. (2024) and
    Madhyastha et al. (2026) do: an int is a number of steps, a float in (0, 1) a fraction of
    ``total_steps``. Each switch changes one string attribute per MLP, so torch.compile recompiles
    once per phase and never again.

    A model that already runs 2:4 when the schedule is made (loaded from a checkpoint of a run past
    its warm-up: the mode travels in the state dict) stays 2:4: the schedule starts at the end of
    its warm-up. To continue a run's count, ``load_state_dict`` its saved ``state_dict``.
    """

    def __init__(self, model: nn.Module, warmup_steps: Optional[int] = None, *, total_steps: Optional[int] = None,
                 dense_final: Union[int, float] = 0) -> None:
        from elas_compile.api import elas_mlps

        config = getattr(model, "elas_config", None)
        if config is None:
            raise ValueError("SparsitySchedule needs a model rewritten by elas_compile.apply(model).")
        self.model = model
        self.modules = [m for _, m in elas_mlps(model) if m.elas_info["sparsity"]]
        self.warmup_steps = config.dense_warmup_steps if warmup_steps is None else int(warmup_steps)
        self.dense_final_steps = _final_steps(dense_final, total_steps)
        self.total_steps = total_steps
        already_sparse = any(m.sparsity_mode != "dense" for m in self.modules)
        self.steps = self.warmup_steps if already_sparse else 0
        self._sync()

    @property
    def sparse_active(self) -> bool:
        if not self.modules or self.steps < self.warmup_steps:
            return False
        return not self.dense_final_steps or self.steps < self.total_steps - self.dense_final_steps

    def _sync(self) -> None:
        active = self.sparse_active
        for m in self.modules:
            m.sparsity_mode = m.elas_backward if active else "dense"

    def step(self) -> None:
        self.steps += 1
        self._sync()

    def state_dict(self) -> dict:
        return {"steps": self.steps, "warmup_steps": self.warmup_steps}

    def load_state_dict(self, state: dict) -> None:
        self.steps = int(state["steps"])
        self.warmup_steps = int(state["warmup_steps"])
        self._sync()


def _final_steps(dense_final: Union[int, float], total_steps: Optional[int]) -> int:
    """``dense_final`` in steps (see :class:`SparsitySchedule`)."""
    if isinstance(dense_final, bool) or not isinstance(dense_final, (int, float)) or dense_final < 0:
        raise ValueError(f"SparsitySchedule: dense_final={dense_final!r} must be a step count >= 0 or a fraction "
                         "in (0, 1)")
    if not dense_final:
        return 0
    if total_steps is None:
        raise ValueError("SparsitySchedule: dense_final needs total_steps (the run's length)")
    steps = int(round(dense_final * total_steps)) if isinstance(dense_final, float) and dense_final < 1 else int(dense_final)
    if steps > total_steps:
        raise ValueError(f"SparsitySchedule: dense_final={dense_final!r} is longer than total_steps={total_steps}")
    return steps
