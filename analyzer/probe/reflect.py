"""Reflection as a router would forward it, rebuilt from checked fields.

A router that decapsulates a keepalive routes the inner packet like any other: it drops it
when the TTL runs out, and it never turns a tunnel into a relay for source routes or big
payloads. The probe is stricter still: it does not copy the inner packet, it parses it,
checks every field it will send, and builds a fresh packet from those fields (TTL − 1, new
checksums). Anything it cannot vouch for is dropped with a reason (:data:`REFLECT_DROPS`).

The outer packet is a whole IP packet as the probe's raw sockets give it (IPv4 with its
header, IPv6 with the plain header :mod:`analyzer.probe.net` puts back), already judged a
keepalive request of a configured tunnel by the decoder.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from analyzer.read.packet import internet_checksum

GRE_C, GRE_R, GRE_K, GRE_S = 0x80, 0x40, 0x20, 0x10  # flag bits of the first GRE byte
ETH_IPV4, ETH_IPV6, ETH_CISCO_METADATA = 0x0800, 0x86DD, 0x8909
IPPROTO_GRE = 47
METADATA_LENGTH = 8
# Bytes after the inner GRE header that are still reflected. OpenBSD's gre(4) keepalive
# carries 16 (uptime, random, SipHash digest); IOS, MikroTik and the others send none.
MAX_REFLECT_PAYLOAD = 64

REFLECT_DROPS: tuple[str, ...] = (
    "inner-ttl-expired",  # inner TTL / hop limit <= 1: a router would not forward it
    "inner-ip-options",  # IPv4 options (source routes…) or IPv6 extension headers
    "inner-fragment",  # an inner IPv4 fragment
    "bad-checksum",  # inner IPv4 header checksum, or a GRE checksum, does not verify
    "bad-length",  # a length field disagrees with the bytes that arrived
    "payload-too-large",  # more than MAX_REFLECT_PAYLOAD bytes after the inner GRE header
)


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """The packet to send (the reflected keepalive), or why there is none."""

    packet: bytes | None
    reason: str | None = None
    ttl: int = 0


def _drop(reason: str) -> Rebuilt:
    return Rebuilt(None, reason)


def _gre(data: bytes) -> tuple[int, int, int | None, int | None, int] | str:
    """(flags byte, protocol type, key, sequence, header length) of a GRE header, or a
    drop reason. A GRE checksum, when present, must verify over header and payload."""
    if len(data) < 4:
        return "bad-length"
    flags, version_byte, protocol = data[0], data[1], struct.unpack_from("!H", data, 2)[0]
    if flags & GRE_R or version_byte & 0x07 or flags & 0x0F or version_byte & 0xF8:
        return "bad-length"  # routing, another version or reserved bits: not a keepalive
    length = 4 + 4 * (bool(flags & GRE_C) + bool(flags & GRE_K) + bool(flags & GRE_S))
    if len(data) < length:
        return "bad-length"
    offset = 4
    if flags & GRE_C:
        if internet_checksum(data) != 0:
            return "bad-checksum"
        offset += 4
    key = sequence = None
    if flags & GRE_K:
        key = struct.unpack_from("!I", data, offset)[0]
        offset += 4
    if flags & GRE_S:
        sequence = struct.unpack_from("!I", data, offset)[0]
    return flags, protocol, key, sequence, length


def _build_gre(flags: int, key: int | None, sequence: int | None, payload: bytes) -> bytes:
    """A fresh PT-0 GRE header with the flags that were present (checksum recomputed)."""
    header = struct.pack("!BBH", flags & (GRE_C | GRE_K | GRE_S), 0, 0)
    optional = b""
    if flags & GRE_C:
        optional += b"\x00\x00\x00\x00"
    if key is not None:
        optional += struct.pack("!I", key)
    if sequence is not None:
        optional += struct.pack("!I", sequence)
    packet = header + optional + payload
    if flags & GRE_C:
        packet = packet[:4] + struct.pack("!H", internet_checksum(packet)) + packet[6:]
    return packet


def _outer_payload(packet: bytes) -> bytes | str:
    """The GRE bytes of the outer packet (its own length fields checked)."""
    if not packet:
        return "bad-length"
    if packet[0] >> 4 == 4:
        if len(packet) < 20:
            return "bad-length"
        header = (packet[0] & 0x0F) * 4
        total = struct.unpack_from("!H", packet, 2)[0]
        if header < 20 or total < header or total > len(packet):
            return "bad-length"
        return packet[header:total]
    if len(packet) < 40:
        return "bad-length"
    length = struct.unpack_from("!H", packet, 4)[0]
    if 40 + length > len(packet):
        return "bad-length"
    return packet[40 : 40 + length]


def _inner_gre(data: bytes) -> tuple[bytes, str | None]:
    """Check the inner PT-0 GRE header and its payload; (rebuilt GRE, drop reason)."""
    gre = _gre(data)
    if isinstance(gre, str):
        return b"", gre
    flags, protocol, key, sequence, length = gre
    if protocol != 0:
        return b"", "bad-length"
    payload = data[length:]
    if len(payload) > MAX_REFLECT_PAYLOAD:
        return b"", "payload-too-large"
    return _build_gre(flags, key, sequence, payload), None


def _reflect_ipv4(inner: bytes) -> Rebuilt:
    if len(inner) < 20:
        return _drop("bad-length")
    header = (inner[0] & 0x0F) * 4
    if header < 20:
        return _drop("bad-length")
    if header > 20:
        return _drop("inner-ip-options")
    (tos, total, ident, fragment, ttl, protocol) = struct.unpack_from("!xBHHHBB", inner)
    if total != len(inner):
        return _drop("bad-length")
    if internet_checksum(inner[:20]) != 0:
        return _drop("bad-checksum")
    if fragment & 0x3FFF:
        return _drop("inner-fragment")
    if protocol != IPPROTO_GRE:
        return _drop("bad-length")
    if ttl <= 1:
        return _drop("inner-ttl-expired")
    gre, reason = _inner_gre(inner[20:])
    if reason is not None:
        return _drop(reason)
    header_bytes = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        tos,
        20 + len(gre),
        ident,
        fragment & 0x4000,  # DF as it came; never a fragment
        ttl - 1,
        IPPROTO_GRE,
        0,
        inner[12:16],
        inner[16:20],
    )
    header_bytes = (
        header_bytes[:10] + struct.pack("!H", internet_checksum(header_bytes)) + header_bytes[12:]
    )
    return Rebuilt(header_bytes + gre, None, ttl - 1)


def _reflect_ipv6(inner: bytes) -> Rebuilt:
    if len(inner) < 40:
        return _drop("bad-length")
    first_word, length, next_header, hop_limit = struct.unpack_from("!IHBB", inner)
    if 40 + length != len(inner):
        return _drop("bad-length")
    if next_header != IPPROTO_GRE:
        return _drop("inner-ip-options")
    if hop_limit <= 1:
        return _drop("inner-ttl-expired")
    gre, reason = _inner_gre(inner[40:])
    if reason is not None:
        return _drop(reason)
    header = struct.pack("!IHBB", first_word, len(gre), IPPROTO_GRE, hop_limit - 1)
    return Rebuilt(header + inner[8:40] + gre, None, hop_limit - 1)


def rebuild_reflection(request: bytes) -> Rebuilt:
    """The packet a router would forward after decapsulating keepalive `request`, rebuilt
    from checked fields, or the reason it must not be sent."""
    outer_gre = _outer_payload(request)
    if isinstance(outer_gre, str):
        return _drop(outer_gre)
    gre = _gre(outer_gre)
    if isinstance(gre, str):
        return _drop(gre)
    _flags, protocol, _key, _sequence, length = gre
    inner = outer_gre[length:]
    if protocol == ETH_CISCO_METADATA:
        inner = inner[METADATA_LENGTH:]
    if not inner:
        return _drop("bad-length")
    version = inner[0] >> 4
    if version == 4 and protocol in (ETH_IPV4, ETH_CISCO_METADATA):
        return _reflect_ipv4(inner)
    if version == 6 and protocol in (ETH_IPV6, ETH_CISCO_METADATA):
        return _reflect_ipv6(inner)
    return _drop("bad-length")
