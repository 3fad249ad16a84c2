"""The Textual application, driven by Pilot: capture mode on the demo outage, live mode fed
by a fake frame source, the `tui` subcommand, and SVG snapshots.

Expected times come from `gre-keepalive analyze captures/outage.pcap --format json`, which
captures/README.md works out by hand: with the default retries 3, 192.0.2.1 goes down at
t0 + 50 s (frame 835) and comes back up at t0 + 75.02005 s (frame 923), t0 = 1764115200.
"""

from __future__ import annotations

import gc
import io
import json
import re
import shutil
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from textual.pilot import Pilot
from textual.widgets import Input, RadioButton

from analyzer.cli import main
from analyzer.keepalive.analysis import Settings
from analyzer.keepalive.model import Analysis
from analyzer.pipeline.analyze import analyze_frames
from analyzer.read.capture import CaptureError, RawFrame, open_capture
from analyzer.read.packet import build_keepalive_request, reflect_request
from analyzer.read.sources import InterfaceNotice
from analyzer.tui.app import (
    CaptureApp,
    KeepaliveApp,
    LiveApp,
    Loader,
    Progress,
    run_capture,
    run_live,
)
from analyzer.tui.views import row_key
from analyzer.tui.widgets import (
    CursorBar,
    DetailPane,
    EventLog,
    ExportScreen,
    HelpScreen,
    PromptScreen,
    StatusLine,
    TunnelTable,
)

ROOT = Path(__file__).resolve().parents[2]
OUTAGE = ROOT / "captures" / "outage.pcap"
DOCS = ROOT / "docs"
T0 = 1764115200.0
A, B = "192.0.2.1", "198.51.100.1"
ROW_A = row_key((A, B), None, A)
ROW_B = row_key((A, B), None, B)
SIZE = (120, 40)


def _loader(
    path: Path = OUTAGE, settings: Settings | None = None, *, diagnoses: bool = True
) -> Loader:
    """Analyse a capture as `gre-keepalive tui` does. Snapshot tests leave the diagnoses
    out: their wording belongs to analyzer.diagnose.rules (tested there), the layout to us."""

    def load(progress: Progress) -> Analysis:
        with open_capture(path) as reader:
            analysis = analyze_frames(reader, settings, files=[str(path)])
        if not diagnoses:
            for tunnel in analysis.tunnels:
                tunnel.diagnoses = []
        return analysis

    return load


