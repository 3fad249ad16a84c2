"""Analysis of captures built from known scenarios; expected values are worked out by hand."""

from __future__ import annotations

import pytest

from analyzer.keepalive.analysis import Settings, infer_period
from analyzer.keepalive.model import Analysis, KeepaliveRole, OriginatorResult, ValueSource
from analyzer.keepalive.state import LineState
from analyzer.pipeline.analyze import analyze_frames
from tests.builders import START, Capture

A, B = "128.8.8.8", "129.9.9.9"  # the seed technote's tunnel endpoints


def at(t: float) -> object:
    """Epoch time START + t, to the microsecond (a relative tolerance would span minutes)."""
    return pytest.approx(START + t, abs=1e-6)


def _originator(analysis: Analysis, address: str) -> OriginatorResult:
    return next(o for t in analysis.tunnels for o in t.originators if o.address == address)


def seed_outage_capture(*, data_pps: int = 10) -> Capture:
    """The seed's routers, `keepalive 5 4` on both, captured next to A (128.8.8.8).

    Path: 10 ms each way; both directions fail during [30.5, 70.5). A sends at 0, 5, …, 95;
    B at 2, 7, …, 97. A reflects B's keepalives 50 µs after they arrive. A sends `data_pps`
    data packets per second at (i + 0.5)/pps while its line protocol is up (until 55, again
    from 75.02, per the hand-worked timeline in the tests below).
    """
    cap = Capture()

    def path_up(t: float) -> bool:
        return not 30.5 <= t < 70.5

    for k in range(20):
        t = 5.0 * k
        request = cap.request(t, A, B)
        if path_up(t) and path_up(t + 0.01):
            cap.reply(t + 0.02, request)
    for k in range(20):
        t = 2.0 + 5.0 * k
        if path_up(t):
            request = cap.request(t + 0.01, B, A)
            cap.reply(t + 0.01005, request)
    for i in range(100 * data_pps):
        t = (i + 0.5) / data_pps
        if t < 55.0 or t >= 75.02:
            cap.data(t, A, B)
    return cap.sorted()


def test_seed_outage_takes_a_down_period_times_retries_after_first_unanswered() -> None:
    cap = seed_outage_capture()
    analysis = analyze_frames(cap.raw_frames(), Settings(period=5, retries=4))
    a = _originator(analysis, A)
    # First unanswered send at 35 (counter 1), 40 (2), 45 (3), 50 (4); 55 finds 4 >= 4.
    down, up = a.transitions
    assert down.state is LineState.DOWN
    assert down.time == at(35 + 5 * 4)
    assert down.counter == 4
    # The send at 75 is the first answered one again: its reply at 75.02 brings A up.
    assert up.state is LineState.UP
    assert up.time == at(75.02)
    assert a.down_seconds == pytest.approx(20.02)


def test_down_transition_carries_the_frame_of_the_send() -> None:
    cap = seed_outage_capture()
    analysis = analyze_frames(cap.raw_frames(), Settings(period=5, retries=4))
    down = _originator(analysis, A).transitions[0]
    sent_at_55 = next(
        e
        for e in _originator(analysis, A).events
        if e.role is KeepaliveRole.SENT and e.time == at(55)
    )
    assert down.frame == sent_at_55.frame is not None


def test_seed_outage_counts() -> None:
    a = _originator(
        analyze_frames(seed_outage_capture().raw_frames(), Settings(period=5, retries=4)), A
    )
    # 20 sends (0..95); 35..70 unanswered = 8.
    assert (a.sent, a.returned, a.unanswered) == (20, 12, 8)
    assert a.final_state is LineState.UP
    assert (a.period, a.period_source, a.retries, a.retries_source) == (
        5.0,
        ValueSource.CLI,
        4,
        ValueSource.CLI,
    )


def test_counter_at_each_send_of_the_outage() -> None:
    a = _originator(
        analyze_frames(seed_outage_capture().raw_frames(), Settings(period=5, retries=4)), A
    )
    counters = {
        round(e.time - START): e.counter
        for e in a.events
        if e.role is KeepaliveRole.SENT and 30 <= e.time - START <= 75
    }
    assert counters == {30: 1, 35: 1, 40: 2, 45: 3, 50: 4, 55: 5, 60: 6, 65: 7, 70: 8, 75: 9}


