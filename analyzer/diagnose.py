"""Diagnoses: say *why* a tunnel's keepalives failed, and replay a capture under another setting.

Every diagnosis is a plain mapping (the JSON ``diagnoses`` list of a tunnel)::

    {"code": "leg-down", "severity": "error", "message": "…", "time": 1764115235.0,
     "evidence": [682, 733], "originator": "192.0.2.1", "details": {…}}

`evidence` lists capture frames that show it; `time` is when it began (None when it is a
property of the whole capture). The codes, and what each is judged from:

leg-down          an originator's keepalives go unanswered for two or more ticks while the
                  capture still sees it send them. If the peer's keepalives or data still
                  arrive during the failure, the originator→peer leg is down (and the peer,
                  whose reflections cross that leg, loses its keepalives too although the
                  capture shows them reflected); if nothing from the peer arrives, the
                  peer→originator leg is down and the other leg cannot be judged from here.
one-sided         only one endpoint of a tunnel originates keepalives while the other reflects
                  them: the far end never notices a failure.
reply-filtered    none of an originator's keepalives comes back during the whole capture while
                  the peer's data arrives: uRPF/ACL on the reflector or a firewall dropping
                  payload-less GRE.
address-mismatch  inner addresses that do not mirror the outer ones (NAT, overlay addresses).
key-mismatch      the inner GRE key differs from the outer one, or the two ends use different
                  keys (each end then drops the other's packets).
period-mismatch   the configured period disagrees with the observed send interval.
retries-unknown   retries neither configured nor readable from the data traffic, while a
                  failure makes them matter.
retries-inferred  retries not configured but read from the data traffic (not applied unless
                  ``--retries infer``).
retries-mismatch  configured retries that the data traffic contradicts.
flapping          more than N transitions within M minutes.
late-detection    more blackholed data packets than a threshold, with a faster setting and
                  what it would have blackholed.

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

import ipaddress
import math
import re
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from itertools import pairwise

from analyzer.model import (
    Analysis,
    Blackhole,
    DataFrames,
    DataTimes,
    KeepaliveEvent,
    KeepaliveRole,
    OriginatorResult,
    RetriesInference,
    Span,
    TunnelResult,
    ValueSource,
    WhatIf,
)
from analyzer.state import (
    MAX_PERIOD,
    MAX_RETRIES,
    AnyMachine,
    HoldTimerMachine,
    LineState,
    Transition,
)
from analyzer.timeline import OriginatorTimeline

MAX_EVIDENCE = 12  # frames listed per diagnosis
PERIOD_TOLERANCE = 0.1  # period-mismatch: observed and configured differ by more than 10 %
ONE_SIDED_MIN_SPAN = 10.0  # one-sided: the capture covers 2 × max(period, this) seconds
SUGGESTIONS = ((2.0, 3), (1.0, 3))  # late-detection: faster settings tried in this order


class Severity(StrEnum):
    """How bad a diagnosis is."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class DiagnoseOptions:
    """Thresholds of the diagnoses that have one."""

    flap_transitions: int = 4  # flapping: more than this many transitions …
    flap_minutes: float = 5.0  # … within this many minutes
    late_detection_packets: int = 100  # late-detection: blackholed packets (min) above this
    # endpoints declared linux-reflector (None: every endpoint), for one-sided
    linux_reflectors: tuple[str | None, ...] = ()


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


def episodes(events: Sequence[KeepaliveEvent], period: float, capture_end: float) -> list[Episode]:
    """Failure episodes, delimited as the blackhole count delimits them: from the first
    unanswered tick to the first reply after it. A single last tick whose reply could not
    have arrived before the capture ended is no failure."""
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


# --------------------------------------------------------------------------- the diagnoses


