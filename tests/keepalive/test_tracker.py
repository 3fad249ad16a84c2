"""The live tracker reaches the offline analysis' timeline from packets and the clock alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.keepalive.analysis import Settings
from analyzer.keepalive.state import LineState
from analyzer.keepalive.tracker import LiveEventKind, LiveTracker
from analyzer.pipeline.analyze import analyze_frames
from analyzer.read.capture import open_capture
from analyzer.read.packet import build_keepalive_request, decode_frame, reflect_request

CAPTURES = Path(__file__).resolve().parents[2] / "captures"


def _live(path: Path, settings: Settings) -> LiveTracker:
    tracker = LiveTracker(settings)
    with open_capture(path) as reader:
        for raw in reader:
            tracker.advance(raw.time)
            tracker.feed(raw.time, raw.number, decode_frame(raw.linktype, raw.data))
    return tracker


@pytest.mark.parametrize("name", ["healthy.pcap", "outage.pcap", "keyed.pcap"])
def test_live_transitions_equal_offline_ones(name: str) -> None:
    settings = Settings(period=5.0 if name == "outage.pcap" else None, retries=4)
    if name != "outage.pcap":
        settings = Settings(period=10.0 if name == "healthy.pcap" else 2.0, retries=4)
    with open_capture(CAPTURES / name) as reader:
        offline = analyze_frames(reader, settings)
    live = _live(CAPTURES / name, settings)
    offline_transitions = {
        o.address: [(t.time, t.state, t.counter, t.frame) for t in o.transitions]
        for tunnel in offline.tunnels
        for o in tunnel.originators
    }
    live_transitions = {
        key[1]: [(t.time, t.state, t.counter, t.frame) for t in tracked.timeline.transitions]
        for key, tracked in live._tracked.items()
    }
    assert live_transitions == offline_transitions


def test_line_goes_down_by_the_clock_when_nothing_arrives() -> None:
    tracker = LiveTracker(Settings(period=10.0, retries=3))
    request = build_keepalive_request("192.0.2.1", "198.51.100.1", outer_id=2, inner_id=1)
    tracker.feed(0.0, 1, decode_frame(101, request))
    tracker.feed(0.03, 2, decode_frame(101, reflect_request(request) or b""))
    # Silence. Ticks at 10, 20, 30 (counter 1, 2, 3) are declared missing half a period
    # late; the tick at 40 (= 10 + 10 x 3) finds 3 >= 3: down, as soon as it is overdue (45).
    assert tracker.advance(44.9)[-1].line_state is LineState.UP
    events = tracker.advance(45.0)
    assert [(e.kind, e.time) for e in events] == [
        (LiveEventKind.DOWN, 40.0),
        (LiveEventKind.EXTRAPOLATED, 40.0),
    ]
    (state,) = tracker.snapshot(50.0)
    assert (state.line_state, state.counter, state.downs, state.down_seconds) == (
        LineState.DOWN,
        4,
        1,
        10.0,
    )


def test_returned_keepalive_event_carries_rtt() -> None:
    tracker = LiveTracker()
    request = build_keepalive_request("192.0.2.1", "198.51.100.1", outer_id=2, inner_id=1)
    tracker.feed(0.0, 1, decode_frame(101, request))
    (event,) = tracker.feed(0.025, 2, decode_frame(101, reflect_request(request) or b""))
    assert (event.kind, event.rtt_ms, event.reply_ttl, event.counter) == (
        LiveEventKind.RETURNED,
        25.0,
        254,
        0,
    )
    assert event.to_json()["event"] == "returned"


def test_a_burst_of_requests_does_not_become_a_millisecond_period() -> None:
    tracker = LiveTracker()
    for i in range(5):
        request = build_keepalive_request(
            "192.0.2.1", "198.51.100.1", outer_id=2 * i + 2, inner_id=2 * i + 1
        )
        tracker.feed(0.001 * i, i + 1, decode_frame(101, request))
    (state,) = tracker.snapshot(0.005)
    assert state.period == 10.0  # the IOS default stands; nothing was extrapolated
    assert tracker.advance(1.0) == []
