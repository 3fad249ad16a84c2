"""The JSON writer: the document json.dumps would write, laid out one row per line."""

from __future__ import annotations

import io
import json
import math
from dataclasses import replace

import pytest

from analyzer.keepalive.analysis import Settings
from analyzer.keepalive.model import Analysis, KeepaliveEvent, KeepaliveRole, SourceSummary
from analyzer.keepalive.state import LineState
from analyzer.pipeline.analyze import analyze_frames
from analyzer.read.capture import open_capture
from analyzer.report.json import _event, _EventRows, analysis_dict, write_json
from tests.conftest import DEMO_CAPTURES


def written(analysis: Analysis) -> str:
    out = io.StringIO()
    write_json(analysis, out)
    return out.getvalue()


@pytest.mark.parametrize("name", ["healthy.pcap", "outage.pcap", "keyed.pcap"])
def test_the_document_is_what_json_dumps_would_say(name: str) -> None:
    with open_capture(DEMO_CAPTURES / name) as reader:
        analysis = analyze_frames(reader, Settings(what_if="keepalive 2 3"))
    text = written(analysis)
    assert json.loads(text) == json.loads(json.dumps(analysis_dict(analysis)))
    assert text.endswith("}\n")


def test_each_keepalive_row_is_one_line() -> None:
    with open_capture(DEMO_CAPTURES / "outage.pcap") as reader:
        analysis = analyze_frames(reader)
    lines = written(analysis).splitlines()
    rows = [line for line in lines if line.lstrip().startswith('{"time":')]
    events = sum(len(o.events) for t in analysis.tunnels for o in t.originators)
    transitions = sum(len(o.transitions) for t in analysis.tunnels for o in t.originators)
    assert len(rows) == events + transitions
    assert all(json.loads(row.strip().rstrip(",")) for row in rows)


def test_a_capture_without_tunnels_is_a_valid_document() -> None:
    text = written(Analysis(SourceSummary(files=["empty.pcap"]), []))
    assert json.loads(text)["tunnels"] == []


def test_rows_are_one_line_each_even_when_a_string_looks_like_a_row_boundary() -> None:
    from analyzer.report.json import _render

    rows = [{"note": "a}, {b", "n": 1}, {"note": None, "n": 2.5}]
    assert _render(rows, "") == '[\n  {"note": "a}, {b", "n": 1},\n  {"note": null, "n": 2.5}\n]'
    assert _render(rows[1:], "  ") == '[\n    {"note": null, "n": 2.5}\n  ]'


def _rows_as_json_dumps_writes_them(events: list[KeepaliveEvent], indent: str) -> str:
    rows = [json.dumps(_event(e, 6)) for e in events]
    inner = indent + "  "
    return f"[\n{inner}" + f",\n{inner}".join(rows) + f"\n{indent}]"


# A sent row answered, a returned row, an extrapolated run of 3 ticks, an IPv6 send (no ID).
_EVENTS = [
    KeepaliveEvent(10.1234567, 7, KeepaliveRole.SENT, 17, 1, LineState.UP, 8, 1.5, 254),
    KeepaliveEvent(10.125, 8, KeepaliveRole.RETURNED, 17, 0, LineState.UP, 7, 1.5, 254),
    KeepaliveEvent(
        50.0, None, KeepaliveRole.EXTRAPOLATED, None, 5, LineState.DOWN, None, None, None, 3, 30.0
    ),
    KeepaliveEvent(60, 9, KeepaliveRole.SENT, None, 6, LineState.DOWN),
]


def test_keepalive_rows_are_written_as_json_dumps_writes_each_row() -> None:
    assert _EventRows(_EVENTS, 6).render("      ") == _rows_as_json_dumps_writes_them(
        _EVENTS, "      "
    )


def test_keepalive_rows_with_times_that_are_not_finite_are_written_as_json_dumps_does() -> None:
    events = [replace(_EVENTS[0], time=math.inf), replace(_EVENTS[1], rtt_ms=math.nan)]
    text = _EventRows(events, 6).render("")
    assert text == _rows_as_json_dumps_writes_them(events, "")
    assert '"time": Infinity' in text and '"rtt_ms": NaN' in text


def test_an_originator_without_keepalive_rows_has_an_empty_list() -> None:
    assert _EventRows([], 6).render("  ") == "[]"
