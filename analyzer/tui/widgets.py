"""The widgets of the TUI. They draw the snapshots they are given and compute nothing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.console import RenderableType
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.geometry import Size
from textual.message import Message
from textual.screen import ModalScreen
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Button, Input, Label, RadioButton, RadioSet, Static

from analyzer.keepalive.state import LineState
from analyzer.keepalive.wording import counted
from analyzer.tui.render import (
    Detail,
    render_detail,
    render_log_row,
    render_ruler,
)
from analyzer.tui.views import (
    COLUMNS,
    PROBLEMS,
    Column,
    LogRow,
    OriginatorView,
    Rows,
    TimeFormat,
    fmt_utc,
)

_COLUMN_LABELS = {c.key: c.label for c in COLUMNS}
FROZEN = COLUMNS[0]  # the originator column never scrolls away
SCROLLING = COLUMNS[1:]
PADDING = 1  # blank cells either side of every cell


class Seek(Message):
    """The user clicked a moment (the ruler, a chart): move the time cursor there."""

    def __init__(self, time: float) -> None:
        super().__init__()
        self.time = time


_STYLES: dict[str, Style] = {}


def _style(name: str) -> Style:
    found = _STYLES.get(name)
    if found is None:
        found = _STYLES[name] = Style.parse(name) if name else Style()
    return found


def cell_texts(view: OriginatorView) -> dict[str, tuple[str, str]]:
    """Every cell of a row: its text and its style."""
    cells: dict[str, tuple[str, str]] = {}
    for column in COLUMNS:
        text = column.text(view)
        style = ""
        if column.key == "line":
            style = (
                "dim"
                if view.line_state is None
                else "bold green"
                if view.line_state is LineState.UP
                else "bold red"
            )
        elif column.key == "counter":
            if view.line_state is LineState.DOWN:
                style = "bold red"
            elif view.counter >= view.retries:
                style = "bold yellow"
        elif column.key in ("lost", "downs", "down", "blackholed") and text not in ("0", "—"):
            style = "red"
        cells[column.key] = (text, style)
    return cells


class TunnelTable(Widget, can_focus=True):
    """One row per keepalive originator, drawn line by line: only the rows on screen are
    turned into text, column widths are fixed ahead (they only ever grow), and columns
    that do not fit are hidden lowest priority first; `[` and `]` scroll sideways."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "tunnel-table--header",
        "tunnel-table--cursor",
        "tunnel-table--even-row",
    }
    DEFAULT_CSS = """
    TunnelTable {
        background: $surface;
        color: $foreground;
        height: auto;
        & > .tunnel-table--header { text-style: bold; background: $panel; color: $foreground; }
        & > .tunnel-table--even-row { background: $surface-lighten-1 50%; }
        & > .tunnel-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
        }
        &:focus > .tunnel-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("right_square_bracket", "columns(1)", "More columns", show=False),
        Binding("left_square_bracket", "columns(-1)", "Columns back", show=False),
    ]

    class RowHighlighted(Message):
        """The user moved the cursor to another row."""

        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    class HeaderSelected(Message):
        """The user clicked a column header."""

        def __init__(self, column: str) -> None:
            super().__init__()
            self.column = column

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.views: Sequence[OriginatorView] = Rows.empty()
        self.order: list[str] = []
        self._index: dict[str, int] = {}
        self.cursor_row = 0
        self.height_rows = 0  # rows the table is tall enough for
        # Called with the row key as the cursor reaches a row (else a RowHighlighted is
        # posted, handled a screen update later).
        self.on_highlight: Callable[[str], None] | None = None
        self.top = 0
        self.column_offset = 0
        self.sort_by = PROBLEMS
        self.sort_reverse = False
        self.empty_text = "no keepalive originators yet"
        self.widths = {c.key: max(c.width, len(c.label)) for c in COLUMNS}
        self._cells: dict[str, tuple[OriginatorView, dict[str, tuple[str, str]]]] = {}
        # Drawn rows by (cells, cursor look, stripe, columns, width): a row that did not
        # change is not drawn again.
        self._strips: dict[tuple[int, int, int, int, int], tuple[object, Strip]] = {}
        self._layout: tuple[int, int, tuple[tuple[Column, int], ...], int] | None = None

    # ------------------------------------------------------------------ data

    @property
    def row_count(self) -> int:
        """Rows in the table (after the filter)."""
        return len(self.order)

    @property
    def selected_key(self) -> str | None:
        """The row key under the cursor."""
        if not self.order or not 0 <= self.cursor_row < len(self.order):
            return None
        return self.order[self.cursor_row]

    def row_text(self, key: str) -> dict[str, str]:
        """The cells of a row as plain text, by column key."""
        return {
            k: text for k, (text, _style) in self._row_cells(self.views[self._index[key]]).items()
        }

    def fit(self, views: Sequence[OriginatorView]) -> None:
        """Widen the columns to hold these rows' cells (widths never shrink, so the table
        does not jump as figures grow)."""
        widths = self.widths
        grew = False
        for view in views:
            for key, (text, _style) in self._row_cells(view).items():
                if len(text) > widths[key]:
                    widths[key] = len(text)
                    grew = True
        if grew:
            self._relayout()

    def _relayout(self) -> None:
        """Choose the columns again now: the border's "N more columns" set while a line is
        drawn would not be drawn until the next change."""
        self._layout = None
        if self.content_size.width > 0:
            self._columns(self.content_size.width)
        self.refresh()

    def set_sort_marker(self, by: str, reverse: bool) -> None:
        """Show ▲/▼ after the label of the column the rows are sorted by."""
        self.sort_by, self.sort_reverse = by, reverse
        self._relayout()

    def view_of(self, key: str) -> OriginatorView | None:
        """The row with this key (None when the filter leaves it out)."""
        number = self._index.get(key)
        return None if number is None else self.views[number]

    def show(self, views: Rows, *, select: str | None = None, unfiltered: int = 0) -> None:
        """Display these rows in this order, keeping the cursor on the same originator. The
        table stays as tall as `unfiltered` rows need (the rows before a filter), so typing
        a filter does not move the panes below it at every key."""
        keep = select or self.selected_key
        order = views.keys
        if order != self.order:
            self.order = order
            self._index = {key: number for number, key in enumerate(order)}
        height = max(len(order), unfiltered)
        if height != self.height_rows:
            self.height_rows = height
            self.refresh(layout=True)
        self.views = views
        if keep is not None and keep in self._index:
            self.cursor_row = self._index[keep]
        else:
            self.cursor_row = min(self.cursor_row, max(len(order) - 1, 0))
        self._scroll_to_cursor()
        self.fit(self._visible_views())
        self.refresh()

    def _row_cells(self, view: OriginatorView) -> dict[str, tuple[str, str]]:
        cached = self._cells.get(view.row_key)
        if cached is not None and cached[0] == view:
            return cached[1]
        cells = cell_texts(view)
        self._cells[view.row_key] = (view, cells)
        return cells

    # ------------------------------------------------------------------ geometry

    @property
    def body_height(self) -> int:
        """Rows of originators on screen (the header takes one line)."""
        return max(self.content_size.height - 1, 1)

    def _visible_views(self) -> Sequence[OriginatorView]:
        return self.views[self.top : self.top + self.body_height]

    def _scroll_to_cursor(self) -> None:
        height = self.body_height
        if self.cursor_row < self.top:
            self.top = self.cursor_row
        elif self.cursor_row >= self.top + height:
            self.top = self.cursor_row - height + 1
        self.top = max(min(self.top, max(len(self.order) - height, 0)), 0)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return max(self.height_rows, 1) + 1

    def columns_shown(self, width: int) -> tuple[tuple[Column, int], ...]:
        """The columns that fit in `width` cells, with their widths."""
        return self._columns(width)[2]

    def _columns(self, width: int) -> tuple[int, int, tuple[tuple[Column, int], ...], int]:
        layout = self._layout
        if layout is not None and layout[0] == width and layout[1] == self.column_offset:
            return layout
        widths = dict(self.widths)
        if self.sort_by in widths:  # room for the ▲/▼ after its label
            label = len(_COLUMN_LABELS[self.sort_by]) + 2
            widths[self.sort_by] = max(widths[self.sort_by], label)

        def cost(columns: Sequence[Column]) -> int:
            return sum(widths[c.key] + 2 * PADDING for c in columns)

        if self.column_offset == 0:
            shown = list(COLUMNS)
            while len(shown) > 1 and cost(shown) > width:
                lowest = min(shown[1:], key=lambda c: (c.priority, -COLUMNS.index(c)))
                shown.remove(lowest)
        else:
            shown = [FROZEN]
            for candidate in SCROLLING[self.column_offset :]:
                if cost([*shown, candidate]) > width:
                    break
                shown.append(candidate)
        hidden = len(COLUMNS) - len(shown)
        layout = (width, self.column_offset, tuple((c, widths[c.key]) for c in shown), hidden)
        self._layout = layout
        self.border_subtitle = f"{counted(hidden, 'more column')}: [ ]" if hidden else ""
        return layout

    # ------------------------------------------------------------------ drawing

    def render_line(self, y: int) -> Strip:
        width = self.content_size.width
        _w, _o, columns, _hidden = self._columns(width)
        if y == 0:
            return self._header(columns, width)
        row = self.top + y - 1
        if row >= len(self.views):
            if row == 0:
                empty = self.rich_style + _style("dim")
                return Strip([Segment(f" {self.empty_text}".ljust(width), empty)])
            return Strip.blank(width, self.rich_style)
        view = self.views[row]
        cells = self._row_cells(view)
        look = 2 if row == self.cursor_row and self.has_focus else row == self.cursor_row
        key = (id(cells), look, row % 2, id(columns), width)
        strip = self._strips.get(key)
        if strip is not None and strip[0] is cells:
            return strip[1]
        if row == self.cursor_row:
            base = self.get_component_rich_style("tunnel-table--cursor")
        elif row % 2:
            base = self.get_component_rich_style("tunnel-table--even-row")
        else:
            base = self.rich_style
        segments: list[Segment] = []
        for column, size in columns:
            text, style = cells[column.key]
            text = text[:size]
            text = text.rjust(size) if column.numeric else text.ljust(size)
            pad = " " * PADDING
            segments.append(Segment(pad + text + pad, base + _style(style) if style else base))
        made = Strip(segments).adjust_cell_length(width, base)
        if len(self._strips) > 4 * max(self.body_height, 16):
            self._strips.clear()
        self._strips[key] = (cells, made)  # the cells object keeps its id alive
        return made

    def _header(self, columns: Sequence[tuple[Column, int]], width: int) -> Strip:
        style = self.get_component_rich_style("tunnel-table--header")
        segments: list[Segment] = []
        for column, size in columns:
            label = column.label
            if column.key == self.sort_by:
                label += " ▼" if self.sort_reverse else " ▲"
            label = label[:size]
            label = label.rjust(size) if column.numeric else label.ljust(size)
            segments.append(Segment(" " * PADDING + label + " " * PADDING, style))
        return Strip(segments).adjust_cell_length(width, style)

    # ------------------------------------------------------------------ input

    def _move(self, row: int) -> None:
        if not self.order:
            return
        row = min(max(row, 0), len(self.order) - 1)
        if row != self.cursor_row:
            self.cursor_row = row
            self._scroll_to_cursor()
            self.refresh()
            key = self.order[row]
            if self.on_highlight is not None:
                self.on_highlight(key)  # now: what follows the row is in this same update
            else:
                self.post_message(self.RowHighlighted(key))

    def action_cursor(self, step: int) -> None:
        """Move the cursor up or down a row."""
        self._move(self.cursor_row + step)

    def action_page(self, step: int) -> None:
        """Move the cursor a screenful up or down."""
        self._move(self.cursor_row + step * self.body_height)

    def action_columns(self, step: int) -> None:
        """Scroll the columns sideways (the originator column stays)."""
        offset = min(max(self.column_offset + step, 0), len(SCROLLING) - 1)
        if offset != self.column_offset:
            self.column_offset = offset
            self._relayout()

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            x = 0
            for column, size in self.columns_shown(self.content_size.width):
                x += size + 2 * PADDING
                if offset.x < x:
                    self.post_message(self.HeaderSelected(column.key))
                    return
            return
        self._move(self.top + offset.y - 1)

    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        self._move(self.cursor_row + 1)
        event.stop()

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self._move(self.cursor_row - 1)
        event.stop()

    def on_resize(self) -> None:
        self._relayout()
        self._scroll_to_cursor()


class CaptureTunnelTable(TunnelTable):
    """The table of capture mode: ←/→ step the time cursor (columns scroll with [ ])."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("right", "app.next_event", "Next event", show=False),
        Binding("left", "app.previous_event", "Previous event", show=False),
        Binding("home", "app.cursor_start", "Start", show=False),
        Binding("end", "app.cursor_end", "End", show=False),
    ]


