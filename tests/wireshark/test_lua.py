"""The Wireshark plugin (`gre-keepalive export-lua`) agrees with analyze in every front end.

Every capture in captures/ and tests/data/real/ (plus scenario and hand-built captures
written here) goes through `tshark -2 -Y` with lua/gre_keepalive.lua; a few go through
one-pass tshark and `tshark -2` with and without a display filter, and through sharkd
(Wireshark's backend) asked for frames in ascending, descending and shuffled order. Each
keepalive frame's type, originator, counter, line state and partner frame must be what
`gre-keepalive analyze --format json` says for that frame, the expert infos must sit on
the frames of the analysis's transitions, and the plugin must raise no Lua error. Also:
the expert summary, a second copy, invalid preferences, the numeric fields, the tunnels
statistics, the plugin's version and `export-lua --install`.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from analyzer import __version__
from analyzer.cli import main
from analyzer.config import load_config
from analyzer.read.capture import (
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    PcapWriter,
    open_capture,
)
from analyzer.read.packet import (
    build_gre,
    build_gre_data,
    build_ip,
    build_keepalive_request,
    reflect_request,
)
from analyzer.simulate import load_scenario, simulate
from analyzer.wireshark.export import generate_lua
from tests.builders import START, Capture
from tests.conftest import ROOT, all_captures

TSHARK = shutil.which("tshark")
LUA = ROOT / "lua" / "gre_keepalive.lua"
CAPTURES = ROOT / "captures"
SCENARIOS = ROOT / "tests" / "data" / "scenarios"

needs_tshark = pytest.mark.skipif(
    TSHARK is None, reason="tshark not installed: apt-get install tshark"
)

FIELDS = (
    "frame.number",
    "grekeepalive.type",
    "grekeepalive.originator",
    "grekeepalive.peer",
    "grekeepalive.counter",
    "grekeepalive.line_state",
    "grekeepalive.response_in",
    "grekeepalive.request_in",
    "grekeepalive.rtt",
    "grekeepalive.duplicate_of",
    "grekeepalive.retries",
    "grekeepalive.retries_source",
    "grekeepalive.period",
    "grekeepalive.period_source",
    "grekeepalive.transition",
    "grekeepalive.down",
    "grekeepalive.down_extrapolated",
    "grekeepalive.up",
    "grekeepalive.unanswered",
    "_ws.lua.error",
)


# --- running both sides ---------------------------------------------------------------


@dataclass(frozen=True)
class LuaFrame:
    """What the plugin shows on one frame."""

    number: int
    fields: dict[str, str]

    def get(self, name: str) -> str:
        return self.fields[f"grekeepalive.{name}"]

    def has(self, name: str) -> bool:
        return self.fields[name] != ""


def tshark(
    capture: Path,
    script: Path | None,
    *options: str,
    display_filter: str | None = None,
    two_pass: bool = True,
    env: dict[str, str] | None = None,
) -> str:
    """Run tshark (two-pass unless told) with the plugin; stdout. No Lua error may reach
    stderr."""
    command = [TSHARK or "tshark", "-n", *(["-2"] if two_pass else [])]
    if script is not None:
        command += ["-X", f"lua_script:{script}"]
    command += ["-r", str(capture), *options]
    if display_filter is not None:
        command += ["-Y", display_filter]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False, env=env
    )
    stderr = "\n".join(line for line in result.stderr.splitlines() if "Running as user" not in line)
    assert "lua" not in stderr.lower(), stderr
    return result.stdout


# How tshark is run: (two passes?, display filter?)
MODES = {
    "one-pass": (False, False),
    "one-pass -Y": (False, True),
    "-2": (True, False),
    "-2 -Y": (True, True),
}


# A PATH without gzip: the plugin cannot decompress a gzip file and takes the frames as
# Wireshark hands them (what it does with standard input, or without /proc).
NO_GZIP = {**os.environ, "PATH": "/nonexistent"}


@functools.cache
def lua_frames(
    capture: Path,
    script: Path = LUA,
    *options: str,
    mode: str = "-2 -Y",
    unreadable: bool = False,
) -> dict[int, LuaFrame]:
    """Every frame the plugin marks (or where a Lua error happened), by number (one tshark
    run per capture, script, options and mode; `unreadable`: without gzip)."""
    two_pass, filtered = MODES[mode]
    fields = [arg for name in FIELDS for arg in ("-e", name)]
    stdout = tshark(
        capture,
        script,
        *options,
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        *fields,
        display_filter="grekeepalive or _ws.lua.error" if filtered else None,
        two_pass=two_pass,
        env=NO_GZIP if unreadable else None,
    )
    return _parse_rows(stdout)


def _parse_rows(stdout: str) -> dict[int, LuaFrame]:
    frames: dict[int, LuaFrame] = {}
    for line in stdout.splitlines():
        values = line.split("\t")
        assert len(values) == len(FIELDS), line
        row = dict(zip(FIELDS, values, strict=True))
        if row["grekeepalive.type"] or row["_ws.lua.error"]:
            frames[int(row["frame.number"])] = LuaFrame(int(row["frame.number"]), row)
    errors = {n: f.fields["_ws.lua.error"] for n, f in frames.items() if f.has("_ws.lua.error")}
    assert not errors, f"Lua errors in frames {sorted(errors)}"
    return frames


def analysis(capture: Path, tmp_path: Path, *options: str) -> dict[str, Any]:
    out = tmp_path / f"{capture.name}.json"
    status = main(["analyze", str(capture), "--format", "json", "-o", str(out), *options])
    assert status == 0
    document: dict[str, Any] = json.loads(out.read_text())
    return document


def originators(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for tunnel in document["tunnels"]:
        yield from tunnel["originators"]


TYPES = {"sent": "request", "returned": "reply"}


def expected_frames(document: dict[str, Any]) -> dict[int, tuple[object, ...]]:
    """frame -> (type, originator, peer, counter, line state, partner frame)."""
    frames: dict[int, tuple[object, ...]] = {}
    for o in originators(document):
        for event in o["keepalives"]:
            if event["frame"] is None:
                continue
            assert event["frame"] not in frames
            frames[event["frame"]] = (
                TYPES[event["type"]],
                o["address"],
                o["peer"],
                event["counter"],
                event["line_state"],
                event["partner_frame"],
            )
    return frames


def shown_frames(frames: dict[int, LuaFrame]) -> dict[int, tuple[object, ...]]:
    shown: dict[int, tuple[object, ...]] = {}
    for number, frame in frames.items():
        if frame.has("grekeepalive.duplicate_of"):
            continue
        partner = frame.get("response_in") or frame.get("request_in")
        shown[number] = (
            frame.get("type"),
            frame.get("originator"),
            frame.get("peer"),
            int(frame.get("counter")),
            frame.get("line_state"),
            int(partner) if partner else None,
        )
    return shown


def expected_experts(document: dict[str, Any]) -> dict[str, set[int]]:
    """Frames where the plugin must put each expert info, from the analysis."""
    experts: dict[str, set[int]] = {
        "down": set(),
        "down_extrapolated": set(),
        "up": set(),
        "unanswered": set(),
    }
    for o in originators(document):
        framed = [e for e in o["keepalives"] if e["frame"] is not None]
        for transition in o["transitions"]:
            if transition["frame"] is not None:
                experts[transition["state"]].add(transition["frame"])
                continue
            assert transition["state"] == "down"  # only a tick can be extrapolated
            later = [e for e in framed if e["time"] > transition["time"]]
            if later:  # reported on the originator's next keepalive frame
                experts["down_extrapolated"].add(min(later, key=lambda e: e["time"])["frame"])
        experts["unanswered"] |= {
            e["frame"] for e in framed if e["type"] == "sent" and e["partner_frame"] is None
        }
    return experts


def shown_experts(frames: dict[int, LuaFrame]) -> dict[str, set[int]]:
    return {
        name: {n for n, f in frames.items() if f.has(f"grekeepalive.{name}")}
        for name in ("down", "down_extrapolated", "up", "unanswered")
    }


def assert_agree(document: dict[str, Any], frames: dict[int, LuaFrame]) -> None:
    expected = expected_frames(document)
    shown = shown_frames(frames)
    differing = {
        n: (expected.get(n), shown.get(n))
        for n in sorted(expected.keys() | shown.keys())
        if expected.get(n) != shown.get(n)
    }
    assert not differing, f"(analysis, plugin) per frame: {differing}"
    rtts = {
        e["frame"]: e["rtt_ms"]
        for o in originators(document)
        for e in o["keepalives"]
        if e["frame"] is not None and e["rtt_ms"] is not None
    }
    shown_rtts = {
        n: float(f.get("rtt")) * 1000
        for n, f in frames.items()
        if f.has("grekeepalive.rtt") and not f.has("grekeepalive.duplicate_of")
    }
    assert rtts.keys() == shown_rtts.keys()
    assert all(abs(rtts[n] - shown_rtts[n]) < 0.0015 for n in rtts), (rtts, shown_rtts)
    duplicates = sum(o["duplicates"] for o in originators(document))
    assert duplicates == sum(1 for f in frames.values() if f.has("grekeepalive.duplicate_of"))
    assert shown_experts(frames) == expected_experts(document)


# --- hand-built and scenario captures ---------------------------------------------------


def _write(capture: Capture, path: Path) -> Path:
    with PcapWriter(path) as writer:
        for frame in capture.sorted().raw_frames():
            writer.write(frame.time, frame.data)
    return path


def _duplicates() -> Capture:
    """Requests and replies captured twice (two taps), answered, then a path failure."""
    cap = Capture()
    a, b = "192.0.2.1", "198.51.100.1"
    for i in range(12):
        t = 10.0 * i
        request = cap.request(t, a, b)
        if i in (0, 7):
            cap.add(t + 0.1, request)  # the same request again (0: after its reply)
        if i < 5 or i == 11:
            cap.reply(t + 0.02, request)
            if i == 1:
                cap.reply(t + 0.03, request)  # the reply twice
    return cap


def _unmatched() -> Capture:
    """Only inbound traffic: B's requests, and replies to A's requests never seen."""
    cap = Capture()
    a, b = "192.0.2.1", "198.51.100.1"
    for i in range(8):
        request = cap.request(5.0 * i + 1, b, a, key=7)
        cap.reply(5.0 * i + 1.00005, request)
        if i not in (3, 4, 5, 6):
            mine = Capture(ip_id=9000 + 2 * i).request(5.0 * i, a, b, key=7)
            cap.reply(5.0 * i + 0.03, mine)  # a reply whose request the capture lacks
    return cap


def _ipv6_gap() -> Capture:
    """IPv6 keepalives paired by order; the originator's sends vanish, then resume."""
    cap = Capture()
    a, b = "2001:db8::1", "2001:db8::2"
    for i in range(30):
        t = 3.0 * i
        if 8 <= i < 20:
            continue  # a gap of 12 ticks: extrapolated, down on a tick never captured
        request = cap.request(t, a, b)
        if i < 6 or i > 21:
            cap.reply(t + 0.2, request)
    return cap


