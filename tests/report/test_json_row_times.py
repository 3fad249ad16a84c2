"""Keepalive row times in the JSON: written as json.dumps writes round(time, precision),
also where the writer takes its shorter way there (a fixed-point format, zeros dropped)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from analyzer.keepalive.model import KeepaliveEvent, KeepaliveRole
from analyzer.keepalive.state import LineState
from analyzer.report.json import _EventRows


def row_time(time: float, precision: int) -> str:
    event = KeepaliveEvent(time, 1, KeepaliveRole.SENT, 2, 1, LineState.UP)
    row = json.loads(_EventRows([event], precision).render("").strip("[]\n "), parse_float=str)
    return str(row["time"])


def dumped(time: float, precision: int) -> str:
    return json.dumps(round(time, precision))


def test_an_epoch_time_with_microseconds_keeps_its_six_places() -> None:
    assert row_time(1733472000.123456, 6) == "1733472000.123456"


def test_trailing_zeros_go_but_one_place_stays() -> None:
    assert row_time(1733472000.5, 6) == "1733472000.5"
    assert row_time(1733472000.0, 6) == "1733472000.0"


def test_a_time_that_rounds_up_carries_into_the_seconds() -> None:
    assert row_time(1733472000.9999996, 6) == "1733472001.0"


def test_an_integer_time_stays_an_integer() -> None:
    assert row_time(60, 6) == "60"  # type: ignore[arg-type]


def test_small_and_negative_times_are_written_as_round_gives_them() -> None:
    for time in (0.0, -0.0, 1e-7, 0.00012345, -3.25, 5e-5):
        assert row_time(time, 6) == dumped(time, 6), time


def test_nanosecond_epoch_times_are_written_as_round_gives_them() -> None:
    # Nine places are more than a float of an epoch time holds: round() and repr decide.
    assert row_time(1733472000.123456789, 9) == dumped(1733472000.123456789, 9)


@given(
    st.floats(min_value=-1e12, max_value=1e12, allow_nan=False) | st.floats(0, 1),
    st.integers(0, 9),
)
def test_any_time_is_written_as_json_dumps_writes_it_rounded(time: float, precision: int) -> None:
    assert row_time(time, precision) == dumped(time, precision)


@given(st.integers(0, 2**32 * 10**6), st.integers(1, 6))
def test_times_with_few_places_near_the_fast_range_end(micros: int, precision: int) -> None:
    time = micros / 10**6
    assert row_time(time, precision) == dumped(time, precision)
