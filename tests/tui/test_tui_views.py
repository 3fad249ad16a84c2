"""The TUI's snapshots, computed without textual: state at a time cursor, live coalescing.

Expected values are the hand-worked ones of captures/README.md (outage.pcap, no config:
retries 3, period 5 s inferred; t0 = 1764115200).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from analyzer.keepalive.analysis import Settings
from analyzer.keepalive.model import Analysis, Diagnosis, Severity
from analyzer.keepalive.state import LineState
from analyzer.keepalive.tracker import LiveEventKind
from analyzer.pipeline.analyze import analyze_frames
from analyzer.read.capture import RawFrame, open_capture
from analyzer.read.packet import build_keepalive_request, reflect_request
from analyzer.read.sources import CaptureStats, HandleStats, InterfaceNotice
from analyzer.tui.live import LiveFeeder, LiveFigures, LiveStore, LiveUpdate
from analyzer.tui.render import (
    Detail,
    blackhole_line,
    render_chart,
    render_detail,
    render_log_row,
)
from analyzer.tui.views import (
    COLUMN_KEYS,
    COLUMNS,
    RANK_DOWN,
    RANK_FINE,
    RANK_UNANSWERED,
    CaptureIndex,
    ChartPoint,
    LogFilter,
    LogRow,
    OriginatorView,
    Series,
    TimeFormat,
    filter_views,
    load_summary,
    sort_views,
    state_at,
)

ROOT = Path(__file__).resolve().parents[2]
T0 = 1764115200.0
A, B = "192.0.2.1", "198.51.100.1"
LINKTYPE_RAW = 101


@pytest.fixture(scope="module")
def outage() -> Analysis:
    with open_capture(ROOT / "captures" / "outage.pcap") as reader:
        return analyze_frames(reader, files=["outage.pcap"])


def _figures(analysis: Analysis, t: float, address: str) -> tuple[object, ...]:
    view = state_at(analysis, T0 + t).originator(address)
    return (
        view.line_state,
        view.counter,
        view.sent,
        view.returned,
        view.lost,
        view.downs,
        round(view.down_seconds, 5),
    )


def test_state_at_follows_the_hand_worked_outage(outage: Analysis) -> None:
    up, down = LineState.UP, LineState.DOWN
    # Sends every 5 s from 0; those at 35, 40, 45 go unanswered: counter 3 = retries.
    assert _figures(outage, 49.999, A) == (up, 3, 10, 7, 3, 0, 0.0)
    # The tick at 50 finds 3 >= 3: down, then the send makes the counter 4.
    assert _figures(outage, 50.0, A) == (down, 4, 11, 7, 4, 1, 0.0)
    assert _figures(outage, 60.0, A) == (down, 6, 13, 7, 6, 1, 10.0)
    # The send at 75 is answered at 75.02005: until then it is outstanding, not lost (the
    # sends at 35 … 70, eight, are); then up, counter 0.
    assert _figures(outage, 75.02, A) == (down, 9, 16, 7, 8, 1, 25.02)
    assert _figures(outage, 75.02005, A) == (up, 0, 16, 8, 8, 1, 25.02005)
    # Right after a normal send (0, answered at 0.02005) nothing is lost.
    assert _figures(outage, 0.0, A)[4] == 0
    # 198.51.100.1 sends first at 2.01; its ticks from 32.01 are extrapolated.
    assert _figures(outage, 1.0, B)[:2] == (None, 0)
    view = state_at(outage, T0 + 47.01).originator(B)
    assert (view.line_state, view.counter, view.sent, view.extrapolated) == (down, 4, 6, 4)
    assert view.last_rtt_ms == 0.05


def test_state_at_the_end_equals_the_offline_totals(outage: Analysis) -> None:
    end = outage.source.end
    assert end is not None
    snapshot = state_at(outage, end)
    for result in outage.tunnels[0].originators:
        view = snapshot.originator(result.address)
        assert (view.line_state, view.counter) == (result.final_state, result.final_counter)
        assert (view.sent, view.returned, view.lost) == (
            result.sent,
            result.returned,
            result.unanswered,
        )
        assert view.extrapolated == result.extrapolated
        assert view.downs == sum(1 for t in result.transitions if t.state is LineState.DOWN)
        assert view.down_seconds == pytest.approx(result.down_seconds)
        assert snapshot.tunnels[0].transitions[-1].state is LineState.UP


def test_a_rtt_is_shown_only_once_its_reply_has_arrived(outage: Analysis) -> None:
    assert state_at(outage, T0).originator(A).last_rtt_ms is None  # sent at 0, back at 0.02005
    assert state_at(outage, T0 + 0.02005).originator(A).last_rtt_ms == 20.05


def test_cursor_navigation(outage: Analysis) -> None:
    index = CaptureIndex(outage)
    assert (index.start, index.end) == (T0, outage.source.end)
    row_a = state_at(outage, T0).originator(A).row_key
    assert index.next_transition(T0, row_a) == T0 + 50.0
    assert index.next_transition(T0 + 50.0, row_a) == pytest.approx(T0 + 75.02005)
    assert index.previous_transition(T0 + 75.02005, row_a) == T0 + 50.0
    assert index.next_transition(T0) == pytest.approx(T0 + 47.01)  # any originator
    assert index.next_event(T0) == pytest.approx(T0 + 0.02005)
    assert index.previous_event(T0 + 0.02005) == T0
    assert index.previous_event(T0) is None
    assert index.next_transition(T0 + 80.0, row_a) is None
    # The log at the down: the transition comes before the send that caused it.
    rows = index.log_until(T0 + 50.0, 3)
    assert [(r.kind, r.originator, r.frame) for r in rows] == [
        ("extrapolated", B, None),
        ("down", A, 835),
        ("sent", A, 835),
    ]
    # "keepalive N/M" counts keepalive events, not distinct times: by 50 s 192.0.2.1 sent
    # 11 (0 … 50) and got 7 back (0 … 30); 198.51.100.1 sent 6 (2.01 … 27.01), got 6 back
    # and 4 ticks were extrapolated (32.01 … 47.01): 34.
    total = sum(len(o.events) for o in outage.tunnels[0].originators)
    assert index.event_position(T0 + 50.0) == (34, total)


def test_sorting_and_filtering(outage: Analysis) -> None:
    views = state_at(outage, T0 + 47.01).originators()
    assert [v.address for v in sort_views(views, "originator")] == [A, B]
    assert [v.address for v in sort_views(views, "line")] == [B, A]  # down first
    assert [v.address for v in sort_views(views, "sent", reverse=True)] == [A, B]
    for key in COLUMN_KEYS:
        assert len(sort_views(views, key)) == 2
    assert [v.address for v in filter_views(views, "down")] == [B]
    assert [v.address for v in filter_views(views, "DOWN 192.0")] == [B]  # its peer is A
    assert filter_views(views, "key 42") == []
    assert len(filter_views(views, "")) == 2


def test_chart_marks_threshold_down_and_cursor() -> None:
    points = (
        ChartPoint(0.0, 1, LineState.UP),
        ChartPoint(1.0, 2, LineState.UP),
        ChartPoint(2.0, 3, LineState.UP),
        ChartPoint(3.0, 4, LineState.DOWN),
        ChartPoint(4.0, 0, LineState.UP),
    )
    rows = render_chart(Series(A, B, 3, points), 0.0, 5.0, 12, 4, cursor=3.0)
    assert len(rows) == 5  # four rows of bars and the axis
    assert all(len(row.plain) == 12 for row in rows)
    assert "╌" in "".join(row.plain for row in rows)  # the retries line
    assert rows[-1].plain.index("▲") == 2 + 6  # gutter "8┤"… then column 6 of 10
    shaded = {span.style for row in rows for span in row.spans if "on #4a1418" in str(span.style)}
    assert shaded  # the down column is shaded
    assert render_chart(Series(A, B, 3, ()), 0.0, 5.0, 3, 4) == []  # too narrow to draw
    # The ▲ never cuts the time labels: at the first column the left label moves after it.
    at_start = render_chart(
        Series(A, B, 3, points), 0.0, 5.0, 30, 4, cursor=0.0, left_label="+0", right_label="+5"
    )
    # 30 cells: the gutter "8┤" and 28 time columns: ▲, the label after it, the right one.
    assert at_start[-1].plain == " └▲+0" + " " * 23 + "+5"


def test_detail_and_log_render_as_plain_lines(outage: Analysis) -> None:
    index = CaptureIndex(outage)
    snapshot = index.state_at(T0 + 50.0)
    tunnel = replace(snapshot.tunnels[0], diagnoses=())
    fmt = TimeFormat(index.start, relative=True)
    detail = Detail(
        tunnel,
        index.series(tunnel.tunnel),
        index.all_transitions(tunnel.tunnel),
        (index.start, index.end),
        T0 + 50.0,
        fmt,
    )
    text = "\n".join(line.plain for line in render_detail(detail, 80))
    assert "192.0.2.1 → 198.51.100.1  down  counter 4/3" in text
    # Data at 10/s from 30 (last answered send) or 35 (first unanswered) up to the down at 50.
    assert "blackholed 150–200 of 500 data packets up to the cursor" in text
    assert "+50.000  192.0.2.1     down  counter 3  #835" in text
    assert "Diagnoses\n  none" in text
    diagnosis = Diagnosis(
        "leg-down",
        Severity.ERROR,
        "192.0.2.1's keepalives go unanswered from 00:00:35.000 " + "while 198.51.100.1… " * 5,
        T0 + 35.0,
        (682,),
    )
    with_diagnosis = replace(detail, tunnel=replace(tunnel, diagnoses=(diagnosis,)))
    lines = [line.plain for line in render_detail(with_diagnosis, 60)]
    at = lines.index("Diagnoses")
    assert lines[at + 1] == "  error leg-down +35.000"
    # One time format: the message's clock time follows the screen's.
    assert lines[at + 2].startswith("    192.0.2.1's keepalives go unanswered from +35.000")
    assert len(lines) > at + 3 and all(len(line) <= 60 for line in lines[at:])
    absolute = [
        line.plain for line in render_detail(replace(with_diagnosis, fmt=fmt.toggled()), 60)
    ]
    assert absolute[at + 1] == "  error leg-down 00:00:35.000"
    assert "from 00:00:35.000" in absolute[at + 2]
    row = index.log_until(T0 + 50.0, 2)[0]
    assert [line.plain for line in render_log_row(row, fmt, pad=9)] == [
        "+50.000 DOWN     192.0.2.1 3/3 #835"
    ]


def test_a_notice_too_wide_wraps_under_its_message() -> None:
    message = "la was removed (The interface went down); waiting for it to come back"
    row = LogRow(T0 + 7.5, "notice", message=message)
    fmt = TimeFormat(T0, relative=True)
    assert [line.plain for line in render_log_row(row, fmt, 60)] == [
        "+7.500 notice   la was removed (The interface went down);",
        "                waiting for it to come back",
    ]
    assert [line.plain for line in render_log_row(row, fmt, 100)] == [f"+7.500 notice   {message}"]


def test_the_tunnel_title_wraps_where_the_vantage_does_not_fit(outage: Analysis) -> None:
    index = CaptureIndex(outage)
    (tunnel,) = index.state_at(T0 + 50.0).tunnels
    detail = Detail(
        tunnel, (), (), (index.start, index.end), T0 + 50.0, TimeFormat(index.start, True)
    )
    wide = [line.plain for line in render_detail(detail, 80)]
    assert wide[0] == "192.0.2.1 ↔ 198.51.100.1  key none  captured near 192.0.2.1"
    # 58 cells: the 59 of that title would lose the end of the address.
    narrow = [line.plain for line in render_detail(detail, 58)]
    assert narrow[:2] == ["192.0.2.1 ↔ 198.51.100.1  key none", "  captured near 192.0.2.1"]


def test_a_log_row_too_wide_keeps_its_frame_and_rtt(outage: Analysis) -> None:
    index = CaptureIndex(outage)
    log = index.log_until(index.end, index.log_size)
    returned = next(r for r in log if r.kind == "returned" and r.originator == A)
    fmt = TimeFormat(index.start, relative=True)
    (one,) = render_log_row(returned, fmt, 80, pad=12)
    assert one.plain == "+0.020 returned 192.0.2.1    0/3 #2 20.05 ms"
    first, second = render_log_row(returned, fmt, 30, pad=12)
    assert first.plain == "+0.020 returned 192.0.2.1   "
    assert second.plain.strip() == "0/3 #2 20.05 ms"


def test_blackhole_up_to_the_cursor(outage: Analysis) -> None:
    """192.0.2.1 (retries 3): last answered send 30 s, first unanswered 35 s, down 50 s,
    10 data packets a second. Up to any moment: min counts from 35, max from 30 (the path
    failed somewhere between), both until the down; after it the analysis's own figure."""
    index = CaptureIndex(outage)
    assert index.state_at(T0 + 29.0).originator(A).blackholed == (0, 0)
    assert index.state_at(T0 + 34.0).originator(A).blackholed == (0, 40)
    assert index.state_at(T0 + 40.0).originator(A).blackholed == (50, 100)
    view = index.state_at(T0 + 60.0).originator(A)
    (result,) = [o for o in outage.tunnels[0].originators if o.address == A]
    assert (
        view.blackholed
        == (150, 200)
        == (
            result.blackholed_packets.min,
            result.blackholed_packets.max,
        )
    )
    # 10/s from 0 until the simulated router (keepalive 5 4) really went down, at 55 s.
    assert view.data_packets == 550
    end = index.state_at(index.end).originator(A)
    assert end.data_packets == result.data_packets