class LinesWidget(Widget):
    """Lines of rich text drawn line by line: a line that did not change since the last
    frame is not converted again, and the screen's layout is redone only when the number
    of lines changes (a cursor move redraws these panes without reflowing the screen)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.lines: list[Text] = []
        self._strips: dict[tuple[object, ...], Strip] = {}
        self._fresh: dict[tuple[object, ...], Strip] = {}

    def set_lines(self, lines: list[Text]) -> None:
        """Draw these lines (cropped to the width)."""
        resized = len(lines) != len(self.lines)
        self.lines = lines
        self._strips, self._fresh = self._fresh or self._strips, {}
        self.refresh(layout=resized)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return max(len(self.lines), 1)

    def render_line(self, y: int) -> Strip:
        width = self.content_size.width
        if y >= len(self.lines):
            return Strip.blank(width, self.rich_style)
        line = self.lines[y]
        key = (width, line.plain, tuple(line.spans), line.style)
        strip = self._fresh.get(key) or self._strips.get(key)
        if strip is None:
            # rich_style walks every ancestor: asked only for a line not drawn before.
            base = self.rich_style
            segments = Segment.apply_style(line.render(self.app.console), base)
            strip = Strip(list(segments)).crop(0, width).adjust_cell_length(width, base)
        self._fresh[key] = strip
        return strip

    def on_resize(self) -> None:
        self._strips, self._fresh = {}, {}
        self.relayout()

    def relayout(self) -> None:
        """Recompute the lines for a new width (subclasses that wrap to it)."""


class DetailPane(LinesWidget):
    """The selected tunnel: counter charts, blackhole, transitions, diagnoses. Clicking a
    chart moves the time cursor to that moment."""

    CHART_HEIGHT = 4

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.detail: Detail | None = None
        self.empty_text = "No tunnel selected."
        self.charts: list[tuple[int, int, int, int]] = []
        self._drawn_width = 0

    def show(self, detail: Detail | None, empty_text: str = "No tunnel selected.") -> None:
        """Draw this tunnel (None: say `empty_text`)."""
        if detail == self.detail and empty_text == self.empty_text and self.lines:
            return
        self.detail = detail
        self.empty_text = empty_text
        self.relayout()

    def relayout(self) -> None:
        width = self.content_size.width or self.app.size.width // 2
        self._drawn_width = width
        self.set_lines(self._lines(width))

    def on_resize(self) -> None:
        # Its lines depend on the width alone: a new height (another tunnel's lines, taller
        # or shorter) is drawn already, and drawing it again cost a frame more per key.
        if self.content_size.width != self._drawn_width:
            super().on_resize()

    def _lines(self, width: int) -> list[Text]:
        charts: list[tuple[int, int, int, int]] = []
        if self.detail is None:
            lines = [Text(self.empty_text, style="dim")]
        else:
            lines = render_detail(self.detail, width, self.CHART_HEIGHT, charts=charts)
        self.charts = charts
        return lines

    def on_click(self, event: events.Click) -> None:
        detail = self.detail
        offset = event.get_content_offset(self)
        if detail is None or detail.live or offset is None:
            return
        start, end = detail.window
        for first, last, x0, count in self.charts:
            if first <= offset.y <= last and x0 <= offset.x < x0 + count:
                step = (end - start) / count
                self.post_message(Seek(start + (offset.x - x0) * step))
                return


class DetailScroll(VerticalScroll):
    """Scrolls the detail pane when it is taller than its share of the screen."""


class EventLog(LinesWidget):
    """The newest events that fit, newest last; frame and RTT never cut (a row too wide
    for the pane continues on a second line)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: Sequence[LogRow] = ()
        self.fmt = TimeFormat(None, relative=False)
        self.empty_text = "no keepalive events yet"

    def show(self, rows: Sequence[LogRow], fmt: TimeFormat, empty_text: str = "") -> None:
        """Draw these rows (oldest first) with times in this format."""
        empty_text = empty_text or "no keepalive events yet"
        if rows is self.rows and fmt == self.fmt and empty_text == self.empty_text and self.lines:
            return  # the same rows: a table filter or a selection does not move the log
        self.rows = rows
        self.fmt = fmt
        self.empty_text = empty_text
        self.relayout()

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return viewport.height

    def relayout(self) -> None:
        height = self.content_size.height
        width = self.content_size.width
        if height <= 0 or not self.rows:
            self.set_lines([Text(self.empty_text, style="dim")])
            return
        recent = list(self.rows[-height:])
        pad = max((len(row.originator) for row in recent), default=0)
        lines: list[Text] = []
        for row in reversed(recent):
            lines[:0] = render_log_row(row, self.fmt, width, pad)
            if len(lines) >= height:
                break
        self.set_lines(lines[-height:])


