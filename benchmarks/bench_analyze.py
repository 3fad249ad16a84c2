"""How fast is `gre-keepalive analyze` on a busy WAN capture, against what else there is?

Not a test: run it by hand (see README, Performance). It builds a capture with the
project's simulator (30 s of a busy WAN port: 500 GRE tunnels, both ends `keepalive 10 3`,
tunnel data at a rate giving about 1.5 M packets; one tunnel in 20 runs `keepalive 5 3`
and loses its path for 20 s, so its line protocol goes down and up), then times, on that
same file, each as a fresh process:

  analyze  gre-keepalive analyze FILE --format json   (the product, end to end)
  floor    libpcap (pcapy) with the BPF keepalive filter: read and filter, nothing else
  dpkt     dpkt decoding every frame (Ethernet → IP → GRE), nothing else
  tshark   tshark -Y "gre.proto == 0" (on a slice if the whole file would take > 60 s)

and prints a table with the ratios the project promises (analyze ≤ 2× the floor, ≥ 150×
faster than tshark, ≥ 40× faster than dpkt), the analyzer's peak RSS, and writes it all
as JSON. `--scale 10` makes the capture ten times busier (same tunnels, same 30 s, ten
times the data rate); `--rss-check` also analyses a capture ten times busier than the one
being timed and compares the two peak RSS figures (the promise: at most 10 % higher).

    python benchmarks/bench_analyze.py [--scale S] [--rss-check] [--repeat N] [--json F]

`--hub TUNNELS` times a DMVPN/GRE hub instead, where keepalives are a large share of the
packets: ten minutes of TUNNELS spokes captured at the hub (both ends `keepalive 10 3`, 4
data packets a second per tunnel, 500 non-GRE packets a second beside them; 500 tunnels
make 1.6 M packets and 120,000 keepalive packets), `analyze --format json` and `analyze`
(text) against the floor and tshark, with wall and CPU seconds (the CPU figures vary less
on a shared machine) and the cost per keepalive above the floor:

    python benchmarks/bench_analyze.py --hub 500 [--repeat N] [--no-tshark] [--json F]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"

TUNNELS = 500
DURATION = 30.0  # 1.5 M packets in 30 s: 50,000 packets/s, about 70 Mbit/s
PERIOD = 10
RETRIES = 3
BASE_PACKETS = 1_500_000
OUTAGE_EVERY = 20  # one tunnel in 20 runs `keepalive 5 3` …
OUTAGE_KEEPALIVE = (5, 3)
OUTAGE = (4.0, 24.0)  # … and loses its path, both ways, during this window
TSHARK_BUDGET = 60.0  # seconds tshark may take before it gets a slice instead
TSHARK_SLICE = 100_000  # packets of the slice
DPKT_SLICE = 1_500_000  # dpkt on a busier capture: this many packets, scaled

TARGET_FLOOR_RATIO = 2.0
TARGET_TSHARK_SPEEDUP = 150.0
TARGET_DPKT_SPEEDUP = 40.0
TARGET_RSS_MB = 150.0
TARGET_RSS_GROWTH = 0.10

FLOOR_SCRIPT = """
import sys, pcapy
from analyzer.read.bpf import keepalive_filter, linktype_from_dlt
reader = pcapy.open_offline(sys.argv[1])
linktype = linktype_from_dlt(reader.datalink())
reader.setfilter(keepalive_filter(include_data=False, linktype=linktype))
passed = 0
while True:
    header, _data = reader.next()
    if header is None:
        break
    passed += 1
print(passed)
"""

DPKT_SCRIPT = """
import itertools, sys, dpkt
gre = keepalives = 0
limit = int(sys.argv[2]) if len(sys.argv) > 2 else None
with open(sys.argv[1], "rb") as stream:
    for _time, frame in itertools.islice(dpkt.pcap.Reader(stream), limit):
        ip = dpkt.ethernet.Ethernet(frame).data
        if isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.gre.GRE):
            gre += 1
            inner = getattr(ip.data.data, "data", None)
            keepalives += ip.data.p == 0 or isinstance(inner, dpkt.gre.GRE)