@pytest.mark.parametrize("query", ["192.0.2.1", "198.51.100.1 down", "down", "up", "key", "—"])
@pytest.mark.parametrize("by", ["problems", "originator", "line", "lost"])
def test_the_index_filters_rows_as_the_filter_says(outage: Analysis, query: str, by: str) -> None:
    """The index matches addresses once and the line state only at the cursor: the same
    rows as filtering every row's full search text."""
    index = CaptureIndex(outage)
    for t in (0.0, 47.01, 50.0, 80.0):
        expected = sort_views(filter_views(index.state_at(T0 + t).views, query), by)
        assert index.rows_at(T0 + t, by, False, query).keys == [v.row_key for v in expected]


@pytest.mark.parametrize("capture", ["outage.pcap", "keyed.pcap"])
def test_a_figure_sort_ranks_rows_as_their_views_do(capture: str) -> None:
    """Sorting by a figure ranks rows from the prefix counts alone: the same value as the
    column's sort of the full row, and the same order both ways (ties in tunnel order)."""
    with open_capture(ROOT / "captures" / capture) as reader:
        index = CaptureIndex(analyze_frames(reader, files=[capture]))
    span = index.end - index.start
    moments = [index.start + span * share for share in (0.0, 0.3, 0.55, 0.8, 1.0)]
    moments += index.transition_times
    for time_ in moments:
        views = index.state_at(time_).views
        for column in COLUMNS:
            for number, view in enumerate(views):
                value = index._indexes[number].sort_value(column.key, time_)
                assert value == column.sort(view), (column.key, time_, view.address)
            for reverse in (False, True):
                expected = sort_views(views, column.key, reverse=reverse)
                rows = index.rows_at(time_, column.key, reverse)
                assert rows.keys == [v.row_key for v in expected], (column.key, reverse)


