"""VLAN tags and MPLS labels in any number are stripped by offset (tens of thousands of
labels cost no more than one slice); what they carry is decoded as without them."""

from __future__ import annotations

import struct

from analyzer.read.packet import LINKTYPE_ETHERNET, FrameKind, build_keepalive_request, decode_frame

MACS = bytes.fromhex("020000000002") + bytes.fromhex("020000000001")  # destination, source
REQUEST = build_keepalive_request("192.0.2.1", "198.51.100.1", outer_id=8, inner_id=7)


def label(value: int, *, bottom: bool) -> bytes:
    """One MPLS label stack entry: label (20 bits), TC 0, bottom-of-stack bit, TTL 64."""
    return struct.pack("!I", (value << 12) | (int(bottom) << 8) | 64)


def test_a_stack_of_65000_labels_carries_the_keepalive() -> None:
    frame = (
        MACS
        + struct.pack("!H", 0x8847)  # EtherType: MPLS unicast
        + b"".join(label(16 + i, bottom=False) for i in range(64_999))
        + label(99, bottom=True)
        + REQUEST  # IPv4: recognised by its version nibble
    )
    decoded = decode_frame(LINKTYPE_ETHERNET, frame)
    assert (decoded.kind, decoded.src, decoded.dst) == (
        FrameKind.REQUEST,
        "192.0.2.1",
        "198.51.100.1",
    )


def test_a_stack_without_its_bottom_is_malformed() -> None:
    frame = MACS + struct.pack("!H", 0x8847) + label(16, bottom=False) * 1000
    decoded = decode_frame(LINKTYPE_ETHERNET, frame)
    assert (decoded.kind, decoded.reason) == (FrameKind.MALFORMED, "MPLS label stack truncated")


def test_thousands_of_vlan_tags_then_ipv4() -> None:
    frame = (
        MACS
        + struct.pack("!H", 0x8100)  # EtherType: 802.1Q
        + struct.pack("!HH", 7, 0x8100) * 4999  # tag: TCI (VLAN 7), then the next type: 802.1Q
        + struct.pack("!HH", 7, 0x0800)  # the 5,000th tag: TCI, then IPv4
        + REQUEST
    )
    decoded = decode_frame(LINKTYPE_ETHERNET, frame)
    assert (decoded.kind, decoded.src) == (FrameKind.REQUEST, "192.0.2.1")


def test_a_vlan_tag_cut_short_is_malformed() -> None:
    frame = MACS + struct.pack("!H", 0x8100) + b"\x00"  # TPID, then 1 of the tag's 4 bytes
    decoded = decode_frame(LINKTYPE_ETHERNET, frame)
    assert (decoded.kind, decoded.reason) == (FrameKind.MALFORMED, "VLAN tag truncated")