def diagnose(analysis: Analysis, options: DiagnoseOptions | None = None) -> None:
    """Fill every tunnel's `diagnoses` (replacing what was there)."""
    options = options or DiagnoseOptions()
    source = analysis.source
    start = source.start or 0.0
    end = source.end or 0.0
    mismatched = _key_mismatch_between_directions(analysis)
    for tunnel in analysis.tunnels:
        found: list[dict[str, object]] = []
        found.extend(mismatched.get(id(tunnel), []))
        keyed_elsewhere = id(tunnel) in mismatched
        if len(tunnel.originators) == 1 and not keyed_elsewhere:
            found.extend(_one_sided(tunnel, tunnel.originators[0], start, end, options))
        for o in tunnel.originators:
            peer = next((p for p in tunnel.originators if p.address == o.peer), None)
            # Keys that differ between the directions explain every lost keepalive; two
            # captures (analyzer.merge) tell the legs exactly and bring their own.
            exact = tunnel.merge is not None and tunnel.merge.get("diagnoses") is not None
            skip = keyed_elsewhere or exact
            filtered = [] if skip else _reply_filtered(tunnel, o, peer)
            found.extend(filtered)
            if not filtered and not skip:
                for episode in episodes(o.events, o.period, end):
                    found.extend(_leg_down(tunnel, o, peer, episode, end))
            found.extend(_address_mismatch(o))
            found.extend(_inner_key_mismatch(tunnel, o))
            found.extend(_period_mismatch(o))
            if not keyed_elsewhere:
                found.extend(_retries(o, end))
            found.extend(_flapping(o, options))
            found.extend(_late_detection(o, options, end))
        found.sort(key=lambda d: (_sort_time(d), _SEVERITY_ORDER[str(d["severity"])]))
        tunnel.diagnoses = found


_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


def _sort_time(diagnosis: dict[str, object]) -> float:
    time = diagnosis["time"]
    return time if isinstance(time, float) else -math.inf


def make_diagnosis(
    code: str,
    severity: Severity,
    message: str,
    time: float | None,
    evidence: Sequence[int | None],
    *,
    originator: str | None = None,
    details: dict[str, object] | None = None,
) -> dict[str, object]:
    """A diagnosis as the JSON contract spells it."""
    frames = sorted({f for f in evidence if f is not None})
    return {
        "code": code,
        "severity": severity.value,
        "message": message,
        "time": time,
        "evidence": frames[:MAX_EVIDENCE],
        "originator": originator,
        "details": details or {},
    }


def clock(epoch: float) -> str:
    """HH:MM:SS.mmm UTC, for messages."""
    stamp = datetime.fromtimestamp(epoch, UTC)
    return stamp.strftime("%H:%M:%S") + f".{stamp.microsecond // 1000:03d}"