def test_problems_first_and_addresses_in_numeric_order() -> None:
    def view(address: str, peer: str, rank: int) -> OriginatorView:
        return OriginatorView(
            (min(address, peer), max(address, peer)),
            None,
            address,
            peer,
            LineState.UP,
            0,
            3,
            10.0,
            "default",
            None,
            1,
            1,
            0,
            0,
            0.0,
            None,
            rank=rank,
        )

    fine = view("172.16.10.1", "10.0.0.1", RANK_FINE)
    early = view("172.16.4.1", "10.0.0.1", RANK_FINE)
    unanswered = view("172.16.200.1", "10.0.0.1", RANK_UNANSWERED)
    down = view("172.16.30.1", "10.0.0.1", RANK_DOWN)
    rows = [fine, early, unanswered, down]
    assert sort_views(rows) == [down, unanswered, early, fine]
    assert sort_views(rows, "originator") == [early, fine, down, unanswered]


def test_time_format_parses_what_it_writes() -> None:
    fmt = TimeFormat(T0, relative=True)
    assert fmt(T0 + 50.0) == "+50.000"
    assert fmt.toggled()(T0 + 50.0) == "00:00:50.000"
    assert fmt.parse("+50") == fmt.parse("50") == T0 + 50.0
    assert fmt.parse("00:00:50.5") == T0 + 50.5
    assert fmt.parse("2025-11-26 00:01:00") == T0 + 60.0
    assert fmt.parse("soon") is None


