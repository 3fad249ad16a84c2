"""Two vantages: captures taken at both ends of a tunnel, merged into one analysis.

`gre-keepalive analyze a-side.pcap b-side.pcap`. Each capture is read on its own; then,
per tunnel the two have in common:

1. Packets are matched across the captures: a request by originator, key and inner IP ID,
   a reply by its addresses and IP ID (IPv4; IPv6 keepalives carry no ID and are not
   matched), each within :data:`MATCH_WINDOW` seconds of the other once a first, coarse
   clock offset (the median difference of all same-ID pairs) is removed.
2. A keepalive seen leaving, arriving, reflected and returning gives four timestamps, two
   per clock; as in NTP, ``offset = ((t2 − t1) − (t4 − t3)) / 2`` (the second capture's
   clock minus the first's, assuming equal delays both ways) and the sign of
   ``(t2 − t1) + (t4 − t3)`` (the path round trip) says which capture was taken at the
   originator. The median over all such keepalives is the offset.
3. The second capture is shifted onto the first one's clock and analysed; each originator
   is reported from the capture taken at its own end (its sends are seen leaving, its
   replies arriving), with `capture` naming the file.
4. Every keepalive crossing of each leg is judged: an originator's request crosses
   originator→peer, its reflection peer→originator. A packet that leaves one capture and
   never shows in the other died on that leg; a request that arrived but was never
   reflected died at the peer. Runs of two or more lost crossings make a leg's failure
   window; windows of both legs that overlap are one diagnosis ("both legs").

All times in the result are on the first capture's clock; frame numbers refer to the file
named in `capture` (originators) or in the diagnosis' details.
"""

from __future__ import annotations

import math
import statistics
from array import array
from dataclasses import dataclass, replace

from analyzer.diagnose.rules import clock, diagnose, make_diagnosis
from analyzer.keepalive.analysis import Settings
from analyzer.keepalive.collect import Collector
from analyzer.keepalive.model import (
    Analysis,
    DataDirection,
    Diagnosis,
    Severity,
    SourceSummary,
    TunnelResult,
)
from analyzer.keepalive.pairing import OriginatorLog, Reply, Request, TunnelId
from analyzer.keepalive.wording import counted
from analyzer.pipeline.analyze import analyze_collected, diagnose_options

MATCH_WINDOW = 2.0  # seconds: the same packet seen by both captures (after the coarse offset)
MIN_LOST_RUN = 2  # lost crossings in a row that make a leg's failure window


@dataclass(frozen=True, slots=True)
class Seen:
    """One packet in one capture."""

    time: float
    frame: int


@dataclass(slots=True)
class Crossing:
    """A keepalive packet crossing one leg, judged from both captures."""

    leg: tuple[str, str]  # (from, to)
    time: float  # departure, on the first capture's clock
    lost: bool
    frame: int  # in the capture at the leg's start
    originator: str
    ident: int
    what: str  # "request" or "reflection"


def _requests(log: OriginatorLog | None) -> dict[int, list[Seen]]:
    found: dict[int, list[Seen]] = {}
    for request in log.requests if log is not None else ():
        if request.inner.ip_id is not None:
            found.setdefault(request.inner.ip_id, []).append(Seen(request.time, request.frame))
    return found


def _replies(log: OriginatorLog | None) -> dict[int, list[Seen]]:
    found: dict[int, list[Seen]] = {}
    for reply in log.replies if log is not None else ():
        if reply.ip_id is not None:
            found.setdefault(reply.ip_id, []).append(Seen(reply.time, reply.frame))
    return found


def _match(seen: list[Seen] | None, time: float, window: float = MATCH_WINDOW) -> Seen | None:
    """The packet in `seen` closest to `time`, within the window."""
    if not seen:
        return None
    best = min(seen, key=lambda s: abs(s.time - time))
    return best if abs(best.time - time) <= window else None


@dataclass(slots=True)
class _Side:
    """One originator's packets in both captures."""

    address: str
    requests: tuple[dict[int, list[Seen]], dict[int, list[Seen]]]  # per capture
    replies: tuple[dict[int, list[Seen]], dict[int, list[Seen]]]


