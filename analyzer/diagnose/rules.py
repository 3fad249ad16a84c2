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
no-keepalives     a tunnel carries data but no keepalives: its line protocol cannot go down.
one-way-data      (a tunnel without keepalives) data flows one way only for longer than N
                  seconds: the return path or the peer's tunnel is broken.

"""

from __future__ import annotations

import ipaddress
import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from analyzer.diagnose.whatif import ReplayTooLong, median_rtt_s, replay_by_segment
from analyzer.keepalive.clock import utc_text
from analyzer.keepalive.model import (
    Analysis,
    DataTimes,
    Diagnosis,
    KeepaliveEvent,
    KeepaliveRole,
    OriginatorResult,
    Severity,
    TunnelResult,
    ValueSource,
)
from analyzer.keepalive.retries import Episode, episodes, ordinal
from analyzer.keepalive.segments import long_gaps
from analyzer.keepalive.state import (
    LineState,
)
from analyzer.keepalive.wording import counted

MAX_EVIDENCE = 12  # frames listed per diagnosis
PERIOD_TOLERANCE = 0.1  # period-mismatch: observed and configured differ by more than 10 %
ONE_SIDED_MIN_SPAN = 10.0  # one-sided: the capture covers 2 × max(period, this) seconds
SUGGESTIONS = ((2.0, 3), (1.0, 3))  # late-detection: faster settings tried in this order


@dataclass(frozen=True, slots=True)
class DiagnoseOptions:
    """Thresholds of the diagnoses that have one."""

    flap_transitions: int = 4  # flapping: more than this many transitions …
    flap_minutes: float = 5.0  # … within this many minutes
    late_detection_packets: int = 100  # late-detection: blackholed packets (min) above this
    # endpoints declared linux-reflector (None: every endpoint), for one-sided
    linux_reflectors: tuple[str | None, ...] = ()
    one_way_seconds: float = 30.0  # one-way-data: data one way only for longer than this


# --------------------------------------------------------------------------- the diagnoses


def diagnose(analysis: Analysis, options: DiagnoseOptions | None = None) -> None:
    """Fill every tunnel's `diagnoses` (replacing what was there)."""
    options = options or DiagnoseOptions()
    source = analysis.source
    start = source.start or 0.0
    end = source.end or 0.0
    mismatched = _key_mismatch_between_directions(analysis)
    for tunnel in analysis.tunnels:
        found: list[Diagnosis] = []
        if not tunnel.originators:
            found.extend(_no_keepalives(tunnel, source.data_recorded))
            found.extend(_one_way(tunnel, options.one_way_seconds, source.gaps))
        found.extend(mismatched.get(id(tunnel), []))
        keyed_elsewhere = id(tunnel) in mismatched
        if len(tunnel.originators) == 1 and not keyed_elsewhere:
            found.extend(_one_sided(tunnel, tunnel.originators[0], start, end, options))
        for o in tunnel.originators:
            peer = next((p for p in tunnel.originators if p.address == o.peer), None)
            # Keys that differ between the directions explain every lost keepalive; two
            # captures (analyzer.pipeline.merge) tell the legs exactly and bring their own.
            skip = keyed_elsewhere or tunnel.legs_seen_from_both_ends
            filtered = [] if skip else _reply_filtered(tunnel, o, peer)
            found.extend(filtered)
            if not filtered and not skip:
                for until, events in _by_segment(o, end):
                    for episode in episodes(events, o.period, until):
                        found.extend(_leg_down(tunnel, o, peer, episode, until))
            found.extend(_address_mismatch(o))
            found.extend(_inner_key_mismatch(tunnel, o))
            found.extend(_period_mismatch(o))
            if not keyed_elsewhere:
                found.extend(_retries(o, end))
            found.extend(_flapping(o, options))
            found.extend(_late_detection(o, options, end))
        found.sort(key=lambda d: (_sort_time(d), _SEVERITY_ORDER[d.severity]))
        tunnel.diagnoses = found


def _end_of(o: OriginatorResult, until: float) -> str:
    """'the capture ends', or, where `until` ends one of the capture's segments before its
    last (the capture stopped running there), 'its capture segment ends at HH:MM:SS'."""
    if o.segments and until < o.segments[-1][1]:
        return f"its capture segment ends at {clock(until)}"
    return "the capture ends"


