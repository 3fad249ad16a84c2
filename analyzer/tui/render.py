"""Rich text for the TUI's panes, from the plain snapshots of :mod:`analyzer.tui.views`.

Pure functions of their arguments (no textual, no clock), so every pane can be checked
without running the application.
"""

from __future__ import annotations

import math
import textwrap
from bisect import bisect_right
from dataclasses import dataclass

from rich.text import Text

from analyzer.keepalive.model import Diagnosis
from analyzer.keepalive.state import LineState
from analyzer.keepalive.wording import counted
from analyzer.tui.views import (
    LogRow,
    OriginatorView,
    Series,
    TimeFormat,
    TransitionView,
    TunnelView,
    fmt_blackholed,
    retime_text,
)

BLOCKS = " ▁▂▃▄▅▆▇█"
UP_STYLE = "bold green"
DOWN_STYLE = "bold red"
KIND_STYLES = {
    "sent": "cyan",
    "returned": "green",
    "extrapolated": "yellow",
    "down": "bold white on red",
    "up": "bold black on green",
    "notice": "bold magenta",
    "error": "bold red",
}
DOWN_SHADE = "on #4a1418"
CURSOR_SHADE = "on #30384a"


def state_text(state: LineState | None) -> Text:
    """`up` in green, `down` in red, `—` before the first event."""
    if state is None:
        return Text("—", style="dim")
    return Text(state.value, style=UP_STYLE if state is LineState.UP else DOWN_STYLE)


# ---------------------------------------------------------------------------- the chart


@dataclass(frozen=True, slots=True)
class _Column:
    value: int
    down: bool
    seen: bool


def _columns(series: Series, start: float, end: float, count: int) -> list[_Column]:
    """Per column of the window: the highest counter, and whether the line was down."""
    points = series.points
    step = (end - start) / count if end > start else 1.0
    index = bisect_right(points, start, key=lambda p: p.time)
    carry = points[index - 1] if index else None
    columns: list[_Column] = []
    for column in range(count):
        last = column == count - 1
        limit = start + (column + 1) * step
        value = carry.counter if carry is not None else 0
        down = carry is not None and carry.line_state is LineState.DOWN
        seen = carry is not None
        while index < len(points) and (
            points[index].time < limit or (last and points[index].time <= end)
        ):
            point = points[index]
            value = max(value, point.counter)
            down = down or point.line_state is LineState.DOWN
            seen = True
            carry = point
            index += 1
        columns.append(_Column(value, down, seen))
    return columns


def _append_runs(line: Text, cells: list[tuple[str, str]]) -> None:
    """Append characters, one span per run of equal style (cheap to draw)."""
    run: list[str] = []
    current = cells[0][1] if cells else ""
    for char, style in cells:
        if style != current:
            line.append("".join(run), style=current or None)
            run, current = [], style
        run.append(char)
    if run:
        line.append("".join(run), style=current or None)


def render_chart(
    series: Series,
    start: float,
    end: float,
    width: int,
    height: int,
    *,
    cursor: float | None = None,
    left_label: str = "",
    right_label: str = "",
    geometry: list[tuple[int, int]] | None = None,
) -> list[Text]:
    """A bar chart of the counter over [start, end]: `height` rows and an axis row.

    Each column is a slice of time showing the highest counter in it; the dashed line is
    the retries threshold, columns where the line protocol was down are shaded red, the
    cursor's column is highlighted and marked ▲ on the axis, and time after it is dimmed.
    """
    retries = max(series.retries, 1)
    points = series.points
    first = bisect_right(points, start, key=lambda p: p.time)
    last = bisect_right(points, end, key=lambda p: p.time)
    peak = max((p.counter for p in points[max(first - 1, 0) : last]), default=0)
    top = max(retries + 1, min(peak, 2 * retries + 2))
    gutter = len(str(top)) + 1
    count = width - gutter
    if count < 4 or height < 1:
        return []
    columns = _columns(series, start, end, count)
    if geometry is not None:
        geometry.append((gutter, count))  # where the time columns are: x0, how many
    step = (end - start) / count if end > start else 1.0
    cursor_column: int | None = None
    if cursor is not None:
        cursor_column = min(max(math.floor((cursor - start) / step), 0), count - 1)
    eighths_per_unit = height * 8 / top
    threshold = retries * eighths_per_unit
    threshold_row = min(max(math.ceil(threshold / 8) - 1, 0), height - 1)
    rows: list[Text] = []
    for level in range(height - 1, -1, -1):
        label = str(top) if level == height - 1 else str(retries) if level == threshold_row else ""
        line = Text(f"{label:>{gutter - 1}}", style="dim")
        line.append("┤" if label else "│", style="dim")
        cells: list[tuple[str, str]] = []
        for index, column in enumerate(columns):
            filled = round(min(column.value, top) * eighths_per_unit) if column.seen else 0
            fill = min(max(filled - 8 * level, 0), 8)
            if fill:
                char = BLOCKS[fill]
                if column.down:
                    style = "red"
                elif column.value >= retries:
                    style = "yellow"
                else:
                    style = "green"
            elif level == threshold_row:
                char, style = "╌", "yellow"
            else:
                char, style = " ", ""
            if column.down:
                style = f"{style} {DOWN_SHADE}"
            if cursor_column is not None:
                if index == cursor_column:
                    style = f"{style} {CURSOR_SHADE}"
                elif index > cursor_column:
                    style = f"{style} dim"
            cells.append((char, style.strip()))
        _append_runs(line, cells)
        rows.append(line)
    axis = [" "] * count
    taken = set() if cursor_column is None else {cursor_column}
    left = left_label[:count]
    if cursor_column is not None and cursor_column < len(left):
        # The ▲ would cut the label: write it just after the marker instead.
        left = left if cursor_column + 1 + len(left) <= count else ""
        left_at = cursor_column + 1
    else:
        left_at = 0
    for position, char in enumerate(left):
        axis[left_at + position] = char
        taken.add(left_at + position)
    right = right_label[:count]
    right_at = count - len(right)
    if right and not taken & set(range(right_at - 1, count)):
        for position, char in enumerate(right):
            axis[right_at + position] = char
    line = Text(" " * (gutter - 1) + "└", style="dim")
    _append_runs(
        line,
        [
            ("▲", "bold yellow") if index == cursor_column else (char, "dim")
            for index, char in enumerate(axis)
        ],
    )
    rows.append(line)
    return rows