def test_blackhole_counts_data_between_failure_and_down() -> None:
    a = _originator(
        analyze_frames(seed_outage_capture().raw_frames(), Settings(period=5, retries=4)), A
    )
    # 10 packets/s: [35, 55) holds 200 data packets, [30, 55) holds 250.
    assert (a.blackholed_packets.min, a.blackholed_packets.max) == (200, 250)


def test_peer_whose_requests_never_arrive_is_extrapolated_from_its_period() -> None:
    b = _originator(
        analyze_frames(seed_outage_capture().raw_frames(), Settings(period=5, retries=4)), B
    )
    # Seen at A: B's requests at 2.01 … 27.01 and 72.01 … 97.01. Ticks 32.01 … 67.01 are
    # missing (8); counter 1, 2, 3, 4 at 32.01 … 47.01, so 52.01 takes the line down.
    assert (b.sent, b.returned, b.extrapolated) == (12, 12, 8)
    down, up = b.transitions
    assert (down.state, down.counter, down.frame) == (LineState.DOWN, 4, None)
    assert down.time == at(52.01)
    assert up.state is LineState.UP
    assert up.time == at(72.01005)


def test_vantage_is_the_endpoint_that_reflects_within_microseconds() -> None:
    tunnel = analyze_frames(seed_outage_capture().raw_frames()).tunnels[0]
    assert tunnel.vantage == A


def test_period_is_inferred_when_not_configured() -> None:
    a = _originator(analyze_frames(seed_outage_capture().raw_frames()), A)
    assert (a.period, a.period_source) == (5.0, ValueSource.INFERRED)
    assert (a.retries, a.retries_source) == (3, ValueSource.DEFAULT)


def test_default_retries_three_take_the_line_down_at_the_fourth_unanswered_send() -> None:
    a = _originator(analyze_frames(seed_outage_capture().raw_frames()), A)
    # Unanswered from 35: counter 1, 2, 3 after 35, 40, 45; the send at 50 finds 3 >= 3.
    assert a.transitions[0].time == at(50)


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ([0, 10.003, 19.998, 30.001, 40.0], 10.0),  # jitter
        ([0, 20, 40, 50, 70], 10.0),  # most ticks missing
        ([0, 2.5, 5.0, 7.5], 2.5),  # sub-second precision kept
        ([0], None),
        ([], None),
    ],
)
def test_infer_period(times: list[float], expected: float | None) -> None:
    assert infer_period(times) == expected


def keyed_capture() -> Capture:
    """Healthy tunnel 192.0.2.1 ↔ 198.51.100.1, key 42, VLAN 100, both keepalive 10 3."""
    cap = Capture(vlans=(100,))
    for k in range(6):
        request = cap.request(10.0 * k, "192.0.2.1", "198.51.100.1", key=42)
        cap.reply(10.0 * k + 0.030, request)
        request = cap.request(10.0 * k + 4.0 + 0.015, "198.51.100.1", "192.0.2.1", key=42)
        cap.reply(10.0 * k + 4.0 + 0.015 + 0.00004, request)
    return cap.sorted()


def test_keyed_tunnel_is_identified_by_key() -> None:
    analysis = analyze_frames(keyed_capture().raw_frames())
    assert [(t.endpoints, t.key) for t in analysis.tunnels] == [(("192.0.2.1", "198.51.100.1"), 42)]


def test_keyed_tunnel_pairs_every_reply() -> None:
    analysis = analyze_frames(keyed_capture().raw_frames())
    counts = [
        (o.address, o.sent, o.returned, o.unanswered) for o in analysis.tunnels[0].originators
    ]
    assert counts == [("192.0.2.1", 6, 6, 0), ("198.51.100.1", 6, 6, 0)]


def test_rtt_and_reply_ttl_per_pair() -> None:
    analysis = analyze_frames(keyed_capture().raw_frames())
    a = _originator(analysis, "192.0.2.1")
    assert a.rtt_ms is not None and a.rtt_ms.median == pytest.approx(30.0)
    assert {e.reply_ttl for e in a.events if e.role is KeepaliveRole.SENT} == {254}


