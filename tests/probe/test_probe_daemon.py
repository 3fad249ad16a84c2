"""The probe as an unattended daemon, in network namespaces (documentation addresses only,
every flood bounded in count and time, every wait bounded).

* A 10 s flood of non-keepalive GRE from a third host (and tunnel data spoofed from the
  peer's address) reaches the probe's host but not the probe: the kernel socket filter
  drops it, at most one keepalive is lost and nothing goes down.
* Spoofed bare PT-0 "returns" do not keep a dead tunnel up.
* SIGHUP re-reads the configuration: a tunnel is added, the running one keeps its state,
  a broken file is refused and the old tunnels keep running.
* A probe stopped (SIGSTOP) for more than two periods reflects every keepalive queued
  meanwhile: the rate limit counts when they arrived, not when they were read.
* A closed stdout ends the probe with exit status 141 (128 + SIGPIPE), as analyze does.
* The kernel filter itself, IPv4 and IPv6, on a namespace's loopback.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.netns import VethPair, namespaces_unavailable, veth_pair
from tests.probe.test_probe import (
    ROOT,
    START_TIMEOUT,
    Event,
    _count,
    _cpu_seconds,
    _env,
    _is,
    probes,
)

FLOOD_SECONDS = 10.0
FLOOD_MAX_PACKETS = 3_000_000
C_ADDRESS, C_GATEWAY = "198.51.100.9", "198.51.100.1"  # the third host, and ns_a on its link


@contextmanager
def third_host(pair: VethPair) -> Iterator[str]:
    """Namespace ns_c (198.51.100.9) linked to ns_a (198.51.100.1); it routes 192.0.2.0/24
    through ns_a. Deleted afterwards."""
    tag = uuid.uuid4().hex[:6]
    namespace, here, there = f"gkc-{tag}", f"vkc{tag}", f"vkx{tag}"
    try:
        subprocess.run(["ip", "netns", "add", namespace], check=True, timeout=30)
        subprocess.run(
            ["ip", "link", "add", here, "type", "veth", "peer", "name", there],
            check=True,
            timeout=30,
        )
        subprocess.run(["ip", "link", "set", here, "netns", namespace], check=True, timeout=30)
        subprocess.run(["ip", "link", "set", there, "netns", pair.ns_a], check=True, timeout=30)
        pair.run(namespace, ["ip", "addr", "add", f"{C_ADDRESS}/24", "dev", here])
        pair.run(namespace, ["ip", "link", "set", here, "up"])
        pair.run(namespace, ["ip", "route", "add", "192.0.2.0/24", "via", C_GATEWAY])
        pair.run(pair.ns_a, ["ip", "addr", "add", f"{C_GATEWAY}/24", "dev", there])
        pair.run(pair.ns_a, ["ip", "link", "set", there, "up"])
        # the peer's address arriving from this link is spoofed: let it in anyway
        for conf in ("all", there):
            pair.run(pair.ns_a, ["sysctl", "-qw", f"net.ipv4.conf.{conf}.rp_filter=0"])
        yield namespace
    finally:
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30)


FLOOD = r"""
import json, socket, struct, sys, time
from analyzer.read.packet import build_gre, build_ip
C, A, B = sys.argv[1:4]
SECONDS, LIMIT = float(sys.argv[4]), int(sys.argv[5])
out = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
out.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
udp = struct.pack("!HHHH", 40000, 9, 8 + 64, 0) + bytes(64)
packets = [
    # GRE data from the third host itself, then tunnel data spoofed from the peer's address
    build_ip(C, A, build_gre(0x0800, build_ip("10.0.0.1", "10.0.0.2", udp, protocol=17))),
    build_ip(B, A, build_gre(0x0800, build_ip(A, B, udp, protocol=17))),
]
sent, start = 0, time.monotonic()
while sent < LIMIT and time.monotonic() - start < SECONDS:
    for _ in range(500):
        out.sendto(packets[sent & 1], (A, 0))
        sent += 1
print(json.dumps({"sent": sent, "seconds": time.monotonic() - start}))
"""


def _rx_packets(pair: VethPair, namespace: str, interface: str) -> int:
    text = pair.run(namespace, ["cat", f"/sys/class/net/{interface}/statistics/rx_packets"])
    return int(text.stdout)


def _own_keepalives(events: list[Event], me: str, start: float, end: float) -> tuple[int, int]:
    """(sent, answered) among `me`'s keepalives sent between start and end."""
    sent = {e["ident"] for e in events if _is("sent", me)(e) and start <= e["time"] <= end}
    answered = {e["ident"] for e in events if _is("returned", me)(e)}
    return len(sent), len(sent & answered)


