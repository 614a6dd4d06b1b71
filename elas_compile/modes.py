"""The sparsity modes of an ELAS MLP: one enum for the config, the ops and the kernels.

- ``dense``: the dense warm-up; the 2:4 step is the identity.
- ``masked``: 2:4 sparse; exact gradient of the sparsified function (zero at pruned positions).
- ``ste``: 2:4 sparse; straight-through gradient (reaches every position).

Ops take the mode as a string (it is part of the traced graph, so a switch recompiles once);
:func:`check_mode` is the one place that validates it.
"""
from __future__ import annotations

from enum import Enum


class Mode(str, Enum):
    DENSE = "dense"
    MASKED = "masked"
    STE = "ste"


MODES = tuple(m.value for m in Mode)
SPARSE_MODES = (Mode.MASKED.value, Mode.STE.value)


def check_mode(mode: str, allowed: tuple = MODES, where: str = "elas op") -> str:
    """``mode`` if it is one of ``allowed``, else a ValueError naming ``where`` and the choices."""
    if mode not in allowed:
        raise ValueError(f"{where}: mode must be one of {allowed}, got {mode!r}")
    return mode