def ordinal(number: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 21st …"""
    if 10 <= number % 100 <= 20:
        suffix = "th"
    else:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def _rtt_s(o: OriginatorResult) -> float:
    return o.rtt_ms.median / 1000.0 if o.rtt_ms is not None else 0.0


def _between(times: DataTimes | None, start: float, end: float) -> tuple[int, int]:
    """Index range of `times` within [start, end]."""
    if times is None or end < start:
        return 0, 0
    return bisect_left(times, start), bisect_right(times, end)


def _peer_traffic(
    tunnel: TunnelResult, peer: OriginatorResult | None, address: str, start: float, end: float
) -> tuple[list[KeepaliveEvent], list[int]]:
    """The peer's requests and data frames the capture shows within [start, end]."""
    requests = (
        [e for e in peer.events if e.role is KeepaliveRole.SENT and start <= e.time <= end]
        if peer is not None
        else []
    )
    times = tunnel.data_times.get(address)
    frames = tunnel.data_frames.get(address)
    low, high = _between(times, start, end)
    data = list(frames[low:high]) if frames is not None else []
    return requests, data


def _leg_down(
    tunnel: TunnelResult,
    o: OriginatorResult,
    peer: OriginatorResult | None,
    episode: Episode,
    capture_end: float,
) -> list[dict[str, object]]:
    observed = episode.observed
    x, p = o.address, o.peer
    if len(observed) < 2 or x == p:
        return []
    start = episode.start
    if episode.reply is None:
        end = capture_end
    else:
        end = min(episode.ticks[-1].time + _rtt_s(o), episode.reply.time)
    requests, data = _peer_traffic(tunnel, peer, p, start, end)
    evidence: list[int | None] = [t.frame for t in observed[:6]]
    evidence += [t.frame for t in o.transitions if start <= t.time <= end]
    count = len(episode.ticks)
    when = clock(start)
    recovered = (
        f"; answered again from {clock(episode.reply.time)}"
        if episode.reply is not None
        else "; still failing when the capture ends"
    )
    if requests or len(data) >= 2:
        arriving = " and ".join(
            part
            for part in (
                f"{len(requests)} of {p}'s keepalives" if requests else "",
                f"{len(data)} of its data packets" if len(data) >= 2 else "",
            )
            if part
        )
        message = (
            f"{x} → {p} leg down from {when}: {x}'s keepalives leave but none come back "
            f"({count} unanswered{recovered}), while {arriving} still arrive over "
            f"{p} → {x}."
        )
        details: dict[str, object] = {
            "failed": [[x, p]],
            "working": [[p, x]],
            "unknown": [],
            "end": None if episode.reply is None else episode.reply.time,
        }
        if peer is not None:
            retries = peer.retries
            # The failure began after the last answered send: the peer's reflections are
            # lost from then on at the earliest, from the first unanswered send at the latest.
            after = episode.last_answered.time if episode.last_answered is not None else start
            early = [
                e for e in peer.events if e.role is KeepaliveRole.SENT and after < e.time <= end
            ]
            down_min = early[retries].time if len(early) > retries else None
            down_max = requests[retries].time if len(requests) > retries else None
            message += (
                f" {p} loses its keepalives too: {x} reflects them (the capture shows the "
                f"reflections leaving) but the reflections cross the failed leg"
            )
            if down_min is not None:
                span = clock(down_min)
                if down_max is not None and down_max != down_min:
                    span += f"–{clock(down_max)}"
                message += (
                    f", so {p}'s line protocol goes down as well, about {span} (its "
                    f"{ordinal(retries + 1)} lost keepalive, retries {retries})."
                )
            else:
                message += f" ({len(early)} of them lost in this window)."
            details["peer_down_estimate"] = (
                None if down_min is None else {"min": down_min, "max": down_max}
            )
        else:
            message += f" {p} originates no keepalives, so it keeps forwarding into the dead leg."
        evidence += [r.frame for r in requests[:3]]
        evidence += data[:2]
        return [
            make_diagnosis(
                "leg-down", Severity.ERROR, message, start, evidence, originator=x, details=details
            )
        ]
    ever = bool(tunnel.data_times.get(p)) or (
        peer is not None and any(e.role is KeepaliveRole.SENT for e in peer.events)
    )
    if ever:
        message = (
            f"{p} → {x} leg down from {when}: {x}'s keepalives go unanswered ({count}"
            f"{recovered}) and nothing from {p} arrives meanwhile, although its "
            f"{'keepalives' if peer is not None else 'data'} did before. Whether {x} → {p} "
            f"failed too cannot be seen from a capture at {x}'s side (a capture at {p}, or "
            "both captures together, tell)."
        )
        details = {
            "failed": [[p, x]],
            "working": [],
            "unknown": [[x, p]],
            "end": None if episode.reply is None else episode.reply.time,
        }
    else:
        message = (
            f"{x}'s keepalives go unanswered from {when} ({count}{recovered}); nothing but "
            f"reflections ever comes from {p} in this capture, so which leg failed cannot "
            "be told."
        )
        details = {"failed": [], "working": [], "unknown": [[x, p], [p, x]], "end": None}
    return [
        make_diagnosis(
            "leg-down", Severity.ERROR, message, start, evidence, originator=x, details=details
        )
    ]


def _one_sided(
    tunnel: TunnelResult,
    o: OriginatorResult,
    capture_start: float,
    capture_end: float,
    options: DiagnoseOptions,
) -> list[dict[str, object]]:
    span = capture_end - capture_start
    answered = [e for e in o.events if e.role is KeepaliveRole.RETURNED]
    if not answered or span < 2 * max(o.period, ONE_SIDED_MIN_SPAN):
        return []
    x, p = o.address, o.peer
    linux = o.peer in options.linux_reflectors or None in options.linux_reflectors
    message = (
        f"Only {x} originates keepalives: {p} reflects them ({len(answered)} came back) but "
        f"sends none in {span:.0f} s of capture (no keepalive configured, or a period longer "
        f"than that). If the path fails, {p} never notices: its line protocol stays up and "
        "it keeps forwarding into the tunnel."
    )
    if linux:
        message += f" Expected: {p} is a Linux endpoint, which never originates keepalives."
    return [
        make_diagnosis(
            "one-sided",
            Severity.INFO if linux else Severity.WARNING,
            message,
            None,
            [e.frame for e in answered[:3]],
            originator=x,
            details={"originator": x, "silent": p, "span": span},
        )
    ]


def _reply_filtered(
    tunnel: TunnelResult, o: OriginatorResult, peer: OriginatorResult | None
) -> list[dict[str, object]]:
    sends = [e for e in o.events if e.role is KeepaliveRole.SENT]
    if len(sends) < 3 or any(e.role is KeepaliveRole.RETURNED for e in o.events):
        return []
    x, p = o.address, o.peer
    if x == p:
        return []
    first, last = sends[0].time, sends[-1].time
    _requests, data = _peer_traffic(tunnel, None, p, first, last + o.period)
    if len(data) < 2:
        return []
    message = (
        f"None of {x}'s {len(sends)} keepalives came back during the whole capture, while "
        f"{p}'s data keeps reaching {x} ({len(data)} packets): the {p} → {x} path carries "
        "data but not the bare PT-0 GRE packets of the replies. Typical of uRPF or an ACL on "
        f"{p} (the decapsulated keepalive arrives over the tunnel with {p}'s own address as "
        "its source) or of a firewall that drops payload-less GRE."
    )
    peer_healthy = (
        peer is not None
        and peer.returned > 0
        and not any(t.state is LineState.DOWN for t in peer.transitions)
    )
    if peer_healthy:
        message += f" {p}'s own keepalives are answered, so the {x} → {p} leg works too."
    else:
        message += (
            f" (Unless the {x} → {p} leg is down altogether: nothing in this capture shows "
            f"{x}'s packets reaching {p}.)"
        )
    return [
        make_diagnosis(
            "reply-filtered",
            Severity.ERROR,
            message,
            first,
            [*(e.frame for e in sends[:4]), *data[:2]],
            originator=x,
            details={"unanswered": len(sends), "peer_data": len(data), "peer_up": peer_healthy},
        )
    ]


# Addresses a router behind NAT or an overlay uses (RFC 1918, shared CGN space, link-local,
# unique-local); documentation ranges are not among them, whatever `is_private` says.
_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "fc00::/7",
        "fe80::/10",
    )
)


