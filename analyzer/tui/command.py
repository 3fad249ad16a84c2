"""`gre-keepalive tui CAPTURE`: the parser, and a handler that loads textual only when run.

Registering this subcommand must stay cheap (every `gre-keepalive` invocation does it), so
nothing here imports textual or the UI modules at import time.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from analyzer.options import (
    EXIT_USAGE,
    PROG,
    UsageError,
    period_option,
    read_config,
    retries_option,
)

if TYPE_CHECKING:
    from analyzer.keepalive.model import Analysis

TUI_HELP = """\
Explore a capture in a terminal UI: every keepalive originator's line protocol, counter
against retries, sent/returned/lost keepalives and time down, at a time cursor you step
through the capture (event by event, transition by transition, or played back at ×1, ×10,
×100). The selected tunnel shows its counter timeline and its transitions; `e` writes the
gre-keepalive.analysis/1 JSON document beside the capture.

The analysis is the one `gre-keepalive analyze` prints: same rules, same --config, --period
and --retries.
"""

TUI_EPILOG = """\
keys: . , (or → ←) step events · n p transitions of the selected originator · space play ·
x speed · / filter · s sort · e export JSON · ? help · q quit

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
        "the keyboard)",
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
        help="keepalive retries for every endpoint not in --config (default 3)",
    )
    parser.set_defaults(handler=run)


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def run(args: argparse.Namespace) -> int:
    """Check the inputs, then hand an analysis loader to the UI (loaded only now)."""
    from analyzer.keepalive.analysis import Settings
    from analyzer.pipeline.analyze import analyze_frames
    from analyzer.read.capture import CaptureError, open_capture

    if args.capture == "-":
        return _fail("tui needs a capture file; standard input is the keyboard")
    try:
        config = read_config(args.config)
    except UsageError as exc:
        return _fail(str(exc))
    warnings: list[str] = list(config.warnings) if config is not None else []
    try:
        reader = open_capture(args.capture)
    except CaptureError as exc:
        return _fail(str(exc))
    settings = Settings(config=config, period=args.period, retries=args.retries)

    def load() -> Analysis:
        with reader:
            analysis = analyze_frames(reader, settings, files=[reader.name])
            analysis.source.precision = reader.precision
            read_warnings = reader.warning_lines()
        analysis.source.warnings.extend(read_warnings)
        if analysis.source.packets == 0 and read_warnings:
            raise CaptureError(f"{reader.name}: no complete frame could be read")
        return analysis

    from analyzer.tui.app import run_capture

    try:
        return run_capture(load, reader.name, warnings=warnings)
    finally:
        reader.close()
