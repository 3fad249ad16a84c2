"""Streaming pairing of keepalive replies with their requests, per tunnel and originator.

Shared by the offline analysis and the live sources (watch, probe): feed decoded
requests and replies in capture order; each comes back as a typed record telling which
tunnel and originator it belongs to and, for a reply, which request it returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # analyzer.read.packet loads dpkt: only where a frame is decoded in Python
    from analyzer.read.packet import Decoded, InnerHeader

TunnelId = tuple[tuple[str, str], int | None]  # (sorted outer endpoints, outer GRE key)

# A reply later than this after its request is not its reply (IP IDs get reused).
MAX_RTT = 30.0
# The same keepalive seen twice this close together is one packet captured twice.
DUPLICATE_WINDOW = 0.5
PRUNE_EVERY = 4096  # requests between two passes over the pending ones
MAX_SHAPES = 65536  # request shapes remembered (a few per originator, unless hostile)


def tunnel_id(a: str, b: str, key: int | None) -> TunnelId:
    """The identity of a tunnel: its outer endpoints (sorted) and its GRE key."""
    first, second = sorted((a, b))
    return (first, second), key


@dataclass(slots=True, eq=False)
class RequestShape:
    """What the requests of one originator that look alike share: everything but their
    time, frame and inner IP ID (one per originator, nearly always)."""

    tunnel: TunnelId
    log: OriginatorLog
    src: str  # outer source: the originator
    dst: str  # outer destination: the peer
    key: int | None  # outer GRE key
    ip_version: int  # outer
    payload_length: int
    inner_src: str
    inner_dst: str
    inner_version: int
    inner_ttl: int
    inner_key: int | None
    metadata: bool
    sgt: int | None
    owner: tuple[str, str, int | None]  # (inner src, inner dst, inner key)
    # (inner src, inner dst) when they are not the outer destination and source, else None
    inner_addresses: tuple[str, str] | None
    noted: bool = False  # its variants are in its log's


@dataclass(slots=True)
class Request:
    """A keepalive request as captured."""

    frame: int
    time: float
    shape: RequestShape
    ident: int | None  # inner IP ID (None: IPv6 inside)
    reply: Reply | None = None

    @property
    def tunnel(self) -> TunnelId:
        """The tunnel it belongs to."""
        return self.shape.tunnel

    @property
    def originator(self) -> str:
        """Its outer source."""
        return self.shape.src

    @property
    def peer(self) -> str:
        """Its outer destination."""
        return self.shape.dst

    @property
    def key(self) -> int | None:
        """Its outer GRE key."""
        return self.shape.key

    @property
    def payload_length(self) -> int:
        """The bytes after its inner GRE header."""
        return self.shape.payload_length

    @property
    def inner(self) -> InnerHeader:
        """Its inner IP and GRE header."""
        from analyzer.read.packet import InnerHeader

        shape = self.shape
        return InnerHeader(
            shape.inner_src,
            shape.inner_dst,
            shape.inner_version,
            self.ident,
            shape.inner_ttl,
            shape.inner_key,
            shape.metadata,
            shape.sgt,
        )


@dataclass(slots=True)
class Reply:
    """A returned keepalive (bare GRE PT 0) as captured."""

    frame: int
    time: float
    src: str
    dst: str
    key: int | None
    ip_id: int | None
    ttl: int
    payload_length: int
    tunnel: TunnelId
    originator: str  # the endpoint this reply returns to
    request: Request | None = None

    @property
    def rtt(self) -> float | None:
        """Seconds from the request to this reply, when paired."""
        return None if self.request is None else self.time - self.request.time


@dataclass(slots=True)
class OriginatorLog:
    """Everything seen of one keepalive-originating endpoint of one tunnel."""

    tunnel: TunnelId
    address: str
    peer: str
    requests: list[Request] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)
    duplicates: int = 0
    # Most originators show no variant: one shared empty frozenset (a set is 216 bytes).
    variants: frozenset[str] = frozenset()
    inner_addresses: tuple[str, str] | None = None  # (src, dst) when not mirroring the outer


class Pairer:
    """Pairs replies with requests as frames stream by (in capture order)."""

    def __init__(self, *, keep_history: bool = True) -> None:
        self.keep_history = keep_history  # False: live sources keep no per-packet lists
        self.originators: dict[tuple[TunnelId, str], OriginatorLog] = {}
        # (inner src, inner dst, inner IP ID) → requests waiting for their reply (IPv4)
        self._pending: dict[tuple[str, str, int | None], list[Request]] = {}
        # (inner src, inner dst) → requests waiting for their reply (IPv6: paired by order)
        self._pending6: dict[tuple[str, str], list[Request]] = {}
        self._answered: dict[tuple[str, str, int | None], Request] = {}
        # What was put in _answered, by the whole second of the request's time (for _prune)
        self._answered_by_second: dict[int, list[tuple[tuple[str, str, int | None], Request]]]
        self._answered_by_second = {}
        # (inner src, inner dst, inner key) → the originator whose requests carry that header
        self._inner_owner: dict[tuple[str, str, int | None], OriginatorLog] = {}
        # (src, dst, key) → its tunnel: one shared identity per tunnel, not one per packet
        self._tunnels: dict[tuple[str, str, int | None], TunnelId] = {}
        # The fields of a request but its IP ID → its shape (add_request)
        self._shapes: dict[tuple[object, ...], RequestShape] = {}
        self._since_prune = 0

    def _tunnel(self, src: str, dst: str, key: int | None) -> TunnelId:
        found = self._tunnels.get((src, dst, key))
        if found is None:
            found = self._tunnels[(src, dst, key)] = tunnel_id(src, dst, key)
        return found

    def originator(self, tunnel: TunnelId, address: str, peer: str) -> OriginatorLog:
        """The log of `address` in `tunnel`, created on first use."""
        found = self.originators.get((tunnel, address))
        if found is None:
            found = self.originators[(tunnel, address)] = OriginatorLog(tunnel, address, peer)
        return found

    def request(self, frame: int, time: float, decoded: Decoded) -> Request | None:
        """Record a request; None when it duplicates one just seen."""
        inner = decoded.inner
        if inner is None:
            raise ValueError("request() needs a decoded keepalive request")
        return self.add_request(
            frame,
            time,
            decoded.src,
            decoded.dst,
            decoded.key,
            decoded.ip_version,
            inner,
            decoded.payload_length,
        )

    def add_request(
        self,
        frame: int,
        time: float,
        src: str,
        dst: str,
        key: int | None,
        ip_version: int,
        inner: InnerHeader,
        payload_length: int,
    ) -> Request | None:
        """:meth:`request` for a request given by its fields (outer source, destination,
        GRE key and IP version; the inner header; the bytes after the inner GRE header)."""
        fields = (
            src,
            dst,
            key,
            ip_version,
            payload_length,
            inner.src,
            inner.dst,
            inner.ip_version,
            inner.ttl,
            inner.key,
            inner.metadata,
            inner.sgt,
        )
        shape = self._shapes.get(fields)
        if shape is None:
            if len(self._shapes) >= MAX_SHAPES:
                self._shapes.clear()
            shape = self._shapes[fields] = self.request_shape(*fields)
        return self.add_shaped_request(frame, time, inner.ip_id, shape)

    def request_shape(
        self,
        src: str,
        dst: str,
        key: int | None,
        ip_version: int,
        payload_length: int,
        inner_src: str,
        inner_dst: str,
        inner_version: int,
        inner_ttl: int,
        inner_key: int | None,
        metadata: bool,
        sgt: int | None,
    ) -> RequestShape:
        """The shape of requests with these fields (their originator's log made if new),
        for :meth:`add_shaped_request`."""
        tunnel = self._tunnel(src, dst, key)
        log = self.originators.get((tunnel, src))
        if log is None:
            log = self.originator(tunnel, src, dst)
        return RequestShape(
            tunnel,
            log,
            src,
            dst,
            key,
            ip_version,
            payload_length,
            inner_src,
            inner_dst,
            inner_version,
            inner_ttl,
            inner_key,
            metadata,
            sgt,
            (inner_src, inner_dst, inner_key),
            None if (inner_src, inner_dst) == (dst, src) else (inner_src, inner_dst),
        )

    def add_shaped_request(
        self, frame: int, time: float, ident: int | None, shape: RequestShape
    ) -> Request | None:
        """:meth:`add_request` for a request of a known shape with inner IP ID `ident`
        (None for IPv6 inside); None when it duplicates one just seen."""
        log = shape.log
        request = Request(frame, time, shape, ident)
        if shape.inner_version == 4:
            key = shape.key
            pending = (shape.inner_src, shape.inner_dst, ident)
            found = self._pending.get(pending)
            if found and any(
                r.shape.key == key and time - r.time <= DUPLICATE_WINDOW for r in found
            ):
                log.duplicates += 1
                return None
            # The same packet seen again after its reply (overlapping files, two vantages).
            answered = self._answered.get(pending)
            if (
                answered is not None
                and answered.shape.key == key
                and abs(time - answered.time) <= DUPLICATE_WINDOW
            ):
                log.duplicates += 1
                return None
            if found is None:
                self._pending[pending] = [request]
            else:
                found.append(request)
        else:
            waiting = self._pending6.setdefault((shape.inner_src, shape.inner_dst), [])
            waiting.append(request)
        if self.keep_history:
            log.requests.append(request)
        self._inner_owner[shape.owner] = log
        if not shape.noted:
            _note_variants(log, shape)
            shape.noted = True
        elif shape.inner_addresses is not None:
            log.inner_addresses = shape.inner_addresses  # the latest request's
        self._since_prune += 1
        if self._since_prune >= PRUNE_EVERY:
            self._prune(time)
        return request

    def reply(self, frame: int, time: float, decoded: Decoded) -> Reply | None:
        """Record a reply and pair it; None when it duplicates one just seen."""
        return self.add_reply(
            frame,
            time,
            decoded.src,
            decoded.dst,
            decoded.key,
            decoded.ip_id,
            decoded.ttl,
            decoded.payload_length,
        )

    def add_reply(
        self,
        frame: int,
        time: float,
        src: str,
        dst: str,
        key: int | None,
        ip_id: int | None,
        ttl: int,
        payload_length: int,
    ) -> Reply | None:
        """:meth:`reply` for a reply given by its fields (outer IP and GRE header, the bytes
        after the GRE header)."""
        return self.add_tunnel_reply(
            frame, time, src, dst, key, ip_id, ttl, payload_length, self._tunnel(src, dst, key)
        )

    def add_tunnel_reply(
        self,
        frame: int,
        time: float,
        src: str,
        dst: str,
        key: int | None,
        ip_id: int | None,
        ttl: int,
        payload_length: int,
        tunnel: TunnelId,
    ) -> Reply | None:
        """:meth:`add_reply` with the tunnel already known (:meth:`tunnel_of`)."""
        reply = Reply(frame, time, src, dst, key, ip_id, ttl, payload_length, tunnel, dst)
        ident = (src, dst, ip_id)
        waiting = self._pending.get(ident) if ip_id is not None else None
        if waiting is not None and len(waiting) == 1 and 0 <= time - waiting[0].time <= MAX_RTT:
            # The usual case, what _match finds, without building its lists
            request: Request | None = waiting[0]
            del self._pending[ident]
        else:
            request = self._match(reply)
        if request is None:
            earlier = self._answered.get(ident)
            if (
                earlier is not None
                and earlier.reply is not None
                and time - earlier.reply.time <= DUPLICATE_WINDOW
            ):
                earlier.shape.log.duplicates += 1
                return None
            owner = self._inner_owner.get((src, dst, key))
            log = owner or self.originator(tunnel, dst, src)
            reply.tunnel, reply.originator = log.tunnel, log.address
            if self.keep_history:
                log.replies.append(reply)
            return reply
        request.reply = reply
        reply.request = request
        shape = request.shape
        reply.tunnel, reply.originator = shape.tunnel, shape.src
        log = shape.log
        if self.keep_history:
            log.replies.append(reply)
        if shape.key != key:
            log.variants |= {"reply-key-differs"}
        if ip_id is not None:
            self._answered[ident] = request
            if request.time - request.time == 0.0:  # finite (pruned by a pass otherwise)
                second = math.floor(request.time)
                found = self._answered_by_second.get(second)
                if found is None:
                    self._answered_by_second[second] = [(ident, request)]
                else:
                    found.append((ident, request))
        return reply

    def tunnel_of(self, src: str, dst: str, key: int | None) -> TunnelId:
        """The tunnel of packets from `src` to `dst` with GRE key `key` (one shared
        identity per tunnel)."""
        return self._tunnel(src, dst, key)

    def _match(self, reply: Reply) -> Request | None:
        """The request this reply returns: same inner addresses and IP ID, key preferred."""
        if reply.ip_id is not None:
            ident = (reply.src, reply.dst, reply.ip_id)
            waiting = self._pending.get(ident)
        else:
            waiting = self._pending6.get((reply.src, reply.dst))
        if not waiting:
            return None
        if len(waiting) == 1:  # the usual case: one request waits for this reply
            chosen = waiting[0]
            if not 0 <= reply.time - chosen.time <= MAX_RTT:
                return None
        else:
            candidates = [r for r in waiting if 0 <= reply.time - r.time <= MAX_RTT]
            if not candidates:
                return None
            same_key = [r for r in candidates if r.shape.inner_key == reply.key]
            chosen = (same_key or candidates)[-1]
        if reply.ip_id is None:
            # IPv6 has no ID: the newest outstanding request is the one answered; the
            # older ones were lost.
            waiting[:] = [r for r in waiting if r.time > chosen.time]
        else:
            waiting.remove(chosen)
            if not waiting:
                # Gone at once, not at the next prune: the pending requests stay a few per
                # tunnel instead of one key per request seen since the last prune.
                del self._pending[ident]
        return chosen

    def finish(self) -> None:
        """Nothing more will be paired (the capture was read to its end): forget what
        pairing needed while frames streamed by; the originators' logs stay."""
        self._pending.clear()
        self._pending6.clear()
        self._answered.clear()
        self._answered_by_second.clear()
        self._inner_owner.clear()
        self._tunnels.clear()
        self._shapes.clear()

    def _prune(self, now: float) -> None:
        """Forget requests too old to be answered, so memory follows tunnels, not time
        (every PRUNE_EVERY requests)."""
        self._since_prune = 0
        horizon = now - MAX_RTT
        for key4 in [k for k, v in self._pending.items() if all(r.time < horizon for r in v)]:
            del self._pending[key4]
        for key6 in [k for k, v in self._pending6.items() if all(r.time < horizon for r in v)]:
            del self._pending6[key6]
        answered, by_second = self._answered, self._answered_by_second
        if not math.isfinite(horizon):
            for key in [k for k, r in answered.items() if r.time < horizon]:
                del answered[key]
            return
        # Only the seconds that expire are looked at (at 5,000 tunnels, _answered holds the
        # last 30 seconds of answers, 34,000, and a pass over them all took 8 ms).
        limit = math.floor(horizon)
        for second in [s for s in by_second if s <= limit]:
            kept = []
            for key, request in by_second.pop(second):
                if second < limit or request.time < horizon:
                    if answered.get(key) is request:  # not answered again since
                        del answered[key]
                else:
                    kept.append((key, request))
            if kept:
                by_second[second] = kept


def _note_variants(log: OriginatorLog, shape: RequestShape) -> None:
    variants: set[str] = set()
    if shape.metadata:
        variants.add("cisco-metadata")
    if shape.inner_version == 6:
        variants.add("inner-ipv6")
    if shape.ip_version == 6:
        variants.add("outer-ipv6")
    if shape.payload_length:
        variants.add("payload")
    if shape.inner_key != shape.key:
        variants.add("inner-key-differs")
    if shape.inner_addresses is not None:
        variants.add("address-mismatch")
        log.inner_addresses = shape.inner_addresses
    if variants:
        log.variants |= variants