@pytest.fixture(scope="module")
def outage_json(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What `gre-keepalive analyze captures/outage.pcap --format json` says."""
    out = tmp_path_factory.mktemp("json") / "outage.json"
    assert main(["analyze", str(OUTAGE), "--format", "json", "-o", str(out)]) == 0
    document: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return document


def _transitions(document: dict[str, Any], address: str) -> list[dict[str, Any]]:
    (tunnel,) = document["tunnels"]
    (originator,) = [o for o in tunnel["originators"] if o["address"] == address]
    transitions: list[dict[str, Any]] = originator["transitions"]
    return transitions


async def _until(pilot: Pilot[Any], ready: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, "timed out waiting for the UI"
        await pilot.pause(0.02)


def _row(app: KeepaliveApp, key: str) -> dict[str, str]:
    return app.query_one(TunnelTable).row_text(key)


async def _select(pilot: Pilot[Any], key: str) -> None:
    """Move the table's cursor to a row with the arrow keys, as a user would."""
    table = pilot.app.query_one(TunnelTable)
    target = table.order.index(key)
    while table.cursor_row != target:
        await pilot.press("down" if table.cursor_row < target else "up")
    assert table.selected_key == key


# ---------------------------------------------------------------------------- capture mode


async def test_next_transition_shows_the_down_the_json_names(
    outage_json: dict[str, Any],
) -> None:
    down, up = _transitions(outage_json, A)
    assert (down["state"], down["time"], down["frame"]) == ("down", T0 + 50.0, 835)
    assert (up["state"], up["time"], up["frame"]) == ("up", T0 + 75.02005, 923)
    app = CaptureApp(_loader(), name="captures/outage.pcap")
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, app.ready.is_set)
        assert app.cursor == T0
        assert _row(app, ROW_A)["line"] == "up"
        await _select(pilot, ROW_B)
        await _select(pilot, ROW_A)
        await pilot.press("n")
        assert app.cursor == down["time"]
        row = _row(app, ROW_A)
        assert (row["line"], row["counter"], row["sent"], row["lost"], row["downs"]) == (
            "down",
            "4/3",
            "11",
            "4",
            "1",
        )
        bar = app.query_one(CursorBar).render()
        assert isinstance(bar, Text) and "2025-11-26 00:00:50.000000 UTC" in bar.plain
        *_, transition, sent = app.query_one(EventLog).rows
        assert (transition.kind, transition.originator, transition.frame) == ("down", A, 835)
        assert (sent.kind, sent.frame, sent.counter) == ("sent", 835, 4)
        await pilot.press("n")
        assert app.cursor == pytest.approx(up["time"], abs=1e-6)
        row = _row(app, ROW_A)
        assert (row["line"], row["counter"], row["down"]) == ("up", "0/3", "25.020 s")
        await pilot.press("p")
        assert app.cursor == down["time"]
        # The detail pane shows the tunnel's transitions and whatever it was diagnosed with.
        pane = app.query_one(DetailPane)
        detail = "\n".join(line.plain for line in pane._lines(pane.content_size.width))
        assert "+75.020  192.0.2.1     up    counter 0  #923" in detail
        (tunnel,) = outage_json["tunnels"]
        for diagnosis in tunnel["diagnoses"]:
            assert f"{diagnosis['severity']} {diagnosis['code']}" in detail
        # Any originator's transitions: 198.51.100.1 went down first, at 47.01 (extrapolated).
        await pilot.press("g", "N")
        assert app.cursor == pytest.approx(T0 + 47.01)
        assert (_row(app, ROW_A)["line"], _row(app, ROW_B)["line"]) == ("up", "down")


async def test_stepping_events_and_playing() -> None:
    app = CaptureApp(_loader(), name="captures/outage.pcap")
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, app.ready.is_set)
        await pilot.press("full_stop")
        assert app.cursor == pytest.approx(T0 + 0.02005)  # the first reply
        await pilot.press("right", "right", "left")
        assert app.cursor == pytest.approx(T0 + 2.01)  # 198.51.100.1's first send
        await pilot.press("comma", "comma", "comma")
        assert app.cursor == T0  # clamped at the first event
        await pilot.press("end")
        assert app.cursor == app.index.end if app.index else False
        await pilot.press("home", "2", "space")
        assert app.playing and app.speed == 10
        await pilot.pause(0.3)
        await pilot.press("space")
        assert not app.playing
        assert 1.0 <= app.cursor - T0 < 99.0  # ×10 for a few tenths of a second
        await pilot.press("x", "x")
        assert app.speed == 1
        await pilot.press("end", "space")  # playing from the end starts over
        assert app.playing and app.cursor < T0 + 50.0


async def test_filter_and_sort() -> None:
    app = CaptureApp(_loader(), name="captures/outage.pcap")
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, app.ready.is_set)
        table = app.query_one(TunnelTable)
        await pilot.press("N")  # 47.01: only 198.51.100.1 is down
        await pilot.press("slash", *"down")
        assert app.filter_text == "down"
        assert table.order == [ROW_B]
        await pilot.press("enter")
        assert app.focused is table
        assert str(table.border_title).endswith("problems first · filter “down”")
        await pilot.press("escape")
        assert table.row_count == 2
        await pilot.press("slash", *"203.0.113", "enter")
        assert table.row_count == 0
        # An empty result says so, in the table and in the detail pane.
        assert "no originator matches the filter “203.0.113”" in table.empty_text
        detail = app.query_one(DetailPane)
        assert detail.detail is None and "matches the filter" in detail.empty_text
        await pilot.press("escape")
        # Problems first, then each column: s s s is the line column (down first).
        assert app.sort_by == "problems"
        await pilot.press("s", "s", "s")
        assert app.sort_by == "line"
        assert table.selected_key is not None
        assert table.order == [ROW_B, ROW_A]
        await pilot.press("S")
        assert table.order == [ROW_A, ROW_B]
        assert str(table.border_title) == "Keepalive originators · Line ▼"
        await pilot.click(TunnelTable, offset=(4, 1))  # the first header
        assert (app.sort_by, app.sort_reverse) == ("originator", False)
        await pilot.click(TunnelTable, offset=(4, 1))  # again: reversed
        assert (app.sort_by, app.sort_reverse) == ("originator", True)