def test_a_gre_flood_from_a_third_host_loses_at_most_one_keepalive() -> None:
    with veth_pair() as pair, third_host(pair) as ns_c:
        a, b = pair.address_a, pair.address_b
        keepalive = ["--keepalive", "1", "3"]
        with probes(
            pair,
            (pair.ns_a, ["--local", a, "--remote", b, *keepalive]),
            (pair.ns_b, ["--local", b, "--remote", a, *keepalive]),
        ) as (probe_a, probe_b):
            for probe, me in ((probe_a, a), (probe_b, b)):
                probe.wait_for(_is("returned", me), 5.0)
            link = next(
                name
                for name in pair.run(pair.ns_a, ["ls", "/sys/class/net"]).stdout.split()
                if name.startswith("vkx")
            )
            received_before = _rx_packets(pair, pair.ns_a, link)
            cpu_before = _cpu_seconds(probe_a.process.pid)
            start = time.time()
            limits = [str(FLOOD_SECONDS), str(FLOOD_MAX_PACKETS)]
            result = pair.run(
                ns_c,
                [sys.executable, "-c", FLOOD, C_ADDRESS, a, b, *limits],
                cwd=ROOT,
                env=_env(),
            )
            end = time.time()
            flood = json.loads(result.stdout)
            cpu_used = _cpu_seconds(probe_a.process.pid) - cpu_before
            received = _rx_packets(pair, pair.ns_a, link) - received_before
            time.sleep(1.5)  # the last keepalive's return
        for probe in (probe_a, probe_b):
            assert probe.process.returncode == 0, probe.stderr
        # The flood did reach A's host...
        assert flood["sent"] > 0 and received >= 0.9 * flood["sent"], (received, flood)
        # ...but not the probe: nothing was handed to it to drop.
        summary_a = probe_a.events[-1]
        assert summary_a["event"] == "summary"
        assert summary_a["dropped_unattributed"] == {}
        assert summary_a["tunnels"][0]["dropped"] == {}
        # Nothing went down, on either side; at most one of A's keepalives sent during the
        # flood came back unanswered (and B's were all reflected by A).
        for probe in (probe_a, probe_b):
            assert not any(e["event"] == "down" for e in probe.events), probe.name
        sent, answered = _own_keepalives(probe_a.events, a, start, end)
        assert sent >= FLOOD_SECONDS - 1 and sent - answered <= 1, (sent, answered)
        sent_b, answered_b = _own_keepalives(probe_b.events, b, start, end)
        assert sent_b >= FLOOD_SECONDS - 1 and sent_b - answered_b <= 1, (sent_b, answered_b)
        print(
            f"\nflood: {flood['sent']} GRE packets in {flood['seconds']:.2f} s "
            f"({flood['sent'] / flood['seconds']:.0f} pps), {received} received by A's host; "
            f"probe A: {sent - answered} of {sent} keepalives lost, CPU {cpu_used:.3f} s"
        )


def test_a_probe_not_scheduled_for_seconds_reflects_every_queued_keepalive() -> None:
    with veth_pair() as pair:
        a, b = pair.address_a, pair.address_b
        with probes(
            pair,
            (pair.ns_a, ["--local", a, "--remote", b, "--reflect-only"]),
            (pair.ns_b, ["--local", b, "--remote", a, "--keepalive", "1", "5"]),
        ) as (reflector, originator):
            originator.wait_for(_is("returned", b), 5.0)
            reflector.process.send_signal(signal.SIGSTOP)  # `ip netns exec` runs it as itself
            start = time.time()
            time.sleep(2.6)
            reflector.process.send_signal(signal.SIGCONT)
            end = time.time()
            time.sleep(1.5)  # the queued keepalives' returns
        # two or three of B's keepalives waited in A's socket buffer and were read together;
        # each arrived a period after the one before, so none was over the rate limit
        assert reflector.events[-1]["event"] == "summary"
        assert reflector.events[-1]["tunnels"][0]["dropped"] == {}
        sent, answered = _own_keepalives(originator.events, b, start, end)
        assert sent >= 2 and answered == sent, (sent, answered)


SPOOF = r"""
import socket, sys, time
from analyzer.read.packet import build_gre, build_ip
B, A = sys.argv[1], sys.argv[2]
out = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
out.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
for i in range(16):  # 4 a second for 4 s: bare PT-0 "returns" that match no request
    out.sendto(build_ip(B, A, build_gre(0, b""), ip_id=60000 + i), (A, 0))
    time.sleep(0.25)
"""