print(gre, keepalives)
"""


@dataclass
class Run:
    """One tool on one file: wall seconds (the median of the repeats) and peak RSS."""

    name: str
    seconds: float
    runs: list[float]
    peak_rss_mb: float
    packets: int  # packets the timing covers (a slice for tshark)
    note: str = ""
    cpu_seconds: float | None = None  # median user + system time of the process


@dataclass
class Report:
    """Everything the benchmark measured, as written to JSON."""

    machine: dict[str, object]
    capture: dict[str, object]
    runs: dict[str, Run] = field(default_factory=dict)
    ratios: dict[str, float | None] = field(default_factory=dict)
    targets: dict[str, bool | None] = field(default_factory=dict)
    rss_check: dict[str, float] | None = None


def scenario(scale: float) -> str:
    """The benchmark's scenario TOML: BASE_PACKETS × scale packets from TUNNELS tunnels."""
    keepalive_packets = TUNNELS * 2 * 2 * (DURATION / PERIOD) * 1.05
    pps = (BASE_PACKETS * scale - keepalive_packets) / (TUNNELS * 2 * DURATION)
    lines = [
        f"# gre-keepalive benchmark capture, scale {scale:g}",
        "start = 1764115200.0",
        f"duration = {DURATION}",
        'vantage = "a"',
        "",
    ]
    for index in range(TUNNELS):
        a = f"198.51.{100 + index // 250}.{1 + index % 250}"
        b = f"203.0.{113 + index // 250}.{1 + index % 250}"
        failing = index % OUTAGE_EVERY == 0
        period, retries = OUTAGE_KEEPALIVE if failing else (PERIOD, RETRIES)
        phase_a = round((index * 0.37) % period, 3)
        phase_b = round((index * 0.61 + 1.3) % period, 3)
        lines += [
            "[[tunnel]]",
            f'a = "{a}"',
            f'b = "{b}"',
            f"key = {index + 1}",
            "delay_ms = 15.0",
            f"data_pps = {pps:.4f}",
            f"keepalive_a = {{ period = {period}, retries = {retries}, phase = {phase_a} }}",
            f"keepalive_b = {{ period = {period}, retries = {retries}, phase = {phase_b} }}",
        ]
        if failing:
            start, end = OUTAGE
            lines.append(f'outages = [{{ start = {start}, end = {end}, direction = "both" }}]')
        lines.append("")
    return "\n".join(lines)


HUB_DURATION = 600.0  # ten minutes
HUB_DATA_PPS = 4.0  # per tunnel, both directions together
HUB_BACKGROUND_PPS = 500  # non-GRE frames per second beside the tunnels
HUB_ADDRESS = "198.51.100.1"


def hub_scenario(tunnels: int) -> str:
    """A DMVPN/GRE hub's ten minutes: `tunnels` spokes, both ends `keepalive 10 3`,
    HUB_DATA_PPS data packets a second per tunnel, captured at the hub (background added by
    :func:`add_background`)."""
    lines = [
        f"# gre-keepalive benchmark capture: a hub with {tunnels} spokes",
        "start = 1764115200.0",
        f"duration = {HUB_DURATION}",
        'vantage = "a"',
        "",
    ]
    for index in range(tunnels):
        spoke = f"10.{index // 62500}.{index // 250 % 250}.{1 + index % 250}"
        lines += [
            "[[tunnel]]",
            f'a = "{HUB_ADDRESS}"',
            f'b = "{spoke}"',
            f"key = {index + 1}",
            f"delay_ms = {5 + index % 40}.0",
            f"data_pps = {HUB_DATA_PPS / 2:g}",
            f"keepalive_a = {{ period = {PERIOD}, retries = {RETRIES}, "
            f"phase = {round((index * 0.37) % PERIOD, 3)} }}",
            f"keepalive_b = {{ period = {PERIOD}, retries = {RETRIES}, "
            f"phase = {round((index * 0.61 + 1.3) % PERIOD, 3)} }}",
            "",
        ]
    return "\n".join(lines)


