"""How long hostile-but-valid inputs take: the parsers must stay linear.

Not a test: run it by hand. It measures, each in this process after a warm-up:

  ios-config   parsing an IOS configuration of N `interface Tunnel` blocks (target: 50,000
               blocks in under 2 s), and of N/10 blocks (linear: about a tenth of the time)
  mpls         decoding 40 frames that each carry 65,000 MPLS labels before a keepalive,
               against 40 ordinary frames (target: not quadratic — milliseconds, not seconds)

    python benchmarks/bench_hostile_inputs.py [--blocks N] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import struct
import tempfile
import time
from pathlib import Path

from analyzer.config import load_config
from analyzer.read.capture import LINKTYPE_ETHERNET
from analyzer.read.packet import build_ethernet, build_keepalive_request, decode_frame


def ios_config(blocks: int) -> str:
    """`blocks` tunnels from 192.0.2.1 to distinct destinations, keepalive 5 3 each."""
    lines = []
    for index in range(blocks):
        destination = f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}"
        lines += [
            f"interface Tunnel{index}",
            " tunnel source 192.0.2.1",
            f" tunnel destination {destination}",
            " keepalive 5 3",
            "!",
        ]
    return "\n".join(lines) + "\n"


def time_config(blocks: int) -> tuple[float, float]:
    """Seconds (wall clock, CPU) to load a configuration of `blocks` tunnel blocks from a
    file. On a shared machine the CPU time is the figure to compare."""
    with tempfile.NamedTemporaryFile("w", suffix=".cfg") as handle:
        handle.write(ios_config(blocks))
        handle.flush()
        began, cpu = time.perf_counter(), time.process_time()
        config = load_config(handle.name)
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    assert len(config.tunnels) == blocks
    return seconds, cpu


def mpls_frame(labels: int) -> bytes:
    """An Ethernet frame: `labels` MPLS labels (the last one bottom of stack), a keepalive."""
    stack = b"".join(
        struct.pack("!I", (16 << 12) | (int(i == labels - 1) << 8) | 64) for i in range(labels)
    )
    request = build_keepalive_request("192.0.2.1", "198.51.100.1")
    return bytes(12) + struct.pack("!H", 0x8847) + stack + request


def time_decode(frame: bytes, count: int = 40) -> float:
    """Seconds to decode `frame` `count` times."""
    began = time.perf_counter()
    for _ in range(count):
        decode_frame(LINKTYPE_ETHERNET, frame)
    return time.perf_counter() - began


def main() -> None:
    """Run the measurements, print them, optionally save them."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=50_000)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    time_config(100)  # warm-up: imports, regex compilation
    small, small_cpu = time_config(args.blocks // 10)
    large, large_cpu = time_config(args.blocks)
    ordinary = time_decode(build_ethernet(build_keepalive_request("192.0.2.1", "198.51.100.1")))
    labelled = time_decode(mpls_frame(65_000))
    figures = {
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "ios_config_blocks": args.blocks,
        "ios_config_seconds": round(large, 3),
        "ios_config_cpu_seconds": round(large_cpu, 3),
        "ios_config_tenth_seconds": round(small, 3),
        "ios_config_tenth_cpu_seconds": round(small_cpu, 3),
        "load_average": round(os.getloadavg()[0], 1),
        "mpls_40_frames_65000_labels_seconds": round(labelled, 4),
        "ordinary_40_frames_seconds": round(ordinary, 4),
    }
    print(
        f"IOS config, {args.blocks:,} tunnel blocks: {large:.2f} s, CPU {large_cpu:.2f} s "
        f"({args.blocks // 10:,} blocks: {small:.2f} s, CPU {small_cpu:.2f} s)\n"
        f"40 frames of 65,000 MPLS labels: {labelled * 1000:.1f} ms "
        f"(40 ordinary frames: {ordinary * 1000:.2f} ms)"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
