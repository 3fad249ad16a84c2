"""Timestamps as people read them, for every time the calendar can show.

A capture's clock can say anything: pcapng offsets and 64-bit counters reach past the year
9999, a corrupt or badly set clock gives times before 1970. Such times are written raw, as
``@`` and Unix epoch seconds (the notation of ``date -d @SECONDS``), never passed to
``datetime``, which fails on them; the analysis warns about them and extrapolates no
timeline across them (:mod:`analyzer.keepalive.segments` splits the capture there).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import pairwise

from analyzer.keepalive.wording import counted

# [1970-01-01 00:00:00, 10000-01-01 00:00:00) UTC: the times written as a date.
CALENDAR_START = 0.0
CALENDAR_END = 253_402_300_800.0


def in_calendar(epoch: float) -> bool:
    """True when `epoch` (Unix seconds) is a finite time from 1970 up to the end of 9999."""
    return math.isfinite(epoch) and CALENDAR_START <= epoch < CALENDAR_END


def utc_text(epoch: float, *, date: bool = True, digits: int = 6) -> str:
    """``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC (without the date when `date` is False; with
    `digits` of the fraction, 0-6), or ``@<epoch seconds>`` for a time outside the calendar."""
    digits = max(0, min(digits, 6))
    if not in_calendar(epoch):
        return raw_text(epoch, digits)
    stamp = datetime.fromtimestamp(epoch, UTC)
    text = stamp.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S")
    if digits:
        text += f".{stamp.microsecond:06d}"[: digits + 1]
    return text


def raw_text(epoch: float, digits: int = 6) -> str:
    """A time written as ``@`` and epoch seconds (``@nan``, ``@inf`` when not finite)."""
    if not math.isfinite(epoch):
        return f"@{epoch}"
    return f"@{epoch:.{max(0, min(digits, 9))}f}"


def calendar_edges(times: Sequence[float]) -> list[tuple[float, float]]:
    """(time before, time after) of every step of the sorted `times` that leaves or enters
    the calendar: the analysis splits the capture there as at a silence, so no timeline is
    extrapolated from a readable time to one past 9999 or before 1970, or back."""
    return [(a, b) for a, b in pairwise(times) if in_calendar(a) != in_calendar(b)]


def with_calendar_edges(
    gaps: Sequence[tuple[float, float]], times: Sequence[float]
) -> list[tuple[float, float]]:
    """`gaps` (in time order) and the calendar edges of the sorted `times` not inside one."""
    edges = [
        (a, b)
        for a, b in calendar_edges(times)
        if not any(before <= a and b <= after for before, after in gaps)
    ]
    return sorted([*gaps, *edges]) if edges else list(gaps)


def outside_calendar_warning(times: Sequence[float]) -> str | None:
    """The warning for `times` the calendar cannot show, or None when all of them fit."""
    outside = [t for t in times if not in_calendar(t)]
    if not outside:
        return None
    return (
        f"{counted(len(outside), 'keepalive timestamp')} outside the "
        f"years 1970-9999 (from {raw_text(min(outside))} to {raw_text(max(outside))}): "
        "written as @ and Unix epoch seconds; no timeline is extrapolated into or out of them"
    )