# ---------------------------------------------------------------------------- the detail pane


@dataclass(frozen=True, slots=True)
class Detail:
    """What the detail pane shows for the selected tunnel."""

    tunnel: TunnelView
    series: tuple[Series, ...]
    transitions: tuple[TransitionView, ...]  # capture mode: all, those after `cursor` dimmed
    window: tuple[float, float]
    cursor: float
    fmt: TimeFormat
    live: bool = False  # charts end at "now"; no cursor to mark


SEVERITY_STYLES = {"error": "bold red", "warning": "bold yellow", "info": "cyan"}


def _diagnosis_lines(diagnosis: Diagnosis, width: int, fmt: TimeFormat) -> list[Text]:
    """`error leg-down +35.000: message…`, the message wrapped to the pane's width, its
    clock times in the screen's time format."""
    severity = diagnosis.severity.value
    head = Text("  ")
    head.append(severity, style=SEVERITY_STYLES.get(severity, "bold"))
    head.append(f" {diagnosis.code}", style="bold")
    if diagnosis.originator:
        head.append(f" {diagnosis.originator}")
    if diagnosis.time is not None:
        head.append(f" {fmt(diagnosis.time)}", style="dim")
    lines = [head]
    for part in textwrap.wrap(retime_text(diagnosis.message, fmt), max(width - 4, 20)):
        lines.append(Text(f"    {part}"))
    return lines


def blackhole_line(view: OriginatorView, live: bool) -> Text:
    """`blackholed 200–250 of 800 data packets` (so far), or why it is not known."""
    line = Text("  ")
    if view.blackholed is None or view.data_packets is None:
        line.append("blackholed: not known (data packets not recorded)", style="dim")
        return line
    high = view.blackholed[1]
    bound = view.data_lower_bound
    line.append("blackholed ")
    line.append(
        fmt_blackholed(view.blackholed, lower_bound=bound), style="bold red" if high else "bold"
    )
    line.append(f" of {'≥' if bound else ''}{counted(view.data_packets, 'data packet')}")
    line.append(" so far" if live else " up to the cursor", style="dim")
    if bound:
        line.append(" (the data capture dropped packets: at least)", style="yellow")
    return line