def test_log_filter_by_originator_and_kind(outage: Analysis) -> None:
    index = CaptureIndex(outage)
    transitions = index.log_until(index.end, 10, LogFilter.parse("down up"))
    assert [(r.kind, r.originator) for r in transitions] == [
        ("down", B),
        ("down", A),
        ("up", B),
        ("up", A),
    ]
    only_b = index.log_until(T0 + 20.0, 100, LogFilter.parse("198.51.100.1 sent"))
    assert only_b and {(r.kind, r.originator) for r in only_b} == {("sent", B)}
    # Same-time rows come in frame order: the down before the send that found the counter.
    at_down = index.log_until(T0 + 50.0, 2, LogFilter.parse(A))
    assert [(r.kind, r.frame) for r in at_down] == [("down", 835), ("sent", 835)]


# ---------------------------------------------------------------------------- live mode


def _keepalive_pair(now: float, number: int) -> list[RawFrame]:
    request = build_keepalive_request(A, B, outer_id=2 * number, inner_id=2 * number - 1)
    reply = reflect_request(request) or b""
    return [
        RawFrame(number, now, LINKTYPE_RAW, request, len(request), 0, 0),
        RawFrame(number + 1, now + 0.001, LINKTYPE_RAW, reply, len(reply), 0, 0),
    ]


