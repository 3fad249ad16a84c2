"""How fast is `gre-keepalive tui` on a hub capture: first paint, and every key?

Not a test: run it by hand (see docs/tui.md, Performance). It builds a hub capture with the
project's simulator (a DMVPN/GRE hub, 192.0.2.1, with N spokes in 10.0.0.0/8 for 10 minutes:
one tunnel per spoke with its own key, both ends `keepalive 10 3`, 15 ms each way, data
both ways; one tunnel in 20 loses its path for 60 s, so both its ends go down and up),
then, on that same file:

  analyze   `gre-keepalive analyze FILE --format json` as a fresh process (the yardstick)
  load      the TUI's loader in this process: the fast path and the analysis, as `tui` runs it
  paint     from starting the app to the first screen with the table filled (Pilot, 160×50)
  keys      each key's time from press to the screen updated, median and max over repeats:
            ↓ (select the next row), . and , (next/previous keepalive event), n (next
            transition of the selected originator), N (of any), g / G (start / end),
            s (sort by the next column), S (reverse), each key typed into the / filter;
            and a key bound to nothing, for what Pilot itself costs

The promises (issue "hub scale"): first paint ≤ 2 × analyze; every key ≤ 0.1 s at 500
tunnels and ≤ 0.3 s at 5,000. Results go to benchmarks/results/tui-DATE.json.

    python benchmarks/bench_tui.py [--tunnels 500 5000] [--minutes 10] [--repeat 5]
                                   [--analyze-runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"
RESULTS = ROOT / "benchmarks" / "results"
HUB = "192.0.2.1"
OUTAGE_EVERY = 20
SIZE = (160, 50)
KEY_TARGETS = {500: 0.1, 5000: 0.3}


def scenario(tunnels: int, minutes: float, data_pps: float) -> str:
    """The hub scenario: `tunnels` spokes, each its own keyed tunnel to the hub."""
    duration = minutes * 60.0
    lines = [
        f"# gre-keepalive TUI benchmark: hub with {tunnels} spokes, {minutes:g} min",
        "start = 1764115200.0",
        f"duration = {duration}",
        'vantage = "a"',
        "",
    ]
    for index in range(tunnels):
        phase_a, phase_b = (index * 0.37) % 10, (index * 0.61 + 1.3) % 10
        spoke = f"10.{index // 250 // 250}.{index // 250 % 250}.{1 + index % 250}"
        lines += [
            "[[tunnel]]",
            f'a = "{HUB}"',
            f'b = "{spoke}"',
            f"key = {index + 1}",
            "delay_ms = 15.0",
            f"data_pps = {data_pps:g}",
            f"keepalive_a = {{ period = 10, retries = 3, phase = {phase_a:.3f} }}",
            f"keepalive_b = {{ period = 10, retries = 3, phase = {phase_b:.3f} }}",
        ]
        if index % OUTAGE_EVERY == 0:
            start = 60.0 + (index * 7.0) % max(duration - 180.0, 1.0)
            window = f"start = {start:.1f}, end = {start + 60.0:.1f}"
            lines.append(f'outages = [{{ {window}, direction = "both" }}]')
        lines.append("")
    return "\n".join(lines)


def build_capture(tunnels: int, minutes: float, data_pps: float) -> Path:
    """The hub capture, simulated once and kept in benchmarks/out/."""
    OUT.mkdir(parents=True, exist_ok=True)
    name = f"hub-{tunnels}-{minutes:g}min"
    path, toml = OUT / f"{name}.pcap", OUT / f"{name}.toml"
    text = scenario(tunnels, minutes, data_pps)
    if path.exists() and toml.exists() and toml.read_text() == text:
        return path
    toml.write_text(text)
    print(f"simulating {path.name} …", flush=True)
    began = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "analyzer", "simulate", str(toml), "-o", str(path)],
        check=True,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    print(f"  done in {time.monotonic() - began:.0f} s", flush=True)
    return path


def time_analyze(path: Path, repeat: int) -> list[float]:
    """`analyze --format json` as a fresh process, `repeat` times."""
    runs = []
    for _ in range(repeat):
        began = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "analyzer", "analyze", str(path), "--format", "json", "-q"],
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        runs.append(time.monotonic() - began)
    return runs


def loader(path: Path) -> Callable[[Callable[[int], None]], Any]:
    """The loader `gre-keepalive tui` hands the app (analyzer.tui.command)."""
    from analyzer.keepalive.analysis import Settings
    from analyzer.pipeline.analyze import analyze_collected
    from analyzer.pipeline.collect import collect

    def load(progress: Callable[[int], None]) -> Any:
        collected = collect(str(path), progress=progress)
        return analyze_collected(collected.collector, Settings())

    return load


async def time_tui(path: Path, repeat: int) -> dict[str, Any]:
    """First paint and per-key timings with Textual's Pilot."""
    from analyzer.tui.app import CaptureApp
    from analyzer.tui.widgets import TunnelTable

    progress_calls: list[int] = []
    load = loader(path)

    def counted(progress: Callable[[int], None]) -> Any:
        def seen(position: int) -> None:
            progress_calls.append(position)
            progress(position)

        return load(seen)

    app = CaptureApp(counted, name=str(path), size=path.stat().st_size)
    # When the screen was last updated: Pilot's press and pause each wait until the process
    # has been idle for one 20 ms slice (three in all, ~0.06 s, the cost of a key bound to
    # nothing), so the time from the key to the last screen update is timed apart.
    displays: list[float] = []
    display = app._display

    def displayed(screen: Any, renderable: Any) -> None:
        displays.append(time.monotonic())
        display(screen, renderable)

    app._display = displayed  # type: ignore[method-assign]
    began = time.monotonic()
    results: dict[str, Any] = {}
    async with app.run_test(size=SIZE) as pilot:
        while not app.ready.is_set():
            if app.failure is not None:
                raise RuntimeError(f"{path}: {app.failure}")
            await asyncio.sleep(0.01)
        await pilot.pause()
        results["first_paint_s"] = time.monotonic() - began
        # The counts of the rows off screen are built in the background after the paint.
        while app.index is not None and not app.index.warmed:
            await asyncio.sleep(0.05)
        results["warm_s"] = time.monotonic() - began
        results["progress_callbacks"] = len(progress_calls)
        table = app.query_one(TunnelTable)
        results["rows"] = table.row_count

        screen: dict[str, list[float]] = {}
        screen_times: list[float] = []  # of each press, in order

        async def press(*keys: str) -> float:
            start = time.monotonic()
            painted = len(displays)
            await pilot.press(*keys)
            await pilot.pause()
            end = time.monotonic()
            screen_times.append(displays[-1] - start if len(displays) > painted else 0.0)
            return end - start

        keys: dict[str, list[float]] = {}

        def record(name: str, seconds: float) -> None:
            keys.setdefault(name, []).append(seconds)
            screen.setdefault(name, []).append(screen_times[-1])

        for _ in range(repeat):
            record("z (no binding: Pilot's own cost)", await press("z"))
            record("down (select next row)", await press("down"))
            record(". (next event)", await press("full_stop"))
            record(", (previous event)", await press("comma"))
            record("n (next transition, selected)", await press("n"))
            record("N (next transition, any)", await press("N"))
            record("G (end)", await press("G"))
            record("g (start)", await press("g"))
            record("s (sort, next column)", await press("s"))
            record("S (reverse sort)", await press("S"))
        for word in ("10.0", "down"):
            await press("slash")
            for char in word:
                record("/ filter (each key typed)", await press(char))
            record("Enter (keep the filter)", await press("enter"))
            record("Esc (clear filter)", await press("escape"))
        results["keys"] = {
            name: {
                "median_s": statistics.median(runs),
                "max_s": max(runs),
                "runs": runs,
                # press → the last screen update it caused (Pilot's idle waits left out)
                "screen_median_s": statistics.median(screen[name]),
                "screen_max_s": max(screen[name]),
            }
            for name, runs in keys.items()
        }
    return results


