"""Hostile configuration and scenario files: huge numbers, deep TOML, files that never end,
tiny periods, configurations large enough to expose quadratic parsing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.cli import main
from analyzer.config import (
    MAX_FILE_BYTES,
    ConfigError,
    load_config,
    parse_ios,
    parse_toml,
)
from analyzer.options import whole_retries_option

DATA = Path(__file__).parent.parent / "data" / "hostile"
TUNNEL = """interface Tunnel0
 tunnel source 192.0.2.1
 tunnel destination 198.51.100.1
 keepalive {period} 3
!
"""
# TOML whose value is an array nested 5,000 deep: [[[[ … ]]]]
DEEP_TOML = "[[tunnel]]\nsource = " + "[" * 5000 + "]" * 5000 + "\n"


def one_line_error(func: object, *args: object) -> str:
    assert callable(func)
    with pytest.raises(ConfigError) as info:
        func(*args)
    text = str(info.value)
    assert len(text.splitlines()) == 1, text
    return text


def test_a_keepalive_period_written_with_100k_leading_zeros_is_that_period() -> None:
    config = parse_ios(TUNNEL.format(period="0" * 100_000 + "5"), "r.cfg")
    assert config.tunnels[0].period == 5.0


def test_a_100k_digit_keepalive_period_is_out_of_range_in_a_short_line() -> None:
    text = one_line_error(parse_ios, TUNNEL.format(period="9" * 100_000), "r.cfg")
    assert text.startswith("r.cfg:4: keepalive period 99999999…(100000 digits) out of range")
    assert len(text) < 200


def test_toml_nested_5000_deep_is_a_config_error() -> None:
    assert "nested too deeply" in one_line_error(parse_toml, DEEP_TOML, "k.toml")


def test_a_denormal_toml_period_is_refused() -> None:
    body = '[[tunnel]]\nsource = "192.0.2.1"\ndestination = "198.51.100.1"\nperiod = 5e-324\n'
    text = one_line_error(parse_toml, body, "k.toml")
    assert text == "k.toml:4: tunnel[1]: period 5e-324 too small (0, or at least 0.001 s)"


def test_a_device_is_refused_without_reading_it() -> None:
    text = one_line_error(load_config, "/dev/zero")
    assert text == "/dev/zero: cannot read: a device, not a regular file (save it to a file first)"


def test_a_fifo_without_a_writer_is_refused_instead_of_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "cfg"
    os.mkfifo(fifo)
    assert "a FIFO or pipe, not a regular file" in one_line_error(load_config, fifo)


def test_a_config_over_16_mib_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.cfg"
    with big.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: no 16 MiB written
    assert one_line_error(load_config, big) == f"{big}: cannot read: larger than 16 MiB"


def test_a_config_of_exactly_16_mib_is_read(tmp_path: Path) -> None:
    exact = tmp_path / "exact.cfg"
    body = TUNNEL.format(period=5).encode()
    exact.write_bytes(body + b"!" * (MAX_FILE_BYTES - len(body)))
    assert load_config(exact).tunnels[0].period == 5.0


def test_an_abbreviated_source_interface_finds_the_first_matching_block() -> None:
    # Three interfaces with suffix 0; `tunnel source Lo0` designates Loopback0 (the first
    # whose prefix Lo abbreviates), never Tunnel0.
    config = parse_ios(
        "interface Loopback0\n ip address 192.0.2.7 255.255.255.255\n!\n"
        "interface Looper0\n ip address 192.0.2.8 255.255.255.255\n!\n"
        "interface Tunnel0\n tunnel source Lo0\n tunnel destination 198.51.100.1\n"
        " keepalive 5 3\n!\n",
        "r.cfg",
    )
    assert config.tunnels[0].source == "192.0.2.7"


def test_a_longer_written_name_finds_the_block_it_extends() -> None:
    # `interface Lo1` declared; `tunnel source Loopback1` still designates it.
    config = parse_ios(
        "interface Lo1\n ip address 192.0.2.9 255.255.255.255\n!\n"
        "interface Tunnel1\n tunnel source Loopback1\n tunnel destination 198.51.100.1\n!\n",
        "r.cfg",
    )
    assert config.tunnels[0].source == "192.0.2.9"


def test_analyze_refuses_a_tiny_period_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["analyze", "x.pcap", "--period", "5e-324"])
    assert info.value.code == 2
    assert "period 5e-324 out of range 0.001-32767 seconds" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["device", "fifo", "deep"])
def test_simulate_refuses_what_it_cannot_read_in_one_line(tmp_path: Path, kind: str) -> None:
    if kind == "device":
        scenario = "/dev/zero"
    elif kind == "fifo":
        scenario = str(tmp_path / "scenario.toml")
        os.mkfifo(scenario)
    else:
        scenario = str(tmp_path / "deep.toml")
        Path(scenario).write_text(DEEP_TOML)
    result = subprocess.run(
        [sys.executable, "-m", "analyzer", "simulate", scenario, "-o", str(tmp_path / "o.pcap")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def test_a_100k_digit_retries_option_is_a_short_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["analyze", "x.pcap", "--retries", "9" * 100_000])
    error = capsys.readouterr().err
    assert info.value.code == 2
    assert "retries 9999999999999999999999999999999999999999… (100000 characters) out of" in error
    assert len(error) < 300


def test_retries_written_with_100k_leading_zeros_are_that_count() -> None:
    assert whole_retries_option("0" * 100_000 + "3") == 3


# a TOML integer of 100,000 digits: well-formed TOML, but more digits than int() converts
LONG_TOML_NUMBER = "[defaults]\nperiod = " + "9" * 100_000 + "\n"


def test_a_100k_digit_toml_number_is_a_config_error() -> None:
    text = one_line_error(parse_toml, LONG_TOML_NUMBER, "k.toml")
    assert text.startswith("k.toml: TOML number too long (more than ")


def test_simulate_refuses_a_100k_digit_toml_number_in_one_line(tmp_path: Path) -> None:
    scenario = tmp_path / "long.toml"
    scenario.write_text(LONG_TOML_NUMBER)
    result = subprocess.run(
        [sys.executable, "-m", "analyzer", "simulate", str(scenario), "-o", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.endswith("long.toml: TOML number too long (more than 4300 digits)\n")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["analyze", "x.pcap", "--capture-gap", "9" * 100_000],
        ["analyze", "x.pcap", "--follow-timeout", "9" * 100_000],
        ["watch", "lo", "--tick", "9" * 100_000],
        ["probe", "--keepalive", "9" * 100_000, "3"],
    ],
)
def test_a_100k_digit_option_is_quoted_shortened(
    capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(args)
    error = capsys.readouterr().err
    assert info.value.code == 2
    assert "99999999…(100000 digits)" in error and len(error) < 300


@pytest.mark.parametrize("option", ["--tick", "--stats-interval", "--duration"])
def test_watch_refuses_seconds_no_wait_can_take(
    capsys: pytest.CaptureFixture[str], option: str
) -> None:
    # 1e308 s overflowed the waits' timeout (OverflowError from threading) after starting
    with pytest.raises(SystemExit) as info:
        main(["watch", "lo", option, "1e308"])
    assert info.value.code == 2
    assert "1e308 seconds is too long (at most 1000000000)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("data_pps = 5.0", "data_pps = 1e308"),  # wrote frames until the disk was full
        ("duration = 120.0", "duration = 1e9"),  # 10^9 s of keepalives every 10 s
    ],
)
def test_simulate_refuses_a_scenario_that_would_fill_the_disk(
    tmp_path: Path, line: str, value: str
) -> None:
    text = (DATA / "healthy.toml").read_text().replace(line, value)
    assert value in text
    scenario = tmp_path / "big.toml"
    scenario.write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "analyzer", "simulate", str(scenario), "-o", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "frames (at most 20,000,000)" in result.stderr
    assert not (tmp_path / "o").exists()


def test_analyze_refuses_a_zero_period_naming_the_range_it_takes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # 0.5 is accepted (sub-second periods for labs), so the range is not "1-32767".
    with pytest.raises(SystemExit) as info:
        main(["analyze", "x.pcap", "--period", "0"])
    assert info.value.code == 2
    assert "period 0 out of range 0.001-32767 seconds" in capsys.readouterr().err