def test_reply_with_another_key_is_not_paired_by_key_first() -> None:
    cap = Capture()
    request = cap.request(0.0, "192.0.2.1", "198.51.100.1", key=7)
    cap.reply(0.02, request)
    analysis = analyze_frames(cap.raw_frames())
    assert _originator(analysis, "192.0.2.1").returned == 1


def test_trustsec_metadata_requests_are_recognised() -> None:
    cap = Capture()
    request = cap.request(0.0, "192.0.2.1", "198.51.100.1", metadata_sgt=16)
    cap.reply(0.02, request)
    a = _originator(analyze_frames(cap.raw_frames()), "192.0.2.1")
    assert (a.sent, a.returned, a.variants) == (1, 1, ["cisco-metadata"])


def test_inner_addresses_not_mirroring_outer_are_counted_and_recorded() -> None:
    # NAT: the originator's inner header names its private WAN address 10.0.0.2.
    cap = Capture()
    for k in range(3):
        request = cap.request(10.0 * k, "203.0.113.5", "198.51.100.1", inner_dst="10.0.0.2")
        cap.reply(10.0 * k + 0.02, request)
    a = _originator(analyze_frames(cap.raw_frames()), "203.0.113.5")
    assert (a.sent, a.returned) == (3, 3)
    assert a.inner_addresses == ("198.51.100.1", "10.0.0.2")
    assert "address-mismatch" in a.variants


def test_ipv6_inner_keepalives_pair_by_order() -> None:
    cap = Capture()
    r1 = cap.request(0.0, "2001:db8::1", "2001:db8::2")
    cap.request(10.0, "2001:db8::1", "2001:db8::2")  # lost
    r3 = cap.request(20.0, "2001:db8::1", "2001:db8::2")
    cap.reply(0.05, r1)
    cap.reply(20.05, r3)
    a = _originator(analyze_frames(cap.sorted().raw_frames()), "2001:db8::1")
    assert (a.sent, a.returned, a.unanswered) == (3, 2, 1)
    answered = [
        round(e.time - START, 2)
        for e in a.events
        if e.role is KeepaliveRole.SENT and e.partner_frame
    ]
    assert answered == [0.0, 20.0]


def test_duplicate_frames_are_counted_once() -> None:
    cap = Capture()
    request = cap.request(0.0, "192.0.2.1", "198.51.100.1")
    cap.add(0.0001, request)  # the same packet captured on a second interface
    cap.reply(0.02, request)
    a = _originator(analyze_frames(cap.raw_frames()), "192.0.2.1")
    assert (a.sent, a.returned, a.duplicates) == (1, 1, 1)


def test_reply_without_its_request_still_resets_the_counter() -> None:
    cap = Capture()
    for k in range(5):
        cap.request(10.0 * k, "192.0.2.1", "198.51.100.1")
    # A reply whose request the capture missed (IP ID 1), addressed to 192.0.2.1.
    stray = cap.request(45.0, "192.0.2.1", "198.51.100.1")
    cap.frames.pop()
    cap.reply(45.02, stray)
    a = _originator(analyze_frames(cap.raw_frames(), Settings(retries=3)), "192.0.2.1")
    # Sends at 0..40 unanswered: the send at 30 finds 3 >= 3 (down); the reply at 45.02: up.
    assert [(t.state, round(t.time - START, 2)) for t in a.transitions] == [
        (LineState.DOWN, 30.0),
        (LineState.UP, 45.02),
    ]


def test_sending_stops_and_missing_ticks_reach_to_the_capture_end() -> None:
    cap = Capture()
    for k in range(3):
        request = cap.request(10.0 * k, "192.0.2.1", "198.51.100.1")
        cap.reply(10.0 * k + 0.02, request)
    cap.data(60.0, "198.51.100.1", "192.0.2.1")  # the capture runs on until 60
    a = _originator(analyze_frames(cap.raw_frames(), Settings(retries=3)), "192.0.2.1")
    # Ticks extrapolated at 30, 40, 50, 60: counter 1, 2, 3, then 60 finds 3 >= 3.
    assert a.extrapolated == 4
    assert [(t.state, round(t.time - START, 2), t.frame) for t in a.transitions] == [
        (LineState.DOWN, 60.0, None)
    ]
    assert a.final_state is LineState.DOWN


