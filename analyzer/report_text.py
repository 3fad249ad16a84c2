"""The human report: `show interfaces tunnel`-style summaries, then per-endpoint timelines."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from analyzer.model import Analysis, KeepaliveEvent, KeepaliveRole, OriginatorResult
from analyzer.state import LineState


def _clock(epoch: float, precision: int) -> str:
    stamp = datetime.fromtimestamp(epoch, UTC)
    digits = min(precision, 6)
    text = stamp.strftime("%Y-%m-%d %H:%M:%S")
    if digits:
        text += f".{stamp.microsecond:06d}"[: digits + 1]
    return text


def _state(state: LineState) -> Text:
    return Text(state.value, style="bold green" if state is LineState.UP else "bold red")


def _summary(o: OriginatorResult, console: Console) -> None:
    """An originator in the words of `show interfaces tunnel`."""
    downs = sum(1 for t in o.transitions if t.state is LineState.DOWN)
    line = Text(f"  {o.address} → {o.peer}: line protocol is ")
    line.append_text(_state(o.final_state))
    line.append(f" (counter {o.final_counter}/{o.retries} at the end of the capture)")
    console.print(line)
    console.print(
        f"    Keepalive set ({o.period:g} sec, {o.period_source.value}), "
        f"retries {o.retries} ({o.retries_source.value})"
    )
    rtt = (
        f"; rtt min/median/max {o.rtt_ms.min:g}/{o.rtt_ms.median:g}/{o.rtt_ms.max:g} ms"
        if o.rtt_ms is not None
        else ""
    )
    extra = f", {o.extrapolated} ticks extrapolated" if o.extrapolated else ""
    console.print(
        f"    {o.sent} keepalives sent, {o.returned} returned, {o.unanswered} unanswered"
        f"{extra}{rtt}"
    )
    console.print(
        f"    {downs} down transition{'s' if downs != 1 else ''}, down {o.down_seconds:.3f} s; "
        f"blackholed {o.blackholed_packets.min}-{o.blackholed_packets.max} of "
        f"{o.data_packets} data packets sent into the tunnel"
    )
    if o.inner_addresses is not None:
        console.print(
            f"    inner header {o.inner_addresses[0]} → {o.inner_addresses[1]} "
            "does not mirror the outer one"
        )
    if o.variants:
        console.print(f"    variants: {', '.join(o.variants)}")
    for note in o.notes:
        console.print(f"    [yellow]note:[/yellow] {note}")


def _timeline_rows(o: OriginatorResult, precision: int) -> list[tuple[str, str, str, str, Text]]:
    """Condensed timeline: runs of answered keepalives collapse into one row."""
    rows: list[tuple[str, str, str, str, Text]] = []
    run: list[KeepaliveEvent] = []
    transitions = {(t.time, t.state): t for t in o.transitions}

    def flush() -> None:
        if run:
            sent = sum(1 for e in run if e.role is KeepaliveRole.SENT)
            first, last = run[0], run[-1]
            span = _clock(first.time, precision)
            if last is not first:
                span += " … " + _clock(last.time, precision)[11:]
            rows.append(
                (
                    span,
                    str(first.frame or ""),
                    f"{sent} answered",
                    str(last.counter),
                    _state(last.line_state),
                )
            )
            run.clear()

    for event in o.events:
        answered = event.role is KeepaliveRole.RETURNED or event.partner_frame is not None
        down = transitions.get((event.time, LineState.DOWN))
        up = transitions.get((event.time, LineState.UP))
        if answered and up is None and event.line_state is LineState.UP:
            run.append(event)
            continue
        flush()
        if down is not None and event.role is not KeepaliveRole.RETURNED:
            rows.append(
                (
                    _clock(event.time, precision),
                    str(event.frame or "(extrapolated)"),
                    f"LINE PROTOCOL DOWN (counter {down.counter} ≥ retries {o.retries})",
                    str(down.counter),
                    _state(LineState.DOWN),
                )
            )
        label = {
            KeepaliveRole.SENT: "sent, unanswered" if event.partner_frame is None else "sent",
            KeepaliveRole.EXTRAPOLATED: "tick not in capture (extrapolated)",
            KeepaliveRole.RETURNED: "returned",
        }[event.role]
        if event.ticks > 1:
            label = f"{event.ticks} ticks not in capture (extrapolated), the last here"
        if event.ident is not None:
            label += f" (id {event.ident})"
        rows.append(
            (
                _clock(event.time, precision),
                str(event.frame or ""),
                label,
                str(event.counter),
                _state(event.line_state),
            )
        )
        if up is not None and event.role is KeepaliveRole.RETURNED:
            rows.append(
                (
                    _clock(event.time, precision),
                    str(event.frame or ""),
                    "LINE PROTOCOL UP",
                    "0",
                    _state(LineState.UP),
                )
            )
    flush()
    return rows


def write_text(
    analysis: Analysis, stream: TextIO, *, color: bool = False, width: int = 120
) -> None:
    """Write the report for a terminal (`color`) or a file."""
    console = Console(
        file=stream, force_terminal=color, no_color=not color, width=width, highlight=False
    )
    source = analysis.source
    span = ""
    if source.start is not None and source.end is not None:
        span = (
            f", {_clock(source.start, source.precision)} … {_clock(source.end, source.precision)}"
            f" UTC ({source.end - source.start:.3f} s)"
        )
    console.print(
        f"[bold]{', '.join(source.files) or '<capture>'}[/bold]: {source.packets} packets, "
        f"{source.gre_packets} GRE, {source.keepalive_packets} keepalive packets, "
        f"{source.malformed} malformed{span}"
    )
    for warning in source.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    if not analysis.tunnels:
        console.print("No GRE keepalives found.")
        return
    for tunnel in analysis.tunnels:
        console.print()
        key = "none" if tunnel.key is None else str(tunnel.key)
        vantage = tunnel.vantage or "unknown"
        console.print(
            f"[bold]Tunnel {tunnel.endpoints[0]} ↔ {tunnel.endpoints[1]}[/bold], key {key}, "
            f"{tunnel.data_packets} data packets; capture taken near: {vantage}"
            + (f" ({tunnel.vantage_reason})" if tunnel.vantage_reason else "")
        )
        for o in tunnel.originators:
            _summary(o, console)
        for o in tunnel.originators:
            console.print()
            console.print(f"  Timeline of {o.address}:")
            table = Table(show_edge=False, pad_edge=True, box=None)
            for column in ("time (UTC)", "frame", "event", "counter", "line"):
                table.add_column(column, no_wrap=column != "event")
            for row in _timeline_rows(o, source.precision):
                table.add_row(*row)
            console.print(table)
