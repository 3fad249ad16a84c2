"""The Textual application: capture mode (`gre-keepalive tui`) and live mode (`watch`).

Both modes show the same screen — the tunnels table, the selected tunnel's detail, the event
log — and differ in where the snapshot comes from: a time cursor over an offline
:class:`~analyzer.keepalive.model.Analysis` (:class:`CaptureApp`), or a :class:`LiveFeeder` running
a frame source in threads and posting coalesced updates (:class:`LiveApp`).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.message import Message
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Input

from analyzer.keepalive.analysis import Settings
from analyzer.keepalive.model import Analysis
from analyzer.keepalive.state import LineState
from analyzer.read.sources import FrameSource
from analyzer.report.json import write_json
from analyzer.tui.live import LiveFeeder, LiveStore, LiveUpdate
from analyzer.tui.render import Detail
from analyzer.tui.views import (
    COLUMN_KEYS,
    CaptureIndex,
    LogRow,
    OriginatorView,
    Snapshot,
    TunnelKey,
    column,
    filter_views,
    fmt_utc,
    sort_views,
)
from analyzer.tui.widgets import (
    CaptureTunnelTable,
    CursorBar,
    DetailPane,
    DetailScroll,
    EventLog,
    HelpScreen,
    StatusLine,
    TunnelTable,
)

LOG_ROWS = 500  # event-log rows handed to the widget (it shows the newest that fit)
SPEEDS = (1, 10, 100)
PLAY_TICK = 0.1


class KeepaliveApp(App[int]):
    """What both modes share: layout, table sorting and filtering, help, export, quit."""

    CSS_PATH = Path(__file__).with_name("app.tcss")  # absolute: subclasses live anywhere
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("s", "sort_next", "Sort"),
        Binding("S", "sort_reverse", "Reverse sort", show=False),
        Binding("e", "export", "Export JSON"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]
    HELP_KEYS: ClassVar[list[tuple[str, str]]] = [
        ("↑ ↓", "select an originator (its tunnel fills the detail pane)"),
        ("s / S", "sort by the next column / reverse the order (or click a header)"),
        ("/", "filter rows by address, key, up or down (Enter keeps it, Esc clears it)"),
        ("e", "export the analysis as JSON (the path is shown in a notification)"),
        ("?", "this help"),
        ("q", "quit"),
    ]

    def __init__(self, *, title: str, export_dir: Path | None = None) -> None:
        super().__init__()
        self.title = title
        self.export_dir = export_dir
        self.sort_by = "originator"
        self.sort_reverse = False
        self.filter_text = ""
        self.message = ""  # the last thing worth saying in the status line
        self.selected: str | None = None
        self.snapshot: Snapshot | None = None
        self.ready = threading.Event()  # set once the first snapshot is on screen

    # ------------------------------------------------------------------ layout

    def make_table(self) -> TunnelTable:
        return TunnelTable(id="tunnels")

    def compose_top(self) -> ComposeResult:
        yield from ()

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="⇄")
        yield from self.compose_top()
        yield self.make_table()
        with Horizontal(id="lower"):
            with DetailScroll(id="detail-scroll"):
                yield DetailPane(id="detail")
            yield EventLog(id="events")
        yield Input(id="filter", placeholder="filter: words matching address, key, up/down")
        yield StatusLine(id="status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#detail-scroll").border_title = "Tunnel"
        self.query_one(EventLog).border_title = "Events"
        self.query_one(TunnelTable).border_title = "Keepalive originators"
        self.query_one(TunnelTable).set_sort_marker(self.sort_by, self.sort_reverse)

    # ------------------------------------------------------------------ what modes provide

    def detail_for(self, tunnel: TunnelKey, snapshot: Snapshot) -> Detail | None:
        raise NotImplementedError

    def log_rows(self) -> Sequence[LogRow]:
        raise NotImplementedError

    @property
    def origin(self) -> float | None:
        """Times in the log are offsets from this (capture start); None: clock times."""
        return None

    def status_text(self) -> str:
        return ""

    def write_export(self) -> Path:
        raise NotImplementedError

    # ------------------------------------------------------------------ drawing

    def visible_rows(self, snapshot: Snapshot) -> list[OriginatorView]:
        """The table's rows: filtered, then sorted."""
        rows = filter_views(snapshot.originators(), self.filter_text)
        return sort_views(rows, self.sort_by, reverse=self.sort_reverse)

    def show(self, snapshot: Snapshot) -> None:
        """Draw a snapshot in every pane."""
        self.snapshot = snapshot
        if not self.query(TunnelTable):
            return  # an update that arrives while the app shuts down and its panes are gone
        table = self.query_one(TunnelTable)
        table.show(self.visible_rows(snapshot))
        self.selected = table.selected_key
        self.show_detail()
        self.query_one(EventLog).show(self.log_rows(), self.origin)
        self.show_status()

    def show_detail(self) -> None:
        snapshot = self.snapshot
        detail = None
        if snapshot is not None and self.selected is not None:
            view = next((o for o in snapshot.originators() if o.row_key == self.selected), None)
            if view is not None:
                detail = self.detail_for(view.tunnel, snapshot)
        self.query_one(DetailPane).show(detail)

    def show_status(self) -> None:
        parts = [self.status_text()]
        sort = column(self.sort_by).label + (" ▼" if self.sort_reverse else " ▲")
        parts.append(f"sorted by {sort}")
        if self.filter_text:
            parts.append(f"filter “{self.filter_text}”")
        if self.message:
            parts.append(self.message)
        self.query_one(StatusLine).update(" · ".join(p for p in parts if p))

    def redraw(self) -> None:
        if self.snapshot is not None:
            self.show(self.snapshot)

    @on(DataTable.RowHighlighted, "#tunnels")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value
        if key != self.selected:
            self.selected = key
            self.show_detail()

    @on(DataTable.HeaderSelected, "#tunnels")
    def _header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = str(event.column_key.value)
        if key == self.sort_by:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_by, self.sort_reverse = key, False
        self._sorted()

    # ------------------------------------------------------------------ actions

    def _sorted(self) -> None:
        self.query_one(TunnelTable).set_sort_marker(self.sort_by, self.sort_reverse)
        self.redraw()

    def action_sort_next(self) -> None:
        """Sort by the next column."""
        index = COLUMN_KEYS.index(self.sort_by)
        self.sort_by, self.sort_reverse = COLUMN_KEYS[(index + 1) % len(COLUMN_KEYS)], False
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
        self.filter_text = event.value.strip()
        event.input.remove_class("-visible")
        self.query_one(TunnelTable).focus()
        self.redraw()

    def action_help(self) -> None:
        """Show the key bindings."""
        self.push_screen(HelpScreen(self.HELP_KEYS))

    def action_export(self) -> None:
        """Write the analysis as JSON and say where."""
        try:
            path = self.write_export()
        except OSError as exc:
            self.message = f"export failed: {exc.strerror or exc}"
            self.notify(self.message, severity="error", timeout=8)
        else:
            self.message = f"exported to {path}"
            self.notify(f"Exported to {path}", title="JSON export", timeout=8)
        self.show_status()


