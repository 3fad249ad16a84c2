"""The Textual application: capture mode (`gre-keepalive tui`) and live mode (`watch`).

Both modes show the same screen — the tunnels table, the selected tunnel's detail, the event
log — and differ in where the snapshot comes from: a time cursor over an offline
:class:`~analyzer.keepalive.model.Analysis` (:class:`CaptureApp`), or a :class:`LiveFeeder` running
a frame source in threads and posting coalesced updates (:class:`LiveApp`).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.events import Resize
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Header, Input

from analyzer import cyclic_gc
from analyzer.keepalive.analysis import Settings
from analyzer.keepalive.model import Analysis
from analyzer.keepalive.state import LineState
from analyzer.keepalive.wording import counted
from analyzer.read.sources import FrameSource
from analyzer.report.csv import write_csv
from analyzer.report.json import write_json
from analyzer.tui.live import LiveFeeder, LiveStore, LiveUpdate
from analyzer.tui.render import Detail
from analyzer.tui.views import (
    PROBLEMS,
    SORT_KEYS,
    CaptureIndex,
    LogFilter,
    LogRow,
    OriginatorView,
    Rows,
    Snapshot,
    TimeFormat,
    TunnelKey,
    filter_views,
    load_summary,
    row_key,
    sort_label,
    sort_views,
)
from analyzer.tui.widgets import (
    CaptureTunnelTable,
    CursorBar,
    DetailPane,
    DetailScroll,
    EventLog,
    ExportChoice,
    ExportScreen,
    HelpScreen,
    KeyBar,
    PromptScreen,
    Seek,
    StatusLine,
    TunnelTable,
)

LOG_ROWS = 200  # event-log rows handed to the widget (it shows the newest that fit)
SPEEDS = (1, 10, 100)
PLAY_TICK = 0.1
NARROW = 100  # below this many columns the Events pane folds away (`v` brings it back)
PROGRESS_EVERY = 0.1  # seconds between two progress updates while a capture loads

Progress = Callable[[int | None], None]  # bytes read so far (None: not known)
Loader = Callable[[Progress], Analysis]


def filtered_analysis(analysis: Analysis, keep: set[str]) -> Analysis:
    """The analysis with only the originators whose table rows are in `keep`."""
    tunnels = []
    for tunnel in analysis.tunnels:
        members = [
            o
            for o in tunnel.originators
            if row_key(tunnel.endpoints, tunnel.key, o.address) in keep
        ]
        if members:
            tunnels.append(replace(tunnel, originators=members))
    return Analysis(analysis.source, tunnels)


class KeepaliveApp(App[int]):
    """What both modes share: layout, table sorting and filtering, help, export, quit."""

    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses live anywhere
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = []
    # Both modes' keys, after each mode's own in its BINDINGS (the footer keeps that order).
    COMMON_BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("s", "sort_next", "Sort", show=False),
        Binding("S", "sort_reverse", "Reverse sort", show=False),
        Binding("v", "toggle_events", "Events"),
        Binding("l", "log_filter", "Log filter", show=False),
        Binding("t", "toggle_time", "Time format", show=False),
        Binding("e", "export", "Export"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]
    HELP_KEYS: ClassVar[list[tuple[str, str]]] = [
        ("↑ ↓ PgUp PgDn", "select an originator (its tunnel fills the detail pane)"),
        ("[ ]", "scroll the table's columns sideways (columns that do not fit are hidden)"),
        ("s / S", "sort by the next column / reverse the order (or click a header)"),
        ("/", "filter rows by address, key, up or down (Enter keeps it, Esc clears it)"),
        ("l", "filter the event log by originator and event type (sent returned down up …)"),
        ("v", "show or hide the Events pane (on a narrow screen: Events instead of Tunnel)"),
        ("t", "times relative to the start, or UTC clock times"),
        ("e", "export JSON or CSV, everything or the filtered rows, to a file you name"),
        ("?", "this help"),
        ("q", "quit"),
    ]
    DEFAULT_RELATIVE = False

    def __init__(self, *, title: str, export_dir: Path | None = None) -> None:
        super().__init__()
        self.title = title
        self.export_dir = export_dir
        self.sort_by = PROBLEMS
        self.sort_reverse = False
        self.filter_text = ""
        self.log_filter = LogFilter()
        self.message = ""  # the last thing worth saying in the status line
        self.selected: str | None = None
        self.snapshot: Snapshot | None = None
        self.relative = self.DEFAULT_RELATIVE
        self.events_flipped = False  # `v`: the Events pane the other way from the default
        self.rows = Rows.empty()
        self.ready = threading.Event()  # set once the first snapshot is on screen

    # ------------------------------------------------------------------ layout

    def make_table(self) -> TunnelTable:
        return TunnelTable(id="tunnels")

    def compose_top(self) -> ComposeResult:
        yield from ()

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="⇄")
        yield from self.compose_top()
        table = self.make_table()
        table.on_highlight = self.select_row
        yield table
        with Horizontal(id="lower"):
            with DetailScroll(id="detail-scroll"):
                yield DetailPane(id="detail")
            yield EventLog(id="events")
        yield Input(id="filter", placeholder="filter: words matching address, key, up/down")
        yield StatusLine(id="status")
        yield KeyBar(self.footer_keys(), id="keys")

    def footer_keys(self) -> list[tuple[str, str]]:
        """The bindings shown at the bottom: those not marked show=False, in order."""
        keys: list[tuple[str, str]] = []
        for binding in self.BINDINGS:
            if isinstance(binding, Binding) and binding.show:
                keys.append((binding.key_display or binding.key, binding.description))
        return keys

    def on_mount(self) -> None:
        self.query_one("#detail-scroll").border_title = "Tunnel"
        self.query_one(EventLog).border_title = "Events"
        self.query_one(TunnelTable).set_sort_marker(self.sort_by, self.sort_reverse)
        self.arrange_panes()
        self.show_status()

    def on_resize(self, event: Resize) -> None:
        self.arrange_panes()
        self.show_status()  # a narrow status line leaves out the source

    @property
    def narrow(self) -> bool:
        """Too narrow for the Tunnel and Events panes side by side."""
        return self.size.width < NARROW

    def arrange_panes(self) -> None:
        """Tunnel and Events side by side on a wide screen; on a narrow one the Tunnel pane
        alone, or the Events pane alone after `v`."""
        events = self.query_one(EventLog)
        detail = self.query_one("#detail-scroll")
        show_events = (not self.narrow) != self.events_flipped
        events.display = show_events
        detail.display = not (self.narrow and show_events)
        events.set_class(self.narrow, "-alone")
        self.call_after_refresh(events.relayout)  # its rows fill the height it gets

    # ------------------------------------------------------------------ what modes provide

    def detail_for(self, tunnel: TunnelKey, snapshot: Snapshot) -> Detail | None:
        raise NotImplementedError

    def log_rows(self) -> Sequence[LogRow]:
        raise NotImplementedError

    @property
    def origin(self) -> float | None:
        """Relative times count from here (the capture's or the session's start)."""
        return None

    @property
    def fmt(self) -> TimeFormat:
        """The screen's one time format."""
        return TimeFormat(self.origin, self.relative)

    def status_text(self) -> str:
        return ""

    def export_stem(self) -> str:
        """The default export file name, without its extension (in the current directory)."""
        raise NotImplementedError

    def write_export(self, choice: ExportChoice) -> Path:
        raise NotImplementedError

    # ------------------------------------------------------------------ drawing

    def visible_rows(self, snapshot: Snapshot) -> Rows:
        """The table's rows: filtered, then sorted."""
        rows = filter_views(snapshot.views, self.filter_text)
        return Rows.of(sort_views(rows, self.sort_by, reverse=self.sort_reverse))

    def show(self, snapshot: Snapshot) -> None:
        """Draw a snapshot in every pane."""
        self.snapshot = snapshot
        if not self.query(TunnelTable):
            return  # an update that arrives while the app shuts down and its panes are gone
        table = self.query_one(TunnelTable)
        self.rows = self.visible_rows(snapshot)
        table.empty_text = (
            f"no originator matches the filter “{self.filter_text}” (Esc clears it)"
            if self.filter_text
            else "no keepalive originators yet"
        )
        table.show(self.rows, unfiltered=len(snapshot.views))
        self.selected = table.selected_key
        self.show_detail()
        self.show_log()
        self.show_status()

    def show_log(self) -> None:
        empty = "no event matches the log filter (l)" if self.log_filter else ""
        self.query_one(EventLog).show(self.log_rows(), self.fmt, empty)
        title = "Events"
        if self.log_filter:
            kinds = " ".join(sorted(self.log_filter.kinds))
            title += f" · {' '.join(filter(None, [kinds, *self.log_filter.words]))}"
        self.query_one(EventLog).border_title = title

    def show_detail(self) -> None:
        snapshot = self.snapshot
        detail = None
        if snapshot is not None and self.selected is not None:
            view = self.query_one(TunnelTable).view_of(self.selected)
            if view is not None:
                detail = self.detail_for(view.tunnel, snapshot)
        empty = "No tunnel selected."
        if snapshot is not None and not self.rows:
            empty = (
                f"No originator matches the filter “{self.filter_text}”; Esc clears it."
                if self.filter_text
                else "No keepalive originator yet."
            )
        self.query_one(DetailPane).show(detail, empty)

    def show_status(self) -> None:
        # The order and the filter title the table they shape, leaving the status line
        # (one line, cut at 80 columns) to the source, its figures and the last message.
        arrow = " ▼" if self.sort_reverse else ""
        if self.sort_by != PROBLEMS:
            arrow = " ▼" if self.sort_reverse else " ▲"
        title = f"Keepalive originators · {sort_label(self.sort_by)}{arrow}"
        if self.filter_text:
            title += f" · filter “{self.filter_text}”"
        self.query_one(TunnelTable).border_title = title
        parts = [self.status_text(), self.message]
        self.query_one(StatusLine).update(" · ".join(p for p in parts if p))

    def redraw(self) -> None:
        if self.snapshot is not None:
            self.show(self.snapshot)

    def select_row(self, key: str) -> None:
        """The table's cursor reached this row: its tunnel fills the detail pane."""
        if key != self.selected:
            self.selected = key
            self.show_detail()

    @on(TunnelTable.RowHighlighted)
    def _row_highlighted(self, event: TunnelTable.RowHighlighted) -> None:
        self.select_row(event.key)

    @on(TunnelTable.HeaderSelected)
    def _header_selected(self, event: TunnelTable.HeaderSelected) -> None:
        if event.column == self.sort_by:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_by, self.sort_reverse = event.column, False
        self._sorted()

    @on(Seek)
    def _seek(self, event: Seek) -> None:
        self.seek(event.time)

    def seek(self, time_: float) -> None:
        """Move the time cursor (capture mode only)."""

    # ------------------------------------------------------------------ actions

    def _sorted(self) -> None:
        self.query_one(TunnelTable).set_sort_marker(self.sort_by, self.sort_reverse)
        self.redraw()

    def action_sort_next(self) -> None:
        """Sort by the next column (problems first, then each column in turn)."""
        index = SORT_KEYS.index(self.sort_by)
        self.sort_by, self.sort_reverse = SORT_KEYS[(index + 1) % len(SORT_KEYS)], False
        self._sorted()

    def action_sort_reverse(self) -> None:
        """Reverse the sort order."""
        self.sort_reverse = not self.sort_reverse
        self._sorted()

    def action_filter(self) -> None:
        """Open the filter input."""
        field = self.query_one("#filter", Input)
        field.add_class("-visible")
        field.value = self.filter_text
        field.focus()

    def action_clear_filter(self) -> None:
        """Clear the filter and close its input."""
        field = self.query_one("#filter", Input)
        field.remove_class("-visible")
        self.query_one(TunnelTable).focus()
        if self.filter_text:
            self.filter_text = ""
            self.redraw()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self.redraw()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.input.remove_class("-visible")
        self.query_one(TunnelTable).focus()
        if event.value.strip() != self.filter_text:  # typing it already drew its rows
            self.filter_text = event.value.strip()
            self.redraw()

    def action_toggle_events(self) -> None:
        """Show or hide the Events pane."""
        self.events_flipped = not self.events_flipped
        self.arrange_panes()

    def action_toggle_time(self) -> None:
        """Relative times or UTC clock times, everywhere on the screen."""
        self.relative = not self.relative
        self.message = f"times: {self.fmt.name}"
        self.on_time_format()
        self.redraw()

    def on_time_format(self) -> None:
        """A mode's own reaction to `t`."""

    def action_log_filter(self) -> None:
        """Ask for the event-log filter."""
        current = " ".join([*sorted(self.log_filter.kinds), *self.log_filter.words])

        def done(text: str | None) -> None:
            if text is None:
                return
            self.log_filter = LogFilter.parse(text)
            self.redraw()

        self.push_screen(
            PromptScreen(
                "Filter the event log",
                "originator address (or part of it), and/or event types: sent returned "
                "extrapolated down up notice (empty: everything)",
                current,
            ),
            done,
        )

    def action_help(self) -> None:
        """Show the key bindings."""
        self.push_screen(HelpScreen(self.HELP_KEYS))

    def action_export(self) -> None:
        """Ask where and what to export, then write it."""

        def done(choice: ExportChoice | None) -> None:
            if choice is not None:
                self.export(choice)

        self.push_screen(
            ExportScreen(self.export_stem(), has_filter=bool(self.filter_text), what=self.title),
            done,
        )

    def export(self, choice: ExportChoice) -> None:
        """Write an export and say where (or why not)."""
        try:
            path = self.write_export(choice)
        except OSError as exc:
            self.message = f"export failed: {exc.strerror or exc}"
            self.notify(self.message, severity="error", timeout=8)
        else:
            self.message = f"exported to {path}"
            self.notify(f"Exported to {path}", title="Export", timeout=8)
        self.show_status()

    def export_path(self, choice: ExportChoice) -> Path:
        """Where the user asked to write (relative paths from the current directory)."""
        path = Path(choice.path).expanduser()
        return path if path.is_absolute() else (self.export_dir or Path.cwd()) / path

    def kept_rows(self) -> set[str]:
        """The row keys the table's filter keeps."""
        return set(self.rows.keys)


