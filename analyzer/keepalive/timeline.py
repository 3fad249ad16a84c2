"""One originator's keepalive timeline: the state machine fed by sends, replies and ticks
the capture does not show.

The offline analysis and the live sources (watch, probe) drive the same class; only who
decides *when* a tick counts as missing differs. Offline, a tick is missing when it falls
more than half a period before the next observed send; live, when half a period has
passed since it was due (the same rule, seen without the future).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from analyzer.keepalive.model import KeepaliveEvent, KeepaliveRole
from analyzer.keepalive.pairing import Reply, Request
from analyzer.keepalive.state import (
    AnyMachine,
    HoldTimerMachine,
    KeepaliveMachine,
    LineState,
    Step,
    Transition,
    count_missing_ticks,
)

# While the line is up, each missing tick is listed (it moves the counter towards the down
# transition); once the line is down, the rest of the gap is one row whose `ticks` says how
# many it stands for. This caps the ticks listed one by one when a time-based machine's
# hold timer is long against its period (no IOS gap comes near it: retries ≤ 255).
MAX_LISTED_TICKS = 1000

_SENT = KeepaliveRole.SENT
_RETURNED = KeepaliveRole.RETURNED


@dataclass(slots=True)
class OriginatorTimeline:
    """Counter, line protocol and events of one keepalive-originating endpoint."""

    period: float
    retries: int
    keep_events: bool = True  # live sources may keep only the latest state
    hold: float | None = None  # a hold timer instead of the IOS counter (vendor profiles)
    holddown: bool = False  # with `hold`: OpenBSD's hold-down before up
    machine: AnyMachine = field(init=False)
    timed: bool = field(init=False, default=False)  # a hold timer fires between events
    last_tick: float | None = None  # time of the latest tick, observed or extrapolated
    extrapolated: int = 0
    events: list[KeepaliveEvent] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.hold is None:
            self.machine = KeepaliveMachine(self.retries)
        else:
            self.machine = HoldTimerMachine(self.retries, self.hold, self.holddown)
            self.timed = True

    @property
    def line_state(self) -> LineState:
        """The line protocol now."""
        return self.machine.line_state

    @property
    def counter(self) -> int:
        """Keepalives sent since the last one that returned."""
        return self.machine.counter

    def advance(self, now: float) -> list[Transition]:
        """Fire the timers due by `now`. IOS semantics have none: only the time-based
        machines of other vendors' profiles change state between events (the event methods
        below call this first)."""
        machine = self.machine
        if not isinstance(machine, HoldTimerMachine):
            return []
        transition = machine.expire(now)
        if transition is None:
            return []
        self.transitions.append(transition)
        return [transition]

    def _record(self, event: KeepaliveEvent, step: Step) -> KeepaliveEvent:
        if self.keep_events:
            self.events.append(event)
        if step.transition is not None:
            self.transitions.append(step.transition)
        return event

    def extrapolate(
        self, until: float, *, inclusive: bool, before: float | None = None
    ) -> list[KeepaliveEvent]:
        """Run the ticks missing since the last tick (see :func:`state.missing_ticks`).

        Ticks after `before` are left for a later call (a tick at the same instant as an
        event runs before it).
        """
        if self.last_tick is None:
            return []
        # The usual case, the next send within a period and a half: nothing is missing.
        if until - self.last_tick < self.period * (0.9 if inclusive else 1.4):
            return []
        count = count_missing_ticks(self.last_tick, until, self.period, inclusive=inclusive)
        if before is not None:
            due = count_missing_ticks(self.last_tick, before, self.period, inclusive=True)
            count = min(count, due)
        if count <= 0:
            return []
        start, period = self.last_tick, self.period
        made: list[KeepaliveEvent] = []
        while len(made) < min(count, MAX_LISTED_TICKS) and self.line_state is LineState.UP:
            made.append(self._tick(start + (len(made) + 1) * period, 1))
        if len(made) < count:
            made.append(self._tick(start + count * period, count - len(made)))
        return made

    def _tick(self, time: float, ticks: int) -> KeepaliveEvent:
        first = None if ticks == 1 else time - (ticks - 1) * self.period
        self.advance(time)
        machine = self.machine
        if ticks == 1 or machine.line_state is LineState.UP:
            step = machine.send(time)
            if ticks > 1 and (
                machine.line_state is LineState.DOWN or isinstance(machine, HoldTimerMachine)
            ):
                step = machine.send_many(time, ticks - 1)
        else:
            step = machine.send_many(time, ticks)
        self.last_tick = time
        self.extrapolated += ticks
        event = KeepaliveEvent(
            time=time,
            frame=None,
            role=KeepaliveRole.EXTRAPOLATED,
            ident=None,
            counter=step.counter,
            line_state=step.line_state,
            ticks=ticks,
            first_time=first,
        )
        return self._record(event, step)

    def sent(
        self,
        time: float,
        frame: int | None,
        *,
        ident: int | None,
        reply_frame: int | None = None,
        rtt_ms: float | None = None,
        reply_ttl: int | None = None,
    ) -> KeepaliveEvent:
        """An observed send (a period tick). Call :meth:`extrapolate` first for gaps."""
        return self.sent_row(time, frame, ident, reply_frame, rtt_ms, reply_ttl)

    def sent_row(
        self,
        time: float,
        frame: int | None,
        ident: int | None,
        reply_frame: int | None,
        rtt_ms: float | None,
        reply_ttl: int | None,
    ) -> KeepaliveEvent:
        """:meth:`sent` with positional arguments (once per request of a capture)."""
        if self.timed:
            self.advance(time)
        step = self.machine.send(time, frame)
        self.last_tick = time
        event = KeepaliveEvent(
            time,
            frame,
            _SENT,
            ident,
            step.counter,
            step.line_state,
            reply_frame,
            rtt_ms,
            reply_ttl,
        )
        if self.keep_events:
            self.events.append(event)
        if step.transition is not None:
            self.transitions.append(step.transition)
        return event

    def returned(
        self,
        time: float,
        frame: int | None,
        *,
        ident: int | None,
        request_frame: int | None = None,
        rtt_ms: float | None = None,
        reply_ttl: int | None = None,
    ) -> KeepaliveEvent:
        """A returned keepalive reached the originator."""
        return self.returned_row(time, frame, ident, request_frame, rtt_ms, reply_ttl)

    def returned_row(
        self,
        time: float,
        frame: int | None,
        ident: int | None,
        request_frame: int | None,
        rtt_ms: float | None,
        reply_ttl: int | None,
    ) -> KeepaliveEvent:
        """:meth:`returned` with positional arguments (once per reply of a capture)."""
        if self.timed:
            self.advance(time)
        step = self.machine.reply(time, frame)
        event = KeepaliveEvent(
            time,
            frame,
            _RETURNED,
            ident,
            step.counter,
            step.line_state,
            request_frame,
            rtt_ms,
            reply_ttl,
        )
        if self.keep_events:
            self.events.append(event)
        if step.transition is not None:
            self.transitions.append(step.transition)
        return event

    def replay(
        self,
        requests: Sequence[Request],
        replies: Sequence[Reply],
        until: Sequence[float],
        capture_end: float,
    ) -> None:
        """Run the machine over a capture's sends and replies (each in time order; a send
        at the same instant as a reply comes first), with the ticks the capture does not
        show, up to `capture_end` (inclusive). `until[i]`: where the ticks missing before
        send i are counted up to (exclusive; a burst's first send counts them earlier).

        :meth:`sent_row` and :meth:`returned_row` once per keepalive, written out here
        (the hub's hundreds of thousands of rows): the machine's methods and the lists
        bound once, and :meth:`extrapolate` called only when its own first test (a gap
        of over a period and a half) would not return at once.
        """
        machine = self.machine
        send, reply_to = machine.send, machine.reply
        timed = self.timed
        keep = self.keep_events
        add_event, add_transition = self.events.append, self.transitions.append
        extrapolate = self.extrapolate
        gap = self.period * 1.4
        # A pair's round trip, worked out for its sent row and taken by its returned row
        # (by the reply's frame): round() takes half a microsecond.
        rtts: dict[int, float] = {}
        next_request, last_request = 0, len(requests)
        for reply in replies:
            reply_time = reply.time
            while next_request < last_request and requests[next_request].time <= reply_time:
                request = requests[next_request]
                last_tick = self.last_tick
                if last_tick is not None and not until[next_request] - last_tick < gap:
                    extrapolate(until[next_request], inclusive=False)
                time, frame, answer = request.time, request.frame, request.reply
                if timed:
                    self.advance(time)
                step = send(time, frame)
                self.last_tick = time
                if answer is None:
                    event = KeepaliveEvent(
                        time, frame, _SENT, request.ident, step.counter, step.line_state
                    )
                else:
                    rtt = rtts[answer.frame] = round((answer.time - time) * 1000.0, 3)
                    event = KeepaliveEvent(
                        time,
                        frame,
                        _SENT,
                        request.ident,
                        step.counter,
                        step.line_state,
                        answer.frame,
                        rtt,
                        answer.ttl,
                    )
                if keep:
                    add_event(event)
                if step.transition is not None:
                    add_transition(step.transition)
                next_request += 1
            last_tick = self.last_tick
            if next_request < last_request:
                if last_tick is not None and not until[next_request] - last_tick < gap:
                    extrapolate(until[next_request], inclusive=False, before=reply_time)
            else:
                extrapolate(capture_end, inclusive=True, before=reply_time)
            frame = reply.frame
            if timed:
                self.advance(reply_time)
            step = reply_to(reply_time, frame)
            asked = reply.request
            if asked is None:
                event = KeepaliveEvent(
                    reply_time,
                    frame,
                    _RETURNED,
                    reply.ip_id,
                    step.counter,
                    step.line_state,
                    None,
                    None,
                    reply.ttl,
                )
            else:
                known = rtts.get(frame)
                if known is None:  # its request's row is in an earlier segment's run
                    known = round((reply_time - asked.time) * 1000.0, 3)
                event = KeepaliveEvent(
                    reply_time,
                    frame,
                    _RETURNED,
                    reply.ip_id,
                    step.counter,
                    step.line_state,
                    asked.frame,
                    known,
                    reply.ttl,
                )
            if keep:
                add_event(event)
            if step.transition is not None:
                add_transition(step.transition)
        for index in range(next_request, last_request):
            request = requests[index]
            extrapolate(until[index], inclusive=False)
            answer = request.reply
            if answer is None:
                self.sent_row(request.time, request.frame, request.ident, None, None, None)
            else:
                self.sent_row(
                    request.time,
                    request.frame,
                    request.ident,
                    answer.frame,
                    round((answer.time - request.time) * 1000.0, 3),
                    answer.ttl,
                )
        extrapolate(capture_end, inclusive=True)
        self.advance(capture_end)  # timers of time-based profiles; nothing for IOS
