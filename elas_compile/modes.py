"""The sparsity modes of an ELAS MLP: one enum for the config, the ops and the kernels.

- ``dense``: the dense warm-up; the 2:4 step is the identity.
- ``masked``: 2:4 sparse; exact gradient of the sparsified function (zero at pruned positions).
- ``ste``: 2:4 sparse; straight-through gradient (reaches every position).
- ``masked-tokens24``: the forward and the activation gradient of ``masked``; the two weight
  gradients that reduce over tokens (dVdown = gᵀ·S, dUup = dyᵀ·h) are approximate: Sᵀ and dyᵀ
  are made 2:4 along tokens (the two largest |values| of every 4 consecutive tokens, exact where a
  group holds at most 2 nonzeros), except the densest feature columns (a fraction
  ``ELASConfig.wgrad_dense_fraction``), which stay dense. On a GPU the 2:4 part runs on sparse
  tensor cores (``elas_compile.tokens24``).

Ops take the mode as a string (it is part of the traced graph, so a switch recompiles once);
:func:`check_mode` is the one place that validates it. New modes go at the end: checkpoints store
a mode as its index in :data:`MODES` (``sparsity_state``).
"""
from __future__ import annotations

from enum import Enum


class Mode(str, Enum):
    DENSE = "dense"
    MASKED = "masked"
    STE = "ste"
    MASKED_TOKENS24 = "masked-tokens24"


MODES = tuple(m.value for m in Mode)
SPARSE_MODES = (Mode.MASKED.value, Mode.STE.value, Mode.MASKED_TOKENS24.value)
# modes whose gradient through the 2:4 step is masked (zero at pruned positions)
MASKED_MODES = (Mode.MASKED.value, Mode.MASKED_TOKENS24.value)
# the default share of feature columns whose weight gradients stay dense in ``masked-tokens24``
DEFAULT_WGRAD_DENSE_FRACTION = 0.05


def check_mode(mode: str, allowed: tuple = MODES, where: str = "elas op") -> str:
    """``mode`` if it is one of ``allowed``, else a ValueError naming ``where`` and the choices."""
    if mode not in allowed:
        raise ValueError(f"{where}: mode must be one of {allowed}, got {mode!r}")
    return mode


def activation_grad_mode(mode: str) -> str:
    """The mode the 2:4 step's own gradient follows: ``masked`` for every masked mode (the
    weight-gradient approximation of ``masked-tokens24`` lives in the linears, not in this step)."""
    return Mode.MASKED.value if mode in MASKED_MODES else mode


def check_dense_fraction(fraction: float, where: str) -> float:
    """``fraction`` if it is a share of feature columns in [0, 1], else a ValueError naming ``where``."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        raise ValueError(f"{where}: dense_fraction must be a number in [0, 1], got {fraction!r}")
    return float(fraction)
