"""OriginatorTimeline: the state machine fed with observed and missing ticks (hand-worked)."""

from __future__ import annotations

from analyzer.keepalive.model import KeepaliveRole
from analyzer.keepalive.state import LineState
from analyzer.keepalive.timeline import OriginatorTimeline


def test_live_rule_declares_a_tick_missing_half_a_period_after_it_was_due() -> None:
    timeline = OriginatorTimeline(period=10.0, retries=3)
    timeline.sent(0.0, 1, ident=1)
    assert timeline.extrapolate(14.9, inclusive=False) == []  # tick 10 not yet overdue
    (event,) = timeline.extrapolate(15.0, inclusive=False)
    assert (event.time, event.role, event.counter) == (10.0, KeepaliveRole.EXTRAPOLATED, 2)


def test_extrapolated_ticks_take_the_line_down_on_schedule() -> None:
    timeline = OriginatorTimeline(period=10.0, retries=3)
    timeline.sent(0.0, 1, ident=1)  # counter 1
    timeline.extrapolate(45.0, inclusive=False)  # ticks 10 (2), 20 (3), 30: 3 >= 3 → down, 40
    (down,) = timeline.transitions
    assert (down.time, down.state, down.counter, down.frame) == (30.0, LineState.DOWN, 3, None)
    assert (timeline.counter, timeline.extrapolated) == (5, 4)


def test_ticks_after_before_are_left_for_later() -> None:
    timeline = OriginatorTimeline(period=5.0, retries=3)
    timeline.sent(0.0, 1, ident=1)
    made = timeline.extrapolate(100.0, inclusive=False, before=12.0)
    assert [e.time for e in made] == [5.0, 10.0]
    assert timeline.last_tick == 10.0


def test_a_tick_at_the_instant_of_a_reply_runs_before_it() -> None:
    timeline = OriginatorTimeline(period=5.0, retries=3)
    timeline.sent(0.0, 1, ident=1)
    made = timeline.extrapolate(100.0, inclusive=False, before=10.0)
    assert [e.time for e in made] == [5.0, 10.0]


def test_a_gap_of_years_is_a_bounded_number_of_rows() -> None:
    timeline = OriginatorTimeline(period=10.0, retries=3)
    timeline.sent(0.0, 1, ident=1)
    year = 365 * 24 * 3600.0
    made = timeline.extrapolate(year, inclusive=True)
    # 3 153 600 ticks: 3 listed (10, 20, 30 → down), then one row for the rest.
    assert len(made) == 4
    assert made[-1].ticks == 3_153_600 - 3
    assert made[-1].time == year
    assert (timeline.counter, timeline.extrapolated) == (1 + 3_153_600, 3_153_600)
    assert [t.time for t in timeline.transitions] == [30.0]


def test_returned_resets_and_brings_the_line_up() -> None:
    timeline = OriginatorTimeline(period=1.0, retries=1)
    timeline.sent(0.0, 1, ident=1)
    timeline.sent(1.0, 2, ident=2)  # 1 >= 1: down
    event = timeline.returned(1.02, 3, ident=2, request_frame=2, rtt_ms=20.0, reply_ttl=254)
    assert (event.counter, event.line_state) == (0, LineState.UP)
    assert [(t.state, t.frame) for t in timeline.transitions] == [
        (LineState.DOWN, 2),
        (LineState.UP, 3),
    ]


def test_ticks_after_the_down_transition_are_one_row_with_first_and_last_tick() -> None:
    timeline = OriginatorTimeline(period=10.0, retries=3)
    timeline.sent(0.0, 1, ident=1)  # counter 1
    made = timeline.extrapolate(100.0, inclusive=True)
    # Ticks 10 (2), 20 (3), 30 (3 ≥ 3: down, 4) one by one; 40 … 100 (7 ticks) one row.
    assert [(e.time, e.counter, e.ticks) for e in made] == [
        (10.0, 2, 1),
        (20.0, 3, 1),
        (30.0, 4, 1),
        (100.0, 11, 7),
    ]
    assert made[-1].first_time == 40.0
    assert made[0].first_time is None  # a single tick: its time is `time`


def test_a_gap_that_starts_while_down_is_one_row() -> None:
    timeline = OriginatorTimeline(period=10.0, retries=1)
    timeline.sent(0.0, 1, ident=1)  # counter 1
    timeline.sent(10.0, 2, ident=2)  # 1 ≥ 1: down, counter 2
    made = timeline.extrapolate(100.0, inclusive=True)  # ticks 20 … 100: 9 ticks
    assert [(e.first_time, e.time, e.counter, e.ticks) for e in made] == [(20.0, 100.0, 11, 9)]
    assert (timeline.extrapolated, len(timeline.transitions)) == (9, 1)
