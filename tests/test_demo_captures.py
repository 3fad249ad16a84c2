"""Each line of captures/README.md, checked against `gre-keepalive analyze` (hand-worked values)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from analyzer.cli import main
from analyzer.simulate import load_scenario, simulate

CAPTURES = Path(__file__).resolve().parent.parent / "captures"
T0 = 1764115200.0


def at(t: float) -> Any:
    """T0 + t to the microsecond."""
    return pytest.approx(T0 + t, abs=1e-6)


def analyze(name: str, tmp_path: Path, *extra: str) -> dict[str, Any]:
    out = tmp_path / "out.json"
    assert main(["analyze", str(CAPTURES / name), "--format", "json", "-o", str(out), *extra]) == 0
    document: dict[str, Any] = json.loads(out.read_text())
    return document


def originator(document: dict[str, Any], address: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        o for t in document["tunnels"] for o in t["originators"] if o["address"] == address
    )
    return found


def transitions(o: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(t["state"], t["time"]) for t in o["transitions"]]


@pytest.mark.parametrize("name", ["healthy", "outage", "keyed"])
def test_demo_capture_is_what_its_scenario_makes(name: str, tmp_path: Path) -> None:
    rebuilt = tmp_path / f"{name}.pcap"
    simulate(load_scenario(CAPTURES / f"{name}.toml"), rebuilt)
    assert rebuilt.read_bytes() == (CAPTURES / f"{name}.pcap").read_bytes()


def test_healthy(tmp_path: Path) -> None:
    document = analyze("healthy.pcap", tmp_path)
    (tunnel,) = document["tunnels"]
    assert (tunnel["endpoints"], tunnel["key"], tunnel["vantage"]) == (
        ["192.0.2.1", "198.51.100.1"],
        None,
        "192.0.2.1",
    )
    for o in tunnel["originators"]:
        assert (o["sent"], o["returned"], o["period"], o["period_source"]) == (
            12,
            12,
            10.0,
            "inferred",
        )
        assert o["transitions"] == []
        assert o["blackholed_packets"] == {"min": 0, "max": 0}


def test_outage_with_router_config(tmp_path: Path) -> None:
    document = analyze("outage.pcap", tmp_path, "--config", str(CAPTURES / "router-a.cfg"))
    a = originator(document, "192.0.2.1")
    assert (a["period"], a["period_source"], a["retries"], a["retries_source"]) == (
        5.0,
        "config",
        4,
        "config",
    )
    assert (a["sent"], a["returned"], a["unanswered"]) == (20, 12, 8)
    assert transitions(a) == [("down", at(55.0)), ("up", at(75.02005))]
    assert a["blackholed_packets"] == {"min": 200, "max": 250}


def test_outage_down_frame_is_the_send_at_55(tmp_path: Path) -> None:
    document = analyze("outage.pcap", tmp_path, "--config", str(CAPTURES / "router-a.cfg"))
    a = originator(document, "192.0.2.1")
    send_at_55 = next(k for k in a["keepalives"] if k["type"] == "sent" and k["time"] == at(55.0))
    assert a["transitions"][0]["frame"] == send_at_55["frame"]


def test_outage_without_config_uses_three_retries(tmp_path: Path) -> None:
    a = originator(analyze("outage.pcap", tmp_path), "192.0.2.1")
    assert (a["retries"], a["retries_source"]) == (3, "default")
    assert transitions(a) == [("down", at(50.0)), ("up", at(75.02005))]


def test_outage_peer_is_extrapolated(tmp_path: Path) -> None:
    b = originator(analyze("outage.pcap", tmp_path), "198.51.100.1")
    assert transitions(b) == [("down", at(47.01)), ("up", at(72.01005))]
    assert b["transitions"][0]["frame"] is None


def test_keyed(tmp_path: Path) -> None:
    document = analyze("keyed.pcap", tmp_path)
    (tunnel,) = document["tunnels"]
    assert (tunnel["endpoints"], tunnel["key"]) == (["192.0.2.1", "203.0.113.9"], 42)
    a = originator(document, "192.0.2.1")
    assert (a["sent"], a["returned"]) == (20, 16)
    assert transitions(a) == [("down", at(28.0)), ("up", at(30.08005))]
    b = originator(document, "203.0.113.9")
    assert transitions(b) == [("down", at(27.04)), ("up", at(29.04005))]
    assert "cisco-metadata" in a["variants"]