def _coarse_offset(sides: list[_Side]) -> float | None:
    differences = [
        b.time - a.time
        for side in sides
        for table in (side.requests, side.replies)
        for ident, firsts in table[0].items()
        for a in firsts
        for b in table[1].get(ident, ())
    ]
    return statistics.median(differences) if differences else None


def _exchanges(side: _Side, coarse: float) -> list[tuple[float, float]]:
    """(t2 − t1, t4 − t3) per keepalive of `side` seen four times (capture 0 = t1, t4)."""
    found: list[tuple[float, float]] = []
    for ident, firsts in side.requests[0].items():
        for request in firsts:
            other = _match(side.requests[1].get(ident), request.time + coarse)
            if other is None:
                continue
            back = _match(side.replies[1].get(ident), other.time, window=MATCH_WINDOW)
            home = (
                _match(side.replies[0].get(ident), back.time - coarse) if back is not None else None
            )
            if back is None or home is None:
                continue
            found.append((other.time - request.time, home.time - back.time))
    return found


@dataclass(frozen=True, slots=True)
class Alignment:
    """How two captures of one tunnel relate."""

    offset: float  # second capture's clock minus the first's
    samples: int
    round_trip: float  # median path round trip (seconds)
    near: tuple[str | None, str | None]  # endpoint next to capture 0 and capture 1


def align(tunnel: TunnelId, first: Collector, second: Collector) -> Alignment | None:
    """Clock offset and which end each capture was taken at, from one tunnel's keepalives."""
    endpoints = tunnel[0]
    sides = [
        _Side(
            address,
            (
                _requests(first.pairer.originators.get((tunnel, address))),
                _requests(second.pairer.originators.get((tunnel, address))),
            ),
            (
                _replies(first.pairer.originators.get((tunnel, address))),
                _replies(second.pairer.originators.get((tunnel, address))),
            ),
        )
        for address in endpoints
    ]
    coarse = _coarse_offset(sides)
    if coarse is None:
        return None
    offsets: list[float] = []
    trips: list[float] = []
    votes: dict[str, int] = {}
    for side in sides:
        for out, back in _exchanges(side, coarse):
            offsets.append((out - back) / 2)
            trips.append(abs(out + back))
            # Capture 0 next to this originator: the round trip out + back is positive.
            votes[side.address] = votes.get(side.address, 0) + (1 if out + back > 0 else -1)
    if not offsets:
        return Alignment(coarse, 0, 0.0, (None, None))
    a, b = endpoints
    score = votes.get(a, 0) - votes.get(b, 0)
    near: tuple[str | None, str | None] = (
        (a, b) if score > 0 else (b, a) if score < 0 else (None, None)
    )
    return Alignment(statistics.median(offsets), len(offsets), abs(statistics.median(trips)), near)


def shift(collector: Collector, delta: float) -> None:
    """Move every time the collector holds by `delta` seconds (in place)."""
    seen: set[int] = set()
    for log in collector.pairer.originators.values():
        items: list[Request | Reply] = [*log.requests, *log.replies]
        for item in items:
            if id(item) not in seen:
                seen.add(id(item))
                item.time += delta
    for flow, times in collector.data_times.items():
        collector.data_times[flow] = array("d", (t + delta for t in times))
    source = collector.source
    if source.start is not None:
        source.start += delta
    if source.end is not None:
        source.end += delta


