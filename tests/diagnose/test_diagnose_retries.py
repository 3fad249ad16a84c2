"""Retries inferred from when an endpoint's data traffic stops (hand-worked timelines)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from analyzer.cli import main
from analyzer.keepalive.analysis import Settings
from analyzer.keepalive.model import Analysis, Diagnosis, OriginatorResult, ValueSource
from analyzer.pipeline.analyze import analyze_frames
from analyzer.read.capture import open_capture
from analyzer.simulate import Keepalive, load_scenario, simulate

DATA = Path(__file__).resolve().parents[1] / "data" / "diagnose"
CAPTURES = Path(__file__).resolve().parents[2] / "captures"
T0 = 1764115200.0
A, B = "192.0.2.1", "198.51.100.1"


def at(t: float) -> Any:
    return pytest.approx(T0 + t, abs=1e-6)


def analyze(pcap: Path, settings: Settings | None = None) -> Analysis:
    with open_capture(pcap) as reader:
        return analyze_frames(reader, settings or Settings(), files=[str(pcap)])


def run(name: str, tmp_path: Path, settings: Settings | None = None, **changes: Any) -> Analysis:
    scenario = load_scenario(DATA / f"{name}.toml")
    if changes:
        tunnel = dataclasses.replace(scenario.tunnels[0], **changes)
        scenario = dataclasses.replace(scenario, tunnels=(tunnel,))
    simulate(scenario, tmp_path / "r.pcap")
    return analyze(tmp_path / "r.pcap", settings)


def originator(analysis: Analysis, address: str) -> OriginatorResult:
    return next(o for t in analysis.tunnels for o in t.originators if o.address == address)


def codes(analysis: Analysis, address: str) -> dict[str, Diagnosis]:
    return {d.code: d for t in analysis.tunnels for d in t.diagnoses if d.originator == address}


def test_outage_data_stops_at_the_fifth_unanswered_send() -> None:
    """outage.pcap: A (keepalive 5 4) goes down at 55; its data (10/s) stops after 54.95.

    The ticks in (54.95, 55.05] are just 55 (counter 5 after it): retries 4; data resumes
    at 75.05 after the reply at 75.02005: weight 1, confidence 0.9 (one episode).
    """
    a = originator(analyze(CAPTURES / "outage.pcap"), A)
    assert a.retries_inferred is not None
    assert (a.retries_inferred.retries, a.retries_inferred.confidence) == (4, 0.9)
    # Not applied by default: the analysis keeps the IOS default of 3 (down at 50).
    assert (a.retries, a.retries_source, a.retries_confidence) == (3, ValueSource.DEFAULT, None)
    assert a.transitions[0].time == at(50)


def test_retries_infer_applies_it() -> None:
    a = originator(analyze(CAPTURES / "outage.pcap", Settings(infer_retries=True)), A)
    assert (a.retries, a.retries_source, a.retries_confidence) == (4, ValueSource.INFERRED, 0.9)
    # keepalive 5 4 as configured on the router (captures/README.md): down at 55.
    assert [(t.state.value, t.time) for t in a.transitions] == [
        ("down", at(55)),
        ("up", at(75.02005)),
    ]


def test_configured_retries_win_over_inference() -> None:
    a = originator(analyze(CAPTURES / "outage.pcap", Settings(retries=2, infer_retries=True)), A)
    assert (a.retries, a.retries_source) == (2, ValueSource.CLI)


def test_far_end_is_not_inferable() -> None:
    """B's data vanishes at 30.46 (lost on the way), before any of its ticks: nothing to read."""
    analysis = analyze(CAPTURES / "outage.pcap", Settings(infer_retries=True))
    b = originator(analysis, B)
    assert b.retries_inferred is None
    assert (b.retries, b.retries_source) == (3, ValueSource.DEFAULT)
    assert "retries-unknown" in codes(analysis, B)


def test_sparse_data_gives_a_lower_confidence(tmp_path: Path) -> None:
    a = originator(run("retries_low_rate", tmp_path), A)
    assert a.retries_inferred is not None
    assert (a.retries_inferred.retries, a.retries_inferred.confidence) == (3, 0.45)


def test_data_flowing_through_a_failure_bounds_retries(tmp_path: Path) -> None:
    analysis = run("retries_lower_bound", tmp_path)
    a = originator(analysis, A)
    assert a.retries_inferred is not None
    assert (a.retries_inferred.retries, a.retries_inferred.lower_bound) == (None, 4)
    diagnosis = codes(analysis, A)["retries-unknown"]
    assert diagnosis.details["lower_bound"] == 4
    assert "retries ≥ 4" in diagnosis.message


def test_three_agreeing_episodes(tmp_path: Path) -> None:
    """flapping.toml with 10 data packets/s from A (keepalive 2 2): downs at 16, 36, 56.

    Each time the data stops after x5.95 and the tick at x6 (counter 3 after it) is the only
    one before the next packet was due: retries 2 three times, data resumes after each
    recovery: 1 - 0.1^3 = 0.999, capped at 0.99.
    """
    analysis = run("flapping", tmp_path, Settings(infer_retries=True), data_pps_a=10.0)
    a = originator(analysis, A)
    assert a.retries_inferred is not None
    assert (a.retries_inferred.retries, a.retries_inferred.episodes) == (2, 3)
    assert a.retries_inferred.confidence == 0.99
    assert (a.retries, a.retries_source) == (2, ValueSource.INFERRED)
    assert [t.time for t in a.transitions if t.state.value == "down"] == [at(16), at(36), at(56)]


def test_configured_retries_contradicted_by_the_data(tmp_path: Path) -> None:
    analysis = run("flapping", tmp_path, Settings(retries=4), data_pps_a=10.0)
    diagnosis = codes(analysis, A)["retries-mismatch"]
    assert diagnosis.details == {"configured": 4, "inferred": 2}


def test_inferred_retries_need_the_endpoints_own_data(tmp_path: Path) -> None:
    """No data from A at all: nothing to infer from, whatever the keepalives did."""
    a = originator(
        run("flapping", tmp_path, keepalive_a=Keepalive(period=2, retries=2, phase=0.0)), A
    )
    assert a.retries_inferred is None


def test_cli_retries_infer(tmp_path: Path) -> None:
    out = tmp_path / "o.json"
    argv = ["analyze", str(CAPTURES / "outage.pcap"), "--retries", "infer", "--format", "json"]
    assert main([*argv, "-o", str(out)]) == 0
    document = json.loads(out.read_text())
    a = next(o for o in document["tunnels"][0]["originators"] if o["address"] == A)
    assert (a["retries"], a["retries_source"], a["retries_confidence"]) == (4, "inferred", 0.9)
    assert a["retries_inferred"]["retries"] == 4
    assert [t["time"] for t in a["transitions"]] == [at(55), at(75.02005)]