class CursorBar(Widget):
    """Capture mode: the cursor time, play state and a map of the transitions; clicking
    the map moves the cursor there."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.start = 0.0
        self.end = 0.0
        self.cursor = 0.0
        self.playing = False
        self.speed = 1
        self.position = (0, 0)
        self.downs: list[float] = []
        self.ups: list[float] = []
        self.fmt = TimeFormat(None, relative=True)
        self.progress: str | None = None  # shown instead while the capture loads

    def render(self) -> RenderableType:
        if self.progress is not None:
            return Text(self.progress, style="bold")
        width = self.content_size.width
        line = Text()
        line.append("▶ " if self.playing else "‖ ", style="bold")
        line.append(f"×{self.speed:<3} ", style="bold cyan")
        other = TimeFormat(self.fmt.origin, relative=not self.fmt.relative)
        if self.fmt.relative:
            shown = f"{self.fmt(self.cursor, 6)} s of {self.end - self.start:.3f} s"
            aside = fmt_utc(self.cursor, date=width >= 90, digits=6) + " UTC"
        else:
            shown = fmt_utc(self.cursor, date=width >= 90, digits=6) + " UTC"
            aside = f"{other(self.cursor, 6)} s of {self.end - self.start:.3f} s"
        done, total = self.position
        count = f"  keepalive {done}/{total}"
        line.append(shown, style="bold yellow")
        # The other time format gives way first on a narrow screen (a long capture's
        # cursor times and counts do not fit 80 columns together).
        if line.cell_len + 2 + len(aside) + len(count) <= width:
            line.append(f"  {aside}", style="dim")
        line.append(count, style="dim")
        ruler = render_ruler(self.start, self.end, self.cursor, width, self.downs, self.ups)
        return Text("\n").join([line, ruler])

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        width = self.content_size.width
        if offset is None or offset.y != 1 or width < 3 or self.progress is not None:
            return
        self.post_message(Seek(self.start + (self.end - self.start) * offset.x / (width - 1)))


class StatusLine(Widget):
    """One line of context: sort, filter, source, the last notice."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.text = ""

    def update(self, text: str) -> None:
        """Say this (redrawn without reflowing the screen)."""
        if text != self.text:
            self.text = text
            self.refresh()

    def render(self) -> RenderableType:
        return Text(self.text, no_wrap=True, overflow="ellipsis")


