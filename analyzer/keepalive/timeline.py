"""One originator's keepalive timeline: the state machine fed by sends, replies and ticks
the capture does not show.

The offline analysis and the live sources (watch, probe) drive the same class; only who
decides *when* a tick counts as missing differs. Offline, a tick is missing when it falls
more than half a period before the next observed send; live, when half a period has
passed since it was due (the same rule, seen without the future).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from analyzer.keepalive.model import KeepaliveEvent, KeepaliveRole
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