def _private(address: str) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in _PRIVATE_NETWORKS)


def _address_mismatch(o: OriginatorResult) -> list[dict[str, object]]:
    if o.inner_addresses is None:
        return []
    src, dst = o.inner_addresses
    x, p = o.address, o.peer
    if src == p and dst != x:
        pattern = "nat"
        what = f"the inner destination {dst} is not {x}" + (
            f": {x} is behind NAT and names its private address {dst} inside while a NAT "
            f"on the path rewrote the outer source to {x} (MikroTik behind NAT does this)"
            if _private(dst) and not _private(x)
            else ""
        )
    elif src != p and dst == x:
        pattern = "nat"
        what = (
            f"the inner source {src} is not {p}: {x} knows its peer by {src} "
            "(the peer is behind NAT, or a NAT on the path rewrote the outer destination)"
        )
    else:
        pattern = "overlay"
        what = (
            f"the inner header uses {src} → {dst} instead of {p} → {x}: overlay (tunnel "
            "interface) addresses, as VeloCloud uses, or NAT on both ends"
        )
    message = (
        f"{x}'s keepalives do not mirror the outer header: {what}. A strict reflector routes "
        f"the decapsulated packet by its inner destination, so the reply goes to {dst} "
        f"(not to {x}) or is dropped by uRPF because of its inner source {src}."
    )
    answered = o.returned > 0
    if answered:
        message += f" Here {o.returned} of {o.sent} came back: this path maps them back."
    else:
        message += " None came back in this capture."
    sends = [e.frame for e in o.events if e.role is KeepaliveRole.SENT][:3]
    return [
        make_diagnosis(
            "address-mismatch",
            Severity.WARNING if answered or o.sent < 2 else Severity.ERROR,
            message,
            None,
            sends,
            originator=x,
            details={
                "inner_src": src,
                "inner_dst": dst,
                "outer_src": x,
                "outer_dst": p,
                "pattern": pattern,
            },
        )
    ]


