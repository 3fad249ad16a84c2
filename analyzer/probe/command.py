"""`gre-keepalive probe`: a GRE keepalive endpoint for hosts that do not run one (Linux).

It originates keepalives like IOS ``keepalive <period> <retries>``, reflects the peer's
keepalives the way a router does, and runs the line-protocol state machine with the
analyzer's own tracker (see :mod:`analyzer.probe.engine`). This module is the command line
and the event loop; it stays light to import (the registering rule of :mod:`analyzer.cli`).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import selectors
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

from analyzer.keepalive.state import MAX_PERIOD, MAX_RETRIES

if TYPE_CHECKING:
    from analyzer.config import KeepaliveConfig
    from analyzer.probe.engine import ProbeEngine
    from analyzer.probe.net import RawSockets
    from analyzer.probe.tunnel import Tunnel
    from analyzer.read.capture import RawFrame
    from analyzer.read.sources import InterfaceNotice

PROG = "gre-keepalive"
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_DOWN = 3
DEFAULT_PERIOD = 10.0
DEFAULT_RETRIES = 3
HOUSEKEEPING = 0.1  # longest wait between clock checks (tracker.advance, drop summaries)
MAX_BATCH = 256  # packets read per socket before the clock is looked at again
TUI_ENTRY = "run_live"  # analyzer.tui.app.run_live(source, settings, title) -> int

DESCRIPTION = """\
A GRE keepalive endpoint for hosts that do not originate keepalives (Linux):

  originate  every PERIOD send a keepalive (outer LOCAL→REMOTE GRE carrying inner
             REMOTE→LOCAL GRE protocol type 0, IP IDs like IOS) and run the IOS state
             machine: at each tick, counter >= RETRIES takes the line protocol down;
             a returned keepalive resets the counter and brings it up
  reflect    answer the peer's keepalives as a router does (send the inner packet on),
             even while this host's own line protocol is down — only for configured
             tunnels, only keepalives addressed back to the peer, rate-limited

The state machine, pairing and timeline are those of `gre-keepalive analyze`: the pcap
written with --write analyses to the same transitions. Needs CAP_NET_RAW.
"""

EPILOG = """\
examples:
  sudo gre-keepalive probe --local 192.0.2.1 --remote 198.51.100.1 --keepalive 5 4
  sudo gre-keepalive probe --config tunnels.toml --metrics-port 9477
  sudo gre-keepalive probe --local 192.0.2.1 --remote 198.51.100.1 --reflect-only
  sudo gre-keepalive probe --local 192.0.2.1 --remote 198.51.100.1 --keepalive 1 3 --count 5

output (--format jsonl): one JSON object per line — the tracker's events (sent, returned,
extrapolated, down, up) and the probe's own (started, reflected, dropped, send-error,
summary).

exit status: 0 stopped (SIGTERM), or --count finished with the line protocol up;
3 --count finished with a line protocol down; 2 bad usage, no CAP_NET_RAW, or an
unusable --config/--write/--metrics-port; 130 interrupted (Ctrl-C).
"""


# --- argument types (each error is one line, via the project's parser) ------------------


def _address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid address {text!r} (expected an IPv4 or IPv6 address)"
        ) from None


def _key(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"GRE key must be an integer, not {text!r}") from None
    if not 0 <= value <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"GRE key {text} out of range 0-4294967295")
    return value


def _byte(name: str, low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text, 0)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, not {text!r}") from None
        if not low <= value <= 255:
            raise argparse.ArgumentTypeError(f"{name} {text} out of range {low}-255")
        return value

    parse.__name__ = name
    return parse


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"rate must be a number, not {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"rate {text} must be above 0 (use --no-reflect)")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port must be an integer, not {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {text} out of range 0-65535")
    return value


def parse_period(text: str) -> float:
    """A keepalive period: 0 (off) or above 0 up to 32767 seconds; ValueError otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"keepalive period must be a number of seconds, not {text!r}") from None
    if not math.isfinite(value) or not 0 <= value <= MAX_PERIOD:
        raise ValueError(f"keepalive period {text} out of range 1-{MAX_PERIOD} seconds (0 = off)")
    return value


def parse_retries(text: str) -> int:
    """Keepalive retries 1-255; ValueError otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"keepalive retries must be an integer, not {text!r}") from None
    if not 1 <= value <= MAX_RETRIES:
        raise ValueError(f"keepalive retries {text} out of range 1-{MAX_RETRIES}")
    return value


class _KeepaliveAction(argparse.Action):
    """--keepalive PERIOD RETRIES, validated as one unit (one-line errors)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        assert isinstance(values, list)
        period_text, retries_text = (str(v) for v in values)
        try:
            period = parse_period(period_text)
            retries = parse_retries(retries_text)
        except ValueError as exc:
            parser.error(f"argument --keepalive: {exc}")
        setattr(namespace, self.dest, (period, retries))