def machine() -> dict[str, object]:
    """What the figures were measured on."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def main(argv: list[str] | None = None) -> int:
    """Build the captures, measure, print a table and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tunnels", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument(
        "--data-pps",
        type=float,
        default=None,
        help="data packets/s each way per tunnel "
        "(default 2 at up to 1,000 tunnels, else 0.2: the capture stays under 400 MB)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="rounds of key presses")
    parser.add_argument("--analyze-runs", type=int, default=3, help="analyze runs (median)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"machine": machine(), "captures": []}
    for tunnels in args.tunnels:
        pps = args.data_pps if args.data_pps is not None else (2.0 if tunnels <= 1000 else 0.2)
        path = build_capture(tunnels, args.minutes, pps)
        analyze = time_analyze(path, args.analyze_runs)
        tui = asyncio.run(time_tui(path, args.repeat))
        target = KEY_TARGETS.get(tunnels)
        worst = max(v["max_s"] for k, v in tui["keys"].items() if not k.startswith("z "))
        entry = {
            "tunnels": tunnels,
            "minutes": args.minutes,
            "data_pps_each_way": pps,
            "file": path.name,
            "bytes": path.stat().st_size,
            "analyze_json_s": statistics.median(analyze),
            "analyze_runs": analyze,
            **tui,
            "paint_over_analyze": tui["first_paint_s"] / statistics.median(analyze),
            "worst_key_s": worst,
            "key_target_s": target,
            "targets_met": {
                "paint_within_2x_analyze": tui["first_paint_s"] <= 2 * statistics.median(analyze),
                "every_key_within_target": None if target is None else worst <= target,
            },
        }
        report["captures"].append(entry)
        print_entry(entry)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = args.json or RESULTS / f"tui-{datetime.now(UTC):%Y-%m-%d}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results in {out}")
    return 0


def print_entry(entry: dict[str, Any]) -> None:
    """One capture's figures as a small table."""
    print(
        f"\n{entry['file']}: {entry['bytes'] / 1e6:.0f} MB, {entry['rows']} originators\n"
        f"  analyze --format json   {entry['analyze_json_s']:.2f} s\n"
        f"  tui first paint         {entry['first_paint_s']:.2f} s "
        f"({entry['paint_over_analyze']:.2f}× analyze; promise ≤ 2×)\n"
        f"  all rows' counts built  {entry['warm_s']:.2f} s after starting\n"
        f"  progress callbacks      {entry['progress_callbacks']}"
    )
    for name, figures in entry["keys"].items():
        print(
            f"  {name:<32} median {figures['median_s']:.3f} s  max {figures['max_s']:.3f} s"
            f"  screen updated {figures['screen_median_s']:.3f} s"
            f" (max {figures['screen_max_s']:.3f} s)"
        )
    print(f"  worst key {entry['worst_key_s']:.3f} s (promise ≤ {entry['key_target_s']} s)")


if __name__ == "__main__":
    sys.exit(main())
