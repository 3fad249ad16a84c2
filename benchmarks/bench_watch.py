"""Does a flood of tunnel data cost `gre-keepalive watch` a keepalive? Against tcpdump.

Not a test: run it by hand, as root (see docs/watch.md, "Under load"). It builds two
network namespaces joined by a veth pair (192.0.2.1 ↔ 192.0.2.2, documentation addresses
only, nothing routed out), runs a `gre-keepalive probe` endpoint in each (`keepalive 1 3`:
requests both ways, each reflected by the other end), and floods GRE data (outer
192.0.2.1 → 192.0.2.2, inner 198.51.100.1 → 203.0.113.1 UDP) from the first namespace
into the second as fast as one or more sender processes can (a small C program with
sendmmsg, compiled on the spot; `--sender python` without a compiler), for a bounded time
and count. On the receiving interface, at the same time:

  tcpdump  tcpdump -w with the keepalive-only BPF filter of `watch --no-data`
           (analyzer.read.bpf.keepalive_filter), its default buffer (-B: 2 MiB)
  watch    gre-keepalive watch --format jsonl, counting data (the default), or --no-data

Each mode (`data`, `no-data`) is its own run with a fresh flood. Keepalive packets seen
from a second after both captures listen to a second before they are stopped (3 s of
quiet, the flood, 3 s of quiet): by tcpdump, the requests and replies `gre-keepalive
analyze` finds in its file; by watch, its `sent` and `returned` lines; by the probes,
the requests they sent and the reflections they made. Beside them: watch's down
transitions (the probes stay up: any down is a keepalive lost to the flood), kernel drop
counters (watch's final `stats` line, tcpdump's "dropped by kernel"), the data packets
watch counted and the flood's packet rate. The table is also written as JSON
(--json, default benchmarks/out/watch-DATE.json).

    sudo python benchmarks/bench_watch.py [--seconds 12] [--sender c|python] [--senders 1]
                                          [--rate PPS] [--modes data,no-data] [--repeat N]
                                          [--watch-python-path DIR] [--watch-option ARG]
                                          [--json FILE]

`--watch-python-path DIR` runs watch from another checkout (to compare with an earlier
version); `--rate` limits each sender (default: as fast as it can).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"

A_ADDRESS = "192.0.2.1"
B_ADDRESS = "192.0.2.2"
INNER_SRC = "198.51.100.1"
INNER_DST = "203.0.113.1"
PERIOD = 1
RETRIES = 3
SETTLE = 3.0  # seconds of keepalives before and after the flood
EDGE = 1.0  # keepalives are counted from this long after both captures listen to this long
# before they are stopped: what the two see at their edges is not compared
MAX_PACKETS_PER_SENDER = 20_000_000  # the flood's bound in count (its time bound: --seconds)

# One process sending one prebuilt frame in a loop (AF_PACKET): bounded by time and count.
FLOOD = r"""
import socket, sys, time
interface, seconds, limit, rate = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(
    sys.argv[4])
frame = bytes.fromhex(sys.argv[5])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((interface, 0))
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
send = s.send
sent = 0
start = time.monotonic()
deadline = start + seconds
while sent < limit:
    for _ in range(256):
        try:
            send(frame)
            sent += 1
        except OSError:  # ENOBUFS under load: the queue is full, try again
            pass
    now = time.monotonic()
    if now >= deadline:
        break
    if rate > 0:
        ahead = sent / rate - (now - start)
        if ahead > 0:
            time.sleep(ahead)
