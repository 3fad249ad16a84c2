"""The `gre-keepalive` command line."""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import io
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from types import FrameType
from typing import TYPE_CHECKING, NoReturn, TextIO

from analyzer import cyclic_gc
from analyzer.keepalive.segments import DEFAULT_CAPTURE_GAP
from analyzer.options import (
    EXIT_DOWN,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    UsageError,
    count_option,
    fail,
    period_option,
    positive_option,
    read_config,
    retries_option,
)
from analyzer.pipeline.collect import collect, collect_python
from analyzer.read.capture import CaptureError, open_capture
from analyzer.read.fastpath import (
    READER_AUTO,
    READER_LIBPCAP,
    READERS,
    Collected,
    FastPathUnavailable,
    Progress,
)
from analyzer.report.escape import printable, shortened

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

    from analyzer.config import KeepaliveConfig
    from analyzer.keepalive.analysis import Settings
    from analyzer.keepalive.collect import Collector
    from analyzer.keepalive.model import Analysis

# The analysis core (dpkt, diagnoses, …) is imported only once a command needs it: the fast
# path starts libpcap reading first and imports it meanwhile (analyzer.read.fastpath).

# Further subcommands live in their own modules. Each exposes
# `register(subparsers) -> None`, which adds its parser and sets `handler=` (a function
# taking the parsed Namespace and returning the exit status). A registering module stays
# light: heavy imports (textual, pcapy, …) happen inside the handler.
COMMAND_MODULES: tuple[str, ...] = (
    "analyzer.wireshark.export",
    "analyzer.probe.command",
    "analyzer.tui.command",
    "analyzer.watch",
)


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line on stderr (exit 2)."""

    def error(self, message: str) -> NoReturn:
        shown = printable(shortened(message))  # arguments may hold escapes, 100k digits
        self.exit(EXIT_USAGE, f"{self.prog}: error: {shown} (see {self.prog} --help)\n")

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        # argparse drops a failed write silently: `--help > /dev/full` ended 0, showing nothing
        if not message:
            return
        stream = file or sys.stderr
        try:
            stream.write(message)
            getattr(stream, "flush", lambda: None)()
        except BrokenPipeError:
            _silence_stdout()
            raise SystemExit(EXIT_BROKEN_PIPE) from None
        except OSError as exc:
            if stream is sys.stderr or exc.errno not in _WRITE_ERRORS:
                raise
            _silence_stdout()
            raise SystemExit(fail(f"cannot write the output ({exc.strerror or exc})")) from None


DEFAULT_FOLLOW_TIMEOUT = 5.0


def _follow_timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"follow timeout must be a number of seconds, not {text!r}"
        ) from None
    if not 0 <= value <= 86400:
        raise argparse.ArgumentTypeError(f"follow timeout {text} out of range 0-86400 seconds")
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
  gre-keepalive analyze ring/                  # every file of a ring buffer, as one capture
  gre-keepalive analyze wan.pcap0,wan.pcap1 --jobs 2
  gre-keepalive analyze a-side/ b1.pcap,b2.pcap  # both ends, each of several files
  gre-keepalive analyze wan.pcapng.gz --config router-a.cfg --format json -o result.json
  tcpdump -i eth0 -w - 'ip proto 47' | gre-keepalive analyze - --period 5 --retries 4
  gre-keepalive analyze wan.pcap --follow      # while tcpdump -w wan.pcap is still writing

exit status: 0 analysed; 2 unreadable input or bad usage (also when the output cannot be
written: a full disk, a closed stdout); 3 with --fail-on-down when a line protocol went
down; 141 (128 + SIGPIPE), quietly, when the reader of stdout goes away (`| head`).
Names from files and configurations are shown with control characters escaped (\\033)
as `ls -b` shows them.
"""


