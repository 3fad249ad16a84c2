"""The probe's logic without a network: packets, reflection rules, rate limit, the loop.

Nothing here opens a raw socket (the loop runs on a socketpair standing in for the network).
"""

from __future__ import annotations

import argparse
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from analyzer import cli
from analyzer.config import load_config, parse_toml
from analyzer.probe import command as probe
from analyzer.probe import net as probe_net
from analyzer.probe.engine import (
    DROP_REASONS,
    DROP_SUMMARY_INTERVAL,
    IpIds,
    ProbeEngine,
    ProbeOptions,
    TokenBucket,
)
from analyzer.probe.metrics import METRIC_NAMES, ProbeMetrics
from analyzer.probe.tunnel import Tunnel
from analyzer.read.capture import RawFrame
from analyzer.read.packet import (
    ETH_IPV4,
    FrameKind,
    build_gre,
    build_ip,
    build_keepalive_request,
    decode_frame,
    reflect_request,
)
from analyzer.read.sources import InterfaceNotice

A, B = "192.0.2.1", "192.0.2.2"
DATA = Path(__file__).resolve().parents[1] / "data" / "config"


def _tunnel(
    local: str = A, remote: str = B, key: int | None = None, period: float | None = 1.0
) -> Tunnel:
    return Tunnel(local, remote, key, period, 2, f"{local}→{remote}", "test")


def _engine(*tunnels: Tunnel, **options: Any) -> ProbeEngine:
    chosen = list(tunnels) or [_tunnel()]
    return ProbeEngine(
        chosen,
        ProbeOptions(**options),
        metrics=ProbeMetrics(chosen, DROP_REASONS),
        first_ip_id=100,
    )


# --- packets --------------------------------------------------------------------------------


def test_ip_ids_come_from_one_counter_inner_one_below_outer_never_zero() -> None:
    ids = IpIds(10)
    assert [ids.pair() for _ in range(3)] == [(10, 11), (12, 13), (14, 15)]
    wrapping = IpIds(0xFFFD)
    assert [wrapping.pair() for _ in range(3)] == [(0xFFFD, 0xFFFE), (1, 2), (3, 4)]
    assert all(0 not in IpIds(start).pair() for start in (0, 0xFFFF))


def test_requests_are_built_as_spec_section_1_says() -> None:
    engine = _engine(_tunnel(key=42), tos=0x20, ttl=64)
    packet = engine.build_request(engine.tunnels[0])
    decoded = decode_frame(101, packet)
    assert decoded.kind is FrameKind.REQUEST
    assert (decoded.src, decoded.dst, decoded.gre_protocol, decoded.key) == (A, B, ETH_IPV4, 42)
    assert decoded.ttl == 64 and packet[1] == 0x20
    inner = decoded.inner
    assert inner is not None
    assert (inner.src, inner.dst, inner.key, inner.ttl) == (B, A, 42, 255)
    assert inner.ip_id == 100 and decoded.ip_id == 101  # inner = outer − 1
    assert decoded.ip_length == 20 + 8 + 28  # inner IPv4 total length 28 with a key
    assert reflect_request(packet) is not None


def test_ipv6_requests_carry_an_ipv6_inner_header() -> None:
    tunnel = _tunnel("2001:db8::1", "2001:db8::2")
    decoded = decode_frame(101, _engine(tunnel).build_request(tunnel))
    assert decoded.kind is FrameKind.REQUEST and decoded.gre_protocol == 0x86DD
    assert decoded.inner is not None and decoded.inner.ip_version == 6
    assert (decoded.inner.src, decoded.inner.dst) == ("2001:db8::2", "2001:db8::1")


# --- the state machine through the shared tracker -------------------------------------------


