"""What :func:`elas_compile.apply` did to a model: ``model.elas_summary``, printed by ``explain``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Tuple

from elas_compile.errors import group_paths


@dataclass(frozen=True)
class Rewritten:
    """One module ``apply`` replaced: its path, what it was (``"mlp/gated"``, ``"experts/gated"``,
    ``"attention q/k/v"`` ...) and what the rewrite changed beyond the ELAS recipe (a dropped
    zero-probability dropout, a gate's bias, why the fused 2:4 kernel cannot run it ...)."""

    path: str
    what: str
    notes: Tuple[str, ...] = ()


@dataclass
class ApplySummary:
    """``rewritten``: every module replaced. ``left``: ``(path, reason)`` for every module that
    looks like an MLP, stacked experts or an attention projection target and was left as it was."""

    rewritten: list = field(default_factory=list)
    left: list = field(default_factory=list)

    def lines(self) -> list[str]:
        kinds: dict = {}
        for r in self.rewritten:
            kinds[r.what] = kinds.get(r.what, 0) + 1
        out = ["rewritten: " + (", ".join(f"{n} x {what}" for what, n in kinds.items()) or "nothing")]
        notes = [(r.path, note) for r in self.rewritten for note in r.notes]
        if notes:
            out += ["notes on rewritten modules:"] + group_paths(notes)
        if self.left:
            out += ["left alone:"] + group_paths(self.left)
        return out

    def __str__(self) -> str:
        return "\n".join(["elas_compile.apply summary"] + self.lines())
