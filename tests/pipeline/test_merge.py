"""Two vantages: captures from both ends of a tunnel, merged (analyzer.pipeline.merge).

Each scenario is simulated twice, captured next to a (clock T0) and next to b with a clock
2.5 s ahead (the scenario's `start` + 2.5): the same packets, stamped by two clocks. The
timelines are worked out by hand in the scenario files' comments.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from analyzer.cli import main
from analyzer.keepalive.analysis import Settings
from analyzer.keepalive.collect import collect_frames
from analyzer.keepalive.model import Analysis, Diagnosis, TunnelResult
from analyzer.pipeline.merge import merge
from analyzer.read.capture import open_capture
from analyzer.simulate import load_scenario, simulate

DATA = Path(__file__).resolve().parents[1] / "data" / "diagnose"
CAPTURES = Path(__file__).resolve().parents[2] / "captures"
T0 = 1764115200.0
A, B = "192.0.2.1", "198.51.100.1"
SKEW = 2.5


def at(t: float) -> Any:
    return pytest.approx(T0 + t, abs=1e-6)


def both_ends(scenario_path: Path, tmp_path: Path) -> tuple[Path, Path]:
    scenario = load_scenario(scenario_path)
    a, b = tmp_path / "a-side.pcap", tmp_path / "b-side.pcap"
    simulate(dataclasses.replace(scenario, vantage="a"), a)
    simulate(dataclasses.replace(scenario, vantage="b", start=scenario.start + SKEW), b)
    return a, b


def merged(first: Path, second: Path, settings: Settings | None = None) -> Analysis:
    collected = []
    for path in (first, second):
        with open_capture(path) as reader:
            collector = collect_frames(reader, [str(path)])
            collector.source.precision = reader.precision
        collected.append(collector)
    return merge(collected[0], collected[1], settings or Settings(), (str(first), str(second)))


def legs(tunnel: TunnelResult) -> dict[tuple[str, str], int]:
    assert tunnel.merge is not None
    items: Any = tunnel.merge["legs"]
    return {(leg["from"], leg["to"]): leg["lost"] for leg in items}


def leg_downs(tunnel: TunnelResult) -> list[Diagnosis]:
    return [d for d in tunnel.diagnoses if d.code == "leg-down"]


def test_clock_offset_and_sides(tmp_path: Path) -> None:
    """Every answered keepalive gives offset ((d + 2.5) - (d - 2.5)) / 2 = 2.5 and round
    trip 2d = 20 ms (10 ms each way). Answered with all four stamps: A's 0 … 30 and 65 … 85
    (12), B's 2 … 27 and 62 … 87 (12)."""
    a, b = both_ends(DATA / "leg_a_to_b.toml", tmp_path)
    (tunnel,) = merged(a, b).tunnels
    assert tunnel.merge is not None
    assert tunnel.merge["clock_offset"] == pytest.approx(SKEW, abs=1e-6)
    assert tunnel.merge["offset_samples"] == 24
    assert tunnel.merge["round_trip_ms"] == pytest.approx(20.0, abs=0.002)
    assert tunnel.merge["captures"] == [
        {"file": str(a), "near": A},
        {"file": str(b), "near": B},
    ]


def test_swapped_order(tmp_path: Path) -> None:
    a, b = both_ends(DATA / "leg_a_to_b.toml", tmp_path)
    (tunnel,) = merged(b, a).tunnels
    assert tunnel.merge is not None
    assert tunnel.merge["clock_offset"] == pytest.approx(-SKEW, abs=1e-6)
    assert [c["near"] for c in tunnel.merge["captures"]] == [B, A]  # type: ignore[union-attr]
    # Times are on the first capture's clock (b's): A's down at 50 reads 52.5.
    a_result = next(o for o in tunnel.originators if o.address == A)
    assert a_result.transitions[0].time == at(50 + SKEW)


def test_a_to_b_leg_exactly(tmp_path: Path) -> None:
    """A -> B fails during [30.5, 60.5): A's requests at 35 … 60 (6) and A's reflections of
    B's requests, leaving A at 32.01005 … 57.01005 (6), die on it; B -> A loses nothing. The
    window runs from the first lost crossing (32.01005) to the first one delivered after it
    (the reflection of B's request at 62, leaving A at 62.01005)."""
    a, b = both_ends(DATA / "leg_a_to_b.toml", tmp_path)
    (tunnel,) = merged(a, b).tunnels
    assert legs(tunnel) == {(A, B): 12, (B, A): 0}
    assert tunnel.merge is not None
    lost: Any = tunnel.merge["lost"]
    assert {item["died_on"] for item in lost} == {f"{A} → {B}"}
    assert sorted(round(item["time"] - T0, 5) for item in lost if item["packet"] == "request") == [
        35.0,
        40.0,
        45.0,
        50.0,
        55.0,
        60.0,
    ]
    (diagnosis,) = leg_downs(tunnel)
    details = diagnosis.details
    assert (details["failed"], details["working"], details["exact"]) == ([[A, B]], [[B, A]], True)
    assert diagnosis.time == at(32.01005)
    assert details["end"] == at(62.01005)


def test_each_end_reported_from_its_own_capture(tmp_path: Path) -> None:
    """B's own capture shows what the capture at A could not: B's sends at 32 … 57 go
    unanswered (counter 1, 2, 3) and its send at 47 takes it down; up at 62.02005."""
    a, b = both_ends(DATA / "leg_a_to_b.toml", tmp_path)
    (tunnel,) = merged(a, b).tunnels
    by_address = {o.address: o for o in tunnel.originators}
    assert (by_address[A].capture, by_address[B].capture) == (str(a), str(b))
    assert [(t.state.value, t.time) for t in by_address[B].transitions] == [
        ("down", at(47)),
        ("up", at(62.02005)),
    ]
    assert [(t.state.value, t.time) for t in by_address[A].transitions] == [
        ("down", at(50)),
        ("up", at(65.02005)),
    ]