print(sent, time.monotonic() - start)
"""


# The same in C with sendmmsg (64 frames a call): several times the Python sender's rate.
FLOOD_C = r"""
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 6) return 2;
    const char *interface = argv[1];
    double seconds = atof(argv[2]);
    long limit = atol(argv[3]);
    double rate = atof(argv[4]);
    const char *hex = argv[5];
    size_t length = strlen(hex) / 2;
    unsigned char frame[2048];
    if (length > sizeof frame) return 2;
    for (size_t i = 0; i < length; i++) sscanf(hex + 2 * i, "%2hhx", &frame[i]);
    int fd = socket(AF_PACKET, SOCK_RAW, 0);
    if (fd < 0) { perror("socket"); return 1; }
    struct sockaddr_ll address = {0};
    address.sll_family = AF_PACKET;
    address.sll_ifindex = if_nametoindex(interface);
    if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0) { perror("bind"); return 1; }
    enum { BATCH = 64 };
    struct iovec iov[BATCH];
    struct mmsghdr messages[BATCH];
    memset(messages, 0, sizeof messages);
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = frame;
        iov[i].iov_len = length;
        messages[i].msg_hdr.msg_iov = &iov[i];
        messages[i].msg_hdr.msg_iovlen = 1;
    }
    long sent = 0;
    double start = now(), deadline = start + seconds;
    while (sent < limit) {
        int n = sendmmsg(fd, messages, BATCH, 0);
        if (n > 0) sent += n;
        double t = now();
        if (t >= deadline) break;
        if (rate > 0) {
            double ahead = sent / rate - (t - start);
            if (ahead > 0) usleep((useconds_t)(ahead * 1e6));
        }
    }
    printf("%ld %f\n", sent, now() - start);
    return 0;
}
"""


def _flood_command(args: argparse.Namespace, work: Path) -> list[str]:
    """The flood sender: compiled from FLOOD_C, or Python (--sender python, or no cc)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if args.sender == "c" and compiler is not None:
        binary = work / "flood"
        if not binary.exists():
            source = work / "flood.c"
            source.write_text(FLOOD_C)
            _run([compiler, "-O2", "-o", str(binary), str(source)])
        return [str(binary)]
    return [sys.executable, "-c", FLOOD]


@dataclass
class Run:
    """One flood, with tcpdump and one watch mode on the receiving interface."""

    mode: str
    seconds: float
    sender: str
    senders: int
    flood_packets: int
    flood_pps: float
    probe_keepalives: int  # requests sent + reflections made by both probes
    tcpdump_keepalives: int
    tcpdump_dropped: int | None
    watch_keepalives: int
    watch_downs: int
    watch_stats: dict[str, object] | None
    watch_cpu_seconds: float | None  # user + system, while it ran
    tcpdump_cpu_seconds: float | None
    load_before: float


def _run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        command, check=True, capture_output=True, text=True, timeout=60, **kwargs
    )


def _netns(namespace: str, command: list[str]) -> list[str]:
    return ["ip", "netns", "exec", namespace, *command]


class Namespaces:
    """Two namespaces joined by a veth pair; removed on exit."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.ns_a, self.ns_b = f"gkbench-a-{tag}", f"gkbench-b-{tag}"
        self.if_a, self.if_b = f"vba{tag}", f"vbb{tag}"

    def __enter__(self) -> Namespaces:
        try:
            _run(["ip", "netns", "add", self.ns_a])
            _run(["ip", "netns", "add", self.ns_b])
            _run(["ip", "link", "add", self.if_a, "type", "veth", "peer", "name", self.if_b])
            _run(["ip", "link", "set", self.if_a, "netns", self.ns_a])
            _run(["ip", "link", "set", self.if_b, "netns", self.ns_b])
            for namespace, interface, address in (
                (self.ns_a, self.if_a, A_ADDRESS),
                (self.ns_b, self.if_b, B_ADDRESS),
            ):
                _run(_netns(namespace, ["ip", "addr", "add", f"{address}/24", "dev", interface]))
                _run(_netns(namespace, ["ip", "link", "set", interface, "up"]))
                _run(_netns(namespace, ["ip", "link", "set", "lo", "up"]))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        for namespace in (self.ns_a, self.ns_b):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30)

    def mac(self, namespace: str, interface: str) -> bytes:
        """The interface's MAC address."""
        out = _run(_netns(namespace, ["cat", f"/sys/class/net/{interface}/address"])).stdout
        return bytes.fromhex(out.strip().replace(":", ""))