# ---------------------------------------------------------------------------- capture mode


def _capture_stem(name: str) -> str:
    stem = Path(name).name.removesuffix(".gz")
    for suffix in (".pcapng", ".pcap", ".cap"):
        stem = stem.removesuffix(suffix)
    return f"{stem or 'capture'}.analysis"


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


class CaptureApp(KeepaliveApp):
    """A capture analysed once, explored with a time cursor."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("full_stop", "next_event", "Next", key_display="."),
        Binding("comma", "previous_event", "Prev", key_display=","),
        Binding("n", "next_transition", "Transition"),
        Binding("p", "previous_transition", "Prev transition", show=False),
        Binding("N", "next_any_transition", "Next transition (any)", show=False),
        Binding("P", "previous_any_transition", "Prev transition (any)", show=False),
        Binding("space", "play", "Play"),
        Binding("x", "speed", "Speed", show=False),
        Binding("1", "set_speed(1)", "×1", show=False),
        Binding("2", "set_speed(10)", "×10", show=False),
        Binding("3", "set_speed(100)", "×100", show=False),
        Binding("g", "cursor_start", "Start", show=False),
        Binding("G", "cursor_end", "End", show=False),
        Binding("colon", "goto", "Go to", key_display=":", show=False),
        *KeepaliveApp.COMMON_BINDINGS,
    ]
    HELP_KEYS: ClassVar[list[tuple[str, str]]] = [
        (". or →", "time cursor to the next keepalive event (any originator)"),
        (", or ←", "time cursor to the previous keepalive event"),
        ("n / p", "next / previous line-protocol transition of the selected originator"),
        ("N / P", "next / previous transition of any originator"),
        (":", "go to a time (+50, 00:00:50.5) or a frame (#835)"),
        ("click", "on the map above the table or on a chart: cursor to that moment"),
        ("space", "play / pause (the cursor moves with the capture's clock)"),
        ("x", "playback speed: ×1 → ×10 → ×100"),
        ("1 2 3", "playback speed ×1, ×10, ×100"),
        ("g or Home", "cursor to the start of the capture"),
        ("G or End", "cursor to the end of the capture"),
        *KeepaliveApp.HELP_KEYS,
    ]
    DEFAULT_RELATIVE = True

    def __init__(
        self,
        loader: Loader,
        *,
        name: str,
        size: int | None = None,
        warnings: Sequence[str] = (),
        export_dir: Path | None = None,
    ) -> None:
        super().__init__(title=f"gre-keepalive — {name}", export_dir=export_dir)
        self.sub_title = "capture"
        self.loader = loader
        self.capture_name = name
        self.size_bytes = size
        self.warnings = list(warnings)
        self.index: CaptureIndex | None = None
        # The event log's rows at a cursor, under a log filter (a table filter or a new
        # selection leaves them as they are).
        self._log_rows: tuple[tuple[float, LogFilter], Sequence[LogRow]] | None = None
        self.cursor = 0.0
        self.playing = False
        self.speed = 1
        self.failure: str | None = None
        self._timer: Timer | None = None
        self._played_at = 0.0
        self._progress_at = 0.0
        self._stop_warming = threading.Event()
        self.warmed = threading.Event()  # set once every row's counts and widths are in

    def make_table(self) -> TunnelTable:
        return CaptureTunnelTable(id="tunnels")

    def compose_top(self) -> ComposeResult:
        yield CursorBar(id="cursor-bar")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(CursorBar).progress = f"reading {self.capture_name}…"
        self.message = f"analysing {self.capture_name}…"
        self.show_status()
        self._timer = self.set_interval(PLAY_TICK, self._play_tick, pause=True)
        self.run_worker(self._load, name="analysis", thread=True, exit_on_error=False)

    # ------------------------------------------------------------------ loading

    def _progress(self, position: int | None) -> None:
        """Called by the reading thread with the bytes read so far (None: not known)."""
        now = time.monotonic()
        if position is None:
            return
        if now - self._progress_at < PROGRESS_EVERY:
            return
        self._progress_at = now
        self.call_from_thread(self._show_progress, position)

    def _show_progress(self, position: int | None) -> None:
        if not self.query(CursorBar) or self.index is not None:
            return
        bar = self.query_one(CursorBar)
        total = self.size_bytes
        if position is None:
            bar.progress = f"analysing {self.capture_name}…"
        elif total:
            share = min(position / total, 1.0)
            width = max(bar.content_size.width - 40, 10)
            done = round(share * width)
            bar.progress = (
                f"reading {Path(self.capture_name).name}  "
                f"{'█' * done}{'░' * (width - done)}  "
                f"{_megabytes(position)} of {_megabytes(total)} ({share:.0%})"
            )
        else:
            bar.progress = f"reading {self.capture_name}: {_megabytes(position)}"
        bar.refresh()

    def _load(self) -> None:
        try:
            # The collector paused while the capture loads, as `analyze` does: its passes
            # over the growing analysis took a quarter of the load's CPU time at 500
            # tunnels, two fifths at 5,000.
            with cyclic_gc.paused():
                analysis = self.loader(self._progress)
                self.call_from_thread(self._show_progress, None)
                # One pass frees the cycles the reading left behind (two objects in five
                # it made, 1.3 million at 5,000 tunnels: over 100 MB kept otherwise).
                gc.collect()
                index = CaptureIndex(analysis)
                # The analysis and its index live as long as the screen: out of the
                # collector's sight from now on (its full passes over them paused a key
                # by 0.1 s at 500 tunnels and up to 2 s at 5,000).
                gc.freeze()
        except Exception as exc:  # shown on stderr once the UI has closed
            self.call_from_thread(self._failed, str(exc) or type(exc).__name__)
        else:
            self.call_from_thread(self._loaded, index)

    def _warm(self) -> None:
        """After the first paint: every originator's counts, and the column widths their
        largest figures (those at the end) need, so later keys never wait for them."""
        index = self.index
        if index is None:
            return
        index.warm(stop=self._stop_warming.is_set)
        if self._stop_warming.is_set():
            return
        widths = list(index.state_at(index.end).views)
        with contextlib.suppress(RuntimeError):  # the app closed meanwhile
            self.call_from_thread(self._fit, widths)

    def on_unmount(self) -> None:
        self._stop_warming.set()
        gc.unfreeze()

    def _fit(self, views: Sequence[OriginatorView]) -> None:
        if self.query(TunnelTable):
            self.query_one(TunnelTable).fit(views)
        gc.freeze()  # the counts built since the first paint, as the analysis
        self.warmed.set()

    def _failed(self, message: str) -> None:
        self.failure = message
        self.exit(return_code=2)

    def _loaded(self, index: CaptureIndex) -> None:
        self.index = index
        self.cursor = index.start
        source = index.analysis.source
        self.warnings.extend(source.warnings)
        self.message = load_summary(index.analysis, self.warnings)
        transitions = [
            t
            for tunnel in index.analysis.tunnels
            for o in tunnel.originators
            for t in o.transitions
        ]
        bar = self.query_one(CursorBar)
        bar.progress = None
        bar.downs = [t.time for t in transitions if t.state is LineState.DOWN]
        bar.ups = [t.time for t in transitions if t.state is LineState.UP]
        self.move_to(self.cursor)
        self.query_one(TunnelTable).focus()
        self.ready.set()
        # once the first screen is out: the warming thread would take turns with it
        self.call_after_refresh(self._start_warming)

    def _start_warming(self) -> None:
        self.run_worker(self._warm, name="warm", thread=True, exit_on_error=False)

    # ------------------------------------------------------------------ the cursor

    @property
    def origin(self) -> float | None:
        return self.index.start if self.index is not None else None

    def move_to(self, time_: float) -> None:
        """Put the time cursor at `time_` and redraw everything at that moment."""
        index = self.index
        if index is None:
            return
        self.cursor = min(max(time_, index.start), index.end)
        bar = self.query_one(CursorBar)
        bar.start, bar.end, bar.cursor = index.start, index.end, self.cursor
        bar.playing, bar.speed, bar.fmt = self.playing, self.speed, self.fmt
        bar.position = index.event_position(self.cursor)
        bar.refresh()
        self.show(index.state_at(self.cursor))

    def visible_rows(self, snapshot: Snapshot) -> Rows:
        if self.index is None:
            return super().visible_rows(snapshot)
        return self.index.rows_at(snapshot.time, self.sort_by, self.sort_reverse, self.filter_text)

    def seek(self, time_: float) -> None:
        if self.index is not None:
            self.message = ""
            self.move_to(time_)

    def on_time_format(self) -> None:
        self.query_one(CursorBar).fmt = self.fmt
        self.query_one(CursorBar).refresh()

    def detail_for(self, tunnel: TunnelKey, snapshot: Snapshot) -> Detail | None:
        index = self.index
        view = snapshot.tunnel(tunnel)
        if index is None or view is None:
            return None
        return Detail(
            tunnel=view,
            series=index.series(tunnel),
            transitions=index.all_transitions(tunnel),
            window=(index.start, index.end),
            cursor=self.cursor,
            fmt=self.fmt,
        )

    def log_rows(self) -> Sequence[LogRow]:
        if self.index is None:
            return ()
        key = (self.cursor, self.log_filter)
        if self._log_rows is not None and self._log_rows[0] == key:
            return self._log_rows[1]
        rows = self.index.log_until(self.cursor, LOG_ROWS, self.log_filter)
        self._log_rows = (key, rows)
        return rows

    def status_text(self) -> str:
        # A narrow screen keeps the line for the figures: the title names the capture.
        return "" if self.narrow else self.capture_name

    def _jump(self, target: float | None, nothing: str) -> None:
        if self.index is None:
            return
        if target is None:
            self.message = nothing
            self.show_status()
            return
        self.message = ""
        self.move_to(target)

    def action_next_event(self) -> None:
        """Cursor to the next keepalive event."""
        if self.index is not None:
            self._jump(self.index.next_event(self.cursor), "no later keepalive event")

    def action_previous_event(self) -> None:
        """Cursor to the previous keepalive event."""
        if self.index is not None:
            self._jump(self.index.previous_event(self.cursor), "no earlier keepalive event")

    def action_next_transition(self) -> None:
        """Cursor to the selected originator's next transition."""
        if self.index is not None:
            found = self.index.next_transition(self.cursor, self.selected)
            self._jump(found, "no later transition of the selected originator")

    def action_previous_transition(self) -> None:
        """Cursor to the selected originator's previous transition."""
        if self.index is not None:
            found = self.index.previous_transition(self.cursor, self.selected)
            self._jump(found, "no earlier transition of the selected originator")

    def action_next_any_transition(self) -> None:
        """Cursor to the next transition of any originator."""
        if self.index is not None:
            self._jump(self.index.next_transition(self.cursor), "no later transition")

    def action_previous_any_transition(self) -> None:
        """Cursor to the previous transition of any originator."""
        if self.index is not None:
            self._jump(self.index.previous_transition(self.cursor), "no earlier transition")

    def action_cursor_start(self) -> None:
        """Cursor to the start of the capture."""
        if self.index is not None:
            self._jump(self.index.start, "")

    def action_cursor_end(self) -> None:
        """Cursor to the end of the capture."""
        if self.index is not None:
            self._jump(self.index.end, "")

    def action_goto(self) -> None:
        """Ask for a time or a frame and move the cursor there."""
        if self.index is None:
            return

        def done(text: str | None) -> None:
            if text:
                self.goto(text)

        self.push_screen(
            PromptScreen(
                "Go to",
                "a time: +50 or 50.2 (seconds from the start), 00:00:50.5 (UTC), "
                "2025-11-26 00:00:50; or a frame: #835",
            ),
            done,
        )

    def goto(self, text: str) -> None:
        """Move the cursor to a time or a frame (`#835`, `frame 835`) the user typed."""
        index = self.index
        if index is None:
            return
        spec = text.strip().lower()
        target: float | None
        if spec.startswith("#") or spec.startswith("frame"):
            digits = spec.removeprefix("frame").strip().lstrip("#")
            try:
                frame = int(digits) if digits.isdigit() else None
            except ValueError:  # "²" is a digit int() refuses; so are 5,000 digits
                frame = None
            if frame is None:
                self._jump(None, f"not a frame number: {text}")
                return
            target = index.frame_time(frame)
            self._jump(target, f"no keepalive at or after frame {digits}")
            return
        target = self.fmt.parse(text)
        if target is None:
            self._jump(None, f"not a time: {text} (try +50, 00:00:50 or #835)")
            return
        self._jump(target, "")

    def action_play(self) -> None:
        """Play or pause: the cursor follows the capture's clock at the chosen speed."""
        if self.index is None or self._timer is None:
            return
        self.playing = not self.playing
        if self.playing:
            if self.cursor >= self.index.end:
                self.cursor = self.index.start
            self._played_at = time.monotonic()
            self._timer.resume()
        else:
            self._timer.pause()
        self.move_to(self.cursor)

    def action_speed(self) -> None:
        """Next playback speed."""
        self.action_set_speed(SPEEDS[(SPEEDS.index(self.speed) + 1) % len(SPEEDS)])

    def action_set_speed(self, speed: int) -> None:
        """Set the playback speed."""
        self.speed = speed
        self.move_to(self.cursor)

    def _play_tick(self) -> None:
        if not self.playing or self.index is None:
            return
        if not self.query(CursorBar):
            return  # a tick that fires while the app is shutting down and its widgets are gone
        now = time.monotonic()
        elapsed, self._played_at = now - self._played_at, now
        target = self.cursor + elapsed * self.speed
        if target >= self.index.end:
            self.playing = False
            if self._timer is not None:
                self._timer.pause()
        self.move_to(target)

    def export_stem(self) -> str:
        return _capture_stem(self.capture_name)

    def write_export(self, choice: ExportChoice) -> Path:
        if self.index is None:
            raise OSError("the analysis is not ready yet")
        analysis = self.index.analysis
        if choice.filtered:
            analysis = filtered_analysis(analysis, self.kept_rows())
        path = self.export_path(choice)
        with open(path, "w", encoding="utf-8", newline="") as stream:
            if choice.format == "csv":
                write_csv(analysis, stream)
            else:
                write_json(analysis, stream)
        return path


