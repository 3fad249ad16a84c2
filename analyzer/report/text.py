"""The human report: `show interfaces tunnel`-style summaries, then per-endpoint timelines."""

from __future__ import annotations

import errno
from datetime import UTC, datetime
from itertools import pairwise
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from analyzer.keepalive.clock import CALENDAR_END, CALENDAR_START, utc_text
from analyzer.keepalive.model import (
    Analysis,
    KeepaliveEvent,
    KeepaliveRole,
    OriginatorResult,
    TunnelResult,
    ValueSource,
)
from analyzer.keepalive.state import LineState, Transition
from analyzer.keepalive.wording import counted as count
from analyzer.report import plain
from analyzer.report.escape import printable
from analyzer.report.plain import PlainConsole


def _clock(epoch: float, precision: int, *, date: bool = True) -> str:
    """:func:`utc_text`, a quarter of its time (%-formatting instead of strftime: every
    year it writes has four digits); outside 1970-9999 a time is written raw (@epoch
    seconds) by utc_text itself: datetime cannot hold it."""
    if not CALENDAR_START <= epoch < CALENDAR_END:  # (NaN too)
        return utc_text(epoch, date=date, digits=precision)
    stamp = datetime.fromtimestamp(epoch, UTC)
    if date:
        text = "%04d-%02d-%02d %02d:%02d:%02d" % (  # noqa: UP031 (twice as fast as f"")
            stamp.year,
            stamp.month,
            stamp.day,
            stamp.hour,
            stamp.minute,
            stamp.second,
        )
    else:
        text = "%02d:%02d:%02d" % (stamp.hour, stamp.minute, stamp.second)  # noqa: UP031
    digits = max(0, min(precision, 6))
    if digits:
        text += (".%06d" % stamp.microsecond)[: digits + 1]  # noqa: UP031
    return text


def _state(state: LineState) -> Text:
    return Text(state.value, style=_state_style(state))


def _state_style(state: LineState) -> str:
    return "bold green" if state is LineState.UP else "bold red"


def _line(console: Console, *pieces: str | tuple[str, str]) -> None:
    """Print one Text of these pieces, each a string or (string, style)."""
    if isinstance(console, plain.PlainConsole):  # without building the Text
        console.print_text("".join(p if isinstance(p, str) else p[0] for p in pieces))
        return
    text = Text()
    for piece in pieces:
        if isinstance(piece, str):
            text.append(piece)
        else:
            text.append(*piece)
    console.print(text)


def _summary(
    o: OriginatorResult, console: Console, *, data_recorded: bool = True, precision: int = 6
) -> None:
    """An originator in the words of `show interfaces tunnel`."""
    downs = sum(1 for t in o.transitions if t.state is LineState.DOWN)
    _line(
        console,
        f"  {o.address} → {o.peer}: line protocol is ",
        (o.final_state.value, _state_style(o.final_state)),
        f" (counter {o.final_counter}/{o.retries} at the end of the capture)"
        + ("" if o.capture is None else f" [from {printable(o.capture)}]"),
    )
    confidence = (
        f", confidence {o.retries_confidence:.2f}" if o.retries_confidence is not None else ""
    )
    profile = ""
    if o.profile is not None and o.profile_source not in (None, "default"):
        why = "; ".join(o.profile_evidence)
        profile = f"; profile {o.profile} ({o.profile_source}{': ' + why if why else ''})"
        if o.hold_time is not None:
            profile += f", hold {o.hold_time:g} s"
    how = o.period_source.value
    if o.period_source is ValueSource.INFERRED and o.period_agreeing < o.period_intervals:
        # How sure the inference is, when not every interval agrees.
        how += f" from {o.period_agreeing} of {o.period_intervals} send intervals"
    _line(
        console,
        f"    Keepalive set ({o.period:g} sec, {how}), "
        f"retries {o.retries} ({o.retries_source.value}{confidence}){profile}",
    )
    rtt = (
        f"; rtt min/median/max {o.rtt_ms.min:g}/{o.rtt_ms.median:g}/{o.rtt_ms.max:g} ms"
        if o.rtt_ms is not None
        else ""
    )
    extra = f", {count(o.extrapolated, 'tick')} extrapolated" if o.extrapolated else ""
    console.print(
        f"    {count(o.sent, 'keepalive')} sent, {o.returned} returned, {o.unanswered} "
        f"unanswered{extra}{rtt}"
    )
    blackholed = (
        f"blackholed {o.blackholed_packets.min}-{o.blackholed_packets.max} of "
        f"{count(o.data_packets, 'data packet')} sent into the tunnel"
        if data_recorded
        else "data packets not recorded (--no-data): blackholed packets unknown"
    )
    console.print(
        f"    {count(downs, 'down transition')}, down {o.down_seconds:.3f} s; {blackholed}"
    )
    for burst in o.bursts:
        console.print(
            f"    burst: {burst.sends} keepalives within {burst.span * 1000:.3f} ms at "
            f"{_clock(burst.time, precision)} (frame {burst.frame}): each counted as the tick "
            "it stands for, none as a period of its own"
        )
    if o.inner_addresses is not None:
        console.print(
            f"    inner header {o.inner_addresses[0]} → {o.inner_addresses[1]} "
            "does not mirror the outer one"
        )
    if o.variants:
        console.print(f"    variants: {', '.join(o.variants)}")
    for note in o.notes:
        console.print(f"    [yellow]note:[/yellow] {escape(printable(note))}")


