"""Rebuild every originator's keepalive counter and line-protocol timeline from frames.

Two phases: a streaming pass decodes frames, pairs replies with requests and keeps only
keepalives plus the times of tunnel data packets; then, per originator, the period is
inferred (or taken from configuration), missing ticks are extrapolated and the state
machine of :mod:`analyzer.keepalive.state` is run over the events in time order.
"""

from __future__ import annotations

import statistics
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import chain, compress, pairwise, repeat, takewhile
from operator import attrgetter, is_, is_not, le, lt, sub
from typing import TYPE_CHECKING, TypeVar

from analyzer.keepalive.clock import (
    in_calendar,
    outside_calendar_warning,
    utc_text,
    with_calendar_edges,
)
from analyzer.keepalive.collect import Collector
from analyzer.keepalive.model import (
    Analysis,
    Blackhole,
    Burst,
    DataDirection,
    DataFrames,
    DataTimes,
    KeepaliveEvent,
    KeepaliveRole,
    OriginatorResult,
    RttStats,
    Span,
    Traits,
    TunnelResult,
    ValueSource,
)
from analyzer.keepalive.pairing import OriginatorLog, Reply, Request, TunnelId, tunnel_id
from analyzer.keepalive.profiles import PROFILES, Profile, ProfileSpec
from analyzer.keepalive.profiles import choose as choose_profile
from analyzer.keepalive.retries import infer_retries
from analyzer.keepalive.segments import (
    DEFAULT_CAPTURE_GAP,
    GAP_PERIODS,
    Backwards,
    Segment,
    backwards_steps,
    long_gaps,
    segments_between,
)
from analyzer.keepalive.state import (
    DEFAULT_PERIOD,
    DEFAULT_RETRIES,
    MAX_PERIOD,
    LineState,
    Transition,
    down_seconds,
)
from analyzer.keepalive.timeline import OriginatorTimeline
from analyzer.keepalive.wording import counted

if TYPE_CHECKING:
    from analyzer.config import KeepaliveConfig

# The data columns of an originator without data: one shared empty column each (read only;
# two new arrays per idle originator were 160 bytes of 200,000 tunnels' memory each).
_NO_TIMES: DataTimes = array("d")
_NO_FRAMES: DataFrames = array("q")

# A reflection this fast means the capture was taken at the reflecting endpoint.
REFLECTION_RTT_MS = 1.0


@dataclass(frozen=True, slots=True)
class Settings:
    """What the user told us about keepalive periods and retries."""

    config: KeepaliveConfig | None = None
    period: float | None = None  # --period: every endpoint not in the config file
    retries: int | None = None  # --retries: likewise
    infer_retries: bool = False  # --retries infer: use retries read from the data traffic
    flap_transitions: int = 4  # flapping: more than this many transitions …
    flap_minutes: float = 5.0  # … within this many minutes
    late_detection_packets: int = 100  # late-detection: blackholed packets (min) above this
    what_if: str | None = None  # --what-if "keepalive 2 3"
    profiles: ProfileSpec = ()  # --profile [ADDRESS=]NAME|auto, in order
    diagnose: bool = True  # False: leave every tunnel's diagnoses empty
    capture_gap: float = DEFAULT_CAPTURE_GAP  # --capture-gap: a silence this long: not running
    one_way_seconds: float = 30.0  # one-way-data: data one way only for longer than this


# A send closer than this share of the period to the one before it is part of a burst (a
# stalled endpoint releasing queued keepalives, a test tool): not a tick of its own.
BURST_FRACTION = 0.2
# Intervals that agree with a candidate period: within this share of it of a whole multiple.
PERIOD_TOLERANCE = 0.1
# Intervals within this share of each other are one cluster (one candidate period).
CLUSTER_TOLERANCE = 0.05
# The largest candidate that at least this share of the intervals agrees with wins.
DOMINANT_SHARE = 0.8
MAX_CANDIDATES = 32  # candidate periods tried: the most populous clusters of intervals


@dataclass(frozen=True, slots=True)
class PeriodEstimate:
    """The send period of an originator as its intervals show it."""

    period: float
    agreeing: int  # intervals that are a whole multiple of the period (missed ticks agree)
    intervals: int  # every interval between consecutive sends (bursts included)

    @property
    def agreement(self) -> float:
        """Share of the intervals that agree with the period (0..1)."""
        return self.agreeing / self.intervals if self.intervals else 0.0


