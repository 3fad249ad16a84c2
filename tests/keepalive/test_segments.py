"""Gaps in the union of sorted time columns, worked out by hand."""

from __future__ import annotations

import pytest

from analyzer.keepalive.segments import Segment, backwards_steps, long_gaps, segments_between


@pytest.mark.parametrize(
    ("columns", "minimum", "expected"),
    [
        ([[0.0, 1.0, 2.0], [10.0, 11.0]], 5.0, [(2.0, 10.0)]),  # between two columns
        ([[0.0, 1.0, 100.0, 101.0]], 10.0, [(1.0, 100.0)]),  # inside one column
        ([[0.0, 100.0], [50.0]], 60.0, []),  # one column fills the other's gap
        ([[0.0, 100.0], [50.0]], 40.0, [(0.0, 50.0), (50.0, 100.0)]),
        ([[0.0, 4.0], [], [4.0, 8.0]], 4.0, []),  # exactly `minimum` apart is no gap
        ([[], []], 1.0, []),
    ],
)
def test_long_gaps(
    columns: list[list[float]], minimum: float, expected: list[tuple[float, float]]
) -> None:
    assert long_gaps(columns, minimum) == expected


def test_segments_between_gaps() -> None:
    assert segments_between(0.0, 100.0, [(10.0, 50.0), (60.0, 90.0)]) == [
        Segment(0.0, 10.0),
        Segment(50.0, 60.0),
        Segment(90.0, 100.0),
    ]


def test_backwards_steps_count_jumps_not_frames() -> None:
    # Frames 1-3 at 100 …, frames 4-6 back at 10 … (one jump of 92 s), a 0.5 s step back
    # at frame 7 is ordinary reordering.
    frames = [(1, 100.0), (2, 101.0), (3, 102.0), (4, 10.0), (5, 11.0), (6, 12.0), (7, 11.5)]
    back = backwards_steps(frames)
    assert back is not None
    assert (back.count, back.largest, back.first_frame) == (1, 92.0, 4)
    assert backwards_steps([(1, 1.0), (2, 2.0)]) is None
