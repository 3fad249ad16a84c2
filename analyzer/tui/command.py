"""`gre-keepalive tui CAPTURE`: the parser, and a handler that loads textual only when run.

Registering this subcommand must stay cheap (every `gre-keepalive` invocation does it), so
nothing here imports textual or the UI modules at import time.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from analyzer.options import (
    UsageError,
    fail,
    period_option,
    read_config,
    retries_option,
)
from analyzer.report.escape import printable

if TYPE_CHECKING:
    from analyzer.keepalive.analysis import Settings
    from analyzer.keepalive.model import Analysis

TUI_HELP = """\
Explore a capture in a terminal UI: every keepalive originator's line protocol, counter
against retries, sent/returned/lost keepalives and time down, at a time cursor you step
through the capture (event by event, transition by transition, or played back at ×1, ×10,
×100). The selected tunnel shows its counter timeline, the data it blackholed and its
transitions; `e` exports the analysis as JSON or CSV to a file you name (by default in the
current directory).

The analysis is the one `gre-keepalive analyze` prints: same rules, same --config, --period
and --retries.
"""

TUI_EPILOG = """\
keys: . , (or → ←) step events · n p transitions of the selected originator · : go to a time
or frame · space play · / filter · l log filter · s sort · v events pane · t time format ·
[ ] columns · e export · ? help · q quit

examples:
  gre-keepalive tui captures/outage.pcap
  gre-keepalive tui wan.pcapng.gz --config router-a.cfg

exit status: 0 when quit; 2 unreadable capture, bad configuration or bad usage.
"""


def register(subparsers: Any) -> None:
    """Add the `tui` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "tui",
        help="explore a capture in a terminal UI with a time cursor",
        description=TUI_HELP,
        epilog=TUI_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "capture",
        help="pcap or pcapng file, optionally gzip-compressed (not '-': the terminal is "
        "the keyboard); as for analyze, a directory (a ring buffer) or files joined by "
        "commas (a1.pcap,a2.pcap) are one capture",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        metavar="N",
        help="a capture of several files is decoded N files at a time (default: the cores)",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="router configuration: Cisco IOS running-config text or TOML, as for analyze",
    )
    parser.add_argument(
        "--period",
        type=period_option,
        metavar="S",
        help="keepalive period in seconds for every endpoint not in --config "
        "(default: inferred from the send interval, else 10)",
    )
    parser.add_argument(
        "--retries",
        type=retries_option,
        metavar="N",
        help="keepalive retries for every endpoint not in --config (default 3); 'infer': "
        "read them from when each endpoint's data traffic stops after its keepalives fail",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Check the inputs, then hand an analysis loader to the UI (loaded only now). The
    capture is read as `analyze` reads it: libpcap's fast path where it can, else the
    pure-Python reader (said in the status line)."""
    from analyzer.keepalive.analysis import Settings
    from analyzer.pipeline.ring import check_capture
    from analyzer.read.capture import CaptureError

    if args.capture == "-":
        return fail("tui needs a capture file; standard input is the keyboard")
    try:
        config = read_config(args.config)
    except UsageError as exc:
        return fail(str(exc))
    warnings: list[str] = list(config.warnings) if config is not None else []
    try:
        files = check_capture(args.capture)  # unreadable: one line now, before any UI
    except CaptureError as exc:
        return fail(str(exc))
    retries = args.retries
    settings = Settings(
        config=config,
        period=args.period,
        retries=retries if isinstance(retries, int) else None,
        infer_retries=retries == "infer",
    )
    path = args.capture
    load = capture_loader(path, settings, jobs=args.jobs)

    from analyzer.tui.app import file_size, run_capture

    size = file_size(path) if len(files) == 1 else None
    # the name is shown on the screen: escape sequences in it must not reach the terminal
    return run_capture(load, printable(path), size=size, warnings=warnings)


def capture_loader(
    path: str, settings: Settings, *, jobs: int | None = None
) -> Callable[[Callable[[int], None]], Analysis]:
    """What the UI calls (in a thread of its own) to read and analyse the capture, handing
    `progress` the bytes read so far: `analyze`'s streaming pass and analysis."""
    from analyzer.pipeline.analyze import analyze_collected
    from analyzer.pipeline.ring import collect_capture
    from analyzer.read.capture import CaptureError

    def load(progress: Callable[[int], None]) -> Analysis:
        collected = collect_capture(path, progress=progress, jobs=jobs)
        analysis = analyze_collected(collected.collector, settings)
        analysis.source.precision = collected.precision
        analysis.source.warnings.extend(collected.warnings)
        if collected.fallback_reason is not None:
            analysis.source.warnings.append(
                f"read with the pure-Python reader, not libpcap: {collected.fallback_reason}"
            )
        if analysis.source.packets == 0 and collected.warnings:
            raise CaptureError(f"{path}: no complete frame could be read")
        return analysis

    return load