def _key_name(key: int | None) -> str:
    return "none" if key is None else str(key)


def _inner_key_mismatch(tunnel: TunnelResult, o: OriginatorResult) -> list[dict[str, object]]:
    traits = o.traits
    if traits is None:
        return []
    inner = sorted((k for k in traits.inner_keys if k != tunnel.key), key=lambda k: k or -1)
    if not inner and "reply-key-differs" not in o.variants:
        return []
    x = o.address
    outer = _key_name(tunnel.key)
    names = ", ".join(_key_name(k) for k in inner) or "another"
    message = (
        f"{x}'s keepalives carry key {outer} in the outer GRE header but {names} in the "
        f"inner one: the reply is a bare GRE packet with key {names}, which {x}'s tunnel "
        f"(key {outer}) does not accept — the router drops it even where the capture shows "
        "it coming back, and its line protocol goes down."
    )
    sends = [e.frame for e in o.events if e.role is KeepaliveRole.SENT][:3]
    return [
        make_diagnosis(
            "key-mismatch",
            Severity.ERROR,
            message,
            None,
            sends,
            originator=x,
            details={"outer_key": tunnel.key, "inner_keys": list(inner), "between": "headers"},
        )
    ]


def _key_mismatch_between_directions(analysis: Analysis) -> dict[int, list[dict[str, object]]]:
    """Both ends originate, each in a tunnel with its own key: they drop each other's packets."""
    by_pair: dict[tuple[str, str], list[TunnelResult]] = {}
    for tunnel in analysis.tunnels:
        by_pair.setdefault(tunnel.endpoints, []).append(tunnel)
    found: dict[int, list[dict[str, object]]] = {}
    for (a, b), tunnels in by_pair.items():
        if len(tunnels) < 2:
            continue
        keys_of: dict[str, set[int | None]] = {a: set(), b: set()}
        for tunnel in tunnels:
            for o in tunnel.originators:
                if o.sent:
                    keys_of[o.address].add(tunnel.key)
        if not keys_of[a] or not keys_of[b] or keys_of[a] & keys_of[b]:
            continue
        ka = ", ".join(_key_name(k) for k in sorted(keys_of[a], key=lambda k: k or -1))
        kb = ", ".join(_key_name(k) for k in sorted(keys_of[b], key=lambda k: k or -1))
        message = (
            f"{a} sends its keepalives with key {ka} but {b} with key {kb}: each end drops "
            "the other's GRE packets (keepalives and data alike), so neither hears the other "
            "— configure the same tunnel key on both ends."
        )
        for tunnel in tunnels:
            frames = [
                e.frame for o in tunnel.originators for e in o.events[:2] if e.frame is not None
            ]
            found.setdefault(id(tunnel), []).append(
                make_diagnosis(
                    "key-mismatch",
                    Severity.ERROR,
                    message,
                    None,
                    frames,
                    details={
                        "between": "directions",
                        "keys": {
                            a: sorted(keys_of[a], key=lambda k: k or -1),
                            b: sorted(keys_of[b], key=lambda k: k or -1),
                        },
                    },
                )
            )
    return found


