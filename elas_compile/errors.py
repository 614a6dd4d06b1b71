"""Exceptions raised by elas_compile. Each message names the module and the way out."""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Sequence, Tuple


class ELASError(ValueError):
    """Base class: bad input to :func:`elas_compile.apply` or a related call."""


class ConfigError(ELASError):
    """An ELASConfig field with a value it cannot take."""


class AlreadyCompiledError(ELASError):
    """apply() was given a model that is, or holds, a module wrapped by torch.compile."""


class AlreadyAppliedError(ELASError):
    """apply() was given a model that already holds ELAS modules."""


def group_paths(items: Iterable[Tuple[str, str]], shown: int = 3) -> list[str]:
    """``(path, reason)`` pairs as one line per reason, listing its first ``shown`` paths: a
    32-layer model gives one line per kind of MLP, not 32."""
    by_reason: dict[str, list[str]] = defaultdict(list)
    for path, reason in items:
        by_reason[reason].append(path or "<root>")
    lines = []
    for reason, paths in by_reason.items():
        more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
        lines.append(f"  {', '.join(paths[:shown])}{more}: {reason}")
    return lines


class NothingMatchedError(ELASError):
    """No MLP in the model was rewritten. ``reasons`` holds ``(path, reason)`` for every module
    that looks like an MLP (or like stacked experts) and was left alone."""

    def __init__(self, message: str, reasons: Sequence[Tuple[str, str]] = ()) -> None:
        self.reasons = list(reasons)
        if self.reasons:
            message += "\nMLP-like modules left alone, and why:\n" + "\n".join(group_paths(self.reasons))
        super().__init__(message)


class UnsupportedActivationError(ELASError):
    """Gated MLPs whose gate activation is not SiLU or GELU. ``modules`` holds ``(path, activation)``
    for every such module of the model, so one run names them all."""

    def __init__(self, modules: Sequence[Tuple[str, str]]) -> None:
        self.modules = list(modules)
        listed = "\n".join(f"  {path}: a '{act}' gate" for path, act in self.modules)
        paths = ", ".join(repr(p) for p, _ in self.modules)
        super().__init__(
            f"{len(self.modules)} gated MLP(s) with a gate activation elas_compile does not rewrite "
            f"(it supports SiLU and GELU, exact or tanh):\n{listed}\n"
            f"Skip them with apply(..., filter_fn=lambda mod, fqn: fqn not in {{{paths}}})."
        )


class ShapeError(ELASError):
    """A size the rewrite cannot handle (a width not a multiple of 4, a rank not below the sizes)."""