def register(subparsers: Any) -> None:
    """Add the `probe` subcommand (see analyzer.cli.COMMAND_MODULES)."""
    probe = subparsers.add_parser(
        "probe",
        help="originate and reflect GRE keepalives on this host; run the line protocol",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = probe.add_argument_group("tunnels")
    where.add_argument("--local", type=_address, metavar="ADDR", help="this host's tunnel source")
    where.add_argument("--remote", type=_address, metavar="ADDR", help="the tunnel destination")
    where.add_argument("--key", type=_key, metavar="K", help="GRE key (in both GRE headers)")
    where.add_argument(
        "--keepalive",
        nargs=2,
        action=_KeepaliveAction,
        metavar=("PERIOD", "RETRIES"),
        help=f"period 1-{MAX_PERIOD} s (fractions allowed; 0 = off, with --reflect-only) "
        f"and retries 1-{MAX_RETRIES} (default {DEFAULT_PERIOD:g} {DEFAULT_RETRIES}); "
        "with --config, for tunnels the file gives no values",
    )
    where.add_argument(
        "--config",
        metavar="FILE",
        help="IOS running-config or TOML, as for analyze: every tunnel whose source is "
        "--local (without --local: an address of this host) is run, with its keepalive",
    )
    packets = probe.add_argument_group("packets")
    packets.add_argument("--tos", type=_byte("tos", 0), default=0, help="TOS of both headers")
    packets.add_argument(
        "--ttl", type=_byte("ttl", 1), default=255, help="outer TTL / hop limit (default 255)"
    )
    packets.add_argument(
        "--inner",
        choices=("ipv4", "ipv6"),
        help="inner header family; it follows the outer one (IPv6 outer = the MikroTik gre6 "
        "form), so this only states the expectation",
    )
    behaviour = probe.add_argument_group("behaviour")
    behaviour.add_argument(
        "--reflect-only", action="store_true", help="send no keepalives; only reflect"
    )
    behaviour.add_argument(
        "--no-reflect",
        action="store_true",
        help="do not reflect (e.g. a kernel GRE tunnel on the same endpoints already does)",
    )
    behaviour.add_argument(
        "--max-reflect-pps",
        type=_rate,
        default=10.0,
        metavar="N",
        help="reflections per second per tunnel, no bursts (default 10)",
    )
    behaviour.add_argument(
        "--count",
        type=_positive_int,
        metavar="N",
        help="send N keepalives per tunnel, wait one period for the last, then exit: "
        "0 if every line protocol is up, 3 if one is down (N > retries detects a dead path)",
    )
    output = probe.add_argument_group("output")
    output.add_argument(
        "--format",
        choices=("jsonl", "tui"),
        default="jsonl",
        help="jsonl: one JSON object per event on stdout (default); tui: the terminal UI",
    )
    output.add_argument(
        "--write",
        metavar="FILE",
        help="save every keepalive sent and received as a pcap (raw IP) that "
        "`gre-keepalive analyze` reads back to the same timeline",
    )
    output.add_argument(
        "--metrics-port", type=_port, metavar="PORT", help="serve Prometheus metrics on PORT"
    )
    output.add_argument(
        "--metrics-address",
        type=_address,
        default="127.0.0.1",
        metavar="ADDR",
        help="address of the metrics endpoint (default 127.0.0.1)",
    )
    probe.set_defaults(handler=_handle, probe_parser=probe)


# --- tunnels from the command line and the configuration --------------------------------


def _usage(args: argparse.Namespace, message: str) -> None:
    parser: argparse.ArgumentParser = args.probe_parser
    parser.error(message)  # one line, exit 2


def _family(address: str) -> int:
    return 6 if ":" in address else 4


def select_tunnels(
    args: argparse.Namespace,
    config: KeepaliveConfig | None,
    is_local: Callable[[str], bool],
) -> tuple[list[Tunnel], list[str]]:
    """The tunnels to run and warnings; ValueError (one line) when there are none or they
    make no sense."""
    from analyzer.probe.tunnel import Tunnel

    cli_period, cli_retries = args.keepalive or (None, None)
    if cli_period == 0 and not args.reflect_only:
        raise ValueError(
            "--keepalive 0 turns keepalives off: add --reflect-only to only reflect "
            "the peer's keepalives"
        )
    tunnels: list[Tunnel] = []
    warnings: list[str] = []

    def make(
        local: str,
        remote: str,
        key: int | None,
        period: float | None,
        retries: int,
        name: str,
        origin: str,
    ) -> None:
        if args.reflect_only or not period:
            period = None
        tunnel = Tunnel(local, remote, key, period, retries, name, origin)
        if any((t.local, t.remote, t.key) == (local, remote, key) for t in tunnels):
            warnings.append(f"{origin}: tunnel {local} → {remote} key {key} given twice; ignored")
            return
        tunnels.append(tunnel)

    if args.remote is not None:
        if args.local is None:
            raise ValueError("--remote needs --local (this host's tunnel source address)")
        if _family(args.local) != _family(args.remote):
            raise ValueError(
                f"--local {args.local} and --remote {args.remote} are of different families"
            )
        make(
            args.local,
            args.remote,
            args.key,
            DEFAULT_PERIOD if cli_period is None else cli_period,
            DEFAULT_RETRIES if cli_retries is None else cli_retries,
            f"{args.local}→{args.remote}" + ("" if args.key is None else f" key {args.key}"),
            "command line",
        )
    elif args.key is not None:
        raise ValueError("--key needs --local and --remote")
    if config is not None:
        chosen = 0
        for entry in config.tunnels:
            source, destination = str(entry.source), str(entry.destination)
            try:
                source = str(ipaddress.ip_address(source))
                destination = str(ipaddress.ip_address(destination))
            except ValueError:
                warnings.append(f"{entry.origin}: {entry.name}: addresses unusable; skipped")
                continue
            if args.local is not None:
                if source != args.local:
                    continue
            elif not is_local(source):
                continue
            if _family(source) != _family(destination):
                warnings.append(f"{entry.origin}: {entry.name}: mixed address families; skipped")
                continue
            period = entry.period if entry.period is not None else config.default_period
            retries = entry.retries if entry.retries is not None else config.default_retries
            if period is None:
                period = DEFAULT_PERIOD if cli_period is None else cli_period
            if retries is None:
                retries = DEFAULT_RETRIES if cli_retries is None else cli_retries
            make(
                source,
                destination,
                entry.key,
                period if entry.keepalive else None,
                retries,
                entry.name,
                entry.origin,
            )
            chosen += 1
        if chosen == 0:
            where = f"--local {args.local}" if args.local else "an address of this host"
            raise ValueError(f"{config.path}: no tunnel whose source is {where}")
    if not tunnels:
        raise ValueError("give --local and --remote, or --config FILE")
    if args.inner is not None:
        wanted = 6 if args.inner == "ipv6" else 4
        for tunnel in tunnels:
            if tunnel.family != wanted:
                raise ValueError(
                    f"--inner {args.inner}: the inner header follows the outer family, and "
                    f"tunnel {tunnel.local} → {tunnel.remote} is IPv{tunnel.family} "
                    "(GRE over IPv6, the MikroTik gre6 form, needs IPv6 addresses)"
                )
    if args.count is not None and not any(t.originates for t in tunnels):
        raise ValueError("--count needs a tunnel that sends keepalives (not --reflect-only)")
    if args.reflect_only and args.no_reflect:
        raise ValueError("--reflect-only and --no-reflect leave nothing to do")
    return tunnels, warnings


# --- the event loop ---------------------------------------------------------------------


@dataclass(slots=True)
class _Schedule:
    due: float  # monotonic time of the next tick
    ticks: int = 0
    last_tick: float | None = None  # monotonic time of the latest tick


@dataclass
class ProbeLoop:
    """Ticks, receives, reflects and keeps the clock moving until stopped or counted."""

    engine: ProbeEngine
    sockets: RawSockets
    emit: Callable[[list[dict[str, Any]]], None]
    count: int | None = None
    wall: Callable[[], float] = field(default=lambda: round(time.time(), 6))
    monotonic: Callable[[], float] = time.monotonic

    def run(self, stop: threading.Event) -> int:
        """Run until `stop` is set (0) or --count is done (0 up, 3 down)."""
        engine = self.engine
        start = self.monotonic()
        schedules = {t: _Schedule(start) for t in engine.tunnels if t.originates}
        selector = selectors.DefaultSelector()
        for sock in self.sockets.receivers:
            selector.register(sock, selectors.EVENT_READ)
        result = EXIT_OK
        try:
            while not stop.is_set():
                now = self.monotonic()
                waits = [
                    s.due - now
                    for s in schedules.values()
                    if self.count is None or s.ticks < self.count
                ]
                timeout = max(min([HOUSEKEEPING, *waits]), 0.0)
                for key, _mask in selector.select(timeout):
                    self._drain(key.fileobj)
                now = self.monotonic()
                for tunnel, schedule in schedules.items():
                    if schedule.due <= now and (self.count is None or schedule.ticks < self.count):
                        self._tick(tunnel, schedule, now)
                self.emit(engine.advance(self.wall()))
                if self.count is not None:
                    done = self._counted(schedules)
                    if done is not None:
                        result = done
                        break
        finally:
            selector.close()
            now_wall = self.wall()
            self.emit(engine.advance(now_wall))
            self.emit(engine.flush_drops(now_wall))
            self.emit([engine.summary(now_wall)])
        return result

    def _tick(self, tunnel: Tunnel, schedule: _Schedule, now: float) -> None:
        assert tunnel.period is not None
        packet = self.engine.build_request(tunnel)
        stamp = self.wall()
        try:
            self.sockets.send(packet, tunnel.remote)
        except OSError as exc:
            self.emit(self.engine.send_failed(tunnel, stamp, "request", exc))
        else:
            self.emit(self.engine.sent(tunnel, stamp, packet))
        schedule.ticks += 1
        schedule.last_tick = now
        schedule.due += tunnel.period
        if schedule.due <= now:  # more than a period late (suspended): back on the clock
            schedule.due = now + tunnel.period

    def _drain(self, sock: Any) -> None:
        engine = self.engine
        for _ in range(MAX_BATCH):
            packet = self.sockets.receive(sock)
            if packet is None:
                return
            events, reflection = engine.received(self.wall(), self.monotonic(), packet)
            if reflection is None:
                self.emit(events)
                continue
            stamp = self.wall()
            try:  # the reflection leaves before any output is written: the peer's RTT
                self.sockets.send(reflection.packet, reflection.tunnel.remote)
            except OSError as exc:
                events += engine.send_failed(reflection.tunnel, stamp, "reflection", exc)
            else:
                events += engine.reflected(reflection, stamp)
            self.emit(events)

    def _counted(self, schedules: dict[Tunnel, _Schedule]) -> int | None:
        """With --count: None while waiting, else the exit status."""
        assert self.count is not None
        now = self.monotonic()
        states = self.engine.own_states(self.wall())
        for tunnel, schedule in schedules.items():
            if schedule.ticks < self.count or schedule.last_tick is None:
                return None
            assert tunnel.period is not None
            state = states.get(tunnel)
            answered = state is not None and state.counter == 0
            if not answered and now < schedule.last_tick + tunnel.period:
                return None
        down = any(
            self.engine.line_state(tunnel, states.get(tunnel)).value == "down"
            for tunnel in schedules
        )
        return EXIT_DOWN if down else EXIT_OK


# --- the handler ------------------------------------------------------------------------


def _error(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _json_lines(stream: IO[str]) -> Callable[[list[dict[str, Any]]], None]:
    def emit(events: list[dict[str, Any]]) -> None:
        if not events:
            return
        for event in events:
            stream.write(json.dumps(event) + "\n")
        stream.flush()

    return emit


def _tui_entry() -> Callable[..., int] | None:
    """analyzer.tui.app.run_live, when the TUI provides it."""
    import importlib
    import importlib.util

    try:
        if importlib.util.find_spec("analyzer.tui.app") is None:
            return None
    except ModuleNotFoundError:
        return None
    module = importlib.import_module("analyzer.tui.app")
    entry = getattr(module, TUI_ENTRY, None)
    return entry if callable(entry) else None


def _handle(args: argparse.Namespace) -> int:
    from analyzer.options import UsageError, read_config
    from analyzer.probe.net import is_local_address

    try:
        config = read_config(args.config)
    except UsageError as exc:
        return _error(str(exc))
    try:
        tunnels, warnings = select_tunnels(args, config, is_local_address)
    except ValueError as exc:
        _usage(args, str(exc))
        return EXIT_USAGE  # pragma: no cover - _usage exits
    for warning in warnings:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    tui = None
    if args.format == "tui":
        tui = _tui_entry()
        if tui is None:
            return _error(
                f"--format tui is not available: analyzer.tui.app provides no {TUI_ENTRY}() "
                "in this build; use --format jsonl"
            )
    return run(args, tunnels, config, tui)


def run(
    args: argparse.Namespace,
    tunnels: list[Tunnel],
    config: KeepaliveConfig | None,
    tui: Callable[..., int] | None = None,
) -> int:
    """Open sockets, metrics and the pcap, then loop until stopped."""
    from analyzer.probe.engine import DROP_REASONS, ProbeEngine, ProbeOptions
    from analyzer.probe.metrics import ProbeMetrics, serve
    from analyzer.probe.net import CAPABILITY_HINT, RawSockets
    from analyzer.read.capture import LINKTYPE_RAW, PcapWriter

    try:
        sockets = RawSockets.open({t.family for t in tunnels})
    except PermissionError:
        return _error(CAPABILITY_HINT)
    except OSError as exc:
        return _error(f"cannot open raw sockets: {exc.strerror or exc}")
    cleanup: list[Callable[[], None]] = [sockets.close]
    try:
        metrics = ProbeMetrics(tunnels, DROP_REASONS)
        extra: dict[str, Any] = {}
        if args.metrics_port is not None:
            try:
                server, port = serve(metrics, args.metrics_port, args.metrics_address)
            except OSError as exc:
                return _error(
                    f"--metrics-port {args.metrics_port}: cannot listen on "
                    f"{args.metrics_address} ({exc.strerror or exc})"
                )
            cleanup.append(server.server_close)
            cleanup.append(server.shutdown)
            host = (
                f"[{args.metrics_address}]" if ":" in args.metrics_address else args.metrics_address
            )
            extra["metrics"] = f"http://{host}:{port}/metrics"
        record = None
        if args.write:
            try:
                stream = open(args.write, "wb")  # noqa: SIM115 - closed by cleanup
            except OSError as exc:
                return _error(f"{args.write}: cannot write ({exc.strerror})")
            writer = PcapWriter(stream, LINKTYPE_RAW)
            cleanup.append(stream.close)
            cleanup.append(writer.close)

            def record(now: float, packet: bytes) -> None:
                writer.write(now, packet)
                stream.flush()

        engine = ProbeEngine(
            tunnels,
            ProbeOptions(
                reflect=not args.no_reflect,
                max_reflect_pps=args.max_reflect_pps,
                tos=args.tos,
                ttl=args.ttl,
            ),
            config=config,
            metrics=metrics,
            record=record,
            first_ip_id=_random_ip_id(),
        )
        if tui is not None:
            return _run_tui(tui, engine, sockets, args.count, config)
        stop = threading.Event()

        def terminate(_signum: int, _frame: FrameType | None) -> None:
            stop.set()

        previous = signal.signal(signal.SIGTERM, terminate)

        def restore() -> None:
            signal.signal(signal.SIGTERM, previous)

        cleanup.append(restore)
        emit = _json_lines(sys.stdout)
        emit([engine.started(round(time.time(), 6), **extra)])
        return ProbeLoop(engine, sockets, emit, count=args.count).run(stop)
    finally:
        for step in reversed(cleanup):
            step()


def _run_tui(
    entry: Callable[..., int],
    engine: ProbeEngine,
    sockets: RawSockets,
    count: int | None,
    config: KeepaliveConfig | None,
) -> int:
    """Hand the TUI a frame source: every packet the probe sends and accepts, as raw IP.

    The probe loop runs in a thread; the TUI runs its own tracker on the same frames.
    """
    import queue

    from analyzer.keepalive.analysis import Settings
    from analyzer.probe.engine import tracker_config
    from analyzer.read.capture import LINKTYPE_RAW, RawFrame

    frames: queue.Queue[RawFrame] = queue.Queue()
    outer_record = engine.record

    def record(now: float, packet: bytes) -> None:
        if outer_record is not None:
            outer_record(now, packet)
        frames.put(RawFrame(engine.frames, now, LINKTYPE_RAW, packet, len(packet), 0, 0))

    engine.record = record

    def source(stop: threading.Event) -> Iterator[RawFrame | InterfaceNotice]:
        loop_stop = threading.Event()
        loop = threading.Thread(
            target=ProbeLoop(engine, sockets, lambda _events: None, count=count).run,
            args=(loop_stop,),
            name="gre-keepalive-probe",
            daemon=True,
        )
        loop.start()
        try:
            while not stop.is_set() and loop.is_alive():
                try:
                    yield frames.get(timeout=HOUSEKEEPING)
                except queue.Empty:
                    continue
        finally:
            loop_stop.set()
            loop.join(timeout=5)

    settings = Settings(config=tracker_config(engine.tunnels, config))
    names = ", ".join(t.name for t in engine.tunnels)
    return entry(source, settings, f"{PROG} probe: {names}")


def _random_ip_id() -> int:
    """A random first IP ID (secrets costs 10 ms to import: only the probe pays it)."""
    import secrets

    return secrets.randbelow(0x10000)
