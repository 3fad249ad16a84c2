"""The packet rules: decode captured frames into typed records, and build keepalives.

This is the only module that imports dpkt. Everything else sees :class:`Decoded`
records. dpkt's header classes are used with their automatic payload decoding
switched off (subclasses with empty dispatch tables), so a GRE-in-GRE-in-GRE chain
can never recurse and data packets cost only the headers we read.
"""

from __future__ import annotations

import functools
import socket
import struct
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import ClassVar, NamedTuple

import dpkt

from analyzer.read.capture import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
)

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_CISCO_METADATA = 0x8909
# Some Huawei VRP releases send keepalive requests with outer protocol type 4 (the IP
# protocol number of IPv4, not its EtherType): the inner IP header's version says which.
GRE_PT_HUAWEI_IP = 0x0004
_VLAN_TYPES = frozenset({0x8100, 0x88A8, 0x9100, 0x9200})
_MPLS_TYPES = frozenset({0x8847, 0x8848})
ETH_PPPOE_SESSION = 0x8864
# PPPoE session header (version/type, code, session ID, length: 6 bytes), then the PPP
# protocol: 0x0021 IPv4, 0x0057 IPv6 (RFC 2516, RFC 1661/5072).
_PPP_IP = {0x0021: ETH_IPV4, 0x0057: ETH_IPV6}
_MAX_ETHERNET_LENGTH = 1500  # an Ethernet "type" up to this is an 802.3 length (LLC follows)
IPPROTO_GRE = 47
_IP_IN_IP = {4: 0x0800, 41: 0x86DD}
_MAX_IP_IN_IP = 3

# IPv6 extension headers walked to find the upper-layer protocol (RFC 8200 §4; RFC 7045):
# these have a next-header byte and a length byte in 8-octet units not counting the first 8.
_IP6_EXT_8 = frozenset({0, 43, 60, 135, 139, 140, 253, 254})
_IP6_FRAGMENT = 44
_IP6_AH = 51  # length in 4-octet units, not counting the first two
_MAX_IP6_EXTENSIONS = 16

GRE_C = 0x8000
GRE_R = 0x4000
GRE_K = 0x2000
GRE_S = 0x1000
GRE_VERSION_MASK = 0x0007

# Cisco MetaData (TrustSec inline tagging) behind GRE: next type, version, length,
# option length/type, SGT — 8 bytes (as in real IOS captures and Wireshark's dissector).
_CMD_LENGTH = 8

# Reason prefix of a frame the decoder itself failed on (a bug: tests assert it never shows).
DECODER_ERROR = "internal decoder error"


class FrameKind(StrEnum):
    """What a captured frame is, as far as keepalive analysis cares."""

    REQUEST = "request"  # GRE carrying an inner packet that is GRE with protocol type 0
    REPLY = "reply"  # bare GRE with protocol type 0 (a reflected keepalive)
    DATA = "data"  # any other GRE packet: tunnel traffic
    OTHER = "other"  # not GRE
    MALFORMED = "malformed"  # GRE (or the headers leading to it) that cannot be decoded


# Not frozen, though nothing changes one once made (hashable all the same): one per
# keepalive request, and a frozen dataclass takes five times as long to build.
@dataclass(slots=True, unsafe_hash=True)
class InnerHeader:
    """The inner IP + GRE header of a keepalive request."""

    src: str
    dst: str
    ip_version: int
    ip_id: int | None  # IPv4 identification; None for IPv6
    ttl: int
    key: int | None  # key of the inner GRE header
    metadata: bool  # carried behind a Cisco MetaData (PT 0x8909) header
    sgt: int | None  # TrustSec security group tag from that header


@dataclass(frozen=True, slots=True)
class Decoded:
    """One captured frame reduced to the facts keepalive analysis needs."""

    kind: FrameKind
    src: str = ""  # outer IP source
    dst: str = ""  # outer IP destination
    ip_version: int = 0
    ip_id: int | None = None  # outer IPv4 identification (None for IPv6)
    ttl: int = 0  # outer TTL / hop limit
    ip_length: int = 0  # outer IP packet length from its header (not the captured length)
    gre_protocol: int | None = None  # protocol type of the outer GRE header
    key: int | None = None  # key of the outer GRE header
    sequence: int | None = None  # sequence number of the outer GRE header
    checksum_ok: bool | None = None  # None: no GRE checksum present; False: some GRE checksum bad
    inner: InnerHeader | None = None  # requests only
    payload_length: int = 0  # bytes after the PT-0 GRE header (reply: outer; request: inner)
    reason: str = ""  # why a frame is MALFORMED
    # A request the capture cut short (snaplen) inside its inner GRE header, taken as one by
    # its inner IP header (see _cut_request): its inner key and payload are not known.
    cut: bool = False


