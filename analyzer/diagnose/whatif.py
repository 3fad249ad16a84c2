"""The what-if replay: the same capture under another keepalive setting.

The what-if replay (:func:`replay`) keeps the capture's evidence about the *path* and
changes the *setting*: a failure lasts from the first unanswered keepalive to the request
of the first answered one (the `min` assumption; the `max` one starts it right after the
last answered keepalive); hypothetical ticks at the new period, starting at the
originator's first tick, are answered outside failures after the median round trip; the
state machine runs over them. Blackholed data is counted from the capture's data packets;
where the real line was down (so the capture holds none) it is estimated from the data rate
while up, and the replay says so (`estimated`).
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from analyzer.keepalive.model import (
    Analysis,
    Blackhole,
    KeepaliveRole,
    OriginatorResult,
    Span,
    WhatIf,
)
from analyzer.keepalive.profiles import Profile, running
from analyzer.keepalive.retries import episodes
from analyzer.keepalive.state import (
    MAX_PERIOD,
    MAX_RETRIES,
    AnyMachine,
    HoldTimerMachine,
    LineState,
    Transition,
)
from analyzer.keepalive.timeline import OriginatorTimeline

# ------------------------------------------------------------------------------- what-if


def median_rtt_s(o: OriginatorResult) -> float:
    """The originator's median keepalive round trip in seconds (0 when none returned)."""
    return o.rtt_ms.median / 1000.0 if o.rtt_ms is not None else 0.0


_SETTING = re.compile(
    r"^\s*(?:keepalive\s+)?(?P<period>\d+(?:\.\d+)?)\s*s?\s*[\s,]\s*(?P<retries>\d+)\s*$",
    re.IGNORECASE,
)


def parse_setting(text: str) -> tuple[float, int]:
    """`keepalive P R`, `P R` or MikroTik's `Ps,R` → (period, retries); ValueError otherwise."""
    match = _SETTING.match(text)
    if match is None:
        raise ValueError(f"what-if setting {text!r} is not 'keepalive PERIOD RETRIES'")
    period, retries = float(match["period"]), int(match["retries"])
    if not 1 <= period <= MAX_PERIOD:
        raise ValueError(f"what-if period {period:g} out of range 1-{MAX_PERIOD} seconds")
    if not 1 <= retries <= MAX_RETRIES:
        raise ValueError(f"what-if retries {retries} out of range 1-{MAX_RETRIES}")
    return period, retries


def failure_windows(
    o: OriginatorResult, capture_end: float, *, earliest: bool
) -> list[tuple[float, float]]:
    """When the path lost this originator's keepalives, as [start, end) windows.

    A window starts at the first unanswered tick (`earliest`: just after the last answered
    one) and ends when the request of the reply that ended it was sent (infinity when the
    failure lasts to the end of the capture).
    """
    rtt = median_rtt_s(o)
    windows: list[tuple[float, float]] = []
    for episode in episodes(o.events, o.period, capture_end):
        start = episode.start
        if earliest and episode.last_answered is not None:
            start = episode.last_answered.time + 1e-6
        reply = episode.reply
        if reply is None:
            end = math.inf
        else:
            end = reply.time - (reply.rtt_ms / 1000.0 if reply.rtt_ms is not None else rtt)
            end = max(end, episode.ticks[-1].time + 1e-6)
        windows.append((start, end))
    return windows


MachineFactory = Callable[[float, int], OriginatorTimeline]


def _default_factory(period: float, retries: int) -> OriginatorTimeline:
    return OriginatorTimeline(period, retries, keep_events=False)


@dataclass(frozen=True, slots=True)
class _Run:
    ticks: int
    transitions: list[Transition]
    seconds: float
    packets: int
    estimated: bool