# ---------------------------------------------------------------------------- live mode


class LiveUpdated(Message):
    """The feeder's thread has a new snapshot (posted at most ~10 times a second)."""

    def __init__(self, update: LiveUpdate) -> None:
        super().__init__()
        self.update = update


class LiveApp(KeepaliveApp):
    """Keepalives as they happen, from a frame source running in threads."""

    BINDINGS: ClassVar[list[BindingType]] = [
        *KeepaliveApp.COMMON_BINDINGS[:1],
        Binding("s", "sort_next", "Sort"),
        *KeepaliveApp.COMMON_BINDINGS[1:],
    ]

    def __init__(
        self,
        source: FrameSource,
        settings: Settings,
        title: str,
        *,
        clock: Callable[[], float] = time.time,
        export_dir: Path | None = None,
    ) -> None:
        super().__init__(title=title, export_dir=export_dir)
        self.sub_title = "live"
        self.source_title = title
        self.store = LiveStore()
        self.feeder = LiveFeeder(source, settings, self._post, clock=clock)

    def _post(self, update: LiveUpdate) -> None:
        self.post_message(LiveUpdated(update))

    def on_mount(self) -> None:
        super().on_mount()
        self.message = "waiting for keepalives…"
        self.show(self.store.snapshot())
        self.query_one(TunnelTable).focus()
        self.feeder.start()

    def on_unmount(self) -> None:
        self.feeder.stop(timeout=0.5)

    @property
    def origin(self) -> float | None:
        return self.store.start

    def on_live_updated(self, message: LiveUpdated) -> None:
        store = self.store
        update = message.update
        store.apply(update)
        if update.error is not None:
            self.message = f"capture failed: {update.error}"
            self.notify(self.message, severity="error", timeout=10)
        elif update.ended:
            self.message = "capture ended; the state is frozen"
        elif self.message == "waiting for keepalives…" and store.states:
            self.message = ""
        self.show(store.snapshot())
        self.ready.set()

    def detail_for(self, tunnel: TunnelKey, snapshot: Snapshot) -> Detail | None:
        view = snapshot.tunnel(tunnel)
        if view is None:
            return None
        return Detail(
            tunnel=view,
            series=self.store.series(tunnel),
            transitions=view.transitions,
            window=self.store.window(tunnel),
            cursor=snapshot.time,
            fmt=self.fmt,
            live=True,
        )

    def log_rows(self) -> Sequence[LogRow]:
        rows = self.store.log
        if not self.log_filter:
            return rows[-LOG_ROWS:]  # a copy: the store's list grows in place
        return [row for row in rows if self.log_filter.matches(row)][-LOG_ROWS:]

    def status_text(self) -> str:
        store = self.store
        parts = ["● live" if self.narrow else f"● live: {self.source_title}"]
        if store.now is not None:
            parts.append(f"{self.fmt(store.now, 0)}{'' if self.relative else ' UTC'}")
        # What happened to the capture first, the frame count last: a line cut at 80
        # columns keeps the notice ("eth0 was removed…") and the losses.
        if store.last_notice is not None:
            notice = store.last_notice
            parts.append(f"{notice.message} ({self.fmt(notice.time, 0)})")
        capture = store.capture_text()
        if capture:
            parts.append(capture)
        parts.append(counted(store.frames, "frame"))
        return " · ".join(parts)

    def export_stem(self) -> str:
        stamp = datetime.fromtimestamp(self.store.now or time.time(), UTC)
        return f"gre-keepalive-live-{stamp:%Y%m%dT%H%M%SZ}"

    def write_export(self, choice: ExportChoice) -> Path:
        path = self.export_path(choice)
        keep = self.kept_rows() if choice.filtered else None
        if choice.format == "csv":
            figures = self.store.figures
            if figures is None:
                raise OSError("no analysis yet (the first comes a second after the first frame)")
            analysis = figures.analysis
            if keep is not None:
                analysis = filtered_analysis(analysis, keep)
            with open(path, "w", encoding="utf-8", newline="") as stream:
                write_csv(analysis, stream)
            return path
        document = self.store.document(self.source_title)
        if keep is not None:
            document["originators"] = [
                o
                for o in document["originators"]
                if row_key((o["endpoints"][0], o["endpoints"][1]), o["key"], o["address"]) in keep
            ]
        with open(path, "w", encoding="utf-8") as stream:
            json.dump(document, stream, indent=2)
            stream.write("\n")
        return path


