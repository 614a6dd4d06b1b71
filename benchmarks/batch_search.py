"""The largest micro-batch that fits: a search over real training steps, within a time budget.

``measure(batch)`` runs steps at one micro-batch and returns a row whose ``status`` is ``"ok"``
(it fit: ``tokens_per_s``, ``peak_reserved_gb`` where the device reports memory), ``"oom"`` (an
out-of-memory error, caught and freed by ``measure``: a data point, not a crash) or anything
else (an error: the search stops there).

The search keeps ``lo``, the largest batch that fit, and ``hi``, the smallest that did not
(``max_batch + 1`` until one fails). Before the first OOM, two fits give a line of reserved memory
against batch; the next point is the largest batch that line puts under the device's capacity
(a step's memory grows linearly with its batch, so this usually lands within one of the limit,
where a bisection from the start would take log2(max_batch) points). A prediction at or below a
batch that fit gallops up from it (+1, +2, +4, ...); one above a batch that failed tries just
below the failure. Without memory readings (a CPU) the batch doubles instead. After a second
OOM the prediction has missed twice: plain bisection. It ends when ``hi == lo + 1`` (the limit
is found, or ``max_batch`` fits), on an error, or when ``deadline`` has passed: a point in
progress finishes, no new one starts.
"""
from __future__ import annotations

import time
from typing import Callable, Optional


def predicted_fit(fits: list[tuple[int, float]], capacity_gb: Optional[float]) -> Optional[int]:
    """The largest batch whose reserved memory, on the line through the two largest fitting
    ``(batch, reserved_gb)`` points, stays under ``capacity_gb``; None without two such points."""
    if capacity_gb is None:
        return None
    points = sorted({b: gb for b, gb in fits if gb is not None}.items())[-2:]
    if len(points) < 2:
        return None
    (b0, m0), (b1, m1) = points
    per_batch = (m1 - m0) / (b1 - b0)
    if per_batch <= 0:
        return None
    return int(b1 + (capacity_gb - m1) / per_batch)


def next_batch(lo: int, hi: int, max_batch: int, guess: Optional[int], ooms: int, jump: int) -> int:
    """The next micro-batch to try, strictly between ``lo`` (fits; 0: none yet) and ``hi`` (does not
    fit; ``max_batch + 1``: none failed yet). ``guess``: :func:`predicted_fit`; ``jump``: how far
    past ``lo`` to go when the guess is spent (doubled by the caller at each such step)."""
    if hi > max_batch:  # nothing failed yet
        if guess is None:  # no memory readings: double
            return min(2 * lo, max_batch)
        return min(guess if guess > lo else lo + jump, max_batch)
    if guess is not None and ooms < 2 and guess > lo:
        return min(guess, hi - 1)  # the prediction, or just below the failure it overshot
    return (lo + hi) // 2


def search_batch(measure: Callable[[int], dict], *, max_batch: int, start: int = 2,
                 capacity_gb: Optional[float] = None, deadline: Optional[float] = None,
                 clock: Callable[[], float] = time.monotonic) -> list[dict]:
    """The rows of every point tried, in order (see the module's doc); each gets ``search_s``, the
    seconds its measurement took (compilation included at the first point)."""
    rows: list[dict] = []
    lo, hi, ooms, fits, jump = 0, max_batch + 1, 0, [], 1
    batch = max(1, min(start, max_batch))
    while deadline is None or clock() < deadline:
        t0 = clock()
        row = dict(measure(batch), batch=batch)
        row["search_s"] = clock() - t0
        rows.append(row)
        if row["status"] == "ok":
            lo = max(lo, batch)
            fits.append((batch, row.get("peak_reserved_gb")))
        elif row["status"] == "oom":
            hi, ooms = min(hi, batch), ooms + 1
        else:
            break
        if hi - lo <= 1:
            break
        guess = predicted_fit(fits, capacity_gb)
        batch = next_batch(lo, hi, max_batch, guess, ooms, jump)
        if guess is not None and guess <= lo and hi > max_batch:
            jump *= 2  # the line under-predicts the limit: gallop up from the largest fit
    return rows


def largest_fit(rows: list[dict]) -> str:
    """What a search found, in words: ``"12"`` (12 fit, 13 did not), ``">= 12"`` (the search ended
    before a batch failed above 12: ``max_batch`` reached, the budget or an error), ``">= 12, < 20"``
    (stopped between the two), ``"none"`` (1 did not fit), ``"< 4"``, or ``"not measured"``."""
    lo = max((r["batch"] for r in rows if r["status"] == "ok"), default=0)
    hi = min((r["batch"] for r in rows if r["status"] == "oom"), default=None)
    if hi == lo + 1:
        return str(lo) if lo else "none"
    if lo:
        return f">= {lo}" + (f", < {hi}" if hi else "")
    return f"< {hi}" if hi else "not measured"