async def test_the_table_keeps_its_height_while_the_filter_narrows_it() -> None:
    # Two captures' tunnels in one analysis: four rows, two of them the keyed tunnel's.
    outage, keyed = _loader()(lambda _: None), _loader(ROOT / "captures" / "keyed.pcap")
    both = Analysis(outage.source, [*outage.tunnels, *keyed(lambda _: None).tunnels])
    app = CaptureApp(lambda _: both, name="two captures")
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, app.ready.is_set)
        table, lower = app.query_one(TunnelTable), app.query_one("#lower")
        before = (table.region, lower.region)
        assert table.row_count == 4
        await pilot.press("slash", *"203.0.113")
        assert table.row_count == 2
        # Typing moved nothing: the table keeps the height of four rows.
        assert (table.region, lower.region) == before
        await pilot.press("escape")
        assert table.row_count == 4 and (table.region, lower.region) == before


async def test_the_sort_marker_follows_the_sorted_column() -> None:
    app = CaptureApp(_loader(), name="captures/outage.pcap")
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, app.ready.is_set)
        table = app.query_one(TunnelTable)

        def header() -> str:
            return table.render_line(0).text

        assert "▲" not in header() and "▼" not in header()  # problems first: no column
        await pilot.press("s", "s", "s")
        assert "Line ▲" in header() and "Originator → peer ▲" not in header()
        await pilot.press("S")
        assert "Line ▼" in header()


async def _answer(pilot: Pilot[Any], key: str, text: str) -> None:
    """Press a key that opens a one-line prompt, type `text`, Enter."""
    await pilot.press(key)
    await pilot.pause()
    assert isinstance(pilot.app.screen, PromptScreen)
    pilot.app.screen.query_one(Input).value = text
    await pilot.press("enter")
    await pilot.pause()


async def test_go_to_a_time_or_a_frame() -> None:
    app = CaptureApp(_loader(), name="captures/outage.pcap")
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, app.ready.is_set)
        await _answer(pilot, "colon", "+50")
        assert app.cursor == T0 + 50.0
        await _answer(pilot, "colon", "00:00:20.5")
        assert app.cursor == T0 + 20.5
        await _answer(pilot, "colon", "#923")  # 192.0.2.1's reply that brings it up
        assert app.cursor == pytest.approx(T0 + 75.02005)
        await _answer(pilot, "colon", "tomorrow")
        assert app.cursor == pytest.approx(T0 + 75.02005)
        assert "not a time" in app.message


async def test_a_narrow_cursor_bar_keeps_the_keepalive_count() -> None:
    app = CaptureApp(_loader(), name="captures/outage.pcap")
    async with app.run_test(size=(60, 20)) as pilot:
        await _until(pilot, app.ready.is_set)
        await pilot.press("n")  # +50 s: 34 of the 61 keepalive events
        (line, _ruler) = str(app.query_one(CursorBar).render()).split("\n")
        # The UTC time beside it (19 cells) gives way; the count stays whole.
        assert line == "‖ ×1   +50.000000 s of 99.960 s  keepalive 34/61"


