"""Probe hardening, without a network: the socket filter program, checked reflections,
matched returns, validation, --count with mixed periods, reload, stderr lines,
--on-change, a closed stdout, `tunnel source IFNAME`.

Packet fixtures are built field by field below (each field commented); expected bytes and
states are worked by hand from SPEC.md §1-2 and RFC 791/2784/2890.
"""

from __future__ import annotations

import ctypes
import io
import json
import os
import selectors
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from analyzer import cli
from analyzer.config import KeepaliveConfig, TunnelConfig
from analyzer.probe import command as probe
from analyzer.probe import net as probe_net
from analyzer.probe.engine import ProbeEngine, ProbeOptions
from analyzer.probe.hooks import OnChange, hook_environment, transition_line
from analyzer.probe.hostif import interface_address, resolve_interface_sources
from analyzer.probe.reflect import rebuild_reflection
from analyzer.probe.tunnel import Tunnel
from analyzer.read.bpf import gre_socket_filter, ident_window_prefix
from analyzer.read.fastpath import libpcap_candidates
from analyzer.read.packet import build_keepalive_request, reflect_request
from tests.probe.test_probe_units import FakeNetwork, _engine

A, B, C = "192.0.2.1", "192.0.2.2", "192.0.2.3"
FAR = "198.51.100.1"


def _sum16(data: bytes) -> int:
    """RFC 1071 ones'-complement checksum."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4(
    src: str,
    dst: str,
    payload: bytes,
    *,
    ident: int = 7,
    ttl: int = 255,
    flags_fragment: int = 0,
    options: bytes = b"",
    total: int | None = None,
    checksum: int | None = None,
    protocol: int = 47,
) -> bytes:
    """An IPv4 header (fields as given; total length and checksum right unless given)."""
    ihl = 5 + len(options) // 4
    header = (
        struct.pack(
            "!BBHHHBBH4s4s",
            0x40 | ihl,  # version 4, header length in 32-bit words
            0,  # TOS
            total if total is not None else ihl * 4 + len(payload),  # total length
            ident,  # identification
            flags_fragment,  # DF/MF flags and fragment offset
            ttl,  # time to live
            protocol,  # 47 = GRE
            0,  # checksum, filled below
            bytes(int(x) for x in src.split(".")),
            bytes(int(x) for x in dst.split(".")),
        )
        + options
    )
    value = _sum16(header) if checksum is None else checksum
    return header[:10] + struct.pack("!H", value) + header[12:] + payload


GRE_PT0 = bytes.fromhex("0000 0000")  # flags/version 0, protocol type 0: a bare reply


def request_b_to_a(inner: bytes, *, protocol: int = 0x0800) -> bytes:
    """B's keepalive to A: outer IPv4 B → A, GRE carrying `inner` (SPEC.md §1)."""
    return ipv4(B, A, struct.pack("!HH", 0, protocol) + inner, ident=8)


GOOD_INNER = ipv4(A, B, GRE_PT0)  # inner A → B (back to the sender), TTL 255, ID 7

# B's keepalive as IOS builds it (SPEC.md §1), byte by byte:
REQUEST = bytes.fromhex(
    "45 00 0030 0008 0000 ff 2f 3793"  # outer IPv4: IHL 5, length 48, ID 8, TTL 255, GRE
    "c0000202 c0000201"  # 192.0.2.2 → 192.0.2.1
    "0000 0800"  # GRE: no flags, version 0, protocol type IPv4
    "45 00 0018 0007 0000 ff 2f 37ac"  # inner IPv4: length 24, ID 7, TTL 255, GRE
    "c0000201 c0000202"  # 192.0.2.1 → 192.0.2.2
    "0000 0000"  # inner GRE: protocol type 0, no payload
)
# What a router forwards: the inner packet, TTL 254; its checksum word goes up by 0x0100
# because the TTL byte (the high byte of its 16-bit word) went down by one.
REFLECTION = bytes.fromhex("45 00 0018 0007 0000 fe 2f 38ac c0000201 c0000202 0000 0000")


# --- reflection rebuilt from checked fields -------------------------------------------------


def test_the_fixture_is_what_the_builders_make() -> None:
    assert request_b_to_a(GOOD_INNER) == REQUEST


def test_a_reflection_is_the_inner_packet_ttl_decremented_checksum_redone() -> None:
    rebuilt = rebuild_reflection(REQUEST)
    assert (rebuilt.packet, rebuilt.reason, rebuilt.ttl) == (REFLECTION, None, 254)


OPENBSD_PAYLOAD = bytes(range(16))  # gre(4): uptime, random, SipHash-2-4 digest: 16 bytes
LSRR = bytes.fromhex("83 07 04 c6336409 01")  # loose source route via 198.51.100.9, NOP pad


