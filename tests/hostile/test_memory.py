"""Memory per tunnel stays small: flows whose requests look alike share one Traits; a live
collector (which keeps taking frames) gives a flow its own before counting on in it."""

from __future__ import annotations

from analyzer.keepalive.analysis import Settings
from analyzer.keepalive.collect import collect_frames
from analyzer.pipeline.analyze import analyze_collected
from tests.builders import Capture

PEER = "198.51.100.1"


def three_idle_tunnels() -> Capture:
    """Three originators with one unanswered keepalive each; the third with TTL 64."""
    capture = Capture()
    capture.request(0, "192.0.2.1", PEER)
    capture.request(1, "192.0.2.2", PEER)
    capture.request(2, "192.0.2.3", PEER, ttl=64)
    return capture


def _traits(final: bool) -> dict[str, object]:
    collector = collect_frames(three_idle_tunnels().raw_frames(), ["idle.pcap"])
    analysis = analyze_collected(collector, Settings(), final=final)
    return {o.address: o.traits for t in analysis.tunnels for o in t.originators}


def test_a_finished_capture_shares_equal_traits() -> None:
    traits = _traits(final=True)
    assert traits["192.0.2.1"] is traits["192.0.2.2"]
    assert traits["192.0.2.3"] is not traits["192.0.2.1"]  # outer TTL 64, not 255


def test_a_collector_that_goes_on_counts_each_flow_on_its_own() -> None:
    capture = three_idle_tunnels()
    frames = capture.raw_frames()
    collector = collect_frames(frames[:2], ["idle.pcap"])
    analyze_collected(collector, Settings(), final=False)  # the traits counted so far
    capture.request(3, "192.0.2.1", PEER, ttl=64)  # 192.0.2.1 goes on, now with TTL 64
    collector.add(capture.raw_frames()[-1])
    analysis = analyze_collected(collector, Settings(), final=False)
    traits = {
        o.address: o.traits for t in analysis.tunnels for o in t.originators if o.traits is not None
    }
    assert (traits["192.0.2.1"].requests, traits["192.0.2.1"].outer_ttls) == (2, {255: 1, 64: 1})
    assert (traits["192.0.2.2"].requests, traits["192.0.2.2"].outer_ttls) == (1, {255: 1})


def test_a_finished_capture_forgets_the_pairing_state_but_keeps_the_logs() -> None:
    collector = collect_frames(three_idle_tunnels().raw_frames(), ["idle.pcap"])
    analyze_collected(collector, Settings(), final=True)
    assert len(collector.pairer.originators) == 3
    assert collector.pairer._inner_owner == {} and collector.pairer._tunnels == {}
