"""What the native libraries elas_compile compiles on first use share: where they are cached and a
build that runs once across processes."""
from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Callable


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/elas_compile`` (default ``~/.cache/elas_compile``)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "elas_compile"


def build_once(target: Path, compile_to: Callable[[Path], None]) -> bool:
    """Make ``target`` with ``compile_to(temporary path)`` unless it exists; an exclusive lock on
    ``target.lock`` makes concurrent processes wait for the first builder instead of building too.
    The result is published by an atomic rename, so a reader never sees half a file. Returns
    whether this call built it."""
    if target.is_file():
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_suffix(target.suffix + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_file():  # built by another process while we waited
            return False
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        try:
            compile_to(tmp)
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
    return True