class _Malformed(Exception):
    pass


class _SLL(dpkt.sll.SLL):  # type: ignore[misc]
    _typesw: ClassVar[dict[int, type]] = {}


class _SLL2(dpkt.sll2.SLL2):  # type: ignore[misc]
    _typesw: ClassVar[dict[int, type]] = {}


class _IPv4(dpkt.ip.IP):  # type: ignore[misc]
    _protosw: ClassVar[dict[int, type]] = {}


class _IPv6(dpkt.ip6.IP6):  # type: ignore[misc]
    """The fixed 40-byte IPv6 header only; extension headers are walked by :func:`_ip6_chain`.

    dpkt's own walk leaves `p` unset after an ESP header (AttributeError), counts an AH
    header as long as the rest of the packet and trusts lengths beyond the captured bytes.
    """

    _protosw: ClassVar[dict[int, type]] = {}

    def unpack(self, buf: bytes) -> None:
        dpkt.Packet.unpack(self, buf)


# The Ethernet header (destination, source, type) and the fixed part of a GRE header
# (flags/version, protocol type; RFC 2784/2890) are read with struct: two fields each, where
# a dpkt object cost as much as the rest of a keepalive's decoding. dpkt's own Ethernet
# unpack also guessed at 802.3/LLC, Novell raw and Cisco ISL (recursively), which raised
# KeyError or RecursionError on hostile bytes; VLAN tags and MPLS labels are taken off by
# :func:`_link_payload`.
_ETHERNET_LENGTH = 14
_ETHERTYPE = struct.Struct("!12xH")
_GRE_BASE = struct.Struct("!HH")


class _Ip(NamedTuple):
    src: str
    dst: str
    version: int
    ip_id: int | None
    ttl: int
    length: int  # total length per header
    protocol: int
    fragment: bool
    payload: bytes  # captured payload, cut at the header's length
    payload_declared: int  # payload length per header


class _Gre(NamedTuple):
    flags: int
    protocol: int
    key: int | None
    sequence: int | None
    checksum_ok: bool | None
    payload: bytes
    payload_declared: int


def _link_payload(linktype: int, data: bytes) -> tuple[int, bytes] | None:
    """Strip the link layer: (ethertype, network-layer bytes) or None if not IP-bearing."""
    ethertype: int
    if linktype == LINKTYPE_ETHERNET:
        if len(data) < _ETHERNET_LENGTH:
            raise _Malformed("link-layer header truncated")
        (ethertype,) = _ETHERTYPE.unpack_from(data)
        payload = data[_ETHERNET_LENGTH:]
        if ethertype <= _MAX_ETHERNET_LENGTH:
            return None  # IEEE 802.3 with an LLC header: no IP for us
    elif linktype == LINKTYPE_LINUX_SLL:
        sll = _SLL(data)
        ethertype, payload = sll.ethtype, sll.data
    elif linktype == LINKTYPE_LINUX_SLL2:
        sll2 = _SLL2(data)
        ethertype, payload = sll2.ethtype, sll2.data
    elif linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        if not data:
            raise _Malformed("empty frame")
        version = data[0] >> 4
        ethertype = {4: ETH_IPV4, 6: ETH_IPV6}.get(version, 0)
        payload = data
    elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if len(data) < 4:
            raise _Malformed("loopback header truncated")
        # NULL stores the family in the capturing host's byte order, LOOP in network order.
        little, big = struct.unpack("<I", data[:4])[0], struct.unpack(">I", data[:4])[0]
        family = little if little < 256 else big
        ethertype = ETH_IPV4 if family == 2 else ETH_IPV6 if family in (10, 24, 28, 30) else 0
        payload = data[4:]
    else:
        return None
    # 802.1Q/802.1ad tags (any number, on any link type), then an MPLS label stack: walked
    # by offset, one slice at the end (slicing per tag made 65,000 labels quadratic).
    at, end = 0, len(payload)
    while ethertype in _VLAN_TYPES:
        if end - at < 4:
            raise _Malformed("VLAN tag truncated")
        ethertype = (payload[at + 2] << 8) | payload[at + 3]
        at += 4
    if ethertype in _MPLS_TYPES:
        while True:
            if end - at < 4:
                raise _Malformed("MPLS label stack truncated")
            bottom = payload[at + 2] & 0x01
            at += 4
            if bottom:
                break
        # MPLS does not say what it carries: IP by its version nibble, else not ours.
        version = payload[at] >> 4 if at < end else 0
        ethertype = {4: ETH_IPV4, 6: ETH_IPV6}.get(version, 0)
    elif ethertype == ETH_PPPOE_SESSION:
        if end - at < 8:
            raise _Malformed("PPPoE header truncated")
        ethertype = _PPP_IP.get((payload[at + 6] << 8) | payload[at + 7], 0)
        at += 8
    return ethertype, bytes(payload[at:])


