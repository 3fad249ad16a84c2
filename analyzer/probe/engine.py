"""The probe's decisions, without sockets or clocks: what to send, what to reflect, what to drop.

:class:`ProbeEngine` builds this host's keepalive requests, judges every GRE packet the host
receives, and feeds everything it sends and accepts to one
:class:`~analyzer.keepalive.tracker.LiveTracker`
— the pairing and state machine the offline analysis uses — so the probe's timeline is the one
``gre-keepalive analyze`` computes from a capture of the same packets (``--write``).

Reflection rules (a router decapsulates a keepalive and routes the inner packet; the probe
does the same for configured tunnels only, so it never relays arbitrary packets):

* the outer source and destination are a configured tunnel's remote and local address, and
  the outer GRE key is that tunnel's key;
* the GRE payload is a keepalive: an IP packet carrying GRE with protocol type 0;
* the inner destination is the outer source (the keepalive goes back to the peer that sent
  it) and the inner source is the outer destination (it leaves from this host's own
  address) — so every packet the probe sends goes from a configured local address to a
  configured remote one;
* the inner packet passes the checks of :mod:`analyzer.probe.reflect` (TTL above 1, no IP
  options, not a fragment, checksums and lengths right, a small payload) and is rebuilt
  from those checked fields, TTL decremented;
* at most ``max_reflect_pps`` per tunnel (a token bucket holding one token).

A bare PT-0 packet counts as a return only when it matches an outstanding request of this
host on that tunnel (inner IP ID; IPv6, which has none: the inner flow label, 20 bits,
which the probe sets on its IPv6 keepalives and forwarding leaves alone, RFC 6437); others
are ``unmatched_returns`` and never reset the counter, unless
``accept_any_return`` (IOS's own behaviour). Returns are limited separately, to the same
rate or four per period if that is more, so spoofed ones cannot make the output or the
pcap grow at the sender's rate.

Everything else is dropped and counted by reason (:data:`DROP_REASONS`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from analyzer.config import KeepaliveConfig, TunnelConfig
from analyzer.keepalive.analysis import Resolved, Settings, resolve_settings
from analyzer.keepalive.state import LineState
from analyzer.keepalive.tracker import LiveEvent, LiveEventKind, LiveTracker, OriginatorState
from analyzer.probe.metrics import ProbeMetrics
from analyzer.probe.reflect import REFLECT_DROPS, rebuild_reflection
from analyzer.probe.tunnel import Tunnel, normalise
from analyzer.read.capture import LINKTYPE_RAW
from analyzer.read.packet import Decoded, FrameKind, build_keepalive_request, decode_frame

DROP_REASONS: tuple[str, ...] = (
    "unknown-peer",  # outer addresses are not those of a configured tunnel
    "key-mismatch",  # addresses match a tunnel, the outer GRE key does not
    "not-keepalive",  # GRE that is not a keepalive (tunnel data, other payloads)
    "not-addressed-back",  # keepalive whose inner destination is not the outer source
    "inner-source-not-local",  # keepalive whose inner source is not the outer destination
    "rate-limit",  # more than --max-reflect-pps requests (or returns) for this tunnel
    "reflect-disabled",  # a valid keepalive, but --no-reflect
    "malformed",  # undecodable GRE
    "unmatched-return",  # a bare PT-0 packet matching no outstanding request of ours
    *REFLECT_DROPS,  # the inner packet of a keepalive fails a forwarding check
)
DROP_SUMMARY_INTERVAL = 1.0  # seconds between "dropped" summary lines per (tunnel, reason)
OUTSTANDING = 64  # requests per tunnel a return can still match (64 periods of RTT)


@dataclass(frozen=True, slots=True)
class ProbeOptions:
    """How the probe builds and reflects keepalives."""

    reflect: bool = True
    max_reflect_pps: float = 10.0
    tos: int = 0
    ttl: int = 255
    accept_any_return: bool = False  # IOS: any bare PT-0 packet resets the counter


@dataclass(frozen=True, slots=True)
class Reflection:
    """A keepalive to reflect: the inner packet of a peer's request, TTL decremented."""

    tunnel: Tunnel
    packet: bytes
    ident: int | None
    ttl: int


