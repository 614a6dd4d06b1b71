"""SparsitySchedule: dense warm-up, then 2:4 sparsity."""
from __future__ import annotations

from typing import Optional

import torch.nn as nn


class SparsitySchedule:
    """Call ``.step()`` once per optimizer step; after ``warmup_steps`` steps the ELAS MLPs of
    ``model`` switch from dense to 2:4 sparse (their configured backward mode).

    ``warmup_steps=None`` takes the model's ``ELASConfig.dense_warmup_steps``. Switching changes
    one string attribute per MLP, so torch.compile recompiles once and never again.
    """

    def __init__(self, model: nn.Module, warmup_steps: Optional[int] = None) -> None:
        from elas_compile.api import elas_mlps

        config = getattr(model, "elas_config", None)
        if config is None:
            raise ValueError("SparsitySchedule needs a model rewritten by elas_compile.apply(model).")
        self.model = model
        self.modules = [m for _, m in elas_mlps(model) if m.elas_info["sparsity"]]
        self.warmup_steps = config.dense_warmup_steps if warmup_steps is None else int(warmup_steps)
        self.steps = 0
        self._sync()

    @property
    def sparse_active(self) -> bool:
        return bool(self.modules) and self.steps >= self.warmup_steps

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