def _crossings(
    tunnel: TunnelId,
    x: str,
    p: str,
    at_x: Collector,
    at_p: Collector,
    spans: tuple[tuple[float, float], tuple[float, float]],
) -> list[Crossing]:
    """Every keepalive of originator `x` crossing a leg, judged from both captures (both on
    one clock already)."""
    found: list[Crossing] = []
    own = at_x.pairer.originators.get((tunnel, x))
    far = at_p.pairer.originators.get((tunnel, x))
    arrived, reflected, returned = _requests(far), _replies(far), _replies(own)
    (x_start, x_end), (p_start, p_end) = spans
    for request in own.requests if own is not None else ():
        ident = request.inner.ip_id
        if ident is None or not (p_start <= request.time and request.time + MATCH_WINDOW <= p_end):
            continue
        there = _match(arrived.get(ident), request.time)
        found.append(
            Crossing((x, p), request.time, there is None, request.frame, x, ident, "request")
        )
        if there is None:
            continue
        back = _match(reflected.get(ident), there.time)
        if back is None:
            found.append(Crossing((p, p), there.time, True, there.frame, x, ident, "not-reflected"))
            continue
        if not (x_start <= back.time and back.time + MATCH_WINDOW <= x_end):
            continue
        home = _match(returned.get(ident), back.time)
        found.append(Crossing((p, x), back.time, home is None, back.frame, x, ident, "reflection"))
    return found


def _windows(crossings: list[Crossing]) -> list[tuple[float, float | None, list[Crossing]]]:
    """Runs of at least MIN_LOST_RUN lost crossings of one leg: (start, end, lost)."""
    runs: list[tuple[float, float | None, list[Crossing]]] = []
    current: list[Crossing] = []
    for crossing in sorted(crossings, key=lambda c: c.time):
        if crossing.lost:
            current.append(crossing)
            continue
        if len(current) >= MIN_LOST_RUN:
            runs.append((current[0].time, crossing.time, current))
        current = []
    if len(current) >= MIN_LOST_RUN:
        runs.append((current[0].time, None, current))
    return runs


def _leg_diagnoses(
    a: str, b: str, crossings: list[Crossing], near: dict[str, str]
) -> list[Diagnosis]:
    legs = {(a, b): [], (b, a): []}  # type: dict[tuple[str, str], list[Crossing]]
    for crossing in crossings:
        if crossing.leg in legs:
            legs[crossing.leg].append(crossing)
    episodes = sorted(
        (
            (start, end, leg, lost)
            for leg, items in legs.items()
            for start, end, lost in _windows(items)
        ),
        key=lambda e: e[0],
    )
    groups: list[list[tuple[float, float | None, tuple[str, str], list[Crossing]]]] = []
    for episode in episodes:
        start = episode[0]
        if groups and any(end is None or start < end for _s, end, _l, _c in groups[-1]):
            groups[-1].append(episode)
        else:
            groups.append([episode])
    found: list[Diagnosis] = []
    for group in groups:
        failed = sorted({leg for _s, _e, leg, _c in group})
        start = min(s for s, _e, _l, _c in group)
        ends = [e for _s, e, _l, _c in group]
        end = None if any(e is None for e in ends) else max(e for e in ends if e is not None)
        lost = [c for _s, _e, _l, items in group for c in items]
        working = [leg for leg in legs if leg not in failed and legs[leg]]
        names = " and ".join(f"{f} → {t}" for f, t in failed)
        both = "both legs" if len(failed) == 2 else "leg"
        until = f" to {clock(end)}" if end is not None else " to the end of the captures"
        message = (
            f"{names} {both} down from {clock(start)}{until} (seen from both ends): "
            f"{counted(len(lost), 'keepalive packet')} left one capture and never reached the "
            "other"
        )
        if working:
            message += "; " + " and ".join(f"{f} → {t}" for f, t in working) + " kept working"
        message += "."
        first_leg = failed[0]
        found.append(
            make_diagnosis(
                "leg-down",
                Severity.ERROR,
                message,
                start,
                [c.frame for c in lost if c.leg == first_leg][:12],
                details={
                    "failed": [list(leg) for leg in failed],
                    "working": [list(leg) for leg in working],
                    "unknown": [],
                    "end": end,
                    "exact": True,
                    "evidence_capture": near.get(first_leg[0]),
                },
            )
        )
    return found


