"""`watch` under load: keepalives on a capture of their own, losses counted and reported.

In-process tests script the capture (its frames and its kernel counters); the namespace
test floods a veth with GRE data while keepalive requests cross it, and checks that every
keepalive reaches `watch` and that the data figures are exact or marked as lower bounds.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import analyzer.read.live as live_capture
from analyzer.cli import main
from analyzer.read.bpf import keepalive_filter
from analyzer.read.capture import LINKTYPE_ETHERNET, RawFrame
from analyzer.read.packet import build_ethernet, build_keepalive_request, reflect_request
from analyzer.read.sources import (
    CaptureStats,
    DataFlow,
    HandleStats,
    InterfaceNotice,
    SourceItem,
)
from tests.netns import veth_pair
from tests.read.test_live_capture import _wait_for_line

ROOT = Path(__file__).resolve().parents[2]


class ScriptedCapture:
    """A stand-in for :class:`analyzer.read.live.LiveCapture`: yields `items` (a float is a
    pause in seconds), then stays silent; :meth:`stats` returns the counters `counters`
    holds at the time."""

    def __init__(self, items: list[SourceItem | float], counters: list[CaptureStats]) -> None:
        self.items = items
        self.counters = counters
        self.polls = 0

    def stats(self) -> CaptureStats:
        self.polls += 1
        return self.counters[0]

    def __call__(self, stop: threading.Event) -> Iterator[SourceItem]:
        for item in self.items:
            if isinstance(item, float):
                stop.wait(item)
            else:
                yield item
        while not stop.wait(0.02):
            pass


def _install(monkeypatch: pytest.MonkeyPatch, capture: ScriptedCapture) -> dict[str, Any]:
    calls: dict[str, Any] = {}

    def fake(interface: str, **kwargs: Any) -> ScriptedCapture:
        calls["interface"] = interface
        calls.update(kwargs)
        return capture

    monkeypatch.setattr(live_capture, "live_frames", fake)
    return calls


def _counters(
    keepalive_dropped: int = 0,
    data_dropped: int = 0,
    *,
    data: bool = True,
    packets: int = 0,
) -> CaptureStats:
    return CaptureStats(
        time=1000.0,
        keepalive=HandleStats(10 + keepalive_dropped, keepalive_dropped, 0),
        data=HandleStats(packets + data_dropped, data_dropped, 0) if data else None,
        data_packets=packets,
        flows=(DataFlow("192.0.2.1", "192.0.2.2", None, packets),) if packets else (),
    )


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def _exchange(now: float) -> list[SourceItem | float]:
    """One keepalive of 192.0.2.1 that comes back (ident 10), at `now`."""
    request = build_keepalive_request("192.0.2.1", "192.0.2.2", outer_id=11, inner_id=10)
    reply = reflect_request(request)
    assert reply is not None
    return [
        RawFrame(1, now, LINKTYPE_ETHERNET, build_ethernet(request), 0, 0, 0),
        RawFrame(2, now + 0.001, LINKTYPE_ETHERNET, build_ethernet(reply), 0, 0, 0),
    ]


def _watch(*extra: str) -> list[str]:
    return ["watch", "eth0", "--format", "jsonl", "--tick", "0.05", *extra]


def test_keepalives_and_data_get_a_filter_each_and_the_buffer_size(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = _install(monkeypatch, ScriptedCapture([], [_counters()]))
    assert main(_watch("--buffer-size", "64", "--duration", "0.1")) == 0
    capsys.readouterr()
    assert calls["buffer_size"] == 64 << 20
    # the keepalive capture passes keepalives only; the data capture every GRE packet
    assert calls["bpf_filter"](LINKTYPE_ETHERNET) == keepalive_filter(include_data=False)
    assert calls["data_filter"](LINKTYPE_ETHERNET) == keepalive_filter(include_data=True)
    assert main(_watch("--no-data", "--duration", "0.1")) == 0
    assert calls["data_filter"] is None
    assert calls["buffer_size"] == 32 << 20  # the default


@pytest.mark.parametrize("size", ["0", "4097", "1.5", "lots"])
def test_buffer_size_must_be_whole_mib(size: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["watch", "eth0", "--buffer-size", size])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "argument --buffer-size" in err and err.count("\n") == 1


def test_stats_lines_come_every_interval_and_once_more_at_exit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _install(monkeypatch, ScriptedCapture([], [_counters(packets=500)]))
    assert main(_watch("--stats-interval", "0.4", "--duration", "1.0")) == 0
    lines = _lines(capsys.readouterr().out)
    stats = [line for line in lines if line["event"] == "stats"]
    # at 0.4 s and 0.8 s, then the final one
    assert [line["final"] for line in stats] == [False, False, True]
    assert stats[-1] == {
        "time": 1000.0,
        "event": "stats",
        "interface": "eth0",
        "final": True,
        "keepalive_capture": {"received": 10, "dropped": 0, "interface_dropped": 0},
        "data_capture": {"received": 500, "dropped": 0, "interface_dropped": 0},
        "data_packets": 500,
        "data_lower_bound": False,
        "data_flows": [{"src": "192.0.2.1", "dst": "192.0.2.2", "key": None, "packets": 500}],
        "keepalive_drops": 0,
    }


def test_data_figures_are_lower_bounds_once_the_data_capture_dropped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _install(monkeypatch, ScriptedCapture([], [_counters(data_dropped=7, packets=500)]))
    assert main(_watch("--duration", "0.2")) == 0
    stats = [line for line in _lines(capsys.readouterr().out) if line["event"] == "stats"]
    assert [line["final"] for line in stats] == [False, True]  # the loss at once, then exit
    final = stats[-1]
    assert final["data_lower_bound"] is True
    assert final["data_capture"] == {"received": 507, "dropped": 7, "interface_dropped": 0}
    assert final["keepalive_drops"] == 0


def test_without_data_the_stats_say_nothing_was_counted(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _install(monkeypatch, ScriptedCapture([], [_counters(data=False)]))
    assert main(_watch("--no-data", "--duration", "0.2")) == 0
    (final,) = [line for line in _lines(capsys.readouterr().out) if line["event"] == "stats"]
    assert final["data_capture"] is None and final["data_packets"] is None
    assert final["data_lower_bound"] is False and final["data_flows"] == []


def test_a_new_loss_is_reported_within_a_second(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    capture = ScriptedCapture([], [_counters()])
    _install(monkeypatch, capture)
    threading.Timer(0.3, lambda: capture.counters.insert(0, _counters(keepalive_dropped=3))).start()
    assert main(_watch("--stats-interval", "60", "--duration", "1.6")) == 0
    stats = [line for line in _lines(capsys.readouterr().out) if line["event"] == "stats"]
    assert [(line["final"], line["keepalive_drops"]) for line in stats] == [(False, 3), (True, 3)]


def test_transitions_after_keepalive_losses_say_how_many(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Period 0.2 s, retries 2: the one keepalive comes back at t, the ticks at t+0.2 and
    t+0.4 go unanswered, and the tick at t+0.6 finds the counter at 2: down. The keepalive
    capture reported 4 drops before that (they may have been the replies): the down line
    says 4. The next keepalive brings the line up with no new drop: its line says 0."""
    now = time.time()
    capture = ScriptedCapture(_exchange(now), [_counters(keepalive_dropped=4)])
    request = build_keepalive_request("192.0.2.1", "192.0.2.2", outer_id=13, inner_id=12)
    reply = reflect_request(request)
    assert reply is not None
    later = now + 0.9
    capture.items += [
        0.9,
        RawFrame(3, later, LINKTYPE_ETHERNET, build_ethernet(request), 0, 0, 0),
        RawFrame(4, later + 0.001, LINKTYPE_ETHERNET, build_ethernet(reply), 0, 0, 0),
    ]
    _install(monkeypatch, capture)
    assert main(_watch("--period", "0.2", "--retries", "2", "--duration", "1.2")) == 0
    lines = _lines(capsys.readouterr().out)
    transitions = [line for line in lines if line["event"] in ("down", "up")]
    assert [(t["event"], t["keepalive_drops"]) for t in transitions] == [("down", 4), ("up", 0)]
    assert transitions[0]["time"] == pytest.approx(now + 3 * 0.2, abs=1e-6)
    others = [line for line in lines if line["event"] in ("sent", "returned", "extrapolated")]
    assert all("keepalive_drops" not in line for line in others)  # their fields are unchanged