@pytest.mark.parametrize(
    ("inner", "reason"),
    [
        (ipv4(A, B, GRE_PT0, ttl=1), "inner-ttl-expired"),
        (ipv4(A, B, GRE_PT0, ttl=0), "inner-ttl-expired"),
        (ipv4(A, B, GRE_PT0, options=LSRR), "inner-ip-options"),
        (ipv4(A, B, GRE_PT0, flags_fragment=0x2000), "inner-fragment"),  # MF
        (ipv4(A, B, GRE_PT0, flags_fragment=0x0001), "inner-fragment"),  # offset 8
        (ipv4(A, B, GRE_PT0, checksum=0x1234), "bad-checksum"),
        (ipv4(A, B, GRE_PT0, total=100), "bad-length"),  # claims more than arrived
        (ipv4(A, B, GRE_PT0, total=20), "bad-length"),  # claims less: bytes would be cut
        (ipv4(A, B, GRE_PT0 + bytes(1000)), "payload-too-large"),
        # inner GRE with the C bit and a wrong checksum
        (ipv4(A, B, bytes.fromhex("8000 0000 ffff 0000")), "bad-checksum"),
    ],
)
def test_reflection_refuses_what_a_router_would_not_forward(inner: bytes, reason: str) -> None:
    assert rebuild_reflection(request_b_to_a(inner)).reason == reason


def test_openbsd_keepalive_payload_is_reflected_unchanged() -> None:
    rebuilt = rebuild_reflection(request_b_to_a(ipv4(A, B, GRE_PT0 + OPENBSD_PAYLOAD)))
    assert rebuilt.packet is not None and rebuilt.packet[24:] == OPENBSD_PAYLOAD
    assert rebuilt.packet[8] == 254 and _sum16(rebuilt.packet[:20]) == 0


def test_inner_gre_key_sequence_and_checksum_are_rebuilt() -> None:
    inner_gre = bytes.fromhex("b000 0000 0000 0000 0000 002a 0000 0005")  # C K S, key 42, seq 5
    inner_gre = inner_gre[:4] + struct.pack("!H", _sum16(inner_gre)) + inner_gre[6:]
    rebuilt = rebuild_reflection(request_b_to_a(ipv4(A, B, inner_gre)))
    assert rebuilt.packet is not None and rebuilt.packet[20:] == inner_gre


def ipv6(src: str, dst: str, payload: bytes, *, hop_limit: int = 255, nh: int = 47) -> bytes:
    import ipaddress

    return (
        struct.pack("!IHBB", 0x60000000, len(payload), nh, hop_limit)  # version 6, lengths
        + ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
        + payload
    )


A6, B6 = "2001:db8::1", "2001:db8::2"


def test_ipv6_inner_hop_limit_and_extension_headers() -> None:
    def outer(inner: bytes) -> bytes:
        return ipv6(B6, A6, struct.pack("!HH", 0, 0x86DD) + inner)

    good = rebuild_reflection(outer(ipv6(A6, B6, GRE_PT0)))
    assert good.packet == ipv6(A6, B6, GRE_PT0, hop_limit=254) and good.ttl == 254
    assert rebuild_reflection(outer(ipv6(A6, B6, GRE_PT0, hop_limit=1))).reason == (
        "inner-ttl-expired"
    )
    hop_by_hop = bytes([47, 0]) + bytes(6)  # next header GRE, length 0 (8 bytes)
    assert rebuild_reflection(outer(ipv6(A6, B6, hop_by_hop + GRE_PT0, nh=0))).reason == (
        "inner-ip-options"
    )
    lying = ipv6(A6, B6, GRE_PT0)
    lying = lying[:4] + struct.pack("!H", 40) + lying[6:]
    assert rebuild_reflection(outer(lying)).reason == "bad-length"


def _tunnel(
    local: str = A, remote: str = B, period: float | None = 1.0, retries: int = 2
) -> Tunnel:
    return Tunnel(local, remote, None, period, retries, f"{local}→{remote}", "test")


def test_the_engine_drops_an_expiring_keepalive_before_spending_a_token() -> None:
    engine = _engine(_tunnel(A, B, period=None), max_reflect_pps=1.0)
    assert engine.received(0.0, 0.0, request_b_to_a(ipv4(A, B, GRE_PT0, ttl=1)))[1] is None
    assert engine.stats[engine.tunnels[0]].dropped == {"inner-ttl-expired": 1}
    assert engine.frames == 0
    _events, reflection = engine.received(0.0, 0.0, REQUEST)  # the token is still there
    assert reflection is not None and reflection.packet == REFLECTION


# --- returns must match an outstanding request ----------------------------------------------


def _spoofed_return(ident: int) -> bytes:
    return ipv4(B, A, GRE_PT0, ident=ident)  # bare GRE PT 0 from the peer's address


def _own_timeline(engine: ProbeEngine, returns: list[bytes]) -> list[tuple[str, int, str]]:
    """Sends at 0, 1, 2, 3 s; `returns` arrive at 0.5, 1.5, ... s."""
    tunnel = engine.tunnels[0]
    events: list[dict[str, Any]] = []
    for second in range(4):
        events += engine.sent(tunnel, float(second), engine.build_request(tunnel))
        if second < len(returns):
            events += engine.received(second + 0.5, second + 0.5, returns[second])[0]
    return [(e["event"], e["counter"], e["line_state"]) for e in events if e["originator"] == A]


def test_unmatched_returns_do_not_keep_a_dead_tunnel_up() -> None:
    engine = _engine()  # period 1, retries 2
    timeline = _own_timeline(engine, [_spoofed_return(999)] * 3)
    # retries 2: counters 1, 2, then down at the third send (SPEC.md §2), as if nothing came
    assert timeline == [
        ("sent", 1, "up"),
        ("sent", 2, "up"),
        ("down", 2, "down"),
        ("sent", 3, "down"),
        ("sent", 4, "down"),
    ]
    stats = engine.stats[engine.tunnels[0]]
    assert (stats.returned, stats.unmatched_returns) == (0, 3)
    assert stats.dropped == {"unmatched-return": 3}
    (row,) = engine.summary(4.0)["tunnels"]
    assert (row["returned"], row["unmatched_returns"], row["line_state"]) == (0, 3, "down")


