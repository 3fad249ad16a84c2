"""Tests for analyzer.simulate: the scenario simulator and its ground truth.

Every expected value is worked out by hand from the model in the module docstring
(SPEC.md §1–2), never read back from the simulator.  The technote scenario, by hand:

* A (128.8.8.8) sends at 0, 5, …, 95; B (129.9.9.9) at 2, 7, …, 97; delay 10 ms each way,
  reflection 50 µs, so an answered keepalive returns 20.050 ms after it was sent.
* The path is cut both ways during [30.5, 70.5).  A's send at 30 is answered at 30.020050
  (it and its reflection left before 30.5); its sends at 35 … 70 are lost (counter after
  them 1 … 8); at the tick at 55 the counter is 4 >= 4 → down at 55 (= 35 + 5 × 4); the send
  at 75 (counter 9) is answered at 75.020050 → up, counter 0.
* B: last answered send 27; sends 32 … 67 lost; down at the tick at 52 (= 32 + 5 × 4); the
  send at 72 is answered at 72.020050 → up.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest

from analyzer.keepalive.state import KeepaliveMachine
from analyzer.read.capture import LINKTYPE_ETHERNET, LINKTYPE_RAW, RawFrame, open_capture
from analyzer.read.packet import Decoded, FrameKind, decode_frame
from analyzer.simulate import (
    MAC_A,
    MAC_B,
    Direction,
    Keepalive,
    Outage,
    Scenario,
    ScenarioError,
    TunnelSpec,
    load_scenario,
    parse_scenario,
    run_cli,
    simulate,
)

SCENARIOS = Path(__file__).resolve().parent / "data" / "scenarios"
START = 1764115200.0
A = "128.8.8.8"
B = "129.9.9.9"
US = 1e-6  # the capture's resolution; hand-computed times are compared within half of it


def technote(**tunnel_changes: object) -> Scenario:
    scenario = load_scenario(SCENARIOS / "technote.toml")
    tunnel = dataclasses.replace(scenario.tunnels[0], **tunnel_changes)  # type: ignore[arg-type]
    return dataclasses.replace(scenario, tunnels=(tunnel,))


def run(scenario: Scenario, tmp_path: Path) -> tuple[dict[str, object], list[RawFrame]]:
    path = tmp_path / "sim.pcap"
    result = simulate(scenario, path)
    with open_capture(path) as reader:
        frames = list(reader)
    assert result.frames == len(frames)
    return result.truth, frames


def endpoints(truth: dict[str, object], tunnel: int = 0) -> dict[str, dict[str, object]]:
    tunnels = truth["tunnels"]
    assert isinstance(tunnels, list)
    return {end["address"]: end for end in tunnels[tunnel]["endpoints"]}


def decoded(frames: list[RawFrame]) -> list[Decoded]:
    return [decode_frame(frame.linktype, frame.data) for frame in frames]


def at(frames: list[RawFrame], offset: float) -> list[int]:
    """1-based numbers of the frames stamped START + offset."""
    return [f.number for f in frames if f.time == pytest.approx(START + offset, abs=US / 2)]


def kinds(frames: list[RawFrame]) -> Counter[tuple[str, str, str]]:
    return Counter((d.kind.value, d.src, d.dst) for d in decoded(frames))


# --- the technote case --------------------------------------------------------------------


def test_technote_truth_transitions(tmp_path: Path) -> None:
    truth, _ = run(technote(), tmp_path)
    ends = endpoints(truth)
    a, b = ends[A], ends[B]
    assert [(t["state"], t["counter"]) for t in a["transitions"]] == [("down", 4), ("up", 0)]
    times = [t["time"] for t in a["transitions"]]
    assert times == [START + 55, pytest.approx(START + 75.020050, abs=US / 2)]
    assert [(t["state"], t["counter"]) for t in b["transitions"]] == [("down", 4), ("up", 0)]
    times = [t["time"] for t in b["transitions"]]
    assert times == [START + 52, pytest.approx(START + 72.020050, abs=US / 2)]

    assert [s["time"] for s in a["sends"]] == [START + 5 * k for k in range(20)]
    assert [s["counter"] for s in a["sends"]] == [1] * 7 + list(range(1, 10)) + [1] * 4
    assert [s["returned"] for s in a["sends"]] == [True] * 7 + [False] * 8 + [True] * 5
    assert [s["time"] for s in b["sends"]] == [START + 2 + 5 * k for k in range(20)]
    assert [s["counter"] for s in b["sends"]] == [1] * 6 + list(range(1, 10)) + [1] * 5
    for end in (a, b):
        assert (end["sent"], end["returned"]) == (20, 12)
        assert (end["period"], end["retries"], end["key"]) == (5, 4, None)
        assert (end["data_sent"], end["blackholed"]) == (0, 0)
        assert (end["final_state"], end["final_counter"]) == ("up", 0)
    assert (a["peer"], b["peer"]) == (B, A)
    # Vantage a: every send of A is in the capture; B's sends 32 … 67 never reach it.
    assert all(s["frame"] is not None for s in a["sends"])
    assert [s["frame"] is None for s in b["sends"]] == [False] * 6 + [True] * 8 + [False] * 6
    assert b["transitions"][0]["frame"] is None  # the tick at 52 was lost before A


def test_technote_capture(tmp_path: Path) -> None:
    truth, frames = run(technote(), tmp_path)
    assert {f.linktype for f in frames} == {LINKTYPE_ETHERNET}
    times = [f.time for f in frames]
    assert times == sorted(times)
    # A: 20 requests out; 12 replies back (sends 0 … 30 and 75 … 95).  B: 12 requests
    # arrive (2 … 27 and 72 … 97) and A reflects each one of them.
    assert kinds(frames) == {
        ("request", A, B): 20,
        ("reply", B, A): 12,
        ("request", B, A): 12,
        ("reply", A, B): 12,
    }
    assert len(frames) == truth["frames"] == 56

    a = endpoints(truth)[A]
    down, up = a["transitions"]
    (down_frame,) = at(frames, 55)
    (up_frame,) = at(frames, 75.020050)
    assert (down["frame"], up["frame"]) == (down_frame, up_frame)
    records = decoded(frames)
    request, reply = records[down_frame - 1], records[up_frame - 1]
    assert (request.kind, request.src, request.dst) == (FrameKind.REQUEST, A, B)
    assert (reply.kind, reply.src, reply.dst, reply.ttl) == (FrameKind.REPLY, B, A, 254)
    (sent_75,) = at(frames, 75)
    inner = records[sent_75 - 1].inner
    assert inner is not None
    assert reply.ip_id == inner.ip_id  # the reply is the request's inner packet
    # Every truth frame number points at that send's request in the capture.
    for send in a["sends"]:
        frame = frames[send["frame"] - 1]
        assert frame.time == send["time"]
        assert records[send["frame"] - 1].kind is FrameKind.REQUEST

    # Replay the capture through a fresh state machine: the same transitions.
    machine = KeepaliveMachine(retries=4)
    seen = []
    for frame, record in zip(frames, records, strict=True):
        if record.kind is FrameKind.REQUEST and record.src == A:
            step = machine.send(frame.time, frame.number)
        elif record.kind is FrameKind.REPLY and record.dst == A:
            step = machine.reply(frame.time, frame.number)
        else:
            continue
        if step.transition is not None:
            seen.append((step.transition.frame, step.transition.state.value))
    assert seen == [(down_frame, "down"), (up_frame, "up")]


def test_technote_request_format(tmp_path: Path) -> None:
    _, frames = run(technote(), tmp_path)
    records = decoded(frames)
    ids = []
    for frame, record in zip(frames, records, strict=True):
        if record.kind is FrameKind.REQUEST and record.src == A:
            inner = record.inner
            assert inner is not None
            assert (inner.src, inner.dst, inner.ttl, record.ttl) == (B, A, 255, 255)
            assert (record.gre_protocol, record.key, inner.key) == (0x0800, None, None)
            assert record.ip_id is not None and inner.ip_id is not None
            assert inner.ip_id == (record.ip_id - 1) & 0xFFFF
            assert (frame.data[6:12], frame.data[0:6]) == (MAC_A, MAC_B)  # outgoing
            ids.append(inner.ip_id)
        elif record.dst == A:
            assert (frame.data[6:12], frame.data[0:6]) == (MAC_B, MAC_A)  # incoming
    # A originates nothing but its requests (no data): two IDs each.
    assert [(later - earlier) & 0xFFFF for earlier, later in pairwise(ids)] == [2] * 19


def test_deterministic_bytes(tmp_path: Path) -> None:
    scenario = dataclasses.replace(technote(data_pps_a=7.0, data_pps_b=3.0), vlans=(100,))
    first, second = io.BytesIO(), io.BytesIO()
    result_1 = simulate(scenario, first)
    result_2 = simulate(scenario, second)
    assert first.getvalue() == second.getvalue()
    assert result_1 == result_2
    assert json.dumps(result_1.truth) == json.dumps(result_2.truth)


def test_vantage_b(tmp_path: Path) -> None:
    truth, frames = run(dataclasses.replace(technote(), vantage="b"), tmp_path)
    records = decoded(frames)
    # Frame 1: A's first request arriving at B after 10 ms; frame 2: B's reflection 50 µs
    # later, which is the inner packet of that request; frame 3: B's own first send at 2.
    first, second, third = records[:3]
    assert [f.time for f in frames[:3]] == [
        pytest.approx(START + 0.010, abs=US / 2),
        pytest.approx(START + 0.010050, abs=US / 2),
        START + 2,
    ]
    assert (first.kind, first.src, first.dst) == (FrameKind.REQUEST, A, B)
    assert (second.kind, second.src, second.dst, second.ttl) == (FrameKind.REPLY, B, A, 254)
    assert first.inner is not None and second.ip_id == first.inner.ip_id
    assert (third.kind, third.src) == (FrameKind.REQUEST, B)
    assert (frames[0].data[0:6], frames[1].data[6:12]) == (MAC_B, MAC_B)
    # The same line-protocol history as at vantage a (the model does not depend on it).
    ends = endpoints(truth)
    a, b = ends[A], ends[B]
    assert [t["time"] for t in a["transitions"]] == [
        START + 55,
        pytest.approx(START + 75.020050, abs=US / 2),
    ]
    # B's own sends are all in the capture; A's sends 35 … 70 never reach B.
    assert all(s["frame"] is not None for s in b["sends"])
    assert [s["frame"] is None for s in a["sends"]] == [False] * 7 + [True] * 8 + [False] * 5
    assert a["transitions"][0]["frame"] is None
    (a_up_at_b,) = at(frames, 75.010050)  # B reflects A's send at 75: that causes A's up
    assert a["transitions"][1]["frame"] == a_up_at_b
    # B sees 20 of its own requests leave, 12 of A's arrive (0 … 30, 75 … 95).
    assert kinds(frames)[("request", B, A)] == 20
    assert kinds(frames)[("request", A, B)] == 12


@pytest.mark.parametrize("direction", list(Direction))
def test_one_direction_outage_takes_both_down(direction: Direction, tmp_path: Path) -> None:
    """Cut one leg only: A's requests (a-to-b) or A's replies (b-to-a) die, and so do B's
    replies (A reflects B's requests on the a-to-b leg) or B's requests (b-to-a).  Either
    way neither originator gets anything back during the outage: both go down, at the same
    times as with both legs cut.  (SPEC.md §5's one-sided tunnel needs the reflection to
    take another path than the requests; this model has one path per direction.)"""
    scenario = technote(outages=(Outage(30.5, 70.5, direction),))
    truth, frames = run(scenario, tmp_path)
    ends = endpoints(truth)
    for address, down, up in ((A, 55, 75.020050), (B, 52, 72.020050)):
        transitions = ends[address]["transitions"]
        assert [(t["state"], t["counter"]) for t in transitions] == [("down", 4), ("up", 0)]
        assert [t["time"] for t in transitions] == [
            START + down,
            pytest.approx(START + up, abs=US / 2),
        ]
        assert ends[address]["returned"] == 12
    seen = kinds(frames)
    if direction is Direction.A_TO_B:
        # B's requests all reach A (2 … 97); A reflects all 20, the ones in the outage die.
        assert seen == {
            ("request", A, B): 20,
            ("reply", B, A): 12,
            ("request", B, A): 20,
            ("reply", A, B): 20,
        }
        # B's down is caused by its tick at 52, which A saw arrive at 52.010.
        (frame,) = at(frames, 52.010)
        assert ends[B]["transitions"][0]["frame"] == frame
    elif direction is Direction.B_TO_A:
        # A's requests all reach B, but B's reflections of 35 … 70 die; B's 32 … 67 die.
        assert seen == {
            ("request", A, B): 20,
            ("reply", B, A): 12,
            ("request", B, A): 12,
            ("reply", A, B): 12,
        }


def test_outage_boundaries_are_half_open(tmp_path: Path) -> None:
    """Outage [30, 35): the send at 30 is lost, the send at 35 gets through."""
    truth, _ = run(technote(outages=(Outage(30.0, 35.0),)), tmp_path)
    a = endpoints(truth)[A]
    assert [s["returned"] for s in a["sends"][5:8]] == [True, False, True]
    assert a["transitions"] == []


def test_data_accounting(tmp_path: Path) -> None:
    """data_pps 10: grid 0.05, 0.15, …, 99.95 (1000 points).

    A: up until 55 and again from 75.020050: grid points 55.05 … 74.95 (200) are not sent,
    so 800 are; 30.55 … 54.95 (i = 305 … 549: 245) leave during the outage and are lost.
    B: down during [52, 72.020050): 52.05 … 71.95 (200) not sent, 800 sent; lost: 30.55 …
    51.95 (i = 305 … 519: 215).  A's capture shows its 800 and B's 800 − 215 = 585 (the
    last, sent at 99.95, arrives at 99.96).
    """
    truth, frames = run(technote(data_pps_a=10.0, data_pps_b=10.0), tmp_path)
    ends = endpoints(truth)
    assert (ends[A]["data_sent"], ends[A]["blackholed"]) == (800, 245)
    assert (ends[B]["data_sent"], ends[B]["blackholed"]) == (800, 215)
    seen = kinds(frames)
    assert seen[("data", A, B)] == 800
    assert seen[("data", B, A)] == 585
    # Keepalives are unchanged by the data.
    assert [t["counter"] for t in ends[A]["transitions"]] == [4, 0]

    records = decoded(frames)
    data_times = [
        round(f.time - START, 6)
        for f, r in zip(frames, records, strict=True)
        if r.kind is FrameKind.DATA and r.src == A
    ]
    assert data_times[0] == 0.05
    assert max(t for t in data_times if t < 60) == 54.95
    assert min(t for t in data_times if t > 54.95) == 75.05
    # One IP ID counter: between A's requests at 0 and 5 lie 50 data packets (0.05 … 4.95),
    # so the request at 5 has inner ID = inner ID at 0 + 2 + 50.
    ids = {
        round(f.time - START, 6): r.inner.ip_id
        for f, r in zip(frames, records, strict=True)
        if r.kind is FrameKind.REQUEST and r.src == A and r.inner is not None
    }
    assert ids[0.0] is not None and ids[5.0] == (ids[0.0] + 52) & 0xFFFF


def test_endpoint_without_keepalive_reflects_and_always_sends(tmp_path: Path) -> None:
    """B has no keepalive: it still reflects A's requests and never stops its data."""
    scenario = technote(keepalive_b=None, data_pps_b=2.0, outages=())
    truth, frames = run(scenario, tmp_path)
    ends = endpoints(truth)
    assert (ends[A]["sent"], ends[A]["returned"], ends[A]["transitions"]) == (20, 20, [])
    b = ends[B]
    assert (b["period"], b["sends"], b["sent"], b["transitions"]) == (None, [], 0, [])
    # Grid 0.25, 0.75, …, 99.75: 200 packets, none lost; the last arrives at 99.76.
    assert (b["data_sent"], b["blackholed"]) == (200, 0)
    assert kinds(frames) == {("request", A, B): 20, ("reply", B, A): 20, ("data", B, A): 200}


def test_events_after_duration_are_not_captured(tmp_path: Path) -> None:
    """Duration 95.01: A's send at 95 is made, its reply (95.020050) is past the end."""
    scenario = dataclasses.replace(technote(outages=()), duration=95.01)
    truth, frames = run(scenario, tmp_path)
    a = endpoints(truth)[A]
    assert (a["sent"], a["returned"]) == (20, 19)
    assert frames[-1].time <= START + 95.01
    # B's send at 92 is answered at 92.020050; its reflection at A left at 92.010050.
    assert kinds(frames) == {
        ("request", A, B): 20,
        ("reply", B, A): 19,
        ("request", B, A): 19,
        ("reply", A, B): 19,
    }


def test_variants_scenario(tmp_path: Path) -> None:
    """IPv6 with a key, TrustSec MetaData, QinQ, nanosecond stamps, two tunnels, one ID counter.

    Tunnel 1 (0.5 ms delay, 20 µs reflection): A sends at 1, 6, 11; B at 3, 8.
    Tunnel 2: A sends at 0, 2, …, 10 (6 requests), data at 0.5, 1.5, …, 11.5 (12).
    """
    truth, frames = run(load_scenario(SCENARIOS / "variants.toml"), tmp_path)
    records = decoded(frames)
    assert {f.linktype for f in frames} == {LINKTYPE_ETHERNET}
    assert all(f.data[12:14] == b"\x88\xa8" and f.data[16:18] == b"\x81\x00" for f in frames)
    seen = kinds(frames)
    six_a, six_b = "2001:db8::1", "2001:db8::2"
    assert seen == {
        ("request", six_a, six_b): 3,
        ("reply", six_b, six_a): 3,
        ("request", six_b, six_a): 2,
        ("reply", six_a, six_b): 2,
        ("request", "192.0.2.1", "198.51.100.1"): 6,
        ("reply", "198.51.100.1", "192.0.2.1"): 6,
        ("data", "192.0.2.1", "198.51.100.1"): 12,
    }
    for record in records:
        if record.kind is FrameKind.REQUEST and record.ip_version == 6:
            assert record.inner is not None
            assert (record.key, record.inner.key, record.gre_protocol) == (42, 42, 0x86DD)
        elif record.kind is FrameKind.REQUEST:
            assert record.inner is not None
            assert (record.gre_protocol, record.inner.metadata, record.inner.sgt) == (
                0x8909,
                True,
                16,
            )
        elif record.kind is FrameKind.REPLY and record.ip_version == 6:
            assert record.key == 42
    # Nanosecond stamps: the reply to A's IPv6 send at 1 is back at 1 + 2 × 0.5 ms + 20 µs.
    (reply,) = at(frames, 1.001020)
    assert records[reply - 1].kind is FrameKind.REPLY
    assert truth["precision"] == 9
    tunnel_2 = endpoints(truth, 1)["192.0.2.1"]
    assert (tunnel_2["sent"], tunnel_2["returned"], tunnel_2["data_sent"]) == (6, 6, 12)
    assert endpoints(truth, 1)["198.51.100.1"]["period"] is None


def test_raw_link_and_shared_router_counter(tmp_path: Path) -> None:
    """Two tunnels from one router: its IP IDs come from one counter and never repeat."""
    keepalive = Keepalive(period=1, retries=3)
    scenario = Scenario(
        tunnels=(
            TunnelSpec("192.0.2.1", "198.51.100.1", keepalive_a=keepalive, data_pps_a=3.0),
            TunnelSpec("192.0.2.1", "203.0.113.1", keepalive_a=keepalive, data_pps_a=5.0),
        ),
        duration=10.0,
        link="raw",
    )
    truth, frames = run(scenario, tmp_path)
    assert {f.linktype for f in frames} == {LINKTYPE_RAW}
    ids = [r.ip_id for r in decoded(frames) if r.src == "192.0.2.1"]
    # 2 × 10 requests, 30 + 50 data packets; a request also uses the ID below its own.
    assert len(ids) == 20 + 30 + 50
    used = [i for r in decoded(frames) if r.src == "192.0.2.1" for i in _ids(r)]
    assert len(used) == len(set(used)) == 2 * 20 + 30 + 50
    assert truth["frames"] == len(frames)


def _ids(record: Decoded) -> list[int | None]:
    if record.kind is FrameKind.REQUEST and record.inner is not None:
        return [record.inner.ip_id, record.ip_id]
    return [record.ip_id]


# --- validation -----------------------------------------------------------------------------

GOOD = """\
duration = 10
[[tunnel]]
a = "192.0.2.1"
b = "198.51.100.1"
keepalive_a = { period = 5, retries = 4 }
outages = [{ start = 1, end = 2 }]
"""


def test_defaults() -> None:
    scenario = parse_scenario(GOOD, "ok.toml")
    assert (scenario.start, scenario.vantage, scenario.link, scenario.vlans) == (
        START,
        "a",
        "ethernet",
        (),
    )
    (tunnel,) = scenario.tunnels
    assert (tunnel.delay_ms, tunnel.reflect_us, tunnel.data_pps_a, tunnel.key) == (
        10.0,
        50.0,
        0.0,
        None,
    )
    assert tunnel.keepalive_a == Keepalive(5, 4, 0.0)
    assert tunnel.keepalive_b is None
    assert tunnel.outages == (Outage(1, 2, Direction.BOTH),)


def test_data_pps_overrides() -> None:
    text = GOOD.replace("[[tunnel]]", "[[tunnel]]\ndata_pps = 4\ndata_pps_b = 1.5")
    (tunnel,) = parse_scenario(text).tunnels
    assert (tunnel.data_pps_a, tunnel.data_pps_b) == (4.0, 1.5)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("colour = 'red'\n" + GOOD, "unknown key 'colour'"),
        (GOOD.replace('a = "192', 'delay = 3\na = "192'), "unknown key 'delay'"),
        (GOOD.replace("retries = 4", "retries = 4, jitter = 1"), "unknown key 'jitter'"),
        (GOOD.replace("end = 2", "end = 2, why = 'x'"), "unknown key 'why'"),
        (GOOD.replace("retries = 4", "retries = 0"), "retries 0 out of range 1-255"),
        (GOOD.replace("retries = 4", "retries = 256"), "retries 256 out of range 1-255"),
        (GOOD.replace("retries = 4", "retries = 2.5"), "retries must be an integer"),
        (GOOD.replace("period = 5", "period = 0"), "period 0 out of range 1-32767"),
        (GOOD.replace("period = 5", "period = 32768"), "period 32768 out of range 1-32767"),
        (GOOD.replace("period = 5", "period = true"), "period must be a number"),
        (GOOD.replace("198.51.100.1", "198.51.100.300"), "'198.51.100.300' is not an IPv4"),
        (GOOD.replace("198.51.100.1", "2001:db8::1"), "different IP versions"),
        (GOOD.replace("198.51.100.1", "192.0.2.1"), "same address"),
        (GOOD.replace("end = 2", "end = 0.5"), "end 0.5 is not after its start 1"),
        (GOOD.replace("end = 2", "end = 2, direction = 'up'"), "direction 'up' is not one of"),
        (GOOD.replace("duration = 10", ""), "no 'duration'"),
        (GOOD.replace("duration = 10", "duration = 0"), "duration 0 must be positive"),
        ("duration = 10\n", "no [[tunnel]] table"),
        ("vantage = 'c'\n" + GOOD, "vantage 'c' is not 'a' or 'b'"),
        ("link = 'raw'\nvlans = [1]\n" + GOOD, "vlans need link = 'ethernet'"),
        ("vlans = [1, 2, 3]\n" + GOOD, "at most 2"),
        ("vlans = [4096]\n" + GOOD, "vlan 4096 out of range"),
        (GOOD.replace('a = "192', 'key = -1\na = "192'), "key -1 out of range"),
        (GOOD.replace('a = "192', 'delay_ms = -1\na = "192'), "delay_ms -1 out of range"),
        (GOOD.replace('a = "192', 'inner_ipv6 = true\na = "192'), "inner_ipv6 = true is not"),
        (GOOD + GOOD.replace("duration = 10", ""), "tunnel 2 duplicates tunnel 1"),
        (GOOD.replace('b = "198.51.100.1"\n', ""), "tunnel 1 has no 'b' address"),
        ("duration = [\n", "TOML syntax error"),
    ],
)
def test_invalid_scenarios(text: str, needle: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "bad.toml")
    message = str(caught.value)
    assert message.startswith("bad.toml: ")
    assert needle in message
    assert "\n" not in message