def test_a_tunnel_without_keepalives_is_listed_with_its_data_each_way() -> None:
    cap = Capture()
    cap.data(0.0, "192.0.2.1", "198.51.100.1")
    cap.data(1.0, "198.51.100.1", "192.0.2.1")
    cap.data(2.5, "192.0.2.1", "198.51.100.1")
    analysis = analyze_frames(cap.raw_frames())
    assert (analysis.source.gre_packets, analysis.source.keepalive_packets) == (3, 0)
    (tunnel,) = analysis.tunnels
    assert (tunnel.endpoints, tunnel.key, tunnel.originators) == (
        ("192.0.2.1", "198.51.100.1"),
        None,
        [],
    )
    assert tunnel.data_packets == 3
    assert [(d.source, d.packets, d.first, d.last) for d in tunnel.directions] == [
        ("192.0.2.1", 2, at(0.0), at(2.5)),
        ("198.51.100.1", 1, at(1.0), at(1.0)),
    ]


def test_tunnels_without_keepalives_come_after_those_with() -> None:
    cap = Capture()
    cap.data(0.0, "10.0.0.1", "10.0.0.2")  # sorts first, but carries no keepalive
    cap.reply(1.02, cap.request(1.0, A, B))
    analysis = analyze_frames(cap.raw_frames())
    assert [(t.endpoints, len(t.originators)) for t in analysis.tunnels] == [
        ((A, B), 1),
        (("10.0.0.1", "10.0.0.2"), 0),
    ]


# ------------------------------------------------------------------ bursts and the period


def burst_capture(burst_at: tuple[float, float], sends: list[float]) -> Capture:
    """A (128.8.8.8) and B (129.9.9.9), both `keepalive 2 3`, captured next to A.

    A's requests are answered 20 ms later (its two burst requests too); B sends at
    1.01, 3.01, …, 79.01 and A reflects them in 50 µs.
    """
    cap = Capture()
    for t in sorted([*sends, *burst_at]):
        cap.reply(t + 0.020, cap.request(t, A, B))
    for k in range(40):
        t = 1.01 + 2.0 * k
        cap.reply(t + 0.00005, cap.request(t, B, A))
    return cap.sorted()


# The capture: A stalls at its tick of 40 and releases that keepalive 9 µs before
# the one of 42. Sends 0, 2, …, 38 (20), 41.999991, 42 and 44, …, 84 (21): 43 sends, 42
# intervals of which 40 are 2 s, one 3.999991 s and one 9 µs.
DELAYED_TICK = burst_capture(
    (41.999991, 42.0), [2.0 * k for k in range(20)] + [44.0 + 2.0 * k for k in range(21)]
)
# Released half a period off the tick phase: sends 0, 2, …, 40 (21), 41, 41.000009,
# 42, …, 80 (20): the intervals around the burst are 1 s and 0.999991 s.
MID_PHASE = burst_capture(
    (41.0, 41.000009), [2.0 * k for k in range(21)] + [42.0 + 2.0 * k for k in range(20)]
)


@pytest.mark.parametrize("capture", [DELAYED_TICK, MID_PHASE], ids=["delayed", "mid-phase"])
def test_a_burst_of_two_requests_does_not_halve_the_inferred_period(capture: Capture) -> None:
    a = _originator(analyze_frames(capture.raw_frames()), A)
    assert (a.period, a.period_source) == (2.0, ValueSource.INFERRED)


def test_period_agreement_counts_the_intervals_that_are_whole_periods() -> None:
    a = _originator(analyze_frames(DELAYED_TICK.raw_frames()), A)
    # 40 intervals of 2 s plus 3.999991 s (two periods, a missed tick) agree; 9 µs does not.
    assert (a.period_agreeing, a.period_intervals) == (41, 42)


