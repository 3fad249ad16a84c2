"""Diagnoses, each proven by a simulated capture (tests/data/diagnose/*.toml).

Every scenario file works its timeline out by hand in its header comment; the expected
values below come from there (and from captures/README.md for the demo captures).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from analyzer.cli import main
from analyzer.config import load_config
from analyzer.keepalive.analysis import Settings
from analyzer.keepalive.model import Analysis, Diagnosis, OriginatorResult
from analyzer.keepalive.retries import ordinal
from analyzer.pipeline.analyze import analyze_frames
from analyzer.read.capture import open_capture
from analyzer.simulate import load_scenario, simulate

DATA = Path(__file__).resolve().parents[1] / "data" / "diagnose"
CAPTURES = Path(__file__).resolve().parents[2] / "captures"
T0 = 1764115200.0
A, B = "192.0.2.1", "198.51.100.1"


def at(t: float) -> Any:
    """T0 + t to the microsecond."""
    return pytest.approx(T0 + t, abs=1e-6)


def simulated(name: str, tmp_path: Path, **changes: Any) -> Path:
    scenario = load_scenario(DATA / f"{name}.toml")
    if changes:
        scenario = dataclasses.replace(scenario, **changes)
    pcap = tmp_path / f"{name}.pcap"
    simulate(scenario, pcap)
    return pcap


def analyze(pcap: Path, settings: Settings | None = None) -> Analysis:
    with open_capture(pcap) as reader:
        return analyze_frames(reader, settings or Settings(), files=[str(pcap)])


def run(name: str, tmp_path: Path, settings: Settings | None = None, **changes: Any) -> Analysis:
    return analyze(simulated(name, tmp_path, **changes), settings)


def found(analysis: Analysis, code: str) -> list[Diagnosis]:
    return [d for t in analysis.tunnels for d in t.diagnoses if d.code == code]


def originator(analysis: Analysis, address: str) -> OriginatorResult:
    return next(o for t in analysis.tunnels for o in t.originators if o.address == address)


def sent_frame(o: OriginatorResult, t: float) -> int | None:
    return next(e.frame for e in o.events if e.role.value == "sent" and e.time == at(t))


# ----------------------------------------------------------------------------- leg-down


def test_a_to_b_leg_down_while_b_still_arrives(tmp_path: Path) -> None:
    analysis = run("leg_a_to_b", tmp_path)
    (diagnosis,) = found(analysis, "leg-down")
    assert (diagnosis.severity, diagnosis.originator) == ("error", A)
    assert diagnosis.time == at(35)
    details = diagnosis.details
    assert (details["failed"], details["working"], details["unknown"]) == ([[A, B]], [[B, A]], [])
    # B goes down at its 4th lost keepalive: 47.01 seen at A (after A's last answered 30),
    # 52.01 at the latest (counting from A's first unanswered send at 35).
    assert details["peer_down_estimate"] == {"min": at(47.01), "max": at(52.01)}
    a = originator(analysis, A)
    assert sent_frame(a, 35) in diagnosis.evidence
    assert a.transitions[0].frame in diagnosis.evidence  # A down at 50 (retries 3)
    assert a.transitions[0].time == at(50)
    # The capture shows A reflecting every keepalive of B: B looks healthy here, which is
    # why the diagnosis has to say that B went down too.
    assert originator(analysis, B).transitions == []
    assert f"{B}'s line protocol goes down as well" in diagnosis.message


def test_the_peer_that_looks_healthy_from_a_carries_a_note_that_it_went_down(
    tmp_path: Path,
) -> None:
    # B's own figures (every keepalive returned, no down) are what A's side sees leave; the
    # note beside them gives the down the leg-down diagnosis worked out (47.01-52.01 s).
    b = originator(run("leg_a_to_b", tmp_path), B)
    (note,) = [n for n in b.notes if "see leg-down" in n]
    assert f"after 00:00:30.000 they crossed the failed {A} → {B} leg" in note
    assert "went down about 00:00:47.010–00:00:52.010" in note
    assert originator(run("leg_a_to_b", tmp_path), A).notes == []


def test_b_to_a_leg_down_seen_from_a_cannot_judge_the_other_leg(tmp_path: Path) -> None:
    analysis = run("leg_b_to_a", tmp_path)
    (diagnosis,) = found(analysis, "leg-down")
    assert (diagnosis.originator, diagnosis.time) == (A, at(35))
    details = diagnosis.details
    assert (details["failed"], details["working"], details["unknown"]) == ([[B, A]], [], [[A, B]])


def test_the_mirror_case_seen_from_b(tmp_path: Path) -> None:
    analysis = run("leg_b_to_a", tmp_path, vantage="b")
    (diagnosis,) = found(analysis, "leg-down")
    assert (diagnosis.originator, diagnosis.time) == (B, at(32))
    details = diagnosis.details
    assert (details["failed"], details["working"]) == ([[B, A]], [[A, B]])
    assert details["peer_down_estimate"] == {"min": at(45.01), "max": at(50.01)}


def test_both_legs_down_look_like_the_return_leg_from_one_vantage(tmp_path: Path) -> None:
    """outage.pcap: both directions fail (captures/README.md); at A only B → A is certain."""
    analysis = analyze(CAPTURES / "outage.pcap")
    (diagnosis,) = found(analysis, "leg-down")
    assert (diagnosis.originator, diagnosis.time) == (A, at(35))
    details = diagnosis.details
    assert (details["failed"], details["unknown"]) == ([[B, A]], [[A, B]])
    assert details["end"] == at(75.02005)


# ---------------------------------------------------------------- one-sided, filtered


def test_one_sided(tmp_path: Path) -> None:
    analysis = run("one_sided", tmp_path)
    (diagnosis,) = found(analysis, "one-sided")
    assert (diagnosis.severity, diagnosis.originator) == ("warning", A)
    assert diagnosis.details["silent"] == B
    assert found(analysis, "leg-down") == []


def test_two_sided_tunnel_is_not_one_sided() -> None:
    assert found(analyze(CAPTURES / "healthy.pcap"), "one-sided") == []


def test_reply_filtered(tmp_path: Path) -> None:
    analysis = run("reply_filtered", tmp_path)
    (diagnosis,) = found(analysis, "reply-filtered")
    assert (diagnosis.severity, diagnosis.originator, diagnosis.time) == (
        "error",
        A,
        at(0),
    )
    assert diagnosis.details["unanswered"] == 12
    assert diagnosis.details["peer_up"] is True
    assert "uRPF" in diagnosis.message
    assert found(analysis, "leg-down") == []
    a = originator(analysis, A)
    assert [(t.state.value, t.time) for t in a.transitions] == [("down", at(15))]


# --------------------------------------------------------------------- addresses, keys


def test_mikrotik_behind_nat(tmp_path: Path) -> None:
    analysis = run("nat", tmp_path)
    (diagnosis,) = found(analysis, "address-mismatch")
    assert (diagnosis.severity, diagnosis.originator) == ("warning", "203.0.113.5")
    details = diagnosis.details
    assert (details["inner_src"], details["inner_dst"], details["pattern"]) == (
        B,
        "10.0.0.2",
        "nat",
    )
    assert "strict reflector" in diagnosis.message
    assert "203.0.113.5 is behind NAT" in diagnosis.message


def test_overlay_addresses(tmp_path: Path) -> None:
    analysis = run("overlay", tmp_path)
    (diagnosis,) = found(analysis, "address-mismatch")
    assert diagnosis.originator == A
    details = diagnosis.details
    assert (details["inner_src"], details["inner_dst"], details["pattern"]) == (
        "169.254.1.2",
        "169.254.1.1",
        "overlay",
    )


def test_inner_key_differs_from_outer(tmp_path: Path) -> None:
    analysis = run("key_inner", tmp_path)
    (diagnosis,) = [d for d in found(analysis, "key-mismatch") if d.originator == A]
    assert diagnosis.severity == "error"
    assert (diagnosis.details["outer_key"], diagnosis.details["inner_keys"]) == (42, [43])


def test_inner_key_mismatch_takes_the_real_router_down(tmp_path: Path) -> None:
    """The simulated router drops the key-43 replies: down at 15 (scenario comment)."""
    result = simulate(load_scenario(DATA / "key_inner.toml"), tmp_path / "k.pcap")
    tunnels: Any = result.truth["tunnels"]
    a = tunnels[0]["endpoints"][0]
    assert [(t["state"], t["time"]) for t in a["transitions"]] == [("down", T0 + 15)]


def test_keys_differ_between_directions(tmp_path: Path) -> None:
    analysis = run("key_directions", tmp_path)
    assert sorted(t.key for t in analysis.tunnels if t.key is not None) == [42, 43]
    for tunnel in analysis.tunnels:
        codes = [d.code for d in tunnel.diagnoses]
        assert "key-mismatch" in codes
        assert "leg-down" not in codes and "one-sided" not in codes
    first = found(analysis, "key-mismatch")[0]
    assert first.details["keys"] == {A: [42], B: [43]}


# ----------------------------------------------------------------- period and retries


def test_jitter_is_no_period_mismatch(tmp_path: Path) -> None:
    analysis = run("jitter", tmp_path, Settings(period=5))
    assert found(analysis, "period-mismatch") == []


def test_period_mismatch(tmp_path: Path) -> None:
    analysis = run("jitter", tmp_path, Settings(period=10))
    (diagnosis,) = found(analysis, "period-mismatch")
    assert diagnosis.details["configured"] == 10
    assert 4.6 <= diagnosis.details["observed"] <= 5.4


def test_retries_unknown_for_the_far_end() -> None:
    """198.51.100.1's data vanishes with its keepalives (both lost on the way): no retries."""
    analysis = analyze(
        CAPTURES / "outage.pcap", Settings(config=load_config(CAPTURES / "router-a.cfg"))
    )
    (diagnosis,) = found(analysis, "retries-unknown")
    assert (diagnosis.originator, diagnosis.severity) == (B, "info")