def _nat() -> Capture:
    """Inner addresses do not mirror the outer ones; a late reply goes to the inner owner."""
    cap = Capture()
    a, b = "192.0.2.1", "198.51.100.1"
    for i in range(10):
        t = 10.0 * i
        request = cap.request(t, a, b, inner_src="10.0.0.2", inner_dst="10.0.0.1")
        if i != 4:
            cap.reply(t + 0.05, request)
        else:
            cap.reply(t + 35.0, request)  # later than 30 s: not paired, still A's
    return cap


def _jitter() -> Capture:
    """Jittered 10 s keepalives, and later a gap of five ticks."""
    cap = Capture()
    a, b = "192.0.2.1", "198.51.100.1"
    times = [0.0, 9.9, 20.1, 30.0, 39.95, 50.05, 60.0, 70.0, 80.1, 140.0, 150.0, 160.0]
    for i, t in enumerate(times):
        request = cap.request(t, a, b)
        if i not in (8,):
            cap.reply(t + 0.01, request)
    return cap


def _with_extensions(packet: bytes, *headers: tuple[int, bytes]) -> bytes:
    """`packet` (IPv6) with extension headers inserted: (type, the 6 bytes after the first 2)."""
    fixed = bytearray(packet[:40])
    types = [kind for kind, _ in headers] + [fixed[6]]
    chain = b"".join(bytes([types[i + 1], 0]) + body for i, (_, body) in enumerate(headers))
    fixed[6] = types[0]
    fixed[4:6] = (int.from_bytes(fixed[4:6], "big") + len(chain)).to_bytes(2, "big")
    return bytes(fixed) + chain + packet[40:]


PAD_OPTIONS = (60, b"\x01\x04\x00\x00\x00\x00")  # destination options, PadN
ATOMIC_FRAGMENT = (44, b"\x00\x00\x00\x00\x00\x2a")  # offset 0, no more fragments
FIRST_FRAGMENT = (44, b"\x00\x01\x00\x00\x00\x2b")  # offset 0, more fragments


def _ipv6_extensions() -> Capture:
    """IPv6 keepalives behind destination options and atomic fragment headers (whole
    packets, RFC 6946), and some behind a real fragment header (tunnel data)."""
    cap = Capture()
    a, b = "2001:db8::1", "2001:db8::2"
    for i in range(8):
        t = 5.0 * i
        cap.ip_id += 2
        request = build_keepalive_request(a, b, key=9)
        reply = reflect_request(request)
        assert reply is not None
        if i == 5:  # a fragment: neither side may call it a keepalive
            cap.add(t, _with_extensions(request, FIRST_FRAGMENT))
            continue
        cap.add(t, _with_extensions(request, PAD_OPTIONS, ATOMIC_FRAGMENT))
        if i != 3:
            cap.add(t + 0.01, _with_extensions(reply, ATOMIC_FRAGMENT))
    return cap


def _burst() -> Capture:
    """A stalled endpoint releases three queued keepalives at once, then a later burst of
    two after a gap: a burst stands for the ticks its sends make, it invents none."""
    cap = Capture()
    a, b = "192.0.2.1", "198.51.100.1"
    times = [10.0 * i for i in range(8)]
    times += [100.0, 100.05, 100.1]  # the ticks of 80, 90 and 100 s, released together
    times += [110.0 + 10.0 * i for i in range(5)]
    times += [190.0, 190.02]  # 160-180 s lost, 190 and 200 s released early together
    times += [210.0, 220.0]
    for t in times:
        cap.reply(t + 0.01, cap.request(t, a, b))
    return cap


def _two_periods() -> Capture:
    """One interval of 10 s, then nine of 20 s: the longest period most intervals agree
    with, not the shortest interval with every other tick missing."""
    cap = Capture()
    a, b = "192.0.2.1", "198.51.100.1"
    times = [0.0, 10.0] + [10.0 + 20.0 * i for i in range(1, 10)]
    for i, t in enumerate(times):
        request = cap.request(t, a, b)
        if i not in (5, 6, 7):
            cap.reply(t + 0.02, request)
    return cap


def _capture_gap() -> Capture:
    """Two hours without a packet: the capture was not running, so nothing is extrapolated
    across the gap (each side is a timeline of its own)."""
    cap = Capture()
    a, b = "192.0.2.1", "198.51.100.1"
    for t in [10.0 * i for i in range(11)] + [7300.0 + 10.0 * i for i in range(11)]:
        request = cap.request(t, a, b)
        if t not in (90.0, 100.0):
            cap.reply(t + 0.02, request)
    return cap


def _long_silence() -> Capture:
    """Eleven hours without a packet (longer than any keepalive period may be) and bursts
    on either side: the silence is neither a period nor an interval of the sender's."""
    cap = Capture()
    a, b = "192.0.2.1", "198.51.100.1"
    times = [5.0 * i for i in range(10)] + [47.0, 47.1]
    times += [40000.0 + 5.0 * i for i in range(10)] + [40048.0, 40048.05]
    for i, t in enumerate(sorted(times)):
        request = cap.request(t, a, b)
        if i % 4 != 1:
            cap.reply(t + 0.02, request)
    return cap


def _one_long_interval() -> Capture:
    """192.0.2.1 sends every 10 s for 300 s, falls silent with the whole capture for 5,700 s
    (longer than the hour of the capture-gap threshold) and sends again from 6,000 s;
    192.0.2.7 sends only at 6,005 s and 8,005 s. One interval of 2,000 s is no evidence of
    a period: it must not stretch the threshold to ten periods (20,000 s) and hide the gap,
    or 192.0.2.1 would be extrapolated across it (569 missing ticks, a false down)."""
    cap = Capture()
    for t in [10.0 * i for i in range(31)] + [6000.0 + 10.0 * i for i in range(31)]:
        cap.reply(t + 0.02, cap.request(t, "192.0.2.1", "198.51.100.1"))
    for t in (6005.0, 8005.0):
        cap.reply(t + 0.02, cap.request(t, "192.0.2.7", "198.51.100.7"))
    return cap


def _nested_tunnel_cut_to_60_bytes() -> Capture:
    """Keepalives every 10 s, answered, and a tunnel inside the tunnel sending two small
    packets a second (GRE carrying 20 bytes, between other addresses); every frame cut to
    60 bytes as `tcpdump -s 60` takes it. The requests, cut inside their inner GRE header,
    are still requests; the inner tunnel's packets, as short but not addressed back to
    their sender, are tunnel data."""
    cap = Capture()
    a, b = "192.0.2.1", "198.51.100.1"
    for k in range(12):
        cap.reply(10.0 * k + 0.03, cap.request(10.0 * k, a, b))
    inner = build_ip("198.51.100.7", "203.0.113.7", build_gre(0x0800, bytes(20)))
    for k in range(240):
        cap.add(0.25 + k / 2, build_ip(a, b, build_gre(0x0800, inner)))
    cap.frames = sorted((t, frame[:60]) for t, frame in cap.frames)
    return cap


