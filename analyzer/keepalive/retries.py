"""Retries read from an originator's own data traffic, and the failure episodes they are
judged from (SPEC.md §2: forwarding stops at the (retries + 1)-th unanswered send)."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from operator import attrgetter

from analyzer.keepalive.model import (
    DataFrames,
    DataTimes,
    KeepaliveEvent,
    KeepaliveRole,
    RetriesInference,
)


@dataclass(frozen=True, slots=True)
class Episode:
    """A run of unanswered keepalive ticks of one originator."""

    ticks: tuple[KeepaliveEvent, ...]  # unanswered ticks (sent or extrapolated), in order
    last_answered: KeepaliveEvent | None  # the answered send before them
    reply: KeepaliveEvent | None  # the first reply after the first unanswered tick

    @property
    def start(self) -> float:
        """The first unanswered tick."""
        return self.ticks[0].time

    @property
    def observed(self) -> list[KeepaliveEvent]:
        """The unanswered ticks the capture shows."""
        return [t for t in self.ticks if t.role is KeepaliveRole.SENT]


_PARTNER = attrgetter("partner_frame")


def episodes(events: Sequence[KeepaliveEvent], period: float, capture_end: float) -> list[Episode]:
    """Failure episodes, delimited as the blackhole count delimits them: from the first
    unanswered tick to the first reply after it. A single last tick whose reply could not
    have arrived before the capture ended is no failure."""
    if None not in map(_PARTNER, events):
        return []  # every tick answered (and every reply paired): no episode
    ticks = [e for e in events if e.role is not KeepaliveRole.RETURNED]
    replies = [e for e in events if e.role is KeepaliveRole.RETURNED]
    reply_times = [e.time for e in replies]
    found: list[Episode] = []
    last_answered: KeepaliveEvent | None = None
    index = 0
    while index < len(ticks):
        tick = ticks[index]
        if tick.partner_frame is not None:
            last_answered = tick
            index += 1
            continue
        following = bisect_right(reply_times, tick.time)
        reply = replies[following] if following < len(replies) else None
        run: list[KeepaliveEvent] = []
        while (
            index < len(ticks)
            and ticks[index].partner_frame is None
            and (reply is None or ticks[index].time < reply.time)
        ):
            run.append(ticks[index])
            index += 1
        if reply is None and capture_end - run[0].time < period:
            continue
        found.append(Episode(tuple(run), last_answered, reply))
    return found


# ------------------------------------------------------------------------ retries inference

SINGLE_EPISODE_WEIGHT = 0.9  # one episode alone convinces at most this much
NO_RESUME_WEIGHT = 0.5  # data that never resumes may simply have ended
MAX_CONFIDENCE = 0.99
GAP_WINDOW = 20  # data gaps used to judge the data rate before a stop


def infer_retries(
    events: Sequence[KeepaliveEvent],
    data_times: DataTimes,
    data_frames: DataFrames,
    period: float,
    capture_end: float,
) -> RetriesInference | None:
    """Retries from when the originator's own data traffic stopped (SPEC.md §2: the line goes
    down, and forwarding stops, at the (retries + 1)-th unanswered send).

    Per failure episode with data flowing when it began: if the data stops before the
    episode ends, the tick that stopped it lies after the last data packet and no later than
    the next one was due (one typical gap later); the counter before that tick is the
    retries. k ticks in that interval make k candidates (the first is taken, weight 1/k);
    data that does not resume after the recovery halves the weight. If the data flows
    through the whole episode, retries ≥ the counter of its last unanswered tick (a lower
    bound). Episodes combine as 1 − Π(1 − 0.9 · weight) over those agreeing with the most
    weighted value, scaled by their share of the total weight, halved when a lower bound
    contradicts it, at most 0.99. Returns None when there is no failure episode with data.
    """
    if not data_times:
        return None
    votes: dict[int, list[float]] = {}
    evidence: dict[int, list[int]] = {}
    lower: int | None = None
    for episode in episodes(events, period, capture_end):
        start = episode.start
        end = episode.reply.time if episode.reply is not None else capture_end
        before = bisect_left(data_times, start)
        if before < 2:
            continue
        last = bisect_left(data_times, end) - 1
        window = data_times[max(last - GAP_WINDOW, 0) : last + 1]
        gaps = sorted(b - a for a, b in pairwise(window))
        gap = gaps[len(gaps) // 2] if gaps else period
        if data_times[before - 1] < start - max(period, 2 * gap):
            continue  # no data flowing when the failure began
        stopped_at = data_times[last]
        if end - stopped_at <= 3 * gap:
            bound = episode.ticks[-1].counter
            lower = bound if lower is None else max(lower, bound)
            continue
        ticks = [t for t in episode.ticks if stopped_at < t.time <= stopped_at + gap]
        if not ticks or ticks[0].counter < 2:
            continue  # the data stopped before any tick could have stopped it
        resumed = last + 1 < len(data_times) and data_times[last + 1] <= end + period + 3 * gap
        weight = (1.0 if resumed else NO_RESUME_WEIGHT) / len(ticks)
        retries = ticks[0].counter - 1
        votes.setdefault(retries, []).append(weight)
        evidence.setdefault(retries, []).extend(
            f for f in (data_frames[last], ticks[0].frame) if f is not None
        )
    if not votes:
        if lower is None:
            return None
        return RetriesInference(None, 0.0, lower, 0, (), f"data kept flowing: retries ≥ {lower}")
    best = max(votes, key=lambda r: (sum(votes[r]), -r))
    total = sum(sum(v) for v in votes.values())
    doubt = 1.0
    for weight in votes[best]:
        doubt *= 1.0 - SINGLE_EPISODE_WEIGHT * weight
    confidence = min((1.0 - doubt) * sum(votes[best]) / total, MAX_CONFIDENCE)
    reason = f"data stopped at the {ordinal(best + 1)} unanswered keepalive"
    if lower is not None and lower > best:
        confidence *= 0.5
        reason += f", but elsewhere it kept flowing through {lower}"
    episodes_used = sum(len(v) for v in votes.values())
    if episodes_used > 1:
        reason += f" ({len(votes[best])} of {episodes_used} episodes agree)"
    return RetriesInference(
        best, round(confidence, 2), lower, episodes_used, tuple(evidence[best]), reason
    )


def ordinal(number: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 21st …"""
    if 10 <= number % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"
