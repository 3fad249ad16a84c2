"""Vendor profiles (SPEC.md §3): defaults, state machines and the `auto` fingerprint.

Each simulated scenario works its timeline out by hand in its header comment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from analyzer.cli import main
from analyzer.keepalive.analysis import Settings
from analyzer.keepalive.model import Analysis, OriginatorResult
from analyzer.keepalive.profiles import PROFILES, parse_profile_option
from analyzer.keepalive.state import HoldTimerMachine, LineState
from analyzer.pipeline.analyze import analyze_frames
from analyzer.read.capture import open_capture
from analyzer.simulate import load_scenario, simulate

DATA = Path(__file__).resolve().parents[1] / "data" / "diagnose"
CAPTURES = Path(__file__).resolve().parents[2] / "captures"
T0 = 1764115200.0
A, B = "192.0.2.1", "198.51.100.1"


def at(t: float) -> Any:
    return pytest.approx(T0 + t, abs=1e-6)


def analyze(pcap: Path, *profiles: tuple[str | None, str], **settings: Any) -> Analysis:
    with open_capture(pcap) as reader:
        return analyze_frames(reader, Settings(profiles=profiles, **settings))


def simulated(name: str, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    result = simulate(load_scenario(DATA / f"{name}.toml"), tmp_path / f"{name}.pcap")
    return tmp_path / f"{name}.pcap", result.truth


def first(analysis: Analysis) -> OriginatorResult:
    return analysis.tunnels[0].originators[0]


def changes(o: OriginatorResult) -> list[tuple[str, Any]]:
    return [(t.state.value, t.time) for t in o.transitions]


def truth_changes(truth: dict[str, Any]) -> list[tuple[str, Any]]:
    end = truth["tunnels"][0]["endpoints"][0]
    return [(t["state"], t["time"]) for t in end["transitions"]]


# ----------------------------------------------------------------------- state machines


def test_hold_timer_machine_goes_down_when_no_reply_came_for_hold_seconds() -> None:
    machine = HoldTimerMachine(retries=5, hold=5.0)
    machine.send(0.0)
    machine.reply(0.02)  # deadline 5.02
    assert machine.expire(5.0) is None
    down = machine.expire(5.5)
    assert down is not None and (down.time, down.state, down.frame) == (5.02, LineState.DOWN, None)
    step = machine.reply(6.0, 9)
    assert step.transition is not None and step.transition.state is LineState.UP


def test_openbsd_hold_down_doubles_with_each_flap() -> None:
    """count 2: first hold-down needs 1 + 2 replies, the next 1 + 4 (hold_max doubled)."""
    machine = HoldTimerMachine(retries=2, hold=2.0, holddown=True)
    machine.send(0.0)
    assert machine.expire(2.0) is not None  # no reply for 2 s: down
    ups = [machine.reply(t).transition for t in (3.0, 3.5, 4.0)]
    assert [u is not None for u in ups] == [False, False, True]
    assert machine.expire(6.0) is not None  # 4.0 + 2: down again
    ups = [machine.reply(t).transition for t in (7.0, 7.5, 8.0, 8.5, 9.0)]
    assert [u is not None for u in ups] == [False, False, False, False, True]


# --------------------------------------------------------------------- simulated vendors


def test_juniper(tmp_path: Path) -> None:
    pcap, truth = simulated("profile_juniper", tmp_path)
    assert truth_changes(truth) == [("down", at(15.02005)), ("up", at(21.02005))]
    o = first(analyze(pcap, (None, "juniper")))
    assert (o.profile, o.profile_source, o.period, o.retries, o.hold_time) == (
        "juniper",
        "cli",
        1.0,
        5,
        5.0,
    )
    assert changes(o) == [("down", at(15.02005)), ("up", at(21.02005))]
    assert o.transitions[0].frame is None
    # Without the profile: IOS, retries 3, down at the tick at 14.
    assert changes(first(analyze(pcap)))[0] == ("down", at(14))


def test_openbsd_auto(tmp_path: Path) -> None:
    pcap, truth = simulated("profile_openbsd", tmp_path)
    assert truth_changes(truth) == [("down", at(16.02005)), ("up", at(28.02005))]
    o = first(analyze(pcap, (None, "auto")))
    assert (o.profile, o.profile_source, o.period, o.retries, o.hold_time) == (
        "openbsd",
        "auto",
        2.0,
        3,
        6.0,
    )
    assert any("16-byte" in reason for reason in o.profile_evidence)
    assert changes(o) == [("down", at(16.02005)), ("up", at(28.02005))]


def test_mikrotik_auto_uses_its_default_retries(tmp_path: Path) -> None:
    pcap, truth = simulated("profile_mikrotik", tmp_path)
    assert truth_changes(truth) == [("down", at(140)), ("up", at(150.02005))]
    o = first(analyze(pcap, (None, "auto")))
    assert (o.profile, o.retries, o.retries_source.value) == ("mikrotik", 10, "default")
    assert changes(o) == [("down", at(140)), ("up", at(150.02005))]
    assert changes(first(analyze(pcap)))[0] == ("down", at(70))  # IOS default 3


def test_huawei_auto(tmp_path: Path) -> None:
    pcap, _ = simulated("profile_huawei", tmp_path)
    o = first(analyze(pcap, (None, "auto")))
    assert (o.profile, o.period, o.retries) == ("huawei", 5.0, 3)
    assert o.profile_evidence == ["period 5 s (Huawei VRP's default)"]


@pytest.mark.parametrize(
    ("capture", "reason"),
    [
        ("keyed.pcap", "Cisco MetaData (TrustSec) header before the inner IPv4"),
        ("healthy.pcap", "inner IP ID = outer IP ID − 1 (one IOS counter)"),
    ],
)
def test_cisco_auto(capture: str, reason: str) -> None:
    for o in analyze(CAPTURES / capture, (None, "auto")).tunnels[0].originators:
        assert (o.profile, o.profile_source) == ("cisco", "auto")
        assert reason in o.profile_evidence


def test_without_profile_nothing_changes() -> None:
    o = first(analyze(CAPTURES / "outage.pcap"))
    assert (o.profile, o.profile_source, o.hold_time) == ("cisco", "default", None)


def test_profile_for_one_address(tmp_path: Path) -> None:
    pcap, _ = simulated("profile_juniper", tmp_path)
    assert first(analyze(pcap, (B, "juniper"))).profile == "cisco"
    assert first(analyze(pcap, (None, "cisco"), (A, "juniper"))).profile == "juniper"


def test_linux_reflector_peer_makes_one_sided_expected(tmp_path: Path) -> None:
    simulate(load_scenario(DATA / "one_sided.toml"), tmp_path / "o.pcap")
    analysis = analyze(tmp_path / "o.pcap", (B, "linux-reflector"))
    (diagnosis,) = [d for d in analysis.tunnels[0].diagnoses if d.code == "one-sided"]
    assert diagnosis.severity == "info"
    assert "Linux" in str(diagnosis.message)


def test_linux_reflector_that_originates_is_noted() -> None:
    o = first(analyze(CAPTURES / "healthy.pcap", (None, "linux-reflector")))
    assert o.profile == "linux-reflector"
    assert any("never originates" in note for note in o.notes)
    assert o.retries == 3


def test_what_if_runs_the_profiles_machine(tmp_path: Path) -> None:
    """juniper, what-if keepalive 1 3 (hold 3 s): the failure runs from 11 (first unanswered)
    to 21 (first answered request); the last reply before it came at 10.02005, so the timer
    fires at 13.02005; ticks 21 … answered: up at 21.02005."""
    pcap, _ = simulated("profile_juniper", tmp_path)
    o = first(analyze(pcap, (None, "juniper"), what_if="keepalive 1 3"))
    assert o.what_if is not None
    assert o.what_if.hold_time == 3.0
    assert [(t.state.value, t.time) for t in o.what_if.transitions] == [
        ("down", at(13.02005)),
        ("up", at(21.02005)),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("auto", (None, "auto")),
        ("MikroTik", (None, "mikrotik")),
        ("192.0.2.1=openbsd", (A, "openbsd")),
    ],
)
def test_parse_profile_option(text: str, expected: tuple[str | None, str]) -> None:
    assert parse_profile_option(text) == expected


@pytest.mark.parametrize("text", ["vyos", "nothing=cisco", "192.0.2.1=vyos"])
def test_bad_profile_option(text: str) -> None:
    with pytest.raises(ValueError):
        parse_profile_option(text)


def test_every_profile_has_its_table_row() -> None:
    assert {n: (p.default_period, p.default_retries) for n, p in PROFILES.items()} == {
        "cisco": (10.0, 3),
        "mikrotik": (10.0, 10),
        "huawei": (5.0, 3),
        "juniper": (1.0, 5),
        "openbsd": (10.0, 3),
        "linux-reflector": (10.0, 3),
    }


def test_cli_profile_json_and_text(tmp_path: Path) -> None:
    pcap, _ = simulated("profile_openbsd", tmp_path)
    out = tmp_path / "o.json"
    assert (
        main(["analyze", str(pcap), "--profile", "auto", "--format", "json", "-o", str(out)]) == 0
    )
    o = json.loads(out.read_text())["tunnels"][0]["originators"][0]
    assert (o["profile"], o["profile_source"], o["hold_time"]) == ("openbsd", "auto", 6.0)
    assert o["transitions"][0]["state"] == "down"
    assert o["transitions"][0]["frame"] is None
    text = tmp_path / "o.txt"
    assert main(["analyze", str(pcap), "--profile", "auto", "-o", str(text)]) == 0
    report = text.read_text()
    assert "profile openbsd (auto: 16-byte keepalive payload" in report
    assert "LINE PROTOCOL DOWN (no reply for 6 s)" in report