SCENARIO_NAMES = ("technote", "variants")
DIAGNOSE = ROOT / "tests" / "data" / "diagnose"
# The diagnosis scenarios: legs down, one-sided, filtered replies, NAT, overlay, keys that
# differ by direction, other vendors' senders (analyze applies the IOS rules by default).
DIAGNOSE_NAMES = tuple(sorted(path.stem for path in DIAGNOSE.glob("*.toml")))

BUILT = {
    "ipv6-extensions": _ipv6_extensions,
    "duplicates": _duplicates,
    "unmatched": _unmatched,
    "ipv6-gap": _ipv6_gap,
    "nat": _nat,
    "jitter": _jitter,
    "burst": _burst,
    "two-periods": _two_periods,
    "capture-gap": _capture_gap,
    "long-silence": _long_silence,
    "one-long-interval": _one_long_interval,
    "nested-tunnel-cut": _nested_tunnel_cut_to_60_bytes,
}


@pytest.fixture(scope="module")
def extra_captures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("lua-captures")
    made = {name: _write(build(), directory / f"{name}.pcap") for name, build in BUILT.items()}
    for name in SCENARIO_NAMES:
        path = directory / f"scenario-{name}.pcap"
        simulate(load_scenario(SCENARIOS / f"{name}.toml"), path)
        made[path.stem] = path
    for name in DIAGNOSE_NAMES:
        path = directory / f"diagnose-{name}.pcap"
        simulate(load_scenario(DIAGNOSE / f"{name}.toml"), path)
        made[path.stem] = path
    return made


# --- the generated file ------------------------------------------------------------------


def test_repository_plugin_is_the_generated_one() -> None:
    assert LUA.read_text(encoding="utf-8") == generate_lua(None, None, None), (
        "lua/gre_keepalive.lua drifted from the generator: "
        "run `gre-keepalive export-lua -o lua/gre_keepalive.lua`"
    )


def test_generation_is_deterministic() -> None:
    config = load_config(CAPTURES / "router-a.cfg")
    assert generate_lua(config, 5.0, 4) == generate_lua(config, 5.0, 4)


def test_plugin_constants_are_the_analyzers() -> None:
    """The plugin re-implements the analyzer's rules in Lua: the thresholds both use must
    be the same numbers (a change on the Python side alone fails here, not only on the
    captures that happen to cross it)."""
    from analyzer import options
    from analyzer.keepalive import analysis as python_analysis
    from analyzer.keepalive import pairing, segments, state, timeline

    python = {
        "MAX_RTT": pairing.MAX_RTT,
        "DUPLICATE_WINDOW": pairing.DUPLICATE_WINDOW,
        "DEFAULT_PERIOD": state.DEFAULT_PERIOD,
        "DEFAULT_RETRIES": state.DEFAULT_RETRIES,
        "MAX_PERIOD": state.MAX_PERIOD,
        "MAX_RETRIES": state.MAX_RETRIES,
        "MIN_PERIOD": options.MIN_PERIOD,
        "MAX_LISTED_TICKS": timeline.MAX_LISTED_TICKS,
        "BURST_FRACTION": python_analysis.BURST_FRACTION,
        "PERIOD_TOLERANCE": python_analysis.PERIOD_TOLERANCE,
        "CLUSTER_TOLERANCE": python_analysis.CLUSTER_TOLERANCE,
        "DOMINANT_SHARE": python_analysis.DOMINANT_SHARE,
        "MAX_CANDIDATES": python_analysis.MAX_CANDIDATES,
        "LISTED_MULTIPLES": python_analysis.LISTED_MULTIPLES,
        "DEFAULT_CAPTURE_GAP": segments.DEFAULT_CAPTURE_GAP,
        "GAP_PERIODS": segments.GAP_PERIODS,
    }
    text = LUA.read_text(encoding="utf-8")
    lua = {
        name: float(value)
        for name, value in re.findall(r"^local (\w+)(?:, \w+)? = ([\d.]+)\b", text, re.MULTILINE)
    }
    assert {name: lua.get(name) for name in python} == {
        name: float(value) for name, value in python.items()
    }


def test_every_field_and_expert_is_documented_in_the_header() -> None:
    text = LUA.read_text(encoding="utf-8")
    header = text[: text.index("\nlocal ")]
    registered = set(re.findall(r'Proto(?:Field\.\w+|Expert\.new)\(\s*"(grekeepalive\.\w+)"', text))
    assert len(registered) >= 20
    assert not {name for name in registered if name not in header}
    for pref in ("grekeepalive.period", "grekeepalive.retries"):
        assert pref in header