def _unnoticed_until(o: OriginatorResult, end: float) -> float | None:
    """The end of the first capture segment (or of the capture) at which a failure of the
    originator is still running with its line protocol up: it did not go down before the
    capture stopped, so its blackhole so far is not one 'before it noticed'."""
    downs = [t.time for t in o.transitions if t.state is LineState.DOWN]
    for until, events in _by_segment(o, end):
        found = episodes(events, o.period, until)
        if not found or found[-1].reply is not None:
            continue
        start = found[-1].start
        if not any(start <= time <= until for time in downs):
            return until
    return None


def _by_segment(o: OriginatorResult, end: float) -> list[tuple[float, list[KeepaliveEvent]]]:
    """(end, events) of each segment of the capture the originator's timeline covers (a
    capture with gaps): a failure never runs on across a gap. Without gaps, all of it."""
    if not o.segments:
        return [(end, o.events)]
    return [
        (until, [e for e in o.events if start <= e.time <= until]) for start, until in o.segments
    ]


_SEVERITY_ORDER = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}


def _sort_time(diagnosis: Diagnosis) -> float:
    return diagnosis.time if diagnosis.time is not None else -math.inf


def make_diagnosis(
    code: str,
    severity: Severity,
    message: str,
    time: float | None,
    evidence: Sequence[int | None],
    *,
    originator: str | None = None,
    details: dict[str, object] | None = None,
) -> Diagnosis:
    """A diagnosis with at most MAX_EVIDENCE distinct frames, in frame order."""
    frames = sorted({f for f in evidence if f is not None})
    return Diagnosis(
        code, severity, message, time, tuple(frames[:MAX_EVIDENCE]), originator, details or {}
    )


def clock(epoch: float) -> str:
    """HH:MM:SS.mmm UTC, for messages (@epoch seconds outside the calendar)."""
    return utc_text(epoch, date=False, digits=3)


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
) -> list[Diagnosis]:
    observed = episode.observed
    x, p = o.address, o.peer
    if len(observed) < 2 or x == p:
        return []
    start = episode.start
    if episode.reply is None:
        end = capture_end
    else:
        end = min(episode.ticks[-1].time + median_rtt_s(o), episode.reply.time)
    requests, data = _peer_traffic(tunnel, peer, p, start, end)
    evidence: list[int | None] = [t.frame for t in observed[:6]]
    evidence += [t.frame for t in o.transitions if start <= t.time <= end]
    count = sum(t.ticks for t in episode.ticks)  # a row may stand for a run of ticks
    when = clock(start)
    recovered = (
        f"; answered again from {clock(episode.reply.time)}"
        if episode.reply is not None
        else f"; still failing when {_end_of(o, capture_end)}"
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
                # The peer's own timeline counts those reflections as returned (the capture
                # sees them leave): say so where its figures are shown.
                note = (
                    f"its keepalives count as returned when the capture at {x} sees the "
                    f"reflections leave; after {clock(after)} they crossed the failed {x} → {p} "
                    f"leg and were lost, so its line protocol went down about {span} although "
                    "this timeline shows no down (see leg-down)"
                )
                if note not in peer.notes:
                    peer.notes.append(note)
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
) -> list[Diagnosis]:
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
) -> list[Diagnosis]:
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
        f"None of {x}'s {counted(len(sends), 'keepalive')} came back during the whole capture, "
        "while "
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


def _address_mismatch(o: OriginatorResult) -> list[Diagnosis]:
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


def _inner_key_mismatch(tunnel: TunnelResult, o: OriginatorResult) -> list[Diagnosis]:
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


def _key_mismatch_between_directions(analysis: Analysis) -> dict[int, list[Diagnosis]]:
    """Both ends originate, each in a tunnel with its own key: they drop each other's packets."""
    by_pair: dict[tuple[str, str], list[TunnelResult]] = {}
    for tunnel in analysis.tunnels:
        if tunnel.originators:
            by_pair.setdefault(tunnel.endpoints, []).append(tunnel)
    found: dict[int, list[Diagnosis]] = {}
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


SUGGESTED_KEEPALIVE = (10, 3)  # no-keepalives: what to configure (IOS's period default)