SIMULATE_EPILOG = """\
scenario (TOML; only duration and each tunnel's a and b are required):

  start = 1764115200.0   # capture start, Unix seconds (default 2025-11-26 00:00:00 UTC)
  duration = 100.0       # seconds simulated
  vantage = "a"          # the capture is taken next to every tunnel's a (or "b")
  link = "ethernet"      # or "raw" (IP packets only); vlans = [100] tags every frame
  nanosecond = false     # true: a nanosecond pcap

  [[tunnel]]             # one table per tunnel
  a = "192.0.2.1"
  b = "198.51.100.1"
  key = 42               # GRE key (key_a / key_b: one end configured apart)
  delay_ms = 10.0        # one way (reflect_us = 50.0: how long a reflection takes)
  data_pps = 10.0        # tunnel data each way while that end is up (data_pps_a, _b)
  keepalive_a = { period = 5, retries = 4, phase = 0.0 }  # leave it out: a sends none
  keepalive_b = { period = 5, retries = 4, phase = 2.0 }
  outages = [{ start = 30.5, end = 70.5, direction = "both" }]  # or "a-to-b", "b-to-a"

Vendor variants and faults (period_jitter, inner_src, inner_dst, inner_key, inner_ttl,
payload, ip_id, machine, metadata_sgt, reflects_a, reflects_b) are described by
`python -m pydoc analyzer.simulate`. The truth file holds every send and line-protocol
transition of each endpoint, with the capture's frame numbers.

example:
  gre-keepalive simulate outage.toml -o outage.pcap && gre-keepalive analyze outage.pcap
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
        "capture",
        help="pcap or pcapng file, optionally gzip-compressed; '-' reads stdin; a directory "
        "(a ring buffer of tcpdump -G/-C or dumpcap -b: every pcap, pcapng or gzip file in "
        "it, in the order of their first timestamps); or several files joined by commas "
        "(a1.pcap,a2.pcap). Several files are one capture: one timeline, frames numbered on "
        "from file to file as in the files concatenated",
    )
    analyze.add_argument(
        "peer_capture",
        nargs="?",
        metavar="CAPTURE_B",
        help="a capture taken at the tunnel's other end (the same forms: file, directory, "
        "a,b,c): the two are merged (clock offset from request/reply pairs) and every lost "
        "keepalive is placed on the leg it died on",
    )
    # default given: without one, argparse names this hidden argument as required
    analyze.add_argument("extra_captures", nargs="*", default=[], help=argparse.SUPPRESS)
    analyze.add_argument(
        "--config",
        metavar="FILE",
        help="router configuration: Cisco IOS running-config text (interface Tunnel blocks) "
        "or TOML ([defaults] and [[tunnel]] tables with source/destination/key/period/retries)",
    )
    analyze.add_argument(
        "--period",
        type=period_option,
        metavar="S",
        help="keepalive period in seconds for every endpoint not in --config "
        "(default: inferred from the send interval, else 10)",
    )
    analyze.add_argument(
        "--retries",
        type=retries_option,
        metavar="N",
        help="keepalive retries for every endpoint not in --config (default 3); 'infer': "
        "read them from when each endpoint's data traffic stops after its keepalives fail",
    )
    _add_diagnosis_options(analyze)
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
    analyze.add_argument(
        "--follow",
        action="store_true",
        help="CAPTURE is still being written (e.g. by tcpdump -w): keep reading as it grows, "
        "and report once it has not grown for --follow-timeout seconds or on Ctrl-C",
    )
    reading = analyze.add_argument_group("reading")
    reading.add_argument(
        "--reader",
        choices=READERS,
        default=READER_AUTO,
        help="auto (default): libpcap with a BPF keepalive filter, or the pure-Python reader "
        "where libpcap cannot read the input as it would (gzip, stdin, …: a note says so; "
        "--follow always uses it); libpcap: fail instead of falling back; python: always "
        "the pure-Python reader",
    )
    reading.add_argument(
        "--no-data",
        action="store_true",
        help="do not record tunnel data packets (the GRE total still counts them): faster "
        "and no temporary disk, but no per-tunnel data or blackholed-packet counts and no "
        "--retries infer",
    )
    reading.add_argument(
        "--jobs",
        type=_jobs,
        default=None,
        metavar="N",
        help="a capture of several files is decoded N files at a time, in parallel "
        "(default: as many as the machine has cores); the result is the same for every N",
    )
    reading.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar and no note about the reader on stderr (warnings still show)",
    )
    analyze.add_argument(
        "--follow-timeout",
        type=_follow_timeout,
        default=DEFAULT_FOLLOW_TIMEOUT,
        metavar="S",
        help="with --follow: stop after S seconds without growth "
        f"(default {DEFAULT_FOLLOW_TIMEOUT:g})",
    )

    simulate = sub.add_parser(
        "simulate",
        help="write a capture (and its ground truth) from a scenario file",
        description="Simulate GRE tunnels whose endpoints run the keepalive state machine, "
        "with path outages, and write what a capture at one endpoint would show.",
        epilog=SIMULATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    simulate.add_argument("scenario", help="scenario TOML file (the form is below)")
    simulate.add_argument(
        "-o", "--output", required=True, metavar="PCAP", help="pcap to write ('-': stdout)"
    )
    simulate.add_argument(
        "--truth",
        metavar="JSON",
        help="where to write the ground-truth timeline (default: PCAP with .truth.json; "
        "with -o -, none unless given)",
    )
    analyze.set_defaults(handler=_analyze)
    simulate.set_defaults(handler=_simulate)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


class _Process:
    ends_after_command = False  # run(): os._exit once the command returns


_process = _Process()


def _analyze(args: argparse.Namespace) -> int:
    # An analysis keeps what it builds until the report is written: the collector's passes
    # over the growing heap only cost time (10 % of `analyze` on a busy capture). Left
    # off when the process ends right after the command (run()): the first collection
    # would only walk and free the analysis's cycles (requests and their replies), a
    # twentieth of `analyze` on a hub capture.
    with cyclic_gc.paused(restore=not _process.ends_after_command):
        return _analyze_capture(args)


def _analyze_capture(args: argparse.Namespace) -> int:
    if args.no_data and args.retries == "infer":
        return fail(
            "--retries infer reads them from when each endpoint's data stops: it needs the "
            "data packets that --no-data leaves out"
        )
    try:
        config = read_config(args.config)
    except UsageError as exc:
        return fail(str(exc))
    if args.extra_captures:
        return fail(
            f"{2 + len(args.extra_captures)} captures given: the files of one capture go "
            "together as a directory or joined by commas (a1.pcap,a2.pcap); two captures are "
            "the tunnels' two ends"
        )
    try:
        repeated = _repeated_file(args.capture, args.peer_capture)
    except CaptureError as exc:
        return fail(str(exc))
    if repeated is not None:
        return fail(repeated)
    if args.peer_capture is not None:
        return _analyze_two(args, config)
    try:
        collected = _collect_capture(args, args.capture, follow=args.follow)
    except CaptureError as exc:
        return fail(str(exc))
    except FastPathUnavailable as exc:
        return fail(f"{_shown(args.capture)}: --reader libpcap cannot read it ({exc})")
    except UsageError as exc:
        return fail(str(exc))
    from analyzer.pipeline.analyze import analyze_collected

    analysis = analyze_collected(collected.collector, _settings(args, config), final=True)
    analysis.source.precision = collected.precision
    name = analysis.source.files[0]
    warnings = collected.warnings
    if analysis.source.packets == 0 and warnings:
        first = warnings[0].removeprefix(f"{name}: ")
        return fail(f"{name}: no complete frame could be read ({first})")
    _note_reader(args, collected)
    analysis.source.warnings.extend(warnings)
    for warning in warnings:
        print(f"{PROG}: warning: {printable(warning)}", file=sys.stderr)
    return _report(args, analysis)


def _repeated_file(capture: str, peer_capture: str | None) -> str | None:
    """Why the capture arguments name one file twice (by device and inode, so a symbolic
    link or another spelling counts), or None. Read twice, a file's data packets count
    twice; as both ends, a capture is merged with itself. Raises CaptureError when a
    directory holds no capture."""
    from analyzer.pipeline.files import capture_files

    seen: dict[tuple[int, int], tuple[str, int]] = {}
    arguments = [capture] if peer_capture is None else [capture, peer_capture]
    for side, argument in enumerate(arguments):
        for path in capture_files(argument):
            try:
                status = os.stat(path) if path != "-" else None
            except OSError:
                continue  # missing or unreadable: the reader says so
            if status is None:
                continue
            identity = (status.st_dev, status.st_ino)
            if identity not in seen:
                seen[identity] = (path, side)
                continue
            first, first_side = seen[identity]
            same = path if first == path else f"{first} and {path}"
            if first_side == side:
                return f"{same}: the same file twice in one capture (each file is read once)"
            return (
                f"{same}: the same file in both captures (the two captures are the tunnel's "
                "two ends, each taken at one of them)"
            )
    return None


def _shown(path: str) -> str:
    return "<stdin>" if path == "-" else path


def _report(args: argparse.Namespace, analysis: Analysis) -> int:
    """Write the report where and how the options say; the exit status."""
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as stream:
                _write(analysis, stream, args.format, color=args.color == "always")
        except OSError as exc:
            return fail(f"{args.output}: cannot write ({exc.strerror})")
    else:
        color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
        _write(analysis, sys.stdout, args.format, color=color)
    if args.fail_on_down and analysis.any_down:
        return EXIT_DOWN
    return EXIT_OK


def _collect(args: argparse.Namespace, path: str, *, follow: bool) -> Collected[Collector]:
    """The streaming pass over one capture with the reader, progress and notes the options
    ask for. Raises CaptureError, or FastPathUnavailable with --reader libpcap."""
    include_data = not args.no_data
    with _progress_bar(path, quiet=args.quiet) as progress:
        if not follow:
            collected = collect(
                path, reader=args.reader, include_data=include_data, progress=progress
            )
        else:
            if args.reader == READER_LIBPCAP:
                raise FastPathUnavailable("--follow reads a growing file with the Python reader")
            with _stop_following_on_interrupt(enabled=True) as interrupted:
                reader = open_capture(path, follow=args.follow_timeout)
                if reader.following:
                    interrupted.append(reader.stop_following)
                with reader:
                    collected = collect_python(reader, [reader.name], include_data=include_data)
    return collected


def _collect_capture(
    args: argparse.Namespace, argument: str, *, follow: bool
) -> Collected[Collector]:
    """:func:`_collect` for one capture argument, which may name several files (a directory,
    a,b,c): those are read as one capture (analyzer.pipeline.ring). Raises CaptureError,
    FastPathUnavailable or UsageError."""
    from analyzer.pipeline.files import capture_files

    files = capture_files(argument)
    if len(files) == 1:
        return _collect(args, files[0], follow=follow)
    from analyzer.pipeline.ring import collect_files, order_by_first_time

    if follow:
        raise UsageError("--follow reads one growing file, not several")
    if "-" in files:
        raise UsageError("standard input cannot be one of several files")
    ordered = order_by_first_time(files)
    return collect_files(ordered, reader=args.reader, include_data=not args.no_data, jobs=args.jobs)


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"jobs must be a whole number, not {text!r}") from None
    if not 1 <= value <= 1024:
        raise argparse.ArgumentTypeError(f"jobs {text} out of range 1-1024")
    return value


def _note_reader(args: argparse.Namespace, collected: Collected[Collector]) -> None:
    """Say once why the pure-Python reader was used (when a report is going to follow)."""
    if collected.fallback_reason is not None and not args.quiet:
        files = collected.collector.source.files
        what = f"reading {files[0]}" if len(files) == 1 else "reading"
        print(
            printable(
                f"{PROG}: note: {what} with the pure-Python reader, not libpcap: "
                f"{collected.fallback_reason}"
            ),
            file=sys.stderr,
        )


PROGRESS_MIN_BYTES = 8 << 20  # smaller files are read before a bar would be worth drawing


@contextlib.contextmanager
def _progress_bar(path: str, *, quiet: bool) -> Iterator[Progress | None]:
    """A bar on stderr (bytes read of the file's size) when stderr is a terminal and the file
    is larger than PROGRESS_MIN_BYTES; otherwise no callback at all."""
    try:
        size = os.stat(path).st_size if path != "-" else 0
    except OSError:
        size = 0
    if quiet or size < PROGRESS_MIN_BYTES or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=Console(file=getattr(sys.stderr, "unescaped", sys.stderr)),
        transient=True,
    )
    task = bar.add_task(f"reading {os.path.basename(path)}", total=size)
    with bar:

        def advance(position: int | None) -> None:
            if position is not None:
                bar.update(task, completed=min(position, size))

        yield advance


@contextlib.contextmanager
def _stop_following_on_interrupt(*, enabled: bool) -> Iterator[list[Callable[[], None]]]:
    """While following a growing file, the first Ctrl-C ends the input (the report is still
    written); a second one interrupts. Append the stop callbacks to the yielded list."""
    stops: list[Callable[[], None]] = []
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield stops
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if not stops:
            raise KeyboardInterrupt
        for stop in stops:
            stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stops
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


def _analyze_two(args: argparse.Namespace, config: KeepaliveConfig | None) -> int:
    """`analyze A B`: captures from both ends of the tunnels, merged (analyzer.pipeline.merge)."""
    from analyzer.pipeline.merge import merge

    if args.follow:
        return fail("--follow reads one capture, not two")
    if args.capture == "-" and args.peer_capture == "-":
        return fail("only one of the two captures can be read from stdin")
    collected: list[Collector] = []
    names: list[str] = []
    for path in (args.capture, args.peer_capture):
        try:
            one = _collect_capture(args, path, follow=False)
        except CaptureError as exc:
            return fail(str(exc))
        except FastPathUnavailable as exc:
            return fail(f"{_shown(path)}: --reader libpcap cannot read it ({exc})")
        except UsageError as exc:
            return fail(str(exc))
        files = one.collector.source.files
        names.append(files[0] if len(files) == 1 else path)
        collector, warnings = one.collector, one.warnings
        collector.source.precision = one.precision
        if collector.source.packets == 0 and warnings:
            return fail(f"{collector.source.files[0]}: no complete frame could be read")
        _note_reader(args, one)
        collector.source.warnings.extend(warnings)
        for warning in warnings:
            print(f"{PROG}: warning: {printable(warning)}", file=sys.stderr)
        collected.append(collector)
    analysis = merge(collected[0], collected[1], _settings(args, config), (names[0], names[1]))
    return _report(args, analysis)


def _add_diagnosis_options(analyze: argparse.ArgumentParser) -> None:
    """Options of the diagnoses and of the what-if replay."""
    group = analyze.add_argument_group("diagnosis")
    group.add_argument(
        "--profile",
        action="append",
        type=_profile,
        metavar="[ADDRESS=]NAME",
        help="vendor profile: cisco, mikrotik (10 s, 10), huawei (5 s, 3), juniper "
        "(keepalive-time, hold-time = period x retries), openbsd (hold timer and hold-down), "
        "linux-reflector (never originates), or auto (fingerprint each originator); "
        "ADDRESS=NAME for one endpoint; repeatable",
    )
    group.add_argument(
        "--what-if",
        metavar="SETTING",
        type=_what_if,
        help="replay the capture under another setting, e.g. 'keepalive 2 3' (or '2 3', "
        "MikroTik's '2s,3'): the transitions and blackholed packets it would have produced",
    )
    group.add_argument(
        "--flap-transitions",
        type=count_option("transitions", 1),
        default=4,
        metavar="N",
        help="flapping: more than N line-protocol transitions … (default 4)",
    )
    group.add_argument(
        "--flap-minutes",
        type=_minutes,
        default=5.0,
        metavar="M",
        help="… within M minutes (default 5)",
    )
    group.add_argument(
        "--late-detection",
        type=count_option("packets", 0),
        default=100,
        metavar="PACKETS",
        help="late-detection: more blackholed data packets than this (default 100)",
    )
    group.add_argument(
        "--one-way",
        type=_seconds,
        default=30.0,
        metavar="S",
        help="one-way-data: a tunnel without keepalives whose data flows one way only for "
        "longer than S seconds is a suspected blackhole (default 30)",
    )
    group.add_argument(
        "--capture-gap",
        type=_seconds,
        default=DEFAULT_CAPTURE_GAP,
        metavar="S",
        help="a stretch without any GRE packet longer than S seconds (and than 10 periods) "
        "is the capture not running: no timeline is extrapolated across it, each ends where "
        f"its part of the capture ends (default {DEFAULT_CAPTURE_GAP:g}; raise it to have a "
        "long total outage extrapolated)",
    )


_seconds = positive_option("seconds")
_minutes = positive_option("minutes")


def _profile(text: str) -> tuple[str | None, str]:
    from analyzer.keepalive.profiles import parse_profile_option

    try:
        return parse_profile_option(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _what_if(text: str) -> str:
    from analyzer.diagnose.whatif import parse_setting

    try:
        period, retries = parse_setting(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return f"keepalive {period:g} {retries}"


def _settings(args: argparse.Namespace, config: KeepaliveConfig | None) -> Settings:
    from analyzer.keepalive.analysis import Settings

    retries = args.retries
    return Settings(
        config=config,
        period=args.period,
        retries=retries if isinstance(retries, int) else None,
        infer_retries=retries == "infer",
        flap_transitions=args.flap_transitions,
        flap_minutes=args.flap_minutes,
        late_detection_packets=args.late_detection,
        one_way_seconds=args.one_way,
        capture_gap=args.capture_gap,
        what_if=args.what_if,
        profiles=tuple(args.profile or ()),
    )


def _write(analysis: Analysis, stream: TextIO, output_format: str, *, color: bool) -> None:
    # Each writer is imported when used: rich alone takes longer to load than a fast-path
    # read of a 20 MB capture.
    if output_format == "json":
        from analyzer.report.json import write_json

        write_json(analysis, stream)
    elif output_format == "csv":
        from analyzer.report.csv import write_csv

        write_csv(analysis, stream)
    else:
        from analyzer.report.text import write_text

        write_text(analysis, stream, color=color)


def _simulate(args: argparse.Namespace) -> int:
    from analyzer.simulate import run_cli

    return run_cli(args.scenario, args.output, args.truth)


# The reader of our output went away (`| head`): a quiet exit with the status a shell
# reports for SIGPIPE, as `cat` or `grep` would end (documented in --help).
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE
# Writing the output failed for one of these reasons: one line, exit 2, never a traceback.
_WRITE_ERRORS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EBADF, errno.EROFS}
)


class _ClosedStream(io.TextIOBase):
    """Stands for stdout when the process was started with it closed (`>&-`)."""

    def write(self, _text: str) -> int:
        raise OSError(errno.EBADF, "stdout is closed")

    def isatty(self) -> bool:
        return False


class _EscapedStderr(io.TextIOBase):
    """stderr while a command runs: whatever module writes there, control characters are
    escaped as `ls -b` escapes names (newlines kept), so a name quoted in a message (an
    interface, a file) never reaches the terminal as an escape sequence."""

    def __init__(self, stream: TextIO) -> None:
        self.unescaped = stream  # rich's progress bar draws on this one

    def write(self, text: str) -> int:
        self.unescaped.write("\n".join(printable(line) for line in text.split("\n")))
        return len(text)

    def flush(self) -> None:
        self.unescaped.flush()

    def isatty(self) -> bool:
        return self.unescaped.isatty()

    def fileno(self) -> int:
        return self.unescaped.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.unescaped.encoding


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; its exit status (tests call this in-process)."""
    if sys.stdout is None:
        sys.stdout = _ClosedStream()
    stderr = sys.stderr
    if stderr is not None:
        sys.stderr = _EscapedStderr(stderr)
    try:
        return _run(argv)
    finally:
        sys.stderr = stderr


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest:
        _leftover(parser, args, rest)
    try:
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as exc:
        if exc.errno not in _WRITE_ERRORS:
            raise
        _silence_stdout()
        return fail(f"cannot write the output ({exc.strerror or exc})")


def _leftover(parser: argparse.ArgumentParser, args: argparse.Namespace, rest: list[str]) -> None:
    """Arguments argparse left over. argparse takes positionals only before the first
    option, so `analyze A.pcap --config X B.pcap` left B.pcap: captures after an option
    (or after `--`, whatever their names) join the others. Anything else is an error of
    the subcommand (its --help named)."""
    before, after = rest, []
    if "--" in rest:
        split = rest.index("--")
        before, after = rest[:split], rest[split + 1 :]
    if args.command == "analyze" and not any(r.startswith("-") and r != "-" for r in before):
        captures = [args.capture, args.peer_capture, *args.extra_captures, *before, *after]
        captures = [c for c in captures if c is not None]
        args.capture, args.extra_captures = captures[0], captures[2:]
        args.peer_capture = captures[1] if len(captures) > 1 else None
        return
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    commands.choices[args.command].error(f"unrecognized arguments: {' '.join(rest)}")


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that what is still buffered cannot fail again at exit."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def run() -> NoReturn:
    """Entry point of the console script and of `python -m analyzer`.

    Once the command has returned (its files closed), stdout and stderr are flushed and
    the process ends without tearing down the interpreter: freeing every object of a
    large analysis one by one took longer than writing its report.
    """
    _process.ends_after_command = True
    status = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        status = status or EXIT_BROKEN_PIPE
    except OSError as exc:  # the last of the output did not fit (a full disk, /dev/full)
        status = fail(f"cannot write the output ({exc.strerror or exc})")
    except (ValueError, AttributeError):
        pass  # stdout closed by the command itself
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    run()