# ---------------------------------------------------------------------------- capture mode


def _export_path(candidates: Sequence[Path]) -> Path:
    """The first candidate whose directory we can write into."""
    for candidate in candidates:
        if os.access(candidate.parent, os.W_OK):
            return candidate
    return candidates[-1]


class CaptureApp(KeepaliveApp):
    """A capture analysed once, explored with a time cursor."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("full_stop", "next_event", "Next", key_display="."),
        Binding("comma", "previous_event", "Prev", key_display=","),
        Binding("n", "next_transition", "Next transition"),
        Binding("p", "previous_transition", "Prev transition"),
        Binding("N", "next_any_transition", "Next transition (any)", show=False),
        Binding("P", "previous_any_transition", "Prev transition (any)", show=False),
        Binding("space", "play", "Play/pause"),
        Binding("x", "speed", "Speed"),
        Binding("1", "set_speed(1)", "×1", show=False),
        Binding("2", "set_speed(10)", "×10", show=False),
        Binding("3", "set_speed(100)", "×100", show=False),
        Binding("g", "cursor_start", "Start", show=False),
        Binding("G", "cursor_end", "End", show=False),
    ]
    HELP_KEYS: ClassVar[list[tuple[str, str]]] = [
        (". or →", "time cursor to the next keepalive event (any originator)"),
        (", or ←", "time cursor to the previous keepalive event"),
        ("n / p", "next / previous line-protocol transition of the selected originator"),
        ("N / P", "next / previous transition of any originator"),
        ("space", "play / pause (the cursor moves with the capture's clock)"),
        ("x", "playback speed: ×1 → ×10 → ×100"),
        ("1 2 3", "playback speed ×1, ×10, ×100"),
        ("g or Home", "cursor to the start of the capture"),
        ("G or End", "cursor to the end of the capture"),
        *KeepaliveApp.HELP_KEYS,
    ]

    def __init__(
        self,
        loader: Callable[[], Analysis],
        *,
        name: str,
        export_path: Path | None = None,
        warnings: Sequence[str] = (),
    ) -> None:
        super().__init__(title=f"gre-keepalive — {name}")
        self.sub_title = "capture"
        self.loader = loader
        self.capture_name = name
        self.export_path = export_path
        self.warnings = list(warnings)
        self.index: CaptureIndex | None = None
        self.cursor = 0.0
        self.playing = False
        self.speed = 1
        self.failure: str | None = None
        self._timer: Timer | None = None
        self._played_at = 0.0

    def make_table(self) -> TunnelTable:
        return CaptureTunnelTable(id="tunnels")

    def compose_top(self) -> ComposeResult:
        yield CursorBar(id="cursor-bar")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one(TunnelTable).loading = True
        self.query_one(DetailPane).loading = True
        self.message = f"analysing {self.capture_name}…"
        self.show_status()
        self._timer = self.set_interval(PLAY_TICK, self._play_tick, pause=True)
        self.run_worker(self._load, name="analysis", thread=True, exit_on_error=False)

    def _load(self) -> None:
        try:
            analysis = self.loader()
            index = CaptureIndex(analysis)
        except Exception as exc:  # shown on stderr once the UI has closed
            self.call_from_thread(self._failed, str(exc) or type(exc).__name__)
        else:
            self.call_from_thread(self._loaded, index)

    def _failed(self, message: str) -> None:
        self.failure = message
        self.exit(return_code=2)

    def _loaded(self, index: CaptureIndex) -> None:
        self.index = index
        self.cursor = index.start
        self.query_one(TunnelTable).loading = False
        self.query_one(DetailPane).loading = False
        source = index.analysis.source
        self.warnings.extend(source.warnings)
        self.message = (
            f"{source.packets} packets, {source.keepalive_packets} keepalives, "
            f"{len(index.analysis.tunnels)} tunnel(s)"
        )
        if self.warnings:
            self.message += f"; {len(self.warnings)} warning(s): {self.warnings[0]}"
        transitions = [
            t
            for tunnel in index.analysis.tunnels
            for o in tunnel.originators
            for t in o.transitions
        ]
        bar = self.query_one(CursorBar)
        bar.downs = [t.time for t in transitions if t.state is LineState.DOWN]
        bar.ups = [t.time for t in transitions if t.state is LineState.UP]
        self.move_to(self.cursor)
        self.query_one(TunnelTable).focus()
        self.ready.set()

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
        bar.playing, bar.speed = self.playing, self.speed
        bar.position = index.event_position(self.cursor)
        bar.refresh()
        self.show(index.state_at(self.cursor))

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
            origin=index.start,
        )

    def log_rows(self) -> Sequence[LogRow]:
        if self.index is None:
            return ()
        return self.index.log_until(self.cursor, LOG_ROWS)

    def status_text(self) -> str:
        return self.capture_name

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

    def write_export(self) -> Path:
        if self.index is None:
            raise OSError("the analysis is not ready yet")
        path = self.export_path
        if path is None:
            capture = Path(self.capture_name)
            name = capture.name.removesuffix(".gz")
            for suffix in (".pcapng", ".pcap", ".cap"):
                name = name.removesuffix(suffix)
            path = _export_path(
                [capture.with_name(f"{name}.analysis.json"), Path.cwd() / f"{name}.analysis.json"]
            )
        with open(path, "w", encoding="utf-8") as stream:
            write_json(self.index.analysis, stream)
        return path


# ---------------------------------------------------------------------------- live mode


class LiveUpdated(Message):
    """The feeder's thread has a new snapshot (posted at most ~10 times a second)."""

    def __init__(self, update: LiveUpdate) -> None:
        super().__init__()
        self.update = update