def test_accept_any_return_restores_ios_behaviour_but_still_counts_them() -> None:
    engine = _engine(accept_any_return=True)
    timeline = _own_timeline(engine, [_spoofed_return(999)] * 3)
    assert [state for *_, state in timeline] == ["up"] * 7
    stats = engine.stats[engine.tunnels[0]]
    assert (stats.returned, stats.unmatched_returns) == (0, 3)
    assert engine.metrics is not None
    text = generate_latest(engine.metrics.registry).decode()
    labels = 'key="",local="192.0.2.1",remote="192.0.2.2"'
    assert f"gre_keepalive_unmatched_returns_total{{{labels}}} 3.0" in text
    assert f"gre_keepalive_returned_total{{{labels}}} 0.0" in text


def test_a_return_counts_once_for_its_own_request() -> None:
    engine = _engine()
    tunnel = engine.tunnels[0]
    request = engine.build_request(tunnel)  # inner ID 100 (first_ip_id)
    engine.sent(tunnel, 0.0, request)
    reply = reflect_request(request)
    assert reply is not None
    events = engine.received(0.01, 0.01, reply)[0]
    assert [(e["event"], e["ident"], e["counter"]) for e in events] == [("returned", 100, 0)]
    assert engine.received(0.02, 0.02, reply)[0] == []  # the same reply again: unmatched
    stats = engine.stats[tunnel]
    assert (stats.returned, stats.unmatched_returns) == (1, 1)


def test_an_ipv6_return_must_carry_the_flow_label_of_an_outstanding_request() -> None:
    # IPv6 has no IP ID: the probe's IPv6 keepalives carry an inner flow label instead,
    # which the peer forwards unchanged (RFC 6437) and the return must bring back.
    engine = _engine(_tunnel(A6, B6))  # period 1, retries 2
    tunnel = engine.tunnels[0]
    request = engine.build_request(tunnel)
    gre = request[40:44]  # outer GRE: no flags, protocol type 0x86DD
    inner_first_word = int.from_bytes(request[44:48], "big")
    assert gre == bytes.fromhex("0000 86dd") and inner_first_word >> 28 == 6
    label = inner_first_word & 0xFFFFF
    assert label == 1601  # first_ip_id 100: the labels start at 100 × 16 + 1
    engine.sent(tunnel, 0.0, request)

    def bare(flow: int) -> bytes:  # a bare PT-0 packet from the peer, this flow label
        return ipv6(B6, A6, GRE_PT0)[:1] + flow.to_bytes(3, "big") + ipv6(B6, A6, GRE_PT0)[4:]

    assert engine.received(0.1, 0.1, bare(label + 2))[0] == []  # a forged one: unmatched
    returned = engine.received(0.2, 0.2, bare(label))[0]
    assert [(e["event"], e["counter"]) for e in returned] == [("returned", 0)]
    assert engine.received(0.3, 0.3, bare(label))[0] == []  # consumed: a copy is unmatched
    stats = engine.stats[tunnel]
    assert (stats.returned, stats.unmatched_returns) == (1, 2)
    # the next keepalive carries the next label
    assert int.from_bytes(engine.build_request(tunnel)[44:48], "big") & 0xFFFFF == label + 1


# --- events: schema, the retries assumed for the peer, drop keys ----------------------------


def test_events_say_which_retries_they_assume_and_started_names_the_schema() -> None:
    engine = _engine(_tunnel(A, B, retries=2))
    assert engine.started(0.0)["schema"] == "gre-keepalive.probe/1"
    tunnel = engine.tunnels[0]
    own = engine.sent(tunnel, 0.0, engine.build_request(tunnel))
    assert (own[0]["retries"], own[0]["retries_source"]) == (2, "config")
    peer = engine.received(0.1, 0.1, build_keepalive_request(B, A, inner_id=5, outer_id=6))[0]
    assert peer[0]["originator"] == B
    assert (peer[0]["retries"], peer[0]["retries_source"]) == (3, "default")  # IOS default


def test_unattributed_drop_lines_carry_a_key_too() -> None:
    engine = _engine()
    engine.received(0.0, 0.0, build_keepalive_request(C, A, inner_id=5))
    (line,) = engine.flush_drops(1.0)
    assert (line["reason"], line["local"], line["remote"], line["key"]) == (
        "unknown-peer",
        None,
        None,
        None,
    )


def test_metrics_show_configured_period_retries_and_the_peer_state() -> None:
    engine = _engine(_tunnel(A, B, period=5.0, retries=4))
    engine.received(0.0, 0.0, build_keepalive_request(B, A, inner_id=5, outer_id=6))
    assert engine.metrics is not None
    text = generate_latest(engine.metrics.registry).decode()
    labels = 'key="",local="192.0.2.1",remote="192.0.2.2"'
    assert f"gre_keepalive_period_seconds{{{labels}}} 5.0" in text
    assert f"gre_keepalive_retries{{{labels}}} 4.0" in text
    assert f"gre_keepalive_peer_line_protocol_up{{{labels}}} 1.0" in text
    assert f"gre_keepalive_peer_retries_assumed{{{labels}}} 3.0" in text


