"""The keepalive state machine as tables of (events → transitions), worked out from SPEC.md §2."""

from __future__ import annotations

import pytest

from analyzer.keepalive.state import (
    Event,
    EventKind,
    KeepaliveMachine,
    LineState,
    Transition,
    line_down_delay,
    missing_ticks,
    run,
    validate_settings,
)

S, R = EventKind.SEND, EventKind.REPLY
UP, DOWN = LineState.UP, LineState.DOWN


def _transitions(events: list[tuple[float, EventKind]], retries: int) -> list[Transition]:
    found = []
    for _event, step in run(
        (Event(t, kind, frame=i + 1) for i, (t, kind) in enumerate(events)), retries
    ):
        if step.transition is not None:
            found.append(step.transition)
    return found


# (description, retries, events, expected transitions as (time, state, counter, frame))
TABLE = [
    ("every keepalive answered: no transition", 3, [(0, S), (0.1, R), (10, S), (10.1, R)], []),
    (
        "retries 3: the 4th unanswered send finds counter 3 and takes the line down",
        3,
        [(0, S), (10, S), (20, S), (30, S)],
        [(30, DOWN, 3, 4)],
    ),
    (
        "retries 3: three unanswered sends are not enough",
        3,
        [(0, S), (10, S), (20, S)],
        [],
    ),
    (
        "one reply after the down brings the line up at the reply",
        3,
        [(0, S), (10, S), (20, S), (30, S), (40, S), (40.02, R)],
        [(30, DOWN, 3, 4), (40.02, UP, 0, 6)],
    ),
    (
        "a reply resets the counter before it reaches retries",
        2,
        [(0, S), (5, S), (5.1, R), (10, S), (15, S)],
        [],
    ),
    (
        "the seed's keepalive 5 4 outage: first unanswered at 35, down at 55",
        4,
        [(30, S), (30.02, R), (35, S), (40, S), (45, S), (50, S), (55, S), (60, S)],
        [(55, DOWN, 4, 7)],
    ),
    (
        "down only once while the failure lasts",
        1,
        [(0, S), (1, S), (2, S), (3, S)],
        [(1, DOWN, 1, 2)],
    ),
    (
        "a reply while up and at zero changes nothing",
        3,
        [(0, R), (1, R)],
        [],
    ),
    (
        "flapping: down, up, down again",
        1,
        [(0, S), (1, S), (1.5, R), (2, S), (3, S)],
        [(1, DOWN, 1, 2), (1.5, UP, 0, 3), (3, DOWN, 1, 5)],
    ),
]


@pytest.mark.parametrize(
    ("retries", "events", "expected"), [t[1:] for t in TABLE], ids=[t[0] for t in TABLE]
)
def test_transition_table(
    retries: int,
    events: list[tuple[float, EventKind]],
    expected: list[tuple[float, LineState, int, int]],
) -> None:
    assert [
        (t.time, t.state, t.counter, t.frame) for t in _transitions(events, retries)
    ] == expected


def test_counter_after_each_send_counts_unanswered_keepalives() -> None:
    machine = KeepaliveMachine(retries=5)
    assert [machine.send(float(t)).counter for t in range(4)] == [1, 2, 3, 4]


def test_reply_sets_counter_to_zero() -> None:
    machine = KeepaliveMachine(retries=5)
    machine.send(0.0)
    machine.send(1.0)
    assert machine.reply(1.5).counter == 0


def test_down_line_keeps_counting() -> None:
    machine = KeepaliveMachine(retries=1)
    machine.send(0.0)
    machine.send(1.0)
    step = machine.send(2.0)
    assert (step.counter, step.line_state, step.transition) == (3, DOWN, None)


def test_line_down_delay_is_period_times_retries() -> None:
    assert line_down_delay(10, 3) == 30
    assert line_down_delay(5, 4) == 20


@pytest.mark.parametrize(
    ("last", "until", "period", "inclusive", "expected"),
    [
        (0.0, 10.02, 10.0, False, []),  # jitter, no tick missing
        (0.0, 20.01, 10.0, False, [10.0]),  # one tick missing between sends
        (0.0, 14.0, 10.0, False, []),  # 10 is within half a period of 14: not invented
        (0.0, 45.0, 5.0, False, [5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0]),
        (0.0, 30.0, 10.0, True, [10.0, 20.0, 30.0]),  # to the capture's end, inclusive
        (0.0, 29.9, 10.0, True, [10.0, 20.0]),
        (5.0, 5.0, 10.0, True, []),
    ],
)
def test_missing_ticks(
    last: float, until: float, period: float, inclusive: bool, expected: list[float]
) -> None:
    assert missing_ticks(last, until, period, inclusive=inclusive) == pytest.approx(expected)


@pytest.mark.parametrize(("period", "retries"), [(0, 3), (32768, 3), (10, 0), (10, 256)])
def test_invalid_settings_are_refused(period: float, retries: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        validate_settings(period, retries)


def test_valid_extremes_are_accepted() -> None:
    validate_settings(1, 1)
    validate_settings(32767, 255)
