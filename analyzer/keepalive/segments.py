"""Where a capture was not running: gaps far longer than any keepalive period, and
timestamps that go backwards (files merged from several captures).

Only the times the analysis already holds are looked at (keepalives, the GRE data columns,
the first and last frame): the data columns are sorted, so a gap is found by bisecting, a
step per `minimum` seconds of capture, never by reading every packet.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

# A stretch without any packet longer than this (and than GAP_PERIODS periods) is taken as
# the capture not running: timelines are not extrapolated across it.
DEFAULT_CAPTURE_GAP = 3600.0
GAP_PERIODS = 10
# Frames whose time goes back by more than this are reported (merged captures); smaller
# steps back are ordinary reordering between interfaces.
BACKWARDS_TOLERANCE = 1.0


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of the capture with no gap longer than the threshold (times inclusive)."""

    start: float
    end: float


def long_gaps(columns: Sequence[Sequence[float]], minimum: float) -> list[tuple[float, float]]:
    """(last time before, first time after) of every stretch longer than `minimum` seconds
    with no time in any of the sorted `columns`."""
    firsts = [column[0] for column in columns if len(column)]
    if not firsts:
        return []
    now = min(firsts)
    gaps: list[tuple[float, float]] = []
    while True:
        reach = now
        for column in columns:
            index = bisect_right(column, now + minimum) - 1
            if index >= 0 and column[index] > reach:
                reach = column[index]
        if reach > now:
            now = reach  # the farthest time within `minimum`: look on from there
            continue
        after = [column[i] for column in columns if (i := bisect_right(column, now)) < len(column)]
        if not after:
            return gaps
        following = min(after)
        gaps.append((now, following))
        now = following


def segments_between(
    start: float, end: float, gaps: Sequence[tuple[float, float]]
) -> list[Segment]:
    """The stretches of [start, end] the gaps leave (gaps in time order)."""
    found: list[Segment] = []
    begin = start
    for before, after in gaps:
        found.append(Segment(begin, before))
        begin = after
    found.append(Segment(begin, end))
    return found


@dataclass(frozen=True, slots=True)
class Backwards:
    """Jumps back in time from one frame to the next (by more than the tolerance)."""

    count: int
    largest: float  # seconds
    first_frame: int


def backwards_steps(frames: Sequence[tuple[int, float]]) -> Backwards | None:
    """Steps back in time along (frame number, time) pairs in frame order, or None."""
    count = 0
    largest = 0.0
    first_frame: int | None = None
    previous: float | None = None
    for frame, time in frames:
        if previous is not None and previous - time > BACKWARDS_TOLERANCE:
            count += 1
            largest = max(largest, previous - time)
            if first_frame is None:
                first_frame = frame
        previous = time
    if first_frame is None:
        return None
    return Backwards(count, largest, first_frame)