def test_a_burst_is_reported_with_its_time_and_size() -> None:
    a = _originator(analyze_frames(DELAYED_TICK.raw_frames()), A)
    (burst,) = a.bursts
    assert burst.time == at(41.999991)
    assert burst.sends == 2
    assert burst.span == pytest.approx(0.000009, abs=1e-7)
    # Frames: A's 20 requests and replies before it, B's 20 (1.01 … 39.01) and 21 (41.01).
    assert burst.frame == 2 * 20 + 2 * 21 + 1


@pytest.mark.parametrize("capture", [DELAYED_TICK, MID_PHASE], ids=["delayed", "mid-phase"])
def test_a_burst_makes_no_phantom_tick_and_no_down(capture: Capture) -> None:
    a = _originator(analyze_frames(capture.raw_frames()), A)
    # The burst's first send is the late tick: nothing is missing before it, and every
    # request is answered 20 ms later, so the counter never passes 2.
    assert a.extrapolated == 0
    assert a.transitions == []
    assert (a.sent, a.returned) == (43, 43)
    assert max(e.counter for e in a.events) == 2


def test_burst_counter_counts_each_of_its_sends() -> None:
    a = _originator(analyze_frames(DELAYED_TICK.raw_frames()), A)
    around = [(e.role, e.counter) for e in a.events if START + 41.9 < e.time < START + 42.1]
    # Reply to 38 came at 38.02 (counter 0): the burst's sends count 1, 2; replies reset.
    assert around == [
        (KeepaliveRole.SENT, 1),
        (KeepaliveRole.SENT, 2),
        (KeepaliveRole.RETURNED, 0),
        (KeepaliveRole.RETURNED, 0),
    ]


def test_a_burst_raises_no_period_mismatch_with_the_right_period() -> None:
    analysis = analyze_frames(DELAYED_TICK.raw_frames(), Settings(period=2))
    codes = [d.code for t in analysis.tunnels for d in t.diagnoses]
    assert "period-mismatch" not in codes
    assert _originator(analysis, A).extrapolated == 0


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ([2.0 * k for k in range(40)] + [79.0], 2.0),  # a timer reset: one odd interval
        ([0, 0.000009, 0.000018], None),  # nothing but a burst: no period
    ],
)
def test_infer_period_follows_the_dominant_interval(
    times: list[float], expected: float | None
) -> None:
    assert infer_period(times) == expected


def test_requests_captured_twice_change_neither_period_nor_counter() -> None:
    # A `keepalive 2 3`, every request seen twice 3 µs apart (two capture interfaces) and
    # answered 20 ms later: the second copy is a duplicate, not a burst.
    cap = Capture()
    for k in range(20):
        request = cap.request(2.0 * k, A, B)
        cap.add(2.0 * k + 0.000003, request)
        cap.reply(2.0 * k + 0.020, request)
    a = _originator(analyze_frames(cap.raw_frames()), A)
    assert (a.period, a.sent, a.duplicates, a.bursts) == (2.0, 20, 20, [])
    assert (a.period_agreeing, a.period_intervals) == (19, 19)
    assert max(e.counter for e in a.events) == 1


def test_a_configured_period_longer_than_the_real_one_makes_no_bursts() -> None:
    # A sends every 1.999 s (answered) but --period 10 says otherwise: 1.999 s is under a
    # fifth of 10 s, yet it is A's own rhythm (observed 2 s), not a burst.
    cap = Capture()
    for k in range(10):
        cap.reply(1.999 * k + 0.02, cap.request(1.999 * k, A, B))
    analysis = analyze_frames(cap.raw_frames(), Settings(period=10))
    a = _originator(analysis, A)
    assert (a.period, a.observed_period, a.bursts) == (10.0, 2.0, [])
    assert "period-mismatch" in [d.code for t in analysis.tunnels for d in t.diagnoses]


def test_the_silence_between_capture_segments_is_no_send_interval() -> None:
    # A `keepalive 2 3` sends at 0, 2, …, 38 and again at 36000.7, …, 36038.7 (the capture
    # stopped for ten hours), each answered 20 ms later: 19 intervals of 2 s in each part.
    # The 35962.7 s between the parts is not an interval of A's: 38 of 38 agree.
    cap = Capture()
    for base in (0.0, 36000.7):
        for k in range(20):
            t = base + 2.0 * k
            cap.reply(t + 0.020, cap.request(t, A, B))
    a = _originator(analyze_frames(cap.raw_frames()), A)
    assert len(a.segments) == 2
    assert (a.period, a.period_agreeing, a.period_intervals) == (2.0, 38, 38)


