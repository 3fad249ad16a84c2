"""The text report's wording: counts agree with their nouns, bursts and doubts are said."""

from __future__ import annotations

import io

from analyzer.keepalive.analysis import Settings
from analyzer.pipeline.analyze import analyze_frames
from analyzer.report.text import write_text
from tests.builders import Capture
from tests.keepalive.test_analysis import DELAYED_TICK

A, B = "192.0.2.1", "198.51.100.1"


def report(capture: Capture, settings: Settings | None = None) -> str:
    stream = io.StringIO()
    write_text(analyze_frames(capture.raw_frames(), settings), stream, width=200)
    return stream.getvalue()


def test_one_of_each_is_singular() -> None:
    cap = Capture()
    cap.reply(0.02, cap.request(0.0, A, B))  # frames 1, 2
    cap.data(0.5, A, B)  # frame 3
    text = report(cap)
    assert ": 3 packets, 3 GRE, 2 keepalive packets, 0 malformed" in text
    assert "key none, 1 data packet;" in text
    assert "1 keepalive sent, 1 returned, 0 unanswered" in text
    assert "0 down transitions, down 0.000 s; blackholed 0-0 of 1 data packet sent" in text


def test_a_single_extrapolated_tick_is_singular() -> None:
    cap = Capture()
    # Sends at 0 and 20 with period 10: the tick at 10 is missing.
    cap.reply(0.02, cap.request(0.0, A, B))
    cap.reply(20.02, cap.request(20.0, A, B))
    assert "2 keepalives sent, 2 returned, 0 unanswered, 1 tick extrapolated" in report(
        cap, Settings(period=10)
    )


def test_a_burst_and_the_intervals_that_disagree_are_said() -> None:
    text = report(DELAYED_TICK)
    # 41 of the 42 intervals are whole periods of 2 s; the burst is 9 µs long.
    assert "Keepalive set (2 sec, inferred from 41 of 42 send intervals)" in text
    assert "burst: 2 keepalives within 0.009 ms at 2025-11-26 00:00:41.999991 (frame 83)" in text
