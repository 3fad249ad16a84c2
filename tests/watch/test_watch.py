"""`gre-keepalive watch`: live keepalive tracking on an interface.

The namespace tests run the real command inside a veth namespace pair, with keepalive
requests sent from one side by a raw socket and reflected (or not) on the other, and check
the line-protocol timing in its JSON lines against SPEC.md §2.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import analyzer.read.live as live_capture
from analyzer.cli import main
from analyzer.keepalive.analysis import Settings
from analyzer.read.capture import LINKTYPE_ETHERNET, RawFrame, open_capture
from analyzer.read.packet import (
    FrameKind,
    build_ethernet,
    build_keepalive_request,
    decode_frame,
    reflect_request,
)
from analyzer.read.sources import InterfaceNotice
from tests.netns import veth_pair
from tests.read.test_live_capture import _wait_for_line

ROOT = Path(__file__).resolve().parents[2]
PERIOD = 1.0
RETRIES = 3
TOLERANCE = 0.3  # scheduling only: the sender sleeps to absolute deadlines

# --- in-process: a scripted source instead of libpcap ----------------------------------------


def _fake_live_frames(
    monkeypatch: pytest.MonkeyPatch, items: list[RawFrame | InterfaceNotice]
) -> dict[str, Any]:
    """Make `live_frames` return a source that yields `items`, then stays silent."""
    calls: dict[str, Any] = {}

    def fake(interface: str, **kwargs: Any) -> Any:
        calls["interface"] = interface
        calls.update(kwargs)

        def source(stop: threading.Event) -> Iterator[RawFrame | InterfaceNotice]:
            yield from items
            while not stop.wait(0.02):
                pass

        return source

    monkeypatch.setattr(live_capture, "live_frames", fake)
    return calls


def _keepalive_frames(now: float) -> list[RawFrame | InterfaceNotice]:
    request = build_keepalive_request("192.0.2.1", "192.0.2.2", outer_id=11, inner_id=10)
    reply = reflect_request(request)
    assert reply is not None
    return [
        InterfaceNotice(now, "eth0 re-opened"),
        RawFrame(1, now, LINKTYPE_ETHERNET, build_ethernet(request), 0, 0, 0),
        RawFrame(2, now + 0.001, LINKTYPE_ETHERNET, build_ethernet(reply), 0, 0, 0),
    ]


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_jsonl_line_goes_down_by_the_wall_clock(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    calls = _fake_live_frames(monkeypatch, _keepalive_frames(now))
    status = main(
        ["watch", "eth0", "--period", "0.2", "--retries", "2", "--duration", "1", "--tick", "0.05"]
    )
    out, err = capsys.readouterr()
    assert status == 0
    assert err == "gre-keepalive watch: listening on eth0 (keepalives and GRE data)\n"
    assert calls["interface"] == "eth0" and calls["write"] is None
    lines = _lines(out)  # the default format when stdout is not a terminal
    assert lines[0] == {
        "time": now,
        "event": "interface",
        "interface": "eth0",
        "message": "eth0 re-opened",
    }
    events = [(line["event"], line["counter"], line["frame"]) for line in lines[1:6]]
    assert events == [
        ("sent", 1, 1),
        ("returned", 0, 2),
        ("extrapolated", 1, None),
        ("extrapolated", 2, None),
        ("down", 2, None),
    ]
    down = lines[5]
    assert down["time"] == pytest.approx(now + 3 * 0.2, abs=1e-6)  # tick at period × 3
    assert down["originator"] == "192.0.2.1" and down["line_state"] == "down"


def test_filter_options_reach_the_capture(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = _fake_live_frames(monkeypatch, [])
    argv = ["watch", "eth0", "--format", "jsonl", "--no-data", "--filter", "host 192.0.2.1"]
    assert main([*argv, "--write", "x.pcap", "--duration", "0.1"]) == 0
    assert "listening on eth0 (keepalives)" in capsys.readouterr().err
    expression = calls["bpf_filter"](LINKTYPE_ETHERNET)
    assert "and (host 192.0.2.1)" in expression and "vlan" in expression
    assert "ip6 proto 0" not in expression  # --no-data: keepalive tests only
    assert "vlan" not in calls["bpf_filter"](113)  # Linux cooked ("any")
    assert calls["write"] == "x.pcap"


def test_tui_gets_the_source_settings_and_title(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_live_frames(monkeypatch, [])
    received: dict[str, Any] = {}

    def run_live(source: Any, settings: Settings, title: str) -> int:
        received.update(settings=settings, title=title)
        stop = threading.Event()
        stop.set()
        received["items"] = list(source(stop))
        return 7

    monkeypatch.setitem(sys.modules, "analyzer.tui.app", types.SimpleNamespace(run_live=run_live))
    config = tmp_path / "r.toml"
    config.write_text('[[tunnel]]\nsource = "192.0.2.1"\ndestination = "192.0.2.2"\n')
    argv = ["watch", "eth0", "--format", "tui", "--period", "5", "--retries", "4"]
    assert main([*argv, "--config", str(config), "--duration", "5"]) == 7
    settings = received["settings"]
    assert (settings.period, settings.retries) == (5.0, 4)
    assert settings.config is not None
    assert received["title"] == "gre-keepalive watch eth0" and received["items"] == []


def test_tui_unavailable_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = _fake_live_frames(monkeypatch, [])
    monkeypatch.setitem(sys.modules, "analyzer.tui.app", None)  # import raises ImportError
    assert main(["watch", "eth0", "--format", "tui"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("gre-keepalive watch: the terminal UI is not available (")
    assert err.endswith("); use --format jsonl\n") and err.count("\n") == 1
    assert calls == {}  # no capture was opened


def test_capture_errors_are_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(interface: str, **kwargs: Any) -> Any:
        raise live_capture.CapturePermissionError(f"cannot capture on {interface}: nope")

    monkeypatch.setattr(live_capture, "live_frames", refuse)
    assert main(["watch", "eth0", "--format", "jsonl"]) == 2
    assert capsys.readouterr().err == "gre-keepalive watch: error: cannot capture on eth0: nope\n"


def test_a_write_file_that_fails_is_named_in_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def failing(interface: str, **kwargs: Any) -> Any:
        def source(stop: threading.Event) -> Iterator[RawFrame]:
            raise live_capture.CaptureWriteError("/srv/live.pcap: cannot write (No space left)")
            yield  # a generator

        return source

    monkeypatch.setattr(live_capture, "live_frames", failing)
    status = main(["watch", "eth0", "--format", "jsonl", "--write", "/srv/live.pcap"])
    assert status == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "gre-keepalive watch: error: /srv/live.pcap: cannot write (No space left)"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--config", "/nonexistent/router.cfg"], "gre-keepalive watch: error: /nonexistent/"),
        (
            ["--tick", "0"],
            "gre-keepalive watch: error: argument --tick: 0 seconds out of range"
            " (a finite number above 0)",
        ),
        # a silent tunnel's down is found only by the clock check: an hour would be an hour late
        (["--tick", "3600"], "error: argument --tick: 3600 seconds is too long (at most 60:"),
        (["--duration", "soon"], "error: argument --duration: expected a number of seconds"),
        (["--format", "csv"], "error: argument --format: invalid choice"),
        (["--retries", "infer"], "error: argument --retries: retries must be a number for watch"),
        (["--retries", "0"], "error: argument --retries: retries 0 out of range"),
    ],
)
def test_usage_errors_are_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        status = main(["watch", "eth0", *argv])
        raise SystemExit(status)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


# --- real capture in a namespace pair -----------------------------------------------------------

SENDER = """\
import json, socket, sys, time
from analyzer.read.packet import build_keepalive_request
a, b, period, plan = sys.argv[1], sys.argv[2], float(sys.argv[3]), json.loads(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
start = time.monotonic()
for slot, key, ident in plan:
    time.sleep(max(0.0, start + slot * period - time.monotonic()))
    s.sendto(build_keepalive_request(a, b, key=key, inner_id=ident, outer_id=ident + 1), (b, 0))
"""

REFLECTOR = """\
import json, select, socket, sys, time
from analyzer.read.packet import LINKTYPE_RAW, FrameKind, decode_frame, reflect_request
peer, duration = sys.argv[1], float(sys.argv[2])
answer = {tuple(pair) for pair in json.loads(sys.argv[3])}
listen = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_GRE)
send = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
print("ready", flush=True)
end = time.monotonic() + duration
while time.monotonic() < end:
    if not select.select([listen], [], [], 0.1)[0]:
        continue
    packet = listen.recv(65535)
    decoded = decode_frame(LINKTYPE_RAW, packet)
    if decoded.kind is FrameKind.REQUEST and (decoded.key, decoded.inner.ip_id) in answer:
        send.sendto(reflect_request(packet), (peer, 0))