def _not_reflected(crossings: list[Crossing], near: dict[str, str]) -> list[Diagnosis]:
    found: list[Diagnosis] = []
    by_peer: dict[str, list[Crossing]] = {}
    for crossing in crossings:
        if crossing.what == "not-reflected":
            by_peer.setdefault(crossing.leg[0], []).append(crossing)
    for peer, items in by_peer.items():
        if len(items) < MIN_LOST_RUN:
            continue
        originator = items[0].originator
        found.append(
            make_diagnosis(
                "reply-filtered",
                Severity.ERROR,
                f"{len(items)} of {originator}'s keepalives reached {peer} (the capture there "
                f"shows them arrive) but {peer} never sent their reflection: uRPF or an ACL on "
                f"{peer}, or a tunnel key it does not accept.",
                items[0].time,
                [c.frame for c in items],
                originator=originator,
                details={"reflector": peer, "exact": True, "evidence_capture": near.get(peer)},
            )
        )
    return found


def merge(
    first: Collector, second: Collector, settings: Settings, files: tuple[str, str]
) -> Analysis:
    """One analysis from captures at both ends (see the module docstring)."""
    common = set(first.pairer.originators) | set(second.pairer.originators)
    tunnels: set[TunnelId] = {tunnel for tunnel, _address in common}
    alignments = {t: align(t, first, second) for t in tunnels}
    measured = [a for a in alignments.values() if a is not None and a.samples]
    offset = statistics.median(a.offset for a in measured) if measured else 0.0
    spans = (
        (first.source.start or 0.0, first.source.end or 0.0),
        ((second.source.start or 0.0) - offset, (second.source.end or 0.0) - offset),
    )
    shift(second, -offset)
    quiet = replace(settings, diagnose=False)
    analyses = (analyze_collected(first, quiet), analyze_collected(second, quiet))
    source = _merged_source(first.source, second.source, files)
    merged: list[TunnelResult] = []
    found: dict[TunnelId, list[Diagnosis]] = {}
    by_id = [{(t.endpoints, t.key): t for t in analysis.tunnels} for analysis in analyses]
    for tunnel_id in sorted(tunnels, key=lambda t: (t[0], -1 if t[1] is None else t[1])):
        results = [by_id[i].get(tunnel_id) for i in (0, 1)]
        alignment = alignments.get(tunnel_id)
        near = alignment.near if alignment is not None else (None, None)
        tunnel, leg_diagnoses = _merged_tunnel(
            tunnel_id, results, near, alignment, files, first, second, spans
        )
        merged.append(tunnel)
        found[tunnel_id] = leg_diagnoses
    # Tunnels that carry only data, as the first capture shows them (else the second).
    listed = {(t.endpoints, t.key) for t in merged}
    for one in analyses:
        for tunnel in one.tunnels:
            if not tunnel.originators and (tunnel.endpoints, tunnel.key) not in listed:
                listed.add((tunnel.endpoints, tunnel.key))
                merged.append(tunnel)
                found[(tunnel.endpoints, tunnel.key)] = []
    analysis = Analysis(source, merged)
    if settings.diagnose:
        diagnose(analysis, diagnose_options(settings))
        for tunnel in merged:
            extra = found[(tunnel.endpoints, tunnel.key)]
            if extra:
                tunnel.diagnoses = [*extra, *tunnel.diagnoses]
                tunnel.diagnoses.sort(key=lambda d: -math.inf if d.time is None else d.time)
    return analysis


def _merged_source(a: SourceSummary, b: SourceSummary, files: tuple[str, str]) -> SourceSummary:
    starts = [t for t in (a.start, b.start) if t is not None]
    ends = [t for t in (a.end, b.end) if t is not None]
    return SourceSummary(
        files=list(files),
        packets=a.packets + b.packets,
        gre_packets=a.gre_packets + b.gre_packets,
        keepalive_packets=a.keepalive_packets + b.keepalive_packets,
        malformed=a.malformed + b.malformed,
        checksum_errors=a.checksum_errors + b.checksum_errors,
        cut_requests=a.cut_requests + b.cut_requests,
        start=min(starts) if starts else None,
        end=max(ends) if ends else None,
        precision=min(a.precision, b.precision),
        warnings=[*a.warnings, *b.warnings],
        errors=[*a.errors, *b.errors],
        gaps=sorted([*a.gaps, *b.gaps]),
    )


