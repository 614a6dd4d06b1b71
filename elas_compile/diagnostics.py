"""One warn-once store for every elas_compile warning that would otherwise repeat per call,
per compiled graph or per layer."""
from __future__ import annotations

import warnings

_seen: set[str] = set()


def warn_once(message: str, *, stacklevel: int = 3) -> None:
    """Warn with ``message`` the first time it is seen in this process, never again."""
    if message in _seen:
        return
    _seen.add(message)
    warnings.warn(f"elas_compile: {message}", stacklevel=stacklevel)


def reset_warnings() -> None:
    """Forget what was warned (tests)."""
    _seen.clear()
