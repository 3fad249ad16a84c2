"""The JSON writer: the document json.dumps would write, laid out one row per line."""

from __future__ import annotations

import io
import json

import pytest

from analyzer.keepalive.analysis import Settings
from analyzer.keepalive.model import Analysis, SourceSummary
from analyzer.pipeline.analyze import analyze_frames
from analyzer.read.capture import open_capture
from analyzer.report.json import analysis_dict, write_json
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
