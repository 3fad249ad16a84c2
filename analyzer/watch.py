"""`gre-keepalive watch IFACE`: follow GRE keepalives live on a network interface.

This module is imported whenever the command line is built, so it stays light: libpcap
(pcapy), the tracker and the terminal UI are imported when the command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TextIO

from analyzer.options import (
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    UsageError,
    fail,
    period_option,
    positive_option,
    read_config,
    retries_option,
)
from analyzer.report.escape import strict_json

if TYPE_CHECKING:
    from analyzer.keepalive.analysis import Settings
    from analyzer.keepalive.tracker import LiveEvent, LiveTracker
    from analyzer.read.capture import RawFrame
    from analyzer.read.sources import CaptureStats, FrameSource, InterfaceNotice, SourceItem

WHO = f"{PROG} watch"  # the name its error lines start with
DEFAULT_TICK = 0.5
MAX_SECONDS = 1e9  # about 31 years; below threading.TIMEOUT_MAX, which the waits are given
DEFAULT_BUFFER_MB = 32  # analyzer.read.live.DEFAULT_BUFFER_MB (not imported: keeps this light)
DEFAULT_STATS_INTERVAL = 10.0
STATS_MIN_INTERVAL = 1.0  # a new loss is reported this soon, but not more often

HELP = """\
Capture on a network interface and follow every GRE keepalive originator's counter and
line protocol as it happens, with the rules of `analyze` (Cisco IOS `keepalive <period>
<retries>`): a line protocol goes down when a period tick finds the counter at the retries,
also when no packet arrives at all (the wall clock drives the ticks), and comes up at the
first returned keepalive.

The kernel filters the traffic (libpcap). Keepalives have a capture of their own whose
filter passes only what can be a keepalive, so a flood of tunnel data cannot crowd them
out of its buffer; unless --no-data, a second capture counts the GRE data per tunnel
direction. What each capture loses (the kernel's drop counters) is reported: in the status
line, and in `stats` lines every --stats-interval seconds and at exit. Capturing needs
root, or CAP_NET_RAW and CAP_NET_ADMIN on the Python interpreter.
"""

EPILOG = """\
output (--format jsonl): one JSON object per line, flushed as it happens —
  {"time": …, "event": "sent"|"returned"|"extrapolated"|"down"|"up", "endpoints": [A, B],
   "key": …, "originator": A, "peer": B, "frame": …, "ident": …, "counter": …,
   "line_state": "up"|"down", "rtt_ms": …, "reply_ttl": …}
   down/up lines also carry "keepalive_drops": packets the keepalive capture lost since this
   originator's previous transition (not 0: the transition may come from a lost keepalive)
  {"time": …, "event": "interface", "interface": IFACE, "message": "… went down (…); re-opening"}
  {"time": …, "event": "stats", "interface": IFACE, "final": false|true,
   "keepalive_capture": {"received": …, "dropped": …, "interface_dropped": …},
   "data_capture": {…} | null, "data_packets": … | null, "data_lower_bound": false|true,
   "data_flows": [{"src": A, "dst": B, "key": …, "packets": …}], "keepalive_drops": …}

examples:
  sudo gre-keepalive watch eth0
  gre-keepalive watch eth0 --format jsonl --period 10 --retries 3 --no-data
  gre-keepalive watch eth0 --config router-a.cfg --write live.pcap --filter 'host 192.0.2.1'

exit status: 0 stopped (Ctrl-C or --duration); 2 bad usage, unreadable --config, no such
interface, no permission to capture, or the terminal UI unavailable.
"""


_seconds = positive_option("seconds", MAX_SECONDS)


MAX_TICK = 60.0  # a slower clock check would report a silent tunnel's down that much late


def _tick(text: str) -> float:
    """--tick: seconds, at most MAX_TICK (without packets, only the clock finds a down)."""
    value = _seconds(text)
    if value > MAX_TICK:
        raise argparse.ArgumentTypeError(
            f"{text} seconds is too long (at most {MAX_TICK:g}: on a silent line only the "
            "clock check finds a down, that much late)"
        )
    return value


def _megabytes(text: str) -> int:
    """A buffer size in MiB (a positive whole number) as bytes."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of MiB, not {text!r}") from None
    if not 1 <= value <= 4096:
        raise argparse.ArgumentTypeError(f"{text} MiB is not between 1 and 4096")
    return value << 20


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
        help="only the keepalive capture: no second capture counting the tunnels' data",
    )
    parser.add_argument(
        "--filter",
        metavar="EXPR",
        help="a libpcap filter (tcpdump syntax) ANDed with the filter of both captures, "
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
        "--buffer-size",
        type=_megabytes,
        default=DEFAULT_BUFFER_MB << 20,
        metavar="MB",
        help=f"kernel capture buffer of each capture, in MiB (like tcpdump -B, which counts "
        f"KiB; default {DEFAULT_BUFFER_MB}: about a second of a busy 1 Gbit/s port for the "
        "data capture, minutes of a thousand tunnels' keepalives for theirs)",
    )
    parser.add_argument(
        "--stats-interval",
        type=_seconds,
        default=DEFAULT_STATS_INTERVAL,
        metavar="S",
        help=f"jsonl: print the capture counters every S seconds (default "
        f"{DEFAULT_STATS_INTERVAL:g}), within a second of any new loss, and at exit",
    )
    parser.add_argument(
        "--tick",
        type=_tick,
        default=DEFAULT_TICK,
        metavar="S",
        help=f"jsonl: how often the wall clock is checked for missed keepalive ticks "
        f"(default {DEFAULT_TICK}, at most {MAX_TICK:g}; the terminal UI keeps its own clock)",
    )
    parser.set_defaults(handler=run)


