"""The seed technote end to end: its two-router config block and its `keepalive 5 4` outage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analyzer.cli import main
from analyzer.simulate import load_scenario, simulate

DATA = Path(__file__).resolve().parent / "data"
T0 = 1764115200.0


@pytest.fixture(scope="module")
def seed_analysis(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """tests/data/scenarios/technote.toml (both routers `keepalive 5 4`, path down both ways
    30.5–70.5 s, captured next to 128.8.8.8) analysed with the seed's config block."""
    tmp = tmp_path_factory.mktemp("seed")
    capture = tmp / "technote.pcap"
    simulate(load_scenario(DATA / "scenarios" / "technote.toml"), capture)
    out = tmp / "analysis.json"
    config = DATA / "config" / "technote_back_to_back.cfg"
    args = ["analyze", str(capture), "--config", str(config), "--format", "json", "-o", str(out)]
    assert main(args) == 0
    document: dict[str, object] = json.loads(out.read_text())
    return document


def _originator(document: dict[str, object], address: str) -> dict[str, object]:
    tunnels = document["tunnels"]
    assert isinstance(tunnels, list)
    found: dict[str, object] = next(
        o for t in tunnels for o in t["originators"] if o["address"] == address
    )
    return found


def test_seed_config_applies_keepalive_5_4_to_both_routers(
    seed_analysis: dict[str, object],
) -> None:
    for address in ("128.8.8.8", "129.9.9.9"):
        o = _originator(seed_analysis, address)
        assert (o["period"], o["retries"]) == (5.0, 4)
        assert (o["period_source"], o["retries_source"]) == ("config", "config")


def test_down_exactly_period_times_retries_after_first_unanswered(
    seed_analysis: dict[str, object],
) -> None:
    a = _originator(seed_analysis, "128.8.8.8")
    keepalives = a["keepalives"]
    assert isinstance(keepalives, list)
    first_unanswered = next(
        k["time"] for k in keepalives if k["type"] == "sent" and k["partner_frame"] is None
    )
    # By hand: A sends every 5 s from t = 0; the send at 35 is the first after the failure
    # at 30.5, so the line goes down at 35 + 5 × 4 = 55.
    assert first_unanswered == pytest.approx(T0 + 35.0, abs=1e-6)
    transitions = a["transitions"]
    assert isinstance(transitions, list)
    down = transitions[0]
    assert down["state"] == "down"
    assert down["time"] - first_unanswered == pytest.approx(5 * 4, abs=1e-6)
    assert down["counter"] == 4