BACKGROUND_FRAME = bytes.fromhex(
    # Ethernet: destination, source, IPv4; IPv4 192.0.2.10 -> 192.0.2.20, UDP, 186 bytes;
    # UDP 40000 -> 53 (checksums left zero: nothing reads them)
    "0200000000020200000000010800450000ba0000000040110000c000020ac00002149c40003500a60000"
).ljust(200, b"\x00")


def add_background(source: Path, destination: Path, pps: int) -> int:
    """Copy the classic pcap `source` to `destination` with `pps` non-GRE (UDP) frames a
    second interleaved in time order over its span, record by record; the frames written."""
    with source.open("rb") as stream, destination.open("wb") as out:
        header = stream.read(24)
        magic = struct.unpack("<I", header[:4])[0]
        order = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
        units = 10**9 if magic in (0xA1B23C4D, 0x4D3CB2A1) else 10**6
        record = struct.Struct(order + "IIII")
        step = units // pps
        size = len(BACKGROUND_FRAME)
        out.write(header)
        at: int | None = None
        written = 0
        while head := stream.read(16):
            seconds, fraction, caplen, _length = record.unpack(head)
            stamp = seconds * units + fraction
            if at is None:
                at = stamp + step // 2
            while at < stamp:
                second, part = divmod(at, units)
                out.write(record.pack(second, part, size, size) + BACKGROUND_FRAME)
                written += 1
                at += step
            out.write(head + stream.read(caplen))
            written += 1
    return written


def build_hub_capture(tunnels: int) -> Path:
    """The hub capture of `tunnels` spokes with its background, simulated once and kept in
    benchmarks/out/."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"hub-{tunnels}.pcap"
    toml = OUT / f"hub-{tunnels}.toml"
    text = hub_scenario(tunnels)
    if path.exists() and toml.exists() and toml.read_text() == text:
        return path
    toml.unlink(missing_ok=True)  # written again once the capture is complete
    print(f"simulating {path.name} ({tunnels} tunnels, {HUB_DURATION:g} s) …", flush=True)
    began = time.monotonic()
    with tempfile.TemporaryDirectory(dir=OUT) as scratch:
        bare = Path(scratch) / "tunnels.pcap"
        scenario_file = Path(scratch) / "hub.toml"
        scenario_file.write_text(text)
        subprocess.run(
            [sys.executable, "-m", "analyzer", "simulate", str(scenario_file), "-o", str(bare)],
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        partial = Path(scratch) / "hub.pcap"
        add_background(bare, partial, HUB_BACKGROUND_PPS)
        partial.replace(path)
        toml.write_text(text)
    print(f"  done in {time.monotonic() - began:.0f} s", flush=True)
    return path


def build_capture(scale: float) -> Path:
    """The capture for `scale`, simulated once and kept in benchmarks/out/."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"busy-wan-x{scale:g}.pcap"
    toml = OUT / f"busy-wan-x{scale:g}.toml"
    text = scenario(scale)
    if path.exists() and toml.exists() and toml.read_text() == text:
        return path
    toml.unlink(missing_ok=True)  # written again once the capture is complete
    scenario_file = OUT / f"busy-wan-x{scale:g}.partial.toml"
    scenario_file.write_text(text)
    print(
        f"simulating {path.name} (about {BASE_PACKETS * scale / 1e6:.1f} M packets) …", flush=True
    )
    began = time.monotonic()
    partial = path.with_suffix(".partial")
    subprocess.run(
        [sys.executable, "-m", "analyzer", "simulate", str(scenario_file), "-o", str(partial)],
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    partial.replace(path)
    scenario_file.replace(toml)
    print(f"  done in {time.monotonic() - began:.0f} s", flush=True)
    return path


def timed(command: list[str], *, stdout: int | None = subprocess.DEVNULL) -> tuple[float, float]:
    """Run `command`; (wall seconds, peak RSS in MB) of that process."""
    seconds, rss, _cpu = timed_cpu(command, stdout=stdout)
    return seconds, rss


def timed_cpu(
    command: list[str], *, stdout: int | None = subprocess.DEVNULL
) -> tuple[float, float, float]:
    """Run `command`; (wall seconds, peak RSS in MB, user + system seconds) of that process."""
    began = time.perf_counter()
    process = subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE, cwd=ROOT)
    _pid, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - began
    stderr = process.stderr.read().decode() if process.stderr else ""
    if process.stderr:
        process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command[0]} failed ({status}): {stderr.strip()}")
    return seconds, usage.ru_maxrss / 1024.0, usage.ru_utime + usage.ru_stime


