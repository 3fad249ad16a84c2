"""Raw sockets of the probe (Linux).

* Sending: ``socket(AF_INET, SOCK_RAW, IPPROTO_RAW)`` with ``IP_HDRINCL`` takes a whole IPv4
  packet (the kernel fills in the header checksum, and the ID only when it is 0);
  ``socket(AF_INET6, SOCK_RAW, IPPROTO_RAW)`` takes a whole IPv6 packet (Linux ≥ 4.5 implies
  ``IPV6_HDRINCL`` for that protocol).
* Receiving: ``socket(AF_INET, SOCK_RAW, IPPROTO_GRE)`` gets every GRE packet addressed to
  this host *including* its IPv4 header. An IPv6 raw socket gets only what follows the
  header chain, so the probe asks for the destination address and hop limit as ancillary
  data and puts a plain IPv6 header back in front (with the traffic class and flow label,
  asked for with ``IPV6_FLOWINFO``; extension headers are not recovered — the keepalive
  rules use none of them).

Both need CAP_NET_RAW.

Each family has three receive sockets (the kernel gives every raw socket its own copy),
each with a classic-BPF socket filter (``SO_ATTACH_FILTER``,
:func:`analyzer.read.bpf.gre_socket_filter`), all passing only GRE from configured peers:
the peers' keepalive requests; the bare PT-0 replies whose identifier (IPv4 IP ID, IPv6
flow label) lies in the window of this host's outstanding requests — its returns, read
first, the filter swapped before each send (:func:`analyzer.read.bpf.ident_window_prefix`);
and every other bare reply. Tunnel data and strangers' GRE never reach the process, and a
flood of forged requests or replies (spoofed from a peer's address, which no filter can
tell from the peer's own) fills only its own socket's buffer: the returns still arrive.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import socket
import struct
from dataclasses import dataclass, field
from typing import NamedTuple

from analyzer.read.bpf import BPF_K, BPF_RET, gre_socket_filter, ident_window_prefix
from analyzer.read.packet import IPPROTO_GRE, build_ip

RECEIVE_BUFFER = 4 << 20
SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
MAX_PACKET = 65535
CAPABILITY_HINT = (
    "probe needs the CAP_NET_RAW capability for its raw sockets: run it as root "
    "(sudo gre-keepalive probe …) or grant it to the interpreter once with "
    "`sudo setcap cap_net_raw=eip $(realpath $(command -v python3))`"
)

_IN6_PKTINFO = struct.Struct("16sI")
IPV6_FLOWINFO = getattr(socket, "IPV6_FLOWINFO", 11)  # linux/in6.h: receive the flow info
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # asm-generic/socket.h
_TIMESPEC = struct.Struct("@ll")  # struct timespec: seconds, nanoseconds (native longs)
_STAMP_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)


class Received(NamedTuple):
    """One packet from a receive socket."""

    packet: bytes  # the whole IP packet
    stamp: float | None  # when the kernel received it (host clock, seconds); None if not told


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


Window = tuple[int, int]  # (lo, span): identifiers lo … lo + span, circular


@dataclass(slots=True)
class RawSockets:
    """The send and receive sockets of the address families in use.

    Three receive sockets per family, each with its own kernel filter and buffer: the
    peers' keepalive requests (`receive4`), the returns of this host's outstanding
    keepalives (`returns4`: bare replies whose IP ID / IPv6 flow label lies in the window
    of identifiers still awaited, :meth:`set_windows`), and every other bare reply
    (`replies4`: forged or stale returns, counted as unmatched). A flood of any one kind
    fills only its own buffer.
    """

    send4: socket.socket | None = None
    receive4: socket.socket | None = None  # the peers' keepalive requests
    send6: socket.socket | None = None
    receive6: socket.socket | None = None
    replies4: socket.socket | None = None  # bare PT-0 replies outside the window
    replies6: socket.socket | None = None
    returns4: socket.socket | None = None  # bare PT-0 replies inside the window
    returns6: socket.socket | None = None
    # None: no window (--accept-any-return: every reply is a return); else per family,
    # a window or None when nothing is awaited
    windows: dict[int, Window | None] | None = field(default_factory=dict)
    _replies_programs: dict[int, bytes] = field(default_factory=dict)
    _attached_windows: dict[int, object] = field(default_factory=dict)

    @classmethod
    def open(cls, families: set[int]) -> RawSockets:
        """Open them; PermissionError without CAP_NET_RAW, OSError otherwise."""
        sockets = cls()
        try:
            if 4 in families:
                sockets.send4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
                sockets.send4.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
                for name in ("receive4", "replies4", "returns4"):
                    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_GRE)
                    setattr(sockets, name, sock)
                    _prepare_receive(sock)
            if 6 in families:
                sockets.send6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
                for name in ("receive6", "replies6", "returns6"):
                    sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_GRE)
                    setattr(sockets, name, sock)
                    _prepare_receive(sock)
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
                    # the flow label pairs an IPv6 return with its request (no IP ID)
                    sock.setsockopt(socket.IPPROTO_IPV6, IPV6_FLOWINFO, 1)
        except OSError:
            sockets.close()
            raise
        return sockets

    def ensure(self, families: set[int]) -> None:
        """Open the sockets of families not open yet (a reload added such a tunnel)."""
        missing = {f for f in families if (self.send4 if f == 4 else self.send6) is None}
        if missing:
            opened = RawSockets.open(missing)
            for name in _SOCKETS:
                if getattr(self, name) is None:
                    setattr(self, name, getattr(opened, name))

    def _receive_socket(self, family: int, kind: str) -> socket.socket | None:
        found: socket.socket | None = getattr(self, f"{kind}{family}")
        return found

    def attach_filters(self, endpoints: list[tuple[str, str]]) -> None:
        """Let only keepalives between these (local, remote) pairs reach the receive sockets.

        Replaces any filter attached before (the kernel swaps it atomically); a family
        with no endpoint gets a filter that passes nothing. OSError if the kernel refuses.
        """
        for family in (4, 6):
            requests = self._receive_socket(family, "receive")
            if requests is None:
                continue
            ours = [(loc, rem) for loc, rem in endpoints if (":" in loc) == (family == 6)]
            _replace_filter(requests, _pack(gre_socket_filter(family, ours, "requests")))
            self._replies_programs[family] = _pack(gre_socket_filter(family, ours, "replies"))
            self._attached_windows.pop(family, None)
            self._apply_window(family)

    def set_windows(
        self, windows: dict[int, Window | None] | None, headroom: dict[int, int] | None = None
    ) -> None:
        """The identifiers of the returns still awaited, per family (None: no window, every
        bare reply goes to the returns socket).

        A filter holds the window plus `headroom` identifiers still to be handed out (about
        a second's worth), and is swapped only when a new identifier falls outside it or it
        has grown more than twice the headroom too wide: a busy probe recompiles it about
        once a second, not at every keepalive.
        """
        self.windows = windows
        for family in (4, 6):
            self._apply_window(family, (headroom or {}).get(family, 0))

    def _apply_window(self, family: int, headroom: int = 0) -> None:
        returns = self._receive_socket(family, "returns")
        others = self._receive_socket(family, "replies")
        base = self._replies_programs.get(family)
        if returns is None or others is None or base is None:
            return
        attached = self._attached_windows.get(family, "unset")
        nothing = _pack([(BPF_RET | BPF_K, 0, 0, 0)])
        wanted: object
        if self.windows is None:
            wanted, inside, outside = "all", base, nothing
        else:
            window = self.windows.get(family)
            modulus = 1 << (16 if family == 4 else 20)
            if window is None:
                if isinstance(attached, tuple):
                    return  # nothing awaited: a stale window lets nothing harmful in
                wanted, inside, outside = None, nothing, base
            else:
                chosen = window_to_attach(
                    attached if isinstance(attached, tuple) else None, window, headroom, modulus
                )
                if chosen is None:
                    return
                wanted = chosen
                inside = _pack(ident_window_prefix(family, *wanted, inside=True)) + base
                outside = _pack(ident_window_prefix(family, *wanted, inside=False)) + base
        if attached == wanted:
            return
        # the returns' filter first: an identifier entering the window is never in neither
        _replace_filter(returns, inside)
        _replace_filter(others, outside)
        self._attached_windows[family] = wanted

    def receive_buffer(self) -> int:
        """The receive buffer the kernel granted (bytes, of the first receive socket)."""
        for sock in self.receivers:
            return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
        return 0

    @property
    def receivers(self) -> list[socket.socket]:
        """The sockets to wait on, in the order to read them: returns, other replies, requests."""
        everything = (
            self.returns4,
            self.returns6,
            self.replies4,
            self.replies6,
            self.receive4,
            self.receive6,
        )
        return [s for s in everything if s is not None]

    def send(self, packet: bytes, destination: str) -> None:
        """Send a whole IP packet; OSError when the kernel refuses it."""
        if ":" in destination:
            assert self.send6 is not None
            self.send6.sendto(packet, (destination, 0, 0, 0))
        else:
            assert self.send4 is not None
            self.send4.sendto(packet, (destination, 0))

    def receive(self, sock: socket.socket) -> Received | None:
        """One whole IP packet from a receive socket and its kernel receive time; None when
        none is waiting."""
        try:
            if sock.family == socket.AF_INET:
                data, ancillary, _flags, _address = sock.recvmsg(MAX_PACKET, _STAMP_SPACE)
                return Received(data, _stamp(ancillary))
            data, ancillary, _flags, address = sock.recvmsg(
                MAX_PACKET,
                socket.CMSG_SPACE(_IN6_PKTINFO.size) + 2 * socket.CMSG_SPACE(4) + _STAMP_SPACE,
            )
        except (BlockingIOError, InterruptedError):
            return None
        destination: str | None = None
        hop_limit = 64
        flowinfo = 0  # traffic class and flow label, as in the header's first word
        for level, kind, value in ancillary:
            if level != socket.IPPROTO_IPV6:
                continue
            if kind == socket.IPV6_PKTINFO and len(value) >= _IN6_PKTINFO.size:
                raw, _ifindex = _IN6_PKTINFO.unpack_from(value)
                destination = socket.inet_ntop(socket.AF_INET6, raw)
            elif kind == socket.IPV6_HOPLIMIT and len(value) >= 4:
                hop_limit = struct.unpack("=i", value[:4])[0]
            elif kind == IPV6_FLOWINFO and len(value) >= 4:
                flowinfo = struct.unpack("!I", value[:4])[0] & 0x0FFFFFFF
        if destination is None:
            return None
        source = str(address[0]).split("%", 1)[0]
        packet = build_ip(source, destination, data, protocol=IPPROTO_GRE, ttl=hop_limit & 0xFF)
        return Received(struct.pack("!I", 0x60000000 | flowinfo) + packet[4:], _stamp(ancillary))

    def close(self) -> None:
        """Close every socket."""
        everything = (self.send4, self.send6, *self.receivers)
        for sock in everything:
            if sock is not None:
                sock.close()


_SOCKETS = (
    "send4",
    "receive4",
    "replies4",
    "returns4",
    "send6",
    "receive6",
    "replies6",
    "returns6",
)


def _pack(program: list[tuple[int, int, int, int]]) -> bytes:
    return b"".join(struct.pack("=HBBI", *insn) for insn in program)


def _attach_packed(sock: socket.socket, raw: bytes) -> None:
    buffer = ctypes.create_string_buffer(raw, len(raw))
    fprog = _SockFprog(len(raw) // 8, ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(fprog))


def window_to_attach(
    attached: Window | None, needed: Window, headroom: int, modulus: int
) -> Window | None:
    """The window to attach for `needed` (lo, span), or None to keep `attached`: kept while
    it covers `needed` and is not more than twice `headroom` wider; else `needed` widened
    by `headroom` identifiers to come (all circular, modulo `modulus`)."""
    lo, span = needed
    if attached is not None:
        old_lo, old_span = attached
        covered = (lo - old_lo) % modulus + span <= old_span
        if covered and old_span <= span + 2 * headroom:
            return None
    return lo, min(span + headroom, modulus - 1)


_ACCEPT_ALL = struct.pack("=HBBI", BPF_RET | BPF_K, 0, 0, 0x40000)


def _replace_filter(sock: socket.socket, raw: bytes) -> None:
    """Swap a socket's filter for `raw`. The kernel charges the new program before it frees
    the old one, and a few thousand instructions cost more than half of
    net.core.optmem_max (ENOMEM with about 200 IPv4 tunnels): then the socket passes
    everything for a moment (the decoder still judges every packet) while the old program
    is dropped, and the new one follows."""
    try:
        _attach_packed(sock, raw)
    except OSError as exc:
        if exc.errno != errno.ENOMEM:
            raise
        _attach_packed(sock, _ACCEPT_ALL)
        _attach_packed(sock, raw)


def _stamp(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(value)
            return float(seconds + nanoseconds / 1e9)
    return None


def _prepare_receive(sock: socket.socket) -> None:
    sock.setblocking(False)
    # the kernel's receive time: the rate limits count arrivals, not when the probe got to
    # read them (a probe that was not scheduled for a second must not see a burst)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    # SO_RCVBUFFORCE passes net.core.rmem_max (root / CAP_NET_ADMIN); SO_RCVBUF is capped
    # by it. A smaller buffer still works.
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
    except OSError:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)


def attach_filter(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    """Attach a classic BPF program (struct sock_filter tuples) with SO_ATTACH_FILTER."""
    _attach_packed(sock, _pack(program))


def is_local_address(address: str) -> bool:
    """Whether `address` is assigned to this host (in this network namespace)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((address, 0))
        except OSError:
            return False
    return True
