"""The collector's trait counts: flows whose requests look alike share one Traits, and a
flow that goes on counting (a live source asks for the traits again) gets its own."""

from __future__ import annotations

from analyzer.keepalive.collect import Collector
from analyzer.read.capture import RawFrame
from analyzer.read.packet import build_ethernet, build_keepalive_request

ETHERNET = 1  # DLT_EN10MB


def request(number: int, originator: str, peer: str, ttl: int = 255) -> RawFrame:
    """A keepalive request of `originator` (outer TTL `ttl`) as frame `number`."""
    data = build_ethernet(build_keepalive_request(originator, peer, ttl=ttl))
    return RawFrame(number, 1764115200.0 + number, ETHERNET, data, len(data), 0, offset=0)


def test_two_flows_whose_requests_look_alike_count_the_same() -> None:
    collector = Collector(["x.pcap"])
    collector.add(request(1, "192.0.2.1", "198.51.100.1"))
    collector.add(request(2, "192.0.2.2", "198.51.100.1"))
    (first, second) = collector.traits.values()
    assert (first.requests, first.outer_ttls) == (1, {255: 1})
    assert (second.requests, second.outer_ttls) == (1, {255: 1})


def test_counting_on_in_one_flow_leaves_the_alike_flow_as_it_was() -> None:
    collector = Collector(["x.pcap"])
    collector.add(request(1, "192.0.2.1", "198.51.100.1"))
    collector.add(request(2, "192.0.2.2", "198.51.100.1"))
    assert len(collector.traits) == 2  # counted once: the two flows alike
    collector.add(request(3, "192.0.2.1", "198.51.100.1", ttl=64))
    counts = {flow[0]: traits for flow, traits in collector.traits.items()}
    assert (counts["192.0.2.1"].requests, counts["192.0.2.1"].outer_ttls) == (2, {255: 1, 64: 1})
    assert (counts["192.0.2.2"].requests, counts["192.0.2.2"].outer_ttls) == (1, {255: 1})
