"""Live keepalive tracking: the analysis fed packet by packet and by the wall clock.

Live sources (``watch`` on an interface, the ``probe``) hand each decoded keepalive to
:class:`LiveTracker.feed` and call :meth:`LiveTracker.advance` on a timer, so an endpoint
whose keepalives stop coming back goes down on schedule even when no packet arrives.
Pairing (:mod:`analyzer.keepalive.pairing`) and the per-originator state machine
(:mod:`analyzer.keepalive.timeline`) are the ones the offline analysis uses.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from analyzer.keepalive.analysis import BURST_FRACTION, Settings, infer_period, resolve_settings
from analyzer.keepalive.model import KeepaliveEvent, KeepaliveRole, ValueSource
from analyzer.keepalive.pairing import Pairer, Reply, Request, TunnelId, tunnel_id
from analyzer.keepalive.state import LineState, Transition, down_seconds
from analyzer.keepalive.timeline import OriginatorTimeline
from analyzer.read.packet import Decoded, FrameKind

RECENT_SENDS = 16  # send times kept per originator to infer its period
MIN_SENDS_TO_INFER = 3  # two intervals before a live period is believed
MIN_INFERRED_PERIOD = 1.0


class LiveEventKind(StrEnum):
    """What a live event reports."""

    SENT = "sent"  # a request from the originator was seen
    RETURNED = "returned"  # a reply reached (or left towards) the originator
    EXTRAPOLATED = "extrapolated"  # a tick passed without the originator's request showing
    DOWN = "down"  # line protocol went down
    UP = "up"  # line protocol came up


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """One keepalive event or transition, as `watch --format jsonl` prints it."""

    time: float
    kind: LiveEventKind
    endpoints: tuple[str, str]
    key: int | None
    originator: str
    peer: str
    frame: int | None
    ident: int | None
    counter: int
    line_state: LineState
    rtt_ms: float | None = None
    reply_ttl: int | None = None

    def to_json(self) -> dict[str, Any]:
        """A flat JSON object."""
        return {
            "time": self.time,
            "event": self.kind.value,
            "endpoints": list(self.endpoints),
            "key": self.key,
            "originator": self.originator,
            "peer": self.peer,
            "frame": self.frame,
            "ident": self.ident,
            "counter": self.counter,
            "line_state": self.line_state.value,
            "rtt_ms": self.rtt_ms,
            "reply_ttl": self.reply_ttl,
        }


@dataclass(frozen=True, slots=True)
class OriginatorState:
    """A snapshot of one originator for display."""

    endpoints: tuple[str, str]
    key: int | None
    address: str
    peer: str
    line_state: LineState
    counter: int
    retries: int
    period: float
    period_source: ValueSource
    sent: int
    returned: int
    extrapolated: int
    last_rtt_ms: float | None
    downs: int
    down_seconds: float  # up to `now` of the snapshot
    last_event: float | None


@dataclass(slots=True)
class _Tracked:
    tunnel: TunnelId
    address: str
    peer: str
    timeline: OriginatorTimeline
    period_source: ValueSource
    period_fixed: bool  # from config or command line: never re-inferred
    send_times: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_SENDS))
    sent: int = 0
    returned: int = 0
    last_rtt_ms: float | None = None
    last_event: float | None = None
    transitions_seen: int = 0
    last_send: float | None = None
    # Ticks declared missing before the latest counted send whose keepalives may still
    # arrive late: a stalled endpoint releases them right after it (a burst).
    owed_ticks: int = 0
    extrapolated_at_send: int = 0


def _queued_send(timeline: OriginatorTimeline, request: Request) -> KeepaliveEvent:
    """A send that leaves the counter and line protocol as they are."""
    event = KeepaliveEvent(
        time=request.time,
        frame=request.frame,
        role=KeepaliveRole.SENT,
        ident=request.inner.ip_id,
        counter=timeline.counter,
        line_state=timeline.line_state,
    )
    timeline.last_tick = max(timeline.last_tick or request.time, request.time)
    if timeline.keep_events:
        timeline.events.append(event)
    return event


class LiveTracker:
    """Every tunnel's keepalive state, updated by packets and by the clock."""

    def __init__(self, settings: Settings | None = None, *, keep_events: bool = False) -> None:
        self.settings = settings or Settings()
        self.keep_events = keep_events
        self.pairer = Pairer(keep_history=False)
        self._tracked: dict[tuple[TunnelId, str], _Tracked] = {}
        self.frames = 0
        self.data_packets = 0

    def _get(self, tunnel: TunnelId, address: str, peer: str) -> _Tracked:
        found = self._tracked.get((tunnel, address))
        if found is None:
            resolved = resolve_settings(self.settings, address, peer, tunnel[1], None)
            fixed = resolved.period_source is not ValueSource.DEFAULT
            found = _Tracked(
                tunnel,
                address,
                peer,
                OriginatorTimeline(resolved.period, resolved.retries, keep_events=self.keep_events),
                resolved.period_source,
                fixed,
            )
            self._tracked[(tunnel, address)] = found
        return found

    def feed(self, time: float, frame: int, decoded: Decoded) -> list[LiveEvent]:
        """A captured frame: events it causes (none for data and non-GRE frames)."""
        self.frames += 1
        if decoded.kind is FrameKind.DATA:
            self.data_packets += 1
            return []
        if decoded.kind is FrameKind.REQUEST:
            request = self.pairer.request(frame, time, decoded)
            return [] if request is None else self._sent(request)
        if decoded.kind is FrameKind.REPLY:
            reply = self.pairer.reply(frame, time, decoded)
            return [] if reply is None else self._returned(reply)
        return []

    def advance(self, now: float) -> list[LiveEvent]:
        """Run every tick that is overdue at `now` (half a period late) for every originator."""
        events: list[LiveEvent] = []
        for tracked in self._tracked.values():
            made = tracked.timeline.extrapolate(now, inclusive=False)
            events.extend(self._emit(tracked, made))
        return events

    def forget(self, a: str, b: str, key: int | None) -> None:
        """Drop both originators of the tunnel between `a` and `b` (a live source stopped
        running it); keepalives seen later start a fresh timeline."""
        tunnel = tunnel_id(a, b, key)
        for address in (a, b):
            self._tracked.pop((tunnel, address), None)

    def _sent(self, request: Request) -> list[LiveEvent]:
        tracked = self._get(request.tunnel, request.originator, request.peer)
        tracked.send_times.append(request.time)
        if not tracked.period_fixed and len(tracked.send_times) >= MIN_SENDS_TO_INFER:
            inferred = infer_period(sorted(tracked.send_times))
            # No vendor sends keepalives faster than once a second; a burst of requests
            # (a test tool, a replay) must not become a millisecond period.
            if inferred is not None and inferred >= MIN_INFERRED_PERIOD:
                tracked.timeline.period = inferred
                tracked.period_source = ValueSource.INFERRED
        timeline = tracked.timeline
        made = timeline.extrapolate(request.time, inclusive=False)
        queued = (
            tracked.owed_ticks > 0
            and tracked.last_send is not None
            and request.time - tracked.last_send < BURST_FRACTION * timeline.period
        )
        if queued:
            # A keepalive of a tick already counted as missing, released late with the
            # burst: seen, but not a tick of its own (the offline rule, without the future).
            tracked.owed_ticks -= 1
            made.append(_queued_send(timeline, request))
        else:
            made.append(timeline.sent(request.time, request.frame, ident=request.inner.ip_id))
            tracked.owed_ticks = timeline.extrapolated - tracked.extrapolated_at_send
        tracked.extrapolated_at_send = timeline.extrapolated
        tracked.last_send = request.time
        tracked.sent += 1
        return self._emit(tracked, made)

    def _returned(self, reply: Reply) -> list[LiveEvent]:
        tracked = self._get(reply.tunnel, reply.originator, reply.src)
        made = tracked.timeline.extrapolate(reply.time, inclusive=False)
        rtt = reply.rtt
        rtt_ms = None if rtt is None else round(rtt * 1000.0, 3)
        made.append(
            tracked.timeline.returned(
                reply.time,
                reply.frame,
                ident=reply.ip_id,
                request_frame=reply.request.frame if reply.request else None,
                rtt_ms=rtt_ms,
                reply_ttl=reply.ttl,
            )
        )
        if reply.request is not None:
            tracked.returned += 1
            tracked.last_rtt_ms = rtt_ms
        return self._emit(tracked, made)

    def _emit(self, tracked: _Tracked, made: list[KeepaliveEvent]) -> list[LiveEvent]:
        events: list[LiveEvent] = []
        transitions = tracked.timeline.transitions
        endpoints, key = tracked.tunnel
        for event in made:
            tracked.last_event = event.time
            kind = {
                KeepaliveRole.SENT: LiveEventKind.SENT,
                KeepaliveRole.RETURNED: LiveEventKind.RETURNED,
                KeepaliveRole.EXTRAPOLATED: LiveEventKind.EXTRAPOLATED,
            }[event.role]
            # A down transition comes before the send that finds the counter too high; an
            # up transition after the reply that caused it.
            pending = transitions[tracked.transitions_seen :]
            if pending and pending[0].state is LineState.DOWN and pending[0].time == event.time:
                events.append(self._transition(tracked, pending[0]))
                tracked.transitions_seen += 1
            events.append(
                LiveEvent(
                    time=event.time,
                    kind=kind,
                    endpoints=endpoints,
                    key=key,
                    originator=tracked.address,
                    peer=tracked.peer,
                    frame=event.frame,
                    ident=event.ident,
                    counter=event.counter,
                    line_state=event.line_state,
                    rtt_ms=event.rtt_ms,
                    reply_ttl=event.reply_ttl,
                )
            )
            pending = transitions[tracked.transitions_seen :]
            if pending and pending[0].state is LineState.UP and pending[0].time == event.time:
                events.append(self._transition(tracked, pending[0]))
                tracked.transitions_seen += 1
        return events

    @staticmethod
    def _transition(tracked: _Tracked, transition: Transition) -> LiveEvent:
        endpoints, key = tracked.tunnel
        return LiveEvent(
            time=transition.time,
            kind=LiveEventKind.DOWN if transition.state is LineState.DOWN else LiveEventKind.UP,
            endpoints=endpoints,
            key=key,
            originator=tracked.address,
            peer=tracked.peer,
            frame=transition.frame,
            ident=None,
            counter=transition.counter,
            line_state=transition.state,
        )

    def snapshot(self, now: float) -> list[OriginatorState]:
        """Every originator's state at `now`, sorted by tunnel and address."""
        states = []
        for (tunnel, address), tracked in sorted(
            self._tracked.items(), key=lambda item: (item[0][0][0], item[0][1])
        ):
            timeline = tracked.timeline
            states.append(
                OriginatorState(
                    endpoints=tunnel[0],
                    key=tunnel[1],
                    address=address,
                    peer=tracked.peer,
                    line_state=timeline.line_state,
                    counter=timeline.counter,
                    retries=timeline.retries,
                    period=timeline.period,
                    period_source=tracked.period_source,
                    sent=tracked.sent,
                    returned=tracked.returned,
                    extrapolated=timeline.extrapolated,
                    last_rtt_ms=tracked.last_rtt_ms,
                    downs=sum(1 for t in timeline.transitions if t.state is LineState.DOWN),
                    down_seconds=down_seconds(timeline.transitions, now),
                    last_event=tracked.last_event,
                )
            )
        return states