def _period_mismatch(o: OriginatorResult) -> list[dict[str, object]]:
    observed = o.observed_period
    if (
        observed is None
        or o.period_source not in (ValueSource.CONFIG, ValueSource.CLI)
        or o.sent < 3
        or abs(observed - o.period) <= PERIOD_TOLERANCE * o.period
    ):
        return []
    x = o.address
    message = (
        f"{x} is set (by {o.period_source.value}) to a keepalive period of {o.period:g} s "
        f"but sends every {observed:g} s: the timeline runs with {o.period:g} s, so its "
        "extrapolated ticks and down transitions are off. Check the configuration given "
        "(or leave the period out and let it be inferred)."
    )
    sends = [e.frame for e in o.events if e.role is KeepaliveRole.SENT][:4]
    return [
        make_diagnosis(
            "period-mismatch",
            Severity.WARNING,
            message,
            None,
            sends,
            originator=x,
            details={"configured": o.period, "observed": observed},
        )
    ]


def _retries(o: OriginatorResult, capture_end: float) -> list[dict[str, object]]:
    inferred = o.retries_inferred
    x = o.address
    matters = bool(o.transitions) or bool(episodes(o.events, o.period, capture_end))
    evidence: list[int | None] = list(inferred.evidence) if inferred else []
    if o.retries_source is ValueSource.DEFAULT:
        if inferred is not None and inferred.retries is not None:
            stops = (
                f"its data traffic stops at its {ordinal(inferred.retries + 1)} unanswered "
                f"keepalive, i.e. retries {inferred.retries} (confidence "
                f"{inferred.confidence:.2f})"
            )
            if inferred.retries == o.retries:
                message = (
                    f"{x}'s retries are not configured: the analysis assumes {o.retries} and "
                    f"{stops}."
                )
            else:
                message = (
                    f"{x}'s retries are not configured: the analysis assumes {o.retries}, but "
                    f"{stops}; --retries infer uses that."
                )
            severity = Severity.WARNING if inferred.retries != o.retries else Severity.INFO
            return [
                make_diagnosis(
                    "retries-inferred",
                    severity,
                    message,
                    None,
                    evidence,
                    originator=x,
                    details={"assumed": o.retries, "inferred": inferred.retries},
                )
            ]
        if not matters:
            return []
        bound = ""
        if inferred is not None and inferred.lower_bound is not None:
            bound = (
                f" (its data kept flowing through {inferred.lower_bound} unanswered "
                f"keepalives, so retries ≥ {inferred.lower_bound})"
            )
        message = (
            f"{x}'s retries are not configured and cannot be read from this capture{bound}: "
            f"the analysis assumes {o.retries} ({_default_name(o)}), "
            f"so each retry of difference moves its down transitions by {o.period:g} s. "
            "Give --retries or --config."
        )
        return [
            make_diagnosis(
                "retries-unknown",
                Severity.INFO,
                message,
                None,
                evidence,
                originator=x,
                details={
                    "assumed": o.retries,
                    "lower_bound": inferred.lower_bound if inferred else None,
                },
            )
        ]
    if (
        o.retries_source in (ValueSource.CONFIG, ValueSource.CLI)
        and inferred is not None
        and inferred.retries is not None
        and inferred.retries != o.retries
        and inferred.confidence >= 0.8
    ):
        message = (
            f"{x} is set (by {o.retries_source.value}) to retries {o.retries}, but its data "
            f"traffic stops at its {ordinal(inferred.retries + 1)} unanswered keepalive, as "
            f"retries {inferred.retries} would make it (confidence {inferred.confidence:.2f})."
        )
        return [
            make_diagnosis(
                "retries-mismatch",
                Severity.WARNING,
                message,
                None,
                evidence,
                originator=x,
                details={"configured": o.retries, "inferred": inferred.retries},
            )
        ]
    return []


