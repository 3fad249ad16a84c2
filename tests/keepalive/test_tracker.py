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


def _stalled_sender(burst: list[float]) -> list[tuple[float, LiveEventKind, int]]:
    """192.0.2.1 with `keepalive 2 3` sends at 0, 2, …, 38, answered 20 ms later, stalls,
    releases `burst` (queued keepalives 9 µs apart, each answered 20 ms later) and sends
    again 2 s after the burst. The clock is advanced every 0.1 s between packets. Returns
    (time, kind, counter) of every sent and extrapolated event from 39 s on."""
    tracker = LiveTracker(Settings(period=2.0, retries=3))
    packets: list[tuple[float, bytes]] = []
    for n, t in enumerate([2.0 * k for k in range(20)] + burst + [burst[0] + 2.0]):
        request = build_keepalive_request(
            "192.0.2.1", "198.51.100.1", outer_id=2 * n + 2, inner_id=2 * n + 1
        )
        packets += [(t, request), (t + 0.020, reflect_request(request) or b"")]
    packets.sort(key=lambda p: p[0])
    events = []
    clock = 0.0
    for frame, (t, packet) in enumerate(packets, start=1):
        while clock + 0.1 < t:
            clock += 0.1
            events += tracker.advance(clock)
        events += tracker.feed(t, frame, decode_frame(101, packet))
    return [
        (e.time, e.kind, e.counter)
        for e in events
        if e.time > 39.0 and e.kind is not LiveEventKind.RETURNED
    ]


def test_keepalives_released_after_a_stall_stand_for_the_ticks_already_missed() -> None:
    # Ticks 40 and 42 are declared missing at 41 and 43 (counter 1, 2). The burst's first
    # send is the tick of 44 (2 < 3: no down; counter 3); the other two are the queued
    # keepalives of 40 and 42, already counted: the counter stays 3, the replies reset it,
    # and the send at 46 finds 0. No down, nothing extrapolated after the burst.
    assert _stalled_sender([44.0, 44.000009, 44.000018]) == [
        (40.0, LiveEventKind.EXTRAPOLATED, 1),
        (42.0, LiveEventKind.EXTRAPOLATED, 2),
        (44.0, LiveEventKind.SENT, 3),
        (44.000009, LiveEventKind.SENT, 3),
        (44.000018, LiveEventKind.SENT, 3),
        (46.0, LiveEventKind.SENT, 1),
    ]


def test_a_delayed_tick_sent_with_the_next_is_not_counted_twice() -> None:
    # The endpoint: tick 40 released 9 µs before the one of 42. Tick 40 is declared
    # missing at 41 (counter 1); the send at 41.999991 counts the tick of 42 (2), the one at
    # 42 is 40's queued keepalive (still 2); no phantom tick before the send at 43.999991.
    assert _stalled_sender([41.999991, 42.0]) == [
        (40.0, LiveEventKind.EXTRAPOLATED, 1),
        (41.999991, LiveEventKind.SENT, 2),
        (42.0, LiveEventKind.SENT, 2),
        (43.999991, LiveEventKind.SENT, 1),
    ]