def _run(
    o: OriginatorResult,
    windows: list[tuple[float, float]],
    period: float,
    retries: int,
    capture_end: float,
    factory: MachineFactory,
) -> _Run:
    first_tick = next((e.time for e in o.events if e.role is not KeepaliveRole.RETURNED), None)
    if first_tick is None or capture_end < first_tick:
        return _Run(0, [], 0.0, 0, False)
    rtt = median_rtt_s(o)
    timeline = factory(period, retries)
    machine = timeline.machine
    count = math.floor((capture_end - first_tick) / period + 1e-9) + 1
    starts = [w[0] for w in windows]
    pending: deque[float] = deque()  # reply times, ascending
    # Long stretches are skipped where nothing can change: inside a failure once the line
    # is down (only the counter grows), and in an answered stretch once the machine has
    # settled (OpenBSD's hold-down allowance reaches its floor within 16 × count replies).
    # A hold timer shorter than a period plus the round trip fires between answered ticks:
    # those stretches are replayed tick by tick, up to MAX_REPLAY_TICKS.
    timed = isinstance(machine, HoldTimerMachine)
    settle = 16 * retries + 2 if timed else 1
    steady = not isinstance(machine, HoldTimerMachine) or machine.hold > period + rtt
    if not steady and count > MAX_REPLAY_TICKS:
        raise ReplayTooLong(
            f"{count} ticks of {period:g} s with a hold timer shorter than a period: too long "
            "to replay"
        )
    answered_run = 0
    k = 0
    while k < count:
        tick = first_tick + k * period
        while pending and pending[0] < tick:
            reply_at = pending.popleft()
            timeline.advance(reply_at)
            timeline.returned(reply_at, None, ident=None)
        index = bisect_right(starts, tick) - 1
        inside = index >= 0 and windows[index][0] <= tick < windows[index][1]
        if not pending:
            if inside and _quiet_down(machine):
                end = windows[index][1]
                last = count - 1
                if end != math.inf:
                    last = min(last, math.ceil((end - first_tick) / period - 1e-9) - 1)
                if last > k + 1:
                    machine.counter += last - k  # the sends of ticks k … last - 1
                    k = last
                    continue
            elif not inside and steady and answered_run >= settle and _settled(machine):
                following = starts[index + 1] if index + 1 < len(starts) else capture_end
                last = math.ceil((following - first_tick) / period - 1e-9) - 2
                if last > k + 1:
                    # Ticks k … last - 1 are answered: nothing changes but the hold timer,
                    # re-armed by the last of their replies.
                    if isinstance(machine, HoldTimerMachine):
                        machine.deadline = first_tick + (last - 1) * period + rtt + machine.hold
                    k = last
                    continue
        timeline.advance(tick)
        timeline.sent(tick, None, ident=None)
        if inside:
            answered_run = 0
        else:
            answered_run += 1
            if tick + rtt <= capture_end:
                pending.append(tick + rtt)
        k += 1
    for reply_at in pending:
        timeline.advance(reply_at)
        timeline.returned(reply_at, None, ident=None)
    timeline.advance(capture_end)
    transitions = timeline.transitions
    real_down = _down_intervals(o.transitions, capture_end)
    rate = _data_rate(o, capture_end)
    seconds = 0.0
    packets = 0.0
    estimated = False
    for start, end in windows:
        stop = min(end, capture_end)
        down = next(
            (t.time for t in transitions if t.state is LineState.DOWN and start <= t.time < stop),
            None,
        )
        if _down_at(transitions, start):
            continue  # already down when the failure began: nothing is blackholed
        finish = down if down is not None else stop
        if finish <= start:
            continue
        seconds += finish - start
        low, high = bisect_left(o.data_times, start), bisect_left(o.data_times, finish)
        packets += high - low
        missing = _overlap(real_down, start, finish)
        if missing > 0 and rate > 0:
            packets += rate * missing
            estimated = True
    return _Run(count, list(transitions), seconds, round(packets), estimated)


class ReplayTooLong(ValueError):
    """The replay would take too many ticks (see MAX_REPLAY_TICKS)."""


MAX_REPLAY_TICKS = 2_000_000


def _quiet_down(machine: AnyMachine) -> bool:
    """Down, and no timer pending: further unanswered ticks only count."""
    if machine.line_state is not LineState.DOWN:
        return False
    return not isinstance(machine, HoldTimerMachine) or machine.deadline is None


def _settled(machine: AnyMachine) -> bool:
    """Up with nothing outstanding: further answered ticks change nothing."""
    if machine.line_state is not LineState.UP or machine.counter != 0:
        return False
    return not isinstance(machine, HoldTimerMachine) or machine.hold_max == machine.retries


def _down_at(transitions: list[Transition], time: float) -> bool:
    state = LineState.UP
    for transition in transitions:
        if transition.time > time:
            break
        state = transition.state
    return state is LineState.DOWN


def _down_intervals(transitions: list[Transition], capture_end: float) -> list[tuple[float, float]]:
    intervals: list[tuple[float, float]] = []
    since: float | None = None
    for transition in transitions:
        if transition.state is LineState.DOWN and since is None:
            since = transition.time
        elif transition.state is LineState.UP and since is not None:
            intervals.append((since, transition.time))
            since = None
    if since is not None:
        intervals.append((since, capture_end))
    return intervals


def _overlap(intervals: list[tuple[float, float]], start: float, end: float) -> float:
    return sum(max(0.0, min(b, end) - max(a, start)) for a, b in intervals)


def _data_rate(o: OriginatorResult, capture_end: float) -> float:
    """Data packets per second while the real line protocol was up."""
    if not o.data_times:
        return 0.0
    first = min(o.data_times[0], o.events[0].time if o.events else o.data_times[0])
    up = (capture_end - first) - o.down_seconds
    return len(o.data_times) / up if up > 0 else 0.0


def _downtime(transitions: list[Transition], capture_end: float) -> float:
    return sum(b - a for a, b in _down_intervals(transitions, capture_end))


