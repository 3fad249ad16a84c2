"""The keepalive state machine of one originating endpoint (Cisco IOS semantics, SPEC.md §2).

It is a pure function of events and time: nothing here reads packets or clocks. The
analyzer, the TUI, the probe and the Lua generator's tests all drive this one machine.

1. At every period tick: if ``counter >= retries`` the line protocol goes down (if it was
   up). Then a keepalive is sent and ``counter += 1``.
2. When a returned keepalive is received: ``counter = 0``; if the line protocol was down
   it comes up immediately.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum

DEFAULT_PERIOD = 10.0
DEFAULT_RETRIES = 3
MAX_PERIOD = 32767
MAX_RETRIES = 255


class LineState(StrEnum):
    """Line protocol of a tunnel interface as the keepalive mechanism drives it."""

    UP = "up"
    DOWN = "down"


class EventKind(StrEnum):
    """What happened to an originator's keepalive machine."""

    SEND = "send"  # a period tick: a keepalive is sent
    REPLY = "reply"  # a returned keepalive reached the originator


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of line protocol, stamped with the event that caused it."""

    time: float
    state: LineState
    counter: int  # the counter when the transition happened
    frame: int | None  # capture frame of the causing event; None for an extrapolated tick


@dataclass(frozen=True, slots=True)
class Step:
    """The machine after one event."""

    counter: int
    line_state: LineState
    transition: Transition | None


@dataclass(frozen=True, slots=True)
class Event:
    """An input to the machine."""

    time: float
    kind: EventKind
    frame: int | None = None


def validate_settings(period: float, retries: int) -> None:
    """Raise ValueError with a one-line reason if (period, retries) is not a valid keepalive."""
    if not 0 < period <= MAX_PERIOD:
        raise ValueError(f"keepalive period {period:g} out of range 1-{MAX_PERIOD} seconds")
    if not 1 <= retries <= MAX_RETRIES:
        raise ValueError(f"keepalive retries {retries} out of range 1-{MAX_RETRIES}")


@dataclass(slots=True)
class KeepaliveMachine:
    """Counter and line protocol of one originating endpoint."""

    retries: int
    counter: int = 0
    line_state: LineState = LineState.UP

    def send(self, time: float, frame: int | None = None) -> Step:
        """A period tick: check the counter against retries, then send (counter + 1)."""
        if self.counter >= self.retries and self.line_state is LineState.UP:
            self.line_state = LineState.DOWN
            transition = Transition(time, LineState.DOWN, self.counter, frame)
            self.counter += 1
            return Step(self.counter, self.line_state, transition)
        self.counter += 1
        return _quiet_step(self.counter, self.line_state)

    def reply(self, time: float, frame: int | None = None) -> Step:
        """A returned keepalive: reset the counter; bring the line up if it was down."""
        self.counter = 0
        if self.line_state is LineState.DOWN:
            self.line_state = LineState.UP
            return Step(0, LineState.UP, Transition(time, LineState.UP, 0, frame))
        return _UP_AT_ZERO

    def send_many(self, time: float, count: int) -> Step:
        """`count` ticks the capture does not show, the last at `time`, in one step.

        Only for stretches where the line is already down: no transition can happen then,
        and a multi-year gap stays one step instead of millions.
        """
        if self.line_state is LineState.UP or count < 1:
            raise ValueError("send_many is only for ticks while the line is down")
        self.counter += count
        return Step(self.counter, self.line_state, None)

    def apply(self, event: Event) -> Step:
        """Feed one event."""
        if event.kind is EventKind.SEND:
            return self.send(event.time, event.frame)
        return self.reply(event.time, event.frame)


# Steps without a transition, shared (they are immutable): one per counter and state seen.
_QUIET_STEPS: dict[tuple[int, LineState], Step] = {}
_UP_AT_ZERO = Step(0, LineState.UP, None)


def _quiet_step(counter: int, line_state: LineState) -> Step:
    found = _QUIET_STEPS.get((counter, line_state))
    if found is None:
        found = Step(counter, line_state, None)
        if counter < 1024:  # counters of long outages: not worth keeping
            _QUIET_STEPS[(counter, line_state)] = found
    return found


def run(events: Iterable[Event], retries: int) -> Iterator[tuple[Event, Step]]:
    """Run a fresh machine over time-ordered events, yielding each event with its result."""
    machine = KeepaliveMachine(retries)
    for event in events:
        yield event, machine.apply(event)


def count_missing_ticks(last_send: float, until: float, period: float, *, inclusive: bool) -> int:
    """How many ticks :func:`missing_ticks` would return, without listing them."""
    if period <= 0 or until <= last_send:
        return 0
    limit = until if inclusive else until - period / 2
    return max(math.floor((limit - last_send) / period + 1e-9), 0)


def missing_ticks(
    last_send: float, until: float, period: float, *, inclusive: bool, limit: int | None = None
) -> list[float]:
    """Ticks a periodic sender made after `last_send` that a capture does not show.

    Between two observed sends (`inclusive=False`) a tick counts as missing when it falls
    more than half a period before the next observed send, so jitter never invents one.
    Up to the end of a capture (`inclusive=True`) every tick at or before `until` counts.
    At most `limit` ticks are listed (the first ones).
    """
    count = count_missing_ticks(last_send, until, period, inclusive=inclusive)
    if limit is not None:
        count = min(count, limit)
    return [last_send + period * k for k in range(1, count + 1)]


def down_seconds(transitions: Iterable[Transition], until: float) -> float:
    """Seconds spent down across `transitions`; a line still down counts up to `until`."""
    total = 0.0
    down_since: float | None = None
    for transition in transitions:
        if transition.state is LineState.DOWN:
            down_since = transition.time
        elif down_since is not None:
            total += transition.time - down_since
            down_since = None
    if down_since is not None:
        total += max(until - down_since, 0.0)
    return total


def line_down_delay(period: float, retries: int) -> float:
    """Time from the first unanswered keepalive to the line going down: period × retries."""
    return period * retries


@dataclass(slots=True)
class HoldTimerMachine:
    """A line protocol driven by a hold timer instead of a tick counter (added for the vendor
    profiles of SPEC.md §3; :class:`KeepaliveMachine` stays the IOS one).

    * Juniper (`keepalive-time`, `hold-time`): the line goes down when no returned keepalive
      has arrived for `hold` seconds; a returned keepalive brings it up.
    * OpenBSD gre(4) (`keepalive period count`, `holddown=True`): the same timer with
      ``hold = period × count``; after a down, the first returned keepalive starts a
      hold-down and ``hold_max`` more are needed before the line comes up; ``hold_max``
      starts at `retries` (= count), doubles with each hold-down (at most 16 × count) and
      shrinks by one per keepalive while up (never below count). The timer also ends a
      hold-down that stalls.

    The timer is armed by the first event and re-armed by every returned keepalive. `counter`
    counts sends since the last returned keepalive, for display; `retries` is the count
    (OpenBSD) or ``hold / period`` (Juniper). A timer fires through :meth:`expire`, which
    the caller runs before every event (send, reply) and at the end: the events themselves
    never fire it.
    """

    retries: int
    hold: float
    holddown: bool = False
    counter: int = 0
    line_state: LineState = LineState.UP
    deadline: float | None = None
    started: bool = False
    hold_max: int = 0
    hold_left: int | None = None  # OpenBSD: returned keepalives still needed; None: no hold-down

    def __post_init__(self) -> None:
        self.hold_max = self.retries

    def _start(self, time: float) -> None:
        if not self.started:
            self.started = True
            self.deadline = time + self.hold

    def expire(self, now: float) -> Transition | None:
        """Fire the hold timer if it is due by `now`; the transition is stamped when it fired."""
        if self.deadline is None or now < self.deadline:
            return None
        fired, self.deadline = self.deadline, None
        self.hold_left = None
        if self.line_state is LineState.UP:
            self.line_state = LineState.DOWN
            return Transition(fired, LineState.DOWN, self.counter, None)
        return None

    def send(self, time: float, frame: int | None = None) -> Step:
        """A period tick: a keepalive is sent (the timer, not the tick, takes the line down)."""
        self._start(time)
        self.counter += 1
        return Step(self.counter, self.line_state, None)

    def reply(self, time: float, frame: int | None = None) -> Step:
        """A returned keepalive: reset the counter, re-arm the timer, maybe come up."""
        self._start(time)
        self.counter = 0
        self.deadline = time + self.hold
        if self.line_state is LineState.UP:
            if self.holddown:
                self.hold_max = max(self.hold_max - 1, self.retries)
            return Step(0, LineState.UP, None)
        if self.holddown:
            if self.hold_left is None:
                self.hold_left = self.hold_max
                self.hold_max = min(self.hold_max * 2, 16 * self.retries)
                return Step(0, LineState.DOWN, None)
            self.hold_left -= 1
            if self.hold_left > 0:
                return Step(0, LineState.DOWN, None)
            self.hold_left = None
        self.line_state = LineState.UP
        return Step(0, LineState.UP, Transition(time, LineState.UP, 0, frame))

    def send_many(self, time: float, count: int) -> Step:
        """`count` ticks the capture does not show, the last at `time` (see KeepaliveMachine)."""
        if count < 1:
            raise ValueError("send_many needs at least one tick")
        self._start(time)
        self.counter += count
        return Step(self.counter, self.line_state, None)


AnyMachine = KeepaliveMachine | HoldTimerMachine