# ------------------------------------------------------------ flapping, late detection


def test_flapping(tmp_path: Path) -> None:
    analysis = run("flapping", tmp_path, Settings(retries=2))
    (diagnosis,) = found(analysis, "flapping")
    assert diagnosis.time == at(16)
    assert diagnosis.details["transitions"] == 6
    assert "3 downs" in diagnosis.message


def test_flapping_threshold_is_an_option(tmp_path: Path) -> None:
    analysis = run("flapping", tmp_path, Settings(retries=2, flap_transitions=6))
    assert found(analysis, "flapping") == []
    analysis = run("flapping", tmp_path, Settings(retries=2, flap_minutes=0.5))
    # Within 30 s: 16, 22.02005, 36, 42.02005 (4, not more than 4).
    assert found(analysis, "flapping") == []


def test_late_detection_suggests_a_faster_setting() -> None:
    """outage.pcap, keepalive 5 4: blackhole 20 s (200 packets at 10/s, [35, 55)).

    keepalive 2 3 from A's first tick at 0: ticks 36, 38, 40 unanswered (failure from 35
    to the request at 75), the tick at 42 takes the line down: [35, 42) = 7 s, 70 packets.
    """
    analysis = analyze(
        CAPTURES / "outage.pcap", Settings(config=load_config(CAPTURES / "router-a.cfg"))
    )
    (diagnosis,) = found(analysis, "late-detection")
    assert diagnosis.originator == A
    assert "keepalive 2 3 would have cut the blackhole from 20 s to 7 s" in diagnosis.message
    details = diagnosis.details
    assert (details["baseline_packets"], details["blackholed_packets"]) == (200, 70)
    assert details["blackhole_seconds"] == pytest.approx(7.0)


