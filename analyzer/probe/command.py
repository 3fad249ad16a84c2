"""`gre-keepalive probe`: a GRE keepalive endpoint for hosts that do not run one (Linux).

It originates keepalives like IOS ``keepalive <period> <retries>``, reflects the peer's
keepalives the way a router does, and runs the line-protocol state machine with the
analyzer's own tracker (see :mod:`analyzer.probe.engine`). This module is the command line
and the event loop; it stays light to import (the registering rule of :mod:`analyzer.cli`).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import math
import os
import selectors
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from analyzer.keepalive.state import MAX_PERIOD, MAX_RETRIES
from analyzer.report.escape import printable, strict_json

if TYPE_CHECKING:
    from analyzer.config import KeepaliveConfig
    from analyzer.probe.engine import ProbeEngine
    from analyzer.probe.hooks import OnChange
    from analyzer.probe.net import RawSockets
    from analyzer.probe.tunnel import Tunnel
    from analyzer.read.capture import PcapWriter, RawFrame
    from analyzer.read.sources import InterfaceNotice

PROG = "gre-keepalive"
EXIT_OK = 0
EXIT_OUTPUT = 128 + signal.SIGPIPE  # 141: the reader of stdout went away, as for analyze
EXIT_USAGE = 2
EXIT_DOWN = 3
DEFAULT_PERIOD = 10.0
MIN_PERIOD = 1.0  # the shortest period on a real network (IOS's own minimum)
MIN_LAB_PERIOD = 0.01  # the shortest with --lab (100 keepalives a second)
DEFAULT_HOOK_TIMEOUT = 10.0
# --max-reflect-pps: below one reflection in 100 s no peer stays up; above 10,000 a second
# the limit no longer protects anything
MIN_REFLECT_PPS, MAX_REFLECT_PPS = 0.01, 10_000.0
DEFAULT_RETRIES = 3
HOUSEKEEPING = 0.1  # longest wait between clock checks (tracker.advance, drop summaries)
MAX_BATCH = 256  # packets read per socket before the clock is looked at again
MAX_QUEUED = 10.0  # longest wait in a socket buffer believed (the host clock may step)
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
  sudo gre-keepalive probe --config /etc/gre-keepalive/tunnels.toml \\
      --on-change '/usr/local/bin/notify "$GRE_KEEPALIVE_TUNNEL is $GRE_KEEPALIVE_STATE"'

output (--format jsonl): one JSON object per line (schema gre-keepalive.probe/1, named in
the first line) — the tracker's events (sent, returned, extrapolated, down, up) and the
probe's own (started, reflected, dropped, send-error, reloaded, reload-failed, summary).
Each own line-protocol transition is also one line on stderr (journald-friendly).

signals: SIGHUP re-reads --config (tunnels added and removed, the others keep their
state); SIGTERM stops with a summary line.

exit status: 0 stopped (SIGTERM), or --count finished with the line protocol up;
3 --count finished with a line protocol down; 141 standard output closed (broken pipe);
2 bad usage, no CAP_NET_RAW, or an unusable --config/--write/--metrics-port;
130 interrupted (Ctrl-C).
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
    if not MIN_REFLECT_PPS <= value <= MAX_REFLECT_PPS:
        raise argparse.ArgumentTypeError(
            f"rate {text} out of range {MIN_REFLECT_PPS:g}-{MAX_REFLECT_PPS:g} per second"
        )
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, not {text!r}") from None
    if not math.isfinite(value) or not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text} out of range (0-3600 seconds)")
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
    """A keepalive period: 0 (off) or 0.1 up to 32767 seconds (below 1 s the caller asks
    for --lab: :func:`check_period`); ValueError otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"keepalive period must be a number of seconds, not {text!r}") from None
    if not math.isfinite(value) or not (value == 0 or MIN_LAB_PERIOD <= value <= MAX_PERIOD):
        raise ValueError(
            f"keepalive period {text} out of range {MIN_PERIOD:g}-{MAX_PERIOD} seconds "
            f"(0 = off; down to {MIN_LAB_PERIOD:g} with --lab)"
        )
    return value