async def test_clicking_the_map_or_a_chart_moves_the_cursor() -> None:
    app = CaptureApp(_loader(), name="captures/outage.pcap")
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, app.ready.is_set)
        bar = app.query_one(CursorBar)
        width = bar.content_size.width
        # The map's last cell is the capture's end; its middle, the middle.
        await pilot.click(CursorBar, offset=(1 + (width - 1) // 2, 1))
        middle = T0 + (app.index.end - T0 if app.index else 0) * ((width - 1) // 2) / (width - 1)
        assert app.cursor == pytest.approx(middle)
        pane = app.query_one(DetailPane)
        first, _last, x0, _count = pane.charts[0]
        await pilot.click(DetailPane, offset=(x0, first + 1))
        assert app.cursor == pytest.approx(T0)  # a chart's first column is the start


async def test_time_format_and_log_filter_keys() -> None:
    app = CaptureApp(_loader(), name="captures/outage.pcap")
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, app.ready.is_set)
        await pilot.press("n")  # 192.0.2.1 down at 50 s
        log = app.query_one(EventLog)
        assert log.lines[-1].plain.startswith("+50.000 sent")
        await pilot.press("t")
        assert log.lines[-1].plain.startswith("00:00:50.000 sent")
        await _answer(pilot, "l", "down up")
        assert [row.kind for row in log.rows] == ["down", "down"]
        assert "down up" in str(log.border_title)


async def test_columns_hidden_at_80_columns_scroll_into_view() -> None:
    app = CaptureApp(_loader(), name="captures/outage.pcap")
    async with app.run_test(size=(80, 24)) as pilot:
        await _until(pilot, app.ready.is_set)
        table = app.query_one(TunnelTable)

        def shown() -> list[str]:
            return [c.key for c, _w in table.columns_shown(table.content_size.width)]

        first = shown()
        assert "blackholed" in first and "line" in first and "period" not in first
        # The border counts the columns left out (13 in all), as soon as the first paint.
        assert str(table.border_subtitle) == f"{13 - len(first)} more columns: [ ]"
        await pilot.press("right_square_bracket", "right_square_bracket", "right_square_bracket")
        later = shown()
        assert later[0] == "originator" and "period" in later
        await pilot.press("right")  # → still steps the time cursor
        assert app.cursor > T0
        # The Events pane is folded away; v shows it instead of the Tunnel pane.
        assert not app.query_one(EventLog).display
        await pilot.press("v")
        assert app.query_one(EventLog).display
        assert not app.query_one("#detail-scroll").display


async def test_help_screen() -> None:
    app = CaptureApp(_loader(), name="captures/outage.pcap")
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, app.ready.is_set)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help-text").render())
        assert "next / previous line-protocol transition of the selected originator" in text
        assert "filter rows" in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def _export(pilot: Pilot[Any], *choices: str, path: str | None = None) -> None:
    """`e`, then pick radio buttons by id, optionally type a path, and press Enter."""
    await pilot.press("e")
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, ExportScreen)
    for choice in choices:
        screen.query_one(f"#{choice}", RadioButton).value = True
        await pilot.pause()
    field = screen.query_one("#export-path", Input)
    if path is not None:
        field.value = path
    field.focus()
    await pilot.press("enter")
    await pilot.pause()


async def test_export_asks_and_writes_into_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, outage_json: dict[str, Any]
) -> None:
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    capture = evidence / "outage.pcap"
    shutil.copy(OUTAGE, capture)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    app = CaptureApp(_loader(capture), name=str(capture))
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, app.ready.is_set)
        await _export(pilot)
        written = work / "outage.analysis.json"
        assert str(written) in app.message
        document = json.loads(written.read_text(encoding="utf-8"))
    assert list(evidence.iterdir()) == [capture]  # nothing written beside the evidence
    assert document["schema"] == "gre-keepalive.analysis/1"
    assert document["tunnels"] == outage_json["tunnels"]