def test_spoofed_returns_do_not_hide_a_dead_peer_and_on_change_runs(tmp_path: Path) -> None:
    with veth_pair() as pair:
        a, b = pair.address_a, pair.address_b
        hook_log = tmp_path / "changes"
        spoofer = pair.popen(pair.ns_b, [sys.executable, "-c", SPOOF, b, a], cwd=ROOT, env=_env())
        try:
            status, events, stderr = _count(
                pair,
                pair.ns_a,
                [
                    *f"--local {a} --remote {b} --keepalive 0.5 2 --lab --count 5".split(),
                    "--on-change",
                    f'echo "$GRE_KEEPALIVE_STATE $GRE_KEEPALIVE_COUNTER" >> {hook_log}',
                ],
            )
        finally:
            spoofer.wait(timeout=30)
        # Nobody reflects: down at the third unanswered send although "returns" kept coming.
        assert status == 3, stderr
        (row,) = events[-1]["tunnels"]
        assert (row["line_state"], row["returned"]) == ("down", 0)
        assert row["unmatched_returns"] >= 1 and row["dropped"]["unmatched-return"] >= 1
        assert hook_log.read_text() == "down 2\n"  # the hook ran, before the probe exited
        (line,) = [x for x in stderr.splitlines() if "line protocol" in x]
        assert f"({a} → {b}, key none): line protocol DOWN (counter 2 >= retries 2)" in line


def test_sighup_adds_a_tunnel_keeps_the_other_and_refuses_a_broken_file(tmp_path: Path) -> None:
    with veth_pair() as pair:
        a, b = pair.address_a, pair.address_b
        config = tmp_path / "tunnels.toml"
        one = f'[[tunnel]]\nsource = "{a}"\ndestination = "{b}"\nperiod = 0.5\nretries = 2\n'
        config.write_text(one)
        with probes(
            pair,
            (pair.ns_a, ["--config", str(config), "--lab"]),
            (pair.ns_b, ["--local", b, "--remote", a, "--reflect-only"]),
        ) as (probe_a, _reflector):
            first = probe_a.wait_for(_is("returned", a), 5.0)
            frame_before = probe_a.events[first]["frame"]
            config.write_text(
                one + '\n[[tunnel]]\nsource = "192.0.2.1"\ndestination = "192.0.2.4"\n'
                "period = 0.5\nretries = 2\n"
            )
            probe_a.process.send_signal(signal.SIGHUP)
            reloaded = probe_a.wait_for(lambda e: e["event"] == "reloaded", 5.0, since=first)
            event = probe_a.events[reloaded]
            assert [t["remote"] for t in event["tunnels"]] == [b, "192.0.2.4"]
            assert len(event["added"]) == 1 and event["removed"] == []
            probe_a.wait_for(
                lambda e: _is("sent", a)(e) and e["peer"] == "192.0.2.4", 3.0, since=reloaded
            )
            after = probe_a.wait_for(
                lambda e: _is("returned", a)(e) and e["peer"] == b, 3.0, since=reloaded
            )
            config.write_text("[[tunnel]]\nsource = 1\n")
            probe_a.process.send_signal(signal.SIGHUP)
            probe_a.wait_for(lambda e: e["event"] == "reload-failed", 5.0, since=after)
            probe_a.wait_for(
                lambda e: _is("returned", a)(e) and e["peer"] == b, 3.0, since=after + 1
            )
        assert probe_a.process.returncode == 0, probe_a.stderr
        # One process all along: the first tunnel's frames and counts simply continued.
        assert sum(e["event"] == "started" for e in probe_a.events) == 1
        assert probe_a.events[after]["frame"] > frame_before
        rows = {row["remote"]: row for row in probe_a.events[-1]["tunnels"]}
        assert set(rows) == {b, "192.0.2.4"}
        assert rows[b]["line_state"] == "up" and rows[b]["returned"] >= 3
        assert rows["192.0.2.4"]["returned"] == 0
        assert "reload failed, still running the previous tunnels" in probe_a.stderr


