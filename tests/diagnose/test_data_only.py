"""Tunnels that carry data but no keepalives: listed, and diagnosed (no-keepalives,
one-way-data). Expected values are worked out by hand (gre-sample.pcap: counted with
tshark, `ip.src` of the outer header)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analyzer.cli import main
from analyzer.keepalive.analysis import Settings
from analyzer.keepalive.model import Analysis, Diagnosis
from analyzer.pipeline.analyze import analyze_frames
from tests.builders import START, Capture

A, B = "192.0.2.1", "198.51.100.1"


def at(t: float) -> object:
    return pytest.approx(START + t, abs=1e-6)


def codes(analysis: Analysis) -> list[str]:
    return [d.code for t in analysis.tunnels for d in t.diagnoses]


def one_way(analysis: Analysis) -> list[Diagnosis]:
    return [d for t in analysis.tunnels for d in t.diagnoses if d.code == "one-way-data"]


def test_gre_sample_lists_its_tunnel_with_data_each_way(
    real_captures_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sample.json"
    capture = real_captures_dir / "zeek__gre-sample.pcap"
    assert main(["analyze", str(capture), "--format", "json", "-o", str(out)]) == 0
    (tunnel,) = json.loads(out.read_text())["tunnels"]
    assert (tunnel["endpoints"], tunnel["key"], tunnel["originators"]) == (
        ["172.27.1.66", "66.59.109.137"],
        None,
        [],
    )
    assert tunnel["data_packets"] == 40
    # tshark: 21 packets from 172.27.1.66 (first 1055289968.793044, last …996.849099),
    # 19 from 66.59.109.137 (…968.936366 to …996.921473).
    assert tunnel["directions"] == [
        {
            "source": "172.27.1.66",
            "destination": "66.59.109.137",
            "data_packets": 21,
            "first": 1055289968.793044,
            "last": 1055289996.849099,
        },
        {
            "source": "66.59.109.137",
            "destination": "172.27.1.66",
            "data_packets": 19,
            "first": 1055289968.936366,
            "last": 1055289996.921473,
        },
    ]
    (diagnosis,) = tunnel["diagnoses"]
    assert diagnosis["code"] == "no-keepalives"
    assert diagnosis["details"]["suggested"] == "keepalive 10 3"
    assert diagnosis["evidence"] == [1, 2]  # the first packet each way


def test_gre_sample_text_says_no_keepalives_and_lists_the_tunnel(
    real_captures_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sample.txt"
    assert main(["analyze", str(real_captures_dir / "zeek__gre-sample.pcap"), "-o", str(out)]) == 0
    text = out.read_text()
    assert "No GRE keepalives found." in text
    assert "Tunnel 172.27.1.66 ↔ 66.59.109.137, key none, 40 data packets; no keepalives" in text
    assert "  172.27.1.66 → 66.59.109.137: 21 data packets, 2003-06-11 00:06:08.793044" in text
    assert "warning no-keepalives" in text
    assert "keepalive 10 3" in text


def two_way_then_one_way(back_until: float) -> Capture:
    """A sends data at 0, 1, …, 100; B answers at 0.5, 1.5, … up to `back_until`."""
    cap = Capture()
    for k in range(101):
        cap.data(float(k), A, B)
        if k + 0.5 <= back_until:
            cap.data(k + 0.5, B, A)
    return cap.sorted()


def test_data_one_way_for_longer_than_the_threshold_is_a_suspected_blackhole() -> None:
    analysis = analyze_frames(two_way_then_one_way(40.5).raw_frames())
    # B's last packet at 40.5; A's packets 41 … 100 (60 of them, 59 s) get no answer.
    (diagnosis,) = one_way(analysis)
    assert diagnosis.originator == A
    assert diagnosis.time == at(41.0)
    assert diagnosis.details["end"] == at(100.0)
    assert diagnosis.details["packets"] == 60
    assert diagnosis.details["seconds"] == pytest.approx(59.0, abs=1e-6)
    # Frames: up to 40.5 the two alternate (82 frames), so 41 is frame 83 and 100 frame 142.
    assert diagnosis.evidence == (83, 142)
    assert "no-keepalives" in codes(analysis)


def test_a_silence_shorter_than_the_threshold_is_not_one_way() -> None:
    # B's last packet at 80.5: A alone from 81 to 100 is 19 s, under the default 30 s.
    assert one_way(analyze_frames(two_way_then_one_way(80.5).raw_frames())) == []


def test_the_one_way_threshold_is_a_setting() -> None:
    settings = Settings(one_way_seconds=10.0)
    (diagnosis,) = one_way(analyze_frames(two_way_then_one_way(80.5).raw_frames(), settings))
    assert (diagnosis.time, diagnosis.details["packets"]) == (at(81.0), 20)


def test_one_way_in_the_middle_of_a_capture() -> None:
    cap = Capture()
    for k in range(101):
        cap.data(float(k), A, B)
        if not 20 < k + 0.5 < 70:
            cap.data(k + 0.5, B, A)
    # B silent between 19.5 and 70.5: A's 20 … 70 (51 packets, 50 s) go unanswered.
    (diagnosis,) = one_way(analyze_frames(cap.sorted().raw_frames()))
    assert (diagnosis.time, diagnosis.details["end"], diagnosis.details["packets"]) == (
        at(20.0),
        at(70.0),
        51,
    )


def test_no_one_way_diagnosis_for_tunnels_with_keepalives() -> None:
    cap = two_way_then_one_way(40.5)
    cap.reply(0.02, cap.request(0.01, A, B))
    analysis = analyze_frames(cap.sorted().raw_frames())
    assert "one-way-data" not in codes(analysis)
    assert "no-keepalives" not in codes(analysis)


def test_no_keepalives_over_ipv6_does_not_suggest_what_ios_cannot_run() -> None:
    # SPEC §2: keepalives are a GRE/IPv4 feature on IOS; an IPv6 transport gets the
    # caveat and the alternatives, an IPv4 one the plain `keepalive 10 3`.
    cap = Capture()
    for k in range(10):
        cap.data(float(k), "2001:db8::1", "2001:db8::2")
        cap.data(k + 0.5, "2001:db8::2", "2001:db8::1")
        cap.data(float(k), A, B)
    messages = {
        t.endpoints[0]: d.message
        for t in analyze_frames(cap.sorted().raw_frames()).tunnels
        for d in t.diagnoses
        if d.code == "no-keepalives"
    }
    assert "IPv4 transport only" in messages["2001:db8::1"]
    assert "BFD" in messages["2001:db8::1"]
    assert "IPv4 transport only" not in messages[A]
    assert "Configure `keepalive 10 3` on both ends" in messages[A]


def test_one_way_seconds_at_the_capture_precision() -> None:
    cap = Capture()
    for k in range(600):
        cap.data(k * 0.1, A, B)
    # A alone from 0 to 59.9 s: 59.9 s, not the float difference of two epoch times.
    (diagnosis,) = one_way(analyze_frames(cap.raw_frames()))
    assert diagnosis.details["seconds"] == 59.9


YEARS = 6 * 365 * 86400.0  # a merged file: the second part six years after the first


def both_ways_then_a_alone_after_a_gap(packets_after: int) -> Capture:
    """A and B exchange data every 0.1 s for 60 s (A at k/10, B 50 ms after; A once more
    at 60.5); six years later A alone sends `packets_after` packets 0.1 s apart."""
    cap = Capture()
    for k in range(600):
        cap.data(k * 0.1, A, B)
        cap.data(k * 0.1 + 0.05, B, A)
    cap.data(60.5, A, B)
    for k in range(packets_after):
        cap.data(YEARS + k * 0.1, A, B)
    return cap


def test_a_capture_gap_is_no_stretch_of_one_way_data() -> None:
    # After B's last packet (59.95) A sends at 60.5 (one packet), then nothing is captured
    # for six years, then A alone for 19.9 s: under 30 s, so no one-way-data (the six years
    # are the capture not running, not a silent return path).
    assert one_way(analyze_frames(both_ways_then_a_alone_after_a_gap(200).raw_frames())) == []


def test_one_way_data_after_a_capture_gap_starts_after_it() -> None:
    # The same, A alone for 59.9 s after the gap (600 packets): one-way from YEARS to
    # YEARS + 59.9, frames 1202 (after 1200 + the one at 60.5) to 1801.
    (diagnosis,) = one_way(analyze_frames(both_ways_then_a_alone_after_a_gap(600).raw_frames()))
    assert diagnosis.time == at(YEARS)
    assert diagnosis.details["end"] == at(YEARS + 59.9)
    assert (diagnosis.details["packets"], diagnosis.details["seconds"]) == (600, 59.9)
    assert diagnosis.evidence == (1202, 1801)