async def test_export_csv_of_the_filtered_rows(tmp_path: Path) -> None:
    app = CaptureApp(_loader(), name="captures/outage.pcap", export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, app.ready.is_set)
        # Keep only 198.51.100.1's row: it is the only one whose line is down at 47.01.
        await pilot.press("N", "slash", *"down", "enter")
        assert app.query_one(TunnelTable).order == [ROW_B]
        await _export(pilot, "format-csv", path="only-b.csv")
        assert app.screen is not None and not isinstance(app.screen, ExportScreen)
    lines = (tmp_path / "only-b.csv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    assert header[:5] == ["time", "frame", "tunnel", "key", "originator"]
    originators = {line.split(",")[4] for line in lines[1:]}
    assert originators == {B}


async def test_export_can_be_cancelled(tmp_path: Path) -> None:
    app = CaptureApp(_loader(), name="captures/outage.pcap", export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, app.ready.is_set)
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, ExportScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ExportScreen)
    assert list(tmp_path.iterdir()) == []


async def test_loading_shows_bytes_read_of_the_file() -> None:
    go_on = threading.Event()
    analysis = _loader()(lambda _: None)

    def slow(progress: Callable[[int], None]) -> Analysis:
        progress(250_000)
        go_on.wait(5.0)
        return analysis

    app = CaptureApp(slow, name="big.pcap", size=1_000_000)
    async with app.run_test(size=SIZE) as pilot:
        bar = app.query_one(CursorBar)
        await _until(pilot, lambda: "25%" in (bar.progress or ""))
        assert "0.2 MB of 1.0 MB" in (bar.progress or "")
        go_on.set()
        await _until(pilot, app.ready.is_set)
        assert bar.progress is None


class _Cycle:
    """An object in a reference cycle, as the reading leaves them (requests and replies)."""

    def __init__(self) -> None:
        self.me = self


async def test_the_cyclic_collector_is_paused_while_the_capture_loads() -> None:
    enabled_while_loading: list[bool] = []
    analysis = _loader()(lambda _: None)

    def load(progress: Callable[[int], None]) -> Analysis:
        enabled_while_loading.append(gc.isenabled())
        return analysis

    assert gc.isenabled()
    app = CaptureApp(load, name="outage.pcap")
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, app.ready.is_set)
        assert enabled_while_loading == [False]
        assert gc.isenabled()


async def test_the_analysis_is_kept_out_of_the_collectors_passes_once_loaded() -> None:
    analysis = _loader()(lambda _: None)
    app = CaptureApp(lambda _: analysis, name="outage.pcap")
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, app.ready.is_set)
        # frozen (gc.freeze): in no generation the collector walks
        assert not any(tracked is analysis for tracked in gc.get_objects())


async def test_cycles_the_load_leaves_behind_are_freed_not_kept() -> None:
    analysis = _loader()(lambda _: None)
    left: list[weakref.ref[_Cycle]] = []

    def load(progress: Callable[[int], None]) -> Analysis:
        left.append(weakref.ref(_Cycle()))  # unreachable at once, but for its cycle
        return analysis

    app = CaptureApp(load, name="outage.pcap")
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, app.ready.is_set)
        assert left[0]() is None


async def test_the_collector_runs_again_after_a_load_that_failed() -> None:
    def broken(progress: Callable[[int], None]) -> Analysis:
        raise CaptureError("broken.pcap: truncated in the middle of nowhere")

    app = CaptureApp(broken, name="broken.pcap")
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: app.failure is not None)
        assert gc.isenabled()


async def test_an_unreadable_capture_ends_the_app_with_status_2() -> None:
    def broken(progress: Callable[[int], None]) -> Analysis:
        raise CaptureError("broken.pcap: truncated in the middle of nowhere")

    app = CaptureApp(broken, name="broken.pcap")
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: app.failure is not None)
    assert app.return_code == 2
    assert app.failure == "broken.pcap: truncated in the middle of nowhere"