class LiveApp(KeepaliveApp):
    """Keepalives as they happen, from a frame source running in threads."""

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
            origin=None,
        )

    def log_rows(self) -> Sequence[LogRow]:
        return self.store.log

    def status_text(self) -> str:
        store = self.store
        parts = [f"● live: {self.source_title}"]
        if store.now is not None:
            parts.append(f"{fmt_utc(store.now, digits=0)} UTC")
        parts.append(f"{store.frames} frames")
        if store.capture_text():
            parts.append(store.capture_text())
        if store.last_notice is not None:
            notice = store.last_notice
            parts.append(f"{notice.message} ({fmt_utc(notice.time, date=False, digits=0)})")
        return " · ".join(parts)

    def write_export(self) -> Path:
        directory = self.export_dir or Path.cwd()
        stamp = datetime.fromtimestamp(self.store.now or time.time(), UTC)
        path = directory / f"gre-keepalive-live-{stamp:%Y%m%dT%H%M%SZ}.json"
        with open(path, "w", encoding="utf-8") as stream:
            json.dump(self.store.document(self.source_title), stream, indent=2)
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


def run_capture(loader: Callable[[], Analysis], name: str, *, warnings: Sequence[str] = ()) -> int:
    """Run the capture UI until the user quits: 0; 2 without a terminal or when the capture
    cannot be analysed."""
    if _no_terminal():
        return 2
    app = CaptureApp(loader, name=name, warnings=warnings)
    app.run()
    if app.failure is not None:
        print(f"gre-keepalive: error: {app.failure}", file=sys.stderr)
        return 2
    return app.return_code or 0
