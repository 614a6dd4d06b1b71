"""User errors of the ``train`` / ``plot`` / ``bench`` commands."""
from __future__ import annotations


class TrainError(ValueError):
    """A user error (bad option, unknown preset, run folder in the way, ...).

    The command line prints its message as one line on stderr and exits with status 2."""


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (or its type name when it has none)."""
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__