def measure_all(
    commands: dict[str, list[str]], repeat: int, packets: int, *, warm_up: bool = True
) -> dict[str, Run]:
    """Median wall and CPU time per command over `repeat` rounds, after one warm-up round
    (page cache, bytecode). Rounds interleave the commands, so that a noisy moment of a
    shared machine falls on all of them rather than on one."""
    for command in commands.values() if warm_up else ():
        timed(command)
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, command in commands.items():
            results[name].append(timed_cpu(command))
    runs = {}
    for name, measured in results.items():
        seconds = [s for s, _r, _c in measured]
        runs[name] = Run(
            name,
            statistics.median(seconds),
            seconds,
            max(r for _s, r, _c in measured),
            packets,
            cpu_seconds=statistics.median(c for _s, _r, c in measured),
        )
        listed = ", ".join(f"{s:.3f}" for s in seconds)
        print(
            f"  {name:12} {runs[name].seconds:8.3f} s, CPU {runs[name].cpu_seconds:.3f} s  "
            f"(runs: {listed})"
        )
    return runs


SUMMARY_SCRIPT = """
import json, sys
document = json.load(open(sys.argv[1]))
print(json.dumps({
    "packets": document["source"]["packets"],
    "keepalive_packets": document["source"]["keepalive_packets"],
    "line_protocol_changes": sum(
        len(o["transitions"]) for t in document["tunnels"] for o in t["originators"]
    ),
}))
"""