def estimate_period(
    send_times: Sequence[float], breaks: Sequence[tuple[float, float]] = ()
) -> PeriodEstimate | None:
    """The dominant send interval, robust to jitter, missed ticks, duplicates and bursts.

    `breaks`: (end, start) of the silences between capture segments, in time order; two
    sends on either side of one are no interval of the sender's (the capture stopped).

    Intervals far shorter than the median (a burst) are left out together with the
    intervals on either side of them (a burst sent half a period late splits one interval
    in two). The remaining intervals are clustered; each cluster is a candidate period, and
    an interval agrees with it when it is close to a whole multiple of it (missed ticks).
    The largest candidate that most intervals agree with wins, else the one most agree with.
    """
    if breaks:
        ends = [end for end, _start in breaks]
        raw = [
            b - a
            for a, b in pairwise(send_times)
            if b > a and bisect_left(ends, a) == bisect_left(ends, b)
        ]
    else:
        raw = [b - a for a, b in pairwise(send_times) if b > a]
    if not raw:
        return None
    ordered = sorted(raw)
    # Bursts are judged against the typical interval among those a period can be.
    typical = [i for i in ordered if i <= MAX_PERIOD] or ordered
    short = BURST_FRACTION * typical[len(typical) // 2]
    if ordered[0] >= short:
        intervals = ordered  # no burst: every interval counts
    else:
        burst = [i < short for i in raw]
        intervals = sorted(
            value
            for index, value in enumerate(raw)
            if not burst[index]
            and not (index > 0 and burst[index - 1])
            and not (index + 1 < len(raw) and burst[index + 1])
        ) or [i for i in ordered if i >= short]
    if not intervals:
        return None
    clusters: list[list[float]] = [[intervals[0]]]
    if intervals[-1] - intervals[0] <= CLUSTER_TOLERANCE * intervals[0]:
        clusters = [intervals]  # all within jitter of each other (the usual case)
    else:
        for value in intervals[1:]:
            if value - clusters[-1][-1] <= CLUSTER_TOLERANCE * clusters[-1][-1]:
                clusters[-1].append(value)
            else:
                clusters.append([value])
    # No period is longer than IOS allows (a silence of years in a merged file is none).
    clusters = [c for c in clusters if c[len(c) // 2] <= MAX_PERIOD]
    if not clusters:
        return None
    # The largest clusters only: a sender whose every interval differs must not cost n².
    clusters = sorted(clusters, key=len, reverse=True)[:MAX_CANDIDATES]
    scored = [(c[len(c) // 2], _agreeing_count(intervals, c[len(c) // 2])) for c in clusters]
    dominant = [s for s in scored if s[1] >= DOMINANT_SHARE * len(intervals)]
    if dominant:
        candidate, _count = max(dominant, key=lambda s: s[0])
    else:
        candidate, _count = max(scored, key=lambda s: (s[1], s[0]))
    period = statistics.median(_agreeing(intervals, candidate))
    nearest = round(period)
    if nearest >= 1 and abs(period - nearest) <= 0.05 * period:
        period = float(nearest)
    else:
        period = round(period, 3)
    if period <= 0:
        return None
    return PeriodEstimate(period, _agreeing_count(ordered, period), len(raw))


LISTED_MULTIPLES = 64  # multiples of a candidate counted by bisecting; longer ones one by one


def _agreeing_count(ordered: Sequence[float], candidate: float) -> int:
    """How many of the sorted intervals are within tolerance of a whole multiple of
    `candidate`."""
    tolerance = PERIOD_TOLERANCE * candidate
    count = 0
    longest = ordered[-1] if ordered else 0.0
    for multiple in range(1, LISTED_MULTIPLES + 1):
        centre = multiple * candidate
        if centre - tolerance > longest:
            break  # no interval this long, nor near any larger multiple
        count += bisect_right(ordered, centre + tolerance) - bisect_left(
            ordered, centre - tolerance
        )
    beyond = bisect_right(ordered, LISTED_MULTIPLES * candidate + tolerance)
    count += len(_agreeing(ordered[beyond:], candidate))
    return count


def _agreeing(intervals: Sequence[float], candidate: float) -> list[float]:
    """The period each interval that is close to a whole multiple of `candidate` gives."""
    tolerance = PERIOD_TOLERANCE * candidate
    found = []
    for value in intervals:
        multiple = round(value / candidate)
        if multiple >= 1 and abs(value - multiple * candidate) <= tolerance:
            found.append(value / multiple)
    return found


def infer_period(send_times: Sequence[float]) -> float | None:
    """The keepalive period from send times (sorted), robust to jitter, missed ticks and
    bursts (:func:`estimate_period`)."""
    estimate = estimate_period(send_times)
    return None if estimate is None else estimate.period


def find_bursts(send_times: Sequence[float], period: float) -> list[tuple[int, int]]:
    """(index of the first send, number of sends) of every burst: sends closer together
    than BURST_FRACTION of the period, which stand for one tick each but arrive as one."""
    bursts: list[tuple[int, int]] = []
    if len(send_times) < 2 or min(map(sub, send_times[1:], send_times)) >= BURST_FRACTION * period:
        return bursts  # the usual case: no two sends that close (a NaN first: the loop)
    index = 0
    while index < len(send_times):
        end = index + 1
        while end < len(send_times) and send_times[end] - send_times[end - 1] < (
            BURST_FRACTION * period
        ):
            end += 1
        if end - index > 1:
            bursts.append((index, end - index))
        index = end
    return bursts


@dataclass(frozen=True, slots=True)
class Resolved:
    """The period and retries an originator runs with, and where each came from."""

    period: float
    period_source: ValueSource
    retries: int
    retries_source: ValueSource
    notes: tuple[str, ...] = ()


def resolve_settings(
    settings: Settings, address: str, peer: str, key: int | None, inferred: float | None
) -> Resolved:
    """Period and retries of one originator: its config entry, then --period/--retries,
    then the config file's [defaults], then the inferred period / the IOS defaults."""
    notes: list[str] = []
    config = settings.config
    entry = None
    if config is not None:
        entry = config.lookup(address, peer, key)
        if entry is None:
            for other in config.other_keys(address, peer, key):
                written = "no key" if other.key is None else f"key {other.key}"
                notes.append(
                    f"{other.origin}: {other.name} is configured for {address} → {peer} with "
                    f"{written}, but this tunnel has {'no key' if key is None else f'key {key}'}"
                    ": the entry is not applied"
                )
    period: tuple[float, ValueSource] | None = None
    retries: tuple[int, ValueSource] | None = None
    if entry is not None:
        if not entry.keepalive:
            notes.append(
                f"{entry.origin}: configuration has no keepalive on {entry.name}, "
                "but the capture shows this endpoint sending keepalives"
            )
        else:
            if entry.period is not None:
                period = (entry.period, ValueSource.CONFIG)
            if entry.retries is not None:
                retries = (entry.retries, ValueSource.CONFIG)
    file_period = config.default_period if config and config.default_period else None
    file_retries = config.default_retries if config else None
    cli_period = (settings.period, ValueSource.CLI) if settings.period is not None else None
    cli_retries = (settings.retries, ValueSource.CLI) if settings.retries is not None else None
    file_p = (file_period, ValueSource.CONFIG) if file_period is not None else None
    file_r = (file_retries, ValueSource.CONFIG) if file_retries is not None else None
    if entry is not None:
        period = period or file_p or cli_period
        retries = retries or file_r or cli_retries
    else:
        period = period or cli_period or file_p
        retries = retries or cli_retries or file_r
    if period is None:
        period = (
            (inferred, ValueSource.INFERRED)
            if inferred is not None
            else (DEFAULT_PERIOD, ValueSource.DEFAULT)
        )
    if retries is None:
        retries = (DEFAULT_RETRIES, ValueSource.DEFAULT)
    return Resolved(period[0], period[1], retries[0], retries[1], tuple(notes))


def _count_between(times: DataTimes | None, start: float, end: float) -> int:
    if times is None or end <= start:
        return 0
    return bisect_left(times, end) - bisect_left(times, start)


@dataclass(slots=True)
class _Timelines:
    """An originator's timeline over the capture's segments: one state machine per segment
    (the capture was not running between them), read as one timeline."""

    runs: list[tuple[Segment, OriginatorTimeline]]

    @property
    def events(self) -> list[KeepaliveEvent]:
        return list(chain.from_iterable(run.events for _segment, run in self.runs))

    @property
    def transitions(self) -> list[Transition]:
        return [t for _segment, run in self.runs for t in run.transitions]

    @property
    def extrapolated(self) -> int:
        return sum(run.extrapolated for _segment, run in self.runs)

    @property
    def line_state(self) -> LineState:
        return self.runs[-1][1].line_state if self.runs else LineState.UP

    @property
    def counter(self) -> int:
        return self.runs[-1][1].counter if self.runs else 0


def _timeline(
    originator: OriginatorLog,
    period: float,
    retries: int,
    segments: list[Segment],
    profile: Profile | None = None,
    burst_period: float | None = None,
    requests: list[Request] | None = None,
) -> _Timelines:
    """The originator's timeline in every segment of the capture where it shows up; each
    runs from a fresh state and ends where its segment ends (nothing is extrapolated across
    a gap). `requests`: its requests in time order, when the caller has them."""
    if requests is None:
        requests = _in_time_order(originator.requests)
    replies = _in_time_order(originator.replies)
    if len(segments) == 1:
        return _Timelines(
            [
                (
                    segments[0],
                    _run(
                        requests, replies, period, retries, segments[0].end, profile, burst_period
                    ),
                )
            ]
        )
    runs: list[tuple[Segment, OriginatorTimeline]] = []
    request_times = [r.time for r in requests]
    reply_times = [r.time for r in replies]
    for segment in segments:
        sends = requests[
            bisect_left(request_times, segment.start) : bisect_right(request_times, segment.end)
        ]
        returns = replies[
            bisect_left(reply_times, segment.start) : bisect_right(reply_times, segment.end)
        ]
        if sends or returns:
            run = _run(sends, returns, period, retries, segment.end, profile, burst_period)
            runs.append((segment, run))
    return _Timelines(runs)


def _run(
    requests: list[Request],
    replies: list[Reply],
    period: float,
    retries: int,
    capture_end: float,
    profile: Profile | None,
    burst_period: float | None = None,
) -> OriginatorTimeline:
    """Run the state machine over sends (observed and extrapolated) and replies, in time order.

    A burst of n sends stands for the n ticks its sends make: the ticks missing before it
    are counted up to n − 1 periods before its first send, so it invents none.
    """
    timeline = (
        OriginatorTimeline(period, retries)
        if profile is None
        else profile.timeline(period, retries)
    )
    # Where the ticks missing before each send are counted up to (exclusive).
    until = [r.time for r in requests]
    for first, count in find_bursts(until, burst_period or period):
        until[first] -= (count - 1) * period
    timeline.replay(requests, replies, until, capture_end)
    return timeline


def _blackhole(
    events: list[KeepaliveEvent],
    transitions: list[Transition],
    data: DataTimes | None,
    period: float,
    capture_end: float,
) -> Blackhole:
    """Data sent into the tunnel between the failure and the down transition or recovery."""
    low = high = 0
    for first_unanswered, start_max, end in blackhole_windows(
        events, transitions, period, capture_end
    ):
        low += _count_between(data, first_unanswered, end)
        high += _count_between(data, start_max, end)
    return Blackhole(low, high)


def blackhole_span(
    events: list[KeepaliveEvent],
    transitions: list[Transition],
    period: float,
    capture_end: float,
) -> Span:
    """How long the blackhole lasted, in seconds: `min` from the first unanswered send,
    `max` from the last answered one (the same windows as the packet counts)."""
    windows = blackhole_windows(events, transitions, period, capture_end)
    return Span(
        sum(end - first for first, _start, end in windows),
        sum(end - start for _first, start, end in windows),
    )


def blackhole_windows(
    events: list[KeepaliveEvent],
    transitions: list[Transition],
    period: float,
    capture_end: float,
) -> list[tuple[float, float, float]]:
    """(first unanswered send, last answered send or that, end) of every failure episode:
    the end is the down transition, else the first reply after it, else the capture's end."""
    if None not in map(_PARTNER, events):
        return []  # every send answered (and every reply paired): no episode
    sends = [e for e in events if e.role is not KeepaliveRole.RETURNED]
    replies = [e.time for e in events if e.role is KeepaliveRole.RETURNED]
    windows: list[tuple[float, float, float]] = []
    last_answered: float | None = None
    index = 0
    while index < len(sends):
        send = sends[index]
        if send.partner_frame is not None:
            last_answered = send.time
            index += 1
            continue
        first_unanswered = send.time
        # The episode ends at the first reply after it, or at the capture's end.
        next_reply = bisect_right(replies, first_unanswered)
        reply_at = replies[next_reply] if next_reply < len(replies) else None
        down_at = next(
            (
                t.time
                for t in transitions
                if t.state is LineState.DOWN
                and t.time >= first_unanswered
                and (reply_at is None or t.time < reply_at)
            ),
            None,
        )
        end = down_at if down_at is not None else reply_at
        while (
            index < len(sends)
            and sends[index].partner_frame is None
            and (reply_at is None or sends[index].time < reply_at)
        ):
            index += 1
        if end is None:
            # Still failing when the capture ends. A single last keepalive whose reply
            # could not have arrived yet is no evidence of failure.
            if capture_end - first_unanswered < period:
                continue
            end = capture_end
        start_max = last_answered if last_answered is not None else first_unanswered
        windows.append((first_unanswered, start_max, end))
    return windows


def _vantage(originators: list[OriginatorResult]) -> tuple[str | None, str | None]:
    """Which endpoint the capture was taken next to, judged by how fast replies follow."""
    timed = [o for o in originators if o.rtt_ms is not None]
    if not timed:
        return None, None
    fastest = min(timed, key=lambda o: o.rtt_ms.median if o.rtt_ms else 0.0)
    assert fastest.rtt_ms is not None
    others = [o for o in timed if o is not fastest and o.rtt_ms is not None]
    if others:
        slowest = max(o.rtt_ms.median for o in others if o.rtt_ms is not None)
        if fastest.rtt_ms.median < slowest / 2:
            return fastest.peer, (
                f"{fastest.peer} reflects {fastest.address}'s keepalives in "
                f"{fastest.rtt_ms.median:g} ms (median) while its own take {slowest:g} ms"
            )
        return None, "both endpoints' keepalives take similar round trips"
    if fastest.rtt_ms.median < REFLECTION_RTT_MS:
        return fastest.peer, (
            f"{fastest.peer} reflects {fastest.address}'s keepalives in "
            f"{fastest.rtt_ms.median:g} ms (median)"
        )
    return None, None


def _finish(
    originator: OriginatorLog,
    settings: Settings,
    collector: Collector,
    segments: list[Segment],
    estimate: PeriodEstimate | None,
) -> OriginatorResult:
    requests = _in_time_order(originator.requests)
    send_times = list(map(_TIME, requests))
    inferred = None if estimate is None else estimate.period
    resolved = resolve_settings(
        settings, originator.address, originator.peer, originator.tunnel[1], inferred
    )
    period, retries = resolved.period, resolved.retries
    retries_source = resolved.retries_source
    notes = list(resolved.notes)
    flow = (originator.address, originator.peer, originator.tunnel[1])
    choice = choose_profile(
        settings.profiles,
        originator.address,
        collector.traits.get(flow),
        inferred,
        originator.inner_addresses,
    )
    profile = choice.profile
    if not profile.originates:
        notes.append(
            f"profile {profile.name} never originates keepalives, but the capture shows this "
            "endpoint sending them: analysed as Cisco IOS"
        )
        profile = PROFILES["cisco"]
    if resolved.period_source is ValueSource.DEFAULT:
        period = profile.default_period
    if retries_source is ValueSource.DEFAULT:
        retries = profile.default_retries
    # Bursts are judged against the shorter of the period used and the one observed: a
    # configured period longer than the real one must not make every send a burst.
    burst_period = period if inferred is None else min(period, inferred)
    timeline = _timeline(originator, period, retries, segments, profile, burst_period, requests)
    # Where this originator's timeline ends: the end of its last segment.
    capture_end = timeline.runs[-1][0].end if timeline.runs else segments[-1].end
    data = collector.data_times.get(flow)
    data_frames = collector.data_frames.get(flow, _NO_FRAMES)
    # The counters after each tick do not depend on retries: one timeline serves the inference.
    retries_inferred = infer_retries(
        timeline.events, data if data is not None else _NO_TIMES, data_frames, period, capture_end
    )
    retries_confidence = None
    if (
        settings.infer_retries
        and retries_source is ValueSource.DEFAULT
        and retries_inferred is not None
        and retries_inferred.retries is not None
    ):
        retries, retries_source = retries_inferred.retries, ValueSource.INFERRED
        retries_confidence = retries_inferred.confidence
        timeline = _timeline(originator, period, retries, segments, profile, burst_period, requests)
    events, transitions = timeline.events, timeline.transitions
    blackholed = [
        _blackhole(run.events, run.transitions, data, period, segment.end)
        for segment, run in timeline.runs
    ]
    spans = [
        blackhole_span(run.events, run.transitions, period, segment.end)
        for segment, run in timeline.runs
    ]
    if len(segments) > 1:
        notes.extend(_segment_notes(timeline, segments))
    # The round trips of the sent rows, and the requests answered (without a Python loop)
    sent_rows = map(is_, map(_ROLE, events), repeat(KeepaliveRole.SENT))
    rtts = sorted(filter(_NOT_NONE, compress(map(_RTT, events), sent_rows)))
    returned = len(originator.requests) - list(map(_REPLY, originator.requests)).count(None)
    if not originator.requests:
        notes.append("replies addressed to this endpoint were seen but none of its requests")
    first_down = next((t for t in transitions if t.state is LineState.DOWN), None)
    if first_down is not None and not any(
        e.role is KeepaliveRole.RETURNED
        for e in takewhile(lambda e: e.time < first_down.time, events)
    ):
        notes.append(
            f"none of its keepalives came back before its line protocol went down at "
            f"{_utc(first_down.time)} UTC: the failure may have begun before the capture did "
            "(its counter then is not known and is taken as 0), so the line may have gone "
            "down earlier, and what was blackholed before that is not in the figures"
        )
    seen_twice = originator.duplicates
    if seen_twice >= 2 and 2 * seen_twice >= len(originator.requests) + returned and data:
        notes.append(
            f"{seen_twice} of its keepalive packets were seen twice (the copy within 0.5 s, "
            "as on Linux's 'any' interface or in files of two interfaces merged, which see "
            "a packet once per interface): its data packets are likely counted twice as "
            "well, and the blackholed figures with them"
        )
    result = OriginatorResult(
        address=originator.address,
        peer=originator.peer,
        period=period,
        period_source=resolved.period_source,
        retries=retries,
        retries_source=retries_source,
        sent=len(originator.requests),
        returned=returned,
        unanswered=len(originator.requests) - returned,
        extrapolated=timeline.extrapolated,
        duplicates=originator.duplicates,
        rtt_ms=RttStats(rtts[0], round(statistics.median(rtts), 3), rtts[-1]) if rtts else None,
        transitions=transitions,
        final_state=timeline.line_state,
        final_counter=timeline.counter,
        down_seconds=sum(
            down_seconds(run.transitions, segment.end) for segment, run in timeline.runs
        ),
        blackholed_packets=Blackhole(
            sum(b.min for b in blackholed), sum(b.max for b in blackholed)
        ),
        data_packets=len(data) if data is not None else 0,
        inner_addresses=originator.inner_addresses,
        variants=sorted(originator.variants),
        events=events,
        notes=notes,
        observed_period=inferred,
        blackhole_seconds=Span(sum(b.min for b in spans), sum(b.max for b in spans)),
        traits=collector.traits.get(flow),
        data_times=data if data is not None else _NO_TIMES,
        data_frames=data_frames,
        retries_confidence=retries_confidence,
        retries_inferred=retries_inferred,
        profile=choice.profile.name,
        profile_source=choice.source,
        profile_evidence=list(choice.evidence),
        hold_time=profile.hold_time(period, retries),
        period_agreeing=0 if estimate is None else estimate.agreeing,
        period_intervals=0 if estimate is None else estimate.intervals,
        bursts=[
            Burst(
                send_times[first],
                requests[first].frame,
                count,
                send_times[first + count - 1] - send_times[first],
            )
            for first, count in find_bursts(send_times, burst_period)
        ],
        segments=[(seg.start, seg.end) for seg, _run in timeline.runs] if len(segments) > 1 else [],
    )
    return result


def build_analysis(collector: Collector, settings: Settings, *, final: bool = False) -> Analysis:
    """Every tunnel's keepalive timelines from a finished streaming pass (no diagnoses yet):
    first the tunnels with keepalives, then those that carry only data.

    `final`: the collector will take no more frames, so flows whose requests look alike
    may share one :class:`Traits` (200,000 idle tunnels: 1.4 KB each saved).
    """
    return Analysis(collector.source, list(plan_tunnels(collector, settings, final=final)()))


def plan_tunnels(
    collector: Collector, settings: Settings, *, final: bool = False
) -> Callable[[], Iterator[TunnelResult]]:
    """:func:`build_analysis` a tunnel at a time: what every timeline depends on (capture
    segments, periods, the source's warnings) is worked out now; the function returned
    makes the tunnels, in order, each time it is called."""
    if final:
        collector.pairer.finish()
        _share_equal_traits(collector)
    by_tunnel: dict[TunnelId, list[OriginatorLog]] = {}
    for (tunnel, _address), originator in collector.pairer.originators.items():
        by_tunnel.setdefault(tunnel, []).append(originator)
    out_of_order: set[int] = set()
    send_times = {
        key: _sorted_times(log.requests, out_of_order)
        for key, log in collector.pairer.originators.items()
    }
    estimates = {key: estimate_period(times) for key, times in send_times.items()}
    # A period that stretches the capture-gap threshold needs two intervals agreeing: one
    # interval of hours (one keepalive in each part of a merged file) is no evidence.
    periods = [e.period for e in estimates.values() if e is not None and e.agreeing >= 2]
    segments = capture_segments(
        collector, settings, max(periods, default=0.0), send_times, out_of_order
    )
    if len(segments) > 1:
        breaks = [(before.end, after.start) for before, after in pairwise(segments)]
        estimates = {key: estimate_period(times, breaks) for key, times in send_times.items()}
    with_keepalives = sorted(by_tunnel.items(), key=lambda item: _tunnel_sort_key(item[0]))
    data_only = {
        tunnel_id(src, dst, key)
        for src, dst, key in collector.data_times
        if tunnel_id(src, dst, key) not in by_tunnel
    }

    def tunnels() -> Iterator[TunnelResult]:
        for tunnel, members in with_keepalives:
            results = [
                _finish(o, settings, collector, segments, estimates[(tunnel, o.address)])
                for o in sorted(members, key=lambda o: o.address)
            ]
            yield _tunnel(collector, tunnel, results)
        for tunnel in sorted(data_only, key=_tunnel_sort_key):
            yield _tunnel(collector, tunnel, [])

    return tunnels


def _share_equal_traits(collector: Collector) -> None:
    """One Traits object for every flow whose counts are equal (never mutated again)."""
    shared: dict[tuple[object, ...], Traits] = {}
    for flow, traits in collector.traits.items():
        key = (
            traits.requests,
            traits.cisco_ip_ids,
            *(
                tuple(counts.items())
                for counts in (
                    traits.outer_protocols,
                    traits.inner_versions,
                    traits.inner_ttls,
                    traits.inner_keys,
                    traits.payload_lengths,
                    traits.outer_ttls,
                )
            ),
        )
        collector.traits[flow] = shared.setdefault(key, traits)


def _note_downs_from_extrapolated_ticks_only(o: OriginatorResult, *, near: bool) -> None:
    """A line that went down although every send the capture holds came back went down on
    extrapolated ticks alone. From a capture next to the originator (`near`), where no send
    of it can be missing, that means a longer period for part of the capture (a keepalive
    changed mid-capture); where the vantage is unknown, it may."""
    if o.unanswered or not o.extrapolated or o.sent == 0:
        return
    downs = sum(t.state is LineState.DOWN for t in o.transitions)
    if not downs:
        return
    why = (
        "the capture is taken next to it, so no send of it is missing: its period was "
        if near
        else "if no send of it can be missing from the capture (taken next to it), its period was "
    )
    o.notes.append(
        f"its line protocol went down {counted(downs, 'time')} although every "
        f"keepalive of it in the capture came back: only the {o.extrapolated} ticks "
        f"extrapolated between its sends (at the {o.period:g} s period) took it down; {why}"
        "longer for part of the capture (a keepalive changed mid-capture?): give --period, "
        "or analyse each part on its own"
    )


def _tunnel(
    collector: Collector, tunnel: TunnelId, originators: list[OriginatorResult]
) -> TunnelResult:
    endpoints, key = tunnel
    vantage, reason = _vantage(originators)
    data_packets = sum(
        len(collector.data_times.get((a, b, key), ()))
        for a, b in (endpoints, (endpoints[1], endpoints[0]))
    )
    result = TunnelResult(endpoints, key, vantage, reason, originators, data_packets)
    for originator in originators:
        if vantage is None or vantage == originator.address:
            _note_downs_from_extrapolated_ticks_only(originator, near=vantage is not None)
    for a, b in (endpoints, (endpoints[1], endpoints[0])):
        times = collector.data_times.get((a, b, key))
        if times is not None:
            result.data_times[a] = times
            result.data_frames[a] = collector.data_frames[(a, b, key)]
        if collector.source.data_recorded:
            result.directions.append(
                DataDirection(
                    a,
                    b,
                    len(times) if times else 0,
                    times[0] if times else None,
                    times[-1] if times else None,
                )
            )
    return result


_TIME = attrgetter("time")
_FRAME = attrgetter("frame")
_PARTNER = attrgetter("partner_frame")
_TIME_FRAME = attrgetter("time", "frame")
_ROLE = attrgetter("role")
_RTT = attrgetter("rtt_ms")
_REPLY = attrgetter("reply")
_NOT_NONE = partial(is_not, None)
_Record = TypeVar("_Record", Request, Reply)


def _in_time_order(records: list[_Record]) -> list[_Record]:
    """The records sorted by (time, frame); they come in frame order, so times that only
    grow mean they are sorted already (nearly always)."""
    times = list(map(_TIME, records))
    if all(map(lt, times, times[1:])):
        return records
    return sorted(records, key=_TIME_FRAME)


def _sorted_times(
    records: Sequence[Request] | Sequence[Reply], out_of_order: set[int] | None = None
) -> list[float]:
    """The records' times in time order (they come in frame order, nearly always the same);
    `out_of_order` collects the id of a list that was not."""
    times = list(map(_TIME, records))
    if not all(map(le, times, times[1:])):
        times.sort()
        if out_of_order is not None:
            out_of_order.add(id(records))
    return times


def capture_segments(
    collector: Collector,
    settings: Settings,
    longest_period: float = 0.0,
    send_times: dict[tuple[TunnelId, str], list[float]] | None = None,
    out_of_order: set[int] | None = None,
) -> list[Segment]:
    """The stretches of the capture that were running: split at every silence longer than
    the capture-gap threshold (and GAP_PERIODS times the longest period), each said in
    `source.warnings`; timestamps going back in time are said there too. `send_times`:
    each originator's request times, sorted, when the caller has them already (and
    `out_of_order` the ids of the request lists that were not in time order)."""
    source = collector.source
    start = source.start or 0.0
    end = source.end or 0.0
    logs = collector.pairer.originators
    if send_times is None or out_of_order is None:
        out_of_order = set()
        send_times = {key: _sorted_times(log.requests, out_of_order) for key, log in logs.items()}
    sends = send_times
    keepalives: list[Sequence[float]] = [
        *sends.values(),
        *(_sorted_times(log.replies) for log in logs.values()),
    ]
    longest = max(longest_period, settings.period or 0.0)
    threshold = max(settings.capture_gap, GAP_PERIODS * longest)
    columns: list[Sequence[float]] = [[start, end], *keepalives, *collector.data_times.values()]
    gaps = long_gaps(columns, threshold)
    source.gaps = gaps
    everything: list[float] | None = None  # every keepalive time, sorted, if it matters
    extremes = [t for column in keepalives if column for t in (column[0], column[-1])]
    # Sorted columns: a time outside the calendar (or infinite) is at one of their ends.
    # Readers never give NaN (integer seconds and fractions).
    if not all(map(in_calendar, [start, end, *extremes])):
        everything = sorted(t for column in keepalives for t in column)
        calendar = outside_calendar_warning(everything or [start, end])
        if calendar is not None:
            source.warnings.append(calendar)
    for before, after in gaps:
        source.warnings.append(
            f"no packet for {_duration(after - before)} ({_utc(before)} … {_utc(after)} UTC): "
            "the capture was not running (or saw no GRE); no timeline is extrapolated across "
            f"it (--capture-gap sets how long a silence must be, now {threshold:g} s)"
        )
    back = _going_back(collector, out_of_order)
    if back is not None:
        times = "once" if back.count == 1 else f"{back.count} times"
        source.warnings.append(
            f"timestamps go back in time {times} (by up to {_duration(back.largest)}, first at "
            f"frame {back.first_frame}): the file looks merged from several captures; it is "
            "analysed in time order"
        )
    if source.cut_requests:
        cut = source.cut_requests
        source.warnings.append(
            f"{counted(cut, 'keepalive request')} cut short by the capture's "
            "snaplen inside the inner GRE header: taken as requests by the inner IP header "
            "(GRE, addressed back, no longer than a keepalive); their inner key and payload "
            "are not seen (capture with a larger snaplen, e.g. tcpdump -s 0)"
        )
    if everything is None:
        return segments_between(start, end, gaps)
    return segments_between(
        start, end, with_calendar_edges(gaps, sorted([start, end, *everything]))
    )


def _going_back(collector: Collector, out_of_order: set[int]) -> Backwards | None:
    """Steps back in time in frame order: within each originator's requests and each data
    flow, and between the first and last packet of every originator and data flow (a data
    flow's columns are in time order, so one whose earliest packet comes after its latest
    went back)."""
    found: list[Backwards] = []
    samples: list[tuple[int, float]] = []
    for log in collector.pairer.originators.values():
        requests = log.requests
        if not requests:
            continue
        first, last = requests[0], requests[-1]
        if id(requests) in out_of_order:
            steps = backwards_steps(
                list(zip(map(_FRAME, requests), map(_TIME, requests), strict=True))
            )
            if steps is not None:
                found.append(steps)
        samples += [(first.frame, first.time), (last.frame, last.time)]
    for flow, column in collector.data_times.items():
        if len(column):
            frames = collector.data_frames[flow]
            samples += [(frames[0], column[0]), (frames[-1], column[-1])]
    across = backwards_steps(sorted(samples))
    if across is not None:
        found.append(across)
    found += collector.data_backwards.values()
    if not found:
        return None
    return Backwards(
        max(b.count for b in found),
        max(b.largest for b in found),
        min(b.first_frame for b in found),
    )


def _segment_notes(timeline: _Timelines, segments: list[Segment]) -> list[str]:
    """Where each of the originator's timelines ends because the capture stopped."""
    notes = []
    for segment, _run in timeline.runs:
        if segment is segments[-1]:
            continue
        following = segments[segments.index(segment) + 1]
        notes.append(
            f"timeline ends at {_utc(segment.end)} UTC where its capture segment ends (nothing "
            f"captured until {_utc(following.start)} UTC): not extrapolated across the gap"
        )
    return notes


def _utc(epoch: float) -> str:
    return utc_text(epoch)  # @epoch seconds outside the calendar


def _duration(seconds: float) -> str:
    """A duration for a person: seconds, minutes, hours, days or years."""
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size if unit in ("years", "days") else seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.3f} s"


def _tunnel_sort_key(tunnel: TunnelId) -> tuple[tuple[str, str], int]:
    endpoints, key = tunnel
    return endpoints, -1 if key is None else key