def export_lua(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `gre-keepalive export-lua ARGS` as a process (stdout, stderr, exit status)."""
    return subprocess.run(
        [sys.executable, "-m", "analyzer", "export-lua", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env=env,
    )


def test_export_lua_writes_stdout_and_files(tmp_path: Path) -> None:
    result = export_lua("-o", "-")
    assert result.returncode == 0
    assert result.stdout == generate_lua(None, None, None)
    out = tmp_path / "plugin.lua"
    assert main(["export-lua", "--retries", "4", "--period", "2.5", "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "local PREF_RETRIES_DEFAULT = 4\n" in text
    assert 'local PREF_PERIOD_DEFAULT = "2.5"\n' in text


def test_export_lua_help() -> None:
    result = export_lua("--help")
    assert result.returncode == 0
    for word in ("--config", "--period", "--retries", "post-dissector", "plugins"):
        assert word in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--config", "no-such.cfg"], "no-such.cfg: cannot read: no such file"),
        (["--retries", "0"], "retries 0 out of range"),
        # a folder cannot be made where a file is (even as root)
        (["-o", "README.md/x.lua"], "README.md/x.lua: cannot write"),
    ],
)
def test_export_lua_errors_are_one_line_exit_2(args: list[str], message: str) -> None:
    result = export_lua(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        # a folder cannot be made where a file is: the name comes back escaped, one line
        (
            ["-o", "README.md/new\nline\x1b]0;title\a.lua"],
            "README.md/new\\nline\\033]0;title\\a.lua",
        ),
        (["--config", "no\nsuch\x1b[31m.cfg"], "such\\033[31m.cfg"),
    ],
)
def test_export_lua_error_escapes_the_name_given(args: list[str], shown: str) -> None:
    result = export_lua(*args)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("gre-keepalive: error: ") and shown in line, result.stderr
    assert not any(c in line for c in "\x1b\a")


def test_config_table_is_baked_in() -> None:
    text = generate_lua(load_config(CAPTURES / "router-a.cfg"), None, None)
    assert (
        '["192.0.2.1 198.51.100.1 none"] = { keepalive = true, period = 5.0, retries = 4, '
        'where = "router-a.cfg:7 Tunnel0" },'
    ) in text


# --- the plugin in tshark ----------------------------------------------------------------


@needs_tshark
@pytest.mark.parametrize("capture", all_captures(), ids=lambda p: p.name)
def test_plugin_agrees_with_analysis(capture: Path, tmp_path: Path) -> None:
    assert_agree(analysis(capture, tmp_path), lua_frames(capture))


@needs_tshark
@pytest.mark.parametrize(
    "name",
    [
        *BUILT,
        *(f"scenario-{name}" for name in SCENARIO_NAMES),
        *(f"diagnose-{name}" for name in DIAGNOSE_NAMES),
    ],
)
def test_plugin_agrees_on_built_captures(
    name: str, extra_captures: dict[str, Path], tmp_path: Path
) -> None:
    capture = extra_captures[name]
    document = analysis(capture, tmp_path)
    assert expected_frames(document), "the capture has keepalives"
    assert_agree(document, lua_frames(capture))


@needs_tshark
def test_one_interval_does_not_stretch_the_capture_gap(
    extra_captures: dict[str, Path], tmp_path: Path
) -> None:
    """Frames 1-62: 192.0.2.1's 31 keepalives and replies before the silence; frame 63 is
    its send at 6,000 s, the first of a new timeline: counter 1, up."""
    frames = lua_frames(extra_captures["one-long-interval"])
    assert (frames[63].get("counter"), frames[63].get("line_state")) == ("1", "up")
    assert not any(f.has("grekeepalive.transition") for f in frames.values())


def _down_frames(document: dict[str, Any]) -> set[int]:
    return {
        e["frame"]
        for o in originators(document)
        for e in o["keepalives"]
        if e["frame"] is not None and e["line_state"] == "down"
    }


@needs_tshark
@pytest.mark.parametrize(
    "capture",
    [CAPTURES / "outage.pcap", CAPTURES / "keyed.pcap"],
    ids=lambda p: p.name,
)
def test_down_filter_selects_the_frames_the_analysis_calls_down(
    capture: Path, tmp_path: Path
) -> None:
    stdout = tshark(
        capture,
        LUA,
        "-T",
        "fields",
        "-e",
        "frame.number",
        display_filter='grekeepalive.line_state == "down"',
    )
    selected = {int(line) for line in stdout.split()}
    assert selected == _down_frames(analysis(capture, tmp_path))
    assert selected


@needs_tshark
def test_config_changes_when_the_line_goes_down(tmp_path: Path) -> None:
    capture = CAPTURES / "outage.pcap"
    config = CAPTURES / "router-a.cfg"
    script = tmp_path / "with-config.lua"
    assert main(["export-lua", "--config", str(config), "-o", str(script)]) == 0
    frames = lua_frames(capture, script)
    assert_agree(analysis(capture, tmp_path, "--config", str(config)), frames)
    default = lua_frames(capture)
    # 192.0.2.1 (keepalive 5 4): down at its send at t = 55 s (frame 886), not at 50 s.
    assert frames[886].get("transition") == "down"
    assert default[835].get("transition") == "down"
    assert frames[835].get("line_state") == "up" and frames[835].get("counter") == "4"
    assert (frames[886].get("retries"), frames[886].get("retries_source")) == ("4", "config")
    assert (frames[886].get("period"), frames[886].get("period_source")) == ("5", "config")
    # 198.51.100.1 is not in the file: default retries, inferred period.
    assert frames[890].get("retries_source") == "default"


@needs_tshark
def test_toml_config_defaults_and_keys(tmp_path: Path) -> None:
    config = tmp_path / "tunnels.toml"
    config.write_text(
        "[defaults]\nretries = 2\n\n"
        '[[tunnel]]\nsource = "192.0.2.1"\ndestination = "203.0.113.9"\nkey = 42\n'
        "period = 2\nretries = 5\n",
        encoding="utf-8",
    )
    script = tmp_path / "toml.lua"
    assert main(["export-lua", "--config", str(config), "-o", str(script)]) == 0
    text = script.read_text(encoding="utf-8")
    assert '["192.0.2.1 203.0.113.9 42"] = { keepalive = true, period = 2.0, retries = 5' in text
    assert "local CONFIG_DEFAULT_RETRIES = 2\n" in text
    capture = CAPTURES / "keyed.pcap"
    frames = lua_frames(capture, script)
    document = analysis(capture, tmp_path, "--config", str(config))
    assert_agree(document, frames)
    sources = {
        (f.get("originator"), f.get("retries"), f.get("retries_source")) for f in frames.values()
    }
    assert sources == {("192.0.2.1", "5", "config"), ("203.0.113.9", "2", "config")}


@needs_tshark
def test_config_names_ipv4_mapped_addresses_as_the_plugin_decodes_them(tmp_path: Path) -> None:
    """An IPv4-mapped IPv6 endpoint: the decoder writes ::ffff:192.0.2.1 (inet_ntop), so
    the baked-in table must too (Python's ipaddress writes ::ffff:c000:201)."""
    cap = Capture()
    a, b = "::ffff:192.0.2.1", "::ffff:198.51.100.1"
    for i in range(12):
        request = cap.request(5.0 * i, a, b)
        if not 4 <= i <= 9:
            cap.reply(5.0 * i + 0.02, request)
    capture = _write(cap, tmp_path / "mapped.pcap")
    config = tmp_path / "mapped.toml"
    config.write_text(
        '[[tunnel]]\nsource = "::ffff:c000:201"\ndestination = "::ffff:198.51.100.1"\n'
        "period = 5\nretries = 2\n",
        encoding="utf-8",
    )
    script = tmp_path / "mapped.lua"
    assert main(["export-lua", "--config", str(config), "-o", str(script)]) == 0
    assert '["::ffff:192.0.2.1 ::ffff:198.51.100.1 none"]' in script.read_text(encoding="utf-8")
    frames = lua_frames(capture, script)
    assert_agree(analysis(capture, tmp_path, "--config", str(config)), frames)
    # Frames 1-8: four answered keepalives. Sends at 20 s and 25 s (frames 9, 10) go
    # unanswered (counter 2): the send at 30 s (frame 11) finds 2 >= retries 2: down.
    assert (frames[11].get("retries"), frames[11].get("retries_source")) == ("2", "config")
    assert frames[11].get("transition") == "down"


@needs_tshark
def test_retries_option_sets_the_preference_default(tmp_path: Path) -> None:
    capture = CAPTURES / "outage.pcap"
    script = tmp_path / "retries4.lua"
    assert main(["export-lua", "--retries", "4", "-o", str(script)]) == 0
    frames = lua_frames(capture, script)
    assert {(f.get("retries"), f.get("retries_source")) for f in frames.values()} == {("4", "cli")}
    assert_agree(analysis(capture, tmp_path, "--retries", "4"), frames)


@needs_tshark
def test_preferences_override_the_defaults(tmp_path: Path) -> None:
    capture = CAPTURES / "keyed.pcap"
    frames = lua_frames(capture, LUA, "-o", "grekeepalive.retries:2", "-o", "grekeepalive.period:2")
    assert {(f.get("retries_source"), f.get("period_source")) for f in frames.values()} == {
        ("preference", "preference")
    }
    assert_agree(analysis(capture, tmp_path, "--retries", "2", "--period", "2"), frames)


@needs_tshark
def test_tree_shows_the_down_transition() -> None:
    stdout = tshark(CAPTURES / "outage.pcap", LUA, "-V", display_filter="frame.number == 835")
    assert "GRE Keepalive request, originator 192.0.2.1: counter 4/3, line protocol down" in stdout
    assert "Line protocol of 192.0.2.1 goes down: counter 3 >= retries 3 at this send" in stdout
    assert "Keepalive of 192.0.2.1 unanswered" in stdout


@needs_tshark
def test_numeric_fields_show_their_value_names() -> None:
    """The numeric twins of type, line state and transition carry value strings."""
    stdout = tshark(CAPTURES / "outage.pcap", LUA, "-V", display_filter="frame.number == 835")
    for line in ("Type code: request (1)", "Line protocol code: down (2)"):
        assert f"[{line}]" in stdout
    assert "[Transition code: down (1)]" in stdout
    reply = tshark(CAPTURES / "outage.pcap", LUA, "-V", display_filter="frame.number == 923")
    assert "[Type code: reply (2)]" in reply and "[Transition code: up (2)]" in reply
    assert "[Line protocol code: up (1)]" in reply


MODE_CAPTURES = (
    CAPTURES / "outage.pcap",
    CAPTURES / "keyed.pcap",
    ROOT / "tests" / "data" / "real" / "tcpdump__various_gre.pcap",
)
MODE_BUILT = ("duplicates", "ipv6-gap")


@needs_tshark
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("capture", MODE_CAPTURES, ids=lambda p: p.name)
def test_every_tshark_mode_agrees_with_analysis(capture: Path, mode: str, tmp_path: Path) -> None:
    """One pass or two, with or without a display filter: every frame shows the whole
    capture's result (links, unanswered warnings and all)."""
    assert_agree(analysis(capture, tmp_path), lua_frames(capture, mode=mode))


@needs_tshark
@pytest.mark.parametrize("mode", ["one-pass", "-2"])
@pytest.mark.parametrize("name", MODE_BUILT)
def test_every_tshark_mode_agrees_on_built_captures(
    name: str, mode: str, extra_captures: dict[str, Path], tmp_path: Path
) -> None:
    capture = extra_captures[name]
    assert_agree(analysis(capture, tmp_path), lua_frames(capture, mode=mode))


def _gap_first() -> Capture:
    """An originator whose first interval is a gap of eight ticks: the documented case."""
    cap = Capture()
    a, b = "192.0.2.1", "198.51.100.1"
    for t in (0.0, 40.0, 45.0, 50.0, 55.0, 60.0, 65.0):
        cap.reply(t + 0.02, cap.request(t, a, b))
    return cap


@needs_tshark
def test_period_is_inferred_from_the_whole_capture(tmp_path: Path) -> None:
    """Sends at 0 s and 40 s, then every 5 s: the period is 5 s from all intervals, so 7
    ticks are missing before the send at 40 s (down at 20 s, counter 8 after it) — also
    on that frame, although only one 40 s interval precedes it."""
    capture = _write(_gap_first(), tmp_path / "gap-first.pcap")
    document = analysis(capture, tmp_path)
    frames = lua_frames(capture)
    assert expected_frames(document)[3][3:5] == (8, "down")
    assert (frames[3].get("counter"), frames[3].get("line_state")) == ("8", "down")
    assert (frames[3].get("period"), frames[3].get("period_source")) == ("5", "inferred")
    assert_agree(document, frames)


# --- link layers and encapsulations: the plugin's own decoder ----------------------------


def _two_originators(a: str, b: str, **kw: Any) -> list[tuple[float, bytes]]:
    """IP packets (time, bytes): a and b send every 5 s (b 2.5 s after a) for 24 ticks;
    the requests sent from 30 s to 70 s get no reply (a: 9 of them, b: 8), so each line
    goes down and comes back. 48 requests + 31 replies = 79 keepalive frames, and one
    tunnel data packet a -> b per tick."""
    packets: list[tuple[float, bytes]] = []
    ident = 1000
    for tick in range(24):
        for origin, peer, offset in ((a, b, 0.0), (b, a, 2.5)):
            t = 5.0 * tick + offset
            ident += 2
            request = build_keepalive_request(
                origin, peer, outer_id=ident, inner_id=ident - 1, **kw
            )
            packets.append((t, request))
            if not 30.0 <= t <= 70.0:
                reply = reflect_request(request)
                assert reply is not None
                packets.append((t + 0.02, reply))
        packets.append((5.0 * tick + 1.0, build_gre_data(a, b, key=kw.get("key"), ip_id=tick)))
    return sorted(packets, key=lambda packet: packet[0])


TWO_ORIGINATORS_KEEPALIVES = 79

MACS = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01"  # destination, source


def _ethertype(ip: bytes) -> bytes:
    return b"\x86\xdd" if ip[0] >> 4 == 6 else b"\x08\x00"


def _ethernet(ip: bytes) -> bytes:
    return (MACS + _ethertype(ip) + ip).ljust(60, b"\x00")  # padded to the minimum frame


def _vlan(ip: bytes) -> bytes:
    tag = b"\x81\x00" + b"\x00\x0a"  # 802.1Q, VLAN 10
    return (MACS + tag + _ethertype(ip) + ip).ljust(60, b"\x00")


def _qinq(ip: bytes) -> bytes:
    outer = b"\x88\xa8" + b"\x00\x64"  # 802.1ad service tag, VLAN 100
    inner = b"\x81\x00" + b"\x00\x0a"  # 802.1Q customer tag, VLAN 10
    return (MACS + outer + inner + _ethertype(ip) + ip).ljust(60, b"\x00")


def _mpls(ip: bytes) -> bytes:
    mpls = b"\x88\x47"  # MPLS unicast
    label_16 = b"\x00\x01\x00\x40"  # label 16, not bottom of stack, TTL 64
    label_17 = b"\x00\x01\x11\x40"  # label 17, bottom of stack (S bit), TTL 64
    return MACS + mpls + label_16 + label_17 + ip


def _pppoe(ip: bytes) -> bytes:
    ppp = b"\x00\x21" if ip[0] >> 4 == 4 else b"\x00\x57"  # PPP protocol: IPv4 / IPv6
    session = b"\x11\x00\x12\x34" + (len(ip) + 2).to_bytes(2, "big")  # v1 t1, code 0, ID, length
    return MACS + b"\x88\x64" + session + ppp + ip  # EtherType PPPoE session stage


def _sll(ip: bytes) -> bytes:
    return (
        b"\x00\x00"  # packet type: to us
        + b"\x00\x01"  # ARPHRD_ETHER
        + b"\x00\x06"  # address length
        + b"\x02\x00\x00\x00\x00\x01\x00\x00"  # address, padded to 8
        + _ethertype(ip)
        + ip
    )


def _sll2(ip: bytes) -> bytes:
    return (
        _ethertype(ip)
        + b"\x00\x00"  # reserved
        + b"\x00\x00\x00\x02"  # interface index 2
        + b"\x00\x01"  # ARPHRD_ETHER
        + b"\x00"  # packet type: to us
        + b"\x06"  # address length
        + b"\x02\x00\x00\x00\x00\x01\x00\x00"  # address, padded to 8
        + ip
    )


def _family(ip: bytes) -> int:
    return 2 if ip[0] >> 4 == 4 else 30  # AF_INET; AF_INET6 as macOS numbers it


def _null(ip: bytes) -> bytes:
    return _family(ip).to_bytes(4, "little") + ip  # the capturing host's byte order


def _loop(ip: bytes) -> bytes:
    return _family(ip).to_bytes(4, "big") + ip  # network byte order


def _ip_in_ip(ip: bytes) -> bytes:
    """The keepalive carried in another IP header (protocol 4 or 41)."""
    protocol = 4 if ip[0] >> 4 == 4 else 41
    return _ethernet(build_ip("203.0.113.1", "203.0.113.2", ip, protocol=protocol, ip_id=7))


def _ipv4_options(ip: bytes) -> bytes:
    """The outer IPv4 header with 4 bytes of options (header length 24)."""
    header = bytearray(ip[:20])
    header[0] = 0x46  # version 4, IHL 6 words
    header[2:4] = (len(ip) + 4).to_bytes(2, "big")  # total length
    header[10:12] = b"\x00\x00"  # checksum not checked
    options = b"\x01\x01\x01\x00"  # NOP, NOP, NOP, end of options
    return _ethernet(bytes(header) + options + ip[20:])


def _huawei_type_4(ip: bytes) -> bytes:
    """Requests with outer GRE protocol type 4 (some Huawei releases; IPv4, 20-byte header)."""
    if ip[22:24] == b"\x08\x00":
        ip = ip[:22] + b"\x00\x04" + ip[24:]
    return _ethernet(ip)


def _snaplen_60(ip: bytes) -> bytes:
    """Cut to 60 bytes as `tcpdump -s 60` takes it: 2 of a request's inner GRE bytes left."""
    return _ethernet(ip)[:60]


V4 = ("192.0.2.1", "198.51.100.1")
V6 = ("2001:db8::1", "2001:db8::2")
ETHERNET = LINKTYPE_ETHERNET
# name: (link type, framing, addresses, build_keepalive_request options)
ENCAPSULATIONS: dict[str, tuple[int, Any, tuple[str, str], dict[str, Any]]] = {
    "vlan": (ETHERNET, _vlan, V4, {}),
    "qinq": (ETHERNET, _qinq, V4, {}),
    "mpls": (ETHERNET, _mpls, V4, {}),
    "pppoe": (ETHERNET, _pppoe, V4, {}),
    "pppoe-ipv6": (ETHERNET, _pppoe, V6, {}),
    "sll": (LINKTYPE_LINUX_SLL, _sll, V4, {}),
    "sll2": (LINKTYPE_LINUX_SLL2, _sll2, V4, {}),
    "raw": (LINKTYPE_RAW, bytes, V4, {}),
    "raw-ipv4": (LINKTYPE_IPV4, bytes, V4, {}),
    "raw-ipv6": (LINKTYPE_IPV6, bytes, V6, {}),
    "null": (LINKTYPE_NULL, _null, V4, {}),
    "loop-ipv6": (LINKTYPE_LOOP, _loop, V6, {}),
    "ip-in-ip": (ETHERNET, _ip_in_ip, V4, {}),
    "ipv4-options": (ETHERNET, _ipv4_options, V4, {}),
    "gre-key-checksum": (ETHERNET, _ethernet, V4, {"key": 77, "checksum": True}),
    "cisco-metadata": (ETHERNET, _ethernet, V4, {"metadata_sgt": 42}),
    "huawei-type-4": (ETHERNET, _huawei_type_4, V4, {}),
    "snaplen-60": (ETHERNET, _snaplen_60, V4, {}),
    "ipv6-outer-ipv4-inner": (
        LINKTYPE_LINUX_SLL,
        _sll,
        V6,
        {"inner_src": "192.0.2.9", "inner_dst": "192.0.2.8"},
    ),
}


def _encapsulated(name: str, directory: Path) -> Path:
    linktype, frame, (a, b), options = ENCAPSULATIONS[name]
    path = directory / f"{name}.pcap"
    with PcapWriter(path, linktype) as writer:
        for t, packet in _two_originators(a, b, **options):
            writer.write(START + t, frame(packet))
    return path


@needs_tshark
@pytest.mark.parametrize("name", ENCAPSULATIONS)
def test_plugin_decodes_every_link_layer_and_encapsulation(name: str, tmp_path: Path) -> None:
    """The plugin reads the frames' bytes itself (no other dissector's fields): every
    framing the analyzer decodes gives the same keepalives, counters and transitions."""
    capture = _encapsulated(name, tmp_path)
    document = analysis(capture, tmp_path)
    assert len(expected_frames(document)) == TWO_ORIGINATORS_KEEPALIVES
    assert len(expected_experts(document)["unanswered"]) == 17
    assert_agree(document, lua_frames(capture, mode="one-pass"))


UNREADABLE_ENCAPSULATIONS = (
    "mpls",
    "sll",
    "sll2",
    "raw",
    "loop-ipv6",
    "cisco-metadata",
    "huawei-type-4",
    "snaplen-60",
)


@needs_tshark
@pytest.mark.parametrize("name", UNREADABLE_ENCAPSULATIONS)
def test_unreadable_file_decodes_every_link_layer(name: str, tmp_path: Path) -> None:
    """gzip without gzip installed: the plugin cannot read the file and decodes the bytes
    Wireshark hands it, trying the link types in turn; two passes give the analysis."""
    plain = _encapsulated(name, tmp_path)
    capture = tmp_path / f"{name}.pcap.gz"
    capture.write_bytes(gzip.compress(plain.read_bytes()))
    document = analysis(capture, tmp_path)
    assert len(expected_frames(document)) == TWO_ORIGINATORS_KEEPALIVES
    assert_agree(document, lua_frames(capture, mode="-2", unreadable=True))


# --- random access: sharkd (Wireshark's backend) ----------------------------------------

SHARKD = shutil.which("sharkd")
needs_sharkd = pytest.mark.skipif(
    SHARKD is None, reason="sharkd not installed: apt-get install tshark (wireshark-common)"
)


def _home_with_plugin(home: Path, text: str) -> dict[str, str]:
    """An environment whose personal Lua plugins folder holds `text` as the plugin."""
    folder = home / ".local" / "lib" / "wireshark" / "plugins"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gre_keepalive.lua").write_text(text, encoding="utf-8")
    return {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}


def _tree_fields(node: dict[str, Any], fields: dict[str, list[str]]) -> None:
    """Collect `grekeepalive.NAME == VALUE` (and bare expert names) under `node`."""
    expression = node.get("f", "")
    if expression.startswith("grekeepalive."):
        name, _, value = expression.partition(" == ")
        fields.setdefault(name, []).append(value.strip('"') if value else "1")
    for child in node.get("n", []):
        _tree_fields(child, fields)


def sharkd(requests: list[dict[str, Any]], env: dict[str, str]) -> tuple[dict[int, Any], str]:
    """Send `requests` to one sharkd session (the first loads a file); its replies by
    request number (from 1) and its stderr. No Lua error may reach stderr."""
    stdin = "".join(
        json.dumps({"jsonrpc": "2.0", "id": index, **request}) + "\n"
        for index, request in enumerate(requests, start=1)
    )
    result = subprocess.run(
        [SHARKD or "sharkd", "-"],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    stderr = [line for line in result.stderr.splitlines() if not line.startswith("load:")]
    assert "lua" not in "\n".join(stderr).lower(), result.stderr
    replies = {}
    for line in result.stdout.splitlines():
        if line.startswith("{"):
            reply = json.loads(line)
            replies[reply["id"]] = reply
    assert replies[1]["result"]["status"] == "OK", replies[1]
    return replies, result.stderr


def _sharkd_frame(reply: dict[str, Any], number: int) -> LuaFrame | None:
    """The plugin's fields in sharkd's reply to a `frame` request (None: none shown)."""
    fields: dict[str, list[str]] = {}
    for node in reply["result"]["tree"]:
        if node.get("f") == "grekeepalive":
            _tree_fields(node, fields)
    if not fields:
        return None
    row = {name: ",".join(fields.get(name, [])) for name in FIELDS}
    row["frame.number"] = str(number)
    return LuaFrame(number, row)


def assert_sharkd_agrees(
    document: dict[str, Any], capture: Path, numbers: list[int], env: dict[str, str]
) -> None:
    """sharkd, asked for `numbers` in that order, shows the analysis on every frame, and its
    filters select the frames the plugin marks and the unanswered ones the analysis has."""
    frames, marked, unanswered = sharkd_frames(capture, numbers, env)
    assert_agree(document, frames)
    assert marked == set(frames)
    assert unanswered == expected_experts(document)["unanswered"]


def sharkd_frames(
    capture: Path, numbers: list[int], env: dict[str, str]
) -> tuple[dict[int, LuaFrame], set[int], set[int]]:
    """Ask sharkd for `numbers` one at a time, in that order, right after loading; then
    for the frames `grekeepalive` and `grekeepalive.unanswered` select. Returns the
    plugin's fields per frame asked (frames it marks) and the two selections."""
    requests = [{"method": "load", "params": {"file": str(capture)}}]
    requests += [{"method": "frame", "params": {"frame": n, "proto": True}} for n in numbers]
    requests += [
        {"method": "frames", "params": {"filter": "grekeepalive"}},
        {"method": "frames", "params": {"filter": "grekeepalive.unanswered"}},
    ]
    replies, _stderr = sharkd(requests, env)
    frames: dict[int, LuaFrame] = {}
    for index, number in enumerate(numbers, start=2):
        frame = _sharkd_frame(replies[index], number)
        if frame is not None:
            frames[number] = frame
    marked = {row["num"] for row in replies[len(numbers) + 2]["result"]}
    unanswered = {row["num"] for row in replies[len(numbers) + 3]["result"]}
    return frames, marked, unanswered


def _keepalive_frames(document: dict[str, Any], capture: Path) -> list[int]:
    """The frames analyze calls keepalives (duplicates included: tshark finds those), and
    a few others that must stay unmarked."""
    stdout = tshark(capture, None, "-T", "fields", "-e", "frame.number", two_pass=False)
    every = [int(n) for n in stdout.split()]
    chosen = set(expected_frames(document)) | {every[0], every[-1], every[len(every) // 2]}
    chosen |= {
        int(n)
        for n in tshark(
            capture, None, "-T", "fields", "-e", "frame.number", display_filter="gre.proto == 0"
        ).split()
    }
    return sorted(chosen)


ORDERS = ("ascending", "descending", "shuffled")


def _asked_in(order: str, numbers: list[int], seed: int) -> list[int]:
    """The frame numbers in the order sharkd is asked for them (one of ORDERS)."""
    if order == "descending":
        return numbers[::-1]
    if order == "shuffled":
        shuffled = list(numbers)
        random.Random(seed).shuffle(shuffled)
        return shuffled
    return numbers


SHARKD_CAPTURES = (
    CAPTURES / "outage.pcap",
    ROOT / "tests" / "data" / "real" / "tcpdump__various_gre.pcap",
)


@needs_tshark
@needs_sharkd
@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("capture", SHARKD_CAPTURES, ids=lambda p: p.name)
def test_sharkd_agrees_in_any_order(capture: Path, order: str, tmp_path: Path) -> None:
    """Wireshark's backend opens frames in whatever order it is asked: every frame shows
    the analysis, and the filters select what it says."""
    document = analysis(capture, tmp_path)
    numbers = _asked_in(order, _keepalive_frames(document, capture), seed=17)
    env = _home_with_plugin(tmp_path / "home", generate_lua(None, None, None))
    assert_sharkd_agrees(document, capture, numbers, env)


@needs_tshark
@needs_sharkd
@pytest.mark.parametrize("order", ORDERS)
def test_sharkd_agrees_on_a_built_capture(
    order: str, extra_captures: dict[str, Path], tmp_path: Path
) -> None:
    capture = extra_captures["ipv6-gap"]
    document = analysis(capture, tmp_path)
    numbers = _asked_in(order, _keepalive_frames(document, capture), seed=3)
    env = _home_with_plugin(tmp_path / "home", generate_lua(None, None, None))
    frames, _marked, _unanswered = sharkd_frames(capture, numbers, env)
    assert_agree(document, frames)


@needs_tshark
@pytest.mark.parametrize(
    "read_filter",
    ["grekeepalive.unanswered", 'grekeepalive.line_state == "down"', "grekeepalive"],
)
def test_read_filter_in_two_passes_keeps_the_analysis(read_filter: str, tmp_path: Path) -> None:
    """tshark -2 -R drops the frames its read filter refuses in the first pass and numbers
    the others anew (a dropped frame's number goes to the next one): each frame kept
    still shows what the analysis says for it, found by its time."""
    capture = CAPTURES / "outage.pcap"
    document = analysis(capture, tmp_path)
    events = [
        (round(e["time"], 6), TYPES[e["type"]], o["address"], e["counter"], e["line_state"])
        for o in originators(document)
        for e in o["keepalives"]
        if e["frame"] is not None
    ]
    unanswered = {
        round(e["time"], 6)
        for o in originators(document)
        for e in o["keepalives"]
        if e["type"] == "sent" and e["frame"] is not None and e["partner_frame"] is None
    }
    selected = {
        "grekeepalive.unanswered": {e for e in events if e[0] in unanswered},
        'grekeepalive.line_state == "down"': {e for e in events if e[4] == "down"},
        "grekeepalive": set(events),
    }[read_filter]
    stdout = tshark(
        capture,
        LUA,
        "-R",
        read_filter,
        "-T",
        "fields",
        *("-e", "frame.time_epoch", "-e", "grekeepalive.type", "-e", "grekeepalive.originator"),
        *("-e", "grekeepalive.counter", "-e", "grekeepalive.line_state"),
    )
    shown = set()
    for line in stdout.splitlines():
        time, kind, address, counter, state = line.split("\t")
        shown.add((round(float(time), 6), kind, address, int(counter), state))
    assert len(selected) >= 7
    assert shown == selected


def _rewritten(path: Path, *sources: Path, swap_halves: bool = False) -> Path:
    """The frames of `sources` one file after the other (as `mergecap -a` writes them),
    with each one's second half first when `swap_halves`: frames out of time order."""
    with PcapWriter(path) as writer:
        for source in sources:
            with open_capture(source) as reader:
                frames = list(reader)
            if swap_halves:
                frames = frames[len(frames) // 2 :] + frames[: len(frames) // 2]
            for frame in frames:
                writer.write(frame.time, frame.data)
    return path


@needs_tshark
@needs_sharkd
@pytest.mark.parametrize("layout", ["halves-swapped", "concatenated"])
def test_out_of_order_files_agree_in_every_front_end(layout: str, tmp_path: Path) -> None:
    """Frames out of time order (a capture's second half first; two captures of the same
    hour one after the other): one pass, two passes with a filter and sharkd asked in
    descending order all show the analysis."""
    if layout == "halves-swapped":
        capture = _rewritten(tmp_path / "swapped.pcap", CAPTURES / "outage.pcap", swap_halves=True)
    else:
        sources = (CAPTURES / "outage.pcap", CAPTURES / "keyed.pcap")
        capture = _rewritten(tmp_path / "concatenated.pcap", *sources)
    document = analysis(capture, tmp_path)
    with open_capture(capture) as reader:
        times = [frame.time for frame in reader]
    assert times != sorted(times)
    assert len(expected_experts(document)["unanswered"]) >= 8
    for mode in ("one-pass", "-2 -Y"):
        assert_agree(document, lua_frames(capture, mode=mode))
    numbers = sorted(expected_frames(document), reverse=True)
    env = _home_with_plugin(tmp_path / "home", generate_lua(None, None, None))
    assert_sharkd_agrees(document, capture, numbers, env)


@needs_tshark
@needs_sharkd
def test_sharkd_setconf_recomputes_with_the_new_preference(tmp_path: Path) -> None:
    """sharkd's setconf changes a preference without telling the plugin (no
    prefs_changed): the next keepalive frame asked shows the analysis with the new value,
    and an invalid value is reported and replaced by its default."""
    capture = CAPTURES / "outage.pcap"
    env = _home_with_plugin(tmp_path / "home", generate_lua(None, None, None))

    def frame(number: int) -> dict[str, Any]:
        return {"method": "frame", "params": {"frame": number, "proto": True}}

    def setconf(value: str) -> dict[str, Any]:
        return {"method": "setconf", "params": {"name": "grekeepalive.retries", "value": value}}

    replies, stderr = sharkd(
        [
            {"method": "load", "params": {"file": str(capture)}},
            frame(835),
            setconf("4"),
            frame(835),
            frame(886),
            {"method": "frames", "params": {"filter": 'grekeepalive.transition == "down"'}},
            setconf("0"),
            frame(835),
        ],
        env,
    )
    shown: dict[int, LuaFrame] = {}
    for index, number in ((2, 835), (4, 835), (5, 886), (8, 835)):
        found = _sharkd_frame(replies[index], number)
        assert found is not None, f"nothing shown on frame {number} (request {index})"
        shown[index] = found
    retries3 = expected_frames(analysis(capture, tmp_path))
    retries4 = expected_frames(analysis(capture, tmp_path, "--retries", "4"))
    # outage.pcap: 192.0.2.1 goes down at its send at 50 s (frame 835) with retries 3, at
    # 55 s (frame 886) with retries 4; 198.51.100.1 on a tick the capture does not show.
    assert shown_frames({835: shown[2]})[835] == retries3[835]
    assert shown_frames({835: shown[4]})[835] == retries4[835]
    assert shown_frames({886: shown[5]})[886] == retries4[886]
    assert shown[4].get("retries_source") == "preference"
    assert shown[5].get("transition") == "down"
    assert {row["num"] for row in replies[6]["result"]} == {886, 890}
    assert "grekeepalive.retries 0 is out of range 1-255; using 3" in stderr
    assert '"grekeepalive.bad_preference"' in json.dumps(replies[8]["result"]["tree"])
    assert shown_frames({835: shown[8]})[835] == retries3[835]


@needs_tshark
@needs_sharkd
def test_sharkd_retap_sees_every_expert(tmp_path: Path) -> None:
    """A tap run after loading (as the GUI's Expert Information dialog does: every frame
    dissected again, in order, without a display filter) gets every expert info."""
    capture = CAPTURES / "outage.pcap"
    env = _home_with_plugin(tmp_path / "home", generate_lua(None, None, None))
    replies, _stderr = sharkd(
        [
            {"method": "load", "params": {"file": str(capture)}},
            {"method": "tap", "params": {"tap0": "expert"}},
        ],
        env,
    )
    (tap,) = replies[2]["result"]["taps"]
    mine = [detail for detail in tap["details"] if detail.get("p") == "GREKEEPALIVE"]
    shown = {
        name: {d["f"] for d in mine if d["m"].startswith(prefix)}
        for name, prefix in (
            ("unanswered", "Keepalive of"),
            ("down", "Line protocol of 192.0.2.1 goes down"),
            ("up", "Line protocol of 192.0.2.1 comes up"),
        )
    }
    experts = expected_experts(analysis(capture, tmp_path))
    assert shown["unanswered"] == experts["unanswered"] and len(shown["unanswered"]) == 8
    assert shown["down"] == {835} and shown["up"] == {923}


FRAME_NUMBER = ("-T", "fields", "-e", "frame.number")


# --- the rest of the issue: expert, two copies, preferences, fields, statistics, install


@needs_tshark
def test_expert_summary_without_display_filter_has_every_unanswered(tmp_path: Path) -> None:
    capture = CAPTURES / "outage.pcap"
    expected = sum(o["unanswered"] for o in originators(analysis(capture, tmp_path)))
    stdout = tshark(capture, LUA, "-q", "-z", "expert")
    counts = [
        int(line.split()[0])
        for line in stdout.splitlines()
        if "GREKEEPALIVE" in line and "unanswered" in line
    ]
    assert expected > 0
    assert sum(counts) == expected


@needs_tshark
def test_second_copy_is_reported_and_the_first_stays(tmp_path: Path) -> None:
    """The installed plugin (retries 3) and another copy (retries 4) given with -X: the
    second says so, naming both files, and the results are the first one's."""
    capture = CAPTURES / "outage.pcap"
    env = _home_with_plugin(tmp_path / "home", generate_lua(None, None, None))
    installed = tmp_path / "home" / ".local" / "lib" / "wireshark" / "plugins" / "gre_keepalive.lua"
    other = tmp_path / "retries4.lua"
    other.write_text(generate_lua(None, None, 4), encoding="utf-8")
    fields = [arg for name in FIELDS for arg in ("-e", name)]
    command = [TSHARK or "tshark", "-n", "-X", f"lua_script:{other}", "-r", str(capture)]
    result = subprocess.run(
        [*command, "-T", "fields", "-E", "occurrence=a", *fields],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert result.returncode == 0
    (message,) = [line for line in result.stderr.splitlines() if "loaded twice" in line]
    assert str(installed) in message and str(other) in message
    frames = _parse_rows(result.stdout)
    assert {f.get("retries") for f in frames.values()} == {"3"}
    assert_agree(analysis(capture, tmp_path), frames)


@needs_tshark
@pytest.mark.parametrize(
    ("preference", "message"),
    [
        ("grekeepalive.retries:0", "grekeepalive.retries 0 is out of range 1-255; using 3"),
        ("grekeepalive.retries:999", "grekeepalive.retries 999 is out of range 1-255; using 3"),
        ("grekeepalive.period:abc", 'grekeepalive.period "abc" is not a period'),
        ("grekeepalive.period:-5", 'grekeepalive.period "-5" is not a period'),
        # as --period refuses them: too fine to count ticks with, hexadecimal
        ("grekeepalive.period:1e-300", 'grekeepalive.period "1e-300" is not a period'),
        ("grekeepalive.period:0x10", 'grekeepalive.period "0x10" is not a period'),
    ],
)
def test_invalid_preference_is_reported_and_its_default_used(
    preference: str, message: str, tmp_path: Path
) -> None:
    capture = CAPTURES / "outage.pcap"
    command = [TSHARK or "tshark", "-n", "-X", f"lua_script:{LUA}", "-r", str(capture)]
    result = subprocess.run(
        [*command, "-o", preference, "-Y", "grekeepalive.bad_preference", *FRAME_NUMBER],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert [line for line in result.stderr.splitlines() if message in line], result.stderr
    document = analysis(capture, tmp_path)
    assert {int(n) for n in result.stdout.split()} == set(expected_frames(document))
    assert_agree(document, lua_frames(capture, LUA, "-o", preference))


@needs_tshark
def test_numeric_fields_match_the_strings() -> None:
    frames = lua_frames(CAPTURES / "outage.pcap")
    assert frames
    codes = {
        "type": {"request": "1", "reply": "2"},
        "line_state": {"up": "1", "down": "2"},
        "transition": {"down": "1", "up": "2"},
    }
    stdout = tshark(
        CAPTURES / "outage.pcap",
        LUA,
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        *("-e", "frame.number", "-e", "grekeepalive.type_code"),
        *("-e", "grekeepalive.line_state_code", "-e", "grekeepalive.transition_code"),
        display_filter="grekeepalive",
    )
    for line in stdout.splitlines():
        number, type_code, line_code, transition_code = line.split("\t")
        frame = frames[int(number)]
        assert type_code == codes["type"][frame.get("type")]
        assert line_code == codes["line_state"][frame.get("line_state")]
        transitions = frame.get("transition").split(",") if frame.get("transition") else []
        expected_codes = [codes["transition"][t] for t in transitions]
        assert (transition_code.split(",") if transition_code else []) == expected_codes


@needs_tshark
@pytest.mark.parametrize("capture", MODE_CAPTURES, ids=lambda p: p.name)
def test_transition_filter_finds_every_down(capture: Path, tmp_path: Path) -> None:
    """Downs on a tick the capture shows sit on that frame; downs on a tick it does not
    show sit on the originator's next keepalive frame, also as a transition."""
    document = analysis(capture, tmp_path)
    experts = expected_experts(document)
    stdout = tshark(
        capture,
        LUA,
        "-T",
        "fields",
        "-e",
        "frame.number",
        display_filter='grekeepalive.transition == "down"',
    )
    assert {int(n) for n in stdout.split()} == experts["down"] | experts["down_extrapolated"]
    by_code = tshark(
        capture,
        LUA,
        "-T",
        "fields",
        "-e",
        "frame.number",
        display_filter="grekeepalive.transition_code == 1",
    )
    assert by_code == stdout


def test_outage_has_a_down_on_an_unseen_tick(tmp_path: Path) -> None:
    """The transition-filter test covers both kinds of down on outage.pcap."""
    experts = expected_experts(analysis(CAPTURES / "outage.pcap", tmp_path))
    assert experts["down"] and experts["down_extrapolated"]


def _summary_rows(stdout: str) -> dict[tuple[str, str, str], list[str]]:
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Originator"))
    rows = {}
    for line in lines[start + 1 :]:
        if line.startswith("===="):
            break
        tokens = line.split()
        rows[(tokens[0], tokens[1], tokens[2])] = tokens[3:]
    return rows


@needs_tshark
@pytest.mark.parametrize("capture", MODE_CAPTURES, ids=lambda p: p.name)
def test_tunnels_statistics_agree_with_analysis(capture: Path, tmp_path: Path) -> None:
    document = analysis(capture, tmp_path)
    stdout = tshark(capture, LUA, "-q", "-z", "grekeepalive,tunnels", two_pass=False)
    rows = _summary_rows(stdout)
    expected = {}
    for tunnel in document["tunnels"]:
        key = "none" if tunnel["key"] is None else str(tunnel["key"])
        for o in tunnel["originators"]:
            downs = sum(1 for t in o["transitions"] if t["state"] == "down")
            expected[(o["address"], o["peer"], key)] = [
                o["sent"],
                o["returned"],
                o["unanswered"],
                downs,
                o["down_seconds"],
                o["period"],
                o["period_source"],
                o["retries"],
                o["retries_source"],
            ]
    assert rows.keys() == expected.keys()
    for name, (
        sent,
        returned,
        unanswered,
        downs,
        down_s,
        period,
        p_src,
        retries,
        r_src,
    ) in expected.items():
        shown = rows[name]
        assert [int(v) for v in shown[:4]] == [sent, returned, unanswered, downs], name
        assert abs(float(shown[4]) - down_s) <= 0.0005, name
        assert (float(shown[5]), shown[6], int(shown[7]), shown[8]) == (
            period,
            p_src,
            retries,
            r_src,
        )


@needs_tshark
def test_plugin_info_names_the_generator_version(tmp_path: Path) -> None:
    env = _home_with_plugin(tmp_path / "home", generate_lua(None, None, None))
    result = subprocess.run(
        [TSHARK or "tshark", "-G", "plugins"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    (line,) = [line for line in result.stdout.splitlines() if "gre_keepalive.lua" in line]
    assert line.split("\t")[1] == __version__


def test_install_creates_the_personal_plugins_folder(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / ".config")}
    result = export_lua("--install", "--retries", "4", env=env)
    assert result.returncode == 0, result.stderr
    target = tmp_path / ".local" / "lib" / "wireshark" / "plugins" / "gre_keepalive.lua"
    assert str(target) in result.stdout
    assert target.read_text(encoding="utf-8") == generate_lua(None, None, 4)


def test_output_folders_are_created(tmp_path: Path) -> None:
    out = tmp_path / "new" / "folder" / "gre_keepalive.lua"
    assert main(["export-lua", "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == generate_lua(None, None, None)


def _source_line(capture: Path, env: dict[str, str] | None = None) -> str:
    """What the tunnels statistics say the plugin read (one pass)."""
    stdout = tshark(capture, LUA, "-q", "-z", "grekeepalive,tunnels", two_pass=False, env=env)
    (line,) = [line for line in stdout.splitlines() if line.startswith("Source: ")]
    return line


@needs_tshark
def test_unreadable_file_agrees_in_two_passes(tmp_path: Path) -> None:
    """A gzip-compressed capture and no gzip: the plugin cannot read the file itself and
    decodes each frame as Wireshark dissects it; two passes still give the analysis."""
    capture = tmp_path / "outage.pcap.gz"
    capture.write_bytes(gzip.compress((CAPTURES / "outage.pcap").read_bytes()))
    assert "as Wireshark dissected them" in _source_line(capture, NO_GZIP)
    assert_agree(analysis(capture, tmp_path), lua_frames(capture, mode="-2 -Y", unreadable=True))


@needs_tshark
@pytest.mark.parametrize("mode", ["one-pass", "-2 -Y"])
@pytest.mark.parametrize("name", ["outage.pcap", "outage.pcapng"])
def test_gzip_file_is_read_through_gzip(name: str, mode: str, tmp_path: Path) -> None:
    """A gzip-compressed pcap or pcapng: the plugin reads it through gzip -dc, so even one
    pass shows the analysis."""
    plain = CAPTURES / "outage.pcap"
    if name.endswith(".pcapng"):
        plain = _as_pcapng(plain, tmp_path / name)
    capture = tmp_path / f"{name}.gz"
    capture.write_bytes(gzip.compress(plain.read_bytes()))
    assert "read by the plugin" in _source_line(capture)
    assert_agree(analysis(capture, tmp_path), lua_frames(capture, mode=mode))


def _as_pcapng(source: Path, target: Path) -> Path:
    """`source` rewritten as pcapng by editcap (the test is skipped without it)."""
    editcap = shutil.which("editcap")
    if editcap is None:
        pytest.skip("editcap not installed (wireshark-common)")
    subprocess.run(
        [editcap, "-F", "pcapng", "--set-unused", str(source), str(target)],
        capture_output=True,
        check=False,
        timeout=60,
    )
    if not target.exists():
        subprocess.run([editcap, "-F", "pcapng", str(source), str(target)], check=True, timeout=60)
    return target


@needs_tshark
def test_pcapng_with_nanoseconds_agrees(tmp_path: Path) -> None:
    capture = _as_pcapng(CAPTURES / "outage.pcap", tmp_path / "outage.pcapng")
    assert_agree(analysis(capture, tmp_path), lua_frames(capture, mode="one-pass"))


@needs_tshark
@needs_sharkd
def test_sharkd_agrees_on_an_unreadable_file(tmp_path: Path) -> None:
    """gzip without gzip: sharkd's loading pass hands the plugin every frame in order;
    frames asked afterwards, in descending order, show the analysis."""
    capture = tmp_path / "outage.pcap.gz"
    capture.write_bytes(gzip.compress((CAPTURES / "outage.pcap").read_bytes()))
    document = analysis(capture, tmp_path)
    numbers = sorted(expected_frames(document), reverse=True)
    env = _home_with_plugin(tmp_path / "home", generate_lua(None, None, None))
    env["PATH"] = NO_GZIP["PATH"]
    assert_sharkd_agrees(document, capture, numbers, env)


@needs_tshark
def test_statistics_menu_opens_the_tunnels_table(tmp_path: Path) -> None:
    """The GUI's Statistics entry, driven from tshark: the GUI functions are stood in for
    before the plugin loads, and the menu's callback is run once the capture is read."""
    driver = tmp_path / "gui.lua"
    driver.write_text(
        "local entry = nil\n"
        "_G.gui_enabled = function() return true end\n"
        "_G.register_menu = function(name, fn, group)\n"
        "    entry = {name = name, fn = fn, group = group}\n"
        "end\n"
        "_G.TextWindow = { new = function(title) return { set = function(self, text)\n"
        "    io.stdout:write('WINDOW ' .. title .. '\\n' .. text) end } end }\n"
        f"dofile({json.dumps(str(LUA))})\n"
        "local tap = Listener.new('frame')\n"
        "function tap.draw()\n"
        "    io.stdout:write('MENU ' .. entry.name .. ' ' .. entry.group .. '\\n')\n"
        "    entry.fn()\n"
        "end\n",
        encoding="utf-8",
    )
    stdout = tshark(CAPTURES / "outage.pcap", driver, "-q", two_pass=False)
    assert "MENU GRE Keepalive/Tunnels 3\n" in stdout  # MENU_STAT_GENERIC
    assert "WINDOW GRE keepalive tunnels\n" in stdout
    window = stdout[stdout.index("WINDOW") :]
    assert _summary_rows(window) == _summary_rows(
        tshark(CAPTURES / "outage.pcap", LUA, "-q", "-z", "grekeepalive,tunnels", two_pass=False)
    )
