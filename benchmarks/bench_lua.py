"""What does the Wireshark plugin (`gre-keepalive export-lua`) cost tshark?

Not a test: run it by hand (docs/lua.md, "Cost"). It simulates a 40-tunnel capture with
the project's simulator (five minutes, both ends `keepalive 10 3`, tunnel data in both
directions, one tunnel in eight loses its path for 45 s), writes the plugin with the
defaults, then times tshark on that file as fresh processes, interleaved, in an empty
HOME (no personal plugins):

  alone         tshark -n -r FILE                          (the packet list, to /dev/null)
  plugin        tshark -n -r FILE -X lua_script:PLUGIN
  alone -2 -Y   tshark -n -2 -r FILE -Y "gre.proto == 0"
  plugin -2 -Y  tshark -n -2 -r FILE -X lua_script:PLUGIN -Y grekeepalive

and prints the medians of each run's CPU time (user + system; the elapsed time is printed
too, but on a shared machine it mostly measures the other processes) and the ratios
plugin / alone (the promise: at most 1.3 for the packet list), and writes them as JSON
(benchmarks/out/, or --json FILE).

    python benchmarks/bench_lua.py [--repeat N] [--tunnels T] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"

TUNNELS = 40
DURATION = 300.0
DATA_PPS = 6.0  # per tunnel direction: about 150,000 frames in all
OUTAGE_EVERY = 8
OUTAGE = (100.0, 145.0)
TARGET_RATIO = 1.3


def scenario(tunnels: int) -> str:
    """The benchmark's scenario TOML."""
    lines = [
        f"# gre-keepalive Lua plugin benchmark: {tunnels} tunnels",
        "start = 1764115200.0",
        f"duration = {DURATION}",
        'vantage = "a"',
        "",
    ]
    for index in range(tunnels):
        lines += [
            "[[tunnel]]",
            f'a = "198.51.100.{1 + index}"',
            f'b = "203.0.113.{1 + index}"',
            f"key = {index + 1}",
            "delay_ms = 15.0",
            f"data_pps = {DATA_PPS}",
            f"keepalive_a = {{ period = 10, retries = 3, phase = {round(index * 0.37 % 10, 3)} }}",
            f"keepalive_b = {{ period = 10, retries = 3, phase = {round(index * 0.61 % 10, 3)} }}",
        ]
        if index % OUTAGE_EVERY == 0:
            start, end = OUTAGE
            lines.append(f'outages = [{{ start = {start}, end = {end}, direction = "both" }}]')
        lines.append("")
    return "\n".join(lines)


def build(directory: Path, tunnels: int) -> tuple[Path, Path]:
    """The capture and the plugin."""
    toml = directory / f"lua-bench-{tunnels}.toml"
    toml.write_text(scenario(tunnels), encoding="utf-8")
    capture = directory / f"lua-bench-{tunnels}.pcap"
    plugin = directory / "gre_keepalive.lua"
    for command in (
        ["simulate", str(toml), "-o", str(capture)],
        ["export-lua", "-o", str(plugin)],
    ):
        subprocess.run([sys.executable, "-m", "analyzer", *command], check=True, cwd=ROOT)
    return capture, plugin


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(CPU seconds, elapsed seconds) of one run of `command` (its output discarded); it
    must succeed. CPU time is what the comparison uses: on a shared machine the elapsed
    time mostly measures the other processes."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True
    )
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, elapsed


def frames(tshark: str, capture: Path, env: dict[str, str]) -> int:
    """How many frames the capture holds."""
    result = subprocess.run(
        [tshark, "-n", "-r", str(capture), "-T", "fields", "-e", "frame.number"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return len(result.stdout.split())


def main() -> int:
    """Build the capture, time the four runs interleaved, print and write the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each (default 5)")
    parser.add_argument("--tunnels", type=int, default=TUNNELS, help="tunnels (default 40)")
    parser.add_argument("--json", type=Path, help="where to write the figures")
    args = parser.parse_args()
    tshark = shutil.which("tshark")
    if tshark is None:
        print("bench_lua: tshark not installed (apt-get install tshark)", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch) / "home"
        home.mkdir()
        env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
        capture, plugin = build(Path(scratch), args.tunnels)
        lua = f"lua_script:{plugin}"
        runs = {
            "alone": [tshark, "-n", "-r", str(capture)],
            "plugin": [tshark, "-n", "-r", str(capture), "-X", lua],
            "alone -2 -Y": [tshark, "-n", "-2", "-r", str(capture), "-Y", "gre.proto == 0"],
            "plugin -2 -Y": [
                tshark,
                "-n",
                "-2",
                "-r",
                str(capture),
                "-X",
                lua,
                "-Y",
                "grekeepalive",
            ],
        }
        count = frames(tshark, capture, env)
        seconds: dict[str, list[float]] = {name: [] for name in runs}
        wall: dict[str, list[float]] = {name: [] for name in runs}
        for command in runs.values():  # warm the page cache and Lua's first load
            timed(command, env)
        for _ in range(args.repeat):
            for name, command in runs.items():
                cpu, elapsed = timed(command, env)
                seconds[name].append(cpu)
                wall[name].append(elapsed)
        size = capture.stat().st_size
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    wall_medians = {name: statistics.median(values) for name, values in wall.items()}
    ratios = {
        "packet list": medians["plugin"] / medians["alone"],
        "-2 -Y": medians["plugin -2 -Y"] / medians["alone -2 -Y"],
    }
    version = subprocess.run([tshark, "--version"], capture_output=True, text=True, check=False)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "system": platform.platform(),
        "tshark": version.stdout.splitlines()[0] if version.stdout else "?",
        "tunnels": args.tunnels,
        "frames": count,
        "bytes": size,
        "repeat": args.repeat,
        "cpu_seconds": seconds,
        "elapsed_seconds": wall,
        "cpu_medians": medians,
        "elapsed_medians": wall_medians,
        "ratios": ratios,
        "target_ratio": TARGET_RATIO,
        "met": ratios["packet list"] <= TARGET_RATIO,
    }
    print(
        f"{args.tunnels} tunnels, {count:,} frames, {size / 1e6:.1f} MB; medians of {args.repeat}"
    )
    print(f"{'run':<14} {'CPU s':>8} {'µs/frame':>9} {'elapsed s':>10}")
    for name, median in medians.items():
        print(f"{name:<14} {median:8.3f} {median / count * 1e6:9.1f} {wall_medians[name]:10.3f}")
    for name, ratio in ratios.items():
        print(f"plugin / alone ({name}): {ratio:.2f}× (target ≤ {TARGET_RATIO}×)")
    target = args.json or OUT / f"lua-{report['date']}.json"
    target.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"written: {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
