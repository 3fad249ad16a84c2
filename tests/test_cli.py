"""The command line as a user meets it: exit status, one-line errors, inputs and outputs."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.cli import main

ROOT = Path(__file__).resolve().parent.parent
OUTAGE = ROOT / "captures" / "outage.pcap"
HEALTHY = ROOT / "captures" / "healthy.pcap"


def run_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run the real console entry point in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "analyzer", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "120"},
    )


def one_line_error(result: subprocess.CompletedProcess[bytes]) -> str:
    err = result.stderr.decode()
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_not_a_capture_exits_2_with_one_line(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.pcap"
    bogus.write_text("<html>not a capture</html>\n")
    result = run_cli("analyze", str(bogus))
    assert result.returncode == 2
    assert "not a pcap or pcapng file" in one_line_error(result)


def test_empty_file_exits_2(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    result = run_cli("analyze", str(empty))
    assert result.returncode == 2
    one_line_error(result)


def test_missing_file_exits_2(tmp_path: Path) -> None:
    result = run_cli("analyze", str(tmp_path / "nope.pcap"))
    assert result.returncode == 2
    one_line_error(result)


def test_directory_exits_2(tmp_path: Path) -> None:
    result = run_cli("analyze", str(tmp_path))
    assert result.returncode == 2
    one_line_error(result)


def test_bad_option_value_exits_2_with_one_line() -> None:
    result = run_cli("analyze", str(OUTAGE), "--retries", "300")
    assert result.returncode == 2
    assert "out of range 1-255" in one_line_error(result)


def test_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(
        '[[tunnel]]\nsource = "192.0.2.1"\ndestination = "198.51.100.1"\nretries = 0\n'
    )
    result = run_cli("analyze", str(OUTAGE), "--config", str(config))
    assert result.returncode == 2
    one_line_error(result)


def test_truncated_last_record_still_analyses_everything_before(tmp_path: Path) -> None:
    data = OUTAGE.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:-10])
    out = tmp_path / "cut.json"
    result = run_cli("analyze", str(cut), "--format", "json", "-o", str(out))
    assert result.returncode == 0
    assert "warning" in one_line_error(result)
    document = json.loads(out.read_text())
    assert document["source"]["packets"] == 1440  # 1441 frames, the last one cut
    assert len(document["source"]["warnings"]) == 1


def test_header_only_then_cut_mid_first_record_exits_2(tmp_path: Path) -> None:
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(OUTAGE.read_bytes()[: 24 + 16 + 5])  # global header, one record header, 5 bytes
    result = run_cli("analyze", str(cut))
    assert result.returncode == 2


def test_stdin_gives_the_same_analysis_as_the_file(tmp_path: Path) -> None:
    from_file = run_cli("analyze", str(HEALTHY), "--format", "json")
    from_stdin = run_cli("analyze", "-", "--format", "json", stdin=HEALTHY.read_bytes())
    assert from_stdin.returncode == 0
    file_doc, stdin_doc = json.loads(from_file.stdout), json.loads(from_stdin.stdout)
    assert stdin_doc["tunnels"] == file_doc["tunnels"]


def test_gzip_capture_gives_the_same_analysis(tmp_path: Path) -> None:
    packed = tmp_path / "healthy.pcap.gz"
    packed.write_bytes(gzip.compress(HEALTHY.read_bytes()))
    plain = json.loads(run_cli("analyze", str(HEALTHY), "--format", "json").stdout)
    zipped = json.loads(run_cli("analyze", str(packed), "--format", "json").stdout)
    assert zipped["tunnels"] == plain["tunnels"]


def test_fail_on_down_exits_3_when_a_line_went_down() -> None:
    assert (
        main(["analyze", str(OUTAGE), "--format", "json", "-o", os.devnull, "--fail-on-down"]) == 3
    )


def test_fail_on_down_exits_0_when_healthy() -> None:
    assert (
        main(["analyze", str(HEALTHY), "--format", "json", "-o", os.devnull, "--fail-on-down"]) == 0
    )


def test_json_document_has_the_contract_fields(tmp_path: Path) -> None:
    out = tmp_path / "a.json"
    assert main(["analyze", str(OUTAGE), "--format", "json", "-o", str(out)]) == 0
    document = json.loads(out.read_text())
    assert document["schema"] == "gre-keepalive.analysis/1"
    assert {
        "files",
        "packets",
        "gre_packets",
        "keepalive_packets",
        "malformed",
        "start",
        "end",
    } <= set(document["source"])
    tunnel = document["tunnels"][0]
    assert {"endpoints", "key", "vantage", "originators", "diagnoses"} <= set(tunnel)
    assert {
        "address",
        "peer",
        "period",
        "period_source",
        "retries",
        "retries_source",
        "sent",
        "returned",
        "unanswered",
        "rtt_ms",
        "transitions",
        "final_state",
        "down_seconds",
        "blackholed_packets",
    } <= set(tunnel["originators"][0])
    assert tunnel["endpoints"] == sorted(tunnel["endpoints"])


def test_csv_has_one_row_per_keepalive_event_and_transition(tmp_path: Path) -> None:
    out = tmp_path / "a.csv"
    assert main(["analyze", str(OUTAGE), "--format", "csv", "-o", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    # 56 keepalive packets (each is one event row) + 4 transitions + 198.51.100.1's 8
    # extrapolated ticks: the 4 up to its down transition one by one, the other 4 one row.
    assert len(rows) == 56 + 4 + 4 + 1
    assert [r["event"] for r in rows if r["event"].startswith("line-")] == [
        "line-down",
        "line-down",
        "line-up",
        "line-up",
    ]


def test_text_report_names_the_down_transition() -> None:
    result = run_cli("analyze", str(OUTAGE), "--retries", "4")
    assert result.returncode == 0
    assert "LINE PROTOCOL DOWN (counter 4 ≥ retries 4)" in result.stdout.decode()


def test_help_teaches_the_rules() -> None:
    result = run_cli("analyze", "--help")
    assert result.returncode == 0
    assert "counter >= retries" in result.stdout.decode()


@pytest.mark.parametrize("command", [["analyze"], []])
def test_missing_arguments_exit_2(command: list[str]) -> None:
    result = run_cli(*command)
    assert result.returncode == 2


def test_analyze_without_a_capture_names_only_the_capture() -> None:
    # extra_captures is hidden (a third capture is refused with its own message)
    result = run_cli("analyze")
    assert result.returncode == 2
    assert one_line_error(result) == (
        "gre-keepalive analyze: error: the following arguments are required: capture "
        "(see gre-keepalive analyze --help)"
    )


def test_a_file_named_twice_in_one_capture_is_refused(tmp_path: Path) -> None:
    # Read twice, its data packets would count twice (blackholed figures doubled).
    link = tmp_path / "same.pcap"
    link.symlink_to(OUTAGE)
    result = run_cli("analyze", f"{OUTAGE},{link}")
    assert result.returncode == 2
    assert one_line_error(result) == (
        f"gre-keepalive: error: {OUTAGE} and {link}: the same file twice in one capture "
        "(each file is read once)"
    )


def test_one_file_as_both_ends_is_refused() -> None:
    # Merged with itself, every keepalive would be "seen at both ends" with a 0 ms path.
    result = run_cli("analyze", str(OUTAGE), str(OUTAGE))
    assert result.returncode == 2
    assert one_line_error(result) == (
        f"gre-keepalive: error: {OUTAGE}: the same file in both captures (the two captures "
        "are the tunnel's two ends, each taken at one of them)"
    )


def test_a_directory_and_one_of_its_files_as_the_two_ends_is_refused(tmp_path: Path) -> None:
    ring = tmp_path / "ring"
    ring.mkdir()
    (ring / "a.pcap").write_bytes(OUTAGE.read_bytes())
    (ring / "b.pcap").write_bytes(HEALTHY.read_bytes())
    result = run_cli("analyze", str(ring), str(ring / "b.pcap"))
    assert result.returncode == 2
    assert "b.pcap: the same file in both captures" in one_line_error(result)


def test_the_scenario_simulate_help_shows_runs_as_its_comments_say(tmp_path: Path) -> None:
    # The help's scenario is the seed's example (SPEC.md §2, captures/README.md by hand):
    # both ends keepalive 5 4, the path down both ways over [30.5, 70.5); a's sends at
    # 35..70 go unanswered, the send at 55 finds counter 4 >= 4: down at 55 (= 35 + 5 × 4);
    # the reply to the send at 75 is back 2 × 10 ms + 50 µs later: up at 75.02005.
    help_text = run_cli("simulate", "--help").stdout.decode()
    lines = help_text.split("scenario (TOML")[1].split("\n\nVendor variants")[0].splitlines()[2:]
    scenario = tmp_path / "help.toml"
    scenario.write_text("\n".join(line.removeprefix("  ") for line in lines) + "\n")
    result = run_cli("simulate", str(scenario), "-o", str(tmp_path / "help.pcap"))
    assert result.returncode == 0, result.stderr
    truth = json.loads((tmp_path / "help.truth.json").read_text())
    (tunnel,) = truth["tunnels"]
    a_side = next(e for e in tunnel["endpoints"] if e["side"] == "a")
    start = 1764115200.0
    assert [(round(t["time"] - start, 5), t["state"]) for t in a_side["transitions"]] == [
        (55.0, "down"),
        (75.02005, "up"),
    ]
    assert (a_side["sent"], a_side["returned"], tunnel["key"]) == (20, 12, 42)


def test_simulate_to_stdout_writes_no_truth_file_as_its_help_says(tmp_path: Path) -> None:
    scenario = str(ROOT / "captures" / "healthy.toml")
    result = subprocess.run(
        [sys.executable, "-m", "analyzer", "simulate", scenario, "-o", "-"],
        capture_output=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout[:4] == bytes.fromhex("d4c3b2a1")  # the pcap itself
    assert list(tmp_path.iterdir()) == []
    assert "with -o -, none unless given" in " ".join(
        run_cli("simulate", "--help").stdout.decode().split()
    )


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("--flap-transitions", "-1", "-1 transitions out of range (1-"),
        ("--flap-transitions", "0", "0 transitions out of range (1-"),
        ("--flap-transitions", "four", "expected a whole number of transitions"),
        ("--flap-minutes", "0", "0 minutes out of range (a finite number above 0)"),
        ("--flap-minutes", "-5", "-5 minutes out of range"),
        ("--flap-minutes", "nan", "nan minutes out of range"),
        ("--late-detection", "-3", "-3 packets out of range (0-"),
        ("--one-way", "inf", "inf seconds out of range (a finite number above 0)"),
        ("--capture-gap", "1e400", "1e400 seconds out of range"),
    ],
)
def test_diagnosis_thresholds_out_of_range_are_usage_errors(
    option: str, value: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capture = str(ROOT / "captures" / "outage.pcap")
    with pytest.raises(SystemExit) as exit_info:
        main(["analyze", capture, f"{option}={value}"])
    assert exit_info.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert f"argument {option}: {said}" in line


def test_retries_infer_without_the_data_packets_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    capture = str(ROOT / "captures" / "outage.pcap")
    assert main(["analyze", capture, "--no-data", "--retries", "infer"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "--retries infer" in line and "--no-data" in line


def test_two_captures_may_have_options_between_them(tmp_path: Path) -> None:
    capture = str(ROOT / "captures" / "outage.pcap")
    peer = tmp_path / "b.pcap"
    peer.write_bytes((ROOT / "captures" / "outage.pcap").read_bytes())
    apart, together = tmp_path / "apart.json", tmp_path / "together.json"
    config = ["--config", str(ROOT / "captures" / "router-a.cfg")]
    assert main(["analyze", capture, *config, str(peer), "--format", "json", "-o", str(apart)]) == 0
    assert (
        main(["analyze", capture, str(peer), *config, "--format", "json", "-o", str(together)]) == 0
    )
    assert json.loads(apart.read_text())["source"]["files"] == [capture, str(peer)]
    assert apart.read_text() == together.read_text()


def test_a_capture_after_double_dash_joins_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    capture = str(ROOT / "captures" / "outage.pcap")
    (tmp_path / "-b.pcap").write_bytes((ROOT / "captures" / "outage.pcap").read_bytes())
    monkeypatch.chdir(tmp_path)
    argv = ["analyze", capture, "--retries", "4", "--format", "json", "-o", "out.json"]
    assert main([*argv, "--", "-b.pcap"]) == 0  # a name only `--` lets through
    assert json.loads((tmp_path / "out.json").read_text())["source"]["files"] == [
        capture,
        "-b.pcap",
    ]


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (
            ["analyze", "x.pcap", "--bogus"],
            "gre-keepalive analyze: error: unrecognized arguments: --bogus"
            " (see gre-keepalive analyze --help)",
        ),
        (
            ["export-lua", "extra"],
            "gre-keepalive export-lua: error: unrecognized arguments: extra"
            " (see gre-keepalive export-lua --help)",
        ),
    ],
)
def test_an_unknown_argument_names_the_subcommand_s_help(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines() == [said]