def test_simulate_validates_code_built_scenarios() -> None:
    scenario = Scenario(tunnels=(TunnelSpec("192.0.2.1", "198.51.100.1", delay_ms=-1),), duration=1)
    with pytest.raises(ScenarioError, match=r"^<scenario>: tunnel 1 delay_ms -1 out of range"):
        simulate(scenario, io.BytesIO())


def test_load_scenario_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ScenarioError, match=rf"^{path}: no such file$"):
        load_scenario(path)


# --- the CLI entry point ----------------------------------------------------------------------


def test_run_cli_writes_capture_and_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "technote.pcap"
    assert run_cli(str(SCENARIOS / "technote.toml"), str(output), None) == 0
    truth = json.loads((tmp_path / "technote.truth.json").read_text())
    assert truth["frames"] == 56
    assert truth["tunnels"][0]["endpoints"][0]["transitions"][0]["time"] == START + 55
    with open_capture(output) as reader:
        assert len(list(reader)) == 56
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "56 frames" in err

    explicit = tmp_path / "elsewhere.json"
    assert run_cli(str(SCENARIOS / "technote.toml"), str(output), str(explicit)) == 0
    assert json.loads(explicit.read_text()) == truth


def test_run_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace("retries = 4", "retries = 0"))
    assert run_cli(str(bad), str(tmp_path / "out.pcap"), None) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gre-keepalive simulate: error: {bad}: ")
    assert err.count("\n") == 1
    assert not (tmp_path / "out.pcap").exists()

    assert run_cli(str(tmp_path / "missing.toml"), str(tmp_path / "out.pcap"), None) == 2
    assert "no such file" in capsys.readouterr().err

    unwritable = tmp_path / "no-such-dir" / "out.pcap"
    assert run_cli(str(SCENARIOS / "technote.toml"), str(unwritable), None) == 2
    err = capsys.readouterr().err
    assert err.startswith("gre-keepalive simulate: error: cannot write") and err.count("\n") == 1