def _merged_tunnel(
    tunnel_id: TunnelId,
    results: list[TunnelResult | None],
    near: tuple[str | None, str | None],
    alignment: Alignment | None,
    files: tuple[str, str],
    first: Collector,
    second: Collector,
    spans: tuple[tuple[float, float], tuple[float, float]],
) -> tuple[TunnelResult, list[Diagnosis]]:
    """One tunnel seen from both captures, with the diagnoses of its legs."""
    endpoints, key = tunnel_id
    side_of = {address: index for index, address in enumerate(near) if address is not None}
    originators = []
    for address in endpoints:
        candidates = [
            (index, o)
            for index, result in enumerate(results)
            if result is not None
            for o in result.originators
            if o.address == address
        ]
        if not candidates:
            continue
        own = side_of.get(address)
        index, chosen = next(
            ((i, o) for i, o in candidates if i == own),
            max(candidates, key=lambda c: sum(1 for e in c[1].events if e.frame is not None)),
        )
        chosen.capture = files[index]
        originators.append(chosen)
    data_times = {}
    data_frames = {}
    for address in endpoints:
        at = side_of.get(address)
        for i in [at] if at is not None else [0, 1]:
            result = results[i]
            if result is not None and address in result.data_times:
                data_times[address] = result.data_times[address]
                data_frames[address] = result.data_frames[address]
                break
    vantage_reason = (
        f"two captures: {files[side_of[endpoints[0]]]} at {endpoints[0]}, "
        f"{files[side_of[endpoints[1]]]} at {endpoints[1]}"
        if len(side_of) == 2
        else "two captures; which end each was taken at could not be told"
    )
    tunnel = TunnelResult(
        endpoints,
        key,
        None,
        vantage_reason,
        originators,
        sum(len(t) for t in data_times.values()),
    )
    tunnel.data_times, tunnel.data_frames = data_times, data_frames
    if first.source.data_recorded and second.source.data_recorded:
        for x, y in (endpoints, (endpoints[1], endpoints[0])):
            sent = data_times.get(x)
            tunnel.directions.append(
                DataDirection(
                    x,
                    y,
                    len(sent) if sent else 0,
                    sent[0] if sent else None,
                    sent[-1] if sent else None,
                )
            )
    leg_diagnoses: list[Diagnosis] = []
    info: dict[str, object] = {
        "captures": [{"file": files[i], "near": near[i]} for i in (0, 1)],
        "clock_offset": None if alignment is None else alignment.offset,
        "offset_samples": 0 if alignment is None else alignment.samples,
        "round_trip_ms": None if alignment is None else round(alignment.round_trip * 1000, 3),
        "lost": [],
        "legs": [],
    }
    if len(side_of) == 2:
        tunnel.legs_seen_from_both_ends = True
        a, b = endpoints
        collectors = (first, second)
        crossings: list[Crossing] = []
        for x, p in ((a, b), (b, a)):
            ix, ip = side_of[x], side_of[p]
            crossings += _crossings(
                tunnel_id, x, p, collectors[ix], collectors[ip], (spans[ix], spans[ip])
            )
        near_files = {address: files[index] for address, index in side_of.items()}
        info["lost"] = [
            {
                "originator": c.originator,
                "ident": c.ident,
                "packet": c.what if c.what != "not-reflected" else "request",
                "time": c.time,
                "frame": c.frame,
                "capture": near_files.get(c.leg[0]),
                "died_on": f"at {c.leg[0]} (not reflected)"
                if c.what == "not-reflected"
                else f"{c.leg[0]} → {c.leg[1]}",
            }
            for c in sorted(crossings, key=lambda c: c.time)
            if c.lost
        ]
        info["legs"] = [
            {
                "from": f,
                "to": t,
                "crossings": sum(1 for c in crossings if c.leg == (f, t)),
                "lost": sum(1 for c in crossings if c.leg == (f, t) and c.lost),
            }
            for f, t in ((a, b), (b, a))
        ]
        leg_diagnoses = [
            *_leg_diagnoses(a, b, crossings, near_files),
            *_not_reflected(crossings, near_files),
        ]
    tunnel.merge = info
    return tunnel, leg_diagnoses