def test_late_detection_threshold() -> None:
    analysis = analyze(
        CAPTURES / "outage.pcap",
        Settings(config=load_config(CAPTURES / "router-a.cfg"), late_detection_packets=200),
    )
    assert found(analysis, "late-detection") == []


def _outage_cut_at_47(tmp_path: Path) -> Path:
    """captures/outage.toml stopped at 47 s: A's sends at 35, 40 and 45 go unanswered
    (counter 3 of retries 4); the send at 55 that would take it down is never captured."""
    scenario = dataclasses.replace(load_scenario(CAPTURES / "outage.toml"), duration=47.0)
    pcap = tmp_path / "cut.pcap"
    simulate(scenario, pcap)
    return pcap


def _spliced_two_years_later(tmp_path: Path) -> Path:
    """The cut outage, then the same tunnel healthy two years later: two capture segments,
    the first ending at its last packet, within the last 0.1 s before 47 s (10 data packets
    a second each way)."""
    scenario = load_scenario(CAPTURES / "outage.toml")
    later = dataclasses.replace(
        scenario,
        start=scenario.start + 2 * 365 * 86400.0,
        duration=60.0,
        tunnels=[dataclasses.replace(scenario.tunnels[0], outages=[])],
    )
    second = tmp_path / "later.pcap"
    simulate(later, second)
    pcap = tmp_path / "spliced.pcap"
    pcap.write_bytes(_outage_cut_at_47(tmp_path).read_bytes() + second.read_bytes()[24:])
    return pcap


