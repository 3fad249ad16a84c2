"""libpcap capture filters that pass GRE keepalives (and, optionally, the rest of the GRE).

:func:`keepalive_filter` builds a filter expression in libpcap syntax (the language of
``tcpdump``/``pcap-filter(7)``). Live capture (``gre-keepalive watch``) hands it to the
kernel so that only the packets the analysis needs cross into user space; file readers can
apply the same expression with :class:`FrameFilter` (libpcap's compiler and interpreter,
through ``pcapy``, imported lazily).

What the expression passes
--------------------------
``include_data=True``: every GRE packet the decoder can find — ``ip proto 47 or ip6 proto
47`` (IPv4 fragments included: the decoder counts them as data), GRE behind one IPv6
extension header (hop-by-hop, routing, fragment, destination options), GRE one IP-in-IP
level down (outer protocol 4 or 41) — and all of that behind zero, one or two VLAN tags
(802.1Q, 802.1ad, 0x9100) on Ethernet.

``include_data=False``: only GRE that can be a keepalive — a superset of what
:func:`analyzer.read.packet.decode_frame` classifies ``REQUEST`` or ``REPLY``:

* GRE directly in IPv4 (not a fragment) or IPv6, version 0, R bit clear;
* **reply**: GRE protocol type 0;
* **request**: GRE protocol type 0x0800 whose inner IPv4 header says protocol 47 and whose
  inner GRE protocol type is 0 (the inner IPv4 header length is read from the packet);
  0x86DD with inner IPv6 next header 47 and inner GRE protocol type 0; 0x8909 (Cisco
  MetaData, 8 bytes) followed by an inner IPv4 or IPv6 keepalive header; or 0x0004 (some
  Huawei releases) followed by an inner IPv4 or IPv6 keepalive header.

The GRE header length is computed inside the filter from the C, R, K and S flags (4 bytes,
+4 for C or R, +4 for K, +4 for S), so keys, sequence numbers and checksums on either GRE
header are handled. The one look-alike that passes is an inner GRE header with protocol
type 0 but version 1 or the R bit (the decoder calls it data).

Limitations (libpcap byte tests need fixed offsets where IPv6 is concerned, and the kernel
takes at most 4096 BPF instructions):

* Keepalive-only mode reads GRE right after the fixed 40-byte IPv6 header: IPv6 extension
  headers before GRE are not followed (``ip6 protochain`` would need backward jumps, which
  the kernel refuses), nor is an inner IPv6 keepalive header followed past its fixed part.
  IP-in-IP under the GRE is not looked into either (data mode does, one level).
* At most two VLAN tags (the decoder takes any number, and TPID 0x9200); MPLS or PPPoE
  between Ethernet and IP are not looked into.
* VLAN alternatives exist only for Ethernet; pass ``linktype`` for anything else (Linux
  cooked "any" captures, raw IP) or libpcap rejects the ``vlan`` keyword.

A user's own filter is combined with AND. Because libpcap's ``vlan`` keyword moves every
later offset, the user's expression is repeated inside each VLAN alternative, so it is
evaluated against the same headers as ours (``host``, ``net``, ``ip[...]`` refer to the
outer IP header whether or not the frame is tagged). A user filter that itself contains
``vlan``, ``mpls`` or ``pppoes`` therefore does not mean what it would in tcpdump.
"""

from __future__ import annotations

import importlib
from typing import Any, Final

from analyzer.read.capture import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_RAW,
    RawFrame,
)

__all__ = [
    "DEFAULT_SNAPLEN",
    "VLAN_LINKTYPES",
    "FilterError",
    "FrameFilter",
    "compile_filter",
    "dlt_from_linktype",
    "keepalive_filter",
    "linktype_from_dlt",
]

DEFAULT_SNAPLEN: Final = 262144

# Link types (pcap LINKTYPE_ values) on which libpcap understands the `vlan` keyword and
# on which 802.1Q/802.1ad tags sit between the link header and IP.
VLAN_LINKTYPES: Final = frozenset({LINKTYPE_ETHERNET})

