"""--what-if: the same capture replayed under another setting (hand-worked on outage.pcap).

outage.pcap (captures/README.md), A = 192.0.2.1 with keepalive 5 4 from router-a.cfg: A's
sends at 35 … 70 go unanswered, the reply to 75 arrives at 75.02005 (round trip 20.05 ms);
data 10/s at 0.05, 0.15, … while A's line is up (to 55 and from 75.05). The failure lasts
from 35 (the first unanswered send; `max`: right after the last answered one, 30) to 75,
when the first answered request left.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from analyzer.cli import main
from analyzer.config import load_config
from analyzer.diagnose.whatif import parse_setting
from analyzer.keepalive.analysis import Settings
from analyzer.keepalive.model import OriginatorResult
from analyzer.pipeline.analyze import analyze_frames
from analyzer.read.capture import open_capture

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
T0 = 1764115200.0
A = "192.0.2.1"


def at(t: float) -> Any:
    return pytest.approx(T0 + t, abs=1e-6)


def replayed(setting: str) -> OriginatorResult:
    config = load_config(CAPTURES / "router-a.cfg")
    with open_capture(CAPTURES / "outage.pcap") as reader:
        analysis = analyze_frames(reader, Settings(config=config, what_if=setting))
    return next(o for o in analysis.tunnels[0].originators if o.address == A)


def test_faster_setting() -> None:
    """keepalive 2 3, ticks 0, 2, …, 98 (50): 36, 38, 40 unanswered, 42 finds 3 >= 3: down.

    76 is the first tick after the failure, answered at 76.02005: up. Blackhole [35, 42):
    7 s, 70 packets. From 30 instead: 32, 34, 36 unanswered, down at 38: [30, 38), 8 s, 80.
    The analysed setting (keepalive 5 4) gives [35, 55) and [30, 55): 200-250 in 20-25 s.
    """
    what_if = replayed("keepalive 2 3").what_if
    assert what_if is not None
    assert (what_if.setting, what_if.period, what_if.retries, what_if.sent) == (
        "keepalive 2 3",
        2.0,
        3,
        50,
    )
    assert [(t.state.value, t.time) for t in what_if.transitions] == [
        ("down", at(42)),
        ("up", at(76.02005)),
    ]
    assert what_if.down_seconds == pytest.approx(34.02005)
    assert (what_if.blackholed_packets.min, what_if.blackholed_packets.max) == (70, 80)
    assert what_if.blackhole_seconds.min == pytest.approx(7.0)
    assert what_if.blackhole_seconds.max == pytest.approx(8.0, abs=1e-5)
    assert not what_if.estimated
    assert (what_if.baseline_packets.min, what_if.baseline_packets.max) == (200, 250)
    assert what_if.baseline_seconds.min == pytest.approx(20.0)
    assert what_if.baseline_transitions == 2


def test_slower_setting_estimates_data_the_capture_lacks() -> None:
    """keepalive 10 5: ticks 0, 10, …, 90; 40, 50, 60, 70 unanswered (counter 4 < 5), 80
    answered: no transition. Blackhole [35, 75): 40 s; the capture has 200 packets in
    [35, 55) and none in [55, 75) where the real line was down, estimated at the rate while
    up: 800 packets / (99.96 s - 20.02005 s down) x 20 s = 200.15. Total 400 (estimated).
    From 30: 250 + 200.15 = 450 over 45 s.
    """
    what_if = replayed("10 5").what_if
    assert what_if is not None
    assert (what_if.setting, what_if.transitions, what_if.sent) == ("keepalive 10 5", (), 10)
    assert (what_if.blackholed_packets.min, what_if.blackholed_packets.max) == (400, 450)
    assert what_if.blackhole_seconds.min == pytest.approx(40.0)
    assert what_if.estimated


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("keepalive 2 3", (2.0, 3)),
        ("2 3", (2.0, 3)),
        ("10s,10", (10.0, 10)),
        ("KEEPALIVE 1.5 4", (1.5, 4)),
    ],
)
def test_parse_setting(text: str, expected: tuple[float, int]) -> None:
    assert parse_setting(text) == expected


@pytest.mark.parametrize(
    "text", ["keepalive", "2", "keepalive 2 0", "keepalive 0.5 3", "keepalive 2 256", "x y"]
)
def test_bad_setting(text: str) -> None:
    with pytest.raises(ValueError):
        parse_setting(text)


def test_cli_what_if_json_and_text(tmp_path: Path) -> None:
    base = ["analyze", str(CAPTURES / "outage.pcap"), "--config", str(CAPTURES / "router-a.cfg")]
    out = tmp_path / "o.json"
    assert main([*base, "--what-if", "keepalive 2 3", "--format", "json", "-o", str(out)]) == 0
    document = json.loads(out.read_text())
    a = next(o for o in document["tunnels"][0]["originators"] if o["address"] == A)
    what_if = a["what_if"]
    assert what_if["setting"] == "keepalive 2 3"
    assert [(t["state"], t["time"]) for t in what_if["transitions"]] == [
        ("down", at(42)),
        ("up", at(76.02005)),
    ]
    assert what_if["blackholed_packets"] == {"min": 70, "max": 80}
    assert what_if["baseline"]["blackholed_packets"] == {"min": 200, "max": 250}
    text = tmp_path / "o.txt"
    assert main([*base, "--what-if", "keepalive 2 3", "-o", str(text)]) == 0
    report = text.read_text()
    assert "What if keepalive 2 3:" in report
    assert "blackholed 70-80 data packets" in report


def test_without_what_if_the_field_is_null(tmp_path: Path) -> None:
    out = tmp_path / "o.json"
    assert main(["analyze", str(CAPTURES / "outage.pcap"), "--format", "json", "-o", str(out)]) == 0
    document = json.loads(out.read_text())
    assert all(o["what_if"] is None for o in document["tunnels"][0]["originators"])


def test_bad_what_if_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["analyze", str(CAPTURES / "outage.pcap"), "--what-if", "fast please"])
    assert exit_info.value.code == 2
    assert "what-if setting" in capsys.readouterr().err


def test_a_gap_of_years_replays_quickly() -> None:
    """Sends at 0, 10, 20 (answered 20 ms later), then nothing for ten years (a data packet
    at the end), with --capture-gap longer than that so the silence counts as an outage.
    The failure runs from the first missing tick (30) to the end. keepalive 1 3 from the
    first tick (0): 30, 31, 32 unanswered, the tick at 33 finds 3 >= 3: down; then
    315 360 001 ticks in all, which the replay must not walk one by one."""
    from tests.builders import Capture

    cap = Capture()
    for k in range(3):
        request = cap.request(10.0 * k, A, "198.51.100.1")
        cap.reply(10.0 * k + 0.02, request)
    years = 10 * 365 * 86400.0
    cap.data(years, "198.51.100.1", A)
    settings = Settings(what_if="keepalive 1 3", capture_gap=2 * years)
    analysis = analyze_frames(cap.raw_frames(), settings)
    o = next(o for o in analysis.tunnels[0].originators if o.address == A)
    assert o.what_if is not None
    assert [(t.state.value, t.time) for t in o.what_if.transitions] == [("down", at(33))]
    assert o.what_if.sent == 315_360_001


def test_a_segment_s_data_rate_estimate_uses_only_its_own_data() -> None:
    """Two capture segments a day apart. The first: A's sends every 10 s from 0 to 100,
    answered 20 ms later but for 30 … 80 (counter 3 after 50: the send at 60 takes the line
    down; up again at 90.02); one data packet a second (x.5 s) while up: 70 packets in 70 s
    up. The second: healthy, 10 data packets a second for 100 s.

    keepalive 20 3 over the first segment, from A's first tick: 0 and 20 answered; the
    failure runs from 30 to the request at 90; 40, 60, 80 unanswered, and the tick at 100
    finds counter 3 (down, then up at 100.02) after the failure is over: blackholed
    [30, 90) = 60 s: 30 data packets captured (30.5 … 59.5) and 30 s where the real line was
    down, estimated at the first segment's 1 packet a second: 60 packets. (The second
    segment's busier data must not raise that rate.)
    """
    from tests.builders import Capture

    cap = Capture()
    peer = "198.51.100.1"
    day = 86400.0
    steps: list[tuple[float, str]] = [(10.0 * k, "send") for k in range(11)]
    steps += [(k + 0.5, "data") for k in range(100) if not 60 <= k + 0.5 < 90.02]
    steps += [(day + 10.0 * k, "send") for k in range(11)]
    steps += [(day + k / 10 + 0.05, "data") for k in range(1000)]
    for t, what in sorted(steps):
        if what == "data":
            cap.data(t, A, peer)
            continue
        request = cap.request(t, A, peer)
        if not 30 <= t <= 80:
            cap.reply(t + 0.02, request)
    settings = Settings(retries=3, what_if="keepalive 20 3")
    analysis = analyze_frames(cap.raw_frames(), settings)
    o = next(o for o in analysis.tunnels[0].originators if o.address == A)
    assert len(o.segments) == 2
    assert o.what_if is not None
    assert o.what_if.estimated
    assert o.what_if.blackhole_seconds.min == pytest.approx(60.0)
    assert o.what_if.blackholed_packets.min == 60
