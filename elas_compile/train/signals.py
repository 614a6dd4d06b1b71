"""SIGTERM and Ctrl-C during training: finish the step, save a checkpoint, exit cleanly.

SLURM (at the time limit or on preemption), Kubernetes and torchrun stop a job with SIGTERM and
kill it a little later. While :class:`StopSignals` is active, SIGTERM and the first SIGINT only
set a flag; the loop reads it between steps (never inside an optimizer step, whose half-updated
weights must not be saved), saves, and the command exits with ``128 + signal`` (143 for SIGTERM,
130 for Ctrl-C: the status a shell reports for a job the signal ended), so a wrapper script can
tell a stopped run from a finished one (0) and requeue it with ``--resume``. A second Ctrl-C stops
at once, without saving. Under ``--parallel`` the ranks agree on the flag with the step's
collective, so they all stop after the same step and save together.
"""
from __future__ import annotations

import signal
import threading
from typing import Dict, Optional

from elas_compile.train.errors import TrainError

HANDLED = (signal.SIGTERM, signal.SIGINT)


class Interrupted(TrainError):
    """A second Ctrl-C: the run stops now, without saving (its last checkpoint stands)."""

    exit_status = 128 + signal.SIGINT


def exit_status(signum: int) -> int:
    """The status of a run a signal stopped: what a shell reports for a job the signal ended."""
    return 128 + int(signum)


class StopSignals:
    """Context manager: while active, SIGTERM / SIGINT request a stop instead of killing."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._previous: Dict[int, object] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: the user does not want to wait
        self.signum = signum

    def __enter__(self) -> "StopSignals":
        # Python delivers signals to the main thread only; elsewhere (a library caller's worker
        # thread) the default handlers stay.
        if threading.current_thread() is threading.main_thread():
            for s in HANDLED:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, previous in self._previous.items():
            # None: the previous handler was not set from Python; the default is the closest
            signal.signal(s, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()