# libpcap's compiler takes DLT_ values; pcap files (and analyzer.read.capture) use LINKTYPE_
# values. They differ only for raw IP: LINKTYPE_RAW (101) is DLT_RAW, which is 12 on
# Linux and most systems (14 on OpenBSD).
_DLT_RAW: Final = 12
_DLT_TO_LINKTYPE: Final[dict[int, int]] = {12: LINKTYPE_RAW, 14: LINKTYPE_RAW}

_IPPROTO_GRE: Final = 47
_IPPROTO_IPIP: Final = 4
_IPPROTO_IPV6: Final = 41

# A table of 16 two-bit entries, indexed by the top nibble of the GRE flags byte (C R K S):
# how many optional 4-byte fields follow the fixed header (checksum+offset if C or R; key if
# K; sequence number if S).
_GRE_OPTIONAL_FIELDS: Final = hex(
    sum(((1 if n & 0b1100 else 0) + (n >> 1 & 1) + (n & 1)) << (2 * n) for n in range(16))
)


class FilterError(ValueError):
    """libpcap rejected a filter expression; ``str(exc)`` is one line."""


def linktype_from_dlt(dlt: int) -> int:
    """The pcap-file link type (LINKTYPE_) of a libpcap DLT_ value (``pcap_datalink``)."""
    return _DLT_TO_LINKTYPE.get(dlt, dlt)


def dlt_from_linktype(linktype: int) -> int:
    """The libpcap DLT_ value to compile a filter for a pcap-file link type."""
    return _DLT_RAW if linktype == LINKTYPE_RAW else linktype


# --- the expression ------------------------------------------------------------------------


def _gre_header_length(base: str, gre: str) -> str:
    """Length of a version-0 GRE header at offset `gre` of `base`: 4, +4 for C or R, K, S.

    The flags byte is loaded once: its top nibble (C R K S) picks a 2-bit count of the
    optional 4-byte fields out of :data:`_GRE_OPTIONAL_FIELDS`.
    """
    # (0x1e & …) rather than (… & 0x1e): libpcap 1.9 rejects a shift whose amount's
    # expression starts by loading a constant above 31 ("shift by more than 31 bits"),
    # which `ip6[40]` does.
    return f"(4+(({_GRE_OPTIONAL_FIELDS}>>(0x1e&({base}[{gre}]>>3)))&3)*4)"


def _inner_ipv4_keepalive(base: str, start: str) -> str:
    """An IPv4 header at `start` whose protocol is GRE and whose GRE protocol type is 0."""
    return f"{base}[{start}+9] = {_IPPROTO_GRE} and {base}[{start}+({base}[{start}]&0xf)*4+2:2] = 0"


def _inner_ipv6_keepalive(base: str, start: str) -> str:
    """A fixed IPv6 header at `start` followed by GRE with protocol type 0."""
    return f"{base}[{start}+6] = {_IPPROTO_GRE} and {base}[{start}+42:2] = 0"


def _keepalive_gre(base: str, gre: str) -> str:
    """A GRE header at offset `gre` of `base` that can be a keepalive request or reply."""
    protocol = f"{base}[{gre}+2:2]"
    payload = f"{gre}+{_gre_header_length(base, gre)}"
    metadata = f"{payload}+8"  # Cisco MetaData is 8 bytes; the inner IP header follows
    # Behind MetaData the inner header's IP version picks IPv4 or IPv6, not the MetaData
    # next-type field: testing that 16-bit field makes libpcap 1.9's optimizer drop the
    # IPv6 branch (a miscompilation the tests of this module catch).
    # Huawei's type 4 is tried as both (a superset: the decoder reads the inner version).
    request = (
        f"(({protocol} = 0x0800 or {protocol} = 4) and {_inner_ipv4_keepalive(base, payload)})"
        f" or (({protocol} = 0x86dd or {protocol} = 4) and {_inner_ipv6_keepalive(base, payload)})"
        f" or ({protocol} = 0x8909 and ("
        f"({base}[{metadata}]&0xf0 = 0x40 and {_inner_ipv4_keepalive(base, metadata)})"
        f" or ({base}[{metadata}]&0xf0 = 0x60 and {_inner_ipv6_keepalive(base, metadata)})))"
    )
    # Version 0 and no R bit (anything else is data to the decoder); PT 0 is a reply.
    return f"{base}[{gre}]&0x40 = 0 and {base}[{gre}+1]&7 = 0 and ({protocol} = 0 or {request})"