# --- the kernel socket filter, run by libpcap's BPF interpreter ------------------------------


class _Insn(ctypes.Structure):
    _fields_ = (
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    )


def _bpf_filter() -> Any:
    for candidate in libpcap_candidates():
        try:
            library = ctypes.CDLL(candidate)
        except OSError:
            continue
        function = library.bpf_filter
        function.argtypes = (ctypes.POINTER(_Insn), ctypes.c_char_p, ctypes.c_uint, ctypes.c_uint)
        function.restype = ctypes.c_uint
        return function
    pytest.skip("libpcap (its bpf_filter interpreter) is not installed")


def _passes(program: list[tuple[int, int, int, int]], packet: bytes) -> bool:
    instructions = (_Insn * len(program))(*program)
    return bool(_bpf_filter()(instructions, packet, len(packet), len(packet)))


def _gre_data(src: str, dst: str) -> bytes:
    udp = struct.pack("!HHHH", 40000, 9, 12, 0) + b"data"
    return ipv4(src, dst, struct.pack("!HH", 0, 0x0800) + ipv4(dst, src, udp, protocol=17))


def _type_4(packet: bytes) -> bytes:
    """The IPv4 packet (20-byte header, then GRE) with outer GRE protocol type 4 (Huawei)."""
    return packet[:22] + b"\x00\x04" + packet[24:]


@pytest.mark.parametrize(
    ("packet", "passes"),
    [
        (REQUEST, True),
        (_type_4(build_keepalive_request(B, A, inner_id=3)), True),  # Huawei's type 4
        (ipv4(B, A, GRE_PT0, ident=9), True),  # a bare reply from the peer
        (build_keepalive_request(B, A, key=7, checksum=True, inner_id=3), True),
        (build_keepalive_request(B, A, metadata_sgt=16, inner_id=3), True),  # TrustSec
        (build_keepalive_request(B, A, inner_src="2001:db8::1", inner_dst="2001:db8::2"), True),
        (_gre_data(B, A), False),  # the peer's tunnel data
        (_type_4(_gre_data(B, A)), False),  # type 4 carrying UDP: data
        (build_keepalive_request(C, A, inner_id=3), False),  # a stranger
        (build_keepalive_request(B, C, inner_id=3), False),  # to another address of ours
        (ipv4(B, A, GRE_PT0, flags_fragment=0x2000), False),  # a fragment
        (ipv4(B, A, bytes.fromhex("0001 0000")), False),  # GRE version 1 (PPTP)
        (ipv4(B, A, bytes.fromhex("4000 0000 0000 0000")), False),  # R bit
        (request_b_to_a(ipv4(A, B, bytes.fromhex("0000 0800"))), False),  # inner PT not 0
        (request_b_to_a(ipv4(A, B, GRE_PT0, protocol=17)), False),  # inner not GRE
        (REQUEST[:30], False),  # cut short: loads past the end reject
    ],
)
def test_the_ipv4_socket_filter_passes_only_keepalives_of_configured_peers(
    packet: bytes, passes: bool
) -> None:
    program = gre_socket_filter(4, [(A, B), (A, FAR)])
    assert _passes(program, packet) is passes


def test_the_requests_and_replies_filters_split_the_keepalives() -> None:
    requests, replies = (gre_socket_filter(4, [(A, B)], kind) for kind in ("requests", "replies"))
    reply = ipv4(B, A, GRE_PT0, ident=9)  # a bare PT-0 reply from the peer
    assert (_passes(requests, REQUEST), _passes(requests, reply)) == (True, False)
    assert (_passes(replies, REQUEST), _passes(replies, reply)) == (False, True)
    for program in (requests, replies):  # neither lets data or a stranger's reply in
        assert not _passes(program, _gre_data(B, A))
        assert not _passes(program, ipv4(C, A, GRE_PT0))
        assert not _passes(program, ipv4(B, A, GRE_PT0, flags_fragment=0x2000))


@pytest.mark.parametrize(
    ("ident", "inside"),
    [
        (65530, True),  # lo
        (4, True),  # lo + span, across the wrap of the 16-bit ID
        (0, True),
        (5, False),  # one past
        (65529, False),  # one before
        (30000, False),
    ],
)
def test_a_window_of_awaited_ip_ids_splits_the_replies(ident: int, inside: bool) -> None:
    replies = gre_socket_filter(4, [(A, B)], "replies")
    window = (65530, 10)  # IDs 65530 … 65535, 0 … 4
    returns = ident_window_prefix(4, *window, inside=True) + replies
    others = ident_window_prefix(4, *window, inside=False) + replies
    reply = ipv4(B, A, GRE_PT0, ident=ident)
    assert (_passes(returns, reply), _passes(others, reply)) == (inside, not inside)
    assert not _passes(returns, REQUEST) and not _passes(others, REQUEST)  # replies only


def test_an_empty_window_sends_every_reply_to_the_others() -> None:
    replies = gre_socket_filter(4, [(A, B)], "replies")
    reply = ipv4(B, A, GRE_PT0, ident=7)
    assert not _passes(ident_window_prefix(4, 0, -1, inside=True) + replies, reply)
    assert _passes(ident_window_prefix(4, 0, -1, inside=False) + replies, reply)