class IpIds:
    """IPv4 identifications like IOS: one counter, the inner ID one less than the outer.

    Zero is never used (a raw socket with IP_HDRINCL lets the kernel replace an ID of 0,
    and the inner ID must reach the peer unchanged to pair its reflection).
    """

    def __init__(self, start: int) -> None:
        self._next = start & 0xFFFF
        self.last: int | None = None  # the latest inner ID handed out

    def pair(self) -> tuple[int, int]:
        """(inner, outer) for the next keepalive."""
        inner = self._next
        if inner in (0, 0xFFFF):
            inner = 1
        outer = inner + 1
        self._next = (outer + 1) & 0xFFFF
        self.last = inner
        return inner, outer


class FlowLabels:
    """IPv6 flow labels for the inner header of IPv6 keepalives: the IPv6 stand-in for the
    inner IP ID (which IPv6 lacks) to pair a return with its request. 20 bits, never 0."""

    def __init__(self, start: int) -> None:
        self._next = start & 0xFFFFF
        self.last: int | None = None  # the latest label handed out

    def next(self) -> int:
        """The label of the next IPv6 keepalive."""
        label = self._next or 1
        self._next = (label + 1) & 0xFFFFF
        self.last = label
        return label


def _gre_length(flags: int) -> int:
    return 4 + 4 * (bool(flags & 0x80) + bool(flags & 0x20) + bool(flags & 0x10))


def inner_flow_label(request: bytes) -> int:
    """The flow label of the inner IPv6 header of an IPv6 keepalive request (outer IPv6 with
    no extension headers, as the probe builds it)."""
    inner = 40 + _gre_length(request[40])
    return int.from_bytes(request[inner + 1 : inner + 4], "big") & 0xFFFFF


def _with_inner_flow_label(request: bytes, label: int) -> bytes:
    inner = 40 + _gre_length(request[40])
    word = int.from_bytes(request[inner : inner + 4], "big") & ~0xFFFFF | label
    return request[:inner] + word.to_bytes(4, "big") + request[inner + 4 :]


def flow_label(packet: bytes) -> int:
    """The flow label of an IPv6 packet."""
    return int.from_bytes(packet[1:4], "big") & 0xFFFFF