def _ip(ethertype: int, data: bytes) -> _Ip | None:
    """Decode an IPv4/IPv6 header without touching its payload; None if not IP."""
    if ethertype == ETH_IPV4:
        if len(data) < 20:
            raise _Malformed("IPv4 header truncated")
        if data[0] >> 4 != 4:
            raise _Malformed(f"IPv4 ethertype but IP version {data[0] >> 4}")
        ihl = (data[0] & 0x0F) * 4
        if ihl < 20:
            raise _Malformed(f"IPv4 header length {ihl} < 20")
        if len(data) < ihl:
            raise _Malformed("IPv4 options truncated")
        ip4 = _IPv4(data)
        total = ip4.len or len(data)  # 0 happens with TCP segmentation offload
        if total < ihl:
            raise _Malformed(f"IPv4 total length {total} shorter than its header")
        return _Ip(
            src=socket.inet_ntop(socket.AF_INET, ip4.src),
            dst=socket.inet_ntop(socket.AF_INET, ip4.dst),
            version=4,
            ip_id=ip4.id,
            ttl=ip4.ttl,
            length=total,
            protocol=ip4.p,
            fragment=bool(ip4.mf or ip4.offset),
            payload=bytes(ip4.data),
            payload_declared=total - ihl,
        )
    if ethertype == ETH_IPV6:
        if len(data) < 40:
            raise _Malformed("IPv6 header truncated")
        if data[0] >> 4 != 6:
            raise _Malformed(f"IPv6 ethertype but IP version {data[0] >> 4}")
        ip6 = _IPv6(data)
        declared = ip6.plen or len(data) - 40  # 0: jumbogram or segmentation offload
        protocol, ext_length, fragment = _ip6_chain(ip6.nxt, data[40 : 40 + declared])
        return _Ip(
            src=socket.inet_ntop(socket.AF_INET6, ip6.src),
            dst=socket.inet_ntop(socket.AF_INET6, ip6.dst),
            version=6,
            ip_id=None,
            ttl=ip6.hlim,
            length=declared + 40,
            protocol=protocol,
            fragment=fragment,
            payload=data[40 + ext_length : 40 + declared],
            payload_declared=declared - ext_length,
        )
    return None


def _ip6_chain(next_header: int, data: bytes) -> tuple[int, int, bool]:
    """Walk IPv6 extension headers: (upper-layer protocol, their total length, fragment?).

    Stops at a fragment header that is a real fragment (offset or M set), returning the
    protocol it names: what follows is not a whole upper-layer packet. ESP, "no next
    header" and unknown values end the walk.
    """
    offset = 0
    for _ in range(_MAX_IP6_EXTENSIONS):
        if next_header == _IP6_FRAGMENT:
            if len(data) < offset + 8:
                raise _Malformed("IPv6 fragment header truncated")
            if struct.unpack("!H", data[offset + 2 : offset + 4])[0] & 0xFFF9:
                return data[offset], offset + 8, True  # the fragmented packet's protocol
            length = 8  # an atomic fragment (RFC 6946) is a whole packet
        elif next_header == _IP6_AH or next_header in _IP6_EXT_8:
            if len(data) < offset + 2:
                raise _Malformed(f"IPv6 extension header {next_header} truncated")
            if next_header == _IP6_AH:
                length = (data[offset + 1] + 2) * 4
            else:
                length = (data[offset + 1] + 1) * 8
            if len(data) < offset + length:
                raise _Malformed(
                    f"IPv6 extension header {next_header} truncated "
                    f"({len(data) - offset} of {length} bytes)"
                )
        else:
            return next_header, offset, False
        next_header = data[offset]
        offset += length
    if next_header in _IP6_EXT_8 or next_header in (_IP6_FRAGMENT, _IP6_AH):
        raise _Malformed(f"more than {_MAX_IP6_EXTENSIONS} IPv6 extension headers")
    return next_header, offset, False