def test_the_window_covers_every_outstanding_request_and_only_those() -> None:
    engine = _engine(_tunnel(A, B), _tunnel(A, FAR))  # IP IDs from 100, two per keepalive
    near, far = engine.tunnels
    assert engine.return_windows() == {4: None, 6: None}  # nothing awaited yet
    first = engine.build_request(near)  # inner ID 100
    engine.expect(near, first)
    assert engine.return_windows() == {4: (100, 0), 6: None}
    engine.sent(near, 0.0, first)  # sent after expect: awaited once
    engine.sent(far, 0.0, engine.build_request(far))  # inner ID 102
    assert engine.return_windows() == {4: (100, 2), 6: None}
    reply = reflect_request(first)
    assert reply is not None
    engine.received(0.1, 0.1, reply)  # 100 returned: the window starts at 102
    assert engine.return_windows() == {4: (102, 0), 6: None}
    assert _engine(accept_any_return=True).return_windows() is None  # no window at all


@pytest.mark.parametrize(
    ("attached", "needed", "chosen"),
    [
        (None, (100, 2), (100, 18)),  # first window: what is awaited + 16 to come
        ((100, 18), (104, 4), None),  # still covered, not too wide: no recompiling
        ((100, 18), (110, 10), (110, 26)),  # the newest ID (120) is beyond 118
        ((65530, 20), (2, 4), None),  # covered across the wrap of the 16-bit ID
        ((100, 100), (150, 2), (150, 18)),  # covered but 100 > 2 + 2 × 16: narrowed
        (None, (0, 65530), (0, 65535)),  # never wider than the whole ID space
    ],
)
def test_a_return_window_is_recompiled_only_when_it_must(
    attached: tuple[int, int] | None, needed: tuple[int, int], chosen: tuple[int, int] | None
) -> None:
    assert probe_net.window_to_attach(attached, needed, 16, 1 << 16) == chosen


def test_the_socket_filter_fits_the_kernel_limit_for_many_tunnels() -> None:
    many = [(A, f"198.51.100.{i}") for i in range(1, 255)]
    assert len(gre_socket_filter(4, many)) <= 4096
    assert _passes(gre_socket_filter(4, many), ipv4("198.51.100.254", A, GRE_PT0))
    with pytest.raises(ValueError, match="4096"):
        gre_socket_filter(6, [(A6, f"2001:db8::{i:x}") for i in range(2, 500)])


# --- validation -----------------------------------------------------------------------------


@pytest.fixture
def host_has_a(monkeypatch: pytest.MonkeyPatch) -> None:
    """This host has A, 192.0.2.5 and 2001:db8::1, whatever machine runs the test."""
    monkeypatch.setattr(
        probe_net, "is_local_address", lambda a: a in (A, "192.0.2.5", "2001:db8::1")
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--local", A, "--remote", A], "local and remote are both 192.0.2.1: a tunnel to itself"),
        (["--local", A, "--remote", "0.0.0.0"], "remote address 0.0.0.0 is unspecified"),
        (["--local", A, "--remote", "127.0.0.1"], "remote address 127.0.0.1 is a loopback"),
        (["--local", A, "--remote", "224.0.0.5"], "is a multicast address"),
        (["--local", A, "--remote", "255.255.255.255"], "is the broadcast address"),
        (["--local", A, "--remote", "::"], "different families"),
        (["--local", "192.0.2.9", "--remote", B], "192.0.2.9 is not an address of this host"),
        (["--local", A, "--remote", "192.0.2.5"], "is an address of this host"),
        (["--local", A, "--remote", B, "--keepalive", "0.5", "3"], "below 1 s: add --lab"),
        (["--local", A, "--remote", B, "--keepalive", "1e-300", "3"], "out of range 1-32767"),
        (["--local", A, "--remote", B, "--keepalive", "0.001", "3", "--lab"], "out of range"),
        (["--local", A, "--remote", B, "--keepalive", "nan", "3"], "out of range"),
        (["--local", A, "--remote", B, "--on-change", "true", "--format", "tui"], "jsonl"),
        (["--local", A, "--remote", "240.0.0.1"], "240.0.0.1 is a reserved address"),
        (
            ["--local", "2001:db8::1", "--remote", "::ffff:198.51.100.1"],
            "an IPv4-mapped IPv6 address (use 198.51.100.1)",
        ),
        (["--local", A, "--remote", B, "--max-reflect-pps", "1e-300"], "out of range 0.01-"),
        (["--local", A, "--remote", B, "--max-reflect-pps", "1e300"], "out of range 0.01-10000"),
    ],
)
def test_bad_endpoints_and_periods_are_one_line_and_exit_2(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str], host_has_a: None
) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main(["probe", *argv])
    assert stopped.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert captured.out == "" and len(lines) == 1, lines
    assert expected in lines[0]


def test_help_shows_each_example_on_its_own_lines(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["probe", "--help"])
    lines = capsys.readouterr().out.splitlines()
    # the --on-change example is one shell command continued on the next line
    continued = lines.index(
        "  sudo gre-keepalive probe --config /etc/gre-keepalive/tunnels.toml \\"
    )
    assert lines[continued + 1].startswith("      --on-change '/usr/local/bin/notify ")