_IP4_HEADER: Final = "(ip[0]&0xf)*4"  # offset of what follows the outer IPv4 header
_IP4_NOT_FRAGMENT: Final = "ip[6:2]&0x3fff = 0"  # neither MF nor a fragment offset
# IPv6 extension headers whose first byte is the next header: hop-by-hop, routing,
# fragment, destination options.
_IP6_EXTENSIONS: Final = (0, 43, 44, 60)


def _any_gre(*, ipv4: bool, ipv6: bool) -> str:
    """Every packet :func:`analyzer.read.packet.decode_frame` can find GRE in (data mode)."""
    h = _IP4_HEADER
    parts: list[str] = []
    if ipv4:
        parts += [
            # fragments included: the decoder counts them as tunnel data
            f"ip proto {_IPPROTO_GRE}",
            # one IP-in-IP level: IPv4 in IPv4, IPv6 in IPv4
            f"ip proto {_IPPROTO_IPIP} and {_IP4_NOT_FRAGMENT} and ip[{h}+9] = {_IPPROTO_GRE}",
            f"ip proto {_IPPROTO_IPV6} and {_IP4_NOT_FRAGMENT} and ip[{h}+6] = {_IPPROTO_GRE}",
        ]
    if ipv6:
        extension = " or ".join(f"ip6 proto {number}" for number in _IP6_EXTENSIONS)
        parts += [
            f"ip6 proto {_IPPROTO_GRE}",
            # one extension header (fragments included) before GRE
            f"({extension}) and ip6[40] = {_IPPROTO_GRE}",
            f"ip6 proto {_IPPROTO_IPIP} and ip6[49] = {_IPPROTO_GRE}",
            f"ip6 proto {_IPPROTO_IPV6} and ip6[46] = {_IPPROTO_GRE}",
        ]
    return " or ".join(f"({part})" for part in parts)


def _possible_keepalive(*, ipv4: bool, ipv6: bool) -> str:
    """GRE directly in IP that can be a keepalive request or reply (keepalive-only mode).

    IP-in-IP and IPv6 extension headers are not followed here: each alternative repeats the
    whole keepalive test, and with them the program outgrows the kernel's limit of 4096
    BPF instructions.
    """
    parts: list[str] = []
    if ipv4:
        gre = _keepalive_gre("ip", _IP4_HEADER)
        parts.append(f"ip proto {_IPPROTO_GRE} and {_IP4_NOT_FRAGMENT} and {gre}")
    if ipv6:
        parts.append(f"ip6 proto {_IPPROTO_GRE} and {_keepalive_gre('ip6', '40')}")
    return " or ".join(f"({part})" for part in parts)


def keepalive_filter(
    *, include_data: bool, user_filter: str | None = None, linktype: int | None = None
) -> str:
    """A libpcap filter expression passing GRE keepalives, and all GRE with `include_data`.

    `user_filter` (libpcap syntax) is combined with AND, evaluated at the same header
    offsets as ours (see the module documentation). `linktype` is the pcap LINKTYPE_ of
    the capture; None means Ethernet. VLAN alternatives are generated for Ethernet only,
    IPv6 tests are left out for raw-IPv4 link types and IPv4 tests for raw-IPv6 ones.
    """
    if linktype is None:
        linktype = LINKTYPE_ETHERNET
    ipv4 = linktype != LINKTYPE_IPV6
    ipv6 = linktype != LINKTYPE_IPV4
    if include_data:
        level = _any_gre(ipv4=ipv4, ipv6=ipv6)
    else:
        level = _possible_keepalive(ipv4=ipv4, ipv6=ipv6)
    user = (user_filter or "").strip()
    if user:
        level = f"({level}) and ({user})"
    if linktype not in VLAN_LINKTYPES:
        return level
    # libpcap's `vlan` moves every later offset by 4 for the rest of the expression, so
    # the nesting below tests depth 0, then 1 tag, then 2 tags.
    return f"({level}) or (vlan and (({level}) or (vlan and ({level}))))"


