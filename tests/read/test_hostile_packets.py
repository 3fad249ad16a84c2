"""Hostile and broken frames never crash anything, nothing valid is lost.

Property-based (hypothesis, bounded): GRE with every flag combination, truncated at every
byte, wrong lengths, bad checksums, absurd IHL, GRE in GRE in GRE…, IPv6 extension
headers, every link type — `decode_frame` never raises and never fails inside itself; and
keepalives embedded among such junk in one capture are all still found by
`analyze_frames`.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.keepalive.model import Analysis, KeepaliveRole
from analyzer.pipeline.analyze import analyze_frames
from analyzer.read.capture import PcapWriter, RawFrame, open_capture
from analyzer.read.packet import (
    DECODER_ERROR,
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    Decoded,
    FrameKind,
    build_gre,
    build_ip,
    build_keepalive_request,
    decode_frame,
    reflect_request,
)

LINKTYPES = (
    LINKTYPE_NULL,
    LINKTYPE_ETHERNET,
    LINKTYPE_RAW,
    LINKTYPE_LOOP,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL2,
)
START = 1764115200.0

pytestmark = pytest.mark.timeout(120)  # a decoder that loops or goes quadratic fails, boundedly

HOSTILE = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
EMBEDDING = settings(HOSTILE, max_examples=40)


def wrap_link(
    linktype: int, ip_packet: bytes, *, vlans: int = 0, big_endian_null: bool = False
) -> bytes:
    """Frame an IP packet for `linktype` (Ethernet with `vlans` tags)."""
    version = ip_packet[0] >> 4 if ip_packet else 4
    ethertype = b"\x86\xdd" if version == 6 else b"\x08\x00"
    if linktype == LINKTYPE_ETHERNET:
        tags = b"".join(
            (b"\x88\xa8" if i == 0 and vlans > 1 else b"\x81\x00") + struct.pack("!H", 100 + i)
            for i in range(vlans)
        )
        return b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01" + tags + ethertype + ip_packet
    if linktype == LINKTYPE_LINUX_SLL:
        return b"\x00\x00\x00\x01\x00\x06\x02\x00\x00\x00\x00\x01\x00\x00" + ethertype + ip_packet
    if linktype == LINKTYPE_LINUX_SLL2:
        return ethertype + b"\x00\x00\x00\x00\x00\x02\x00\x01\x00\x06" + bytes(8) + ip_packet
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        family = 24 if version == 6 else 2
        order = ">I" if linktype == LINKTYPE_LOOP or big_endian_null else "<I"
        return struct.pack(order, family) + ip_packet
    return ip_packet


def assert_decoded_cleanly(decoded: Decoded) -> None:
    assert isinstance(decoded, Decoded)
    assert isinstance(decoded.kind, FrameKind)
    assert not decoded.reason.startswith(DECODER_ERROR), decoded.reason
    if decoded.kind is FrameKind.MALFORMED:
        assert decoded.reason


# --- strategies ---------------------------------------------------------------------------

ADDRESSES4 = st.sampled_from(["192.0.2.1", "198.51.100.1", "203.0.113.9", "0.0.0.0"])
ADDRESSES6 = st.sampled_from(["2001:db8::1", "2001:db8::2", "::", "fe80::1"])
PROTOCOL_TYPES = st.one_of(
    st.sampled_from([0x0000, 0x0800, 0x86DD, 0x8909, 0x6558, 0x880B, 0x88BE, 0x22EB]),
    st.integers(0, 0xFFFF),
)


@st.composite
def gre(draw: st.DrawFn, payload: bytes) -> bytes:
    """A GRE header with any flags (C, R, K, S, s, recursion, version), options, checksum."""
    flags = draw(
        st.one_of(
            # the RFC 2784/2890 bits in every combination, version 0 or 1
            st.builds(
                lambda c, k, s, v: (
                    (0x8000 if c else 0) | (0x2000 if k else 0) | (0x1000 if s else 0) | v
                ),
                st.booleans(),
                st.booleans(),
                st.booleans(),
                st.sampled_from([0, 0, 0, 1]),
            ),
            st.integers(0, 0xFFFF),  # anything: R, strict source route, recursion, version 7
        )
    )
    protocol = draw(PROTOCOL_TYPES)
    options = b""
    if flags & 0xC000:
        options += b"\x00\x00" + draw(st.binary(min_size=2, max_size=2))
    if flags & 0x2000:
        options += draw(st.binary(min_size=4, max_size=4))
    if flags & 0x1000:
        options += draw(st.binary(min_size=4, max_size=4))
    if flags & 0x4000:
        options += draw(st.binary(max_size=12))  # source route entries, maybe broken
    packet = struct.pack("!HH", flags, protocol) + options + payload
    if flags & 0x8000 and draw(st.booleans()):
        checksum = _checksum(packet)
        if draw(st.booleans()):
            checksum ^= draw(st.integers(1, 0xFFFF))  # a corrupted checksum
        packet = packet[:4] + struct.pack("!H", checksum) + packet[6:]
    return packet


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@st.composite
def ipv4(draw: st.DrawFn, payload: bytes, protocol: int = 47) -> bytes:
    """IPv4 with any IHL (absurd ones too), options, right or wrong total length, fragments."""
    ihl = draw(st.one_of(st.just(5), st.integers(0, 15)))
    options = draw(st.binary(min_size=max(ihl * 4 - 20, 0), max_size=max(ihl * 4 - 20, 0)))
    header_length = 20 + len(options)
    total = draw(
        st.one_of(
            st.just(header_length + len(payload)),
            st.integers(0, 0xFFFF),  # wrong total lengths: short, long, zero (TSO)
        )
    )
    fragment = draw(st.sampled_from([0, 0, 0, 0x2000, 0x0001, 0x4000]))
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | ihl,
        draw(st.integers(0, 255)),
        total,
        draw(st.integers(0, 0xFFFF)),
        fragment,
        draw(st.integers(0, 255)),
        protocol,
        0,
        bytes(draw(st.lists(st.integers(0, 255), min_size=4, max_size=4))),
        bytes(draw(st.lists(st.integers(0, 255), min_size=4, max_size=4))),
    )
    return header + options + payload


IP6_EXTENSIONS = st.sampled_from([0, 43, 44, 50, 51, 60, 135, 59])


@st.composite
def ipv6(draw: st.DrawFn, payload: bytes, protocol: int = 47) -> bytes:
    """IPv6 with a chain of extension headers (right or broken lengths) before `protocol`."""
    chain = draw(st.lists(IP6_EXTENSIONS, max_size=4))
    body = payload
    next_header = protocol
    for ext in reversed(chain):
        if ext == 44:
            offset_m = draw(st.sampled_from([0, 1, 8, 9]))
            header = struct.pack("!BBHI", next_header, 0, offset_m, 7)
        elif ext == 51:
            length = draw(st.sampled_from([1, 1, 4, 255]))
            header = struct.pack("!BB", next_header, length) + bytes(10)
        elif ext in (50, 59):
            header = bytes(8)  # ESP / no next header: nothing after is parseable
        else:
            length = draw(st.sampled_from([0, 0, 1, 255]))
            header = struct.pack("!BB", next_header, length) + bytes(6 + 8 * min(length, 1))
        body = header + body
        next_header = ext
    plen = draw(st.one_of(st.just(len(body)), st.integers(0, 0xFFFF)))
    return (
        struct.pack("!IHBB", 0x60000000, plen, next_header, draw(st.integers(0, 255)))
        + bytes(15)
        + b"\x01"
        + bytes(15)
        + b"\x02"
        + body
    )


@st.composite
def gre_packets(draw: st.DrawFn, max_depth: int = 8) -> bytes:
    """GRE in GRE in GRE… over IPv4/IPv6, ending in a keepalive core, junk or nothing."""
    depth = draw(st.integers(1, max_depth))
    innermost = draw(
        st.one_of(
            st.just(b""),
            st.binary(max_size=40),
            st.just(struct.pack("!HH", 0, 0)),  # a PT-0 header: the keepalive core
        )
    )
    packet = innermost
    for _ in range(depth):
        packet = draw(gre(packet))
        packet = draw(ipv4(packet)) if draw(st.booleans()) else draw(ipv6(packet))
        if draw(st.integers(0, 9)) == 0:
            packet = draw(ipv4(packet, protocol=draw(st.sampled_from([4, 41]))))  # IP in IP
    return packet


@st.composite
def hostile_frames(draw: st.DrawFn, max_depth: int = 8) -> tuple[int, bytes]:
    """(linktype, frame): a generated GRE packet, framed, then maybe truncated or mangled."""
    linktype = draw(st.sampled_from(LINKTYPES))
    frame = wrap_link(
        linktype,
        draw(gre_packets(max_depth)),
        vlans=draw(st.integers(0, 3)),
        big_endian_null=draw(st.booleans()),
    )
    mangle = draw(st.sampled_from(["none", "truncate", "flip", "both"]))
    if mangle in ("truncate", "both") and frame:
        frame = frame[: draw(st.integers(0, len(frame)))]
    if mangle in ("flip", "both") and frame:
        data = bytearray(frame)
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        frame = bytes(data)
    return linktype, frame


# --- decode_frame never raises ------------------------------------------------------------


@HOSTILE
@given(hostile_frames())
def test_decode_frame_survives_generated_gre(frame: tuple[int, bytes]) -> None:
    assert_decoded_cleanly(decode_frame(*frame))


@HOSTILE
@given(
    st.one_of(st.sampled_from(LINKTYPES), st.integers(0, 0xFFFFFFFF)),
    st.binary(max_size=300),
)
def test_decode_frame_survives_any_bytes_on_any_linktype(linktype: int, data: bytes) -> None:
    assert_decoded_cleanly(decode_frame(linktype, data))


@HOSTILE
@given(st.sampled_from(LINKTYPES), st.binary(max_size=64), st.integers(0, 3))
def test_decode_frame_survives_junk_behind_any_link_header(
    linktype: int, junk: bytes, vlans: int
) -> None:
    for first in (b"\x45", b"\x4f", b"\x41", b"\x60", b""):
        assert_decoded_cleanly(
            decode_frame(linktype, wrap_link(linktype, first + junk, vlans=vlans))
        )


def _well_formed_keepalives() -> list[bytes]:
    packets = []
    for key, checksum, sgt, outer in itertools.product(
        (None, 7), (False, True), (None, 5), ("192.0.2.1", "2001:db8::1")
    ):
        peer = "198.51.100.1" if "." in outer else "2001:db8::2"
        request = build_keepalive_request(
            outer, peer, key=key, checksum=checksum, metadata_sgt=sgt, inner_id=9
        )
        reply = reflect_request(request)
        assert reply is not None
        packets += [request, reply]
    return packets


WELL_FORMED = _well_formed_keepalives()


@pytest.mark.parametrize("linktype", LINKTYPES)
def test_every_truncation_of_every_keepalive_decodes(linktype: int) -> None:
    for packet in WELL_FORMED:
        frame = wrap_link(linktype, packet, vlans=2)
        full = decode_frame(linktype, frame)
        assert full.kind in (FrameKind.REQUEST, FrameKind.REPLY)
        for cut in range(len(frame)):
            decoded = decode_frame(linktype, frame[:cut])
            assert_decoded_cleanly(decoded)
            if full.kind is FrameKind.REQUEST and decoded.kind is FrameKind.REQUEST:
                # only a request cut inside its inner GRE header, said to be cut
                assert decoded.cut, cut
                assert decoded.inner == dataclasses.replace(full.inner, key=full.key), cut  # type: ignore[arg-type]


def test_deep_gre_recursion_is_data_and_fast() -> None:
    packet = build_keepalive_request("192.0.2.1", "198.51.100.1")
    for level in range(200):  # GRE in GRE in GRE… 200 deep, a keepalive at the bottom
        packet = build_ip("192.0.2.1", "198.51.100.1", build_gre(0x0800, packet), ip_id=level)
    decoded = decode_frame(LINKTYPE_RAW, packet)
    assert decoded.kind is FrameKind.DATA


def test_deep_ip_in_ip_is_not_followed_forever() -> None:
    packet = build_keepalive_request("192.0.2.1", "198.51.100.1")
    for _ in range(100):
        packet = build_ip("203.0.113.1", "203.0.113.2", packet, protocol=4)
    assert_decoded_cleanly(decode_frame(LINKTYPE_RAW, packet))


def test_long_cisco_isl_lookalike_frame_does_not_recurse() -> None:
    # dpkt's Ethernet decoder treats 01:00:0c:00:00 as Cisco ISL and recursed once per
    # 26 bytes: a jumbo frame of these raised RecursionError (and took quadratic time).
    isl = b"\x01\x00\x0c\x00\x00" + bytes(21)
    assert_decoded_cleanly(decode_frame(LINKTYPE_ETHERNET, isl * 3000))


def test_novell_raw_8023_frame_is_other() -> None:
    # 802.3 length + 0xFFFF: dpkt looked up IPX in an emptied table and raised KeyError.
    frame = bytes(12) + b"\x00\x20" + b"\xff\xff" + bytes(30)
    assert decode_frame(LINKTYPE_ETHERNET, frame).kind is FrameKind.OTHER


def test_ipv6_esp_after_an_extension_header_is_other() -> None:
    # dpkt left `p` unset after an ESP header: AttributeError escaped decode_frame.
    packet = (
        struct.pack("!IHBB", 0x60000000, 24, 0, 64)  # IPv6, next header hop-by-hop
        + bytes(32)
        + b"\x32\x00\x01\x04\x00\x00\x00\x00"  # hop-by-hop: next header 50 (ESP)
        + bytes(16)  # ESP SPI, sequence, ciphertext
    )
    assert decode_frame(LINKTYPE_RAW, packet).kind is FrameKind.OTHER


def test_ipv6_authentication_header_length_is_its_own() -> None:
    # dpkt counted an AH as long as the rest of the packet, so the GRE behind it was lost.
    request = build_keepalive_request("2001:db8::1", "2001:db8::2")
    ah = b"\x2f\x04\x00\x00" + b"\x00\x00\x01\x00" + b"\x00\x00\x00\x01" + bytes(12)  # 24 bytes
    payload = ah + request[40:]
    packet = struct.pack("!IHBB", 0x60000000, len(payload), 51, 255) + request[8:40] + payload
    assert decode_frame(LINKTYPE_RAW, packet).kind is FrameKind.REQUEST


# --- nothing valid is lost ----------------------------------------------------------------


@st.composite
def keepalive_specs(draw: st.DrawFn) -> list[tuple[int, int | None, bool, int | None, bool, bool]]:
    """(linktype, key, checksum, sgt, ipv6 outer, answered) for each embedded request."""
    return draw(
        st.lists(
            st.tuples(
                st.sampled_from(LINKTYPES),
                st.sampled_from([None, 42]),
                st.booleans(),
                st.sampled_from([None, 3]),
                st.booleans(),
                st.booleans(),
            ),
            min_size=1,
            max_size=6,
        )
    )


def _junk(draw: st.DrawFn) -> list[tuple[int, bytes]]:
    candidates = draw(
        st.lists(
            st.one_of(
                hostile_frames(max_depth=3),
                st.tuples(st.sampled_from(LINKTYPES), st.binary(max_size=80)),
            ),
            max_size=8,
        )
    )
    # Junk is what decode_frame does not call a keepalive (mangling can leave one intact).
    return [
        (linktype, data)
        for linktype, data in candidates
        if decode_frame(linktype, data).kind not in (FrameKind.REQUEST, FrameKind.REPLY)
    ]


def _embed(draw: st.DrawFn) -> tuple[list[RawFrame], set[int], set[int]]:
    """Keepalives (in time order) with junk frames drawn in between; frame numbers of each."""
    specs = draw(keepalive_specs())
    keepalives: list[tuple[str, int, bytes]] = []
    for index, (linktype, key, checksum, sgt, v6, answered) in enumerate(specs):
        originator, peer = ("2001:db8::1", "2001:db8::2") if v6 else ("192.0.2.1", "198.51.100.1")
        request = build_keepalive_request(
            originator,
            peer,
            key=key,
            checksum=checksum,
            metadata_sgt=sgt,
            outer_id=2 * index + 1,
            inner_id=2 * index,
        )
        keepalives.append(("request", linktype, wrap_link(linktype, request, vlans=index % 3)))
        if answered:
            reply = reflect_request(request)
            assert reply is not None
            keepalives.append(("reply", linktype, wrap_link(linktype, reply)))
    junk = _junk(draw)
    slots = sorted(draw(st.lists(st.integers(0, len(keepalives)), min_size=len(junk))))
    frames: list[RawFrame] = []
    requests: set[int] = set()
    replies: set[int] = set()
    junk_iter = iter(zip(slots, junk, strict=False))
    pending = next(junk_iter, None)
    for position in range(len(keepalives) + 1):
        time = START + 10.0 * position
        while pending is not None and pending[0] == position:
            linktype, data = pending[1]
            frames.append(RawFrame(len(frames) + 1, time - 5.0, linktype, data, len(data), 0, 0))
            pending = next(junk_iter, None)
        if position < len(keepalives):
            role, linktype, data = keepalives[position]
            at = time + (0.02 if role == "reply" else 0.0)
            frames.append(RawFrame(len(frames) + 1, at, linktype, data, len(data), 0, 0))
            (requests if role == "request" else replies).add(len(frames))
    return frames, requests, replies


def _events(analysis: Analysis, role: KeepaliveRole) -> set[int]:
    return {
        event.frame
        for tunnel in analysis.tunnels
        for originator in tunnel.originators
        for event in originator.events
        if event.role is role and event.frame is not None
    }


@EMBEDDING
@given(st.data())
def test_every_embedded_keepalive_is_found_among_junk(data: st.DataObject) -> None:
    frames, requests, replies = _embed(data.draw)
    analysis = analyze_frames(frames)
    assert analysis.source.packets == len(frames)
    assert analysis.source.keepalive_packets == len(requests) + len(replies)
    assert sum(o.sent for t in analysis.tunnels for o in t.originators) == len(requests)
    assert _events(analysis, KeepaliveRole.SENT) == requests
    assert _events(analysis, KeepaliveRole.RETURNED) == replies


@EMBEDDING
@given(st.data())
def test_every_embedded_reply_pairs_with_its_request_among_junk(data: st.DataObject) -> None:
    frames, _, replies = _embed(data.draw)
    analysis = analyze_frames(frames)
    returned = sum(o.returned for t in analysis.tunnels for o in t.originators)
    assert returned == len(replies)


@EMBEDDING
@given(st.data())
def test_every_malformed_junk_frame_is_counted_and_listed(data: st.DataObject) -> None:
    frames, _, _ = _embed(data.draw)
    analysis = analyze_frames(frames)
    malformed = [
        frame.number
        for frame in frames
        if decode_frame(frame.linktype, frame.data).kind is FrameKind.MALFORMED
    ]
    assert analysis.source.malformed == len(malformed)
    assert [error.frame for error in analysis.source.errors] == malformed[:100]
    assert all(error.reason for error in analysis.source.errors)


@settings(EMBEDDING, max_examples=20)
@given(st.data())
def test_keepalives_among_junk_in_a_pcap_file_are_all_found(data: st.DataObject) -> None:
    frames, requests, replies = _embed(data.draw)
    buffer = io.BytesIO()
    with PcapWriter(buffer, LINKTYPE_RAW) as writer:  # the link type of the file header…
        for frame in frames:
            writer.write(frame.time, frame.data)
    buffer.seek(0)
    with open_capture("-", stdin=buffer) as reader:  # …so every frame is read as raw IP
        read = [
            RawFrame(f.number, f.time, frames[f.number - 1].linktype, f.data, f.wire_length, 0, 0)
            for f in reader
        ]
        assert reader.warnings == []
    assert [(f.number, f.data) for f in read] == [(f.number, f.data) for f in frames]
    analysis = analyze_frames(read)
    assert _events(analysis, KeepaliveRole.SENT) == requests
    assert _events(analysis, KeepaliveRole.RETURNED) == replies


def test_a_thousand_malformed_frames_are_counted_and_a_hundred_listed() -> None:
    truncated = wrap_link(LINKTYPE_ETHERNET, build_ip("192.0.2.1", "198.51.100.1", b"\x00\x00"))
    request = build_keepalive_request("192.0.2.1", "198.51.100.1", inner_id=5)
    frames = [
        RawFrame(n, START + n, LINKTYPE_ETHERNET, truncated, len(truncated), 0, 0)
        for n in range(1, 1001)
    ]
    keepalive = wrap_link(LINKTYPE_ETHERNET, request)
    frames.append(RawFrame(1001, START + 1001, LINKTYPE_ETHERNET, keepalive, len(keepalive), 0, 0))
    analysis = analyze_frames(frames)
    assert analysis.source.malformed == 1000
    assert len(analysis.source.errors) == 100
    assert [e.frame for e in analysis.source.errors] == list(range(1, 101))
    assert {e.reason for e in analysis.source.errors} == {"GRE header truncated (2 of 4 bytes)"}
    assert _events(analysis, KeepaliveRole.SENT) == {1001}