def test_own_keepalives_drive_the_tracker_down_at_the_retries_plus_first_unanswered() -> None:
    recorded: list[tuple[float, bytes]] = []
    engine = _engine()
    engine.record = lambda time, packet: recorded.append((time, packet))
    tunnel = engine.tunnels[0]
    first = engine.build_request(tunnel)
    events = engine.sent(tunnel, 0.0, first)
    reply = reflect_request(first)
    assert reply is not None
    events += engine.received(0.01, 0.01, reply)[0]
    for t in (1.0, 2.0, 3.0, 4.0):
        events += engine.sent(tunnel, t, engine.build_request(tunnel))
    sequence = [(e["event"], e["time"], e["counter"], e["line_state"]) for e in events]
    assert sequence == [
        ("sent", 0.0, 1, "up"),
        ("returned", 0.01, 0, "up"),
        ("sent", 1.0, 1, "up"),
        ("sent", 2.0, 2, "up"),
        ("down", 3.0, 2, "down"),  # counter 2 >= retries 2 at the third unanswered tick
        ("sent", 3.0, 3, "down"),
        ("sent", 4.0, 4, "down"),
    ]
    assert [e["frame"] for e in events if e["event"] != "down"] == [1, 2, 3, 4, 5, 6]
    assert [t for t, _ in recorded] == [0.0, 0.01, 1.0, 2.0, 3.0, 4.0]
    assert engine.metrics is not None
    text = generate_latest(engine.metrics.registry).decode()
    for name in METRIC_NAMES:
        assert name in text
    assert 'gre_keepalive_line_protocol_up{key="",local="192.0.2.1",remote="192.0.2.2"} 0.0' in text
    assert 'reason="rate-limit",remote="192.0.2.2"} 0.0' in text
    assert (
        'gre_keepalive_transitions_total{key="",local="192.0.2.1",remote="192.0.2.2",state="down"}'
        " 1.0" in text
    )
    assert (
        'gre_keepalive_rtt_seconds_count{key="",local="192.0.2.1",remote="192.0.2.2"} 1.0' in text
    )


def test_failed_sends_are_ticks_the_tracker_extrapolates() -> None:
    engine = _engine()
    tunnel = engine.tunnels[0]
    engine.sent(tunnel, 0.0, engine.build_request(tunnel))
    events = engine.send_failed(tunnel, 1.0, "request", OSError(101, "Network is unreachable"))
    assert events[0]["event"] == "send-error" and events[0]["errno"] == 101
    events = engine.advance(1.49) + engine.advance(1.5)
    assert [(e["event"], e["counter"]) for e in events] == [("extrapolated", 2)]
    assert engine.stats[tunnel].ticks == 2 and engine.stats[tunnel].sent == 1


def test_a_tunnel_whose_sends_all_failed_is_down() -> None:
    engine = _engine()
    tunnel = engine.tunnels[0]
    engine.send_failed(tunnel, 0.0, "request", OSError(101, "Network is unreachable"))
    (row,) = engine.summary(1.0)["tunnels"]
    assert row["line_state"] == "down" and "Network is unreachable" in row["note"]
    assert engine.metrics is not None
    text = generate_latest(engine.metrics.registry).decode()
    assert 'gre_keepalive_line_protocol_up{key="",local="192.0.2.1",remote="192.0.2.2"} 0.0' in text


def test_unmatched_returns_let_in_by_accept_any_return_are_rate_limited() -> None:
    engine = _engine(max_reflect_pps=10.0, accept_any_return=True)
    request = engine.build_request(engine.tunnels[0])
    engine.sent(engine.tunnels[0], 0.0, request)
    reply = reflect_request(request)
    assert reply is not None
    engine.received(0.0, 0.0, reply)  # the return of the request: matched
    for i in range(100):  # then 100 copies in a second; a 1 s period allows 10 (the option)
        engine.received(i / 100, i / 100, reply)
    assert engine.frames == 1 + 1 + 10
    assert engine.stats[engine.tunnels[0]].dropped == {"rate-limit": 90}