def test_notices_and_counters_from_the_source_reach_the_output(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Counters the source yields between frames are not lines of their own (the `stats`
    lines come from the clock); frames and notices around them still are."""
    now = time.time()
    items: list[SourceItem | float] = [
        InterfaceNotice(now, "eth0 re-opened"),
        _counters(),
        *_exchange(now),
    ]
    _install(monkeypatch, ScriptedCapture(items, [_counters()]))
    assert main(_watch("--period", "10", "--duration", "0.3")) == 0
    events = [line["event"] for line in _lines(capsys.readouterr().out)]
    assert events == ["interface", "sent", "returned", "stats"]


# --- a flood in a namespace pair ------------------------------------------------------------------

FLOOD = """\
import socket, sys, time
interface, data, keepalives = sys.argv[1], bytes.fromhex(sys.argv[2]), sys.stdin.read().split()
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((interface, 0))
sent = 0
for keepalive in keepalives:
    time.sleep(0.002)  # let the receiving backlog drain: a keepalive lost there is lost to all
    s.send(bytes.fromhex(keepalive))
    for _ in range(int(sys.argv[3])):
        try:
            s.send(data)
            sent += 1
        except OSError:  # the send queue is full
            pass
print(sent)
"""

FLOOD_KEEPALIVES = 20
FLOOD_DATA_PER_KEEPALIVE = 5000  # 100,000 data packets, as fast as one sender goes


def test_every_keepalive_reaches_watch_through_a_data_flood(tmp_path: Path) -> None:
    """100,000 GRE data packets with 20 keepalive requests among them, into a 1 MiB capture
    buffer: the keepalive capture loses none of the requests; the data is counted exactly,
    or, if its capture dropped some, reported as a lower bound with the drops."""
    from analyzer.read.packet import build_gre_data

    requests = [
        build_ethernet(
            build_keepalive_request("192.0.2.1", "192.0.2.2", outer_id=2 * i + 1, inner_id=2 * i),
            dst_mac=b"\xff" * 6,
        )
        for i in range(FLOOD_KEEPALIVES)
    ]
    data = build_ethernet(build_gre_data("192.0.2.1", "192.0.2.2", key=7), dst_mac=b"\xff" * 6)
    with veth_pair() as pair:
        watcher = pair.popen(
            pair.ns_b,
            [sys.executable, "-m", "analyzer", "watch", pair.if_b, "--format", "jsonl",
             "--period", "10", "--buffer-size", "1", "--duration", "30"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )  # fmt: skip
        try:
            _wait_for_line(watcher.stderr, "listening on", 15)
            flood = pair.run(
                pair.ns_a,
                [sys.executable, "-c", FLOOD, pair.if_a, data.hex(), str(FLOOD_DATA_PER_KEEPALIVE)],
                input="\n".join(frame.hex() for frame in requests),
            )
            sent_data = int(flood.stdout)
            time.sleep(1.0)  # the capture's block timeout is 0.1 s
            watcher.send_signal(signal.SIGINT)
            out, _err = watcher.communicate(timeout=30)
        finally:
            if watcher.poll() is None:
                watcher.kill()
                watcher.wait()
    lines = _lines(out.decode())
    sent = sorted(line["ident"] for line in lines if line["event"] == "sent")
    assert sent == [2 * i for i in range(FLOOD_KEEPALIVES)]
    final = lines[-1]
    assert final["event"] == "stats" and final["final"] is True
    assert final["keepalive_capture"]["dropped"] == 0
    assert final["keepalive_drops"] == final["keepalive_capture"]["interface_dropped"]
    data_capture = final["data_capture"]
    lost = data_capture["dropped"] + data_capture["interface_dropped"]
    assert final["data_lower_bound"] is (lost > 0)
    if lost:
        assert final["data_packets"] < sent_data
    else:
        assert final["data_packets"] == sent_data
    assert final["data_flows"] == [
        {"src": "192.0.2.1", "dst": "192.0.2.2", "key": 7, "packets": final["data_packets"]}
    ]


# --- the terminal UI's store (no terminal needed) -------------------------------------------------


def test_the_live_ui_logs_capture_losses_beside_the_transition_they_precede() -> None:
    from analyzer.keepalive.state import LineState
    from analyzer.keepalive.tracker import LiveEvent, LiveEventKind
    from analyzer.tui.live import LiveStore, LiveUpdate

    def down(at: float) -> LiveEvent:
        return LiveEvent(
            at, LiveEventKind.DOWN, ("192.0.2.1", "192.0.2.2"), None, "192.0.2.1", "192.0.2.2",
            None, None, 3, LineState.DOWN,
        )  # fmt: skip

    store = LiveStore()
    lossy = CaptureStats(99.0, HandleStats(10, 2, 1), HandleStats(900, 40, 1), 859)
    store.apply(LiveUpdate(time=100.0, states=(), events=(down(100.0),), capture=lossy))
    assert [(row.kind, row.message) for row in store.log] == [
        ("down", ""),
        (
            "notice",
            "192.0.2.1 down: the keepalive capture lost 3 packets before it "
            "(a lost keepalive may have caused it)",
        ),
    ]
    assert store.capture_text() == "keepalive capture lost 3 · data ≥ 859 (lost 41)"
    # no new loss before the next transition: nothing more is said
    store.apply(LiveUpdate(time=110.0, states=(), events=(down(110.0),), capture=lossy))
    assert [row.kind for row in store.log] == ["down", "notice", "down"]


def test_data_records_reach_the_live_ui_figures() -> None:
    """The data capture's packets come as records, not frames: the terminal UI's figures
    count them for the originator that sent them (3 packets from 192.0.2.1)."""
    from array import array

    from analyzer.keepalive.analysis import Settings
    from analyzer.read.sources import DataRecords
    from analyzer.tui.live import LiveFeeder, LiveStore, LiveUpdate

    now = time.time()
    records = DataRecords(
        {("192.0.2.1", "192.0.2.2", None): (array("d", [now, now + 0.1, now + 0.2]),
                                             array("q", [3, 4, 5]))},
        3,
    )  # fmt: skip
    items: list[SourceItem | float] = [*_exchange(now), records]
    store = LiveStore()
    figures = threading.Event()

    def post(update: LiveUpdate) -> None:
        store.apply(update)
        if update.figures is not None:
            figures.set()

    feeder = LiveFeeder(ScriptedCapture(items, [_counters()]), Settings(period=10.0), post)
    feeder.start()
    try:
        assert figures.wait(10)
    finally:
        feeder.stop()
    assert store.figures is not None
    tunnel = (("192.0.2.1", "192.0.2.2"), None)
    packets, _blackholed = store.figures.data[(tunnel, "192.0.2.1")]
    assert packets == 3


def test_the_terminal_ui_asks_for_data_records(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import types

    calls = _install(monkeypatch, ScriptedCapture([], [_counters()]))
    fake_ui = types.SimpleNamespace(run_live=lambda source, settings, title: 0)
    monkeypatch.setitem(sys.modules, "analyzer.tui.app", fake_ui)
    assert main(["watch", "eth0", "--format", "tui"]) == 0
    assert calls["record_data"] is True
    assert main(["watch", "eth0", "--format", "tui", "--no-data"]) == 0
    assert calls["record_data"] is False
    assert main(_watch("--duration", "0.1")) == 0  # jsonl prints no blackhole figures
    assert calls["record_data"] is False
    capsys.readouterr()