def _merge(tunnel: TunnelResult, console: Console, precision: int) -> None:
    """Two captures: how they were aligned and on which leg each lost keepalive died."""
    merge = tunnel.merge
    if merge is None:
        return
    offset = merge.get("clock_offset")
    samples = merge.get("offset_samples")
    trip = merge.get("round_trip_ms")
    head = "  Two captures"
    if isinstance(offset, float):
        used = count(samples, "keepalive") if isinstance(samples, int) else f"{samples} keepalives"
        head += f": clock offset {offset:+.6f} s from {used}"
        if isinstance(trip, float):
            head += f", path round trip {trip:g} ms"
    console.print(Text(head))
    captures = merge.get("captures")
    for capture in captures if isinstance(captures, list) else []:
        near = capture.get("near") or "an unknown end"
        console.print(Text(f"    {printable(str(capture.get('file')))}: taken at {near}"))
    legs = merge.get("legs")
    for leg in legs if isinstance(legs, list) else []:
        console.print(
            Text(
                f"    {leg['from']} → {leg['to']}: {leg['lost']} of "
                f"{count(leg['crossings'], 'keepalive packet')} lost"
            )
        )
    lost = merge.get("lost")
    if isinstance(lost, list) and lost:
        shown = lost[:MAX_LOST_LISTED]
        for item in shown:
            capture = printable(str(item["capture"]))
            console.print(
                Text(
                    f"      {_clock(item['time'], precision, date=False)}  {item['originator']}'s "
                    f"{item['packet']} (id {item['ident']}, {capture} frame "
                    f"{item['frame']}) died {_died(item['died_on'])}"
                )
            )
        if len(lost) > len(shown):
            console.print(Text(f"      … {len(lost) - len(shown)} more (see --format json)"))


MAX_LOST_LISTED = 20


def _died(where: str) -> str:
    return where if where.startswith("at ") else f"on {where}"


_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def _diagnoses(tunnel: TunnelResult, console: Console, precision: int) -> None:
    """Why: one paragraph per diagnosis, with the frames that show it."""
    if not tunnel.diagnoses:
        return
    console.print()
    console.print("  Diagnoses:")
    for diagnosis in tunnel.diagnoses:
        severity = diagnosis.severity.value
        what = f" {diagnosis.code}"
        if diagnosis.time is not None:
            what += f" at {_clock(diagnosis.time, precision, date=False)}"
        if diagnosis.originator is not None:
            what += f" ({diagnosis.originator})"
        _line(console, "    ", (severity, _SEVERITY_STYLE.get(severity, "")), what)
        _paragraph(console, printable(diagnosis.message))
        if diagnosis.evidence:
            _paragraph(console, f"frames {', '.join(str(f) for f in diagnosis.evidence)}", "dim")


def _paragraph(console: Console, text: str, style: str = "") -> None:
    """`text` indented by six cells, wrapped to the page."""
    if isinstance(console, plain.PlainConsole):
        console.print_padded(text, 6)
    else:
        console.print(Padding(Text(text, style=style), (0, 0, 0, 6), expand=False))


def _what_if(tunnel: TunnelResult, console: Console, precision: int) -> None:
    """The capture replayed under another setting, next to the setting the analysis used."""
    replays = [(o, o.what_if) for o in tunnel.originators if o.what_if is not None]
    if not replays:
        return
    console.print()
    console.print(f"  What if {replays[0][1].setting}:")
    for o, what_if in replays:
        changes = ", ".join(
            f"{t.state.value} {_clock(t.time, precision, date=False)}" for t in what_if.transitions
        )
        estimated = " (estimated)" if what_if.estimated else ""
        seconds, base_seconds = what_if.blackhole_seconds, what_if.baseline_seconds
        lines = [
            f"{o.address}: {count(len(what_if.transitions), 'transition')}"
            + (f" ({changes})" if changes else "")
            + f", down {what_if.down_seconds:.3f} s",
            f"blackholed {what_if.blackholed_packets.min}-{what_if.blackholed_packets.max} "
            f"data packets{estimated} over {seconds.min:.3f}-{seconds.max:.3f} s; with "
            f"keepalive {o.period:g} {o.retries}: {what_if.baseline_packets.min}-"
            f"{what_if.baseline_packets.max} over {base_seconds.min:.3f}-{base_seconds.max:.3f} s",
        ]
        console.print(Padding(Text(lines[0]), (0, 0, 0, 4), expand=False))
        console.print(Padding(Text(lines[1]), (0, 0, 0, 6), expand=False))


