"""`gre-keepalive watch IFACE`: follow GRE keepalives live on a network interface.

This module is imported whenever the command line is built, so it stays light: libpcap
(pcapy), the tracker and the terminal UI are imported when the command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TextIO

from analyzer.options import (
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    UsageError,
    period_option,
    read_config,
    retries_option,
)

if TYPE_CHECKING:
    from analyzer.keepalive.analysis import Settings
    from analyzer.keepalive.tracker import LiveEvent, LiveTracker
    from analyzer.read.capture import RawFrame
    from analyzer.read.sources import FrameSource, InterfaceNotice

DEFAULT_TICK = 0.5

HELP = """\
Capture on a network interface and follow every GRE keepalive originator's counter and
line protocol as it happens, with the rules of `analyze` (Cisco IOS `keepalive <period>
<retries>`): a line protocol goes down when a period tick finds the counter at the retries,
also when no packet arrives at all (the wall clock drives the ticks), and comes up at the
first returned keepalive.

The kernel filters the traffic (libpcap): only packets that can be keepalives, plus, unless
--no-data, the rest of the GRE so the tunnel's data packets are counted. Capturing needs
root, or CAP_NET_RAW and CAP_NET_ADMIN on the Python interpreter.
"""

EPILOG = """\
output (--format jsonl): one JSON object per line, flushed as it happens —
  {"time": …, "event": "sent"|"returned"|"extrapolated"|"down"|"up", "endpoints": [A, B],
   "key": …, "originator": A, "peer": B, "frame": …, "ident": …, "counter": …,
   "line_state": "up"|"down", "rtt_ms": …, "reply_ttl": …}
  {"time": …, "event": "interface", "interface": IFACE, "message": "… went down (…); re-opening"}

examples:
  sudo gre-keepalive watch eth0
  gre-keepalive watch eth0 --format jsonl --period 10 --retries 3 --no-data
  gre-keepalive watch eth0 --config router-a.cfg --write live.pcap --filter 'host 192.0.2.1'