def test_a_closed_stdout_ends_the_probe_with_status_141() -> None:
    with veth_pair() as pair:
        argv = ["probe", "--local", pair.address_a, "--remote", pair.address_b]
        process = pair.popen(
            pair.ns_a,
            [sys.executable, "-m", "analyzer", *argv, "--keepalive", "1", "3"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env=_env(),
        )
        assert process.stdout is not None and process.stderr is not None
        try:
            started = json.loads(process.stdout.readline())
            assert started["event"] == "started"
            process.stdout.close()  # the reader goes away; the next keepalive's line fails
            status = process.wait(timeout=START_TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        assert status == 128 + signal.SIGPIPE
        assert process.stderr.read().decode().splitlines() == [
            "gre-keepalive: error: standard output closed (broken pipe): stopped"
        ]


KERNEL_FILTER = r"""
import json, sys, time
from analyzer.probe.net import RawSockets
from analyzer.read.packet import build_gre, build_ip, build_keepalive_request, decode_frame
sockets = RawSockets.open({4, 6})
# 254 tunnels, reloaded: replacing a filter this size with another fails with ENOMEM
# (net.core.optmem_max) unless the old one is dropped first
many = [("192.0.2.1", f"198.51.100.{i}") for i in range(1, 255)]
sockets.attach_filters(many)
sockets.set_windows({4: (5, 2)})
sockets.attach_filters(many[::-1])
sockets.set_windows({4: (7, 2)})
sockets.attach_filters([("192.0.2.1", "192.0.2.2"), ("2001:db8::1", "2001:db8::2")])
sockets.set_windows({4: (5, 2), 6: (100, 10)})  # awaited: IP IDs 5-7, flow labels 100-110
udp = build_gre(0x0800, build_ip("10.0.0.1", "10.0.0.2", b"12345678", protocol=17))
def labelled(packet, label):
    return (0x60000000 | label).to_bytes(4, "big") + packet[4:]
cases = {
    "request": ("192.0.2.1", build_keepalive_request("192.0.2.2", "192.0.2.1", inner_id=5)),
    "reply": ("192.0.2.1", build_ip("192.0.2.2", "192.0.2.1", build_gre(0, b""), ip_id=6)),
    "stale": ("192.0.2.1", build_ip("192.0.2.2", "192.0.2.1", build_gre(0, b""), ip_id=9)),
    "data": ("192.0.2.1", build_ip("192.0.2.2", "192.0.2.1", udp)),
    "stranger": ("192.0.2.1", build_keepalive_request("192.0.2.3", "192.0.2.1", inner_id=7)),
    "request6": ("2001:db8::1", build_keepalive_request("2001:db8::2", "2001:db8::1")),
    "reply6": (
        "2001:db8::1", labelled(build_ip("2001:db8::2", "2001:db8::1", build_gre(0, b"")), 105)
    ),
    "stale6": ("2001:db8::1", build_ip("2001:db8::2", "2001:db8::1", build_gre(0, b""))),
    "data6": ("2001:db8::1", build_ip("2001:db8::2", "2001:db8::1", udp)),
    "stranger6": ("2001:db8::1", build_keepalive_request("2001:db8::3", "2001:db8::1")),
}
for name, (destination, packet) in cases.items():
    sockets.send(packet, destination)
    time.sleep(0.05)
got = []
for sock in sockets.receivers:
    which = next(
        name for name in ("receive4", "replies4", "returns4", "receive6", "replies6", "returns6")
        if getattr(sockets, name) is sock
    )[:-1]
    while (received := sockets.receive(sock)) is not None:
        packet = received.packet
        assert received.stamp is not None and abs(received.stamp - time.time()) < 60
        decoded = decode_frame(101, packet)
        ident = (decoded.ip_id or packet[1:4].hex()) if decoded.kind.value == "reply" else "-"
        got.append([which, decoded.kind.value, decoded.src, ident])
print(json.dumps(got))
"""


def test_the_kernel_socket_filter_on_ipv4_and_ipv6() -> None:
    reason = namespaces_unavailable()
    if reason is not None:
        import pytest

        pytest.skip(f"network namespaces unavailable: {reason}")
    namespace = f"gkf-{uuid.uuid4().hex[:6]}"
    try:
        subprocess.run(["ip", "netns", "add", namespace], check=True, timeout=30)
        setup = textwrap.dedent(
            """
            ip link set lo up
            for a in 192.0.2.1 192.0.2.2 192.0.2.3; do ip addr add $a/32 dev lo; done
            for a in 2001:db8::1 2001:db8::2 2001:db8::3; do ip addr add $a/128 dev lo nodad; done
            """
        )
        subprocess.run(
            ["ip", "netns", "exec", namespace, "sh", "-ec", setup], check=True, timeout=30
        )
        result = subprocess.run(
            ["ip", "netns", "exec", namespace, sys.executable, "-c", KERNEL_FILTER],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            env=_env(),
            check=True,
        )
    finally:
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30)
    # Only the configured peers' keepalive requests and replies came through, each kind
    # on its own socket: the requests; the replies awaited (IPv4 ID 6, IPv6 flow label
    # 105 = 0x69); the other replies.
    assert sorted(map(tuple, json.loads(result.stdout))) == [
        ("receive", "request", "192.0.2.2", "-"),
        ("receive", "request", "2001:db8::2", "-"),
        ("replies", "reply", "192.0.2.2", 9),
        ("replies", "reply", "2001:db8::2", "000000"),
        ("returns", "reply", "192.0.2.2", 6),
        ("returns", "reply", "2001:db8::2", "000069"),
    ]
