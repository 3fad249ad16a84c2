"""Where a capture was not running: gaps far longer than any keepalive period, and
timestamps that go backwards (files merged from several captures).

Only the times the analysis already holds are looked at (keepalives, the GRE data columns,
the first and last frame): the data columns are sorted, so a gap is found by bisecting, a
few steps per `minimum` seconds a column spans, never by reading every packet.
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
    with no time in any of the sorted `columns`.

    Each column is cut into stretches at its own gaps (a column spanning no more than
    `minimum` is one stretch: two reads); the union's gaps are those between the merged
    stretches. A column is bisected a few times per `minimum` seconds it spans.
    """
    stretches: list[tuple[float, float]] = []
    for column in columns:
        count = len(column)
        if not count:
            continue
        first, last = column[0], column[-1]
        if last - first <= minimum:
            stretches.append((first, last))
            continue
        index, begin = 0, first
        while True:
            reach = bisect_right(column, column[index] + minimum, index) - 1
            if reach >= count - 1:
                stretches.append((begin, last))
                break
            if reach > index:
                index = reach  # the farthest time within `minimum`: look on from there
                continue
            stretches.append((begin, column[index]))
            index += 1
            begin = column[index]
    if not stretches:
        return []
    stretches.sort()
    gaps: list[tuple[float, float]] = []
    covered = stretches[0][1]
    for begin, end in stretches[1:]:
        if begin - covered > minimum:
            gaps.append((covered, begin))
        covered = max(covered, end)
    return gaps


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
