"""The simulator features the diagnosis scenarios rely on (vendor variants, filters, keys)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from analyzer.read.capture import open_capture
from analyzer.read.packet import Decoded, FrameKind, decode_frame
from analyzer.simulate import (
    Keepalive,
    ScenarioError,
    load_scenario,
    parse_scenario,
    simulate,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "diagnose"
T0 = 1764115200.0
A, B = "192.0.2.1", "198.51.100.1"


def frames(name: str, tmp_path: Path, **changes: Any) -> tuple[dict[str, Any], list[Decoded]]:
    scenario = load_scenario(DATA / f"{name}.toml")
    if changes:
        scenario = dataclasses.replace(scenario, **changes)
    result = simulate(scenario, tmp_path / "s.pcap")
    with open_capture(tmp_path / "s.pcap") as reader:
        decoded = [decode_frame(f.linktype, f.data) for f in reader]
    return result.truth, decoded


def ends(truth: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {end["address"]: end for end in truth["tunnels"][0]["endpoints"]}


def test_inner_destination_of_a_nat_keepalive(tmp_path: Path) -> None:
    _, decoded = frames("nat", tmp_path)
    requests = [d for d in decoded if d.kind is FrameKind.REQUEST]
    replies = [d for d in decoded if d.kind is FrameKind.REPLY]
    assert len(requests) == len(replies) == 6
    assert {(r.src, r.dst, r.inner.src, r.inner.dst) for r in requests if r.inner} == {
        ("203.0.113.5", B, B, "10.0.0.2")
    }
    assert {(r.src, r.dst) for r in replies} == {(B, "10.0.0.2")}


def test_a_reflector_that_drops_keepalives(tmp_path: Path) -> None:
    truth, decoded = frames("reply_filtered", tmp_path)
    a, b = ends(truth)[A], ends(truth)[B]
    assert (a["sent"], a["returned"]) == (12, 0)
    assert [(t["state"], t["time"]) for t in a["transitions"]] == [("down", T0 + 15)]
    assert (b["sent"], b["returned"], b["transitions"]) == (12, 12, [])
    assert not any(d.kind is FrameKind.REPLY and d.dst == A for d in decoded)


def test_per_endpoint_keys_drop_the_other_ends_packets(tmp_path: Path) -> None:
    truth, decoded = frames("key_directions", tmp_path)
    a, b = ends(truth)[A], ends(truth)[B]
    assert (a["key"], b["key"]) == (42, 43)
    assert (a["returned"], b["returned"]) == (0, 0)
    assert {d.key for d in decoded if d.kind is FrameKind.DATA and d.src == B} == {43}
    # Neither end hears the other: A's sends at 0, 5, 10 unanswered, down at 15; B's at 2,
    # 7, 12, down at 17. Data at 2/s on the grid 0.25, 0.75, …: A sends 30 (up to 14.75),
    # B 34 (up to 16.75), and the other end drops every one of them.
    assert b["blackholed"] == b["data_sent"] == 34
    assert a["blackholed"] == a["data_sent"] == 30


def test_inner_key_none_and_other_keys(tmp_path: Path) -> None:
    _, decoded = frames("key_inner", tmp_path)
    request = next(d for d in decoded if d.kind is FrameKind.REQUEST)
    reply = next(d for d in decoded if d.kind is FrameKind.REPLY)
    assert request.inner is not None
    assert (request.key, request.inner.key, reply.key) == (42, 43, 43)
    scenario = load_scenario(DATA / "key_inner.toml")
    tunnel = scenario.tunnels[0]
    assert tunnel.keepalive_a is not None
    keepalive = dataclasses.replace(tunnel.keepalive_a, inner_key=None)
    scenario = dataclasses.replace(
        scenario, tunnels=(dataclasses.replace(tunnel, keepalive_a=keepalive),)
    )
    simulate(scenario, tmp_path / "n.pcap")
    with open_capture(tmp_path / "n.pcap") as reader:
        first = decode_frame(*(lambda f: (f.linktype, f.data))(next(iter(reader))))
    assert first.inner is not None and (first.key, first.inner.key) == (42, None)


def test_period_jitter_stays_within_its_bound(tmp_path: Path) -> None:
    truth, _ = frames("jitter", tmp_path)
    sends = [s["time"] - T0 for s in ends(truth)[A]["sends"]]
    assert len(sends) == 24  # 1, 6, …, 116
    offsets = [t - (1 + 5 * k) for k, t in enumerate(sends)]
    assert all(abs(o) <= 0.2 + 1e-9 for o in offsets)
    assert any(abs(o) > 1e-6 for o in offsets)


def test_openbsd_like_request(tmp_path: Path) -> None:
    scenario = load_scenario(DATA / "one_sided.toml")
    tunnel = dataclasses.replace(
        scenario.tunnels[0],
        keepalive_a=Keepalive(period=10, retries=3, payload=16, ip_id="random", inner_ttl=64),
    )
    simulate(dataclasses.replace(scenario, tunnels=(tunnel,)), tmp_path / "o.pcap")
    with open_capture(tmp_path / "o.pcap") as reader:
        decoded = [decode_frame(f.linktype, f.data) for f in reader]
    requests = [d for d in decoded if d.kind is FrameKind.REQUEST]
    replies = [d for d in decoded if d.kind is FrameKind.REPLY]
    assert len(requests) == len(replies) == 6
    assert {(r.payload_length, r.inner.ttl if r.inner else 0) for r in requests} == {(16, 64)}
    assert {r.ttl for r in replies} == {63}
    ids = [(r.ip_id, r.inner.ip_id) for r in requests if r.inner is not None]
    assert not all(outer == (inner + 1) & 0xFFFF for outer, inner in ids if outer is not None)


GOOD = """
duration = 10
[[tunnel]]
a = "192.0.2.1"
b = "198.51.100.1"
keepalive_a = { period = 4, retries = 3 }
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace("retries = 3", "retries = 3, period_jitter = 2"), "period_jitter 2"),
        (GOOD.replace("retries = 3", "retries = 3, ip_id = 'odd'"), "ip_id 'odd'"),
        (GOOD.replace("retries = 3", "retries = 3, inner_key = 'x'"), "inner_key"),
        (GOOD.replace("retries = 3", "retries = 3, inner_dst = 'nope'"), "inner_dst"),
        (GOOD + "reflects_b = 1\n", "reflects_b must be true or false"),
        (GOOD + "key_b = 4294967296\n", "key_b 4294967296 out of range"),
    ],
)
def test_invalid_variant_options(text: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(text)


def test_inner_key_none_parses() -> None:
    scenario = parse_scenario(GOOD.replace("retries = 3", "retries = 3, inner_key = 'none'"))
    keepalive = scenario.tunnels[0].keepalive_a
    assert keepalive is not None and keepalive.inner_key is None
