"""The `gre-keepalive` command line."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn, TextIO

from analyzer.analysis import Settings, analyze_frames
from analyzer.capture import CaptureError, open_capture
from analyzer.config import ConfigError, load_config
from analyzer.model import Analysis
from analyzer.report_csv import write_csv
from analyzer.report_json import write_json
from analyzer.report_text import write_text
from analyzer.state import MAX_PERIOD, MAX_RETRIES

PROG = "gre-keepalive"

# Further subcommands live in their own modules. Each exposes
# `register(subparsers) -> None`, which adds its parser and sets `handler=` (a function
# taking the parsed Namespace and returning the exit status). A registering module stays
# light: heavy imports (textual, pcapy, …) happen inside the handler.
COMMAND_MODULES: tuple[str, ...] = ("analyzer.lua_export", "analyzer.probe", "analyzer.tui.command")

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_DOWN = 3


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line on stderr (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _period(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"period must be a number of seconds, not {text!r}"
        ) from None
    if not 0 < value <= MAX_PERIOD:
        raise argparse.ArgumentTypeError(f"period {text} out of range 1-{MAX_PERIOD} seconds")
    return value


def _retries(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"retries must be an integer, not {text!r}") from None
    if not 1 <= value <= MAX_RETRIES:
        raise argparse.ArgumentTypeError(f"retries {text} out of range 1-{MAX_RETRIES}")
    return value


ANALYZE_HELP = """\
Rebuild every GRE keepalive originator's counter and line-protocol timeline from a capture,
the way Cisco IOS runs `keepalive <period> <retries>`:

  at each period tick: if counter >= retries the line protocol goes down; send; counter += 1
  when a returned keepalive arrives: counter = 0; a down line protocol comes up

Requests (GRE carrying an inner IP packet addressed back to the sender with an inner GRE
header of protocol type 0) are paired with their replies (bare PT-0 GRE) by tunnel, key
and inner IP ID. Without --config the period is inferred from the send interval and the
retries default to 3; every figure in the report says where it came from.
"""

ANALYZE_EPILOG = """\
examples:
  gre-keepalive analyze wan.pcap
  gre-keepalive analyze wan.pcapng.gz --config router-a.cfg --format json -o result.json
  tcpdump -i eth0 -w - 'ip proto 47' | gre-keepalive analyze - --period 5 --retries 4

exit status: 0 analysed; 2 unreadable input or bad usage; 3 with --fail-on-down when a
line protocol went down.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = _Parser(
        prog=PROG,
        description="Analyse GRE tunnel keepalives: counters, line protocol, blackholes.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    analyze = sub.add_parser(
        "analyze",
        help="rebuild keepalive timelines from a pcap/pcapng capture",
        description=ANALYZE_HELP,
        epilog=ANALYZE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    analyze.add_argument(
        "capture", help="pcap or pcapng file, optionally gzip-compressed; '-' reads stdin"
    )
    analyze.add_argument(
        "--config",
        metavar="FILE",
        help="router configuration: Cisco IOS running-config text (interface Tunnel blocks) "
        "or TOML ([defaults] and [[tunnel]] tables with source/destination/key/period/retries)",
    )
    analyze.add_argument(
        "--period",
        type=_period,
        metavar="S",
        help="keepalive period in seconds for every endpoint not in --config "
        "(default: inferred from the send interval, else 10)",
    )
    analyze.add_argument(
        "--retries",
        type=_retries,
        metavar="N",
        help="keepalive retries for every endpoint not in --config (default 3)",
    )
    analyze.add_argument(
        "--format",
        choices=("text", "json", "csv"),
        default="text",
        help="text: tables and timelines (default); json: the gre-keepalive.analysis/1 "
        "document; csv: one row per keepalive event and transition",
    )
    analyze.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    analyze.add_argument(
        "--fail-on-down",
        action="store_true",
        help="exit with status 3 when any line protocol went down",
    )
    analyze.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour in the text report (default: when writing to a terminal)",
    )

    simulate = sub.add_parser(
        "simulate",
        help="write a capture (and its ground truth) from a scenario file",
        description="Simulate GRE tunnels whose endpoints run the keepalive state machine, "
        "with path outages, and write what a capture at one endpoint would show.",
    )
    simulate.add_argument("scenario", help="scenario TOML file (see captures/README.md)")
    simulate.add_argument("-o", "--output", required=True, metavar="PCAP", help="pcap to write")
    simulate.add_argument(
        "--truth",
        metavar="JSON",
        help="where to write the ground-truth timeline (default: PCAP with .truth.json)",
    )
    analyze.set_defaults(handler=_analyze)
    simulate.set_defaults(handler=_simulate)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _analyze(args: argparse.Namespace) -> int:
    config = None
    if args.config:
        try:
            config = load_config(args.config)
        except ConfigError as exc:
            return _fail(str(exc))
        for warning in config.warnings:
            print(f"{PROG}: warning: {warning}", file=sys.stderr)
    try:
        reader = open_capture(args.capture)
    except CaptureError as exc:
        return _fail(str(exc))
    try:
        with reader:
            analysis = analyze_frames(
                reader,
                Settings(config=config, period=args.period, retries=args.retries),
                files=[reader.name],
            )
            analysis.source.precision = reader.precision
            read_warnings = [
                f"{reader.name}: byte {w.offset}: {w.message}" for w in reader.warnings
            ]
    except CaptureError as exc:
        return _fail(str(exc))
    analysis.source.warnings.extend(read_warnings)
    for warning in read_warnings:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    if analysis.source.packets == 0 and read_warnings:
        return _fail(f"{reader.name}: no complete frame could be read")
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as stream:
                _write(analysis, stream, args.format, color=args.color == "always")
        except OSError as exc:
            return _fail(f"{args.output}: cannot write ({exc.strerror})")
    else:
        color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
        _write(analysis, sys.stdout, args.format, color=color)
    if args.fail_on_down and analysis.any_down:
        return EXIT_DOWN
    return EXIT_OK


def _write(analysis: Analysis, stream: TextIO, output_format: str, *, color: bool) -> None:
    if output_format == "json":
        write_json(analysis, stream)
    elif output_format == "csv":
        write_csv(analysis, stream)
    else:
        write_text(analysis, stream, color=color)


def _simulate(args: argparse.Namespace) -> int:
    from analyzer.simulate import run_cli

    return run_cli(args.scenario, args.output, args.truth)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    try:
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