def test_a_request_captured_again_after_its_reply_is_a_duplicate() -> None:
    # A `keepalive 2 3` sends at 0, 2, …, 38, answered 20 ms later; each request shows up
    # once more 10 ms after its reply (overlapping ring files, a second capture point):
    # same IP ID, same packet. 20 sent, 20 duplicates, no burst, the counter never passes 1.
    cap = Capture()
    for k in range(20):
        request = cap.request(2.0 * k, A, B)
        cap.reply(2.0 * k + 0.020, request)
        cap.add(2.0 * k + 0.030, request)
    a = _originator(analyze_frames(cap.raw_frames()), A)
    assert (a.sent, a.duplicates, a.bursts) == (20, 20, [])
    assert max(e.counter for e in a.events) == 1


def test_two_sends_years_apart_give_no_period_and_no_timeline_across_them() -> None:
    # A merged file: A's one answered keepalive at 0, another 16 years later. 504,576,000 s
    # is no keepalive period (IOS: at most 32767 s, SPEC §2): the period is the default
    # 10 s, so the silence is a gap (over 3600 s), each exchange its own segment, no tick
    # extrapolated and no line protocol down.
    cap = Capture()
    for t in (0.0, 504576000.3):
        cap.reply(t + 0.020, cap.request(t, A, B))
    analysis = analyze_frames(cap.raw_frames())
    a = _originator(analysis, A)
    assert (a.period, a.period_source) == (10.0, ValueSource.DEFAULT)
    assert (a.period_agreeing, a.period_intervals) == (0, 0)
    assert len(a.segments) == 2
    assert (a.extrapolated, a.transitions) == (0, [])
    assert analysis.source.gaps == [(START + 0.020, START + 504576000.3)]


def test_a_silence_of_years_is_no_candidate_period() -> None:
    # Intervals 2 s and about 16 years: one each, and the longer is no IOS period.
    assert infer_period([0.0, 2.0, 504576000.3]) == 2.0


def test_one_interval_of_hours_does_not_hide_a_gap_from_other_tunnels() -> None:
    # A merged file, two parts 8 hours apart. A `keepalive 10 3` sends at 0, 10, …, 100 and
    # 28800, …, 28900, answered 20 ms later; C sends once in each part (50 and 28850).
    # C's one interval, 28800 s, is no evidence of a period: the silence from 100.02 to
    # 28800 (over 3600 s) is a gap, so A's timeline is not extrapolated across it (else
    # missing ticks from 110 on and a down at 140).
    C, D = "192.0.2.7", "198.51.100.7"
    cap = Capture()
    for base in (0.0, 28800.0):
        for k in range(11):
            cap.reply(base + 10.0 * k + 0.020, cap.request(base + 10.0 * k, A, B))
        cap.reply(base + 50.02, cap.request(base + 50.0, C, D))
    analysis = analyze_frames(cap.sorted().raw_frames())
    a, c = _originator(analysis, A), _originator(analysis, C)
    assert analysis.source.gaps == [(START + 100.02, START + 28800.0)]
    assert (a.period, a.extrapolated, a.transitions, len(a.segments)) == (10.0, 0, [], 2)
    # C's period is then IOS's default 10 s: in each part its ticks after 50 go unanswered
    # (60, 70, 80: counter 1-3) and the one at 90 finds 3 >= 3: down at 90 and at 28890.
    assert (c.period, c.period_source) == (10.0, ValueSource.DEFAULT)
    assert [t.time for t in c.transitions] == [at(90.0), at(28890.0)]