Row = tuple[str, str, str, str, LineState | None]  # time, frame, event, counter, line
_LABELS = {
    KeepaliveRole.EXTRAPOLATED: "tick not in capture (extrapolated)",
    KeepaliveRole.RETURNED: "returned",
}


def _timeline_rows(o: OriginatorResult, precision: int) -> list[Row]:
    """Condensed timeline: runs of answered keepalives collapse into one row."""
    rows: list[Row] = []
    run: list[KeepaliveEvent] = []
    transitions = {(t.time, t.state): t for t in o.transitions}
    # Transitions between events (a hold timer firing, vendor profiles) get rows of their
    # own; with IOS semantics every transition belongs to an event and this stays empty.
    orphans: list[Transition] = []
    if transitions:  # most originators have none: no sets of their events' times
        ticks_at = {e.time for e in o.events if e.role is not KeepaliveRole.RETURNED}
        replies_at = {e.time for e in o.events if e.role is KeepaliveRole.RETURNED}
        orphans = [
            t
            for t in o.transitions
            if t.time not in (ticks_at if t.state is LineState.DOWN else replies_at)
        ]

    def down_label(counter: int) -> str:
        if o.hold_time is not None:
            return f"LINE PROTOCOL DOWN (no reply for {o.hold_time:g} s)"
        return f"LINE PROTOCOL DOWN (counter {counter} ≥ retries {o.retries})"

    def flush_orphans(before: float | None) -> None:
        while orphans and (before is None or orphans[0].time < before):
            orphan = orphans.pop(0)
            rows.append(
                (
                    _clock(orphan.time, precision),
                    "(timer)",
                    down_label(orphan.counter)
                    if orphan.state is LineState.DOWN
                    else "LINE PROTOCOL UP",
                    str(orphan.counter),
                    orphan.state,
                )
            )

    def flush() -> None:
        if run:
            sent = sum(1 for e in run if e.role is KeepaliveRole.SENT)
            first, last = run[0], run[-1]
            span = _clock(first.time, precision)
            if last is not first:
                span += " … " + _clock(last.time, precision, date=False)
            rows.append(
                (
                    span,
                    str(first.frame or ""),
                    f"{sent} answered",
                    str(last.counter),
                    last.line_state,
                )
            )
            run.clear()

    # Where the capture stopped (a gap): the timeline ends there and starts afresh after.
    breaks = list(pairwise(o.segments))
    for event in o.events:
        if orphans and orphans[0].time < event.time:
            flush()
            flush_orphans(event.time)
        while breaks and event.time > breaks[0][0][1]:
            (_start, end), (resumes, _end) = breaks.pop(0)
            flush()
            rows.append(
                (
                    _clock(end, precision),
                    "",
                    f"capture not running until {_clock(resumes, precision)} (the timeline "
                    "starts afresh)",
                    "",
                    None,
                )
            )
        answered = event.role is KeepaliveRole.RETURNED or event.partner_frame is not None
        if transitions:
            down = transitions.get((event.time, LineState.DOWN))
            up = transitions.get((event.time, LineState.UP))
        else:
            down = up = None
        if answered and up is None and event.line_state is LineState.UP:
            run.append(event)
            continue
        flush()
        if down is not None and event.role is not KeepaliveRole.RETURNED:
            rows.append(
                (
                    _clock(event.time, precision),
                    str(event.frame or "(extrapolated)"),
                    down_label(down.counter),
                    str(down.counter),
                    LineState.DOWN,
                )
            )
        if event.role is KeepaliveRole.SENT:
            label = "sent, unanswered" if event.partner_frame is None else "sent"
        else:
            label = _LABELS[event.role]
        if event.ticks > 1:
            label = f"{event.ticks} ticks not in capture (extrapolated)"
        if event.ticks > 1 and event.first_time is not None:
            last = _clock(event.time, precision, date=False)
            when = _clock(event.first_time, precision) + " … " + last
        else:
            when = _clock(event.time, precision)
        if event.ident is not None:
            label += f" (id {event.ident})"
        rows.append(
            (
                when,
                str(event.frame or ""),
                label,
                str(event.counter),
                event.line_state,
            )
        )
        if up is not None and event.role is KeepaliveRole.RETURNED:
            rows.append(
                (
                    _clock(event.time, precision),
                    str(event.frame or ""),
                    "LINE PROTOCOL UP",
                    "0",
                    LineState.UP,
                )
            )
    flush()
    flush_orphans(None)
    return rows