"""

# Tunnel 1 (no key): requests every period in slots 0-7; slots 0-1 answered, 2-4 not (the
# path fails), answers resume at slot 6. Tunnel 2 (key 7): slots 0-1 answered, then A's
# keepalives stop altogether (no packet at all: only the wall clock can bring it down).
PLAN = sorted(
    [(slot, None, 100 + slot) for slot in range(8)] + [(slot, 7, 200 + slot) for slot in (0, 1)],
    key=lambda entry: entry[0],
)
ANSWER = [(None, 100), (None, 101), (None, 106), (None, 107), (7, 200), (7, 201)]


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


def test_line_protocol_timing_in_a_namespace(tmp_path: Path) -> None:
    written = tmp_path / "watched.pcap"
    with veth_pair() as pair:
        a, b = pair.address_a, pair.address_b
        watcher = pair.popen(
            pair.ns_b,
            [sys.executable, "-m", "analyzer", "watch", pair.if_b, "--format", "jsonl",
             "--period", str(PERIOD), "--retries", str(RETRIES), "--duration", "25",
             "--write", str(written)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )  # fmt: skip
        reflector = None
        try:
            _wait_for_line(watcher.stderr, "listening on", 15)
            reflector = pair.popen(
                pair.ns_b,
                [sys.executable, "-c", REFLECTOR, a, "15", json.dumps(ANSWER)],
                stdout=subprocess.PIPE,
                cwd=ROOT,
            )
            _wait_for_line(reflector.stdout, "ready", 15)
            pair.run(
                pair.ns_a,
                [sys.executable, "-c", SENDER, a, b, str(PERIOD), json.dumps(PLAN)],
                cwd=ROOT,
            )
            time.sleep(1.0)  # the last reply, and a tick of the wall clock
            watcher.send_signal(signal.SIGINT)  # Ctrl-C: exits 0, quietly
            out, err = watcher.communicate(timeout=15)
        finally:
            _stop(watcher)
            if reflector is not None:
                _stop(reflector)
    assert watcher.returncode == 0, err
    assert err == b""  # after the "listening on" line: nothing, no traceback on Ctrl-C
    lines = _lines(out.decode())
    assert all(line["originator"] == a for line in lines if "originator" in line)

    # Tunnel 1: down period × retries after the first unanswered keepalive (slot 2, going
    # down at slot 5), up at the first returned keepalive once the answers resume.
    tunnel = [line for line in lines if line.get("key", "-") is None]
    sent = {line["ident"]: line for line in tunnel if line["event"] == "sent"}
    returned = {line["ident"]: line for line in tunnel if line["event"] == "returned"}
    assert sorted(sent) == list(range(100, 108)) and sorted(returned) == [100, 101, 106, 107]
    (down,) = [line for line in tunnel if line["event"] == "down"]
    (up,) = [line for line in tunnel if line["event"] == "up"]
    first_unanswered = sent[102]
    assert down["time"] - first_unanswered["time"] == pytest.approx(PERIOD * RETRIES, abs=TOLERANCE)
    assert down["time"] == sent[105]["time"] and down["frame"] == sent[105]["frame"]
    assert [sent[i]["counter"] for i in range(102, 106)] == [1, 2, 3, 4]
    assert up["time"] == returned[106]["time"] and up["counter"] == 0
    assert down["time"] < up["time"]

    # Tunnel 2: no packet after slot 1 — the ticks and the down transition come from the
    # wall clock, at exactly the period after the last send.
    silent = [line for line in lines if line.get("key") == 7]
    last_sent = [line for line in silent if line["event"] == "sent"][-1]
    assert last_sent["ident"] == 201
    ticks = [line for line in silent if line["event"] == "extrapolated"]
    assert [t["counter"] for t in ticks[:3]] == [1, 2, 3]
    (silent_down,) = [line for line in silent if line["event"] == "down"]
    assert silent_down["frame"] is None
    assert silent_down["time"] - ticks[0]["time"] == pytest.approx(PERIOD * RETRIES, abs=1e-6)
    assert ticks[0]["time"] - last_sent["time"] == pytest.approx(PERIOD, abs=1e-6)

    # The --write file holds every captured frame under the numbers the events give, and
    # the offline analysis of it finds the same transitions for tunnel 1.
    report = tmp_path / "offline.json"
    argv = ["analyze", str(written), "--period", "1", "--retries", "3", "--format", "json"]
    assert main([*argv, "-o", str(report)]) == 0
    (offline,) = [t for t in json.loads(report.read_text())["tunnels"] if t["key"] is None]
    (originator,) = [o for o in offline["originators"] if o["address"] == a]
    assert [(t["state"], t["time"], t["frame"]) for t in originator["transitions"]] == [
        ("down", down["time"], down["frame"]),
        ("up", up["time"], up["frame"]),
    ]
    with open_capture(written) as reader:
        frames = {frame.number: frame for frame in reader}
    for line in lines:
        if line.get("frame") is not None and line["event"] in ("sent", "returned"):
            decoded = decode_frame(LINKTYPE_ETHERNET, frames[line["frame"]].data)
            kind = FrameKind.REQUEST if line["event"] == "sent" else FrameKind.REPLY
            assert decoded.kind is kind
            assert line["ident"] == (decoded.inner.ip_id if decoded.inner else decoded.ip_id)


def test_interface_down_and_up_while_watching() -> None:
    with veth_pair() as pair:
        pair.set_link(pair.ns_b, pair.if_b, up=False)
        watcher = pair.popen(
            pair.ns_b,
            [sys.executable, "-m", "analyzer", "watch", pair.if_b, "--format", "jsonl",
             "--duration", "30"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )  # fmt: skip
        out = ""
        try:
            _wait_for_line(watcher.stderr, "listening on", 15)
            out += _wait_for_line(watcher.stdout, "waiting for it", 5)
            pair.set_link(pair.ns_b, pair.if_b, up=True)
            out += _wait_for_line(watcher.stdout, "re-opened", 5)
            pair.set_link(pair.ns_b, pair.if_b, up=False)
            out += _wait_for_line(watcher.stdout, "went down", 5)
            time.sleep(0.5)
            pair.set_link(pair.ns_b, pair.if_b, up=True)
            out += _wait_for_line(watcher.stdout, "re-opened", 5)
            watcher.send_signal(signal.SIGINT)
            rest, err = watcher.communicate(timeout=15)
            out += rest.decode()
        finally:
            _stop(watcher)
    assert watcher.returncode == 0 and "Traceback" not in err.decode()
    name = pair.if_b
    assert _notices(out) == [
        f"{name} is down (That device is not up); waiting for it",
        f"{name} re-opened",
        f"{name} went down (The interface went down); re-opening",
        f"{name} re-opened",
    ]


def _notices(process_output: str) -> list[str]:
    return [line["message"] for line in _lines(process_output) if line["event"] == "interface"]


def _run_watch(prefix: list[str], interface: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "analyzer", "watch", interface, "--format", "jsonl",
         "--duration", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )  # fmt: skip


def test_without_capture_permission_exit_2_with_one_line() -> None:
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv (util-linux) is needed to drop CAP_NET_RAW as root")
        # Root without CAP_NET_RAW/CAP_NET_ADMIN: what an unprivileged user gets.
        prefix = ["setpriv", "--bounding-set=-net_raw,-net_admin", "--inh-caps=-all"]
    else:
        prefix = []
    result = _run_watch(prefix, "lo")
    if result.returncode == 0:
        pytest.skip("this Python may capture without root (file capabilities)")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "gre-keepalive watch: error: cannot capture on lo: permission denied (run as root or "
        "grant CAP_NET_RAW and CAP_NET_ADMIN: sudo setcap cap_net_raw,cap_net_admin=eip "
        "$(readlink -f $(which python3)))\n"
    )


def test_no_such_interface_exit_2_with_one_line() -> None:
    if os.geteuid() != 0:
        pytest.skip("without capture permission libpcap reports that first")
    result = _run_watch([], "gk-nosuch0")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        "gre-keepalive watch: error: cannot capture on gk-nosuch0: "
        "No such device exists (SIOCGIFHWADDR: No such device)\n"
    )