def test_b_to_a_leg_exactly(tmp_path: Path) -> None:
    """B -> A fails during [30.5, 60.5): B's requests at 32 … 57 and B's reflections of A's
    requests (leaving B at 35.01005 … 60.01005) die on it: from 32 to B's request at 62."""
    a, b = both_ends(DATA / "leg_b_to_a.toml", tmp_path)
    (tunnel,) = merged(a, b).tunnels
    assert legs(tunnel) == {(A, B): 0, (B, A): 12}
    (diagnosis,) = leg_downs(tunnel)
    assert (diagnosis.details["failed"], diagnosis.details["working"]) == (
        [[B, A]],
        [[A, B]],
    )
    assert (diagnosis.time, diagnosis.details["end"]) == (at(32), at(62))


def test_both_legs(tmp_path: Path) -> None:
    """captures/outage.toml: both ways during [30.5, 70.5). A's requests 35 … 70 die on
    A -> B (8), B's requests 32 … 67 on B -> A (8); no request arrives, so nothing is
    reflected. A -> B fails from 35 to A's reflection of B's request at 72 (72.01005),
    B -> A from 32 to 72: one diagnosis, both legs, 32 to 72.01005."""
    a, b = both_ends(CAPTURES / "outage.toml", tmp_path)
    (tunnel,) = merged(a, b).tunnels
    assert legs(tunnel) == {(A, B): 8, (B, A): 8}
    (diagnosis,) = leg_downs(tunnel)
    assert diagnosis.details["failed"] == [[A, B], [B, A]]
    assert (diagnosis.time, diagnosis.details["end"]) == (at(32), at(72.01005))
    assert "both legs down" in diagnosis.message


def test_reflector_that_drops_keepalives_seen_from_both_ends(tmp_path: Path) -> None:
    """reply_filtered.toml: A's requests reach B but B never reflects them. A's request at
    0 left before the capture at B began (its first frame is that request arriving at
    0.01), so 5 … 55 are judged: 11 not reflected; no leg loses anything."""
    a, b = both_ends(DATA / "reply_filtered.toml", tmp_path)
    (tunnel,) = merged(a, b).tunnels
    assert legs(tunnel) == {(A, B): 0, (B, A): 0}
    assert leg_downs(tunnel) == []
    (diagnosis,) = [d for d in tunnel.diagnoses if d.code == "reply-filtered"]
    assert diagnosis.details == {"reflector": B, "exact": True, "evidence_capture": str(b)}
    assert diagnosis.message.startswith(f"11 of {A}'s keepalives reached {B}")


def test_cli_two_captures(tmp_path: Path) -> None:
    a, b = both_ends(DATA / "leg_a_to_b.toml", tmp_path)
    out = tmp_path / "m.json"
    assert main(["analyze", str(a), str(b), "--format", "json", "-o", str(out)]) == 0
    document = json.loads(out.read_text())
    assert document["source"]["files"] == [str(a), str(b)]
    (tunnel,) = document["tunnels"]
    assert tunnel["merge"]["clock_offset"] == pytest.approx(SKEW, abs=1e-6)
    assert {o["address"]: o["capture"] for o in tunnel["originators"]} == {A: str(a), B: str(b)}
    text = tmp_path / "m.txt"
    assert main(["analyze", str(a), str(b), "-o", str(text)]) == 0
    report = text.read_text()
    assert "clock offset +2.500000 s from 24 keepalives" in report
    assert f"{A}'s request (id" in report and f"died on {A} → {B}" in report


def test_single_capture_has_no_merge(tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    assert (
        main(["analyze", str(CAPTURES / "healthy.pcap"), "--format", "json", "-o", str(out)]) == 0
    )
    (tunnel,) = json.loads(out.read_text())["tunnels"]
    assert tunnel["merge"] is None
    assert all(o["capture"] is None for o in tunnel["originators"])


def test_follow_takes_one_capture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = both_ends(DATA / "leg_a_to_b.toml", tmp_path)
    assert main(["analyze", str(a), str(b), "--follow"]) == 2
    assert "--follow reads one capture" in capsys.readouterr().err


def test_each_direction_of_data_as_its_senders_capture_shows_it(tmp_path: Path) -> None:
    a, b = both_ends(DATA / "leg_a_to_b.toml", tmp_path)
    (tunnel,) = merged(a, b).tunnels
    # A's data from the A-side capture, B's from the B-side one on A's clock (B's runs
    # SKEW ahead): each as that capture alone lists it.
    (near_a,) = merged_single(a).tunnels
    (near_b,) = merged_single(b).tunnels
    a_to_b = next(d for d in near_a.directions if d.source == A)
    b_to_a = next(d for d in near_b.directions if d.source == B)
    assert a_to_b.packets > 0 and b_to_a.packets > 0
    assert [(d.source, d.destination, d.packets) for d in tunnel.directions] == [
        (A, B, a_to_b.packets),
        (B, A, b_to_a.packets),
    ]
    assert (tunnel.directions[0].first, tunnel.directions[0].last) == (a_to_b.first, a_to_b.last)
    assert b_to_a.first is not None and b_to_a.last is not None
    assert (tunnel.directions[1].first, tunnel.directions[1].last) == (
        pytest.approx(b_to_a.first - SKEW, abs=1e-6),
        pytest.approx(b_to_a.last - SKEW, abs=1e-6),
    )


def merged_single(path: Path) -> Analysis:
    from analyzer.pipeline.analyze import analyze_frames

    with open_capture(path) as reader:
        return analyze_frames(reader)
