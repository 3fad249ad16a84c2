"""The files in docs/ that run the probe in production: the systemd unit and the alert rules.

The unit is checked by `systemd-analyze verify` and the rules by `promtool` (both installed
by .ci/run; visible skips elsewhere); a structural check of both runs everywhere.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from analyzer import cli
from analyzer.probe.metrics import METRIC_NAMES

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "docs" / "gre-keepalive-probe.service"
RULES = ROOT / "docs" / "prometheus-alerts.yml"
RULE_TESTS = Path(__file__).with_name("prometheus-alerts.test.yml")
INSTALLED_PATH = "/usr/local/bin/gre-keepalive"


def _unit_settings() -> dict[str, list[str]]:
    """Every `Key=value` of the unit (keys may repeat)."""
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    # verify insists that ExecStart's program exists: point it at this interpreter.
    unit = tmp_path / UNIT.name
    text = UNIT.read_text(encoding="utf-8")
    unit.write_text(text.replace(INSTALLED_PATH, f"{sys.executable} -m analyzer"), "utf-8")
    result = subprocess.run(
        [analyze, "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # Unknown keys and bad values are only warnings: none may name our file.
    complaints = [line for line in result.stderr.splitlines() if unit.name in line]
    assert complaints == []


def test_systemd_unit_runs_the_probe_as_the_docs_say() -> None:
    settings = _unit_settings()
    (command,) = settings["ExecStart"]
    argv = shlex.split(command)
    assert argv[0] == INSTALLED_PATH
    args = cli.build_parser().parse_args(argv[1:])  # options the probe really has
    assert args.config == "/etc/gre-keepalive/tunnels.toml" and args.metrics_port == 9477
    assert settings["ExecReload"] == ["/bin/kill -HUP $MAINPID"]  # SIGHUP reloads --config
    assert settings["Restart"] == ["on-failure"]  # exit 141 (stdout closed) and 2 restart
    assert settings["AmbientCapabilities"] == ["CAP_NET_RAW"]
    assert settings["CapabilityBoundingSet"] == ["CAP_NET_RAW"]
    assert settings["DynamicUser"] == ["yes"]


def _metric_names(expression: str) -> set[str]:
    return set(re.findall(r"\bgre_keepalive_[a-z_]+\b", expression))


def test_alert_rules_have_the_prometheus_shape_and_use_real_metrics() -> None:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    (group,) = document["groups"]
    assert set(group) == {"name", "rules"}
    alerts = {rule["alert"]: rule for rule in group["rules"]}
    # The two the probe promises: a tunnel's line protocol down, and keepalive loss.
    assert {"GreTunnelLineProtocolDown", "GreTunnelKeepaliveLoss"} <= set(alerts)
    for rule in group["rules"]:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert isinstance(rule["expr"], str) and rule["expr"].strip()
        assert re.fullmatch(r"\d+[smh]", rule["for"])
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        assert rule["annotations"]["summary"]
        names = _metric_names(rule["expr"])
        assert names and names <= set(METRIC_NAMES), names - set(METRIC_NAMES)
    assert _metric_names(alerts["GreTunnelLineProtocolDown"]["expr"]) == {
        "gre_keepalive_line_protocol_up"
    }
    assert _metric_names(alerts["GreTunnelKeepaliveLoss"]["expr"]) == {
        "gre_keepalive_sent_total",
        "gre_keepalive_returned_total",
    }


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    result = subprocess.run([found, *args], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_promtool_accepts_the_rules() -> None:
    assert "SUCCESS: 5 rules found" in _promtool("check", "rules", str(RULES)).stdout


def test_promtool_unit_tests_of_every_rule_pass() -> None:
    _promtool("test", "rules", str(RULE_TESTS))
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text(encoding="utf-8")))
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"][0]["rules"]
    assert tested == {rule["alert"] for rule in rules}