# --- compiling and applying ------------------------------------------------------------------


def _pcapy() -> Any:
    try:
        return importlib.import_module("pcapy")
    except ImportError as exc:  # pragma: no cover - pcapy-ng is a dependency
        raise FilterError(f"libpcap binding unavailable: {exc}") from exc


def compile_filter(
    expression: str, linktype: int = LINKTYPE_ETHERNET, *, optimize: bool = True
) -> Any:
    """Compile `expression` for a pcap link type with libpcap; a ``pcapy.BPFProgram``.

    The program's ``filter(data)`` returns non-zero when a frame passes, and
    ``get_bpf()`` lists its instructions. Raises :class:`FilterError` (one line).
    """
    pcapy = _pcapy()
    try:
        return pcapy.compile(
            dlt_from_linktype(linktype), DEFAULT_SNAPLEN, expression, int(optimize), 0
        )
    except pcapy.PcapError as exc:
        message = " ".join(str(exc).split()) or "rejected by libpcap"
        raise FilterError(f"bad capture filter: {message}") from None


class FrameFilter:
    """Apply :func:`keepalive_filter` to captured frames, one compiled program per link type.

    For file readers: ``frames = (f for f in reader if frame_filter(f))`` keeps what a live
    capture with the same options would have kept. Frames of link types libpcap cannot
    compile the filter for pass unfiltered (``unfiltered_linktypes`` lists them).
    """

    def __init__(self, *, include_data: bool, user_filter: str | None = None) -> None:
        """Raises :class:`FilterError` if `user_filter` does not compile (for Ethernet)."""
        self.include_data = include_data
        self.user_filter = user_filter
        self.unfiltered_linktypes: set[int] = set()
        self._programs: dict[int, Any] = {}
        self._program(LINKTYPE_ETHERNET, strict=True)

    def _program(self, linktype: int, *, strict: bool = False) -> Any:
        if linktype in self._programs:
            return self._programs[linktype]
        expression = keepalive_filter(
            include_data=self.include_data, user_filter=self.user_filter, linktype=linktype
        )
        try:
            program = compile_filter(expression, linktype)
        except FilterError:
            if strict:
                raise
            program = None
            self.unfiltered_linktypes.add(linktype)
        self._programs[linktype] = program
        return program

    def __call__(self, frame: RawFrame) -> bool:
        """Whether the frame passes."""
        program = self._program(frame.linktype)
        if program is None:
            return True
        return bool(program.filter(frame.data))


# --- a kernel socket filter for raw GRE sockets (SO_ATTACH_FILTER) ---------------------------
#
# A raw socket's filter sees a different packet than a capture does: an IPv4 raw socket
# gets the packet from its IPv4 header on, an IPv6 raw socket only what follows the IPv6
# header chain (the GRE header), with the IPv6 header reachable only through the kernel's
# SKF_NET_OFF negative offsets. libpcap's filter language has no link type for "GRE at
# offset 0" and no way to name those offsets, so this program is assembled here from the
# same keepalive rules as :func:`keepalive_filter`.

