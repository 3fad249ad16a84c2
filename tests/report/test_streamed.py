"""`analyze` makes its tunnels one at a time as the report is written (StreamedAnalysis):
the same report as an analysis that keeps them all, with nothing made twice."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from analyzer.cli import main
from analyzer.keepalive.analysis import Settings
from analyzer.keepalive.collect import collect_frames
from analyzer.keepalive.model import SourceSummary, StreamedAnalysis, TunnelResult
from analyzer.pipeline.analyze import analyze_collected
from analyzer.read.capture import open_capture
from analyzer.report.csv import write_csv
from analyzer.report.json import write_json
from analyzer.report.text import write_text
from analyzer.simulate import load_scenario, simulate
from tests.builders import Capture
from tests.conftest import DEMO_CAPTURES

SCENARIOS = Path(__file__).resolve().parents[1] / "data" / "diagnose"
A, B = "192.0.2.1", "198.51.100.1"


def reports(path: Path, *, final: bool) -> tuple[str, str, str]:
    """JSON, text and CSV of one capture, the what-if replay included."""
    with open_capture(path) as reader:
        collector = collect_frames(reader, [str(path)])
    analysis = analyze_collected(collector, Settings(what_if="keepalive 2 3"), final=final)
    out = []
    for write in (write_json, write_text, write_csv):
        stream = io.StringIO()
        write(analysis, stream)
        out.append(stream.getvalue())
    return out[0], out[1], out[2]


@pytest.mark.parametrize("name", ["healthy.pcap", "outage.pcap", "keyed.pcap"])
def test_a_streamed_report_is_the_kept_one(name: str) -> None:
    assert reports(DEMO_CAPTURES / name, final=True) == reports(DEMO_CAPTURES / name, final=False)


def test_tunnels_of_one_pair_are_diagnosed_together(tmp_path: Path) -> None:
    """key_directions.toml: A sends with key 42, B with key 43 (two tunnels of one
    endpoint pair); each end drops the other's packets, a key-mismatch on both tunnels."""
    pcap = tmp_path / "keys.pcap"
    simulate(load_scenario(SCENARIOS / "key_directions.toml"), pcap)
    out = tmp_path / "keys.json"
    assert main(["analyze", str(pcap), "--format", "json", "-o", str(out)]) == 0
    tunnels = json.loads(out.read_text())["tunnels"]
    assert [t["key"] for t in tunnels] == [42, 43]
    for tunnel in tunnels:
        (mismatch,) = [d for d in tunnel["diagnoses"] if d["code"] == "key-mismatch"]
        assert mismatch["details"]["keys"] == {A: [42], B: [43]}


def test_data_only_tunnels_follow_in_a_streamed_text_report(tmp_path: Path) -> None:
    """One keepalive tunnel and one tunnel with data alone: the text report lists the
    keepalive tunnel first and says nothing of "No GRE keepalives found"."""
    capture = Capture()
    capture.request(0, A, B)
    capture.data(1, "203.0.113.1", "203.0.113.2")
    collector = collect_frames(capture.raw_frames(), ["two.pcap"])
    analysis = analyze_collected(collector, Settings(), final=True)
    stream = io.StringIO()
    write_text(analysis, stream)
    text = stream.getvalue()
    assert "No GRE keepalives found" not in text
    assert text.index(f"Tunnel {A} ↔ {B}") < text.index("Tunnel 203.0.113.1 ↔ 203.0.113.2")


class Counting:
    """Makes no tunnel, and counts how often it was asked to."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> Iterator[TunnelResult]:
        self.calls += 1
        return iter([])


def test_any_down_after_the_report_makes_no_tunnel_again() -> None:
    make = Counting()
    analysis = StreamedAnalysis(SourceSummary(files=[]), make, keepalives=False)
    assert list(analysis.each_tunnel()) == []
    assert analysis.any_down is False
    assert make.calls == 1


def test_tunnels_once_read_are_kept() -> None:
    make = Counting()
    analysis = StreamedAnalysis(SourceSummary(files=[]), make, keepalives=False)
    assert analysis.tunnels is analysis.tunnels
    assert list(analysis.each_tunnel()) == []
    assert make.calls == 1


def test_the_report_keeps_no_tunnel() -> None:
    """After the JSON is written, reading `tunnels` has to make them again: none was kept."""
    make = Counting()
    analysis = StreamedAnalysis(SourceSummary(files=[]), make, keepalives=False)
    write_json(analysis, io.StringIO())
    assert make.calls == 1
    assert analysis.tunnels == []
    assert make.calls == 2