def test_a_failure_the_capture_ends_in_was_not_yet_noticed(tmp_path: Path) -> None:
    settings = Settings(config=load_config(CAPTURES / "router-a.cfg"))
    (diagnosis,) = found(analyze(_outage_cut_at_47(tmp_path), settings), "late-detection")
    assert "with its line protocol still up when the capture ends" in diagnosis.message
    assert "before its line protocol noticed" not in diagnosis.message


def test_a_failure_its_capture_segment_ends_in_is_said_so(tmp_path: Path) -> None:
    settings = Settings(config=load_config(CAPTURES / "router-a.cfg"))
    analysis = analyze(_spliced_two_years_later(tmp_path), settings)
    (late,) = found(analysis, "late-detection")
    assert "line protocol still up when its capture segment ends at 00:00:46.9" in late.message
    (leg,) = found(analysis, "leg-down")
    assert "still failing when its capture segment ends at 00:00:46.9" in leg.message


def test_the_suggestion_replays_each_capture_segment_on_its_own(tmp_path: Path) -> None:
    """The spliced capture's first segment ends at 46.95 s (its last data packet; data at
    x.x5 s, 10 a second). A's failure runs from its send at 35 to that end, never across
    the gap into the healthy segment two years later.

    keepalive 5 4 (the baseline): never down within the segment: [35, 46.95) = 11.95 s,
    data at 35.05 … 46.85 = 119 packets. keepalive 2 3: ticks 36, 38, 40 unanswered, down
    at 42: [35, 42) = 7 s, data at 35.05 … 41.95 = 70 packets.
    """
    settings = Settings(config=load_config(CAPTURES / "router-a.cfg"))
    (late,) = found(analyze(_spliced_two_years_later(tmp_path), settings), "late-detection")
    assert "keepalive 2 3 would have cut the blackhole from 12 s to 7 s" in late.message
    assert (late.details["baseline_packets"], late.details["blackholed_packets"]) == (119, 70)
    assert late.details["baseline_seconds"] == pytest.approx(11.95)


# --------------------------------------------------------------------------- outputs


def test_healthy_capture_has_no_diagnoses() -> None:
    assert all(t.diagnoses == [] for t in analyze(CAPTURES / "healthy.pcap").tunnels)


def test_json_and_text_carry_the_diagnoses(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    assert main(["analyze", str(CAPTURES / "outage.pcap"), "--format", "json", "-o", str(out)]) == 0
    (tunnel,) = json.loads(out.read_text())["tunnels"]
    leg = next(d for d in tunnel["diagnoses"] if d["code"] == "leg-down")
    assert set(leg) >= {"code", "severity", "message", "time", "evidence"}
    assert leg["time"] == at(35)
    assert all(isinstance(frame, int) for frame in leg["evidence"])
    text = tmp_path / "out.txt"
    assert main(["analyze", str(CAPTURES / "outage.pcap"), "-o", str(text)]) == 0
    report = text.read_text()
    assert "Diagnoses:" in report
    assert "error leg-down at 00:00:35" in report


def test_diagnoses_can_be_left_out() -> None:
    analysis = analyze(CAPTURES / "outage.pcap", Settings(diagnose=False))
    assert all(t.diagnoses == [] for t in analysis.tunnels)


@pytest.mark.parametrize(
    ("number", "text"), [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (22, "22nd")]
)
def test_ordinal(number: int, text: str) -> None:
    assert ordinal(number) == text
