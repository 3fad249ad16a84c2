"""A run of missing ticks after the line went down is one row in every output, and what
reads the rows counts the ticks it stands for."""

from __future__ import annotations

import csv
import io
import json

from analyzer.keepalive.analysis import Settings
from analyzer.keepalive.model import Analysis, KeepaliveRole
from analyzer.pipeline.analyze import analyze_frames
from analyzer.report.csv import write_csv
from analyzer.report.json import write_json
from tests.builders import START, Capture

A, B = "192.0.2.1", "198.51.100.1"


def silent_after_two_unanswered() -> Analysis:
    """A (keepalive 10 3) is answered at 0-30, unanswered at 40 and 50, then sends nothing
    the capture shows; B's data keeps the capture running to 200.

    Hand-worked: 40 → counter 1, 50 → 2, tick 60 → 3, tick 70: 3 ≥ 3 → down, counter 4;
    ticks 80 … 200 (13) are one row, counter 17. Unanswered: 2 sent + 15 extrapolated."""
    capture = Capture()
    for t in (0, 10, 20, 30):
        capture.reply(t + 0.02, capture.request(t, A, B))
    capture.request(40, A, B)
    capture.request(50, A, B)
    for t in range(5, 201, 5):
        capture.data(t, B, A)
    frames = capture.sorted().raw_frames()
    return analyze_frames(frames, Settings(period=10, retries=3), files=["run.pcap"])


def test_the_run_is_one_row_with_its_first_tick_and_count() -> None:
    (tunnel,) = silent_after_two_unanswered().tunnels
    a = next(o for o in tunnel.originators if o.address == A)
    extrapolated = [e for e in a.events if e.role is KeepaliveRole.EXTRAPOLATED]
    assert [(e.time - START, e.counter, e.ticks) for e in extrapolated] == [
        (60.0, 3, 1),
        (70.0, 4, 1),
        (200.0, 17, 13),
    ]
    assert extrapolated[-1].first_time is not None
    assert extrapolated[-1].first_time - START == 80.0
    assert a.extrapolated == 15


def test_json_rows_say_first_time_and_ticks() -> None:
    stream = io.StringIO()
    write_json(silent_after_two_unanswered(), stream)
    (tunnel,) = json.loads(stream.getvalue())["tunnels"]
    a = next(o for o in tunnel["originators"] if o["address"] == A)
    last = a["keepalives"][-1]
    assert (last["type"], last["ticks"], last["counter"]) == ("extrapolated", 13, 17)
    assert (last["first_time"], last["time"]) == (START + 80, START + 200)
    first = a["keepalives"][0]
    assert first["first_time"] == first["time"]  # a single row: the same time


def test_csv_has_a_ticks_column() -> None:
    stream = io.StringIO()
    write_csv(silent_after_two_unanswered(), stream)
    rows = [r for r in csv.DictReader(io.StringIO(stream.getvalue())) if r["originator"] == A]
    assert [r["ticks"] for r in rows if r["event"] == "extrapolated"] == ["1", "1", "13"]
    assert {r["ticks"] for r in rows if r["event"].startswith("line-")} == {""}


def test_leg_down_counts_every_tick_of_the_run() -> None:
    (tunnel,) = silent_after_two_unanswered().tunnels
    (leg,) = [d for d in tunnel.diagnoses if d.code == "leg-down" and d.originator == A]
    assert "(17 unanswered; still failing when the capture ends)" in leg.message
