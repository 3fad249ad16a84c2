"""Memory, time and output size of `analyze` on many idle tunnels.

Not a test: run it by hand. It writes a capture of N tunnels that each show one unanswered
keepalive, spread evenly over a day (the shape that made every gap cost a row per missing
tick), then runs `gre-keepalive analyze` on it as a fresh process per output format and
reports wall time, CPU time, peak RSS (of the child, from ``getrusage``), output size and
the machine's load average around the run. The targets: at most 60 s and 1 GB for 200,000
tunnels, JSON and text; memory per idle tunnel small and constant (aim: 2 KB), printed as
the difference of the peak RSS of the two largest sizes over the difference in tunnels.

    python benchmarks/bench_idle_tunnels.py [--tunnels N ...] [--formats json text csv]
                                            [--reader R] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from analyzer.read.capture import PcapWriter
from analyzer.read.packet import build_ethernet, build_keepalive_request

DAY = 86_400.0
START = 1_764_547_200.0  # 2025-12-01 00:00:00 UTC
PEER = "198.51.100.1"
FIRST_ORIGINATOR = int(ipaddress.IPv4Address("10.0.0.1"))


def write_capture(path: Path, tunnels: int) -> int:
    """N tunnels (10.x.y.z ↔ 198.51.100.1), one unanswered keepalive each, over a day.
    The last record is a keepalive of the last tunnel at the end of the day, so the capture
    ends there. Returns the file's size."""
    step = DAY / tunnels
    with PcapWriter(path) as writer:
        for index in range(tunnels):
            originator = str(ipaddress.IPv4Address(FIRST_ORIGINATOR + index))
            frame = build_ethernet(
                build_keepalive_request(
                    originator, PEER, outer_id=index & 0xFFFF, inner_id=(index - 1) & 0xFFFF
                )
            )
            writer.write(START + index * step, frame)
    return path.stat().st_size


# Runs the command and prints its status and peak RSS (KiB): each measurement is its own.
_MEASURE = (
    "import resource, subprocess, sys; "
    "status = subprocess.run(sys.argv[1:], stderr=subprocess.DEVNULL).returncode; "
    "usage = resource.getrusage(resource.RUSAGE_CHILDREN); "
    "print(status, usage.ru_maxrss, usage.ru_utime + usage.ru_stime)"
)


def run_analyze(capture: Path, fmt: str, out: Path, reader: str) -> dict[str, Any]:
    """One `analyze` run in a fresh process: seconds, peak RSS (MB), output bytes."""
    command = [sys.executable, "-m", "analyzer", "analyze", str(capture), "--format", fmt]
    command += ["--reader", reader]
    began = time.perf_counter()
    measured = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command, "-o", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - began
    words = measured.stdout.split()
    status, peak_kib, cpu = int(words[0]), int(words[1]), float(words[2])
    if status != 0:
        raise SystemExit(f"analyze exited {status} on {capture}")
    return {
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),  # on a shared machine, the figure to compare
        "peak_rss_mb": round(peak_kib / 1024, 1),
        "output_bytes": out.stat().st_size,
        "load_average": [round(load, 2) for load in os.getloadavg()],  # 1, 5, 15 min, after
    }


def per_tunnel(results: list[dict[str, Any]]) -> dict[str, int]:
    """Peak RSS per tunnel (bytes) of each format: the difference between the two largest
    sizes measured over the difference in tunnels."""
    slopes: dict[str, int] = {}
    for fmt in dict.fromkeys(str(row["format"]) for row in results):
        rows = sorted((r for r in results if r["format"] == fmt), key=lambda r: r["tunnels"])
        if len(rows) >= 2:
            small, large = rows[-2], rows[-1]
            rss = (large["peak_rss_mb"] - small["peak_rss_mb"]) * 1024 * 1024
            slopes[fmt] = round(rss / (large["tunnels"] - small["tunnels"]))
    return slopes


def main() -> None:
    """Build the captures, run analyze on each, print and optionally save the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tunnels", type=int, nargs="+", default=[10_000, 200_000])
    parser.add_argument("--formats", nargs="+", default=["json", "text"])
    parser.add_argument("--reader", default="auto", choices=("auto", "libpcap", "python"))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for tunnels in sorted(args.tunnels):
            capture = Path(tmp) / f"idle-{tunnels}.pcap"
            size = write_capture(capture, tunnels)
            for fmt in args.formats:
                figures = run_analyze(capture, fmt, Path(tmp) / f"out.{fmt}", args.reader)
                row: dict[str, Any] = {
                    "tunnels": tunnels,
                    "capture_bytes": size,
                    "format": fmt,
                    **figures,
                }
                results.append(row)
                print(
                    f"{tunnels:>9,} tunnels ({size / 1e6:.1f} MB)  {fmt:<4}  "
                    f"{figures['seconds']:>7.2f} s (CPU {figures['cpu_seconds']:.2f} s)  "
                    f"{figures['peak_rss_mb']:>8.1f} MB RSS  "
                    f"{figures['output_bytes'] / 1e6:>9.1f} MB out",
                    flush=True,
                )
    slopes = per_tunnel(results)
    for fmt, size in slopes.items():
        print(f"{fmt}: {size:,} bytes of peak RSS per tunnel (two largest sizes)")
    if args.json:
        document = {
            "machine": f"{platform.machine()} {os.cpu_count()} CPUs, Python "
            f"{platform.python_version()}",
            "results": results,
            "peak_rss_bytes_per_tunnel": slopes,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