def _flood_frame(dst_mac: bytes, src_mac: bytes) -> bytes:
    sys.path.insert(0, str(ROOT))
    from analyzer.read.packet import build_ethernet, build_gre, build_ip

    udp = bytes.fromhex("d43104d2001c0000") + bytes(20)  # 28 bytes: UDP header + payload
    inner = build_ip(INNER_SRC, INNER_DST, udp, protocol=17, ttl=64)
    outer = build_ip(A_ADDRESS, B_ADDRESS, build_gre(0x0800, inner), ttl=64)
    frame: bytes = build_ethernet(outer, dst_mac=dst_mac, src_mac=src_mac)
    return frame


def _keepalive_expression() -> str:
    sys.path.insert(0, str(ROOT))
    from analyzer.read.bpf import keepalive_filter

    expression: str = keepalive_filter(include_data=False)
    return expression


def _stop(process: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> tuple[str, str]:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        out, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return out.decode(errors="replace"), (err or b"").decode(errors="replace")


def _wait_for(process: subprocess.Popen[bytes], text: str, timeout: float = 20.0) -> None:
    """Read the process's stderr until a line contains `text`."""
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stderr], [], [], 0.2)
        if ready:
            line = process.stderr.readline().decode(errors="replace")
            if text in line:
                return
            if not line:
                break
    raise RuntimeError(f"{process.args!r} did not say {text!r}")


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a running process (`ip netns exec` execs the command
    in place, so the PID is the command's)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)


def _count_probe(output: str, local: str, start: float, end: float) -> int:
    """Keepalive packets the probe at `local` put on the wire between `start` and `end`: its
    own requests and its reflections of the peer's (it also reports the peer's requests)."""
    count = 0
    for line in output.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(event, dict) or not start <= float(event.get("time") or 0) <= end:
            continue
        kind = event.get("event")
        if kind == "reflected" or (kind == "sent" and event.get("originator") == local):
            count += 1
    return count


def _tcpdump_keepalives(path: Path, start: float, end: float) -> int:
    """Keepalive packets (requests and replies) in tcpdump's file between `start` and
    `end`, as `gre-keepalive analyze` pairs them."""
    result = _run(
        [sys.executable, "-m", "analyzer", "analyze", str(path), "--format", "json", "--no-data"],
        cwd=ROOT,
    )
    return sum(
        1
        for tunnel in json.loads(result.stdout)["tunnels"]
        for originator in tunnel["originators"]
        for event in originator["keepalives"]
        if event["type"] in ("sent", "returned") and start <= event["time"] <= end
    )


def one_run(args: argparse.Namespace, mode: str, work: Path) -> Run:
    """Flood once with tcpdump and watch (`mode`) capturing; the figures."""
    load_before = os.getloadavg()[0]
    with Namespaces() as ns:
        frame = _flood_frame(ns.mac(ns.ns_b, ns.if_b), ns.mac(ns.ns_a, ns.if_a))
        probe = [sys.executable, "-m", "analyzer", "probe", "--format", "jsonl"]
        keepalive = ["--keepalive", str(PERIOD), str(RETRIES)]
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "cwd": ROOT}
        processes: list[subprocess.Popen[bytes]] = []
        try:
            probe_a = subprocess.Popen(
                _netns(ns.ns_a, [*probe, "--local", A_ADDRESS, "--remote", B_ADDRESS, *keepalive]),
                **pipes,  # type: ignore[call-overload]
            )
            probe_b = subprocess.Popen(
                _netns(ns.ns_b, [*probe, "--local", B_ADDRESS, "--remote", A_ADDRESS, *keepalive]),
                **pipes,  # type: ignore[call-overload]
            )
            processes += [probe_a, probe_b]
            filter_file = work / "keepalives.bpf"
            filter_file.write_text(_keepalive_expression())
            dump = work / f"tcpdump-{mode}.pcap"
            tcpdump = subprocess.Popen(
                _netns(
                    ns.ns_b,
                    ["tcpdump", "-i", ns.if_b, "-n", "-w", str(dump), "-F", str(filter_file)],
                ),
                **pipes,  # type: ignore[call-overload]
            )
            processes.append(tcpdump)
            env = dict(os.environ)
            if args.watch_python_path:
                env["PYTHONPATH"] = args.watch_python_path
            watch_command = [
                sys.executable,
                "-m",
                "analyzer",
                "watch",
                ns.if_b,
                "--format",
                "jsonl",
            ]
            watch_command += ["--period", str(PERIOD), "--retries", str(RETRIES)]
            if mode == "no-data":
                watch_command.append("--no-data")
            watch_command += [option.replace("{work}", str(work)) for option in args.watch_option]
            watch = subprocess.Popen(
                _netns(ns.ns_b, watch_command),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=args.watch_python_path or ROOT,
                env=env,
            )
            processes.append(watch)
            _wait_for(tcpdump, "listening on")
            _wait_for(watch, "listening on")
            start = time.time() + EDGE
            time.sleep(SETTLE)
            limit = MAX_PACKETS_PER_SENDER
            floods = [
                subprocess.Popen(
                    _netns(
                        ns.ns_a,
                        [
                            *_flood_command(args, work),
                            ns.if_a,
                            str(args.seconds),
                            str(limit),
                            str(args.rate),
                            frame.hex(),
                        ],
                    ),
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for _ in range(args.senders)
            ]
            flood_packets, flood_time = 0, 0.0
            for flood in floods:
                out, _ = flood.communicate(timeout=args.seconds + 60)
                packets, elapsed = out.split()
                flood_packets += int(packets)
                flood_time = max(flood_time, float(elapsed))
            time.sleep(SETTLE)
            end = time.time() - EDGE
            cpu = {
                name: _cpu_seconds(process.pid)
                for name, process in (("watch", watch), ("tcpdump", tcpdump))
            }
            for capture in (watch, tcpdump):  # both at once: neither sees more of the end
                capture.send_signal(signal.SIGINT)
            watch_out, _watch_err = _stop(watch)
            _dump_out, dump_err = _stop(tcpdump)
            probe_a_out = _stop(probe_a, signal.SIGTERM)[0]
            probe_b_out = _stop(probe_b, signal.SIGTERM)[0]
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
    lines = [json.loads(line) for line in watch_out.splitlines() if line.startswith("{")]
    seen = sum(
        1
        for line in lines
        if line.get("event") in ("sent", "returned") and start <= line["time"] <= end
    )
    downs = sum(1 for line in lines if line.get("event") == "down")
    finals = [line for line in lines if line.get("event") == "stats" and line.get("final")]
    dropped = re.search(r"(\d+) packets? dropped by kernel", dump_err)
    return Run(
        mode=mode,
        seconds=args.seconds,
        sender=args.sender,
        senders=args.senders,
        flood_packets=flood_packets,
        flood_pps=round(flood_packets / flood_time) if flood_time else 0.0,
        probe_keepalives=_count_probe(probe_a_out, A_ADDRESS, start, end)
        + _count_probe(probe_b_out, B_ADDRESS, start, end),
        tcpdump_keepalives=_tcpdump_keepalives(dump, start, end),
        tcpdump_dropped=int(dropped.group(1)) if dropped else None,
        watch_keepalives=seen,
        watch_downs=downs,
        watch_stats=finals[-1] if finals else None,
        watch_cpu_seconds=cpu["watch"],
        tcpdump_cpu_seconds=cpu["tcpdump"],
        load_before=round(load_before, 2),
    )


def _drops(stats: dict[str, object] | None, handle: str) -> str:
    if stats is None:
        return "–"
    counters = stats.get(handle)
    if not isinstance(counters, dict):
        return "–"
    return f"{counters['dropped']}+{counters['interface_dropped']}"


def table(runs: list[Run]) -> str:
    """The runs as a Markdown table."""
    rows = [
        "| watch mode | flood sender | flood packets/s | keepalives sent+reflected (probes) "
        "| tcpdump | watch | watch down transitions | tcpdump dropped | watch keepalive capture "
        "dropped (kernel+if) | watch data capture dropped | data counted | CPU s watch / tcpdump |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        stats = run.watch_stats or {}
        rows.append(
            f"| {run.mode} | {run.senders}× {run.sender} | {run.flood_pps:,.0f} | "
            f"{run.probe_keepalives} | "
            f"{run.tcpdump_keepalives} | {run.watch_keepalives} | {run.watch_downs} | "
            f"{run.tcpdump_dropped if run.tcpdump_dropped is not None else '–'} | "
            f"{_drops(run.watch_stats, 'keepalive_capture')} | "
            f"{_drops(run.watch_stats, 'data_capture')} | "
            f"{stats.get('data_packets', '–')} of {run.flood_packets:,}"
            f"{' (lower bound)' if stats.get('data_lower_bound') else ''} | "
            f"{run.watch_cpu_seconds} / {run.tcpdump_cpu_seconds} |"
        )
    return "\n".join(rows)


def main() -> int:
    """Run the benchmark; 0 when watch saw at least as many keepalives as tcpdump in every
    run and went down in none, 1 otherwise, 2 when it cannot run here."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="flood time (default 12)")
    parser.add_argument("--senders", type=int, default=1, help="flood processes (default 1)")
    parser.add_argument(
        "--sender",
        choices=("c", "python"),
        default="c",
        help="the flood sender: C with sendmmsg (default; Python without a C compiler)",
    )
    parser.add_argument("--rate", type=float, default=0.0, help="packets/s per sender (0: max)")
    parser.add_argument("--modes", default="data,no-data", help="watch modes to run")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each mode")
    parser.add_argument("--watch-python-path", help="run watch from this checkout instead")
    parser.add_argument(
        "--watch-option",
        action="append",
        default=[],
        metavar="ARG",
        help="one more argument for watch ({work} is the temporary directory), e.g. "
        "--watch-option=--buffer-size=1",
    )
    parser.add_argument("--json", type=Path, help="where to write the results")
    args = parser.parse_args()
    if not 0 < args.seconds <= 60 or not 1 <= args.senders <= 4:
        parser.error("--seconds must be in (0, 60] and --senders in 1..4")
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("tcpdump") is None:
        print("bench_watch: needs root, iproute2 and tcpdump", file=sys.stderr)
        return 2
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    if any(mode not in ("data", "no-data") for mode in modes):
        parser.error("--modes takes data and/or no-data")
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="gk-bench-watch-") as work:
        for _ in range(args.repeat):
            for mode in modes:
                run = one_run(args, mode, Path(work))
                runs.append(run)
                print(
                    f"{mode}: flood {run.flood_pps:,.0f} packets/s; keepalives: probes "
                    f"{run.probe_keepalives}, tcpdump {run.tcpdump_keepalives}, watch "
                    f"{run.watch_keepalives} ({run.watch_downs} down)",
                    file=sys.stderr,
                    flush=True,
                )
    print(table(runs))
    OUT.mkdir(parents=True, exist_ok=True)
    path = args.json or OUT / f"watch-{time.strftime('%Y-%m-%d-%H%M%S')}.json"
    document = {
        "benchmark": "bench_watch",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "kernel": platform.release(),
            "tcpdump": _run(["tcpdump", "--version"]).stdout.splitlines()[0],
        },
        "options": {
            "seconds": args.seconds,
            "sender": args.sender,
            "senders": args.senders,
            "rate": args.rate,
            "watch_python_path": args.watch_python_path,
            "watch_options": args.watch_option,
        },
        "runs": [asdict(run) for run in runs],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"written to {path}", file=sys.stderr)
    ok = all(r.watch_keepalives >= r.tcpdump_keepalives and not r.watch_downs for r in runs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