def test_live_feeder_coalesces_and_goes_down_by_the_clock() -> None:
    """A burst of 2000 keepalives, then silence: few updates, and the line goes down on time."""
    updates: list[LiveUpdate] = []
    start = time.time()

    frames = [f for number in range(1, 2001, 2) for f in _keepalive_pair(start, number)]

    def source(stop: threading.Event) -> Iterator[RawFrame | InterfaceNotice]:
        yield from frames
        yield InterfaceNotice(start, "lo re-opened")
        stop.wait()

    feeder = LiveFeeder(source, Settings(period=0.2, retries=2), updates.append)
    feeder.start()
    try:
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            if any(e.line_state is LineState.DOWN for u in updates for e in u.events):
                break
            time.sleep(0.02)
    finally:
        feeder.stop()
    elapsed = time.time() - start
    assert any(e.line_state is LineState.DOWN for u in updates for e in u.events), updates[-1]
    # Silence after a returned keepalive: ticks at +0.2 and +0.4 (counter 1, 2), the tick
    # at +0.6 finds 2 >= 2 and is declared half a period late, at +0.7 s (here plus the
    # time it took to decode the burst: no tick is declared while frames are queued).
    assert elapsed < 5.0
    (down,) = [e for u in updates for e in u.events if e.kind is LiveEventKind.DOWN]
    assert down.time - start == pytest.approx(0.6, abs=1e-3)
    assert down.counter == 2
    assert len(updates) <= elapsed / 0.1 + 3
    assert updates[-1].frames == 2000
    assert [n.message for u in updates for n in u.notices] == ["lo re-opened"]
    (state,) = updates[-1].states
    assert (state.sent, state.returned, state.line_state) == (1000, 1000, LineState.DOWN)


def test_live_feeder_reports_a_failing_source() -> None:
    updates: list[LiveUpdate] = []

    def source(stop: threading.Event) -> Iterator[RawFrame | InterfaceNotice]:
        yield from _keepalive_pair(time.time() - 1.0, 1)
        raise PermissionError("eth0: you don't have permission to capture on that device")

    feeder = LiveFeeder(source, Settings(), updates.append)
    feeder.start()
    deadline = time.monotonic() + 3.0
    while not (updates and updates[-1].ended) and time.monotonic() < deadline:
        time.sleep(0.02)
    feeder.stop()
    assert updates[-1].ended
    assert updates[-1].error == "eth0: you don't have permission to capture on that device"
    store = LiveStore()
    for update in updates:
        store.apply(update)
    assert store.error is not None
    assert [row.kind for row in store.log][-1] == "error"
    assert store.snapshot().originator(A).returned == 1


def test_live_store_document() -> None:
    from analyzer.keepalive.tracker import LiveTracker

    tracker = LiveTracker(Settings(period=10.0, retries=3))
    from analyzer.read.packet import decode_frame

    events = []
    for raw in _keepalive_pair(T0, 1):
        events += tracker.feed(raw.time, raw.number, decode_frame(raw.linktype, raw.data))
    events += tracker.advance(T0 + 45.0)
    store = LiveStore()
    store.apply(
        LiveUpdate(
            T0 + 50.0,
            tuple(tracker.snapshot(T0 + 50.0)),
            tuple(events),
            (InterfaceNotice(T0 + 1, "eth0 re-opened"),),
            frames=2,
        )
    )
    document = store.document("eth0")
    (originator,) = document["originators"]
    assert document["schema"] == "gre-keepalive.live/1"
    assert (originator["line_state"], originator["counter"], originator["downs"]) == (
        "down",
        4,
        1,
    )
    assert originator["transitions"] == [
        {"time": T0 + 40.0, "state": "down", "counter": 3, "frame": None}
    ]
    assert originator["down_seconds"] == 10.0
    # The log is in time order: the notice slots in before the ticks declared later.
    assert [row.kind for row in store.log] == [
        "sent",
        "returned",
        "notice",
        "extrapolated",
        "extrapolated",
        "extrapolated",
        "down",
        "extrapolated",
    ]
    (series,) = store.series(((A, B), None))
    assert series.points[-1] == ChartPoint(T0 + 40.0, 4, LineState.DOWN)
    assert store.window(((A, B), None)) == (T0, T0 + 50.0)  # from the first event