def internet_checksum(data: bytes) -> int:
    """The RFC 1071 one's-complement checksum of `data` (0 over a header whose checksum
    field is right)."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _gre(data: bytes, declared: int) -> _Gre:
    """Decode a version-0 GRE header; `declared` is the GRE length per the IP header."""
    if len(data) < 4:
        raise _Malformed(f"GRE header truncated ({len(data)} of 4 bytes)")
    flags, protocol = _GRE_BASE.unpack_from(data)
    version = flags & GRE_VERSION_MASK
    offset = 4
    if flags & (GRE_C | GRE_R):
        offset += 4
    key_at = offset if flags & GRE_K else None
    if key_at is not None:
        offset += 4
    seq_at = offset if flags & GRE_S and version == 0 else None
    if seq_at is not None:
        offset += 4
    if len(data) < offset:
        raise _Malformed(f"GRE header truncated ({len(data)} of {offset} bytes)")
    checksum_ok: bool | None = None
    if flags & GRE_C and len(data) >= declared:
        checksum_ok = internet_checksum(data[:declared]) == 0
    return _Gre(
        flags=flags,
        protocol=protocol,
        key=struct.unpack("!I", data[key_at : key_at + 4])[0] if key_at is not None else None,
        sequence=struct.unpack("!I", data[seq_at : seq_at + 4])[0] if seq_at is not None else None,
        checksum_ok=checksum_ok,
        payload=data[offset:],
        payload_declared=declared - offset,
    )


def _both_ok(first: bool | None, second: bool | None) -> bool | None:
    if first is None:
        return second
    if second is None:
        return first
    return first and second


# The most a keepalive's inner packet holds after its IP header: a GRE header with every
# optional field (16 bytes) and OpenBSD's 16-byte payload.
_MAX_INNER_KEEPALIVE_GRE = 16 + 16


def _cut_request(inner_ip: _Ip, outer_src: str) -> bool:
    """An inner packet whose GRE header the capture cut short (a snaplen of 64 or 68 bytes
    does, behind VLAN tags or GRE options) but whose IP header is whole: a keepalive by
    everything that can still be seen — GRE, not a fragment, addressed back to the outer
    source, as long as a keepalive's GRE header and payload can be — and the capture hides
    only its protocol type. (A tunnel inside the tunnel carries its own traffic and
    keepalives between other addresses.)"""
    if inner_ip.protocol != IPPROTO_GRE or inner_ip.fragment or inner_ip.dst != outer_src:
        return False
    seen = inner_ip.payload
    header = _gre_header_length(seen)
    if not header <= inner_ip.payload_declared <= _MAX_INNER_KEEPALIVE_GRE:
        return False
    if len(seen) >= 4 and struct.unpack("!H", seen[2:4])[0] != 0:
        return False  # the protocol type is there, and it is not a keepalive's
    if len(seen) >= 2 and (seen[0] & (GRE_R >> 8) or seen[1] & GRE_VERSION_MASK):
        return False  # routing or a version other than 0: not a keepalive's
    return len(seen) < header  # cut inside the header (so also short of what it declares)


def _gre_header_length(data: bytes) -> int:
    """The length of the GRE header starting `data` by its flags (4 when they are cut)."""
    if len(data) < 2:
        return 4
    flags = data[0] << 8
    return 4 + 4 * (bool(flags & (GRE_C | GRE_R)) + bool(flags & GRE_K) + bool(flags & GRE_S))


def _inner_keepalive(
    gre: _Gre, outer_src: str
) -> tuple[InnerHeader, int, bool | None, bool] | None:
    """If the outer GRE payload (from `outer_src`) is an IP packet carrying GRE PT 0: its
    inner header (with its payload length, inner checksum verdict and whether the capture
    cut it short). Of a request cut short, the inner key and payload the capture hides are
    taken as a plain keepalive's: the outer key, no payload (not a variant of its own)."""
    payload = gre.payload
    protocol = gre.protocol
    metadata = False
    sgt: int | None = None
    if protocol == ETH_CISCO_METADATA:
        if len(payload) < _CMD_LENGTH:
            return None
        protocol, sgt = struct.unpack("!H4xH", payload[:_CMD_LENGTH])
        payload = payload[_CMD_LENGTH:]
        metadata = True
    elif protocol == GRE_PT_HUAWEI_IP:
        version = payload[0] >> 4 if payload else 0
        protocol = ETH_IPV4 if version == 4 else ETH_IPV6 if version == 6 else 0
    if protocol not in (ETH_IPV4, ETH_IPV6):
        return None
    try:
        inner_ip = _ip(protocol, payload)
    except _Malformed:
        return None
    if inner_ip is None or inner_ip.protocol != IPPROTO_GRE or inner_ip.fragment:
        return None
    header = InnerHeader(
        src=inner_ip.src,
        dst=inner_ip.dst,
        ip_version=inner_ip.version,
        ip_id=inner_ip.ip_id,
        ttl=inner_ip.ttl,
        key=None,
        metadata=metadata,
        sgt=sgt,
    )
    try:
        inner_gre = _gre(inner_ip.payload, inner_ip.payload_declared)
    except _Malformed:
        if not _cut_request(inner_ip, outer_src):
            return None
        return replace(header, key=gre.key), 0, None, True
    if inner_gre.protocol != 0 or inner_gre.flags & (GRE_R | GRE_VERSION_MASK):
        return None
    header = replace(header, key=inner_gre.key)
    return header, max(inner_gre.payload_declared, 0), inner_gre.checksum_ok, False