BPF_LD: Final = 0x00
BPF_LDX: Final = 0x01
BPF_ST: Final = 0x02
BPF_ALU: Final = 0x04
BPF_JMP: Final = 0x05
BPF_RET: Final = 0x06
BPF_MISC: Final = 0x07
BPF_W: Final = 0x00
BPF_H: Final = 0x08
BPF_B: Final = 0x10
BPF_IMM: Final = 0x00
BPF_ABS: Final = 0x20
BPF_IND: Final = 0x40
BPF_MEM: Final = 0x60
BPF_MSH: Final = 0xA0
BPF_ADD: Final = 0x00
BPF_AND: Final = 0x50
BPF_JA: Final = 0x00
BPF_JEQ: Final = 0x10
BPF_JSET: Final = 0x40
BPF_K: Final = 0x00
BPF_X: Final = 0x08
BPF_TAX: Final = 0x00
BPF_TXA: Final = 0x80
SKF_NET_OFF: Final = -0x100000  # linux/filter.h: loads relative to the network header
SOCKET_FILTER_ACCEPT: Final = 0x40000  # bytes to keep: the whole packet
MAX_SOCKET_FILTER_INSNS: Final = 4096  # BPF_MAXINSNS

BpfInsn = tuple[int, int, int, int]  # (code, jt, jf, k) as in struct sock_filter


class _Asm:
    """A tiny classic-BPF assembler with symbolic forward jumps."""

    def __init__(self) -> None:
        self.code: list[tuple[int, int | str, int | str, int | str]] = []
        self.labels: dict[str, int] = {}

    def op(self, code: int, k: int | str = 0, jt: int | str = 0, jf: int | str = 0) -> None:
        self.code.append((code, jt, jf, k))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def assemble(self) -> list[BpfInsn]:
        out: list[BpfInsn] = []
        for index, (code, jt, jf, k) in enumerate(self.code):

            def distance(target: int | str, index: int = index) -> int:
                if isinstance(target, int):
                    return target
                offset = self.labels[target] - index - 1
                if offset < 0:
                    raise ValueError(f"backward jump to {target}")
                return offset

            if isinstance(k, str):  # BPF_JA to a label
                k = distance(k)
            jt_value, jf_value = distance(jt), distance(jf)
            if (
                code & 0x07 == BPF_JMP
                and code != BPF_JMP | BPF_JA
                and max(jt_value, jf_value) > 255
            ):
                raise ValueError("conditional jump over more than 255 instructions")
            out.append((code, jt_value, jf_value, k & 0xFFFFFFFF))
        return out


def _address_words(address: str) -> list[int]:
    import ipaddress

    packed = ipaddress.ip_address(address).packed
    return [int.from_bytes(packed[i : i + 4], "big") for i in range(0, len(packed), 4)]