def _default_name(o: OriginatorResult) -> str:
    if o.profile in (None, "cisco"):
        return "the IOS default; some IOS references say 5"
    return f"the {o.profile} default"


def _flapping(o: OriginatorResult, options: DiagnoseOptions) -> list[dict[str, object]]:
    transitions = o.transitions
    window = options.flap_minutes * 60.0
    times = [t.time for t in transitions]
    best, best_at = 0, 0
    for index, time in enumerate(times):
        count = bisect_right(times, time + window) - index
        if count > best:
            best, best_at = count, index
    if best <= options.flap_transitions:
        return []
    chosen = transitions[best_at : best_at + best]
    downs = sum(1 for t in chosen if t.state is LineState.DOWN)
    message = (
        f"{o.address}'s line protocol changed state {best} times ({downs} downs) within "
        f"{options.flap_minutes:g} minutes from {clock(chosen[0].time)} (more than "
        f"{options.flap_transitions}): the tunnel is flapping — the path loses keepalives "
        "intermittently. More retries trade detection time for stability."
    )
    return [
        make_diagnosis(
            "flapping",
            Severity.WARNING,
            message,
            chosen[0].time,
            [t.frame for t in chosen],
            originator=o.address,
            details={
                "transitions": best,
                "minutes": options.flap_minutes,
                "threshold": options.flap_transitions,
            },
        )
    ]


def _late_detection(
    o: OriginatorResult, options: DiagnoseOptions, capture_end: float
) -> list[dict[str, object]]:
    blackhole = o.blackholed_packets
    if blackhole.min <= options.late_detection_packets:
        return []
    x = o.address
    detection = o.period * o.retries
    message = (
        f"{x} blackholed {blackhole.min}-{blackhole.max} data packets over "
        f"{o.blackhole_seconds.min:.3g} s before its line protocol noticed "
        f"(keepalive {o.period:g} {o.retries} needs {detection:g} s of silence)"
    )
    details: dict[str, object] = {"threshold": options.late_detection_packets}
    rtt_max = o.rtt_ms.max / 1000.0 if o.rtt_ms is not None else 0.0
    for period, retries in SUGGESTIONS:
        if period * retries >= detection or period < 2 * rtt_max:
            continue
        try:
            what_if = replay(o, period, retries, capture_end)
        except ReplayTooLong:
            break
        if what_if.blackhole_seconds.min >= what_if.baseline_seconds.min:
            continue
        message += (
            f"; keepalive {period:g} {retries} would have cut the blackhole from "
            f"{what_if.baseline_seconds.min:.3g} s to {what_if.blackhole_seconds.min:.3g} s "
            f"({what_if.baseline_packets.min} → {what_if.blackholed_packets.min} packets"
            f"{', estimated' if what_if.estimated else ''})"
        )
        details.update(
            suggestion=what_if.setting,
            blackhole_seconds=what_if.blackhole_seconds.min,
            baseline_seconds=what_if.baseline_seconds.min,
            blackholed_packets=what_if.blackholed_packets.min,
            baseline_packets=what_if.baseline_packets.min,
        )
        break
    evidence = [t.frame for t in o.transitions if t.state is LineState.DOWN]
    first = next(
        (e for e in episodes(o.events, o.period, capture_end)),
        None,
    )
    return [
        make_diagnosis(
            "late-detection",
            Severity.WARNING,
            message + ".",
            first.start if first is not None else None,
            evidence,
            originator=x,
            details=details,
        )
    ]


# ------------------------------------------------------------------------------- what-if

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
    rtt = _rtt_s(o)
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
    rtt = _rtt_s(o)
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