def _settings(args: argparse.Namespace) -> Settings | None:
    """The analysis settings, or None after reporting a configuration error."""
    from analyzer.keepalive.analysis import Settings

    try:
        config = read_config(args.config, who=f"{PROG} watch")
    except UsageError as exc:
        fail(str(exc), who=WHO)
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
    from analyzer.read.live import (
        CaptureOpenError,
        CapturePermissionError,
        CaptureWriteError,
        live_frames,
    )

    try:
        args.interface.encode()
    except UnicodeEncodeError:  # bytes that are not UTF-8: libpcap's binding takes str
        return fail(f"cannot capture on {args.interface}: the name is not UTF-8", who=WHO)
    user_filter = args.filter

    def keepalives(linktype: int) -> str:
        return keepalive_filter(include_data=False, user_filter=user_filter, linktype=linktype)

    def data(linktype: int) -> str:
        return keepalive_filter(include_data=True, user_filter=user_filter, linktype=linktype)

    try:
        capture = live_frames(
            args.interface,
            bpf_filter=keepalives,
            data_filter=None if args.no_data else data,
            write=args.write,
            buffer_size=args.buffer_size,
            # the terminal UI's data and blackhole figures need each data packet's time
            record_data=output_format == "tui" and not args.no_data,
        )
    except (CapturePermissionError, CaptureOpenError, CaptureWriteError) as exc:
        return fail(str(exc), who=WHO)
    source: FrameSource = capture
    if args.duration is not None:
        source = _for_duration(source, args.duration)
    try:
        if output_format == "tui":
            status: int = run_live(source, settings, f"{PROG} watch {args.interface}")
            return status
        what = "keepalives" if args.no_data else "keepalives and GRE data"
        print(f"{PROG} watch: listening on {args.interface} ({what})", file=sys.stderr, flush=True)
        stats: Callable[[], CaptureStats] | None = getattr(capture, "stats", None)
        return _jsonl(
            source,
            settings,
            args.interface,
            tick=args.tick,
            stream=sys.stdout,
            stats=stats,
            stats_interval=args.stats_interval,
        )
    except CaptureWriteError as exc:  # --write on a full disk: named, not "the output"
        return fail(str(exc), who=WHO)


def _for_duration(source: FrameSource, seconds: float) -> FrameSource:
    """`source`, ending by itself after `seconds` (or when the caller's stop event is set)."""

    def limited(stop: threading.Event) -> Iterator[SourceItem]:
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