def _seen_on_two_interfaces(copies: int) -> Analysis:
    """A's requests every 10 s (0 … 50) answered after 20 ms, and a data packet to B every
    second; with copies=2 every packet again 30 µs later, as a capture on Linux's 'any'
    interface of a router forwarding the tunnel sees it (ingress, then egress)."""
    cap = Capture()
    peer = B
    steps = [(10.0 * k, "send") for k in range(6)] + [(k + 0.5, "data") for k in range(60)]
    for t, what in sorted(steps):
        if what == "data":
            for copy in range(copies):
                cap.data(t + copy * 30e-6, A, peer)
            continue
        request = cap.request(t, A, peer)
        for copy in range(1, copies):
            cap.add(t + copy * 30e-6, request)
        for copy in range(copies):
            cap.reply(t + 0.02 + copy * 30e-6, request)
    return analyze_frames(cap.raw_frames())


def test_keepalives_seen_twice_say_the_data_is_likely_counted_twice() -> None:
    o = _originator(_seen_on_two_interfaces(2), A)
    assert o.duplicates == 12  # 6 requests and 6 replies, each once more
    assert any("its data packets are likely counted twice" in note for note in o.notes)


def test_keepalives_seen_once_say_nothing_of_duplicates() -> None:
    o = _originator(_seen_on_two_interfaces(1), A)
    assert o.duplicates == 0
    assert not any("seen twice" in note for note in o.notes)


def test_a_capture_that_starts_in_a_failure_says_the_down_time_may_be_earlier() -> None:
    """A's sends at 0, 10, 20 unanswered (counter 3), the send at 30 finds 3 >= 3: down at
    30 — if the counter was 0 when the capture began, which nothing in it shows."""
    cap = Capture()
    for k in range(5):
        request = cap.request(10.0 * k, A, B)
        if k == 4:
            cap.reply(40.02, request)
    o = _originator(analyze_frames(cap.raw_frames(), Settings(retries=3)), A)
    assert [(t.state, t.time) for t in o.transitions][:1] == [(LineState.DOWN, at(30))]
    assert any("the failure may have begun before the capture did" in n for n in o.notes)


def test_a_failure_after_an_answered_keepalive_needs_no_such_note() -> None:
    cap = Capture()
    for k in range(6):
        request = cap.request(10.0 * k, A, B)
        if k in (0, 5):
            cap.reply(10.0 * k + 0.02, request)
    o = _originator(analyze_frames(cap.raw_frames(), Settings(retries=3)), A)
    assert [t.state for t in o.transitions][:1] == [LineState.DOWN]  # at 40
    assert not any("before the capture did" in n for n in o.notes)


def test_downs_on_extrapolated_ticks_alone_suggest_a_period_changed() -> None:
    """A's sends every 10 s (0 … 90), then every 2 s (100 … 198), all answered after 20 ms:
    the period inferred is 2 s (49 of the 59 intervals), so four ticks are extrapolated in
    each of the ten 10 s intervals (0-10 … 90-100) and the fourth, finding counter 3
    (retries 3), takes the line down; the real send after it brings it up again. No send
    of A is unanswered: the note says the downs are the extrapolated ticks' alone."""
    cap = Capture()
    times = [10.0 * k for k in range(10)] + [100.0 + 2.0 * k for k in range(50)]
    for t in times:
        cap.reply(t + 0.02, cap.request(t, A, B))
    o = _originator(analyze_frames(cap.raw_frames(), Settings(retries=3)), A)
    assert (o.period, o.unanswered, o.extrapolated) == (2.0, 0, 40)
    assert sum(t.state is LineState.DOWN for t in o.transitions) == 10
    (note,) = [n for n in o.notes if "although every keepalive" in n]
    assert "only the 40 ticks extrapolated between its sends (at the 2 s period)" in note


def test_a_peer_whose_sends_are_lost_before_the_capture_gets_no_such_note() -> None:
    """captures/outage.pcap is taken next to 192.0.2.1: 198.51.100.1's sends during the
    outage never reach it, so its ticks there are extrapolated for a reason."""
    from pathlib import Path

    from analyzer.read.capture import open_capture

    outage = Path(__file__).resolve().parents[2] / "captures" / "outage.pcap"
    with open_capture(outage) as reader:
        analysis = analyze_frames(list(reader))
    o = _originator(analysis, "198.51.100.1")
    assert o.unanswered == 0 and o.extrapolated > 0 and o.transitions
    assert not any("although every keepalive" in n for n in o.notes)
