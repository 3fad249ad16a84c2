"""The widgets of the TUI. They draw the snapshots they are given and compute nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.console import RenderableType
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.geometry import Size
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import DataTable, Static
from textual.widgets.data_table import ColumnKey

from analyzer.keepalive.state import LineState
from analyzer.tui.render import (
    Detail,
    render_detail,
    render_log_row,
    render_ruler,
    state_text,
)
from analyzer.tui.views import COLUMNS, LogRow, OriginatorView, fmt_utc


def _cells(view: OriginatorView) -> tuple[Text, ...]:
    cells: list[Text] = []
    for column in COLUMNS:
        if column.key == "line":
            cells.append(state_text(view.line_state))
            continue
        text = Text(column.text(view), justify="right" if column.numeric else "left")
        if column.key == "counter":
            if view.line_state is LineState.DOWN:
                text.stylize("bold red")
            elif view.counter >= view.retries:
                text.stylize("bold yellow")
        elif column.key in ("lost", "downs", "down") and text.plain not in ("0", "—"):
            text.stylize("red")
        cells.append(text)
    return tuple(cells)


class TunnelTable(DataTable[Text]):
    """One row per keepalive originator; rows are rebuilt only when their order changes."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self._order: list[str] = []
        self._shown: dict[str, tuple[Text, ...]] = {}

    def on_mount(self) -> None:
        for column in COLUMNS:
            self.add_column(column.label, key=column.key)

    @property
    def selected_key(self) -> str | None:
        """The row key under the cursor."""
        if not self._order or not 0 <= self.cursor_row < len(self._order):
            return None
        return self._order[self.cursor_row]

    def set_sort_marker(self, by: str, reverse: bool) -> None:
        """Show ▲/▼ after the label of the column the rows are sorted by."""
        for column in COLUMNS:
            label = column.label + ((" ▼" if reverse else " ▲") if column.key == by else "")
            self.columns[ColumnKey(column.key)].label = Text(label)
        self._require_update_dimensions = True
        self.refresh()

    def show(self, views: Sequence[OriginatorView], *, select: str | None = None) -> None:
        """Display these rows in this order, keeping the cursor on the same originator."""
        order = [view.row_key for view in views]
        cells = {view.row_key: _cells(view) for view in views}
        keep = select or self.selected_key
        if order != self._order:
            self.clear()
            for key in order:
                self.add_row(*cells[key], key=key)
            self._order = order
            if keep in order:
                self.move_cursor(row=order.index(keep), animate=False)
        else:
            for key in order:
                for column, old, new in zip(COLUMNS, self._shown[key], cells[key], strict=True):
                    if old != new:
                        self.update_cell(key, column.key, new, update_width=True)
            if select is not None and select in order:
                self.move_cursor(row=order.index(select), animate=False)
        self._shown = cells


class CaptureTunnelTable(TunnelTable):
    """The table of capture mode: ←/→ step the time cursor instead of scrolling sideways."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("right", "app.next_event", "Next event", show=False),
        Binding("left", "app.previous_event", "Previous event", show=False),
        Binding("home", "app.cursor_start", "Start", show=False),
        Binding("end", "app.cursor_end", "End", show=False),
    ]


class DetailPane(Widget):
    """The selected tunnel: counter charts, transitions, diagnoses."""

    CHART_HEIGHT = 4

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.detail: Detail | None = None
        self._cache: tuple[int, list[Text]] | None = None

    def show(self, detail: Detail | None) -> None:
        """Draw this tunnel (None: nothing selected)."""
        if detail == self.detail:
            return
        self.detail = detail
        self._cache = None
        self.refresh(layout=True)

    def _lines(self, width: int) -> list[Text]:
        if self._cache is not None and self._cache[0] == width:
            return self._cache[1]
        if self.detail is None:
            lines = [Text("No tunnel selected.", style="dim")]
        else:
            lines = render_detail(self.detail, width, self.CHART_HEIGHT)
        self._cache = (width, lines)
        return lines

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._lines(width))

    def render(self) -> RenderableType:
        return Text("\n").join(self._lines(self.content_size.width))


class DetailScroll(VerticalScroll):
    """Scrolls the detail pane when it is taller than its share of the screen."""


class EventLog(Widget):
    """The newest events that fit, newest last."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: Sequence[LogRow] = ()
        self.origin: float | None = None

    def show(self, rows: Sequence[LogRow], origin: float | None) -> None:
        """Draw these rows (oldest first); times are offsets from `origin` when it is set."""
        self.rows = rows
        self.origin = origin
        self.refresh()

    def render(self) -> RenderableType:
        height = self.content_size.height
        rows = list(self.rows)[-height:] if height > 0 else []
        if not rows:
            return Text("no keepalive events yet", style="dim")
        lines = [render_log_row(row, self.origin) for row in rows]
        for line in lines:
            line.no_wrap = True
            line.overflow = "ellipsis"
        return Text("\n", no_wrap=True, overflow="ellipsis").join(lines)


class CursorBar(Widget):
    """Capture mode: the cursor time, play state and a map of the transitions."""

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

    def render(self) -> RenderableType:
        line = Text()
        line.append("▶ playing" if self.playing else "‖ paused ", style="bold")
        line.append(f" ×{self.speed:<3} ", style="bold cyan")
        line.append(f" {fmt_utc(self.cursor)} UTC", style="bold yellow")
        line.append(
            f"  +{self.cursor - self.start:.6f} s of {self.end - self.start:.3f} s", style="dim"
        )
        done, total = self.position
        line.append(f"  event {done}/{total}", style="dim")
        ruler = render_ruler(
            self.start, self.end, self.cursor, self.content_size.width, self.downs, self.ups
        )
        return Text("\n").join([line, ruler])


class StatusLine(Static):
    """One line of context: sort, filter, source, the last notice."""


HELP_TEXT = """\
[b]gre-keepalive[/b] — GRE keepalive counters and line protocol, per originator.

Each row is one endpoint that sends keepalives ([i]originator → peer[/i]).
[b]Line[/b] is its line protocol as Cisco IOS drives it ([green]up[/green] / [red]down[/red]);
[b]Counter[/b] counts keepalives sent since the last one returned, against retries;
[b]Sent / Ret / Lost[/b]: keepalives sent, returned, and not (yet) returned;
[b]Downs[/b] and [b]Time down[/b]: down transitions and the time spent down.
In a capture every figure is the one at the time cursor.

The detail pane charts each originator's counter over time: the dashed line
is the retries threshold, red shading marks the line protocol down, ▲ is the
time cursor. The event log lists keepalives sent, returned and extrapolated
(ticks the capture does not show, inferred from the period) and the line
protocol transitions, newest last.
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