def test_returns_of_queued_requests_arriving_together_all_count() -> None:
    engine = _engine(max_reflect_pps=10.0)
    tunnel = engine.tunnels[0]
    replies = []
    for second in range(3):  # a peer busy for 3 s returns the three requests at once
        request = engine.build_request(tunnel)
        engine.expect(tunnel, request)
        engine.sent(tunnel, float(second), request)
        replies.append(reflect_request(request))
    returned = [engine.received(2.5, 2.5, reply)[0] for reply in replies if reply is not None]
    assert [[e["event"] for e in events].count("returned") for events in returned] == [1, 1, 1]
    assert engine.stats[tunnel].dropped == {}


# --- reflection rules -----------------------------------------------------------------------


def _request_from_a(**kwargs: Any) -> bytes:
    return build_keepalive_request(A, B, inner_id=7, outer_id=8, **kwargs)


@pytest.mark.parametrize(
    ("packet", "reason", "attributed"),
    [
        (
            build_ip(
                A, B, build_gre(ETH_IPV4, build_ip(B, "198.51.100.9", b"x" * 12, protocol=17))
            ),
            "not-keepalive",
            True,
        ),
        (_request_from_a(inner_dst="198.51.100.9"), "not-addressed-back", True),
        (_request_from_a(inner_src="198.51.100.7"), "inner-source-not-local", True),
        (build_keepalive_request("192.0.2.3", B, inner_id=7), "unknown-peer", False),
        (_request_from_a(key=99), "key-mismatch", True),
        (build_ip(A, B, b"\x00\x07"), "malformed", False),
    ],
)
def test_the_reflector_drops_everything_but_keepalives_of_its_tunnels(
    packet: bytes, reason: str, attributed: bool
) -> None:
    engine = _engine(_tunnel(B, A))
    events, reflection = engine.received(0.0, 0.0, packet)
    assert (events, reflection) == ([], None)
    stats = engine.stats[engine.tunnels[0]]
    assert (stats.dropped if attributed else engine.unattributed) == {reason: 1}
    assert engine.frames == 0  # nothing fed, nothing written


def test_a_keepalive_of_a_configured_peer_is_reflected_even_without_own_keepalives() -> None:
    engine = _engine(_tunnel(B, A, key=5, period=None))
    request = _request_from_a(key=5)
    events, reflection = engine.received(0.0, 0.0, request)
    assert reflection is not None and reflection.packet == reflect_request(request)
    assert (reflection.tunnel.remote, reflection.ident, reflection.ttl) == (A, 7, 254)
    assert [e["event"] for e in events] == ["sent"]  # the peer's request, from our vantage
    events = engine.reflected(reflection, 0.001)
    assert [e["event"] for e in events] == ["reflected", "returned"]
    assert events[1]["originator"] == A and events[1]["rtt_ms"] == 1.0
    disabled = _engine(_tunnel(B, A, key=5), reflect=False)
    assert disabled.received(0.0, 0.0, request)[1] is None
    assert disabled.stats[disabled.tunnels[0]].dropped == {"reflect-disabled": 1}


def test_reflections_are_rate_limited_per_tunnel_without_bursts() -> None:
    bucket = TokenBucket(10.0)
    assert [bucket.take(t) for t in (0.0, 0.05, 0.1, 0.15, 0.2)] == [True, False, True, False, True]
    engine = _engine(_tunnel(B, A), _tunnel(B, A, key=1), max_reflect_pps=10.0)
    reflected = 0
    for i in range(500):
        now = i / 500
        for key in (None, 1):
            request = build_keepalive_request(A, B, key=key, inner_id=1000 + i)
            if engine.received(now, now, request)[1] is not None:
                reflected += 1
    # Each tunnel: one at 0, then one every 0.1 s up to 0.998 s — 10 (<= 10 x 0.998 + 1).
    assert reflected == 2 * 10
    assert [engine.stats[t].dropped["rate-limit"] for t in engine.tunnels] == [490, 490]
    summaries = engine.flush_drops(1.0)
    assert [(e["reason"], e["key"], e["count"], e["total"]) for e in summaries] == [
        ("rate-limit", None, 490, 490),
        ("rate-limit", 1, 490, 490),
    ]
    engine.received(1.2, 1.2, build_keepalive_request("192.0.2.3", B))

    def dropped(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for e in events if e["event"] == "dropped"]

    assert dropped(engine.advance(1.2)) == []  # summaries at most once per interval
    (line,) = dropped(engine.advance(1.0 + DROP_SUMMARY_INTERVAL))
    assert (line["event"], line["reason"], line["local"], line["count"]) == (
        "dropped",
        "unknown-peer",
        None,
        1,
    )