def test_tui_command_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text("[[tunnel]]\nsource = 'not an address'\n", encoding="utf-8")
    for argv in (
        ["tui", str(tmp_path / "missing.pcap")],
        ["tui", "-"],
        ["tui", str(OUTAGE), "--config", str(bad_config)],
        ["tui", str(OUTAGE), "--config", str(tmp_path / "missing.cfg")],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("gre-keepalive: error: ") and err.count("\n") == 1, err


def test_tui_command_error_escapes_what_a_reason_quotes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A reason quoting a name raw: the newline would split the error line and the escape
    # sequence (ESC [ 3 1 m, red) would reach the terminal.
    def refuse(argument: str) -> list[str]:
        raise CaptureError("evil\n\x1b[31m.pcap: no such file")

    monkeypatch.setattr("analyzer.pipeline.ring.check_capture", refuse)
    assert main(["tui", "evil.pcap"]) == 2
    assert capsys.readouterr().err == "gre-keepalive: error: evil\\n\\033[31m.pcap: no such file\n"


def test_tui_command_hands_the_analysis_to_the_ui(monkeypatch: pytest.MonkeyPatch) -> None:
    import analyzer.tui.app

    seen: list[Analysis] = []

    progress: list[int] = []

    def fake_run_capture(
        loader: Callable[[Callable[[int], None]], Analysis], name: str, **_: object
    ) -> int:
        seen.append(loader(progress.append))
        return 0

    import analyzer.pipeline.collect

    readers: list[str] = []
    real_collect = analyzer.pipeline.collect.collect

    def spy(path: str, **options: Any) -> Any:
        collected = real_collect(path, **options)
        readers.append(collected.reader)
        return collected

    monkeypatch.setattr(analyzer.tui.app, "run_capture", fake_run_capture)
    monkeypatch.setattr(analyzer.pipeline.collect, "collect", spy)
    assert main(["tui", str(OUTAGE), "--retries", "4", "--period", "5"]) == 0
    (analysis,) = seen
    assert readers == ["libpcap"]  # the fast path, as `analyze` reads it
    originator = analysis.tunnels[0].originators[0]
    assert (originator.address, originator.retries, originator.transitions[0].time) == (
        A,
        4,
        T0 + 55.0,
    )


def test_tui_infers_retries_as_analyze_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """outage.pcap (keepalive 5 4): A's data stops at its send at 55 s, the fourth period
    after its first unanswered keepalive at 35 s: retries 4."""
    import analyzer.tui.app

    seen: list[Analysis] = []

    def fake_run_capture(
        loader: Callable[[Callable[[int], None]], Analysis], name: str, **_: object
    ) -> int:
        seen.append(loader(lambda _done: None))
        return 0

    monkeypatch.setattr(analyzer.tui.app, "run_capture", fake_run_capture)
    assert main(["tui", str(OUTAGE), "--retries", "infer"]) == 0
    (analysis,) = seen
    originator = next(o for o in analysis.tunnels[0].originators if o.address == A)
    assert (originator.retries, originator.retries_source.value) == (4, "inferred")


def test_without_a_terminal_the_ui_refuses_at_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`watch … | jq` or cron must not start a UI that nobody can see or quit."""
    monkeypatch.setattr("sys.stdin", io.StringIO(""))

    def never(stop: threading.Event) -> Iterator[RawFrame | InterfaceNotice]:
        raise AssertionError("the source must not be started")
        yield  # pragma: no cover

    assert run_live(never, Settings(), "gre-keepalive watch eth0") == 2
    assert run_capture(_loader(), "captures/outage.pcap") == 2
    message = "gre-keepalive: error: the terminal UI needs a terminal on standard input and output"
    assert capsys.readouterr().err.splitlines() == [message, message]


# ---------------------------------------------------------------------------- live mode


def _pair(now: float, number: int) -> list[RawFrame]:
    request = build_keepalive_request(A, B, outer_id=2 * number, inner_id=2 * number - 1)
    reply = reflect_request(request) or b""
    return [
        RawFrame(number, now, 101, request, len(request), 0, 0),
        RawFrame(number + 1, now + 0.005, 101, reply, len(reply), 0, 0),
    ]


async def test_live_mode_goes_down_by_the_wall_clock(tmp_path: Path) -> None:
    """One answered keepalive, then silence: with period 0.2 s and retries 2 the line goes
    down at the third missed tick, 0.6 s later (declared half a period late)."""

    def source(stop: threading.Event) -> Iterator[RawFrame | InterfaceNotice]:
        now = time.time()
        yield from _pair(now, 1)
        yield InterfaceNotice(now + 0.01, "lo re-opened")
        stop.wait()

    app = LiveApp(source, Settings(period=0.2, retries=2), "lo", export_dir=tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: app.query_one(TunnelTable).row_count == 1)
        await _until(pilot, lambda: _row(app, ROW_A)["line"] == "down", timeout=5.0)
        row = _row(app, ROW_A)
        assert (row["sent"], row["returned"], row["downs"]) == ("1", "1", "1")
        kinds = [r.kind for r in app.query_one(EventLog).rows]
        assert kinds[:3] == ["sent", "returned", "notice"]
        assert "down" in kinds
        assert "lo re-opened" in app.query_one(StatusLine).text
        await _export(pilot)
        (written,) = tmp_path.glob("gre-keepalive-live-*.json")
        document = json.loads(written.read_text(encoding="utf-8"))
    assert app.feeder.stop_event.is_set()  # quitting stops the source
    assert document["schema"] == "gre-keepalive.live/1"
    (originator,) = document["originators"]
    assert (originator["address"], originator["line_state"]) == (A, "down")
    assert originator["transitions"][0]["state"] == "down"


class ScriptedSource:
    """Replays a capture's frames (and interface notices) at once, then stays silent; its
    clock stands still until the test moves it, so the screen is deterministic."""

    def __init__(self, path: Path, until: float, notices: list[InterfaceNotice]) -> None:
        with open_capture(path) as reader:
            frames = [f for f in reader if f.time <= until]
        self.items: list[RawFrame | InterfaceNotice] = sorted(
            [*frames, *notices], key=lambda item: item.time
        )
        self.frames = len(frames)
        self.now = frames[0].time

    def __call__(self, stop: threading.Event) -> Iterator[RawFrame | InterfaceNotice]:
        yield from self.items
        stop.wait()

    def clock(self) -> float:
        return self.now


def live_outage_app(
    until: float = T0 + 60.0,
) -> tuple[LiveApp, Callable[[Pilot[Any]], Any]]:
    """Live mode watching the outage up to t0 + 60 s, with the interface bouncing at 40 s."""
    source = ScriptedSource(
        OUTAGE,
        until,
        [
            InterfaceNotice(T0 + 40.0, "eth0 went down; re-opening"),
            InterfaceNotice(T0 + 40.5, "eth0 re-opened"),
        ],
    )
    app = LiveApp(source, Settings(), "gre-keepalive watch eth0", clock=source.clock)

    async def settle(pilot: Pilot[Any]) -> None:
        await _until(pilot, lambda: app.store.frames == source.frames)
        source.now = until
        await _until(pilot, lambda: app.store.now == until)
        # The analysis behind the diagnoses and the blackhole runs at most once a second.
        figures = lambda: app.store.figures  # noqa: E731
        await _until(pilot, lambda: (f := figures()) is not None and f.time == until)
        await pilot.pause()

    return app, settle


async def test_live_mode_replay_matches_the_offline_timeline() -> None:
    app, settle = live_outage_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        row_a, row_b = _row(app, ROW_A), _row(app, ROW_B)
        assert (row_a["line"], row_a["counter"], row_a["down"]) == ("down", "6/3", "10.000 s")
        assert (row_b["line"], row_b["counter"]) == ("down", "6/3")
        downs = [(r.originator, r.time) for r in app.query_one(EventLog).rows if r.kind == "down"]
        assert downs == [(B, pytest.approx(T0 + 47.01)), (A, T0 + 50.0)]
        assert "eth0 re-opened" in app.query_one(StatusLine).text


async def test_live_mode_shows_diagnoses_and_the_blackhole() -> None:
    """Watching the outage up to t0 + 60 s: the analysis rerun as if the capture ended then
    finds 192.0.2.1's first unanswered send at 35 s and its down at 50 s (retries 3), with
    10 data packets a second each way: 150 (from 35) to 200 (from the last answered send,
    30) blackholed; and diagnoses in the tunnel pane, as `analyze` gives them."""
    app, settle = live_outage_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await _until(
            pilot, lambda: app.store.figures is not None and app.store.figures.time == T0 + 60.0
        )
        await pilot.pause()
        row = _row(app, ROW_A)
        assert row["blackholed"] == "150–200"
        pane = app.query_one(DetailPane)
        await _select(pilot, ROW_A)
        await pilot.pause()
        text = "\n".join(line.plain for line in pane.lines)
        assert "blackholed 150–200 of" in text
        figures = app.store.figures
        assert figures is not None
        (diagnoses,) = figures.diagnoses.values()
        assert diagnoses
        for diagnosis in diagnoses:
            assert f"{diagnosis.severity.value} {diagnosis.code}" in text


# ---------------------------------------------------------------------------- screenshots


def capture_app_at_down(
    diagnoses: bool = False,
) -> tuple[CaptureApp, Callable[[Pilot[Any]], Any]]:
    """Capture mode on outage.pcap with the cursor at 192.0.2.1's down transition."""
    app = CaptureApp(_loader(diagnoses=diagnoses), name="captures/outage.pcap")

    async def at_down(pilot: Pilot[Any]) -> None:
        await _until(pilot, app.warmed.is_set)
        await pilot.press("n")
        await pilot.pause()

    return app, at_down


SMALL = (80, 24)


def test_snapshot_capture_at_the_down_transition(snap_compare: Any) -> None:
    app, at_down = capture_app_at_down()
    assert snap_compare(app, terminal_size=SIZE, run_before=at_down)


def test_snapshot_capture_at_80x24(snap_compare: Any) -> None:
    """The Events pane folds away and low-priority columns hide (the border says how many)."""
    app, at_down = capture_app_at_down()
    assert snap_compare(app, terminal_size=SMALL, run_before=at_down)


def test_snapshot_capture_at_80x24_with_events(snap_compare: Any) -> None:
    """`v` brings the Events pane back, in place of the Tunnel pane."""
    app, at_down = capture_app_at_down()

    async def run_before(pilot: Pilot[Any]) -> None:
        await at_down(pilot)
        await pilot.press("v")
        await pilot.pause()
        await pilot.pause()

    assert snap_compare(app, terminal_size=SMALL, run_before=run_before)


def test_snapshot_capture_filtered_with_help(snap_compare: Any) -> None:
    app = CaptureApp(_loader(diagnoses=False), name="captures/outage.pcap")

    async def run_before(pilot: Pilot[Any]) -> None:
        await _until(pilot, app.warmed.is_set)
        await pilot.press("N", "slash", *"down", "enter", "question_mark")

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_snapshot_live(snap_compare: Any) -> None:
    app, settle = live_outage_app()
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)