class KeyBar(Widget):
    """The main keys of the mode, one line. Drawn once: Textual's Footer rebuilds itself
    at every focus change, which costs a hub-sized screen a noticeable pause."""

    def __init__(self, keys: Sequence[tuple[str, str]], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.keys = keys

    def render(self) -> RenderableType:
        text = Text(no_wrap=True, overflow="crop")
        for number, (key, label) in enumerate(self.keys):
            if number:
                text.append(" ")
            text.append(key, style="bold #ffa62b")
            text.append(f" {label}")
        return text


HELP_TEXT = """\
[b]gre-keepalive[/b] — GRE keepalive counters and line protocol, per originator.

Each row is one endpoint that sends keepalives ([i]originator → peer[/i]).
[b]Line[/b] is its line protocol as Cisco IOS drives it ([green]up[/green] / [red]down[/red]);
[b]Counter[/b] counts keepalives sent since the last one returned, against retries;
[b]Sent / Ret / Lost[/b]: keepalives sent, returned, and never answered (one whose
reply is still due is not lost); [b]Data[/b]: data packets it sent into the tunnel;
[b]Blackholed[/b]: of those, sent while its keepalives were failing and its line was
still up, min–max (min from the first unanswered keepalive, max from the last
answered one); [b]Downs[/b] and [b]Time down[/b]: down transitions, time spent down.
In a capture every figure is the one at the time cursor. The default order is
problems first: tunnels that went down, then those with unanswered keepalives.

The detail pane charts each originator's counter over time: the dashed line
is the retries threshold, red shading marks the line protocol down, ▲ is the
time cursor (click a chart or the map above the table to move it there). The
event log lists keepalives sent, returned and extrapolated (ticks the capture does
not show, inferred from the period) and the line protocol transitions, newest last.
"""


class HelpScreen(ModalScreen[None]):
    """Key bindings and what the columns mean."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close", show=False),
        Binding("q", "dismiss", "Close", show=False),
    ]

    def __init__(self, keys: Sequence[tuple[str, str]]) -> None:
        super().__init__()
        self.keys = keys

    def compose(self) -> ComposeResult:
        width = max((len(key) for key, _ in self.keys), default=0)
        lines = "\n".join(f"  [b]{key:<{width}}[/b]  {text}" for key, text in self.keys)
        with VerticalScroll(id="help-box"):
            yield Static(HELP_TEXT + "\n[b]Keys[/b]\n" + lines, id="help-text", markup=True)
            yield Static("[dim]Esc, ? or q closes this help.[/dim]", markup=True)


@dataclass(frozen=True, slots=True)
class ExportChoice:
    """What the export dialog was told: where, which format, which originators."""

    path: str
    format: str  # json | csv
    filtered: bool  # only the rows the table's filter keeps


class ExportScreen(ModalScreen[ExportChoice | None]):
    """Asks where to export, as JSON or CSV, the whole analysis or the current filter."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, default_stem: str, *, has_filter: bool, what: str) -> None:
        super().__init__()
        self.default_stem = default_stem
        self.has_filter = has_filter
        self.what = what

    def compose(self) -> ComposeResult:
        with Vertical(id="export-box"):
            yield Label(Text(f"Export {self.what}", style="bold"))  # a name may hold [/]
            with Horizontal(id="export-choices"):
                with RadioSet(id="export-format"):
                    yield RadioButton("JSON", value=True, id="format-json")
                    yield RadioButton("CSV", id="format-csv")
                with RadioSet(id="export-scope"):
                    yield RadioButton("everything", value=not self.has_filter, id="scope-all")
                    yield RadioButton(
                        "rows the filter keeps", value=self.has_filter, id="scope-filter"
                    )
            yield Label("File (relative to the current directory):")
            yield Input(f"{self.default_stem}.json", id="export-path")
            with Horizontal(id="export-buttons"):
                yield Button("Export", variant="primary", id="export-ok")
                yield Button("Cancel", id="export-cancel")

    def on_mount(self) -> None:
        self.query_one("#export-path", Input).focus()

    @property
    def format(self) -> str:
        return "csv" if self.query_one("#format-csv", RadioButton).value else "json"

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        if event.radio_set.id != "export-format":
            return
        field = self.query_one("#export-path", Input)
        stem, dot, suffix = field.value.rpartition(".")
        if dot and suffix in ("json", "csv"):
            field.value = f"{stem}.{self.format}"

    def _done(self) -> None:
        path = self.query_one("#export-path", Input).value.strip()
        if not path:
            return
        filtered = self.query_one("#scope-filter", RadioButton).value
        self.dismiss(ExportChoice(path, self.format, filtered))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._done()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "export-ok":
            self._done()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        """Close without exporting."""
        self.dismiss(None)


class PromptScreen(ModalScreen[str | None]):
    """One line of input (go to a time or frame, filter the event log)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, hint: str, value: str = "") -> None:
        super().__init__()
        self.prompt_title = title
        self.hint = hint
        self.value = value

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt-box"):
            yield Label(Text(self.prompt_title, style="bold"))
            yield Label(self.hint, classes="hint")
            yield Input(self.value, id="prompt-input")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        """Close without an answer."""
        self.dismiss(None)