def test_a_config_period_below_1_s_needs_lab(tmp_path: Path, host_has_a: None) -> None:
    config = tmp_path / "t.toml"
    config.write_text(f'[[tunnel]]\nsource = "{A}"\ndestination = "{B}"\nperiod = 0.5\n')
    loaded = probe.read_probe_config(str(config))
    with pytest.raises(ValueError, match=r"t.toml:1: .*period 0.5 s is below 1 s: add --lab"):
        probe.select_tunnels(_args("--config", str(config)), loaded, probe_net.is_local_address)
    tunnels, _ = probe.select_tunnels(
        _args("--config", str(config), "--lab"), loaded, probe_net.is_local_address
    )
    assert tunnels[0].period == 0.5


def _args(*argv: str) -> Any:
    return cli.build_parser().parse_args(["probe", *argv])


# --- --count with tunnels of different periods ----------------------------------------------


def test_a_step_of_the_host_clock_does_not_take_a_healthy_tunnel_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every keepalive returns. After the 4th send the host's clock steps 10 s forward (NTP,
    # date -s): 10 s is 40 periods of 0.25 s, and on the host's clock they were ticks
    # extrapolated as unanswered: down (counter 2 >= retries 2), then up at the next return.
    # (A period long enough that a loaded machine's late wake-up is not a missed tick.)
    network = FakeNetwork(peer_alive=True)
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + (10.0 if len(network.sent) >= 4 else 0))
    engine = _engine(_tunnel(A, B, period=0.25, retries=2))
    lines: list[dict[str, Any]] = []
    loop = probe.ProbeLoop(engine, network, lines.extend, count=8)  # type: ignore[arg-type]
    try:
        assert loop.run(threading.Event()) == 0
    finally:
        network.close()
    assert [e["event"] for e in lines if e["event"] in ("down", "up", "extrapolated")] == []
    assert lines[-1]["tunnels"][0]["downs"] == 0


def test_count_judges_each_tunnel_when_it_is_done() -> None:
    network = FakeNetwork(peer_alive=True)
    fast = _tunnel(A, B, period=0.05, retries=2)
    slow = _tunnel(A, FAR, period=0.25, retries=3)
    engine = _engine(fast, slow)
    lines: list[dict[str, Any]] = []
    loop = probe.ProbeLoop(engine, network, lines.extend, count=3)  # type: ignore[arg-type]
    try:
        # The fast tunnel's last keepalive returns within 0.1 s; the slow one still runs for
        # 0.5 s, long enough for the tracker to extrapolate the fast one's missing ticks
        # past its retries. Judged when done, both are up.
        assert loop.run(threading.Event()) == 0
    finally:
        network.close()
    assert not [e for e in lines if e["event"] == "down"]
    rows = {row["remote"]: row for row in lines[-1]["tunnels"]}
    assert [(rows[r]["sent"], rows[r]["line_state"]) for r in (B, FAR)] == [(3, "up")] * 2


class _TwoSockets(FakeNetwork):
    """The probe's two receive sockets: forged requests queued on one, a return on the other."""

    def __init__(self) -> None:
        super().__init__(peer_alive=False)
        self.replies, self._replies_wire = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.replies.setblocking(False)
        self.order: list[str] = []

    @property
    def receivers(self) -> list[socket.socket]:
        return [self.replies, self.inbound]

    def receive(self, sock: socket.socket) -> probe_net.Received | None:
        got = super().receive(sock)
        if got is not None:
            self.order.append("reply" if sock is self.replies else "request")
        return got

    def close(self) -> None:
        super().close()
        self.replies.close()
        self._replies_wire.close()


class _ReadyLastFirst(selectors.DefaultSelector):
    """A selector listing ready sockets in the reverse of their registration order."""

    def select(self, timeout: float | None = None) -> list[Any]:
        return list(reversed(super().select(timeout)))


def test_the_loop_reads_returns_before_a_backlog_of_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # whatever order the kernel reports them ready in
    monkeypatch.setattr(selectors, "DefaultSelector", _ReadyLastFirst)
    network = _TwoSockets()
    engine = _engine(_tunnel(A, B, period=None))
    for _ in range(3):
        network._wire.send(REQUEST)  # forged requests from the peer's address, queued first
    network._replies_wire.send(ipv4(B, A, GRE_PT0, ident=9))
    stop = threading.Event()
    loop = probe.ProbeLoop(engine, network, lambda events: stop.set(), count=None)  # type: ignore[arg-type]
    try:
        loop.run(stop)
    finally:
        network.close()
    assert network.order == ["reply", "request", "request", "request"]


# --- SIGHUP reload --------------------------------------------------------------------------


def test_reconfigure_keeps_the_kept_tunnels_state_and_drops_the_removed() -> None:
    kept, removed, added = _tunnel(A, B), _tunnel(A, FAR), _tunnel(A, "198.51.100.2")
    engine = _engine(kept, removed)
    request = engine.build_request(kept)
    engine.sent(kept, 0.0, request)
    reply = reflect_request(request)
    assert reply is not None
    engine.received(0.01, 0.01, reply)
    engine.sent(removed, 0.0, engine.build_request(removed))
    change = engine.reconfigure([kept, added], None)
    assert (change.added, change.removed, change.kept) == ([added], [removed], {kept: kept})
    assert (engine.stats[kept].sent, engine.stats[kept].returned) == (1, 1)
    assert removed not in engine.stats and added in engine.stats
    originators = {(s.address, s.peer) for s in engine.tracker.snapshot(1.0)}
    assert originators == {(A, B)}
    assert engine.metrics is not None
    text = generate_latest(engine.metrics.registry).decode()
    assert 'remote="198.51.100.1"' not in text and 'remote="198.51.100.2"' in text