def _no_terminal() -> bool:
    """True (and said on stderr) when there is no terminal to draw on and read keys from."""
    if sys.stdin.isatty() and sys.stdout.isatty():
        return False
    print(
        "gre-keepalive: error: the terminal UI needs a terminal on standard input and output",
        file=sys.stderr,
    )
    return True


def run_live(source: FrameSource, settings: Settings, title: str) -> int:
    """Run the live UI until the user quits: 0; 2 without a terminal or when the capture
    source failed (its error is printed on stderr once the UI has closed)."""
    if _no_terminal():
        return 2
    app = LiveApp(source, settings, title)
    app.run()
    if app.store.error is not None:
        print(f"gre-keepalive: error: {app.store.error}", file=sys.stderr)
        return 2
    return app.return_code or 0


def run_capture(
    loader: Loader, name: str, *, size: int | None = None, warnings: Sequence[str] = ()
) -> int:
    """Run the capture UI until the user quits: 0; 2 without a terminal or when the capture
    cannot be analysed."""
    if _no_terminal():
        return 2
    app = CaptureApp(loader, name=name, size=size, warnings=warnings)
    app.run()
    if app.failure is not None:
        print(f"gre-keepalive: error: {app.failure}", file=sys.stderr)
        return 2
    return app.return_code or 0


def file_size(path: str) -> int | None:
    """The capture's size in bytes, for the progress bar (None when unknown)."""
    try:
        return os.stat(path).st_size
    except OSError:
        return None