def test_snapshot_live_at_80x24(snap_compare: Any) -> None:
    app, settle = live_outage_app()
    assert snap_compare(app, terminal_size=SMALL, run_before=settle)


async def _screenshot(app: KeepaliveApp, prepare: Callable[[Pilot[Any]], Any], path: Path) -> None:
    async with app.run_test(size=SIZE) as pilot:
        await prepare(pilot)
        app.save_screenshot(path.name, str(path.parent))


async def test_docs_screenshots(request: pytest.FixtureRequest) -> None:
    """docs/tui-capture.svg and docs/tui-live.svg are the screens above; regenerate them
    with `pytest tests/test_tui_app.py --snapshot-update`."""
    targets: dict[str, Callable[[], tuple[KeepaliveApp, Callable[[Pilot[Any]], Any]]]] = {
        "tui-capture.svg": lambda: capture_app_at_down(diagnoses=True),
        "tui-live.svg": live_outage_app,
    }
    if request.config.getoption("--snapshot-update"):
        DOCS.mkdir(exist_ok=True)
        for name, make in targets.items():
            app, prepare = make()
            await _screenshot(app, prepare, DOCS / name)
    for name in targets:
        svg = (DOCS / name).read_text(encoding="utf-8")
        assert svg.startswith("<svg") and re.search(r"192\.0\.2\.1", svg), name