def _peer_entry(retries: int) -> KeepaliveConfig:
    """A configuration file holding only the peer's side: B → A, period 1, `retries`."""
    entry = TunnelConfig(
        source=B,
        destination=A,
        key=None,
        keepalive=True,
        period=1.0,
        retries=retries,
        name="b-side",
        origin="t.toml:1",
    )
    return KeepaliveConfig("t.toml", "toml", None, None, (entry,), ())


def test_after_a_reload_peer_events_report_the_retries_their_state_machine_runs() -> None:
    tunnel = _tunnel(A, B, retries=2)
    engine = ProbeEngine([tunnel], ProbeOptions(), config=_peer_entry(5))
    first = engine.received(0.0, 0.0, build_keepalive_request(B, A, inner_id=5, outer_id=6))[0]
    assert (first[0]["retries"], first[0]["retries_source"]) == (5, "config")
    engine.reconfigure([tunnel], _peer_entry(7))  # the peer's retries edited, tunnel kept
    later = engine.received(1.0, 1.0, build_keepalive_request(B, A, inner_id=7, outer_id=8))[0]
    # B's timeline runs on with the 5 it started with, and its events say so
    (state,) = [s for s in engine.tracker.snapshot(1.0) if s.address == B]
    assert (state.retries, later[0]["retries"]) == (5, 5)


def test_a_tunnel_that_only_moved_in_the_file_keeps_its_state() -> None:
    before = _tunnel(A, B)
    engine = _engine(before)
    engine.sent(before, 0.0, engine.build_request(before))
    moved = Tunnel(A, B, None, 1.0, 2, "Tunnel7", "router.cfg:40")  # renamed, other line
    change = engine.reconfigure([moved], None)
    assert (change.added, change.removed, change.kept) == ([], [], {moved: before})
    assert engine.stats[moved].sent == 1 and engine.tunnels == [moved]
    slower = Tunnel(A, B, None, 5.0, 2, "Tunnel7", "router.cfg:40")  # period changed
    change = engine.reconfigure([slower], None)
    assert (change.added, change.removed) == ([slower], [moved])
    assert engine.stats[slower].sent == 0


def test_the_loop_reloads_on_hup_and_survives_a_bad_reload() -> None:
    network = FakeNetwork(peer_alive=True)
    first, second = _tunnel(A, B, period=0.05), _tunnel(A, FAR, period=0.05)
    engine = _engine(first)
    answers: list[Any] = [ValueError("t.toml:3: bad"), ([first, second], None)]

    def reload() -> Any:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    lines: list[dict[str, Any]] = []
    hup = threading.Event()

    def emit(events: list[dict[str, Any]]) -> None:
        lines.extend(events)
        if answers and not hup.is_set():
            hup.set()  # one reload per batch of output until both answers are used

    loop = probe.ProbeLoop(
        engine,
        network,
        emit,
        count=3,
        reload=reload,
        hup=hup,  # type: ignore[arg-type]
    )
    try:
        assert loop.run(threading.Event()) == 0
    finally:
        network.close()
    kinds = [e["event"] for e in lines if e["event"] in ("reload-failed", "reloaded")]
    assert kinds == ["reload-failed", "reloaded"]
    reloaded = next(e for e in lines if e["event"] == "reloaded")
    assert (reloaded["added"], reloaded["removed"]) == ([second.name], [])
    assert network.filtered == [(A, B), (A, FAR)]
    rows = {row["remote"]: row["sent"] for row in lines[-1]["tunnels"]}
    assert rows == {B: 3, FAR: 3}


# --- stderr lines, --on-change, a closed stdout ---------------------------------------------

DOWN = {
    "time": 1.5,
    "event": "down",
    "originator": A,
    "peer": B,
    "key": None,
    "counter": 3,
    "retries": 3,
}