def _gre_keepalive_tail(asm: _Asm, kind: str = "both") -> None:
    """With X at a GRE header: accept a keepalive request or a bare PT-0 reply, drop the rest
    (`kind` "requests" or "replies": only those).

    Scratch memory: M[0] GRE header length, M[1] GRE flags byte.
    """
    ld_ind_b, ld_ind_h = BPF_LD | BPF_B | BPF_IND, BPF_LD | BPF_H | BPF_IND
    asm.op(ld_ind_b, 0)
    asm.op(BPF_ST, 1)
    asm.op(BPF_JMP | BPF_JSET | BPF_K, 0x40, "drop", 0)  # R bit: data to the decoder
    asm.op(ld_ind_b, 1)
    asm.op(BPF_JMP | BPF_JSET | BPF_K, 0x07, "drop", 0)  # version 0 only
    asm.op(BPF_LD | BPF_IMM, 4)
    asm.op(BPF_ST, 0)
    for bit in (0x80, 0x20, 0x10):  # C (checksum + offset), K (key), S (sequence)
        asm.op(BPF_LD | BPF_MEM, 1)
        asm.op(BPF_JMP | BPF_JSET | BPF_K, bit, 0, 3)
        asm.op(BPF_LD | BPF_MEM, 0)
        asm.op(BPF_ALU | BPF_ADD | BPF_K, 4)
        asm.op(BPF_ST, 0)
    asm.op(ld_ind_h, 2)
    if kind == "replies":
        asm.op(BPF_JMP | BPF_JEQ | BPF_K, 0, "accept", "drop")  # PT 0: a reply
        asm.label("drop")
        asm.op(BPF_RET | BPF_K, 0)
        asm.label("accept")
        asm.op(BPF_RET | BPF_K, SOCKET_FILTER_ACCEPT)
        return
    asm.op(BPF_JMP | BPF_JEQ | BPF_K, 0, "drop" if kind == "requests" else "accept", 0)
    asm.op(BPF_ST, 2)
    asm.op(BPF_LD | BPF_MEM, 0)  # X = start of the GRE payload
    asm.op(BPF_ALU | BPF_ADD | BPF_X)
    asm.op(BPF_MISC | BPF_TAX)
    asm.op(BPF_LD | BPF_MEM, 2)
    asm.op(BPF_JMP | BPF_JEQ | BPF_K, 0x0800, "inner4", 0)
    asm.op(BPF_JMP | BPF_JEQ | BPF_K, 0x86DD, "inner6", 0)
    asm.op(BPF_JMP | BPF_JEQ | BPF_K, 0x0004, "by_version", 0)  # Huawei: the version decides
    asm.op(BPF_JMP | BPF_JEQ | BPF_K, 0x8909, 0, "drop")
    asm.op(BPF_MISC | BPF_TXA)  # Cisco MetaData: 8 bytes, then the IP version decides
    asm.op(BPF_ALU | BPF_ADD | BPF_K, 8)
    asm.op(BPF_MISC | BPF_TAX)
    asm.label("by_version")
    asm.op(ld_ind_b, 0)
    asm.op(BPF_ALU | BPF_AND | BPF_K, 0xF0)
    asm.op(BPF_JMP | BPF_JEQ | BPF_K, 0x40, "inner4", 0)
    asm.op(BPF_JMP | BPF_JEQ | BPF_K, 0x60, "inner6", "drop")
    asm.label("inner4")
    asm.op(ld_ind_b, 0)
    asm.op(BPF_ALU | BPF_AND | BPF_K, 0xF0)
    asm.op(BPF_JMP | BPF_JEQ | BPF_K, 0x40, 0, "drop")
    asm.op(ld_ind_b, 9)
    asm.op(BPF_JMP | BPF_JEQ | BPF_K, 47, 0, "drop")
    asm.op(ld_ind_b, 0)  # X += inner IHL * 4
    asm.op(BPF_ALU | BPF_AND | BPF_K, 0x0F)
    asm.op(BPF_ALU | 0x60 | BPF_K, 2)  # BPF_LSH
    asm.op(BPF_ALU | BPF_ADD | BPF_X)
    asm.op(BPF_MISC | BPF_TAX)
    asm.op(ld_ind_h, 2)
    asm.op(BPF_JMP | BPF_JEQ | BPF_K, 0, "accept", "drop")
    asm.label("inner6")
    asm.op(ld_ind_b, 6)
    asm.op(BPF_JMP | BPF_JEQ | BPF_K, 47, 0, "drop")
    asm.op(ld_ind_h, 42)
    asm.op(BPF_JMP | BPF_JEQ | BPF_K, 0, "accept", "drop")
    asm.label("drop")
    asm.op(BPF_RET | BPF_K, 0)
    asm.label("accept")
    asm.op(BPF_RET | BPF_K, SOCKET_FILTER_ACCEPT)