exit status: 0 stopped (Ctrl-C or --duration); 2 bad usage, unreadable --config, no such
interface, no permission to capture, or the terminal UI unavailable.
"""


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, not {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return value


def _live_retries(text: str) -> int:
    """Retries as for analyze, but a number: 'infer' needs the capture's end (analyze only)."""
    value = retries_option(text)
    if not isinstance(value, int):
        raise argparse.ArgumentTypeError(
            f"retries must be a number for watch, not {text!r} (inferring them needs a "
            "whole capture: gre-keepalive analyze --retries infer)"
        )
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `watch` subcommand."""
    parser = subparsers.add_parser(
        "watch",
        help="follow keepalives live on a network interface (libpcap)",
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("interface", metavar="IFACE", help="interface to capture on, e.g. eth0")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="router configuration: Cisco IOS running-config text or TOML (as for analyze)",
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
        type=_live_retries,
        metavar="N",
        help="keepalive retries for every endpoint not in --config (default 3)",
    )
    parser.add_argument(
        "--no-data",
        action="store_true",
        help="capture only packets that can be keepalives (tunnel data is not counted)",
    )
    parser.add_argument(
        "--filter",
        metavar="EXPR",
        help="a libpcap filter (tcpdump syntax) ANDed with the keepalive filter, "
        "e.g. 'host 192.0.2.1'",
    )
    parser.add_argument(
        "--write",
        metavar="FILE",
        help="also save every captured packet to FILE (pcap; readable while watching, "
        "frame numbers as in the output)",
    )
    parser.add_argument(
        "--format",
        choices=("jsonl", "tui"),
        help="tui: the terminal UI (default when standard output is a terminal); "
        "jsonl: one JSON object per event and transition (default otherwise)",
    )
    parser.add_argument(
        "--duration",
        type=_seconds,
        metavar="S",
        help="stop after S seconds (default: until Ctrl-C)",
    )
    parser.add_argument(
        "--tick",
        type=_seconds,
        default=DEFAULT_TICK,
        metavar="S",
        help=f"jsonl: how often the wall clock is checked for missed keepalive ticks "
        f"(default {DEFAULT_TICK}; the terminal UI keeps its own clock)",
    )
    parser.set_defaults(handler=run)


def _fail(message: str) -> int:
    print(f"{PROG} watch: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _settings(args: argparse.Namespace) -> Settings | None:
    """The analysis settings, or None after reporting a configuration error."""
    from analyzer.keepalive.analysis import Settings

    try:
        config = read_config(args.config, who=f"{PROG} watch")
    except UsageError as exc:
        _fail(str(exc))
        return None
    return Settings(config=config, period=args.period, retries=args.retries)


def run(args: argparse.Namespace) -> int:
    """The `watch` command: exit status 0 when stopped, 2 when it cannot start."""
    try:
        return _run(args)
    except KeyboardInterrupt:  # Ctrl-C before or while watching: a normal way to stop
        return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return EXIT_USAGE
    output_format = args.format or ("tui" if sys.stdout.isatty() else "jsonl")
    run_live: Any = None
    if output_format == "tui":
        try:
            run_live = importlib.import_module("analyzer.tui.app").run_live
        except (ImportError, AttributeError) as exc:
            print(
                f"{PROG} watch: the terminal UI is not available ({exc}); use --format jsonl",
                file=sys.stderr,
            )
            return EXIT_USAGE

    from analyzer.read.bpf import keepalive_filter
    from analyzer.read.live import CaptureOpenError, CapturePermissionError, live_frames

    include_data = not args.no_data
    user_filter = args.filter

    def expression(linktype: int) -> str:
        return keepalive_filter(
            include_data=include_data, user_filter=user_filter, linktype=linktype
        )

    try:
        source = live_frames(args.interface, bpf_filter=expression, write=args.write)
    except (CapturePermissionError, CaptureOpenError) as exc:
        return _fail(str(exc))
    if args.duration is not None:
        source = _for_duration(source, args.duration)
    if output_format == "tui":
        status: int = run_live(source, settings, f"{PROG} watch {args.interface}")
        return status
    what = "keepalives" if args.no_data else "keepalives and GRE data"
    print(f"{PROG} watch: listening on {args.interface} ({what})", file=sys.stderr, flush=True)
    return _jsonl(source, settings, args.interface, tick=args.tick, stream=sys.stdout)


def _for_duration(source: FrameSource, seconds: float) -> FrameSource:
    """`source`, ending by itself after `seconds` (or when the caller's stop event is set)."""

    def limited(stop: threading.Event) -> Iterator[RawFrame | InterfaceNotice]:
        inner_stop = threading.Event()
        deadline = time.monotonic() + seconds

        def watchdog() -> None:
            while not stop.is_set() and not inner_stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                stop.wait(min(remaining, 0.1))
            inner_stop.set()

        timer = threading.Thread(target=watchdog, name="watch-duration", daemon=True)
        timer.start()
        try:
            yield from source(inner_stop)
        finally:
            inner_stop.set()

    return limited


def _jsonl(
    source: FrameSource, settings: Settings, interface: str, *, tick: float, stream: TextIO
) -> int:
    """Print one JSON object per event, transition and interface notice until stopped."""
    from analyzer.keepalive.tracker import LiveTracker
    from analyzer.read.live import pump
    from analyzer.read.packet import decode_frame

    tracker: LiveTracker = LiveTracker(settings)
    stop = threading.Event()

    def emit(objects: list[dict[str, Any]]) -> None:
        if objects:
            stream.write("".join(json.dumps(obj) + "\n" for obj in objects))
            stream.flush()

    def events(found: list[LiveEvent]) -> None:
        emit([event.to_json() for event in found])

    def on_frame(frame: RawFrame) -> None:
        events(tracker.feed(frame.time, frame.number, decode_frame(frame.linktype, frame.data)))

    def on_notice(notice: InterfaceNotice) -> None:
        emit(
            [
                {
                    "time": notice.time,
                    "event": "interface",
                    "interface": interface,
                    "message": notice.message,
                }
            ]
        )

    def on_idle() -> None:
        events(tracker.advance(time.time()))

    try:
        pump(
            source,
            stop,
            on_frame=on_frame,
            on_notice=on_notice,
            on_idle=on_idle,
            idle_interval=tick,
        )
        on_idle()
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        # The reader of our output went away (`| head`): stop quietly, and keep Python
        # from complaining when it flushes stdout at exit.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
    return EXIT_OK