def check_period(period: float, lab: bool, where: str) -> None:
    """ValueError (one line) for a period a production probe must not run."""
    if period < MIN_LAB_PERIOD or period > MAX_PERIOD:
        raise ValueError(
            f"{where}: keepalive period {period:g} s out of range "
            f"{MIN_PERIOD:g}-{MAX_PERIOD} seconds (down to {MIN_LAB_PERIOD:g} with --lab)"
        )
    if period < MIN_PERIOD and not lab:
        raise ValueError(
            f"{where}: keepalive period {period:g} s is below {MIN_PERIOD:g} s: "
            "add --lab to allow it on a lab network"
        )


def _unusable(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why `address` cannot be a tunnel endpoint, or None."""
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "a loopback address"
    if address.is_multicast:
        return "a multicast address"
    if address.version == 4 and address == ipaddress.IPv4Address("255.255.255.255"):
        return "the broadcast address"
    if address.is_link_local:
        return "link-local"
    if address.version == 6 and address.ipv4_mapped is not None:
        return f"an IPv4-mapped IPv6 address (use {address.ipv4_mapped})"
    if address.is_reserved:
        return "a reserved address"
    return None


def check_endpoints(local: str, remote: str, where: str, is_local: Callable[[str], bool]) -> None:
    """ValueError (one line) unless local → remote is a tunnel this host can run."""
    ours, theirs = ipaddress.ip_address(local), ipaddress.ip_address(remote)
    if ours == theirs:
        raise ValueError(f"{where}: local and remote are both {local}: a tunnel to itself")
    for address, role in ((ours, "local"), (theirs, "remote")):
        why = _unusable(address)
        if why is not None:
            raise ValueError(f"{where}: {role} address {address} is {why}")
    if is_local(remote):
        raise ValueError(
            f"{where}: remote {remote} is an address of this host: the probe would talk to itself"
        )


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
    where.add_argument(
        "--local",
        type=_address,
        metavar="ADDR",
        help="this host's tunnel source (must be an address of this host)",
    )
    where.add_argument(
        "--remote",
        type=_address,
        metavar="ADDR",
        help="the tunnel destination (IPv4, or IPv6 for GRE over IPv6; not this host, "
        "not loopback, multicast, broadcast, link-local or unspecified)",
    )
    where.add_argument("--key", type=_key, metavar="K", help="GRE key (in both GRE headers)")
    where.add_argument(
        "--keepalive",
        nargs=2,
        action=_KeepaliveAction,
        metavar=("PERIOD", "RETRIES"),
        help=f"period {MIN_PERIOD:g}-{MAX_PERIOD} s (fractions allowed; below {MIN_PERIOD:g} s "
        f"only with --lab; 0 = off, with --reflect-only) and retries 1-{MAX_RETRIES} "
        f"(default {DEFAULT_PERIOD:g} {DEFAULT_RETRIES}); with --config, for tunnels the "
        "file gives no values",
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
        help=f"reflections per second per tunnel, no bursts ({MIN_REFLECT_PPS:g}-"
        f"{MAX_REFLECT_PPS:g}; default 10); forged keepalives spoofed from the peer use "
        "this budget too",
    )
    behaviour.add_argument(
        "--accept-any-return",
        action="store_true",
        help="count any bare GRE PT-0 packet from the peer as a return, as IOS does (default: "
        "only returns matching an outstanding request of ours, by inner IP ID; the others "
        "are counted as unmatched_returns and never reset the counter)",
    )
    behaviour.add_argument(
        "--lab",
        action="store_true",
        help=f"allow keepalive periods below {MIN_PERIOD:g} s (down to {MIN_LAB_PERIOD:g} s) "
        "for tests on a lab network",
    )
    behaviour.add_argument(
        "--on-change",
        metavar="CMD",
        help="run CMD (with /bin/sh) at each line-protocol transition of this host's tunnels, "
        "with GRE_KEEPALIVE_TUNNEL, _LOCAL, _REMOTE, _KEY, _STATE (up/down), _COUNTER, "
        "_RETRIES, _TIME and _EVENT (the JSON line) in its environment; never waited for "
        "(--format jsonl only)",
    )
    behaviour.add_argument(
        "--on-change-timeout",
        type=_positive_seconds,
        default=DEFAULT_HOOK_TIMEOUT,
        metavar="S",
        help=f"kill an --on-change command still running after S seconds "
        f"(default {DEFAULT_HOOK_TIMEOUT:g})",
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
    if args.local is not None and not is_local(args.local):
        raise ValueError(
            f"--local {args.local} is not an address of this host: its keepalives would "
            "carry a source address that is not ours"
        )

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
        where = "--local/--remote" if origin == "command line" else f"{origin}: {name}"
        check_endpoints(local, remote, where, is_local)
        if period is not None:
            check_period(period, args.lab, "--keepalive" if origin == "command line" else where)
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
    if args.on_change and args.format == "tui":
        raise ValueError("--on-change works with --format jsonl (the TUI owns the terminal)")
    return tunnels, warnings


# --- the event loop ---------------------------------------------------------------------


@dataclass(slots=True)
class _Schedule:
    due: float  # monotonic time of the next tick
    ticks: int = 0
    last_tick: float | None = None  # monotonic time of the latest tick


Reloader = Callable[[], "tuple[list[Tunnel], KeepaliveConfig | None]"]


def next_due(due: float, now: float, period: float) -> float:
    """The monotonic time of the tick after one due at `due` and sent at `now`.

    A late tick keeps the phase, but the next one is never less than half a period after
    it: a probe that was not scheduled for most of a period sends one keepalive, not two
    back to back (which a rate-limiting peer would count as a burst), and one suspended
    for longer starts again on the clock.
    """
    following = due + period
    if following <= now:
        return now + period
    return max(following, now + period / 2)


def arrival(monotonic_now: float, stamp: float | None, host_now: float) -> float:
    """The monotonic time a packet arrived: now, less the time it waited in the socket
    buffer by the kernel's receive time `stamp` (host clock), believed up to MAX_QUEUED
    seconds so a step of the host clock cannot move it further."""
    if stamp is None:
        return monotonic_now
    return monotonic_now - min(max(host_now - stamp, 0.0), MAX_QUEUED)


def steady_wall() -> Callable[[], float]:
    """A clock that reads the host's clock once, then advances with the monotonic clock.

    The state machine's times come from it: on the host's clock, an NTP step or `date -s`
    forward by more than period × retries would take a healthy tunnel down (every tick of
    the jump extrapolated as unanswered), and a step back would stretch the next interval.
    After a step, event times differ from the host's clock by the step.
    """
    offset = time.time() - time.monotonic()
    return lambda: round(time.monotonic() + offset, 6)


@dataclass
class ProbeLoop:
    """Ticks, receives, reflects and keeps the clock moving until stopped or counted.

    `reload`, when given, is called after SIGHUP (`hup` set): it returns the tunnels to run
    from now on or raises ValueError (one line), and the probe keeps the old ones.
    """

    engine: ProbeEngine
    sockets: RawSockets
    emit: Callable[[list[dict[str, Any]]], None]
    count: int | None = None
    wall: Callable[[], float] = field(default_factory=steady_wall)
    monotonic: Callable[[], float] = time.monotonic
    host_clock: Callable[[], float] = time.time  # the clock of the kernel's receive times
    reload: Reloader | None = None
    hup: threading.Event = field(default_factory=threading.Event)
    housekeeping: Callable[[], None] = field(default=lambda: None)
    _finished: set[Tunnel] = field(default_factory=set, init=False)

    def run(self, stop: threading.Event) -> int:
        """Run until `stop` is set (0) or --count is done (0 up, 3 down)."""
        engine = self.engine
        start = self.monotonic()
        schedules = {t: _Schedule(start) for t in engine.tunnels if t.originates}
        selector = selectors.DefaultSelector()
        self.sockets.set_windows(engine.return_windows(), engine.window_headroom())
        for sock in self.sockets.receivers:
            selector.register(sock, selectors.EVENT_READ)
        result = EXIT_OK
        try:
            while not stop.is_set():
                if self.hup.is_set():
                    self.hup.clear()
                    self._reload(schedules, selector)
                now = self.monotonic()
                waits = [
                    s.due - now
                    for s in schedules.values()
                    if self.count is None or s.ticks < self.count
                ]
                timeout = max(min([HOUSEKEEPING, *waits]), 0.0)
                ready = {key.fileobj for key, _mask in selector.select(timeout)}
                for sock in self.sockets.receivers:  # replies first: our returns
                    if sock in ready:
                        self._drain(sock)
                now = self.monotonic()
                for tunnel, schedule in schedules.items():
                    if schedule.due <= now and (self.count is None or schedule.ticks < self.count):
                        self._tick(tunnel, schedule, now)
                self.emit(engine.advance(self.wall()))
                self.housekeeping()
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

    def _reload(self, schedules: dict[Tunnel, _Schedule], selector: Any) -> None:
        if self.reload is None:
            return
        stamp = self.wall()
        try:
            tunnels, config = self.reload()
            self.sockets.ensure({t.family for t in tunnels})
            self.sockets.attach_filters([(t.local, t.remote) for t in tunnels])
        except (ValueError, OSError) as exc:
            message = str(exc) if isinstance(exc, ValueError) else (exc.strerror or str(exc))
            print(
                f"{PROG}: error: reload failed, still running the previous tunnels: {message}",
                file=sys.stderr,
            )
            self.emit([{"time": stamp, "event": "reload-failed", "error": message}])
            return
        change = self.engine.reconfigure(tunnels, config)
        registered = {key.fileobj for key in selector.get_map().values()}
        for sock in self.sockets.receivers:
            if sock not in registered:
                selector.register(sock, selectors.EVENT_READ)
        for tunnel in change.removed:
            schedules.pop(tunnel, None)
            self._finished.discard(tunnel)
        for new, old in change.kept.items():
            if old in schedules:
                schedules[new] = schedules.pop(old)
            if old in self._finished:
                self._finished.discard(old)
                self._finished.add(new)
        now = self.monotonic()
        for tunnel in change.added:
            if tunnel.originates:
                schedules[tunnel] = _Schedule(now)
        self.emit(
            [
                {
                    "time": stamp,
                    "event": "reloaded",
                    "tunnels": [t.describe() for t in tunnels],
                    "added": [t.name for t in change.added],
                    "removed": [t.name for t in change.removed],
                }
            ]
        )

    def _tick(self, tunnel: Tunnel, schedule: _Schedule, now: float) -> None:
        assert tunnel.period is not None
        packet = self.engine.build_request(tunnel)
        self.engine.expect(tunnel, packet)
        try:  # the kernel lets its return in from now on (and drops others)
            self.sockets.set_windows(self.engine.return_windows(), self.engine.window_headroom())
        except OSError as exc:
            print(f"{PROG}: error: cannot update the kernel filter: {exc}", file=sys.stderr)
        stamp = self.wall()
        try:
            self.sockets.send(packet, tunnel.remote)
        except OSError as exc:
            self.emit(self.engine.send_failed(tunnel, stamp, "request", exc))
        else:
            self.emit(self.engine.sent(tunnel, stamp, packet))
        schedule.ticks += 1
        schedule.last_tick = now
        schedule.due = next_due(schedule.due, now, tunnel.period)

    def _drain(self, sock: Any) -> None:
        engine = self.engine
        for _ in range(MAX_BATCH):
            got = self.sockets.receive(sock)
            if got is None:
                return
            arrived = arrival(self.monotonic(), got.stamp, self.host_clock())
            events, reflection = engine.received(self.wall(), arrived, got.packet)
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
        """With --count: None while waiting, else the exit status.

        Each tunnel is judged when its own last keepalive has returned or a period has
        passed since it left; its state is frozen then, so a faster tunnel that finished
        first is not taken down by the ticks it no longer sends while a slower one runs on.
        """
        assert self.count is not None
        now = self.monotonic()
        wall = self.wall()
        states: dict[Tunnel, Any] | None = None
        for tunnel, schedule in schedules.items():
            if tunnel in self._finished:
                continue
            if schedule.ticks < self.count or schedule.last_tick is None:
                continue
            assert tunnel.period is not None
            if states is None:
                states = self.engine.own_states(wall)
            state = states.get(tunnel)
            answered = state is not None and state.counter == 0
            if answered or now >= schedule.last_tick + tunnel.period:
                self.engine.finish(tunnel, wall)
                self._finished.add(tunnel)
        if not all(tunnel in self._finished for tunnel in schedules):
            return None
        states = self.engine.own_states(wall)
        down = any(
            self.engine.line_state(tunnel, states.get(tunnel)).value == "down"
            for tunnel in schedules
        )
        return EXIT_DOWN if down else EXIT_OK


# --- the handler ------------------------------------------------------------------------


def _error(message: str) -> int:
    from analyzer.options import fail

    return fail(message)


class Reporter:
    """Writes the JSON lines; logs this host's transitions on stderr and runs --on-change.

    A closed stdout (the reader went away) sets `broken` and `stop`: the probe then ends
    with exit status 141 (128 + SIGPIPE), so a supervisor (systemd `Restart=on-failure`) notices.
    """

    def __init__(
        self,
        stream: IO[str],
        engine: ProbeEngine,
        stop: threading.Event,
        on_change: OnChange | None = None,
        log: IO[str] | None = None,
    ) -> None:
        self.stream = stream
        self.engine = engine
        self.stop = stop
        self.on_change = on_change
        self.log = log if log is not None else sys.stderr
        self.broken = False

    def __call__(self, events: list[dict[str, Any]]) -> None:
        """Report a batch of events."""
        if not events:
            return
        for event in events:
            if event["event"] in ("down", "up"):
                self._transition(event)
        if self.broken:
            return
        try:
            for event in events:
                self.stream.write(strict_json(json.dumps(event)) + "\n")
            self.stream.flush()
        except BrokenPipeError:
            self.broken = True
            self.stop.set()
            if self.stream is sys.stdout:
                _silence_stdout()

    def _transition(self, event: dict[str, Any]) -> None:
        from analyzer.probe.hooks import transition_line

        tunnel = self.engine.own_tunnel(event["originator"], event["peer"], event["key"])
        if tunnel is None:
            return  # the peer's line, as inferred here: in the JSON and metrics only
        print(transition_line(PROG, event, tunnel.name), file=self.log, flush=True)
        if self.on_change is not None:
            self.on_change.fire(event, tunnel.name)


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null so that nothing fails writing to the closed pipe again."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError):
        pass


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


def read_probe_config(path: str | None) -> KeepaliveConfig | None:
    """--config, with `tunnel source IFNAME` of an IOS file resolved from this host's
    interfaces (:mod:`analyzer.probe.hostif`); warnings on stderr. UsageError (one line)."""
    from analyzer.config import ConfigError, parse_config, parse_ios, read_config_text
    from analyzer.options import UsageError
    from analyzer.probe.hostif import resolve_interface_sources

    if not path:
        return None
    try:
        text = read_config_text(path)
        config = parse_config(text, path)
        notes: list[str] = []
        if config.format == "ios":
            text, notes = resolve_interface_sources(text)
            if notes:
                config = parse_ios(text, path)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    from analyzer.report.escape import printable

    for note in notes:
        print(f"{PROG}: note: {printable(path)}: {printable(note)}", file=sys.stderr)
    for warning in config.warnings:
        print(f"{PROG}: warning: {printable(warning)}", file=sys.stderr)
    return config


def _handle(args: argparse.Namespace) -> int:
    from analyzer.options import UsageError
    from analyzer.probe.net import is_local_address

    try:
        config = read_probe_config(args.config)
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


def _reloader(args: argparse.Namespace) -> Reloader:
    """What SIGHUP runs: the configuration read and the tunnels chosen again."""
    from analyzer.options import UsageError
    from analyzer.probe.net import is_local_address

    def reload() -> tuple[list[Tunnel], KeepaliveConfig | None]:
        try:
            config = read_probe_config(args.config)
        except UsageError as exc:
            raise ValueError(str(exc)) from None
        tunnels, warnings = select_tunnels(args, config, is_local_address)
        for warning in warnings:
            print(f"{PROG}: warning: {warning}", file=sys.stderr)
        return tunnels, config

    return reload


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
        try:
            sockets.attach_filters([(t.local, t.remote) for t in tunnels])
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            return _error(f"cannot attach the kernel socket filter: {reason or exc}")
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
            recorder = PcapRecorder(args.write, stream, PcapWriter(stream, LINKTYPE_RAW))
            cleanup.append(recorder.close)
            record = recorder.record

        engine = ProbeEngine(
            tunnels,
            ProbeOptions(
                reflect=not args.no_reflect,
                max_reflect_pps=args.max_reflect_pps,
                tos=args.tos,
                ttl=args.ttl,
                accept_any_return=args.accept_any_return,
            ),
            config=config,
            metrics=metrics,
            record=record,
            first_ip_id=_random_ip_id(),
        )
        if tui is not None:
            return _run_tui(tui, engine, sockets, args.count, config)
        stop = threading.Event()
        hup = threading.Event()

        def terminate(_signum: int, _frame: FrameType | None) -> None:
            stop.set()

        def reload(_signum: int, _frame: FrameType | None) -> None:
            hup.set()

        previous = signal.signal(signal.SIGTERM, terminate)
        previous_hup = signal.signal(signal.SIGHUP, reload)

        def restore() -> None:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGHUP, previous_hup)

        cleanup.append(restore)
        on_change = None
        if args.on_change:
            from analyzer.probe.hooks import OnChange

            on_change = OnChange(
                args.on_change,
                args.on_change_timeout,
                log=lambda line: print(f"{PROG}: {line}", file=sys.stderr, flush=True),
            )
            hooks = on_change
            cleanup.append(lambda: hooks.close(hooks.timeout))
        report = Reporter(sys.stdout, engine, stop, on_change)
        extra["receive_buffer"] = sockets.receive_buffer()
        report([engine.started(round(time.time(), 6), **extra)])
        loop = ProbeLoop(
            engine,
            sockets,
            report,
            count=args.count,
            reload=_reloader(args),
            hup=hup,
            housekeeping=on_change.poll if on_change is not None else lambda: None,
        )
        status = loop.run(stop)
        if report.broken:
            return _error_status("standard output closed (broken pipe): stopped", EXIT_OUTPUT)
        return status
    finally:
        for step in reversed(cleanup):
            step()


class PcapRecorder:
    """--write: each packet sent and received saved as it happens. A file that stops taking
    them (a full disk) ends the recording, said once on stderr, never the probe: an endpoint
    left running must not lose its line protocol to its own record of it."""

    def __init__(self, path: str, stream: BinaryIO, writer: PcapWriter) -> None:
        self.path = path
        self.stream = stream
        self.writer = writer
        self.failed = False

    def record(self, now: float, packet: bytes) -> None:
        """Append one packet (raw IP) and flush, so the file is readable while it runs."""
        if self.failed:
            return
        try:
            self.writer.write(now, packet)
            self.stream.flush()
        except OSError as exc:
            self._fail(exc)

    def close(self) -> None:
        """Flush and close (a failure then is said as one line too)."""
        if self.failed:
            return
        try:
            self.writer.close()
            self.stream.close()
        except OSError as exc:
            self._fail(exc)

    def _fail(self, exc: OSError) -> None:
        self.failed = True
        print(
            f"{PROG}: warning: {printable(self.path)}: cannot write "
            f"({exc.strerror or exc}): no longer recording; the probe goes on",
            file=sys.stderr,
            flush=True,
        )
        with contextlib.suppress(OSError):
            self.stream.close()


def _error_status(message: str, status: int) -> int:
    print(f"{PROG}: error: {printable(message)}", file=sys.stderr)
    return status


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