def gre_socket_filter(
    family: int, endpoints: list[tuple[str, str]], kind: str = "both"
) -> list[BpfInsn]:
    """Classic BPF for SO_ATTACH_FILTER on a raw GRE socket of IP version `family` (4 or 6).

    It passes only GRE from one of `endpoints` — (local, remote) pairs: outer source
    `remote`, outer destination `local` — that can be a keepalive: a request (GRE carrying
    IPv4 or IPv6 whose protocol is GRE with protocol type 0, also behind Cisco MetaData or
    with Huawei's type 4) or a bare reply (protocol type 0); version 0, no R bit; IPv4
    fragments never pass.
    `kind` "requests" or "replies" passes only those (two sockets, so that a flood of one
    cannot crowd the other out of its receive buffer). The decoder still judges what
    passes: this only keeps tunnel data and strangers out of user space. ValueError when
    the program would exceed the kernel's 4096 instructions.
    """
    if kind not in ("both", "requests", "replies"):
        raise ValueError(f"kind {kind!r}")
    asm = _Asm()
    # The socket gets IPv4 (or IPv6) GRE only: the kernel has checked version and protocol.
    if family == 4:
        source, destination = 12, 16
    elif family == 6:
        source, destination = SKF_NET_OFF + 8, SKF_NET_OFF + 24
    else:
        raise ValueError(f"IP version {family}")
    for index, (local, remote) in enumerate(sorted(set(endpoints))):
        words = [(source + 4 * i, w) for i, w in enumerate(_address_words(remote))]
        words += [(destination + 4 * i, w) for i, w in enumerate(_address_words(local))]
        if len(words) != (2 if family == 4 else 8):
            raise ValueError(f"{local} → {remote} is not an IPv{family} tunnel")
        following = f"pair{index + 1}"
        for offset, word in words:
            asm.op(BPF_LD | BPF_W | BPF_ABS, offset)
            asm.op(BPF_JMP | BPF_JEQ | BPF_K, word, 0, following)
        asm.op(BPF_JMP | BPF_JA, "gre")
        asm.label(following)
    asm.op(BPF_RET | BPF_K, 0)  # from no configured peer
    asm.label("gre")
    if family == 4:
        asm.op(BPF_LD | BPF_H | BPF_ABS, 6)
        asm.op(BPF_JMP | BPF_JSET | BPF_K, 0x3FFF, "drop", 0)  # MF or a fragment offset
        asm.op(BPF_LDX | BPF_B | BPF_MSH, 0)  # X = IPv4 header length
    else:
        asm.op(BPF_LDX | BPF_IMM, 0)  # the GRE header is at offset 0
    _gre_keepalive_tail(asm, kind)
    program = asm.assemble()
    if len(program) > MAX_SOCKET_FILTER_INSNS:
        raise ValueError(
            f"a socket filter for {len(endpoints)} tunnels needs {len(program)} BPF "
            f"instructions (the kernel takes {MAX_SOCKET_FILTER_INSNS})"
        )
    return program


BPF_SUB: Final = 0x10
BPF_JGT: Final = 0x20


def ident_window_prefix(family: int, lo: int, span: int, *, inside: bool) -> list[BpfInsn]:
    """Instructions to put in front of a ``gre_socket_filter(family, …, "replies")`` program:
    they drop a bare reply whose identifier is outside (`inside` True) or inside (False) the
    circular window lo … lo + span.

    The identifier is the IPv4 header's IP ID (mod 2**16) or the IPv6 flow label (mod
    2**20, read through ``SKF_NET_OFF``: an IPv6 raw socket's filter starts at the GRE
    header). A negative `span` is an empty window. Every jump is relative, so the block
    goes in front of any program unchanged.
    """
    drop = (BPF_RET | BPF_K, 0, 0, 0)
    if span < 0:
        return [drop] if inside else []
    if family == 4:
        load, mask = [(BPF_LD | BPF_H | BPF_ABS, 0, 0, 4)], 0xFFFF
    elif family == 6:
        load = [
            (BPF_LD | BPF_W | BPF_ABS, 0, 0, SKF_NET_OFF & 0xFFFFFFFF),
            (BPF_ALU | BPF_AND | BPF_K, 0, 0, 0xFFFFF),
        ]
        mask = 0xFFFFF
    else:
        raise ValueError(f"IP version {family}")
    outside_jump = (0, 1) if inside else (1, 0)  # (jt, jf) of "beyond the window?"
    return [
        *load,
        (BPF_ALU | BPF_SUB | BPF_K, 0, 0, lo & mask),
        (BPF_ALU | BPF_AND | BPF_K, 0, 0, mask),  # distance from lo, modulo the ID space
        (BPF_JMP | BPF_JGT | BPF_K, *outside_jump, span & mask),
        drop,
    ]