def test_transition_lines_carry_a_syslog_priority_under_journald(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    plain = transition_line("gre-keepalive", DOWN, "Tunnel0")
    assert plain == (
        "gre-keepalive: tunnel Tunnel0 (192.0.2.1 → 192.0.2.2, key none): "
        "line protocol DOWN (counter 3 >= retries 3)"
    )
    stderr = os.fstat(2)
    monkeypatch.setenv("JOURNAL_STREAM", f"{stderr.st_dev}:{stderr.st_ino}")  # stderr is it
    assert transition_line("gre-keepalive", DOWN, "Tunnel0") == "<4>" + plain
    up = {**DOWN, "event": "up", "counter": 0}
    assert transition_line("gre-keepalive", up, "Tunnel0").startswith("<5>")
    # inherited from a service whose journal stream is not our stderr: no priority
    monkeypatch.setenv("JOURNAL_STREAM", f"{stderr.st_dev}:{stderr.st_ino + 1}")
    assert transition_line("gre-keepalive", DOWN, "Tunnel0") == plain


def test_reporter_logs_own_transitions_only_and_stops_on_a_broken_pipe() -> None:
    engine = _engine(_tunnel(A, B))
    log = io.StringIO()

    class Closed(io.StringIO):
        def write(self, _text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    stop = threading.Event()
    report = probe.Reporter(Closed(), engine, stop, log=log)
    report([DOWN, {**DOWN, "originator": B, "peer": A}])  # ours, then the peer's
    assert log.getvalue().count("\n") == 1 and "Tunnel" not in log.getvalue()
    assert "192.0.2.1 → 192.0.2.2" in log.getvalue()
    assert report.broken and stop.is_set()


def test_on_change_runs_with_the_transition_in_its_environment(tmp_path: Path) -> None:
    out = tmp_path / "env"
    script = (
        'printf "%s|%s|%s|%s|%s" "$GRE_KEEPALIVE_TUNNEL" "$GRE_KEEPALIVE_STATE" '
        f'"$GRE_KEEPALIVE_COUNTER" "$GRE_KEEPALIVE_KEY" "$GRE_KEEPALIVE_LOCAL" > {out}'
    )
    logged: list[str] = []
    hooks = OnChange(script, 10.0, log=logged.append)
    hooks.fire(DOWN, "Tunnel0")
    hooks.close(grace=10.0)
    assert out.read_text() == "Tunnel0|down|3||192.0.2.1"
    assert (hooks.started, logged) == (1, [])
    assert json.loads(hook_environment(DOWN, "Tunnel0")["GRE_KEEPALIVE_EVENT"]) == DOWN


def test_on_change_never_waits_and_is_killed_at_its_deadline() -> None:
    clock = [0.0]
    logged: list[str] = []
    hooks = OnChange("sleep 30", 2.0, log=logged.append, monotonic=lambda: clock[0])
    hooks.fire(DOWN, "Tunnel0")  # returns at once: the command is still running
    (child,) = hooks.running
    assert child.process.poll() is None
    clock[0] = 1.9
    hooks.poll()
    assert hooks.running == [child]
    clock[0] = 2.0
    hooks.poll()
    assert hooks.running == [] and hooks.killed == 1
    assert child.process.returncode == -9
    assert logged == ["--on-change for Tunnel0 down killed after 2 s"]


# --- tunnel source IFNAME -------------------------------------------------------------------

IOS = """\
hostname linux-box
interface Tunnel0
 tunnel source eth7
 tunnel destination 198.51.100.1
 keepalive 5 3
interface Tunnel1
 tunnel source GigabitEthernet0/0
 tunnel destination 198.51.100.2
interface GigabitEthernet0/0
 ip address 192.0.2.9 255.255.255.0
interface Tunnel2
 tunnel source eth7
 tunnel destination 2001:db8::2
"""


def test_tunnel_source_names_a_host_interface_resolved_by_family() -> None:
    addresses = {("eth7", 4): "192.0.2.1", ("eth7", 6): "2001:db8::1"}
    text, notes = resolve_interface_sources(IOS, lambda name, family: addresses.get((name, family)))
    lines = text.splitlines()
    assert lines[2] == " tunnel source 192.0.2.1"
    assert lines[6] == " tunnel source GigabitEthernet0/0"  # the file's own interface
    assert lines[11] == " tunnel source 2001:db8::1"
    assert notes == [
        "line 3: tunnel source eth7 is 192.0.2.1 on this host",
        "line 12: tunnel source eth7 is 2001:db8::1 on this host",
    ]


def test_the_probe_reads_host_interface_names_from_an_ios_file(tmp_path: Path) -> None:
    config = tmp_path / "router.cfg"
    config.write_text(
        "interface Tunnel0\n tunnel source lo\n tunnel destination 198.51.100.1\n keepalive 5 3\n"
    )
    assert interface_address("lo", 4) == "127.0.0.1"  # every Linux host has it
    loaded = probe.read_probe_config(str(config))
    assert loaded is not None
    assert [(t.source, t.destination, t.period) for t in loaded.tunnels] == [
        ("127.0.0.1", "198.51.100.1", 5.0)
    ]


def test_a_host_interface_without_an_address_of_the_family_is_named_so() -> None:
    # The parser's warning says the file has no such interface; the note says why the
    # host's interface did not answer: it exists, but has no address of that family.
    ios = "interface Tunnel0\n tunnel source eth7\n tunnel destination 2001:db8::2\n"
    text, notes = resolve_interface_sources(ios, lambda name, family: None, lambda name: True)
    assert text == ios
    assert notes == [
        "line 2: tunnel source eth7: this host's interface eth7 has no global IPv6 address"
    ]
    _, none = resolve_interface_sources(ios, lambda name, family: None, lambda name: False)
    assert none == []


def test_the_probe_opens_its_ios_config_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read twice, a file rewritten in between would be parsed from two versions, and the
    # second read had no size limit.
    config = tmp_path / "router.cfg"
    config.write_text(
        "interface Tunnel0\n tunnel source lo\n tunnel destination 198.51.100.1\n keepalive 5 3\n"
    )
    opened: list[str] = []
    real_open, real_os_open = open, os.open

    def count_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(file, int):
            opened.append(os.fspath(file))
        return real_open(file, *args, **kwargs)

    def count_os_open(file: Any, *args: Any, **kwargs: Any) -> int:
        opened.append(os.fspath(file))
        return real_os_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", count_open)
    monkeypatch.setattr(os, "open", count_os_open)
    loaded = probe.read_probe_config(str(config))
    assert loaded is not None and loaded.tunnels[0].source == "127.0.0.1"
    assert opened.count(str(config)) == 1