class TokenBucket:
    """`rate` tokens per second, holding at most one: no bursts."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._tokens = 1.0
        self._last: float | None = None

    def take(self, now: float) -> bool:
        """Spend a token at monotonic time `now` if one is there."""
        if self._last is not None and now > self._last:
            self._tokens = min(1.0, self._tokens + (now - self._last) * self.rate)
        if self._last is None or now > self._last:
            self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


@dataclass(slots=True)
class TunnelStats:
    """What the probe did on one tunnel."""

    ticks: int = 0  # period ticks (sends attempted)
    sent: int = 0
    returned: int = 0  # returns that matched an outstanding request
    unmatched_returns: int = 0
    reflected: int = 0
    send_errors: int = 0
    last_error: str | None = None
    dropped: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reconfigured:
    """What a reload changed: tunnels started, stopped, and kept (new object → old one)."""

    added: list[Tunnel]
    removed: list[Tunnel]
    kept: dict[Tunnel, Tunnel]


def _identity(tunnel: Tunnel) -> tuple[str, str, int | None, float | None, int]:
    return (tunnel.local, tunnel.remote, tunnel.key, tunnel.period, tunnel.retries)


def tracker_config(
    tunnels: Iterable[Tunnel], config: KeepaliveConfig | None = None
) -> KeepaliveConfig:
    """The configuration the tracker resolves periods with: this host's tunnels first (their
    period and retries are known exactly), then the file's entries (e.g. the peer router's)."""
    own = tuple(
        TunnelConfig(
            source=t.local,
            destination=t.remote,
            key=t.key,
            keepalive=t.originates,
            period=t.period,
            retries=t.retries if t.originates else None,
            name=t.name,
            origin=t.origin,
        )
        for t in tunnels
    )
    return KeepaliveConfig(
        path=config.path if config else "<probe>",
        format=config.format if config else "probe",
        default_period=config.default_period if config else None,
        default_retries=config.default_retries if config else None,
        tunnels=own + (config.tunnels if config else ()),
        warnings=(),
    )


Recorder = Callable[[float, bytes], None]
SCHEMA = "gre-keepalive.probe/1"  # in the "started" line: the jsonl contract (fields only added)


class ProbeEngine:
    """Sends, reflections, drops and the shared keepalive tracker of one probe process."""

    def __init__(
        self,
        tunnels: list[Tunnel],
        options: ProbeOptions,
        *,
        config: KeepaliveConfig | None = None,
        metrics: ProbeMetrics | None = None,
        record: Recorder | None = None,
        first_ip_id: int = 1,
    ) -> None:
        self.tunnels: list[Tunnel] = []
        self.options = options
        self.metrics = metrics
        self.record = record
        self.tracker = LiveTracker(Settings(config=tracker_config(tunnels, config)))
        self.ids = IpIds(first_ip_id)
        self.labels = FlowLabels(first_ip_id * 16 + 1)
        self.frames = 0
        self.stats: dict[Tunnel, TunnelStats] = {}
        self.unattributed: dict[str, int] = {}
        self._by_addresses: dict[tuple[str, str], list[Tunnel]] = {}
        self._own: dict[tuple[str, str, int | None], Tunnel] = {}
        self._peers: dict[tuple[str, str, int | None], Tunnel] = {}
        self._buckets: dict[Tunnel, TokenBucket] = {}
        self._return_buckets: dict[Tunnel, TokenBucket] = {}
        self._outstanding: dict[Tunnel, deque[int | None]] = {}
        self._finished: dict[Tunnel, OriginatorState | None] = {}
        self._assumed: dict[tuple[str, str, int | None], Resolved] = {}
        self._pending_drops: dict[tuple[Tunnel | None, str], int] = {}
        self._drops_flushed = 0.0
        self._drop_totals: dict[tuple[Tunnel | None, str], int] = {}
        self._index(tunnels)

    def _index(self, tunnels: list[Tunnel]) -> None:
        options = self.options
        self.tunnels = list(tunnels)
        self._by_addresses = {}
        for t in tunnels:
            self._by_addresses.setdefault((t.local, t.remote), []).append(t)
        self._own = {(t.local, t.remote, t.key): t for t in tunnels if t.originates}
        self._peers = {(t.remote, t.local, t.key): t for t in tunnels}
        for t in tunnels:
            self.stats.setdefault(t, TunnelStats())
            self._buckets.setdefault(t, TokenBucket(options.max_reflect_pps))
            # Unmatched returns let in by --accept-any-return are limited too (spoofed ones
            # would otherwise grow the output and the pcap at the sender's rate); a real
            # peer returns one per period, so the limit is --max-reflect-pps or four per
            # period, whichever is higher.
            rate = max(options.max_reflect_pps, 4.0 / t.period if t.period else 0.0)
            self._return_buckets.setdefault(t, TokenBucket(rate))
            self._outstanding.setdefault(t, deque(maxlen=OUTSTANDING))

    def reconfigure(self, tunnels: list[Tunnel], config: KeepaliveConfig | None) -> Reconfigured:
        """Run `tunnels` from now on (a reloaded configuration).

        A tunnel that is still there (same addresses, key, period and retries, whatever its
        name or line in the file now) keeps its state, counters and outstanding requests;
        one whose settings changed starts afresh.
        """
        old_by_identity = {_identity(t): t for t in self.tunnels}
        kept = {
            new: old_by_identity[_identity(new)]
            for new in tunnels
            if _identity(new) in old_by_identity
        }
        still = set(kept.values())
        removed = [t for t in self.tunnels if t not in still]
        for new, old in kept.items():
            self.stats[new] = self.stats.pop(old)
            self._buckets[new] = self._buckets.pop(old)
            self._return_buckets[new] = self._return_buckets.pop(old)
            self._outstanding[new] = self._outstanding.pop(old)
            if old in self._finished:
                self._finished[new] = self._finished.pop(old)
        for tunnel in removed:
            self._buckets.pop(tunnel, None)
            self._return_buckets.pop(tunnel, None)
            self._outstanding.pop(tunnel, None)
            self.stats.pop(tunnel, None)
            self._finished.pop(tunnel, None)
            if self.metrics:
                self.metrics.remove(tunnel)
            self.tracker.forget(tunnel.local, tunnel.remote, tunnel.key)
            # the tracker keeps the others' timelines with the settings they started with,
            # so their events keep reporting those; a forgotten one resolves afresh
            self._assumed.pop((tunnel.local, tunnel.remote, tunnel.key), None)
            self._assumed.pop((tunnel.remote, tunnel.local, tunnel.key), None)
        added = [t for t in tunnels if t not in kept]
        self.tracker.settings = Settings(config=tracker_config(tunnels, config))
        self._index(tunnels)
        if self.metrics:
            for tunnel in added:
                self.metrics.add(tunnel)
        return Reconfigured(added, removed, kept)

    # --- what happens ----------------------------------------------------------------

    def started(self, now: float, **extra: Any) -> dict[str, Any]:
        """The first line of the output."""
        return {
            "time": now,
            "event": "started",
            "schema": SCHEMA,
            "tunnels": [t.describe() for t in self.tunnels],
            "reflect": self.options.reflect,
            "max_reflect_pps": self.options.max_reflect_pps,
            "accept_any_return": self.options.accept_any_return,
            **extra,
        }

    def build_request(self, tunnel: Tunnel) -> bytes:
        """The next keepalive request of `tunnel` (SPEC.md §1), with fresh IP IDs."""
        inner_id, outer_id = self.ids.pair()
        request = build_keepalive_request(
            tunnel.local,
            tunnel.remote,
            key=tunnel.key,
            outer_id=outer_id,
            inner_id=inner_id,
            ttl=self.options.ttl,
            inner_ttl=255,
            tos=self.options.tos,
        )
        if tunnel.family == 6:
            request = _with_inner_flow_label(request, self.labels.next())
        return request

    def expect(self, tunnel: Tunnel, packet: bytes, decoded: Decoded | None = None) -> None:
        """Await the return of request `packet` (before it is sent, so that the kernel
        filter of :meth:`return_windows` lets its return in however fast it comes)."""
        if decoded is None:
            decoded = decode_frame(LINKTYPE_RAW, packet)
        if tunnel.family == 6:
            ident: int | None = inner_flow_label(packet)
        elif decoded.inner is not None:
            ident = decoded.inner.ip_id
        else:
            return
        waiting = self._outstanding[tunnel]
        if ident not in waiting:
            waiting.append(ident)

    def window_headroom(self) -> dict[int, int]:
        """Per IP version, about a second's worth of identifiers this host hands out (at
        least 16): how far ahead a return window may reach (see RawSockets.set_windows)."""
        rate = {4: 0.0, 6: 0.0}
        for tunnel in self.tunnels:
            if tunnel.period:
                rate[tunnel.family] += 1.0 / tunnel.period
        # IPv4 uses two IP IDs per keepalive (inner and outer), IPv6 one flow label
        return {4: max(16, math.ceil(2 * rate[4])), 6: max(16, math.ceil(rate[6]))}

    def return_windows(self) -> dict[int, tuple[int, int] | None] | None:
        """Per IP version, the circular window (lo, span) of identifiers (IPv4 inner IP ID,
        IPv6 inner flow label) covering every outstanding request, None when none is
        awaited; None altogether with --accept-any-return (every reply is a return).

        Identifiers come from one counter per version, so the window reaches from the
        oldest request still awaited to the newest: a few identifiers while the peers
        answer, up to 64 periods' worth of a tunnel that is down.
        """
        if self.options.accept_any_return:
            return None
        windows: dict[int, tuple[int, int] | None] = {}
        for family, newest, modulus in (
            (4, self.ids.last, 1 << 16),
            (6, self.labels.last, 1 << 20),
        ):
            # each queue holds its requests in the order they left: its first is its oldest
            waiting = [
                queue[0]
                for tunnel, queue in self._outstanding.items()
                if tunnel.family == family and queue and queue[0] is not None
            ]
            if newest is None or not waiting:
                windows[family] = None
                continue
            back = max((newest - ident) % modulus for ident in waiting)
            windows[family] = ((newest - back) % modulus, back)
        return windows

    def sent(self, tunnel: Tunnel, now: float, packet: bytes) -> list[dict[str, Any]]:
        """A request of ours left at `now`."""
        stats = self.stats[tunnel]
        stats.ticks += 1
        stats.sent += 1
        if self.metrics:
            self.metrics.sent(tunnel)
        decoded = decode_frame(LINKTYPE_RAW, packet)
        self.expect(tunnel, packet, decoded)
        return self._feed(now, packet, decoded)

    def _match(self, tunnel: Tunnel, ident: int | None) -> bool:
        """Whether a return pairs with an outstanding request of ours (which it consumes)."""
        waiting = self._outstanding.get(tunnel)
        if not waiting or ident not in waiting:
            return False
        waiting.remove(ident)
        return True

    def send_failed(
        self, tunnel: Tunnel, now: float, what: str, error: OSError
    ) -> list[dict[str, Any]]:
        """The kernel refused a request (`what` = "request") or a reflection.

        A failed request is not fed to the tracker (nothing left the host, and a capture
        would not show it either): the tracker extrapolates the tick, as analyze would.
        """
        stats = self.stats[tunnel]
        if what == "request":
            stats.ticks += 1
        stats.send_errors += 1
        message = error.strerror or str(error)
        stats.last_error = message
        if self.metrics:
            self.metrics.send_error(tunnel, what)
            if what == "request" and not stats.sent:
                self.metrics.set_state(tunnel, LineState.DOWN)
        return [
            {
                "time": now,
                "event": "send-error",
                "what": what,
                **_tunnel_fields(tunnel),
                "errno": error.errno,
                "error": message,
            }
        ]

    def received(
        self, now: float, monotonic: float, packet: bytes
    ) -> tuple[list[dict[str, Any]], Reflection | None]:
        """A GRE packet reached this host: events, and the reflection to send (if any)."""
        decoded = decode_frame(LINKTYPE_RAW, packet)
        if decoded.kind is FrameKind.MALFORMED or decoded.kind is FrameKind.OTHER:
            self._drop(None, "malformed")
            return [], None
        candidates = self._by_addresses.get((normalise(decoded.dst), normalise(decoded.src)))
        if not candidates:
            self._drop(None, "unknown-peer")
            return [], None
        tunnel = next((t for t in candidates if t.key == decoded.key), None)
        if tunnel is None:
            self._drop(candidates[0] if len(candidates) == 1 else None, "key-mismatch")
            return [], None
        if decoded.kind is FrameKind.DATA:
            self._drop(tunnel, "not-keepalive")
            return [], None
        if decoded.kind is FrameKind.REPLY:
            ident = flow_label(packet) if tunnel.family == 6 else decoded.ip_id
            matched = tunnel.originates and self._match(tunnel, ident)
            if not matched:
                self.stats[tunnel].unmatched_returns += 1
                if self.metrics:
                    self.metrics.unmatched_return(tunnel)
                if not self.options.accept_any_return:
                    self._drop(tunnel, "unmatched-return")
                    return [], None
            # a matched return consumed one of our own requests, so they come no faster
            # than we send: only the unmatched ones --accept-any-return lets in are limited
            if not matched and not self._return_buckets[tunnel].take(monotonic):
                self._drop(tunnel, "rate-limit")
                return [], None
            return self._feed(now, packet, decoded, matched=matched), None
        inner = decoded.inner
        assert inner is not None  # a REQUEST always has one
        if normalise(inner.dst) != tunnel.remote:
            self._drop(tunnel, "not-addressed-back")
            return [], None
        if normalise(inner.src) != tunnel.local:
            self._drop(tunnel, "inner-source-not-local")
            return [], None
        if not self.options.reflect:
            self._drop(tunnel, "reflect-disabled")
            return [], None
        rebuilt = rebuild_reflection(packet)
        if rebuilt.packet is None:
            self._drop(tunnel, rebuilt.reason or "malformed")
            return [], None
        if not self._buckets[tunnel].take(monotonic):
            self._drop(tunnel, "rate-limit")
            return [], None
        reflection = Reflection(tunnel, rebuilt.packet, inner.ip_id, rebuilt.ttl)
        return self._feed(now, packet, decoded), reflection

    def reflected(self, reflection: Reflection, now: float) -> list[dict[str, Any]]:
        """A reflection left at `now`."""
        tunnel = reflection.tunnel
        self.stats[tunnel].reflected += 1
        if self.metrics:
            self.metrics.reflected(tunnel)
        event = {
            "time": now,
            "event": "reflected",
            **_tunnel_fields(tunnel),
            "ident": reflection.ident,
            "ttl": reflection.ttl,
        }
        return [event, *self._feed(now, reflection.packet)]

    def advance(self, now: float) -> list[dict[str, Any]]:
        """Clock tick: overdue keepalive ticks (tracker) and due drop summaries."""
        events = self._convert(self.tracker.advance(now))
        if self._pending_drops and now - self._drops_flushed >= DROP_SUMMARY_INTERVAL:
            events.extend(self.flush_drops(now))
        return events

    def flush_drops(self, now: float) -> list[dict[str, Any]]:
        """One "dropped" line per (tunnel, reason) with drops since the last summary."""
        self._drops_flushed = now
        events = []
        for (tunnel, reason), count in self._pending_drops.items():
            fields = (
                _tunnel_fields(tunnel) if tunnel else {"local": None, "remote": None, "key": None}
            )
            events.append(
                {
                    "time": now,
                    "event": "dropped",
                    "reason": reason,
                    **fields,
                    "count": count,
                    "total": self._drop_totals[(tunnel, reason)],
                }
            )
        self._pending_drops.clear()
        return events

    def own_states(self, now: float) -> dict[Tunnel, OriginatorState | None]:
        """The tracker's view of every tunnel this host originates keepalives on."""
        found: dict[Tunnel, OriginatorState | None] = {t: None for t in self._own.values()}
        for state in self.tracker.snapshot(now):
            tunnel = self._own.get((normalise(state.address), normalise(state.peer), state.key))
            if tunnel is not None:
                found[tunnel] = state
        for tunnel, frozen in self._finished.items():
            if tunnel in found:
                found[tunnel] = frozen
        return found

    def own_tunnel(self, originator: str, peer: str, key: int | None) -> Tunnel | None:
        """The tunnel on which `originator` (this host) sends keepalives to `peer`, if any."""
        return self._own.get((normalise(originator), normalise(peer), key))

    def finish(self, tunnel: Tunnel, now: float) -> None:
        """Freeze `tunnel`'s state as it is at `now` (its --count is done): ticks the tracker
        extrapolates after its last keepalive are not its, nor reported."""
        if tunnel not in self._finished:
            self._finished[tunnel] = self.own_states(now).get(tunnel)

    def line_state(self, tunnel: Tunnel, state: OriginatorState | None) -> LineState:
        """The line protocol of an originating tunnel.

        The tracker's, once a keepalive of ours has left; before that, down when every
        attempt so far failed locally (no route, interface down: nothing can come back).
        """
        if state is not None:
            return state.line_state
        stats = self.stats[tunnel]
        return LineState.DOWN if stats.send_errors and not stats.sent else LineState.UP

    def summary(self, now: float) -> dict[str, Any]:
        """The last line of the output: every tunnel's state and counts."""
        states = self.own_states(now)
        rows = []
        for tunnel in self.tunnels:
            stats = self.stats[tunnel]
            row: dict[str, Any] = {
                **tunnel.describe(),
                "ticks": stats.ticks,
                "sent": stats.sent,
                "returned": stats.returned,
                "unmatched_returns": stats.unmatched_returns,
                "reflected": stats.reflected,
                "send_errors": stats.send_errors,
                "dropped": dict(stats.dropped),
            }
            if tunnel.originates:
                state = states.get(tunnel)
                row["line_state"] = self.line_state(tunnel, state).value
                row["counter"] = state.counter if state else 0
                row["downs"] = state.downs if state else 0
                row["down_seconds"] = round(state.down_seconds, 6) if state else 0.0
                if stats.last_error and not stats.sent:
                    row["note"] = f"no keepalive could be sent: {stats.last_error}"
            rows.append(row)
        return {
            "time": now,
            "event": "summary",
            "tunnels": rows,
            "dropped_unattributed": dict(self.unattributed),
        }

    # --- internals -------------------------------------------------------------------

    def _feed(
        self, now: float, packet: bytes, decoded: Decoded | None = None, *, matched: bool = True
    ) -> list[dict[str, Any]]:
        self.frames += 1
        if self.record is not None:
            self.record(now, packet)
        if decoded is None:
            decoded = decode_frame(LINKTYPE_RAW, packet)
        live = self.tracker.feed(now, self.frames, decoded)
        return self._convert(live, matched=matched)

    def assumed(self, originator: str, peer: str, key: int | None) -> Resolved:
        """The period and retries the tracker runs `originator`'s keepalives with."""
        ident = (originator, peer, key)
        found = self._assumed.get(ident)
        if found is None:
            found = resolve_settings(self.tracker.settings, originator, peer, key, None)
            self._assumed[ident] = found
        return found

    def _convert(self, live: list[LiveEvent], *, matched: bool = True) -> list[dict[str, Any]]:
        out = []
        for event in live:
            ident = (normalise(event.originator), normalise(event.peer), event.key)
            tunnel = self._own.get(ident)
            peer_of = self._peers.get(ident)
            if tunnel is None and peer_of is None:
                continue  # a tunnel removed by a reload
            if tunnel is not None:
                if tunnel in self._finished:
                    continue
                counted = matched or event.kind is not LiveEventKind.RETURNED
                if event.kind is LiveEventKind.RETURNED and matched:
                    self.stats[tunnel].returned += 1
                if self.metrics:
                    self.metrics.event(tunnel, event, count_return=counted)
            elif peer_of is not None and self.metrics:
                self.metrics.peer_event(peer_of, event, self.assumed(*ident).retries)
            row = event.to_json()
            assumed = self.assumed(*ident)
            row["retries"] = assumed.retries
            row["retries_source"] = assumed.retries_source.value
            out.append(row)
        return out

    def _drop(self, tunnel: Tunnel | None, reason: str) -> None:
        if tunnel is None:
            self.unattributed[reason] = self.unattributed.get(reason, 0) + 1
        else:
            dropped = self.stats[tunnel].dropped
            dropped[reason] = dropped.get(reason, 0) + 1
        key = (tunnel, reason)
        self._pending_drops[key] = self._pending_drops.get(key, 0) + 1
        self._drop_totals[key] = self._drop_totals.get(key, 0) + 1
        if self.metrics:
            self.metrics.dropped(tunnel, reason)


def _tunnel_fields(tunnel: Tunnel) -> dict[str, Any]:
    return {"local": tunnel.local, "remote": tunnel.remote, "key": tunnel.key}