def _no_keepalives(tunnel: TunnelResult, data_recorded: bool) -> list[Diagnosis]:
    """A tunnel that carries data but no keepalive either way: its line protocol stays up
    whatever happens to the path."""
    if not data_recorded or not tunnel.data_packets:
        return []
    a, b = tunnel.endpoints
    period, retries = SUGGESTED_KEEPALIVE
    configure = (
        f"Configure `keepalive {period} {retries}` on both ends: the line then goes down "
        f"{period * retries} s after the first unanswered keepalive and routing can fail over."
    )
    if ":" in a:
        # SPEC §2/§3: IOS (and Comware) run GRE keepalives over IPv4 only.
        configure = (
            "IOS runs GRE keepalives over an IPv4 transport only: where the platform offers "
            f"them over IPv6 (RouterOS does), configure `keepalive {period} {retries}` on both "
            "ends; otherwise let a routing protocol's hellos or BFD over the tunnel detect "
            "the failure."
        )
    message = (
        f"No GRE keepalives between {a} and {b} in either direction, while "
        f"{counted(tunnel.data_packets, 'data packet')} crossed the tunnel: its line protocol "
        "cannot detect a failure of the path or of the far end, so it stays up and routes keep "
        f"pointing into it (keepalives are off by default on IOS). {configure}"
    )
    frames = [column[0] for column in tunnel.data_frames.values() if len(column)]
    return [
        make_diagnosis(
            "no-keepalives",
            Severity.WARNING,
            message,
            None,
            frames,
            details={
                "suggested": f"keepalive {period} {retries}",
                "data_packets": {d.source: d.packets for d in tunnel.directions},
            },
        )
    ]


def _one_way(
    tunnel: TunnelResult, minimum: float, gaps: Sequence[tuple[float, float]] = ()
) -> list[Diagnosis]:
    """Stretches longer than `minimum` seconds where data flows one way and nothing comes
    back: the return path or the peer's tunnel is broken (a suspected blackhole). A
    capture gap ends a stretch: nothing could come back while the capture was not running."""
    found: list[Diagnosis] = []
    for direction in tunnel.directions:
        there = tunnel.data_times.get(direction.source)
        frames = tunnel.data_frames.get(direction.source)
        if not there or frames is None:
            continue
        back = tunnel.data_times.get(direction.destination) or ()
        silences = (
            [(-math.inf, back[0]), *long_gaps([back], minimum), (back[-1], math.inf)]
            if back
            else [(-math.inf, math.inf)]
        )
        stretches = []
        for before, after in silences:
            low, high = bisect_right(there, before), bisect_left(there, after)
            for gap_start, _gap_end in gaps:
                if before < gap_start < after:
                    cut = bisect_right(there, gap_start, low, high)
                    stretches.append((low, cut))
                    low = cut
            stretches.append((low, high))
        for low, high in stretches:
            if high - low < 2 or there[high - 1] - there[low] <= minimum:
                continue
            start, end = there[low], there[high - 1]
            x, y = direction.source, direction.destination
            message = (
                f"From {clock(start)} to {clock(end)} ({end - start:.3f} s) {x} sent "
                f"{high - low} data packets into the tunnel and nothing came back from {y}: "
                f"the return path or {y}'s end of the tunnel is broken (suspected blackhole), "
                "unless the capture sees only one direction. Without keepalives neither "
                "end's line protocol can notice."
            )
            found.append(
                make_diagnosis(
                    "one-way-data",
                    Severity.ERROR,
                    message,
                    start,
                    [frames[low], frames[high - 1]],
                    originator=x,
                    details={
                        "from": x,
                        "to": y,
                        "start": start,
                        "end": end,
                        "seconds": round(end - start, 6),
                        "packets": high - low,
                    },
                )
            )
    return found


def _period_mismatch(o: OriginatorResult) -> list[Diagnosis]:
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


def _retries(o: OriginatorResult, capture_end: float) -> list[Diagnosis]:
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


def _flapping(o: OriginatorResult, options: DiagnoseOptions) -> list[Diagnosis]:
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
) -> list[Diagnosis]:
    blackhole = o.blackholed_packets
    if blackhole.min <= options.late_detection_packets:
        return []
    x = o.address
    detection = o.period * o.retries
    unnoticed = _unnoticed_until(o, capture_end)
    noticed = (
        "before its line protocol noticed"
        if unnoticed is None
        else f"with its line protocol still up when {_end_of(o, unnoticed)}"
    )
    message = (
        f"{x} blackholed {blackhole.min}-{blackhole.max} data packets over "
        f"{o.blackhole_seconds.min:.3g} s {noticed} "
        f"(keepalive {o.period:g} {o.retries} needs {detection:g} s of silence)"
    )
    details: dict[str, object] = {"threshold": options.late_detection_packets}
    rtt_max = o.rtt_ms.max / 1000.0 if o.rtt_ms is not None else 0.0
    for period, retries in SUGGESTIONS:
        if period * retries >= detection or period < 2 * rtt_max:
            continue
        try:
            what_if = replay_by_segment(o, period, retries, capture_end)
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