def decode_frame(linktype: int, data: bytes) -> Decoded:
    """Classify one captured frame; never raises on malformed input."""
    try:
        return _decode(linktype, data)
    except _Malformed as exc:
        return Decoded(FrameKind.MALFORMED, reason=str(exc))
    except (dpkt.UnpackError, struct.error, IndexError, ValueError) as exc:
        return Decoded(FrameKind.MALFORMED, reason=f"undecodable ({exc.__class__.__name__}: {exc})")
    except Exception as exc:  # a decoder bug must cost one frame, never the whole analysis
        return Decoded(
            FrameKind.MALFORMED, reason=f"{DECODER_ERROR} ({exc.__class__.__name__}: {exc})"
        )


def _decode(linktype: int, data: bytes) -> Decoded:
    try:
        link = _link_payload(linktype, data)
    except dpkt.NeedData as exc:
        raise _Malformed("link-layer header truncated") from exc
    if link is None:
        return Decoded(FrameKind.OTHER)
    ip = _ip(*link)
    # IP-in-IP / 4in6 / 6in4 transport (seen under PPTP and GRE): the GRE is one level in.
    for _ in range(_MAX_IP_IN_IP):
        if ip is None or ip.protocol not in _IP_IN_IP or ip.fragment:
            break
        ip = _ip(_IP_IN_IP[ip.protocol], ip.payload)
    if ip is None or ip.protocol != IPPROTO_GRE:
        return Decoded(FrameKind.OTHER)
    src, dst, version_ip, ip_id, ttl, length = (
        ip.src,
        ip.dst,
        ip.version,
        ip.ip_id,
        ip.ttl,
        ip.length,
    )
    if ip.fragment:
        return Decoded(FrameKind.DATA, src, dst, version_ip, ip_id, ttl, length)
    gre = _gre(ip.payload, ip.payload_declared)
    version = gre.flags & GRE_VERSION_MASK
    if version > 1:
        raise _Malformed(f"GRE version {version}")
    # Decoded's fields in order: kind, src, dst, ip_version, ip_id, ttl, ip_length,
    # gre_protocol, key, sequence, checksum_ok, inner, payload_length.
    # PPTP (GRE version 1, RFC 2637): the key field holds the payload length and the *peer's*
    # call ID, which differ by direction and by packet: a call is one tunnel, keyed by none.
    key = None if version == 1 else gre.key
    common = (src, dst, version_ip, ip_id, ttl, length, gre.protocol, key, gre.sequence)
    if version == 1 or gre.flags & GRE_R:
        return Decoded(FrameKind.DATA, *common, gre.checksum_ok)
    if gre.protocol == 0:
        return Decoded(
            FrameKind.REPLY, *common, gre.checksum_ok, None, max(gre.payload_declared, 0)
        )
    found = _inner_keepalive(gre, src)
    if found is None:
        return Decoded(FrameKind.DATA, *common, gre.checksum_ok)
    inner, payload_length, inner_checksum_ok, cut = found
    return Decoded(
        FrameKind.REQUEST,
        *common,
        _both_ok(gre.checksum_ok, inner_checksum_ok),
        inner,
        payload_length,
        cut=cut,
    )