# --- command line ---------------------------------------------------------------------------


@pytest.fixture
def here_is_a(monkeypatch: pytest.MonkeyPatch) -> None:
    """This host has address A (and 2001:db8::1), whatever machine runs the test."""
    monkeypatch.setattr(probe_net, "is_local_address", lambda a: a in (A, "2001:db8::1"))


def _args(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(["probe", *argv])


CONFIG = f"""
[defaults]
period = 5
retries = 4

[[tunnel]]
source = "{A}"
destination = "{B}"
key = 1

[[tunnel]]
source = "{A}"
destination = "198.51.100.1"
keepalive = false

[[tunnel]]
source = "{B}"
destination = "{A}"
period = 2
"""


def test_tunnels_come_from_the_config_entries_whose_source_is_local() -> None:
    config = parse_toml(CONFIG, "tunnels.toml")
    tunnels, warnings = probe.select_tunnels(_args(), config, lambda address: address == A)
    assert warnings == []
    assert [(t.remote, t.key, t.period, t.retries, t.originates) for t in tunnels] == [
        (B, 1, 5.0, 4, True),
        ("198.51.100.1", None, None, 4, False),  # `keepalive = false`: reflects only
    ]
    tunnels, _ = probe.select_tunnels(_args("--local", B), config, lambda address: address == B)
    assert [(t.local, t.period, t.retries) for t in tunnels] == [(B, 2.0, 4)]
    tunnels, _ = probe.select_tunnels(_args("--reflect-only"), config, lambda a: a == A)
    assert not any(t.originates for t in tunnels)
    with pytest.raises(ValueError, match="no tunnel whose source is an address of this host"):
        probe.select_tunnels(_args(), config, lambda _address: False)


def test_ios_configuration_text_works_too() -> None:
    config = load_config(DATA / "technote_back_to_back.cfg")  # both routers concatenated
    tunnels, _ = probe.select_tunnels(
        _args("--local", "129.9.9.9"), config, lambda a: a == "129.9.9.9"
    )
    (tunnel,) = tunnels
    assert (tunnel.remote, tunnel.period, tunnel.retries, tunnel.name) == (
        "128.8.8.8",
        5.0,
        4,
        "Tunnel0",
    )
    # The other router's entry still gives the tracker the peer's period.
    engine = ProbeEngine(tunnels, ProbeOptions(), config=config)
    assert engine.tracker.settings.config is not None
    peer = engine.tracker.settings.config.lookup("128.8.8.8", "129.9.9.9", None)
    assert peer is not None and (peer.period, peer.retries) == (5.0, 4)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--local", "192.0.2.300", "--remote", B], "invalid address '192.0.2.300'"),
        (["--local", A, "--remote", B, "--keepalive", "0", "3"], "add --reflect-only"),
        (["--local", A, "--remote", B, "--keepalive", "5", "0"], "retries 0 out of range 1-255"),
        (["--local", A, "--remote", B, "--keepalive", "5", "256"], "out of range 1-255"),
        (["--local", A, "--remote", B, "--keepalive", "40000", "3"], "out of range 1-32767"),
        (["--local", A, "--remote", B, "--keepalive", "-1", "3"], "out of range 1-32767"),
        (["--local", A, "--remote", B, "--keepalive", "fast", "3"], "number of seconds"),
        (["--remote", B], "--remote needs --local"),
        (["--local", A, "--remote", "2001:db8::2"], "different families"),
        (["--local", A, "--remote", B, "--inner", "ipv6"], "needs IPv6 addresses"),
        (["--local", A, "--remote", B, "--reflect-only", "--count", "3"], "--count needs"),
        (["--local", A, "--remote", B, "--key", "-1"], "GRE key -1 out of range"),
        (["--local", A, "--remote", B, "--max-reflect-pps", "0"], "must be above 0"),
        ([], "give --local and --remote, or --config FILE"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str], here_is_a: None
) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main(["probe", *argv])
    assert stopped.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gre-keepalive probe: error: ")
    assert expected in lines[0]