def summary(result: Path) -> dict[str, int]:
    """Counts from an analysis document, read by a child process: parsed here, a hub's
    document would raise this process's peak RSS, which Linux passes on to every child it
    starts (and so to every peak RSS measured after it)."""
    output = subprocess.run(
        [sys.executable, "-c", SUMMARY_SCRIPT, str(result)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    counts: dict[str, int] = json.loads(output)
    return counts


def count_packets(path: Path) -> int:
    """Packets in the capture, as `analyze` counts them (its libpcap reader, one run)."""
    with tempfile.TemporaryDirectory() as scratch:
        result = Path(scratch) / "count.json"
        command = [sys.executable, "-m", "analyzer", "analyze", str(path), "--format", "json"]
        subprocess.run([*command, "-o", str(result), "--quiet", "--no-data"], check=True, cwd=ROOT)
        packets: int = summary(result)["packets"]
        return packets


def tshark_run(path: Path, packets: int, repeat: int) -> Run | None:
    """tshark with a keepalive display filter: the whole file, or, if that would take longer
    than TSHARK_BUDGET, two slices (the first N and 3N packets, the median of `repeat` runs
    each) whose difference gives its time per packet apart from its start-up, extrapolated
    to the whole file."""
    tshark = shutil.which("tshark")
    if tshark is None:
        print("  tshark   skipped: not installed")
        return None
    command = [
        tshark,
        "-n",
        "-r",
        str(path),
        "-Y",
        "gre.proto == 0",
        "-T",
        "fields",
        "-e",
        "frame.number",
    ]
    small, large = TSHARK_SLICE, 3 * TSHARK_SLICE
    if packets <= large:
        return measure_all({"tshark": command}, repeat, packets)["tshark"]
    small_s = statistics.median(timed([*command, "-c", str(small)])[0] for _ in range(repeat))
    large_runs = [timed([*command, "-c", str(large)]) for _ in range(repeat)]
    large_s = statistics.median(s for s, _ in large_runs)
    per_packet = max(large_s - small_s, 0.0) / (large - small)
    estimate = large_s + per_packet * (packets - large)
    if estimate <= TSHARK_BUDGET:
        return measure_all({"tshark": command}, repeat, packets)["tshark"]
    note = (
        f"estimated: {small_s:.2f} s for the first {small:,} packets, {large_s:.2f} s for "
        f"{large:,}, so {per_packet * 1e6:.1f} µs per packet after start-up"
    )
    print(f"  tshark   {estimate:8.3f} s  ({note})")
    return Run("tshark", estimate, [estimate], max(r for _, r in large_runs), packets, note)


def dpkt_run(path: Path, packets: int) -> Run:
    """dpkt decoding every frame, once (a minute a run shows the order of magnitude); on a
    busier capture, the first DPKT_SLICE packets, scaled to the whole file (dpkt's time per
    packet does not change along a file, and it has almost no start-up)."""
    command = [sys.executable, "-c", DPKT_SCRIPT, str(path)]
    if packets <= DPKT_SLICE * 2:
        return measure_all({"dpkt": command}, 1, packets, warm_up=False)["dpkt"]
    seconds, rss = timed([*command, str(DPKT_SLICE)])
    estimate = seconds * packets / DPKT_SLICE
    note = f"estimated: {seconds:.2f} s for the first {DPKT_SLICE:,} packets"
    print(f"  dpkt     {estimate:8.3f} s  ({note})")
    return Run("dpkt", estimate, [estimate], rss, packets, note)


def machine() -> dict[str, object]:
    """What the numbers were measured on."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for module in ("dpkt", "pcapy"):
        try:
            versions[module] = __import__(module).__version__
        except (ImportError, AttributeError):
            versions[module] = "?"
    tshark = shutil.which("tshark")
    if tshark:
        first = subprocess.run([tshark, "--version"], capture_output=True, text=True).stdout
        versions["tshark"] = first.splitlines()[0] if first else "?"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        **versions,
        "date": time.strftime("%Y-%m-%d"),
    }


def main(argv: list[str] | None = None) -> int:
    """Build the capture, time every tool, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="capture size × this")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per tool (median)")
    parser.add_argument("--rss-check", action="store_true", help="also a 10× busier capture")
    parser.add_argument("--no-tshark", action="store_true", help="leave tshark out")
    parser.add_argument(
        "--hub",
        type=int,
        metavar="TUNNELS",
        help="time the hub capture of TUNNELS spokes instead (10 minutes, keepalive 10 3 at "
        "both ends, 4 data packets/s per tunnel, 500 non-GRE packets/s)",
    )
    parser.add_argument("--json", type=Path, help="where to write the results")
    args = parser.parse_args(argv)

    # As after `pip install`: bytecode compiled, so imports are not compiled on every run.
    compileall.compile_dir(ROOT / "analyzer", quiet=1)
    if args.hub is not None:
        return hub_main(args.hub, args.repeat, tshark=not args.no_tshark, destination=args.json)
    path = build_capture(args.scale)
    packets = count_packets(path)
    size = path.stat().st_size
    report = Report(
        machine(),
        {
            "file": str(path.relative_to(ROOT)),
            "packets": packets,
            "bytes": size,
            "tunnels": TUNNELS,
            "seconds": DURATION,
            "scale": args.scale,
        },
    )
    print(f"{path.name}: {packets:,} packets, {size / 1e6:.0f} MB, {TUNNELS} tunnels")
    with tempfile.TemporaryDirectory() as scratch:
        result = Path(scratch) / "analysis.json"
        analyze = [
            sys.executable,
            "-m",
            "analyzer",
            "analyze",
            str(path),
            "--format",
            "json",
            "-o",
            str(result),
            "--quiet",
        ]
        report.runs.update(
            measure_all(
                {"analyze": analyze, "floor": [sys.executable, "-c", FLOOR_SCRIPT, str(path)]},
                args.repeat,
                packets,
            )
        )
        counts = summary(result)
        report.capture["keepalive_packets"] = counts["keepalive_packets"]
        report.capture["line_protocol_changes"] = counts["line_protocol_changes"]
    report.runs["dpkt"] = dpkt_run(path, packets)
    if not args.no_tshark:
        tshark = tshark_run(path, packets, min(args.repeat, 3))
        if tshark is not None:
            report.runs["tshark"] = tshark

    analyze_s = report.runs["analyze"].seconds
    floor_ratio = analyze_s / report.runs["floor"].seconds
    dpkt_speedup = report.runs["dpkt"].seconds / analyze_s
    tshark_speedup = report.runs["tshark"].seconds / analyze_s if "tshark" in report.runs else None
    rss = report.runs["analyze"].peak_rss_mb
    report.ratios = {
        "analyze_over_floor": round(floor_ratio, 2),
        "dpkt_over_analyze": round(dpkt_speedup, 1),
        "tshark_over_analyze": None if tshark_speedup is None else round(tshark_speedup, 1),
    }
    report.targets = {
        f"analyze <= {TARGET_FLOOR_RATIO:g}x floor": floor_ratio <= TARGET_FLOOR_RATIO,
        f"analyze >= {TARGET_DPKT_SPEEDUP:g}x faster than dpkt": dpkt_speedup
        >= TARGET_DPKT_SPEEDUP,
        f"analyze >= {TARGET_TSHARK_SPEEDUP:g}x faster than tshark": (
            None if tshark_speedup is None else tshark_speedup >= TARGET_TSHARK_SPEEDUP
        ),
        f"peak RSS <= {TARGET_RSS_MB:g} MB": rss <= TARGET_RSS_MB,
    }
    if args.rss_check:
        big = build_capture(args.scale * 10)
        with tempfile.TemporaryDirectory() as scratch:
            _s, big_rss = timed(
                [
                    sys.executable,
                    "-m",
                    "analyzer",
                    "analyze",
                    str(big),
                    "--format",
                    "json",
                    "-o",
                    str(Path(scratch) / "a.json"),
                    "--quiet",
                ]
            )
        growth = big_rss / rss - 1.0
        report.rss_check = {"rss_mb": rss, "rss_10x_mb": big_rss, "growth": round(growth, 3)}
        report.targets[f"peak RSS at 10x <= +{TARGET_RSS_GROWTH:.0%}"] = growth <= TARGET_RSS_GROWTH
    print_table(report)
    destination = args.json or OUT / f"bench-x{args.scale:g}.json"
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_text(json.dumps(asdict(report), indent=2) + "\n")
    print(f"\nwritten to {destination}")
    return 0 if all(v is not False for v in report.targets.values()) else 1


TARGET_HUB_FLOOR_RATIO = 4.0
TARGET_HUB_RSS_MB = 100.0


def hub_main(tunnels: int, repeat: int, *, tshark: bool, destination: Path | None) -> int:
    """The hub benchmark: `analyze` (JSON and text) against the floor on the hub capture."""
    path = build_hub_capture(tunnels)
    packets = count_packets(path)
    size = path.stat().st_size
    report = Report(
        machine(),
        {
            "file": str(path.relative_to(ROOT)),
            "packets": packets,
            "bytes": size,
            "tunnels": tunnels,
            "seconds": HUB_DURATION,
            "data_pps_per_tunnel": HUB_DATA_PPS,
            "background_pps": HUB_BACKGROUND_PPS,
        },
    )
    print(f"{path.name}: {packets:,} packets, {size / 1e6:.0f} MB, {tunnels} tunnels")
    with tempfile.TemporaryDirectory() as scratch:
        result = Path(scratch) / "analysis.json"
        analyze = [sys.executable, "-m", "analyzer", "analyze", str(path), "--quiet"]
        report.runs.update(
            measure_all(
                {
                    "analyze --format json": [*analyze, "--format", "json", "-o", str(result)],
                    "analyze (text)": [*analyze, "-o", str(Path(scratch) / "analysis.txt")],
                    "floor": [sys.executable, "-c", FLOOR_SCRIPT, str(path)],
                },
                repeat,
                packets,
            )
        )
        keepalives = summary(result)["keepalive_packets"]
    report.capture["keepalive_packets"] = keepalives
    if tshark:
        run = tshark_run(path, packets, min(repeat, 3))
        if run is not None:
            report.runs["tshark"] = run
    floor = report.runs["floor"]
    ratios: dict[str, float | None] = {}
    for name in ("analyze --format json", "analyze (text)"):
        run = report.runs[name]
        ratios[f"{name} / floor"] = round(run.seconds / floor.seconds, 2)
        if run.cpu_seconds is not None and floor.cpu_seconds:
            ratios[f"{name} / floor, CPU"] = round(run.cpu_seconds / floor.cpu_seconds, 2)
            ratios[f"{name}: µs CPU per keepalive above the floor"] = round(
                (run.cpu_seconds - floor.cpu_seconds) / keepalives * 1e6, 2
            )
        ratios[f"{name}: µs per keepalive above the floor"] = round(
            (run.seconds - floor.seconds) / keepalives * 1e6, 2
        )
    if "tshark" in report.runs:
        ratios["tshark / analyze --format json"] = round(
            report.runs["tshark"].seconds / report.runs["analyze --format json"].seconds, 1
        )
    report.ratios = ratios
    report.targets = {
        f"{name} <= {TARGET_HUB_FLOOR_RATIO:g}x floor": report.runs[name].seconds
        <= TARGET_HUB_FLOOR_RATIO * floor.seconds
        for name in ("analyze --format json", "analyze (text)")
    }
    report.targets[f"peak RSS <= {TARGET_HUB_RSS_MB:g} MB"] = all(
        report.runs[name].peak_rss_mb <= TARGET_HUB_RSS_MB
        for name in ("analyze --format json", "analyze (text)")
    )
    print_table(report, against="floor")
    for name, value in ratios.items():
        print(f"- {name}: {value}")
    destination = destination or OUT / f"bench-hub-{tunnels}.json"
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_text(json.dumps(asdict(report), indent=2) + "\n")
    print(f"\nwritten to {destination}")
    return 0 if all(v is not False for v in report.targets.values()) else 1


def print_table(report: Report, *, against: str = "analyze") -> None:
    """The results as a Markdown table (pasted into README's Performance section), times
    as multiples of the run named `against`."""
    base = report.runs[against].seconds
    print()
    print(f"| run | seconds | CPU seconds | packets/s | × {against}'s time | peak RSS |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, run in report.runs.items():
        rate = run.packets / run.seconds if run.seconds else 0.0
        extra = f" ({run.note})" if run.note else ""
        cpu = "" if run.cpu_seconds is None else f"{run.cpu_seconds:.3f}"
        print(
            f"| {name}{extra} | {run.seconds:.3f} | {cpu} | {rate / 1e6:.2f} M | "
            f"{run.seconds / base:.2f} | {run.peak_rss_mb:.0f} MB |"
        )
    print()
    for target, met in report.targets.items():
        verdict = "n/a" if met is None else "met" if met else "MISSED"
        print(f"- {target}: {verdict}")
    if report.rss_check:
        check = report.rss_check
        print(
            f"- peak RSS {check['rss_mb']:.0f} MB, at 10x {check['rss_10x_mb']:.0f} MB "
            f"({check['growth']:+.1%})"
        )


if __name__ == "__main__":
    sys.exit(main())