def stats_json(stats: CaptureStats, interface: str, *, final: bool = False) -> dict[str, Any]:
    """A capture's counters as the `stats` line of ``--format jsonl``."""
    counted = stats.data is not None
    return {
        "time": stats.time,
        "event": "stats",
        "interface": interface,
        "final": final,
        "keepalive_capture": stats.keepalive.to_json(),
        "data_capture": stats.data.to_json() if stats.data is not None else None,
        "data_packets": stats.data_packets if counted else None,
        "data_lower_bound": stats.data_lower_bound,
        "data_flows": [
            {"src": flow.src, "dst": flow.dst, "key": flow.key, "packets": flow.packets}
            for flow in stats.flows
        ],
        "keepalive_drops": stats.keepalive_lost,
    }


class _Losses:
    """When to print the counters, and how many keepalive-capture losses precede each
    originator's transitions."""

    def __init__(self, stats: Callable[[], CaptureStats] | None, interval: float) -> None:
        self.stats = stats
        self.interval = interval
        self.next_due = time.monotonic() + interval
        self.last_printed = -float("inf")
        self.printed_lost: tuple[int, int] = (0, 0)
        self.at_transition: dict[tuple[tuple[str, str], int | None, str], int] = {}

    def transition_drops(self, event: LiveEvent) -> int:
        """Keepalive-capture losses since this originator's previous transition."""
        lost = self.stats().keepalive_lost if self.stats is not None else 0
        who = (event.endpoints, event.key, event.originator)
        before = self.at_transition.get(who, 0)
        self.at_transition[who] = lost
        return lost - before

    def due(self) -> CaptureStats | None:
        """The counters when a `stats` line is due: every interval, or soon after a loss."""
        if self.stats is None:
            return None
        now = time.monotonic()
        stats = self.stats()
        lost = (stats.keepalive_lost, stats.data.lost if stats.data is not None else 0)
        new_loss = lost != self.printed_lost and now - self.last_printed >= STATS_MIN_INTERVAL
        if now < self.next_due and not new_loss:
            return None
        self.printed_lost = lost
        self.last_printed = now
        self.next_due = now + self.interval
        return stats


def _jsonl(
    source: FrameSource,
    settings: Settings,
    interface: str,
    *,
    tick: float,
    stream: TextIO,
    stats: Callable[[], CaptureStats] | None = None,
    stats_interval: float = DEFAULT_STATS_INTERVAL,
) -> int:
    """Print one JSON object per event, transition, interface notice and, with `stats`,
    the capture counters now and then, until stopped."""
    from analyzer.keepalive.tracker import LiveEventKind, LiveTracker
    from analyzer.read.live import pump
    from analyzer.read.packet import decode_frame

    tracker: LiveTracker = LiveTracker(settings)
    stop = threading.Event()
    losses = _Losses(stats, stats_interval)
    transitions = (LiveEventKind.DOWN, LiveEventKind.UP)

    def emit(objects: list[dict[str, Any]]) -> None:
        if objects:
            stream.write(strict_json("".join(json.dumps(obj) + "\n" for obj in objects)))
            stream.flush()

    def line(event: LiveEvent) -> dict[str, Any]:
        obj = event.to_json()
        if event.kind in transitions:
            obj["keepalive_drops"] = losses.transition_drops(event)
        return obj

    def events(found: list[LiveEvent]) -> None:
        emit([line(event) for event in found])

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
        due = losses.due()
        if due is not None:
            emit([stats_json(due, interface)])

    try:
        with contextlib.suppress(KeyboardInterrupt):
            pump(
                source,
                stop,
                on_frame=on_frame,
                on_notice=on_notice,
                on_idle=on_idle,
                idle_interval=tick,
            )
        events(tracker.advance(time.time()))
        if stats is not None:
            emit([stats_json(stats(), interface, final=True)])
    except BrokenPipeError:
        # The reader of our output went away (`| head`): stop quietly, and keep Python
        # from complaining when it flushes stdout at exit.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
    return EXIT_OK