# --- building -----------------------------------------------------------------------------


def build_gre(
    protocol: int,
    payload: bytes,
    *,
    key: int | None = None,
    sequence: int | None = None,
    checksum: bool = False,
) -> bytes:
    """A version-0 GRE header (RFC 2784/2890) followed by `payload`."""
    flags = (GRE_C if checksum else 0) | (GRE_K if key is not None else 0)
    flags |= GRE_S if sequence is not None else 0
    optional = b""
    if checksum:
        optional += b"\x00\x00\x00\x00"
    if key is not None:
        optional += struct.pack("!I", key)
    if sequence is not None:
        optional += struct.pack("!I", sequence)
    packet = struct.pack("!HH", flags, protocol) + optional + payload
    if checksum:
        value = internet_checksum(packet)
        packet = packet[:4] + struct.pack("!H", value) + packet[6:]
    return packet


def build_ip(
    src: str,
    dst: str,
    payload: bytes,
    *,
    protocol: int = IPPROTO_GRE,
    ip_id: int = 0,
    ttl: int = 255,
    tos: int = 0,
) -> bytes:
    """An IPv4 or IPv6 packet (chosen by the address family of `src`)."""
    if ":" in src:
        ip6 = dpkt.ip6.IP6(
            src=socket.inet_pton(socket.AF_INET6, src),
            dst=socket.inet_pton(socket.AF_INET6, dst),
            nxt=protocol,
            hlim=ttl,
            fc=tos,
            plen=len(payload),
            data=payload,
        )
        ip6.p = protocol
        return bytes(ip6)
    ip4 = dpkt.ip.IP(
        src=socket.inet_aton(src),
        dst=socket.inet_aton(dst),
        p=protocol,
        id=ip_id & 0xFFFF,
        ttl=ttl,
        tos=tos,
        data=payload,
    )
    ip4.len = 20 + len(payload)
    return bytes(ip4)


def build_keepalive_request(
    originator: str,
    peer: str,
    *,
    key: int | None = None,
    outer_id: int = 0,
    inner_id: int = 0,
    ttl: int = 255,
    inner_ttl: int = 255,
    tos: int = 0,
    inner_src: str | None = None,
    inner_dst: str | None = None,
    metadata_sgt: int | None = None,
    checksum: bool = False,
    payload: bytes = b"",
) -> bytes:
    """The IP packet an originator sends: outer originator→peer, inner peer→originator, PT 0.

    Addresses may be IPv4 or IPv6 independently for outer and inner headers; the outer GRE
    protocol type follows the inner family (0x0800/0x86DD) or is 0x8909 with `metadata_sgt`.
    """
    inner_src = inner_src or peer
    inner_dst = inner_dst or originator
    inner_gre = build_gre(0, payload, key=key, checksum=checksum)
    inner = build_ip(inner_src, inner_dst, inner_gre, ip_id=inner_id, ttl=inner_ttl, tos=tos)
    protocol = ETH_IPV6 if ":" in inner_src else ETH_IPV4
    if metadata_sgt is not None:
        inner = struct.pack("!HBBHH", protocol, 1, 1, 1, metadata_sgt) + inner
        protocol = ETH_CISCO_METADATA
    outer_gre = build_gre(protocol, inner, key=key, checksum=checksum)
    return build_ip(originator, peer, outer_gre, ip_id=outer_id, ttl=ttl, tos=tos)