def test_reflect_only_accepts_keepalive_0() -> None:
    tunnels, _ = probe.select_tunnels(
        _args("--local", A, "--remote", B, "--keepalive", "0", "3", "--reflect-only"),
        None,
        lambda address: address == A,
    )
    assert not tunnels[0].originates


def test_without_cap_net_raw_one_line_names_the_capability(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(*_args: object) -> socket.socket:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(probe_net, "is_local_address", lambda address: address == A)
    monkeypatch.setattr(probe_net.socket, "socket", refuse)
    assert cli.main(["probe", "--local", A, "--remote", B]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert "CAP_NET_RAW" in line and "setcap cap_net_raw=eip" in line and "sudo" in line


def test_format_tui_without_the_tui_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], here_is_a: None
) -> None:
    monkeypatch.setattr(probe, "_tui_entry", lambda: None)
    assert cli.main(["probe", "--local", A, "--remote", B, "--format", "tui"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "--format tui is not available" in line


# --- the loop, on a socketpair standing in for the network --------------------------------


class FakeNetwork:
    """Raw sockets replaced: sends are recorded; a live peer reflects our requests."""

    def __init__(self, *, peer_alive: bool) -> None:
        self.peer_alive = peer_alive
        self.inbound, self._wire = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.inbound.setblocking(False)
        self.sent: list[tuple[bytes, str]] = []

    @property
    def receivers(self) -> list[socket.socket]:
        return [self.inbound]

    def send(self, packet: bytes, destination: str) -> None:
        self.sent.append((packet, destination))
        reflected = reflect_request(packet) if self.peer_alive else None
        if reflected is not None:
            self._wire.send(reflected)

    def receive(self, sock: socket.socket) -> probe_net.Received | None:
        try:
            return probe_net.Received(sock.recv(65535), None)
        except BlockingIOError:
            return None

    def close(self) -> None:
        self.inbound.close()
        self._wire.close()

    def attach_filters(self, endpoints: list[tuple[str, str]]) -> None:
        self.filtered = endpoints

    def ensure(self, families: set[int]) -> None:
        pass

    def set_windows(self, windows: Any, headroom: Any = None) -> None:
        self.windows = windows

    def receive_buffer(self) -> int:
        return 1 << 20


@pytest.mark.parametrize(("alive", "status"), [(True, 0), (False, 3)])
def test_count_mode_ends_with_the_line_protocol(alive: bool, status: int) -> None:
    network = FakeNetwork(peer_alive=alive)
    engine = _engine(_tunnel(period=0.05))
    lines: list[dict[str, Any]] = []
    loop = probe.ProbeLoop(engine, network, lines.extend, count=4)  # type: ignore[arg-type]
    try:
        assert loop.run(threading.Event()) == status
    finally:
        network.close()
    assert len(network.sent) == 4 and {d for _, d in network.sent} == {B}
    assert lines[-1]["event"] == "summary"
    assert lines[-1]["tunnels"][0]["line_state"] == ("up" if alive else "down")
    downs = [e for e in lines if e["event"] == "down"]
    assert len(downs) == (0 if alive else 1)


class QueuedNetwork(FakeNetwork):
    """Packets already waiting in the socket buffer, each with the kernel's receive time."""

    def __init__(self, stamped: list[tuple[bytes, float | None]]) -> None:
        super().__init__(peer_alive=False)
        self.stamps = [stamp for _packet, stamp in stamped]
        for packet, _stamp in stamped:
            self._wire.send(packet)

    def receive(self, sock: socket.socket) -> probe_net.Received | None:
        got = super().receive(sock)
        return None if got is None else got._replace(stamp=self.stamps.pop(0))


@pytest.mark.parametrize(
    ("stamps", "reflected"),
    [
        ([1000.0, 1001.0], 2),  # arrived a period apart, read together: both reflected
        ([1000.95, 1001.0], 1),  # arrived 50 ms apart: a burst over 10 a second
        ([None, None], 1),  # no receive times: read together counts as arrived together
    ],
)
def test_reflections_are_rate_limited_by_arrival_not_by_when_they_were_read(
    stamps: list[float | None], reflected: int
) -> None:
    requests = [build_keepalive_request(B, A, inner_id=i) for i in (5, 7)]
    network = QueuedNetwork(list(zip(requests, stamps, strict=True)))
    engine = _engine(_tunnel(period=None), max_reflect_pps=10.0)
    lines: list[dict[str, Any]] = []
    loop = probe.ProbeLoop(
        engine,
        network,
        lines.extend,
        host_clock=lambda: 1001.2,  # type: ignore[arg-type]
    )
    stop = threading.Event()
    timer = threading.Timer(0.5, stop.set)
    timer.start()
    try:
        loop.run(stop)
    finally:
        timer.cancel()
        network.close()
    assert len(network.sent) == reflected
    assert engine.stats[engine.tunnels[0]].dropped.get("rate-limit", 0) == 2 - reflected


@pytest.mark.parametrize(
    ("due", "now", "following"),
    [
        (10.0, 10.0, 11.0),  # on time
        (10.0, 10.3, 11.0),  # late: the phase is kept
        (10.0, 10.9, 11.4),  # late by most of a period: not two back to back
        (10.0, 13.5, 14.5),  # suspended for periods: on the clock from now
    ],
)
def test_a_late_tick_keeps_the_phase_but_never_sends_twice_within_half_a_period(
    due: float, now: float, following: float
) -> None:
    assert probe.next_due(due, now, 1.0) == pytest.approx(following)


@pytest.mark.parametrize(
    ("stamp", "host_now", "arrived"),
    [
        (None, 1000.0, 50.0),  # no receive time: now
        (999.6, 1000.0, 49.6),  # waited 0.4 s in the buffer
        (1003.0, 1000.0, 50.0),  # host clock stepped back since: not in the future
        (-2600.0, 1000.0, 50.0 - probe.MAX_QUEUED),  # stepped forward an hour: bounded
    ],
)
def test_arrival_is_now_less_the_wait_in_the_socket_buffer(
    stamp: float | None, host_now: float, arrived: float
) -> None:
    assert probe.arrival(50.0, stamp, host_now) == pytest.approx(arrived)


def test_the_tui_gets_every_packet_as_a_raw_ip_frame_source(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    network = FakeNetwork(peer_alive=True)
    monkeypatch.setattr(probe_net.RawSockets, "open", classmethod(lambda cls, _f: network))
    monkeypatch.setattr(probe_net, "is_local_address", lambda address: address == A)
    received: list[RawFrame | InterfaceNotice] = []

    def run_live(source: Any, settings: Any, title: str) -> int:
        stop = threading.Event()
        frames: Iterator[RawFrame | InterfaceNotice] = source(stop)
        for frame in frames:
            received.append(frame)
            if len(received) == 4:
                stop.set()
        assert "192.0.2.1→192.0.2.2" in title
        assert settings.config.lookup(A, B, None).period == 0.05
        return 0

    monkeypatch.setattr(probe, "_tui_entry", lambda: run_live)
    pcap = tmp_path / "probe.pcap"
    argv = ["probe", "--local", A, "--remote", B, "--keepalive", "0.05", "2", "--lab"]
    argv += ["--format", "tui"]
    assert cli.main([*argv, "--write", str(pcap)]) == 0
    frames = [f for f in received if isinstance(f, RawFrame)]
    kinds = [decode_frame(f.linktype, f.data).kind for f in frames]
    assert kinds == [FrameKind.REQUEST, FrameKind.REPLY] * 2
    assert [f.number for f in frames] == [1, 2, 3, 4]
    assert pcap.stat().st_size > 24