def replay(
    o: OriginatorResult,
    period: float,
    retries: int,
    capture_end: float,
    *,
    setting: str | None = None,
    factory: MachineFactory | None = None,
    baseline_factory: MachineFactory | None = None,
    hold_time: float | None = None,
) -> WhatIf:
    """The capture replayed under `keepalive period retries` (see the module docstring)."""
    make = factory or _default_factory
    latest = failure_windows(o, capture_end, earliest=False)
    earliest = failure_windows(o, capture_end, earliest=True)
    main = _run(o, latest, period, retries, capture_end, make)
    early = _run(o, earliest, period, retries, capture_end, make)
    base_make = baseline_factory or _default_factory
    base = _run(o, latest, o.period, o.retries, capture_end, base_make)
    base_early = _run(o, earliest, o.period, o.retries, capture_end, base_make)
    return WhatIf(
        setting=setting or f"keepalive {period:g} {retries}",
        period=period,
        retries=retries,
        hold_time=hold_time,
        sent=main.ticks,
        transitions=tuple(main.transitions),
        down_seconds=_downtime(main.transitions, capture_end),
        blackholed_packets=Blackhole(
            min(main.packets, early.packets), max(main.packets, early.packets)
        ),
        blackhole_seconds=Span(min(main.seconds, early.seconds), max(main.seconds, early.seconds)),
        estimated=main.estimated or early.estimated,
        baseline_packets=Blackhole(
            min(base.packets, base_early.packets), max(base.packets, base_early.packets)
        ),
        baseline_seconds=Span(
            min(base.seconds, base_early.seconds), max(base.seconds, base_early.seconds)
        ),
        baseline_transitions=len(base.transitions),
    )


def apply_what_if(analysis: Analysis, setting: str) -> None:
    """Replay every originator under `setting` ("keepalive 2 3") into its ``what_if``; an
    originator whose replay would run too long gets a note instead."""
    what_period, what_retries = parse_setting(setting)
    capture_end = analysis.source.end or 0.0
    for tunnel in analysis.tunnels:
        for result in tunnel.originators:
            profile = running(result.profile or "cisco")

            def factory(p: float, r: int, profile: Profile = profile) -> OriginatorTimeline:
                return profile.timeline(p, r, keep_events=False)

            try:
                result.what_if = replay_by_segment(
                    result,
                    what_period,
                    what_retries,
                    capture_end,
                    factory=factory,
                    baseline_factory=factory,
                    hold_time=profile.hold_time(what_period, what_retries),
                )
            except ReplayTooLong as exc:
                result.notes.append(f"what-if {setting}: {exc}")


def replay_by_segment(
    o: OriginatorResult,
    period: float,
    retries: int,
    capture_end: float,
    *,
    factory: MachineFactory | None = None,
    baseline_factory: MachineFactory | None = None,
    hold_time: float | None = None,
) -> WhatIf:
    """:func:`replay` of each segment of a capture with gaps, joined: no failure, tick or
    data rate runs on across a stretch the capture was not running."""
    parts = [(o, capture_end)]
    if o.segments:
        parts = [(_within(o, start, end), end) for start, end in o.segments]
    return _joined(
        [
            replay(
                part,
                period,
                retries,
                end,
                factory=factory,
                baseline_factory=baseline_factory,
                hold_time=hold_time,
            )
            for part, end in parts
        ]
    )


def _within(o: OriginatorResult, start: float, end: float) -> OriginatorResult:
    """The originator as one segment of the capture shows it (its own timeline and data
    there)."""
    transitions = [t for t in o.transitions if start <= t.time <= end]
    low, high = bisect_left(o.data_times, start), bisect_right(o.data_times, end)
    return replace(
        o,
        events=[e for e in o.events if start <= e.time <= end],
        transitions=transitions,
        down_seconds=_downtime(transitions, end),
        data_times=o.data_times[low:high],
        data_frames=o.data_frames[low:high],
    )


def _joined(parts: list[WhatIf]) -> WhatIf:
    """The replays of a capture's segments as one."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    return replace(
        first,
        sent=sum(p.sent for p in parts),
        transitions=tuple(t for p in parts for t in p.transitions),
        down_seconds=sum(p.down_seconds for p in parts),
        blackholed_packets=Blackhole(
            sum(p.blackholed_packets.min for p in parts),
            sum(p.blackholed_packets.max for p in parts),
        ),
        blackhole_seconds=Span(
            sum(p.blackhole_seconds.min for p in parts),
            sum(p.blackhole_seconds.max for p in parts),
        ),
        estimated=any(p.estimated for p in parts),
        baseline_packets=Blackhole(
            sum(p.baseline_packets.min for p in parts),
            sum(p.baseline_packets.max for p in parts),
        ),
        baseline_seconds=Span(
            sum(p.baseline_seconds.min for p in parts),
            sum(p.baseline_seconds.max for p in parts),
        ),
        baseline_transitions=sum(p.baseline_transitions for p in parts),
    )