def _cell(view: OriginatorView, key: str) -> str:
    (found,) = [column for column in COLUMNS if column.key == key]
    return found.text(view)


def test_data_figures_are_lower_bounds_when_the_data_capture_dropped(outage: Analysis) -> None:
    view = CaptureIndex(outage).state_at(T0 + 50.0).originator(A)
    assert (_cell(view, "data"), _cell(view, "blackholed")) == ("500", "150–200")
    bounded = replace(view, data_lower_bound=True)
    assert (_cell(bounded, "data"), _cell(bounded, "blackholed")) == ("≥500", "≥150–200")
    line = blackhole_line(bounded, live=True).plain
    assert line.startswith("  blackholed ≥150–200 of ≥500 data packets so far")
    assert "dropped" in line
    assert "≥" not in blackhole_line(view, live=True).plain


def _live_store_with_data(outage: Analysis, data: HandleStats) -> LiveStore:
    from analyzer.keepalive.tracker import LiveTracker

    tracker = LiveTracker(Settings(period=10.0, retries=3))
    from analyzer.read.packet import decode_frame

    for raw in _keepalive_pair(T0, 1):
        tracker.feed(raw.time, raw.number, decode_frame(raw.linktype, raw.data))
    figures = LiveFigures(T0 + 5.0, {}, {(((A, B), None), A): (800, (200, 250))}, outage)
    store = LiveStore()
    store.apply(
        LiveUpdate(
            T0 + 5.0,
            tuple(tracker.snapshot(T0 + 5.0)),
            figures=figures,
            capture=CaptureStats(T0 + 5.0, HandleStats(2, 0, 0), data, data_packets=800),
        )
    )
    return store


def test_live_rows_are_lower_bounds_only_after_data_drops(outage: Analysis) -> None:
    clean = _live_store_with_data(outage, HandleStats(800, 0, 0)).snapshot().originator(A)
    assert (_cell(clean, "data"), _cell(clean, "blackholed")) == ("800", "200–250")
    # 40 data packets dropped by the kernel: the 800 counted are at least what was sent.
    lossy = _live_store_with_data(outage, HandleStats(840, 40, 0)).snapshot().originator(A)
    assert (_cell(lossy, "data"), _cell(lossy, "blackholed")) == ("≥800", "≥200–250")
    (tunnel,) = _live_store_with_data(outage, HandleStats(840, 40, 0)).snapshot().tunnels
    assert tunnel.originators[0].data_lower_bound


def test_counts_in_the_status_line_agree_with_their_nouns(outage: Analysis) -> None:
    one = replace(outage, source=replace(outage.source, packets=1, keepalive_packets=1))
    assert (
        load_summary(one, ["a warning"]) == "1 packet, 1 keepalive, 1 tunnel; 1 warning: a warning"
    )
    two = replace(outage, source=replace(outage.source, packets=2, keepalive_packets=0))
    assert load_summary(two) == "2 packets, 0 keepalives, 1 tunnel"


# ---------------------------------------------------------------------------- layering


CORE_MODULES = [
    "analyzer.keepalive.analysis",
    "analyzer.read.capture",
    "analyzer.cli",
    "analyzer.config",
    "analyzer.keepalive.model",
    "analyzer.read.packet",
    "analyzer.report.csv",
    "analyzer.report.json",
    "analyzer.report.text",
    "analyzer.simulate",
    "analyzer.read.sources",
    "analyzer.keepalive.state",
    "analyzer.keepalive.tracker",
    "analyzer.tui",
    "analyzer.tui.command",
    "analyzer.tui.live",
    "analyzer.tui.render",
    "analyzer.tui.views",
]


def test_the_core_and_the_tui_command_run_without_textual() -> None:
    """Importing the analysis, the CLI (with every subcommand registered) and the TUI's
    non-UI modules never imports textual: it is loaded only when a UI starts."""
    code = (
        "import importlib, sys\n"
        f"for name in {CORE_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "from analyzer.cli import build_parser\n"
        "build_parser().parse_args(['tui', 'x.pcap'])\n"
        "loaded = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(loaded)\n"
        "sys.exit(1 if loaded else 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
