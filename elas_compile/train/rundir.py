"""The run folder: checked before anything is built, created only when the run can start, locked
while a process trains in it, removed again if the start fails.

- :meth:`RunFolder.check` (read-only, before the data and the model): ``--out`` must name a folder
  that can be created (not a file, not under a file, not on a read-only or pseudo file system), that
  holds no run unless ``--resume``/``--overwrite``, and that no live process is training in.
- :meth:`RunFolder.open` (after the data and the model are built): creates it, takes the lock
  (``.lock``, ``flock``: released by the kernel when the process dies, even by ``kill -9``), clears
  an old run on ``--overwrite``.
- :meth:`RunFolder.discard`: a new run that fails before its first step removes what it wrote and
  the folders it created, so a failed start never leaves an empty run folder.
"""
from __future__ import annotations

import errno
import fcntl
import os
import shutil
from pathlib import Path
from typing import List, Optional

from elas_compile.train.checkpoint import find_checkpoint
from elas_compile.train.errors import TrainError
from elas_compile.train.options import run_files

LOCK = ".lock"


def _holds_run(path: Path) -> bool:
    # a run that never finished a step (e.g. a crash at start-up) does not count
    metrics = path / "metrics.csv"
    if find_checkpoint(path) is not None:
        return True
    try:
        return metrics.is_file() and len(metrics.read_text(encoding="utf-8").splitlines()) > 1
    except (OSError, UnicodeDecodeError):
        return True  # unreadable: never overwritten silently


def _io_error(path: Path, what: str, e: OSError) -> TrainError:
    reason = e.strerror or str(e)
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        reason += " (choose an --out on a writable disk)"
    elif e.errno in (errno.ENOSPC, errno.EDQUOT):
        reason += " (free space there or choose another --out)"
    return TrainError(f"cannot {what} {path}: {reason}")


class RunFolder:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock_fd: Optional[int] = None
        self._created: List[Path] = []  # folders this process made, deepest first

    def check(self, resume: bool, overwrite: bool) -> None:
        """Everything that would stop the run at the folder, without changing anything."""
        p = self.path
        if p.exists() and not p.is_dir():
            raise TrainError(f"--out {p} is a file, not a folder; choose another --out")
        if not p.exists():
            if resume:
                raise TrainError(f"nothing to resume in {p}: the folder does not exist (pass the run's --out)")
            self._probe_create()
            return
        if resume and find_checkpoint(p) is None:
            raise TrainError(f"nothing to resume in {p}: no checkpoint there")
        if not resume and not overwrite and _holds_run(p):
            raise TrainError(f"{p} already holds a run: pass --resume to continue it, "
                             f"--overwrite to start over, or choose another --out")
        if not os.access(p, os.W_OK | os.X_OK):
            raise TrainError(f"cannot write in the run folder {p}: permission denied (choose another --out)")
        self._check_lock(probe_only=True)

    def _probe_create(self) -> None:
        """Create the folder (and its missing parents) and remove them again: the one sure test that
        it can be created ('/proc/x', a read-only disk, a parent that is a file)."""
        missing = [d for d in [self.path, *self.path.parents] if not d.exists()]
        try:
            self.path.mkdir(parents=True)
        except OSError as e:
            raise _io_error(self.path, "create the run folder", e) from None
        for d in missing:
            d.rmdir()

    def _check_lock(self, probe_only: bool) -> None:
        lock = self.path / LOCK
        if probe_only and not lock.exists():
            return
        try:
            fd = os.open(lock, os.O_RDONLY if probe_only else os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise _io_error(self.path, "lock the run folder", e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise TrainError(f"{self.path} is in use by another `elas-compile train` (pid {pid}); "
                             f"wait for it to finish or stop it, then --resume") from None
        if probe_only:
            os.close(fd)
            return
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def open(self, resume: bool, overwrite: bool) -> None:
        """Create the folder, lock it, and clear an old run (``--overwrite``) or a failed start's
        leftovers. Holds the lock until :meth:`close`."""
        self._created = [d for d in [self.path, *self.path.parents] if not d.exists()]
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            self._created = []
            raise _io_error(self.path, "create the run folder", e) from None
        self._check_lock(probe_only=False)
        if resume:
            return
        if _holds_run(self.path) and not overwrite:  # another process started a run here meanwhile
            raise TrainError(f"{self.path} already holds a run: pass --resume to continue it, "
                             f"--overwrite to start over, or choose another --out")
        try:
            for f in run_files(self.path):
                shutil.rmtree(f) if f.is_dir() else f.unlink(missing_ok=True)
        except OSError as e:
            raise _io_error(self.path, "clear the old run in", e) from None

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def discard(self) -> None:
        """Undo :meth:`open` for a new run that failed before its first step: remove the files it
        wrote and the folders it created; files that were there before stay."""
        for f in [*run_files(self.path), self.path / LOCK]:
            shutil.rmtree(f, ignore_errors=True) if f.is_dir() else f.unlink(missing_ok=True)
        self.close()
        for d in self._created:  # deepest first
            try:
                d.rmdir()
            except OSError:  # not empty: it held something else
                break
        self._created = []
