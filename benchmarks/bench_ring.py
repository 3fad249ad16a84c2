"""How much faster is a ring buffer read with several jobs, and does memory stay flat?

Not a test: run it by hand (see README, "Ring buffers"). It simulates a busy capture
(TUNNELS GRE tunnels, both ends `keepalive 10 3`, one in ten losing its path for 20 s),
splits it by time into 10 files as `tcpdump -G` would (and into 40 for the memory check),
then times, each as a fresh process and interleaved over `--repeat` rounds:

  whole      gre-keepalive analyze WHOLE.pcap --format json   (the concatenated capture)
  ring -j N  gre-keepalive analyze RING/ --format json --jobs N   for N = 1, 2, … cores

checks that every run's JSON equals the whole capture's (but for `source.files`), and
prints the medians, the speed-up of N jobs over one, and the peak RSS of the 10-file and
the 40-file ring (the promise: memory does not grow with the number of files). Writes it
all as JSON to benchmarks/out/ (``--json`` elsewhere).

    python benchmarks/bench_ring.py [--repeat N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
sys.path.insert(0, str(ROOT))

TUNNELS = 200
DURATION = 60.0
DATA_PPS = 40.0  # per tunnel and direction: about 1 M packets in all
FILES = 10
MANY_FILES = 40


def scenario() -> str:
    """The benchmark's scenario TOML."""
    lines = ["start = 1764115200.0", f"duration = {DURATION}", 'vantage = "a"', ""]
    for index in range(TUNNELS):
        lines += [
            "[[tunnel]]",
            f'a = "198.51.100.{1 + index % 250}"',
            f'b = "203.0.{113 + index // 250}.{1 + index % 250}"',
            f"key = {index + 1}",
            "delay_ms = 15.0",
            f"data_pps = {DATA_PPS}",
            f"keepalive_a = {{ period = 10, retries = 3, phase = {round(index * 0.37 % 10, 3)} }}",
            f"keepalive_b = {{ period = 10, retries = 3, phase = {round(index * 0.61 % 10, 3)} }}",
        ]
        if index % 10 == 0:
            lines.append('outages = [{ start = 20.0, end = 40.0, direction = "both" }]')
        lines.append("")
    return "\n".join(lines)


def build_capture() -> Path:
    """The whole capture, simulated once and kept in benchmarks/out/."""
    OUT.mkdir(parents=True, exist_ok=True)
    path, toml = OUT / "ring-whole.pcap", OUT / "ring-whole.toml"
    text = scenario()
    if path.exists() and toml.exists() and toml.read_text() == text:
        return path
    toml.write_text(text)
    print(f"simulating {path.name} …", flush=True)
    subprocess.run(
        [sys.executable, "-m", "analyzer", "simulate", str(toml), "-o", str(path)],
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    return path


def split(whole: Path, directory: Path, files: int) -> int:
    """`whole` cut by time into `files` files of equal duration (tcpdump -G); its frames."""
    from analyzer.read.capture import PcapWriter, open_capture

    directory.mkdir(parents=True, exist_ok=True)
    width = DURATION / files
    writers: dict[int, PcapWriter] = {}
    frames = 0
    start: float | None = None
    with open_capture(whole) as reader:
        for frame in reader:
            start = frame.time if start is None else start
            index = min(int((frame.time - start) / width), files - 1)
            writer = writers.get(index)
            if writer is None:
                writer = writers[index] = PcapWriter(directory / f"wan-{index:03d}.pcap")
            writer.write(frame.time, frame.data, frame.wire_length)
            frames += 1
    for writer in writers.values():
        writer.close()
    return frames


def timed(command: list[str], output: Path) -> tuple[float, float, float]:
    """Run `command` writing JSON to `output`; (wall seconds, CPU seconds, peak RSS in MB)."""
    began = time.perf_counter()
    process = subprocess.Popen([*command, "-o", str(output)], cwd=ROOT)
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - began
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0


def document(path: Path) -> dict[str, object]:
    """The JSON document without `source.files` (what differs between the forms)."""
    loaded: dict[str, dict[str, object]] = json.loads(path.read_text())
    loaded["source"].pop("files")
    return dict(loaded)


def main(argv: list[str] | None = None) -> int:
    """Build, split, time, compare; print the table and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    from analyzer.pipeline.ring import default_jobs

    whole = build_capture()
    cores = default_jobs()
    jobs = sorted({1, 2, cores})
    analyze = [sys.executable, "-m", "analyzer", "analyze", "--format", "json", "-q"]
    with tempfile.TemporaryDirectory(prefix="bench-ring-") as scratch:
        work = Path(scratch)
        packets = split(whole, work / "ring", FILES)
        split(whole, work / "many", MANY_FILES)
        commands = {"whole": [*analyze, str(whole)]}
        for n in jobs:
            commands[f"ring, --jobs {n}"] = [*analyze, str(work / "ring"), "--jobs", str(n)]
        commands[f"{MANY_FILES} files, --jobs {cores}"] = [
            *analyze,
            str(work / "many"),
            "--jobs",
            str(cores),
        ]
        runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in commands}
        expected: dict[str, object] | None = None
        for round_ in range(args.repeat + 1):  # the first round warms the page cache
            for name, command in commands.items():
                output = work / "out.json"
                measured = timed(command, output)
                got = document(output)
                expected = expected or got
                if got != expected:
                    raise SystemExit(f"{name}: the JSON differs from the whole capture's")
                if round_:
                    runs[name].append(measured)
    table = {
        name: {
            "seconds": statistics.median(s for s, _c, _r in measured),
            "cpu_seconds": statistics.median(c for _s, c, _r in measured),
            "peak_rss_mb": max(r for _s, _c, r in measured),
        }
        for name, measured in runs.items()
    }
    one = table["ring, --jobs 1"]["seconds"]
    for row in table.values():
        row["speedup_over_one_job"] = one / row["seconds"]
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "cores": cores,
            "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "kernel": platform.release(),
        },
        "capture": {"packets": packets, "bytes": whole.stat().st_size, "files": FILES},
        "repeat": args.repeat,
        "load_average": os.getloadavg(),
        "runs": table,
        "identical_json": True,
    }
    print(f"{packets:,} packets, {whole.stat().st_size / 1e6:.0f} MB, {cores} cores")
    print(f"load average {os.getloadavg()[0]:.1f} (other processes share the cores)")
    print(f"{'run':<26} {'seconds':>8} {'CPU s':>7} {'× one job':>10} {'peak RSS':>9}")
    for name, row in table.items():
        print(
            f"{name:<26} {row['seconds']:>8.2f} {row['cpu_seconds']:>7.2f} "
            f"{row['speedup_over_one_job']:>10.2f} {row['peak_rss_mb']:>6.0f} MB"
        )
    target = args.json or OUT / f"bench-ring-{report['date']}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