def _data_only(tunnel: TunnelResult, console: Console, precision: int, key: str) -> None:
    """A tunnel that carries data but no keepalives: its traffic each way, and why it matters."""
    console.print(
        f"[bold]Tunnel {tunnel.endpoints[0]} ↔ {tunnel.endpoints[1]}[/bold], key {key}, "
        f"{count(tunnel.data_packets, 'data packet')}; no keepalives"
    )
    for direction in tunnel.directions:
        console.print(
            f"  {direction.source} → {direction.destination}: "
            f"{count(direction.packets, 'data packet')}"
            f"{_span(direction.first, direction.last, precision)}"
        )
    _diagnoses(tunnel, console, precision)


def _span(first: float | None, last: float | None, precision: int) -> str:
    """ ", FIRST … LAST UTC (N s)", or nothing when either end is unknown."""
    if first is None or last is None:
        return ""
    return f", {_clock(first, precision)} … {_clock(last, precision)} UTC ({last - first:.3f} s)"


class _Console(Console):
    """rich's console, but a reader going away (`| head`) is a BrokenPipeError for the
    command to end on (rich would exit the process with status 1)."""

    def on_broken_pipe(self) -> None:
        """Raise instead of exiting."""
        self.quiet = True
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")


def write_text(
    analysis: Analysis, stream: TextIO, *, color: bool = False, width: int = 120
) -> None:
    """Write the report for a terminal (`color`) or a file."""
    # Without colour (files, pipes) the same characters come from a writer about 50 times
    # faster than rich's renderer (200,000 tunnels). emoji=False: ":100:" in an IPv6
    # address is not 💯.
    console: Console = (
        _Console(file=stream, force_terminal=True, width=width, highlight=False, emoji=False)
        if color
        else PlainConsole(stream, width)
    )
    source = analysis.source
    span = _span(source.start, source.end, source.precision)
    console.print(
        f"[bold]{escape(printable(', '.join(source.files) or '<capture>'))}[/bold]: "
        f"{count(source.packets, 'packet')}, {source.gre_packets} GRE, "
        f"{count(source.keepalive_packets, 'keepalive packet')}, {source.malformed} malformed"
        f"{span}"
    )
    for warning in source.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(printable(warning))}")
    if not analysis.any_keepalives():
        console.print("No GRE keepalives found.")
        if not source.data_recorded:
            console.print("Data packets were not recorded (--no-data): no tunnel is listed.")
    for tunnel in analysis.each_tunnel():  # a streamed analysis makes them one at a time
        console.print()
        key = "none" if tunnel.key is None else str(tunnel.key)
        if not tunnel.originators:
            _data_only(tunnel, console, source.precision, key)
            continue
        vantage = tunnel.vantage or "unknown"
        _line(
            console,
            (f"Tunnel {tunnel.endpoints[0]} ↔ {tunnel.endpoints[1]}", "bold"),
            f", key {key}, "
            + (
                count(tunnel.data_packets, "data packet")
                if source.data_recorded
                else "no data packets recorded (--no-data)"
            )
            + f"; capture taken near: {printable(vantage)}"
            + (f" ({printable(tunnel.vantage_reason)})" if tunnel.vantage_reason else ""),
        )
        _merge(tunnel, console, source.precision)
        for o in tunnel.originators:
            _summary(o, console, data_recorded=source.data_recorded, precision=source.precision)
        _diagnoses(tunnel, console, source.precision)
        _what_if(tunnel, console, source.precision)
        for o in tunnel.originators:
            console.print()
            console.print(f"  Timeline of {o.address}:")
            _timeline(console, _timeline_rows(o, source.precision))


_COLUMNS = ("time (UTC)", "frame", "event", "counter", "line")


def _timeline(console: Console, rows: list[Row]) -> None:
    if isinstance(console, plain.PlainConsole):  # (text.PlainConsole: replaced in tests)
        console.print_table(
            _COLUMNS, [(*row[:4], "" if row[4] is None else row[4].value) for row in rows]
        )
        return
    table = Table(show_edge=False, pad_edge=True, box=None)
    for column in _COLUMNS:
        table.add_column(column, no_wrap=column != "event")
    for *cells, state in rows:
        table.add_row(*cells, Text("") if state is None else _state(state))
    console.print(table)
