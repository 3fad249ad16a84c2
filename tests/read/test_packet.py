"""The packet rules of analyzer/packet.py, one behaviour per test, on bytes spelled out.

Modelled on dpkt's own tests: every fixture is written byte by byte with a comment on each
field, so that a reader can check it against the RFCs (GRE: RFC 2784/2890; IPv4: RFC 791;
IPv6: RFC 8200) and the link-type registry (https://www.tcpdump.org/linktypes.html).
Endpoint A = 192.0.2.1 / 2001:db8::1 (the originator), B = 198.51.100.1 / 2001:db8::2.
"""

from __future__ import annotations

import itertools
import socket
import struct

import pytest

from analyzer.read.packet import (
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


def internet_checksum(data: bytes) -> int:
    """RFC 1071, written out independently of the module under test."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


# --- link-layer headers -------------------------------------------------------------------

ETHERNET = (
    b"\x02\x00\x00\x00\x00\x02"  # destination MAC (locally administered)
    b"\x02\x00\x00\x00\x00\x01"  # source MAC
    b"\x08\x00"  # EtherType 0x0800: IPv4
)
ETHERNET_IPV6 = (
    b"\x02\x00\x00\x00\x00\x02"  # destination MAC
    b"\x02\x00\x00\x00\x00\x01"  # source MAC
    b"\x86\xdd"  # EtherType 0x86DD: IPv6
)
DOT1Q = (
    b"\x02\x00\x00\x00\x00\x02"  # destination MAC
    b"\x02\x00\x00\x00\x00\x01"  # source MAC
    b"\x81\x00"  # TPID 0x8100: 802.1Q tag follows
    b"\x00\x64"  # PCP 0, DEI 0, VLAN 100
    b"\x08\x00"  # EtherType IPv4
)
QINQ = (
    b"\x02\x00\x00\x00\x00\x02"  # destination MAC
    b"\x02\x00\x00\x00\x00\x01"  # source MAC
    b"\x88\xa8"  # TPID 0x88A8: 802.1ad service tag (outer)
    b"\x00\xc8"  # S-VLAN 200
    b"\x81\x00"  # TPID 0x8100: 802.1Q customer tag (inner)
    b"\x00\x64"  # C-VLAN 100
    b"\x08\x00"  # EtherType IPv4
)
LINUX_SLL = (
    b"\x00\x00"  # packet type 0: sent to us
    b"\x00\x01"  # ARPHRD_ETHER
    b"\x00\x06"  # link-layer address length 6
    b"\x02\x00\x00\x00\x00\x01\x00\x00"  # source MAC, padded to 8 bytes
    b"\x08\x00"  # protocol: IPv4
)
LINUX_SLL2 = (
    b"\x08\x00"  # protocol: IPv4
    b"\x00\x00"  # reserved (must be zero)
    b"\x00\x00\x00\x02"  # interface index 2
    b"\x00\x01"  # ARPHRD_ETHER
    b"\x00"  # packet type 0: sent to us
    b"\x06"  # link-layer address length 6
    b"\x02\x00\x00\x00\x00\x01\x00\x00"  # source MAC, padded to 8 bytes
)

# --- keepalives ---------------------------------------------------------------------------

REQUEST = (
    b"\x45\x00\x00\x30"  # IPv4, IHL 5, TOS 0, total length 48
    b"\x03\xe9\x00\x00"  # IP ID 1001, no flags, fragment offset 0
    b"\xff\x2f\xcb\x7f"  # TTL 255, protocol 47 (GRE), header checksum
    b"\xc0\x00\x02\x01"  # source 192.0.2.1 (A, the originator)
    b"\xc6\x33\x64\x01"  # destination 198.51.100.1 (B, the peer)
    b"\x00\x00\x08\x00"  # GRE: no C/K/S, version 0, protocol type 0x0800 (IPv4)
    b"\x45\x00\x00\x18"  # inner IPv4, IHL 5, TOS 0, total length 24
    b"\x03\xe8\x00\x00"  # IP ID 1000 (outer − 1, as IOS allocates it), no flags
    b"\xff\x2f\xcb\x98"  # TTL 255, protocol 47 (GRE), header checksum
    b"\xc6\x33\x64\x01"  # source B
    b"\xc0\x00\x02\x01"  # destination A: B will route it straight back
    b"\x00\x00\x00\x00"  # inner GRE: no flags, version 0, protocol type 0 (keepalive)
)
REPLY = (
    b"\x45\x00\x00\x18"  # IPv4, IHL 5, TOS 0, total length 24
    b"\x03\xe8\x00\x00"  # IP ID 1000: the request's inner IP ID, unchanged
    b"\xfe\x2f\xcc\x98"  # TTL 254 (B routed it once), protocol 47, header checksum
    b"\xc6\x33\x64\x01"  # source B
    b"\xc0\x00\x02\x01"  # destination A
    b"\x00\x00\x00\x00"  # GRE: no flags, version 0, protocol type 0 — a bare keepalive
)
REQUEST_IPV6 = (
    b"\x60\x00\x00\x00"  # IPv6, traffic class 0, flow label 0
    b"\x00\x30\x2f\xff"  # payload length 48, next header 47 (GRE), hop limit 255
    b"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"  # source 2001:db8::1
    b"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02"  # dest. 2001:db8::2
    b"\x00\x00\x86\xdd"  # GRE: no flags, version 0, protocol type 0x86DD (IPv6, MikroTik)
    b"\x60\x00\x00\x00"  # inner IPv6, traffic class 0, flow label 0
    b"\x00\x04\x2f\xff"  # payload length 4, next header 47 (GRE), hop limit 255
    b"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02"  # source B
    b"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"  # destination A
    b"\x00\x00\x00\x00"  # inner GRE: protocol type 0
)
REQUEST_IPV6_EXTENSION_HEADERS = (
    b"\x60\x00\x00\x00"  # IPv6, traffic class 0, flow label 0
    b"\x00\x40\x00\xff"  # payload length 64, next header 0 (hop-by-hop options), hop limit 255
    b"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"  # source A
    b"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02"  # destination B
    b"\x3c\x00"  # hop-by-hop: next header 60 (destination options), length 0 (= 8 bytes)
    b"\x01\x04\x00\x00\x00\x00"  # PadN option: type 1, 4 bytes of padding
    b"\x2f\x00"  # destination options: next header 47 (GRE), length 0 (= 8 bytes)
    b"\x01\x04\x00\x00\x00\x00"  # PadN option: type 1, 4 bytes of padding
    b"\x00\x00\x86\xdd"  # GRE: no flags, version 0, protocol type 0x86DD (IPv6)
    b"\x60\x00\x00\x00"  # inner IPv6
    b"\x00\x04\x2f\xff"  # payload length 4, next header 47 (GRE), hop limit 255
    b"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02"  # source B
    b"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"  # destination A
    b"\x00\x00\x00\x00"  # inner GRE: protocol type 0
)
REQUEST_IPV4_OPTIONS = (
    b"\x46\x00\x00\x34"  # IPv4, IHL 6 (24-byte header), TOS 0, total length 52
    b"\x03\xe9\x00\x00"  # IP ID 1001, no flags
    b"\xff\x2f\x36\x77"  # TTL 255, protocol 47, header checksum
    b"\xc0\x00\x02\x01"  # source A
    b"\xc6\x33\x64\x01"  # destination B
    b"\x94\x04\x00\x00"  # option: Router Alert (type 0x94, length 4, value 0)
    b"\x00\x00\x08\x00"  # GRE: protocol type 0x0800
    b"\x45\x00\x00\x18"  # inner IPv4, total length 24
    b"\x03\xe8\x00\x00"  # IP ID 1000
    b"\xff\x2f\xcb\x98"  # TTL 255, protocol 47, header checksum
    b"\xc6\x33\x64\x01"  # source B
    b"\xc0\x00\x02\x01"  # destination A
    b"\x00\x00\x00\x00"  # inner GRE: protocol type 0
)
REQUEST_CKS = (
    b"\x45\x00\x00\x48"  # IPv4, IHL 5, total length 72
    b"\x03\xe9\x00\x00"  # IP ID 1001
    b"\xff\x2f\xcb\x67"  # TTL 255, protocol 47, header checksum
    b"\xc0\x00\x02\x01"  # source A
    b"\xc6\x33\x64\x01"  # destination B
    b"\xb0\x00\x08\x00"  # GRE: C, K and S set, version 0, protocol type 0x0800
    b"\x47\xcd\x00\x00"  # GRE checksum over the GRE header and payload; reserved1 0
    b"\x00\x00\x00\x2a"  # key 42
    b"\x00\x00\x00\x08"  # sequence number 8
    b"\x45\x00\x00\x24"  # inner IPv4, total length 36
    b"\x03\xe8\x00\x00"  # IP ID 1000
    b"\xff\x2f\xcb\x8c"  # TTL 255, protocol 47, header checksum
    b"\xc6\x33\x64\x01"  # source B
    b"\xc0\x00\x02\x01"  # destination A
    b"\xb0\x00\x00\x00"  # inner GRE: C, K and S set, version 0, protocol type 0
    b"\x4f\xce\x00\x00"  # inner GRE checksum; reserved1 0
    b"\x00\x00\x00\x2a"  # key 42 (the tunnel key is on both headers)
    b"\x00\x00\x00\x07"  # sequence number 7
)
REPLY_CKS = (
    b"\x45\x00\x00\x24"  # IPv4, total length 36
    b"\x03\xe8\x00\x00"  # IP ID 1000
    b"\xfe\x2f\xcc\x8c"  # TTL 254, protocol 47, header checksum
    b"\xc6\x33\x64\x01"  # source B
    b"\xc0\x00\x02\x01"  # destination A
    b"\xb0\x00\x00\x00"  # GRE: C, K and S, protocol type 0
    b"\x4f\xce\x00\x00"  # GRE checksum; reserved1 0
    b"\x00\x00\x00\x2a"  # key 42
    b"\x00\x00\x00\x07"  # sequence number 7
)
REPLY_WITH_PAYLOAD = (
    b"\x45\x00\x00\x28"  # IPv4, total length 40
    b"\x03\xe8\x00\x00"  # IP ID 1000
    b"\xfe\x2f\xcc\x88"  # TTL 254, protocol 47, header checksum
    b"\xc6\x33\x64\x01"  # source B
    b"\xc0\x00\x02\x01"  # destination A
    b"\x00\x00\x00\x00"  # GRE: protocol type 0
    b"\x00\x01\x51\x80"  # OpenBSD gre(4) keepalive: uptime (ms)
    b"\x12\x34\x56\x78"  # random
    b"\x01\x23\x45\x67\x89\xab\xcd\xef"  # SipHash-2-4 digest
)
# Frame 11 of tcpdump's tests/various_gre.pcap (BSD-3-Clause): a Cisco IOS keepalive with
# TrustSec inline tagging, in VLAN 1213, tunnel key 40.
CISCO_METADATA_FRAME = (
    b"\xaa\xbb\xcc\x00\x01\x00"  # destination MAC
    b"\xaa\xbb\xcc\x00\x02\x00"  # source MAC
    b"\x81\x00\x04\xbd"  # 802.1Q, VLAN 1213
    b"\x08\x00"  # EtherType IPv4
    b"\x45\xc0\x00\x40"  # IPv4, IHL 5, TOS 0xC0 (network control), total length 64
    b"\x00\xa4\x00\x00"  # IP ID 164
    b"\xff\x2f\x24\xc6"  # TTL 255, protocol 47, header checksum
    b"\x0a\xac\x40\x07"  # source 10.172.64.7
    b"\x0a\xac\x40\x06"  # destination 10.172.64.6
    b"\x20\x00\x89\x09"  # GRE: K set, version 0, protocol type 0x8909 (Cisco MetaData)
    b"\x00\x00\x00\x28"  # key 40
    b"\x08\x00"  # MetaData: next protocol 0x0800 (IPv4)
    b"\x01"  # MetaData version 1
    b"\x01"  # MetaData length 1 (in 8-byte units)
    b"\x00\x01"  # option length/type: 1 = SGT
    b"\x00\x00"  # security group tag 0
    b"\x45\xc0\x00\x1c"  # inner IPv4, TOS 0xC0, total length 28
    b"\x00\xa3\x00\x00"  # IP ID 163 (outer − 1)
    b"\xff\x2f\x24\xeb"  # TTL 255, protocol 47, header checksum
    b"\x0a\xac\x40\x06"  # source 10.172.64.6
    b"\x0a\xac\x40\x07"  # destination 10.172.64.7
    b"\x20\x00\x00\x00"  # inner GRE: K set, protocol type 0
    b"\x00\x00\x00\x28"  # key 40
)

# A Huawei VRP request as some releases send it (SPEC.md §3): outer protocol type 4.
REQUEST_HUAWEI_TYPE_4 = (
    b"\x45\x00\x00\x30"  # IPv4, IHL 5, TOS 0, total length 48
    b"\x03\xe9\x00\x00"  # IP ID 1001, no flags, fragment offset 0
    b"\xff\x2f\xcb\x7f"  # TTL 255, protocol 47 (GRE), header checksum
    b"\xc0\x00\x02\x01"  # source 192.0.2.1 (A, the originator)
    b"\xc6\x33\x64\x01"  # destination 198.51.100.1 (B, the peer)
    b"\x00\x00\x00\x04"  # GRE: no C/K/S, version 0, protocol type 4 (not 0x0800)
    b"\x45\x00\x00\x18"  # inner IPv4 (its version nibble says so), total length 24
    b"\x03\xe8\x00\x00"  # IP ID 1000, no flags
    b"\xff\x2f\xcb\x98"  # TTL 255, protocol 47 (GRE), header checksum
    b"\xc6\x33\x64\x01"  # source B
    b"\xc0\x00\x02\x01"  # destination A
    b"\x00\x00\x00\x00"  # inner GRE: no flags, version 0, protocol type 0 (keepalive)
)
# Protocol type 4 carrying something else: tunnel data.
DATA_HUAWEI_TYPE_4 = (
    b"\x45\x00\x00\x30"  # IPv4, total length 48
    b"\x03\xe9\x00\x00"  # IP ID 1001
    b"\xff\x2f\xcb\x7f"  # TTL 255, protocol 47 (GRE), header checksum
    b"\xc0\x00\x02\x01"  # source A
    b"\xc6\x33\x64\x01"  # destination B
    b"\x00\x00\x00\x04"  # GRE: protocol type 4
    b"\x45\x00\x00\x18"  # inner IPv4, total length 24
    b"\x03\xe8\x00\x00"  # IP ID 1000
    b"\xff\x11\xcb\xb6"  # TTL 255, protocol 17 (UDP), header checksum
    b"\xc6\x33\x64\x01"  # source B
    b"\xc0\x00\x02\x01"  # destination A
    b"\x00\x00\x00\x09"  # UDP: ports 0 and 9 (a UDP header cut to 4 bytes: data anyway)
)

# --- GRE that is not a keepalive ----------------------------------------------------------

PPTP_GRE_V1 = (
    b"\x45\x00\x00\x24"  # IPv4, total length 36
    b"\x03\xe9\x00\x00"  # IP ID 1001
    b"\xff\x2f\xcb\x8b"  # TTL 255, protocol 47, header checksum
    b"\xc0\x00\x02\x01"  # source A
    b"\xc6\x33\x64\x01"  # destination B
    b"\x30\x01\x88\x0b"  # GRE: K and S set, version 1 (enhanced GRE, RFC 2637), PT 0x880B PPP
    b"\x00\x04"  # payload length 4
    b"\x00\x07"  # call ID 7
    b"\x00\x00\x00\x01"  # sequence number 1
    b"\xff\x03\xc0\x21"  # PPP: address 0xFF, control 0x03, protocol 0xC021 (LCP)
)
GRE_IN_GRE = (
    b"\x45\x00\x00\x4c"  # IPv4, total length 76
    b"\x03\xe9\x00\x00"  # IP ID 1001
    b"\xff\x2f\xcb\x63"  # TTL 255, protocol 47, header checksum
    b"\xc0\x00\x02\x01"  # source A
    b"\xc6\x33\x64\x01"  # destination B
    b"\x00\x00\x08\x00"  # GRE: protocol type 0x0800
    b"\x45\x00\x00\x34"  # inner IPv4, total length 52
    b"\x03\xe8\x00\x00"  # IP ID 1000
    b"\xff\x2f\xcb\x7c"  # TTL 255, protocol 47 (GRE again), header checksum
    b"\xc6\x33\x64\x01"  # source B
    b"\xc0\x00\x02\x01"  # destination A
    b"\x00\x00\x08\x00"  # inner GRE: protocol type 0x0800 — tunnelled data, not a keepalive
    b"\x45\x00\x00\x1c"  # innermost IPv4, total length 28
    b"\x00\x01\x00\x00"  # IP ID 1
    b"\x40\x11\xf5\xa3"  # TTL 64, protocol 17 (UDP), header checksum
    b"\xc0\x00\x02\x64"  # source 192.0.2.100
    b"\xc0\x00\x02\xc8"  # destination 192.0.2.200
    b"\xc0\x00\x00\x09"  # UDP source port 49152, destination port 9 (discard)
    b"\x00\x08\x00\x00"  # UDP length 8, checksum 0 (none)
)
REQUEST_FIRST_FRAGMENT = (
    b"\x45\x00\x00\x30"  # IPv4, total length 48
    b"\x03\xe9\x20\x00"  # IP ID 1001, flags: MF (more fragments), offset 0
    b"\xff\x2f\xab\x7f"  # TTL 255, protocol 47, header checksum
    b"\xc0\x00\x02\x01"  # source A
    b"\xc6\x33\x64\x01"  # destination B
    b"\x00\x00\x08\x00"  # GRE: protocol type 0x0800
    b"\x45\x00\x00\x18"  # inner IPv4, total length 24
    b"\x03\xe8\x00\x00"  # IP ID 1000
    b"\xff\x2f\xcb\x98"  # TTL 255, protocol 47, header checksum
    b"\xc6\x33\x64\x01"  # source B
    b"\xc0\x00\x02\x01"  # destination A
    b"\x00\x00\x00\x00"  # inner GRE: protocol type 0
)
LATER_FRAGMENT = (
    b"\x45\x00\x00\x30"  # IPv4, total length 48
    b"\x03\xe9\x00\x03"  # IP ID 1001, no MF, fragment offset 3 (24 bytes)
    b"\xff\x2f\xcb\x7c"  # TTL 255, protocol 47, header checksum
    b"\xc0\x00\x02\x01"  # source A
    b"\xc6\x33\x64\x01"  # destination B
    b"\x00\x00\x00\x00" + bytes(24)  # fragment data that happens to look like a PT-0 GRE header
)
TRUNCATED_GRE = (
    b"\x45\x00\x00\x16"  # IPv4, total length 22: only 2 bytes after the header
    b"\x03\xe9\x00\x00"  # IP ID 1001
    b"\xff\x2f\xcb\x99"  # TTL 255, protocol 47, header checksum
    b"\xc0\x00\x02\x01"  # source A
    b"\xc6\x33\x64\x01"  # destination B
    b"\x00\x00"  # GRE flags/version, then nothing: the protocol type is missing
)
TRUNCATED_GRE_OPTIONS = (
    b"\x45\x00\x00\x1c"  # IPv4, total length 28: 8 bytes of GRE
    b"\x03\xe9\x00\x00"  # IP ID 1001
    b"\xff\x2f\xcb\x93"  # TTL 255, protocol 47, header checksum
    b"\xc0\x00\x02\x01"  # source A
    b"\xc6\x33\x64\x01"  # destination B
    b"\xa0\x00\x00\x00"  # GRE: C and K set (needs 12 bytes), protocol type 0
    b"\xff\xff\x00\x00"  # checksum, reserved1 — and the key is missing
)
IP_IN_IP = (
    b"\x45\x00\x00\x44"  # IPv4, total length 68
    b"\x00\x64\x00\x00"  # IP ID 100
    b"\x40\x04\x02\x4e"  # TTL 64, protocol 4 (IP in IP), header checksum
    b"\xcb\x00\x71\x01"  # source 203.0.113.1
    b"\xcb\x00\x71\x02"  # destination 203.0.113.2
)


def frame_fields(decoded: Decoded) -> tuple[FrameKind, str, str]:
    return decoded.kind, decoded.src, decoded.dst


def assert_ipv4_header_checksum_ok(packet: bytes) -> None:
    ihl = (packet[0] & 0x0F) * 4
    assert internet_checksum(packet[:ihl]) == 0


@pytest.mark.parametrize(
    "packet",
    [
        REQUEST,
        REPLY,
        REQUEST_IPV4_OPTIONS,
        REQUEST_CKS,
        REPLY_CKS,
        REPLY_WITH_PAYLOAD,
        PPTP_GRE_V1,
        GRE_IN_GRE,
        REQUEST_FIRST_FRAGMENT,
        LATER_FRAGMENT,
        TRUNCATED_GRE,
        TRUNCATED_GRE_OPTIONS,
        IP_IN_IP,
        CISCO_METADATA_FRAME[18:],
        REQUEST_HUAWEI_TYPE_4,
        REQUEST_HUAWEI_TYPE_4[24:],
        DATA_HUAWEI_TYPE_4,
        DATA_HUAWEI_TYPE_4[24:],
    ],
)
def test_fixtures_have_valid_ipv4_header_checksums(packet: bytes) -> None:
    assert_ipv4_header_checksum_ok(packet)


def test_fixtures_have_the_lengths_their_headers_declare() -> None:
    for packet in (REQUEST, REPLY, REQUEST_IPV4_OPTIONS, REQUEST_CKS, REPLY_WITH_PAYLOAD):
        assert struct.unpack("!H", packet[2:4])[0] == len(packet)
    assert struct.unpack("!H", REQUEST_IPV6[4:6])[0] == len(REQUEST_IPV6) - 40
    ext = REQUEST_IPV6_EXTENSION_HEADERS
    assert struct.unpack("!H", ext[4:6])[0] == len(ext) - 40


# --- link layers --------------------------------------------------------------------------


def test_ethernet_ii_request() -> None:
    decoded = decode_frame(LINKTYPE_ETHERNET, ETHERNET + REQUEST)
    assert frame_fields(decoded) == (FrameKind.REQUEST, "192.0.2.1", "198.51.100.1")


def test_8021q_request() -> None:
    decoded = decode_frame(LINKTYPE_ETHERNET, DOT1Q + REQUEST)
    assert frame_fields(decoded) == (FrameKind.REQUEST, "192.0.2.1", "198.51.100.1")


def test_qinq_request() -> None:
    decoded = decode_frame(LINKTYPE_ETHERNET, QINQ + REQUEST)
    assert frame_fields(decoded) == (FrameKind.REQUEST, "192.0.2.1", "198.51.100.1")


def test_three_vlan_tags_are_all_taken_off() -> None:
    triple = QINQ[:16] + b"\x91\x00\x01\x2c" + QINQ[16:]  # + a 0x9100 tag, VLAN 300
    decoded = decode_frame(LINKTYPE_ETHERNET, triple + REPLY)
    assert decoded.kind is FrameKind.REPLY


def test_linux_sll_reply() -> None:
    decoded = decode_frame(LINKTYPE_LINUX_SLL, LINUX_SLL + REPLY)
    assert frame_fields(decoded) == (FrameKind.REPLY, "198.51.100.1", "192.0.2.1")


def test_linux_sll2_reply() -> None:
    decoded = decode_frame(LINKTYPE_LINUX_SLL2, LINUX_SLL2 + REPLY)
    assert frame_fields(decoded) == (FrameKind.REPLY, "198.51.100.1", "192.0.2.1")


def test_raw_ipv4_request() -> None:
    decoded = decode_frame(LINKTYPE_RAW, REQUEST)
    assert frame_fields(decoded) == (FrameKind.REQUEST, "192.0.2.1", "198.51.100.1")


def test_raw_ipv6_request() -> None:
    decoded = decode_frame(LINKTYPE_RAW, REQUEST_IPV6)
    assert frame_fields(decoded) == (FrameKind.REQUEST, "2001:db8::1", "2001:db8::2")


def test_linktype_ipv4_request() -> None:
    assert decode_frame(LINKTYPE_IPV4, REQUEST).kind is FrameKind.REQUEST


def test_linktype_ipv6_request() -> None:
    assert decode_frame(LINKTYPE_IPV6, REQUEST_IPV6).kind is FrameKind.REQUEST


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(b"\x02\x00\x00\x00", id="AF_INET-little-endian"),
        pytest.param(b"\x00\x00\x00\x02", id="AF_INET-big-endian"),
    ],
)
def test_bsd_null_ipv4_in_either_byte_order(header: bytes) -> None:
    decoded = decode_frame(LINKTYPE_NULL, header + REQUEST)
    assert frame_fields(decoded) == (FrameKind.REQUEST, "192.0.2.1", "198.51.100.1")


@pytest.mark.parametrize("family", [24, 28, 30], ids=["NetBSD-OpenBSD", "FreeBSD", "Darwin"])
@pytest.mark.parametrize("order", ["<I", ">I"], ids=["little-endian", "big-endian"])
def test_bsd_null_ipv6_families_in_either_byte_order(family: int, order: str) -> None:
    decoded = decode_frame(LINKTYPE_NULL, struct.pack(order, family) + REQUEST_IPV6)
    assert frame_fields(decoded) == (FrameKind.REQUEST, "2001:db8::1", "2001:db8::2")


def test_loop_ipv4_network_order() -> None:
    header = b"\x00\x00\x00\x02"  # AF_INET in network byte order (OpenBSD DLT_LOOP)
    assert decode_frame(LINKTYPE_LOOP, header + REPLY).kind is FrameKind.REPLY


def test_loop_ipv6_network_order() -> None:
    header = b"\x00\x00\x00\x18"  # AF_INET6 = 24 in network byte order
    assert decode_frame(LINKTYPE_LOOP, header + REQUEST_IPV6).kind is FrameKind.REQUEST


def test_unknown_linktype_is_other() -> None:
    assert decode_frame(147, REQUEST).kind is FrameKind.OTHER  # LINKTYPE_USER0


def test_ieee_8023_llc_frame_is_other() -> None:
    llc = (
        b"\x01\x80\xc2\x00\x00\x00"  # destination: STP multicast
        b"\x02\x00\x00\x00\x00\x01"  # source MAC
        b"\x00\x26"  # length 38 (≤ 1500: IEEE 802.3, an LLC header follows)
        b"\x42\x42\x03"  # LLC: DSAP/SSAP 0x42 (spanning tree), UI
    ) + bytes(35)
    assert decode_frame(LINKTYPE_ETHERNET, llc).kind is FrameKind.OTHER


def test_mpls_labelled_request() -> None:
    mpls = (
        ETHERNET[:12]
        + b"\x88\x47"  # EtherType MPLS unicast
        + b"\x00\x01\x00\x40"  # label 16, TC 0, not bottom of stack, TTL 64
        + b"\x00\x01\x11\x40"  # label 17, bottom of stack, TTL 64
    )
    assert decode_frame(LINKTYPE_ETHERNET, mpls + REQUEST).kind is FrameKind.REQUEST


def _pppoe(ppp_protocol: bytes, packet: bytes) -> bytes:
    return (
        ETHERNET[:12]
        + b"\x88\x64"  # EtherType PPPoE session stage
        + b"\x11\x00"  # version 1, type 1; code 0 (session data)
        + b"\x12\x34"  # session ID 0x1234
        + struct.pack("!H", len(packet) + 2)  # PPPoE payload length: PPP protocol + packet
        + ppp_protocol
        + packet
    )


def test_pppoe_session_request() -> None:
    frame = _pppoe(b"\x00\x21", REQUEST)  # PPP protocol 0x0021: IPv4
    assert decode_frame(LINKTYPE_ETHERNET, frame).kind is FrameKind.REQUEST


def test_pppoe_session_ipv6_request() -> None:
    frame = _pppoe(b"\x00\x57", REQUEST_IPV6)  # PPP protocol 0x0057: IPv6
    assert decode_frame(LINKTYPE_ETHERNET, frame).kind is FrameKind.REQUEST


def test_pppoe_control_protocols_are_other() -> None:
    frame = _pppoe(b"\xc0\x21", b"\x01\x01\x00\x04")  # LCP configure-request
    assert decode_frame(LINKTYPE_ETHERNET, frame).kind is FrameKind.OTHER


def test_pppoe_header_cut_short_is_malformed() -> None:
    frame = _pppoe(b"\x00\x21", b"")[:18]  # 4 of the 8 PPPoE + PPP header bytes
    assert decode_frame(LINKTYPE_ETHERNET, frame).kind is FrameKind.MALFORMED


# --- outer IP -----------------------------------------------------------------------------


def test_outer_ipv4_with_options() -> None:
    decoded = decode_frame(LINKTYPE_RAW, REQUEST_IPV4_OPTIONS)
    assert decoded.kind is FrameKind.REQUEST
    assert decoded.inner is not None and decoded.inner.ip_id == 1000


def test_outer_ipv4_with_the_longest_header() -> None:
    options = b"\x94\x04\x00\x00" + b"\x01" * 35 + b"\x00"  # router alert, NOPs, end of list
    header = b"\x4f" + REQUEST[1:20] + options  # IHL 15: 60-byte header
    packet = header[:2] + struct.pack("!H", 60 + 28) + header[4:] + REQUEST[20:]
    decoded = decode_frame(LINKTYPE_RAW, packet)
    assert decoded.kind is FrameKind.REQUEST
    assert decoded.ip_length == 88


def test_outer_ipv6_with_hop_by_hop_and_destination_options() -> None:
    decoded = decode_frame(LINKTYPE_RAW, REQUEST_IPV6_EXTENSION_HEADERS)
    assert frame_fields(decoded) == (FrameKind.REQUEST, "2001:db8::1", "2001:db8::2")
    assert decoded.inner is not None
    assert (decoded.inner.src, decoded.inner.dst) == ("2001:db8::2", "2001:db8::1")


def test_outer_ipv6_extension_headers_count_in_the_ip_length() -> None:
    decoded = decode_frame(LINKTYPE_RAW, REQUEST_IPV6_EXTENSION_HEADERS)
    assert decoded.ip_length == len(REQUEST_IPV6_EXTENSION_HEADERS)
    assert decoded.payload_length == 0


def test_ipv6_esp_is_not_gre() -> None:
    esp = (
        REQUEST_IPV6[:4]
        + b"\x00\x10\x32\x40"  # payload length 16, next header 50 (ESP), hop limit 64
        + REQUEST_IPV6[8:40]
        + b"\x00\x00\x10\x01"  # SPI
        + b"\x00\x00\x00\x01"  # sequence number
        + bytes(8)  # encrypted payload
    )
    assert decode_frame(LINKTYPE_RAW, esp).kind is FrameKind.OTHER


def test_ipv6_extension_header_longer_than_the_packet_is_malformed() -> None:
    broken = bytearray(REQUEST_IPV6_EXTENSION_HEADERS)
    broken[41] = 200  # hop-by-hop length 200 (1608 bytes) in a 64-byte payload
    decoded = decode_frame(LINKTYPE_RAW, bytes(broken))
    assert decoded.kind is FrameKind.MALFORMED
    assert "extension header" in decoded.reason


def test_ipv6_fragment_is_data() -> None:
    fragment = (
        REQUEST_IPV6[:4]
        + b"\x00\x38\x2c\xff"  # payload length 56, next header 44 (fragment), hop limit 255
        + REQUEST_IPV6[8:40]
        + b"\x2f\x00"  # fragment header: next header 47, reserved
        + b"\x00\x01"  # offset 0, M set: the first of several fragments
        + b"\x00\x00\x00\x2a"  # identification
        + REQUEST_IPV6[40:]
    )
    assert decode_frame(LINKTYPE_RAW, fragment).kind is FrameKind.DATA


def test_ipv6_atomic_fragment_is_a_whole_packet() -> None:
    atomic = (
        REQUEST_IPV6[:4]
        + b"\x00\x38\x2c\xff"  # payload length 56, next header 44 (fragment), hop limit 255
        + REQUEST_IPV6[8:40]
        + b"\x2f\x00"  # fragment header: next header 47, reserved
        + b"\x00\x00"  # offset 0, M clear: an atomic fragment (RFC 6946)
        + b"\x00\x00\x00\x2a"  # identification
        + REQUEST_IPV6[40:]
    )
    assert decode_frame(LINKTYPE_RAW, atomic).kind is FrameKind.REQUEST


# --- the keepalive itself -----------------------------------------------------------------


def test_request_fields() -> None:
    decoded = decode_frame(LINKTYPE_RAW, REQUEST)
    assert decoded.kind is FrameKind.REQUEST
    assert (decoded.ip_version, decoded.ip_id, decoded.ttl, decoded.ip_length) == (4, 1001, 255, 48)
    assert (decoded.gre_protocol, decoded.key, decoded.sequence) == (0x0800, None, None)
    assert decoded.checksum_ok is None
    assert decoded.payload_length == 0


def test_request_inner_header() -> None:
    inner = decode_frame(LINKTYPE_RAW, REQUEST).inner
    assert inner is not None
    assert (inner.src, inner.dst, inner.ip_version) == ("198.51.100.1", "192.0.2.1", 4)
    assert (inner.ip_id, inner.ttl, inner.key, inner.metadata, inner.sgt) == (
        1000,
        255,
        None,
        False,
        None,
    )


def test_reply_fields() -> None:
    decoded = decode_frame(LINKTYPE_RAW, REPLY)
    assert decoded.kind is FrameKind.REPLY
    assert (decoded.src, decoded.dst, decoded.ip_id, decoded.ttl) == (
        "198.51.100.1",
        "192.0.2.1",
        1000,
        254,
    )
    assert (decoded.gre_protocol, decoded.payload_length, decoded.inner) == (0, 0, None)


def test_inner_ipv6_keepalive() -> None:
    decoded = decode_frame(LINKTYPE_ETHERNET, ETHERNET_IPV6 + REQUEST_IPV6)
    assert decoded.kind is FrameKind.REQUEST
    assert decoded.gre_protocol == 0x86DD
    assert decoded.inner is not None
    assert (decoded.inner.ip_version, decoded.inner.ip_id) == (6, None)


def test_inner_ipv6_keepalive_reflection_is_a_reply() -> None:
    reflected = REQUEST_IPV6[44:]  # what B forwards: the inner IPv6 packet
    decoded = decode_frame(LINKTYPE_RAW, reflected)
    assert frame_fields(decoded) == (FrameKind.REPLY, "2001:db8::2", "2001:db8::1")


def test_huawei_protocol_type_4_request() -> None:
    decoded = decode_frame(LINKTYPE_RAW, REQUEST_HUAWEI_TYPE_4)
    assert frame_fields(decoded) == (FrameKind.REQUEST, "192.0.2.1", "198.51.100.1")
    assert decoded.gre_protocol == 4
    assert decoded.inner is not None
    assert (decoded.inner.src, decoded.inner.dst, decoded.inner.ip_id) == (
        "198.51.100.1",
        "192.0.2.1",
        1000,
    )


def test_huawei_protocol_type_4_reflects_to_the_usual_reply() -> None:
    assert reflect_request(REQUEST_HUAWEI_TYPE_4) == REPLY


def test_protocol_type_4_carrying_udp_is_data() -> None:
    assert decode_frame(LINKTYPE_RAW, DATA_HUAWEI_TYPE_4).kind is FrameKind.DATA


# A snaplen cuts requests inside their inner GRE header (64 bytes behind a VLAN tag, 68
# with GRE options): the inner IP header still says GRE, and no more than a keepalive.
@pytest.mark.parametrize("cut_at", [44, 46])  # no inner GRE byte; 2 of its 4 bytes
def test_a_request_cut_inside_its_inner_gre_header_is_a_request(cut_at: int) -> None:
    decoded = decode_frame(LINKTYPE_RAW, REQUEST[:cut_at])
    assert frame_fields(decoded) == (FrameKind.REQUEST, "192.0.2.1", "198.51.100.1")
    assert decoded.cut
    assert decoded.inner is not None
    assert (decoded.inner.ip_id, decoded.inner.key) == (1000, None)


def test_a_whole_request_is_not_cut() -> None:
    assert not decode_frame(LINKTYPE_RAW, REQUEST).cut


def test_a_request_cut_inside_its_inner_ip_header_is_data() -> None:
    assert decode_frame(LINKTYPE_RAW, REQUEST[:42]).kind is FrameKind.DATA


def test_cut_gre_in_gre_longer_than_a_keepalive_is_data() -> None:
    # a TCP ACK (40 bytes) in a GRE tunnel inside the tunnel: 44 bytes after the inner IP
    # header, more than a keepalive's 16-byte header and 16-byte payload
    inner = build_ip("198.51.100.1", "192.0.2.1", build_gre(0x0800, bytes(40)))
    packet = build_ip("192.0.2.1", "198.51.100.1", build_gre(0x0800, inner))
    assert decode_frame(LINKTYPE_RAW, packet[:46]).kind is FrameKind.DATA


def test_cut_gre_in_gre_between_other_addresses_is_data() -> None:
    # an inner tunnel's own small packet: GRE, short, but not addressed back to the sender
    inner = build_ip("198.51.100.7", "203.0.113.7", build_gre(0x0800, bytes(20)))
    packet = build_ip("192.0.2.1", "198.51.100.1", build_gre(0x0800, inner))
    assert decode_frame(LINKTYPE_RAW, packet[:46]).kind is FrameKind.DATA


def test_a_cut_request_shorter_than_a_gre_header_is_data() -> None:
    inner = build_ip("198.51.100.1", "192.0.2.1", b"\x00\x00", protocol=47)  # 2 GRE bytes
    packet = build_ip("192.0.2.1", "198.51.100.1", build_gre(0x0800, inner))
    assert decode_frame(LINKTYPE_RAW, packet[:-1]).kind is FrameKind.DATA


def test_a_cut_request_takes_the_outer_key_for_the_inner_one_it_hides() -> None:
    request = build_keepalive_request("192.0.2.1", "198.51.100.1", key=7)
    decoded = decode_frame(LINKTYPE_RAW, request[: 20 + 8 + 20 + 2])  # 2 inner GRE bytes
    assert decoded.cut and decoded.inner is not None
    assert (decoded.key, decoded.inner.key, decoded.payload_length) == (7, 7, 0)


def test_a_cut_inner_gre_header_showing_another_protocol_type_is_data() -> None:
    inner = build_ip("198.51.100.1", "192.0.2.1", build_gre(0x0800, b"", key=7))
    packet = build_ip("192.0.2.1", "198.51.100.1", build_gre(0x0800, inner))
    assert decode_frame(LINKTYPE_RAW, packet[:50]).kind is FrameKind.DATA  # key cut, PT 0x0800


def test_cisco_metadata_request_from_a_real_capture() -> None:
    decoded = decode_frame(LINKTYPE_ETHERNET, CISCO_METADATA_FRAME)
    assert frame_fields(decoded) == (FrameKind.REQUEST, "10.172.64.7", "10.172.64.6")
    assert (decoded.gre_protocol, decoded.key) == (0x8909, 40)


def test_cisco_metadata_inner_header() -> None:
    inner = decode_frame(LINKTYPE_ETHERNET, CISCO_METADATA_FRAME).inner
    assert inner is not None
    assert (inner.metadata, inner.sgt, inner.key, inner.ip_id) == (True, 0, 40, 163)


def test_cisco_metadata_security_group_tag_is_read() -> None:
    tagged = bytearray(CISCO_METADATA_FRAME)
    tagged[52:54] = b"\x00\x11"  # SGT 17 (Ethernet 18 + IPv4 20 + GRE 8 + MetaData 6)
    inner = decode_frame(LINKTYPE_ETHERNET, bytes(tagged)).inner
    assert inner is not None and inner.sgt == 17


def test_ethernet_padding_after_a_24_byte_reply_is_not_payload() -> None:
    frame = ETHERNET + REPLY + bytes(22)  # padded to the 60-byte Ethernet minimum
    decoded = decode_frame(LINKTYPE_ETHERNET, frame)
    assert decoded.kind is FrameKind.REPLY
    assert (decoded.payload_length, decoded.ip_length) == (0, 24)


def test_ethernet_trailer_garbage_after_a_reply_is_not_payload() -> None:
    frame = ETHERNET + REPLY + b"\xde\xad\xbe\xef" * 6  # non-zero padding / FCS / trailer
    decoded = decode_frame(LINKTYPE_ETHERNET, frame)
    assert (decoded.kind, decoded.payload_length) == (FrameKind.REPLY, 0)


def test_pt0_gre_with_a_payload_is_still_a_reply() -> None:
    decoded = decode_frame(LINKTYPE_RAW, REPLY_WITH_PAYLOAD)
    assert (decoded.kind, decoded.payload_length) == (FrameKind.REPLY, 16)


def test_request_whose_inner_keepalive_carries_a_payload() -> None:
    packet = build_keepalive_request("192.0.2.1", "198.51.100.1", payload=bytes(16))
    decoded = decode_frame(LINKTYPE_RAW, packet)
    assert (decoded.kind, decoded.payload_length) == (FrameKind.REQUEST, 16)


def test_ip_in_ip_carrying_a_keepalive() -> None:
    decoded = decode_frame(LINKTYPE_RAW, IP_IN_IP + REQUEST)
    assert frame_fields(decoded) == (FrameKind.REQUEST, "192.0.2.1", "198.51.100.1")


# --- GRE flags and checksums --------------------------------------------------------------


def test_cks_request_fields() -> None:
    decoded = decode_frame(LINKTYPE_RAW, REQUEST_CKS)
    assert decoded.kind is FrameKind.REQUEST
    assert (decoded.key, decoded.sequence, decoded.checksum_ok) == (42, 8, True)
    assert decoded.inner is not None and decoded.inner.key == 42


def test_cks_reply_fields() -> None:
    decoded = decode_frame(LINKTYPE_RAW, REPLY_CKS)
    assert decoded.kind is FrameKind.REPLY
    assert (decoded.key, decoded.sequence, decoded.checksum_ok) == (42, 7, True)


def test_corrupted_outer_checksum_is_reported_but_the_request_is_kept() -> None:
    corrupted = bytearray(REQUEST_CKS)
    corrupted[24:26] = b"\x47\xce"  # outer GRE checksum off by one
    decoded = decode_frame(LINKTYPE_RAW, bytes(corrupted))
    assert (decoded.kind, decoded.checksum_ok) == (FrameKind.REQUEST, False)


def test_corrupted_reply_checksum_is_reported_but_the_reply_is_kept() -> None:
    corrupted = bytearray(REPLY_CKS)
    corrupted[24:26] = b"\x00\x00"
    decoded = decode_frame(LINKTYPE_RAW, bytes(corrupted))
    assert (decoded.kind, decoded.checksum_ok) == (FrameKind.REPLY, False)


def test_corrupted_inner_checksum_under_a_correct_outer_one() -> None:
    inner_gre = bytearray(build_gre(0, b"", key=42, checksum=True))
    inner_gre[4] ^= 0xFF  # break the inner GRE checksum only
    inner = build_ip("198.51.100.1", "192.0.2.1", bytes(inner_gre), ip_id=1000)
    outer_gre = build_gre(0x0800, inner, key=42, checksum=True)  # correct over the broken inner
    packet = build_ip("192.0.2.1", "198.51.100.1", outer_gre, ip_id=1001)
    decoded = decode_frame(LINKTYPE_RAW, packet)
    assert (decoded.kind, decoded.checksum_ok) == (FrameKind.REQUEST, False)


def test_checksum_of_a_truncated_packet_is_not_judged() -> None:
    cut = REPLY_CKS[:-2]  # snaplen cut the last 2 bytes: the checksum cannot be verified
    decoded = decode_frame(LINKTYPE_RAW, cut)
    assert decoded.checksum_ok is None


FLAG_SETS = [
    (c, k, s)
    for c, k, s in itertools.product((False, True), repeat=3)  # C, K, S: all 8 combinations
]


def _flags_id(flags: tuple[bool, bool, bool]) -> str:
    return "".join(name for name, on in zip("CKS", flags, strict=True) if on) or "none"


def _keepalive_with_flags(outer: tuple[bool, bool, bool], inner: tuple[bool, bool, bool]) -> bytes:
    oc, ok, os_ = outer
    ic, ik, is_ = inner
    inner_gre = build_gre(0, b"", key=7 if ik else None, sequence=3 if is_ else None, checksum=ic)
    inner_ip = build_ip("198.51.100.1", "192.0.2.1", inner_gre, ip_id=1000)
    outer_gre = build_gre(
        0x0800, inner_ip, key=9 if ok else None, sequence=5 if os_ else None, checksum=oc
    )
    return build_ip("192.0.2.1", "198.51.100.1", outer_gre, ip_id=1001)


@pytest.mark.parametrize("outer", FLAG_SETS, ids=[f"outer-{_flags_id(f)}" for f in FLAG_SETS])
@pytest.mark.parametrize("inner", FLAG_SETS, ids=[f"inner-{_flags_id(f)}" for f in FLAG_SETS])
def test_every_flag_combination_on_both_headers_is_a_request(
    outer: tuple[bool, bool, bool], inner: tuple[bool, bool, bool]
) -> None:
    decoded = decode_frame(LINKTYPE_RAW, _keepalive_with_flags(outer, inner))
    assert decoded.kind is FrameKind.REQUEST
    assert decoded.key == (9 if outer[1] else None)
    assert decoded.sequence == (5 if outer[2] else None)
    assert decoded.inner is not None and decoded.inner.key == (7 if inner[1] else None)
    assert decoded.checksum_ok == (True if outer[0] or inner[0] else None)


@pytest.mark.parametrize("flags", FLAG_SETS, ids=[_flags_id(f) for f in FLAG_SETS])
def test_every_flag_combination_on_a_reply(flags: tuple[bool, bool, bool]) -> None:
    c, k, s = flags
    gre = build_gre(0, b"", key=7 if k else None, sequence=3 if s else None, checksum=c)
    decoded = decode_frame(LINKTYPE_RAW, build_ip("198.51.100.1", "192.0.2.1", gre, ip_id=1000))
    assert decoded.kind is FrameKind.REPLY
    assert (decoded.key, decoded.sequence) == (7 if k else None, 3 if s else None)
    assert decoded.checksum_ok == (True if c else None)


# --- GRE that is not a keepalive ----------------------------------------------------------


def test_gre_version_1_pptp_is_data() -> None:
    decoded = decode_frame(LINKTYPE_RAW, PPTP_GRE_V1)
    assert (decoded.kind, decoded.gre_protocol) == (FrameKind.DATA, 0x880B)


def test_gre_version_1_is_keyed_by_neither_payload_length_nor_call_id() -> None:
    # both differ by direction (each side writes its peer's call ID) or by packet: one
    # PPTP call between two hosts is one tunnel, not one per direction or packet length
    assert decode_frame(LINKTYPE_RAW, PPTP_GRE_V1).key is None


def test_gre_version_1_with_protocol_type_0_is_not_a_reply() -> None:
    ack_like = PPTP_GRE_V1[:22] + b"\x00\x00" + PPTP_GRE_V1[24:]  # PT 0 under version 1
    assert decode_frame(LINKTYPE_RAW, ack_like).kind is FrameKind.DATA


def test_gre_in_gre_that_is_not_a_keepalive_is_data() -> None:
    assert decode_frame(LINKTYPE_RAW, GRE_IN_GRE).kind is FrameKind.DATA


def test_first_ipv4_fragment_is_data() -> None:
    assert decode_frame(LINKTYPE_RAW, REQUEST_FIRST_FRAGMENT).kind is FrameKind.DATA


def test_later_ipv4_fragment_is_data() -> None:
    assert decode_frame(LINKTYPE_RAW, LATER_FRAGMENT).kind is FrameKind.DATA


def test_gre_with_routing_present_is_data() -> None:
    routed = bytearray(REQUEST)
    routed[20] = 0x40  # R bit (RFC 1701 source routing): never a keepalive
    packet = bytes(routed[:24]) + b"\x00\x00\x00\x00" + bytes(routed[24:])
    packet = packet[:2] + struct.pack("!H", len(packet)) + packet[4:]
    assert decode_frame(LINKTYPE_RAW, packet).kind is FrameKind.DATA


def test_non_gre_ip_is_other() -> None:
    udp = build_ip("192.0.2.1", "198.51.100.1", bytes(8), protocol=17)
    assert decode_frame(LINKTYPE_RAW, udp).kind is FrameKind.OTHER


# --- malformed ----------------------------------------------------------------------------


def test_truncated_gre_header_is_malformed_with_a_reason() -> None:
    decoded = decode_frame(LINKTYPE_RAW, TRUNCATED_GRE)
    assert decoded.kind is FrameKind.MALFORMED
    assert decoded.reason == "GRE header truncated (2 of 4 bytes)"


def test_gre_header_missing_its_key_is_malformed() -> None:
    decoded = decode_frame(LINKTYPE_RAW, TRUNCATED_GRE_OPTIONS)
    assert decoded.kind is FrameKind.MALFORMED
    assert decoded.reason == "GRE header truncated (8 of 12 bytes)"


def test_truncated_ipv4_header_is_malformed() -> None:
    decoded = decode_frame(LINKTYPE_ETHERNET, ETHERNET + REQUEST[:12])
    assert (decoded.kind, decoded.reason) == (FrameKind.MALFORMED, "IPv4 header truncated")


def test_ipv4_header_length_below_20_is_malformed() -> None:
    decoded = decode_frame(LINKTYPE_RAW, b"\x44" + REQUEST[1:])  # IHL 4: 16 bytes
    assert (decoded.kind, decoded.reason) == (FrameKind.MALFORMED, "IPv4 header length 16 < 20")


def test_gre_version_above_1_is_malformed() -> None:
    bad = bytearray(REPLY)
    bad[21] = 0x02  # GRE version 2 does not exist
    decoded = decode_frame(LINKTYPE_RAW, bytes(bad))
    assert (decoded.kind, decoded.reason) == (FrameKind.MALFORMED, "GRE version 2")


def test_runt_ethernet_frame_is_malformed() -> None:
    decoded = decode_frame(LINKTYPE_ETHERNET, ETHERNET[:10])
    assert decoded.kind is FrameKind.MALFORMED


# --- building -----------------------------------------------------------------------------

ROUND_TRIPS = list(
    itertools.product(
        (None, 0x2A),  # key
        (False, True),  # GRE checksums
        (None, 17),  # Cisco MetaData SGT
        ("192.0.2.1", "2001:db8::1"),  # outer family
        (4, 6),  # inner family
    )
)


@pytest.mark.parametrize(("key", "checksum", "sgt", "originator", "inner_family"), ROUND_TRIPS)
def test_build_keepalive_request_round_trip(
    key: int | None, checksum: bool, sgt: int | None, originator: str, inner_family: int
) -> None:
    peer = "198.51.100.1" if "." in originator else "2001:db8::2"
    inner_src, inner_dst = (
        ("198.51.100.1", "192.0.2.1") if inner_family == 4 else ("2001:db8::2", "2001:db8::1")
    )
    packet = build_keepalive_request(
        originator,
        peer,
        key=key,
        checksum=checksum,
        metadata_sgt=sgt,
        outer_id=1001,
        inner_id=1000,
        inner_src=inner_src,
        inner_dst=inner_dst,
    )
    decoded = decode_frame(LINKTYPE_RAW, packet)
    assert frame_fields(decoded) == (FrameKind.REQUEST, originator, peer)
    assert decoded.key == key
    assert decoded.checksum_ok == (True if checksum else None)
    assert decoded.gre_protocol == (
        0x8909 if sgt is not None else 0x0800 if inner_family == 4 else 0x86DD
    )
    inner = decoded.inner
    assert inner is not None
    assert (inner.src, inner.dst, inner.ip_version, inner.key) == (
        inner_src,
        inner_dst,
        inner_family,
        key,
    )
    assert (inner.metadata, inner.sgt) == (sgt is not None, sgt)
    assert inner.ip_id == (1000 if inner_family == 4 else None)
    assert decoded.ip_id == (1001 if "." in originator else None)


def test_reflect_request_decrements_the_ttl() -> None:
    reflected = reflect_request(REQUEST)
    assert reflected is not None
    assert reflected[8] == 254


def test_reflect_request_keeps_the_ip_id() -> None:
    reflected = reflect_request(REQUEST)
    assert reflected is not None
    assert struct.unpack("!H", reflected[4:6])[0] == 1000


def test_reflect_request_recomputes_the_header_checksum() -> None:
    reflected = reflect_request(REQUEST)
    assert reflected is not None
    assert_ipv4_header_checksum_ok(reflected)


def test_reflect_request_is_the_inner_packet_as_b_forwards_it() -> None:
    assert reflect_request(REQUEST) == REPLY
    assert reflect_request(REQUEST_CKS) == REPLY_CKS


def test_reflect_request_of_an_ipv6_keepalive_decrements_the_hop_limit() -> None:
    reflected = reflect_request(REQUEST_IPV6)
    assert reflected is not None
    assert reflected[7] == 254
    assert socket.inet_ntop(socket.AF_INET6, reflected[24:40]) == "2001:db8::1"


def test_reflect_request_of_something_else_is_none() -> None:
    assert reflect_request(GRE_IN_GRE) is None
    assert reflect_request(b"") is None


@pytest.mark.parametrize(("key", "checksum", "sgt", "originator", "inner_family"), ROUND_TRIPS)
def test_reflection_of_a_built_request_pairs_with_it(
    key: int | None, checksum: bool, sgt: int | None, originator: str, inner_family: int
) -> None:
    peer = "198.51.100.1" if "." in originator else "2001:db8::2"
    inner_src, inner_dst = (
        ("198.51.100.1", "192.0.2.1") if inner_family == 4 else ("2001:db8::2", "2001:db8::1")
    )
    request = build_keepalive_request(
        originator,
        peer,
        key=key,
        checksum=checksum,
        metadata_sgt=sgt,
        inner_id=1000,
        inner_src=inner_src,
        inner_dst=inner_dst,
    )
    reflected = reflect_request(request)
    assert reflected is not None
    decoded = decode_frame(LINKTYPE_RAW, reflected)
    assert frame_fields(decoded) == (FrameKind.REPLY, inner_src, inner_dst)
    assert (decoded.key, decoded.ttl) == (key, 254)
    assert decoded.checksum_ok == (True if checksum else None)
    assert decoded.ip_id == (1000 if inner_family == 4 else None)
    if inner_family == 4:
        assert_ipv4_header_checksum_ok(reflected)
