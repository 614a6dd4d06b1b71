"""User errors of the ``train`` / ``plot`` / ``bench`` commands."""
from __future__ import annotations


class TrainError(ValueError):
    """A user error (bad option, unknown preset, run folder in the way, ...).

    The command line prints its message as one line on stderr and exits with status 2."""


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (or its type name when it has none).

    A first line that only introduces the next (``backend='inductor' raised:``) gets the next
    line appended, so the one line still says what went wrong."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    if not lines:
        return type(e).__name__
    if lines[0].endswith(":") and len(lines) > 1:
        return f"{lines[0]} {lines[1]}"
    return lines[0]