def reflect_request(request: bytes) -> bytes | None:
    """What a GRE endpoint forwards after decapsulating a request: the inner packet, TTL − 1.

    Returns None when `request` is not a keepalive request.
    """
    ethertype = ETH_IPV6 if request and request[0] >> 4 == 6 else ETH_IPV4
    try:
        outer = _ip(ethertype, request)
        if outer is None:
            return None
        gre = _gre(outer.payload, outer.payload_declared)
    except _Malformed:
        return None
    found = _inner_keepalive(gre, outer.src)
    if found is None or found[3]:  # not a request, or one cut short: nothing to reflect
        return None
    inner = gre.payload[_CMD_LENGTH:] if gre.protocol == ETH_CISCO_METADATA else gre.payload
    if inner[0] >> 4 == 4:
        ip4 = dpkt.ip.IP(inner)
        ip4.ttl = max(ip4.ttl - 1, 0)
        ip4.sum = 0
        return bytes(ip4)
    ip6 = dpkt.ip6.IP6(inner)
    ip6.hlim = max(ip6.hlim - 1, 0)
    return bytes(ip6)


def build_gre_data(
    src: str,
    dst: str,
    *,
    key: int | None = None,
    ip_id: int = 0,
    ttl: int = 255,
    payload_length: int = 64,
) -> bytes:
    """A tunnelled data packet: GRE PT 0x0800 carrying an inner IPv4/UDP datagram.

    Both IPv4 headers carry `ip_id`. The packet is built once per tunnel direction (with
    dpkt) and then re-stamped: the simulator writes millions of these.
    """
    template, outer_ipv4, inner = _gre_data_template(src, dst, key, ttl, payload_length)
    packet = bytearray(template)
    if outer_ipv4:
        _stamp_ipv4(packet, 0, ip_id)
    _stamp_ipv4(packet, inner, ip_id)
    return bytes(packet)


@functools.lru_cache(maxsize=4096)
def _gre_data_template(
    src: str, dst: str, key: int | None, ttl: int, payload_length: int
) -> tuple[bytes, bool, int]:
    """(the packet with IP ID 0, whether the outer header is IPv4, inner IPv4 offset)."""
    udp = struct.pack("!HHHH", 49152, 9, 8 + payload_length, 0) + bytes(payload_length)
    inner = build_ip("192.0.2.1", "192.0.2.2", udp, protocol=17, ip_id=0, ttl=64)
    gre = build_gre(ETH_IPV4, inner, key=key)
    packet = build_ip(src, dst, gre, ip_id=0, ttl=ttl)
    return packet, ":" not in src, len(packet) - len(inner)


_IPV4_HEADER_WORDS = struct.Struct("!10H")


def _stamp_ipv4(packet: bytearray, offset: int, ip_id: int) -> None:
    """Set the identification of the 20-byte IPv4 header at `offset` and its checksum."""
    struct.pack_into("!H", packet, offset + 4, ip_id & 0xFFFF)
    struct.pack_into("!H", packet, offset + 10, 0)
    total = sum(_IPV4_HEADER_WORDS.unpack_from(packet, offset))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    struct.pack_into("!H", packet, offset + 10, ~total & 0xFFFF)


def build_ethernet(
    ip_packet: bytes,
    *,
    src_mac: bytes = b"\x02\x00\x00\x00\x00\x01",
    dst_mac: bytes = b"\x02\x00\x00\x00\x00\x02",
    vlans: tuple[int, ...] = (),
) -> bytes:
    """Wrap an IP packet in Ethernet II (with optional 802.1Q/802.1ad tags), padded to 60 bytes."""
    ethertype = ETH_IPV6 if ip_packet[0] >> 4 == 6 else ETH_IPV4
    header = dst_mac + src_mac
    for index, vlan in enumerate(vlans):
        tpid = 0x88A8 if index == 0 and len(vlans) > 1 else 0x8100
        header += struct.pack("!HH", tpid, vlan & 0x0FFF)
    frame = header + struct.pack("!H", ethertype) + ip_packet
    return frame.ljust(60, b"\x00")