def render_detail(
    detail: Detail,
    width: int,
    chart_height: int = 4,
    *,
    charts: list[tuple[int, int, int, int]] | None = None,
) -> list[Text]:
    """Title, per originator its state, blackhole and counter chart, then the transitions
    and the diagnoses. `charts` receives each chart's (first line, last line, x of its
    first time column, time columns), for turning a click into a moment."""
    tunnel = detail.tunnel
    fmt = detail.fmt
    lines: list[Text] = []
    title = Text(f"{tunnel.endpoints[0]} ↔ {tunnel.endpoints[1]}", style="bold")
    title.append(f"  key {'none' if tunnel.key is None else tunnel.key}", style="dim")
    lines.append(title)
    if tunnel.vantage:
        near = f"captured near {tunnel.vantage}"
        if title.cell_len + 2 + len(near) <= width:
            title.append(f"  {near}", style="dim")
        else:  # two IPv4 addresses, a key and a third one overflow a narrow pane
            lines.append(Text(f"  {near}", style="dim"))
    start, end = detail.window
    if detail.live:
        left, right = f"-{round(end - start):g} s", "now"
    else:
        left, right = fmt(start, 1 if fmt.relative else 0), fmt(end, 1 if fmt.relative else 0)
    views = {o.address: o for o in tunnel.originators}
    chart_cursor = None if detail.live else detail.cursor
    for series in detail.series:
        view = views.get(series.address)
        head = Text(f"{series.address} → {series.peer}  ", style="bold")
        if view is not None:
            head.append_text(state_text(view.line_state))
            head.append(f"  counter {view.counter}/{view.retries}")
        lines.append(head)
        if view is not None:
            lines.append(blackhole_line(view, detail.live))
        geometry: list[tuple[int, int]] = []
        chart = render_chart(
            series,
            start,
            end,
            width,
            chart_height,
            cursor=chart_cursor,
            left_label=left,
            right_label=right,
            geometry=geometry,
        )
        if charts is not None and chart and geometry:
            charts.append((len(lines), len(lines) + len(chart) - 1, *geometry[0]))
        lines.extend(chart)
    lines.append(Text("Transitions", style="bold underline"))
    if not detail.transitions:
        lines.append(Text("  none", style="dim"))
    pad = max((len(t.originator) for t in detail.transitions), default=0)
    stamp = max((len(fmt(t.time)) for t in detail.transitions), default=0)
    for transition in detail.transitions:
        line = Text("  ")
        line.append(f"{fmt(transition.time):>{stamp}}")
        line.append(f"  {transition.originator:<{pad}}  ")
        line.append_text(state_text(transition.state))
        line.append(f"{'':<{5 - len(transition.state.value)}} counter {transition.counter}")
        line.append(
            "  extrapolated" if transition.frame is None else f"  #{transition.frame}",
            style="dim",
        )
        if transition.time > detail.cursor:
            line.stylize("dim")
        lines.append(line)
    lines.append(Text("Diagnoses", style="bold underline"))
    if not tunnel.diagnoses:
        lines.append(Text("  none", style="dim"))
    for diagnosis in tunnel.diagnoses:
        lines.extend(_diagnosis_lines(diagnosis, width, fmt))
    return lines


# ---------------------------------------------------------------------------- the event log

KIND_LABELS = {"down": "DOWN", "up": "UP", "extrapolated": "extrap."}


def render_log_row(row: LogRow, fmt: TimeFormat, width: int = 0, pad: int = 15) -> list[Text]:
    """`+50.000 DOWN     192.0.2.1 3/3 #835`: one line, or two when the pane is too narrow
    for the frame and RTT (they are never cut)."""
    line = Text(fmt(row.time), style="dim")
    line.append(" ")
    label = KIND_LABELS.get(row.kind, row.kind)
    line.append(f"{label:<8}", style=KIND_STYLES.get(row.kind, ""))
    if row.kind in ("notice", "error"):
        indent = line.cell_len + 1
        room = width - indent
        if not width or room < 20 or indent + len(row.message) <= width:
            line.append(f" {row.message}")
            return [line]
        # A notice wraps under its first word rather than lose its end ("…; waiting for
        # it to come back").
        parts = textwrap.wrap(row.message, room, break_on_hyphens=False)
        line.append(f" {parts[0]}")
        return [line, *(Text(" " * indent + part) for part in parts[1:])]
    line.append(f" {row.originator:<{pad}}")
    fields: list[tuple[str, str]] = []
    if row.counter is not None:
        retries = f"/{row.retries}" if row.retries is not None else ""
        fields.append((f"{row.counter}{retries}", ""))
    if row.frame is not None:
        fields.append((f"#{row.frame}", "dim"))
    if row.ticks > 1:
        fields.append((f"×{counted(row.ticks, 'tick')}", "dim"))
    if row.rtt_ms is not None:
        fields.append((f"{row.rtt_ms:g} ms", "dim"))
    tail = Text()
    for text, style in fields:
        tail.append(" ")
        tail.append(text, style=style or None)
    if width and line.cell_len + tail.cell_len > width:
        wrapped = Text(" " * min(len(fmt(row.time)) + 1, max(width - tail.cell_len, 0)))
        wrapped.append_text(tail)
        return [line, wrapped]
    line.append_text(tail)
    return [line]


# ---------------------------------------------------------------------------- the cursor bar


def render_ruler(
    start: float,
    end: float,
    cursor: float,
    width: int,
    downs: list[float],
    ups: list[float],
) -> Text:
    """A one-line map of the capture: transitions as ▼ (down) / ▲ (up), the cursor as ●."""
    if width < 3:
        return Text()
    cells: list[tuple[str, str]] = [("─", "dim")] * width
    span = end - start

    def position(time: float) -> int:
        if span <= 0:
            return 0
        return min(max(round((time - start) / span * (width - 1)), 0), width - 1)

    for index in range(position(cursor)):
        cells[index] = ("━", "cyan")
    for time in downs:
        cells[position(time)] = ("▼", "bold red")
    for time in ups:
        cells[position(time)] = ("▲", "bold green")
    cells[position(cursor)] = ("●", "bold yellow")
    text = Text()
    _append_runs(text, cells)
    return text
