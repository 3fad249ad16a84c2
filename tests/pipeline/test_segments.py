"""Merged captures: a file spliced from captures taken years apart, in no order.

Three copies of tests/data/diagnose/one_sided.toml (A = 192.0.2.1 runs `keepalive 10 3`,
sends at 0, 10, …, 50, every one answered 30.05 ms later; 60 s captured, last frame at
59.915 s; 612 frames each) are spliced in the file order 2020, 2026, 2023: a six-year jump
forward, then three years back. By hand: three capture segments, two gaps; A's timeline
runs in each segment alone: 18 sent, 18 returned, no tick extrapolated (its next tick, at
60 s, falls after its segment's last frame), no transition, never down.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from analyzer.cli import main
from analyzer.read.capture import PcapWriter, open_capture
from analyzer.simulate import load_scenario, simulate

SCENARIO = Path(__file__).resolve().parents[1] / "data" / "diagnose" / "one_sided.toml"
T2020, T2023, T2026 = 1577836800.0, 1672531200.0, 1767225600.0
LAST = 59.915  # the last frame of each piece, seconds after its start
FRAMES = 612  # frames of each piece
A = "192.0.2.1"


def splice(tmp_path: Path, starts: list[float]) -> Path:
    """The pieces written one after the other into one pcap, in the order given."""
    scenario = load_scenario(SCENARIO)
    spliced = tmp_path / "merged.pcap"
    with PcapWriter(spliced) as writer:
        for index, start in enumerate(starts):
            piece = tmp_path / f"piece{index}.pcap"
            simulate(dataclasses.replace(scenario, start=start), piece)
            with open_capture(piece) as reader:
                for frame in reader:
                    writer.write(frame.time, frame.data)
    return spliced


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    tmp_path = tmp_path_factory.mktemp("segments")
    out = tmp_path / "merged.json"
    spliced = splice(tmp_path, [T2020, T2026, T2023])
    assert main(["analyze", str(spliced), "--format", "json", "-o", str(out)]) == 0
    result: dict[str, object] = json.loads(out.read_text())
    return result


def originator(document: dict[str, object]) -> dict[str, object]:
    tunnels: list[dict[str, object]] = document["tunnels"]  # type: ignore[assignment]
    found: list[dict[str, object]] = tunnels[0]["originators"]  # type: ignore[assignment]
    (a,) = found
    assert a["address"] == A
    return a


def test_nothing_is_extrapolated_across_the_years(document: dict[str, object]) -> None:
    a = originator(document)
    assert (a["sent"], a["returned"], a["extrapolated"]) == (18, 18, 0)
    assert (a["transitions"], a["down_seconds"], a["final_state"]) == ([], 0.0, "up")


def test_the_gaps_are_found_in_time_order(document: dict[str, object]) -> None:
    source: dict[str, object] = document["source"]  # type: ignore[assignment]
    assert source["gaps"] == [
        {"from": pytest.approx(T2020 + LAST, abs=1e-6), "to": T2023},
        {"from": pytest.approx(T2023 + LAST, abs=1e-6), "to": T2026},
    ]


def test_each_segment_ends_the_timeline_and_says_so(document: dict[str, object]) -> None:
    a = originator(document)
    assert a["segments"] == [
        {"start": T2020, "end": pytest.approx(T2020 + LAST, abs=1e-6)},
        {"start": T2023, "end": pytest.approx(T2023 + LAST, abs=1e-6)},
        {"start": T2026, "end": pytest.approx(T2026 + LAST, abs=1e-6)},
    ]
    notes: list[str] = a["notes"]  # type: ignore[assignment]
    ends = [n for n in notes if "where its capture segment ends" in n]
    assert [n.split(" UTC")[0] for n in ends] == [
        "timeline ends at 2020-01-01 00:00:59.915000",
        "timeline ends at 2023-01-01 00:00:59.915000",
    ]


def test_the_warnings_say_gap_and_time_going_back(document: dict[str, object]) -> None:
    source: dict[str, object] = document["source"]  # type: ignore[assignment]
    warnings: list[str] = source["warnings"]  # type: ignore[assignment]
    gaps = [w for w in warnings if w.startswith("no packet for ")]
    assert [w.split(" (")[0] for w in gaps] == [
        "no packet for 3.0 years",  # 2020-01-01 00:01 to 2023-01-01
        "no packet for 3.0 years",  # 2023-01-01 00:01 to 2026-01-01
    ]
    (back,) = [w for w in warnings if w.startswith("timestamps go back")]
    # The third piece (2023) starts at frame 2 × 612 + 1, after the 2026 piece's last frame.
    assert back.startswith("timestamps go back in time once (by up to 3.0 years, ")
    assert f"first at frame {2 * FRAMES + 1})" in back


def test_the_text_report_warns(tmp_path: Path) -> None:
    spliced = splice(tmp_path, [T2026, T2020])
    out = tmp_path / "merged.txt"
    assert main(["analyze", str(spliced), "-o", str(out)]) == 0
    text = out.read_text()
    assert "warning: no packet for 6.0 years (2020-01-01 00:00:59.915000 … 2026-01-01" in text
    assert "warning: timestamps go back in time once" in text
    assert "12 keepalives sent, 12 returned, 0 unanswered;" in text


def test_a_gap_shorter_than_the_threshold_is_extrapolated_as_before(tmp_path: Path) -> None:
    # Two pieces an hour and a half apart, with --capture-gap 7200: one segment. A's sends
    # at 0 … 50 are ticks 0 … 5 and its send at 5400 tick 540: ticks 6 … 539 (60 … 5390 s,
    # 534 of them) are extrapolated, counter 1, 2, 3 at 60, 70, 80; 90 finds 3 >= 3: down.
    spliced = splice(tmp_path, [T2020, T2020 + 5400.0])
    out = tmp_path / "close.json"
    assert (
        main(["analyze", str(spliced), "--capture-gap", "7200", "--format", "json", "-o", str(out)])
        == 0
    )
    a = originator(json.loads(out.read_text()))
    assert a["extrapolated"] == 534
    assert a["segments"] == []
    transitions: list[dict[str, object]] = a["transitions"]  # type: ignore[assignment]
    down, up = transitions
    assert (down["state"], down["time"]) == ("down", T2020 + 90.0)
    assert (up["state"], up["time"]) == ("up", pytest.approx(T2020 + 5400.03005, abs=1e-6))


def test_data_alone_going_back_in_time_is_warned_about() -> None:
    from analyzer.pipeline.analyze import analyze_frames
    from tests.builders import Capture

    cap = Capture()
    cap.data(100.0, A, "198.51.100.1")  # frame 1
    cap.data(101.0, A, "198.51.100.1")  # frame 2
    cap.data(5.0, A, "198.51.100.1")  # frame 3: 96 s back
    cap.data(6.0, A, "198.51.100.1")  # frame 4
    warnings = analyze_frames(cap.raw_frames()).source.warnings
    # The flow's earliest packet (frame 3) comes after its latest (frame 2) in the file.
    assert warnings == [
        "timestamps go back in time once (by up to 1.6 min, first at frame 3): the file "
        "looks merged from several captures; it is analysed in time order"
    ]


def test_the_timeline_table_shows_where_the_capture_stopped(tmp_path: Path) -> None:
    spliced = splice(tmp_path, [T2020, T2026])
    out = tmp_path / "merged.txt"
    assert main(["analyze", str(spliced), "-o", str(out)]) == 0
    text = " ".join(out.read_text().split())  # the event column may wrap
    # One gap, from the first part's last frame to the second's first.
    assert text.count("capture not running until") == 1
    assert (
        "2020-01-01 00:00:59.915000 capture not running until 2026-01-01 00:00:00.000000 (the "
        "timeline starts afresh)"
    ) in text


def test_what_if_replays_each_segment_on_its_own(tmp_path: Path) -> None:
    # leg_a_to_b.toml (A's keepalives lost from 30.5 s) cut to 45 s, spliced 2020 + 2026:
    # replayed under keepalive 2 3 the spliced file must give each piece's replay, summed;
    # across the six years nothing is replayed (the failure at the end of the 2020 piece
    # does not last until 2026).
    scenario = dataclasses.replace(
        load_scenario(SCENARIO.parent / "leg_a_to_b.toml"), duration=45.0
    )
    documents = []
    spliced = tmp_path / "spliced.pcap"
    with PcapWriter(spliced) as writer:
        for index, start in enumerate((T2020, T2026)):
            piece = tmp_path / f"piece{index}.pcap"
            simulate(dataclasses.replace(scenario, start=start), piece)
            with open_capture(piece) as reader:
                for frame in reader:
                    writer.write(frame.time, frame.data)
            documents.append(what_if(piece, tmp_path))
    whole = what_if(spliced, tmp_path)
    for address, replayed in whole.items():
        pieces = [d[address] for d in documents]
        assert replayed["sent"] == sum(p["sent"] for p in pieces)
        assert replayed["down_seconds"] == pytest.approx(sum(p["down_seconds"] for p in pieces))
        assert len(replayed["transitions"]) == sum(len(p["transitions"]) for p in pieces)
        for bound in ("min", "max"):
            assert replayed["blackholed_packets"][bound] == sum(
                p["blackholed_packets"][bound] for p in pieces
            )


def what_if(capture: Path, tmp_path: Path) -> dict[str, dict[str, Any]]:
    out = tmp_path / "what-if.json"
    arguments = ["analyze", str(capture), "--what-if", "keepalive 2 3", "--format", "json"]
    assert main([*arguments, "-o", str(out)]) == 0
    tunnels = json.loads(out.read_text())["tunnels"]
    return {o["address"]: o["what_if"] for o in tunnels[0]["originators"]}


def test_a_failure_at_a_segment_end_does_not_run_on_across_the_gap(tmp_path: Path) -> None:
    # The same 45 s of leg_a_to_b.toml in 2020 and 2026: A's keepalives go unanswered from
    # 35 s to the end of each piece, so each piece has its own leg-down, "still failing"
    # when its part of the capture ends (the 2020 piece's segment in the last seconds
    # before 45 s) — the 2020 one is not "answered again" in 2026.
    scenario = dataclasses.replace(
        load_scenario(SCENARIO.parent / "leg_a_to_b.toml"), duration=45.0
    )
    spliced = tmp_path / "spliced.pcap"
    with PcapWriter(spliced) as writer:
        for index, start in enumerate((T2020, T2026)):
            piece = tmp_path / f"piece{index}.pcap"
            simulate(dataclasses.replace(scenario, start=start), piece)
            with open_capture(piece) as reader:
                for frame in reader:
                    writer.write(frame.time, frame.data)
    out = tmp_path / "spliced.json"
    assert main(["analyze", str(spliced), "--format", "json", "-o", str(out)]) == 0
    (tunnel,) = json.loads(out.read_text())["tunnels"]
    legs = [d for d in tunnel["diagnoses"] if d["code"] == "leg-down"]
    assert [d["time"] for d in legs] == [T2020 + 35.0, T2026 + 35.0]
    assert "still failing when its capture segment ends at 00:00:4" in legs[0]["message"]
    assert "still failing when the capture ends" in legs[1]["message"]


@pytest.mark.parametrize("reader", ["auto", "python"])
def test_a_step_back_shorter_than_any_keepalive_gap_is_warned(tmp_path: Path, reader: str) -> None:
    # Ten data packets of one flow, 1 s apart, the last five stamped 3 s early (a file merged
    # from two captures that overlap): times 0 1 2 3 4 | 2 3 4 5 6. Frame 6 steps back from
    # 4 s to 2 s. No keepalive at all, so only the data can show it.
    from analyzer.read.packet import build_ethernet, build_gre_data

    pcap = tmp_path / "overlap.pcap"
    with PcapWriter(pcap) as writer:
        for index, offset in enumerate([0, 1, 2, 3, 4, 2, 3, 4, 5, 6]):
            packet = build_gre_data("192.0.2.1", "198.51.100.1", ip_id=index)
            writer.write(T2026 + offset, build_ethernet(packet))
    out = tmp_path / "overlap.json"
    argv = ["analyze", str(pcap), "--format", "json", "-o", str(out), "--reader", reader]
    assert main(argv) == 0
    warnings: list[str] = json.loads(out.read_text())["source"]["warnings"]
    assert [w for w in warnings if w.startswith("timestamps go back")] == [
        "timestamps go back in time once (by up to 2.000 s, first at frame 6): the file looks "
        "merged from several captures; it is analysed in time order"
    ]


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ([0, 1, 2, 3, 4, 2, 3], [10, 11]),  # the step back inside the first file
        ([0, 1, 2, 3, 4], [2, 3, 4, 5, 6]),  # the second file overlaps the first
    ],
)
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_step_back_in_a_ring_of_files_is_warned_as_in_one_file(
    tmp_path: Path, first: list[int], second: list[int], jobs: str
) -> None:
    # Either way frame 6 (the 6th packet of the files in order) steps back from 4 s to 2 s.
    from analyzer.read.packet import build_ethernet, build_gre_data

    ring = tmp_path / "ring"
    ring.mkdir()
    for name, offsets in (("a.pcap", first), ("b.pcap", second)):
        with PcapWriter(ring / name) as writer:
            for index, offset in enumerate(offsets):
                packet = build_gre_data("192.0.2.1", "198.51.100.1", ip_id=index)
                writer.write(T2026 + offset, build_ethernet(packet))
    out = tmp_path / "ring.json"
    assert main(["analyze", str(ring), "--jobs", jobs, "--format", "json", "-o", str(out)]) == 0
    warnings: list[str] = json.loads(out.read_text())["source"]["warnings"]
    assert [w for w in warnings if w.startswith("timestamps go back")] == [
        "timestamps go back in time once (by up to 2.000 s, first at frame 6): the file looks "
        "merged from several captures; it is analysed in time order"
    ]
