"""Scenario simulator: synthetic GRE keepalive captures plus their ground-truth timeline.

A scenario (a small TOML file, see :func:`parse_scenario`) describes tunnels between two
endpoints ``a`` and ``b``, their ``keepalive <period> <retries>`` settings, path delay,
tunnel data rates and path outages.  :func:`simulate` runs a deterministic discrete-event
simulation of the routers (each originating endpoint drives one
:class:`analyzer.keepalive.state.KeepaliveMachine`, SPEC.md §2) and writes what a capture taken next
to every tunnel's ``a`` (or ``b``) endpoint would show.  The returned truth holds, per
endpoint, every send, every line-protocol transition and the data accounting, stamped with
the capture's frame numbers and timestamps.

The model (SPEC.md §1–2):

* A keepalive endpoint ticks at ``phase + k * period`` (``< duration``); each tick calls
  :meth:`KeepaliveMachine.send` (which may take the line down) and sends a request: outer
  IP self→peer, GRE PT 0x0800 (0x8909 with a MetaData SGT), inner IP peer→self, inner GRE
  PT 0, TTL 255 on both, the key in both GRE headers.
* Every endpoint (router address) has one IP ID counter for everything it originates; a
  request takes two consecutive values (inner ID = n, outer ID = n + 1), a data packet one.
  The counter starts at ``crc32(address) & 0xFFFF`` so that different routers differ.
* A packet leaving X at t on leg X→Y is lost when an outage covering that direction is
  active at t (``start <= t < end``); otherwise it arrives at ``t + delay``.
* A request arriving at the peer is reflected ``reflect_us`` later, always (line down or no
  keepalive configured): :func:`analyzer.read.packet.reflect_request` — the bare inner packet,
  TTL 254 — on the leg peer→originator.  A reply reaching its originator calls
  :meth:`KeepaliveMachine.reply`.
* While its line protocol is up (always, without keepalives) an endpoint sends data at the
  absolute grid ``(i + 0.5) / pps`` (``< duration``).

Vendor variants and faults (every default keeps the model above):

* ``keepalive_x`` may also set ``period_jitter`` (each tick moves by a fixed pseudo-random
  offset within ± that many seconds), ``inner_src``/``inner_dst`` (NAT or overlay inner
  addresses; the path routes the reflection back to the originator all the same),
  ``inner_key`` (an integer or ``"none"``: the inner GRE key, so the reflection carries it),
  ``inner_ttl``, ``payload`` (bytes after the inner PT-0 header, as OpenBSD sends), ``ip_id``
  (``"random"``: IDs not from the router's counter) and ``machine`` (``"juniper"``: down
  after period × retries seconds without a reply; ``"openbsd"``: that timer plus gre(4)'s
  hold-down before up; see :class:`analyzer.keepalive.state.HoldTimerMachine`).
* ``key_a``/``key_b`` (an integer or ``"none"``) configure one end's tunnel key apart from
  ``key``: a packet whose outer GRE key is not the receiver's is dropped on arrival (a
  request is not reflected, a reply not counted, data is blackholed).
* ``reflects_a``/``reflects_b = false``: that end drops the peer's decapsulated keepalives
  (uRPF or an ACL on the reflector) — everything else still flows.
* ``metadata_sgt`` (a tunnel key, 0-65535): both ends send their requests behind a Cisco
  MetaData header (GRE PT 0x8909, TrustSec inline tagging) carrying that security group tag.
* ``inner_ipv6`` is refused: IPv6 keepalives come from IPv6 ``a``/``b`` addresses.

Times are integer nanoseconds internally, so results never depend on float drift.  Events
at the same instant run in a fixed order — arrivals, then reflections, then keepalive
ticks, then data ticks, each group in scheduling order — so a scenario always yields the
same bytes.  A packet appears at most once in the capture: when it leaves the vantage
endpoint, or when it arrives there (packets arriving after ``duration`` are not shown).
"""

from __future__ import annotations

import errno
import heapq
import ipaddress
import json
import math
import os
import sys
import tomllib
import zlib
from dataclasses import dataclass, field
from enum import StrEnum
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, Final, cast

from analyzer.config import FileTooLarge, TomlUnreadable, load_toml, read_text_file
from analyzer.keepalive.state import (
    DEFAULT_PERIOD,
    DEFAULT_RETRIES,
    HoldTimerMachine,
    KeepaliveMachine,
    LineState,
)
from analyzer.read.capture import LINKTYPE_ETHERNET, LINKTYPE_RAW, PcapWriter
from analyzer.read.packet import (
    ETH_CISCO_METADATA,
    ETH_IPV4,
    ETH_IPV6,
    build_ethernet,
    build_gre,
    build_gre_data,
    build_ip,
    build_keepalive_request,
    reflect_request,
)
from analyzer.report.escape import printable

__all__ = [
    "DEFAULT_START",
    "MAC_A",
    "MAC_B",
    "Direction",
    "Keepalive",
    "Outage",
    "Scenario",
    "ScenarioError",
    "SimulationResult",
    "TunnelSpec",
    "initial_ip_id",
    "load_scenario",
    "parse_scenario",
    "run_cli",
    "simulate",
    "validate",
    "write_truth",
]

PROG: Final = "gre-keepalive simulate"

DEFAULT_START: Final = 1764115200.0  # 2025-11-26 00:00:00 UTC
DEFAULT_DELAY_MS: Final = 10.0
DEFAULT_REFLECT_US: Final = 50.0
PERIOD_MIN: Final = 1
PERIOD_MAX: Final = 32767
RETRIES_MIN: Final = 1
RETRIES_MAX: Final = 255
KEY_MAX: Final = 0xFFFFFFFF
SGT_MAX: Final = 0xFFFF
VLAN_MAX: Final = 4095
DATA_PAYLOAD: Final = 64  # UDP payload bytes of a simulated tunnel data packet
MAX_EPOCH: Final = 0xFFFFFFFF  # classic pcap stores 32-bit seconds

MAC_A: Final = bytes.fromhex("02000000000a")  # every tunnel's a endpoint
MAC_B: Final = bytes.fromhex("02000000000b")  # every tunnel's b endpoint

_NS: Final = 10**9

_TOP_KEYS: Final = ("start", "duration", "vantage", "link", "vlans", "nanosecond", "tunnel")
_TUNNEL_KEYS: Final = (
    "a",
    "b",
    "key",
    "delay_ms",
    "reflect_us",
    "data_pps",
    "data_pps_a",
    "data_pps_b",
    "metadata_sgt",
    "inner_ipv6",
    "keepalive_a",
    "keepalive_b",
    "outages",
    "key_a",
    "key_b",
    "reflects_a",
    "reflects_b",
)
_KEEPALIVE_KEYS: Final = (
    "period",
    "retries",
    "phase",
    "period_jitter",
    "inner_src",
    "inner_dst",
    "inner_key",
    "inner_ttl",
    "payload",
    "ip_id",
    "machine",
)
_IP_ID_STYLES: Final = ("cisco", "random")
_MACHINES: Final = ("cisco", "juniper", "openbsd")
# `key_a`/`key_b`/`inner_key` not given: the tunnel's key (the outer key for `inner_key`).
SAME_KEY: Final = -1
_OUTAGE_KEYS: Final = ("start", "end", "direction")
_SIDES: Final = ("a", "b")
_LINKS: Final = ("ethernet", "raw")


MAX_FRAMES = 20_000_000  # about 2 GB of capture


class ScenarioError(Exception):
    """A scenario cannot be used; ``str(exc)`` is one line ``"FILE: message"``."""


class Direction(StrEnum):
    """Which legs of a tunnel's path an outage cuts."""

    BOTH = "both"
    A_TO_B = "a-to-b"
    B_TO_A = "b-to-a"


@dataclass(frozen=True, slots=True)
class Keepalive:
    """``keepalive <period> <retries>`` of one endpoint; ticks at ``phase + k * period``.

    The other fields describe vendor variants (SPEC.md §3); their defaults build the IOS
    keepalive of the module docstring.
    """

    period: float = DEFAULT_PERIOD
    retries: int = DEFAULT_RETRIES
    phase: float = 0.0
    jitter: float = 0.0  # `period_jitter`: each tick moves by a fixed offset within ± jitter s
    inner_src: str | None = None  # inner IP source (default: the peer; NAT/overlay variants)
    inner_dst: str | None = None  # inner IP destination (default: the originator)
    inner_key: int | None = SAME_KEY  # inner GRE key: SAME_KEY = the outer one, None = no key
    inner_ttl: int = 255
    payload: int = 0  # bytes after the inner PT-0 GRE header (OpenBSD carries 16)
    ip_id: str = "cisco"  # "cisco": inner n, outer n + 1 from the router's counter; "random"
    # "cisco": the IOS counter; "juniper": down after period × retries s without a reply
    # (keepalive-time, hold-time); "openbsd": the same timer plus gre(4)'s hold-down
    machine: str = "cisco"


@dataclass(frozen=True, slots=True)
class Outage:
    """A path failure during ``[start, end)`` seconds after t = 0."""

    start: float
    end: float
    direction: Direction = Direction.BOTH


@dataclass(frozen=True, slots=True)
class TunnelSpec:
    """One point-to-point GRE tunnel between endpoints ``a`` and ``b``."""

    a: str
    b: str
    key: int | None = None
    delay_ms: float = DEFAULT_DELAY_MS
    reflect_us: float = DEFAULT_REFLECT_US
    data_pps_a: float = 0.0
    data_pps_b: float = 0.0
    metadata_sgt: int | None = None
    keepalive_a: Keepalive | None = None
    keepalive_b: Keepalive | None = None
    outages: tuple[Outage, ...] = ()
    key_a: int | None = SAME_KEY  # the key a's tunnel interface is configured with
    key_b: int | None = SAME_KEY
    reflects_a: bool = True  # False: a drops the peer's decapsulated keepalives (uRPF, ACL)
    reflects_b: bool = True


@dataclass(frozen=True, slots=True)
class Scenario:
    """A parsed and validated scenario (see the module docstring for the model)."""

    tunnels: tuple[TunnelSpec, ...]
    duration: float
    start: float = DEFAULT_START
    vantage: str = "a"
    link: str = "ethernet"
    vlans: tuple[int, ...] = ()
    nanosecond: bool = False
    name: str = "<scenario>"


@dataclass(slots=True)
class SimulationResult:
    """What :func:`simulate` wrote: the number of frames and the ground truth."""

    frames: int
    truth: dict[str, object]


# --- parsing and validation ------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _describe(value: object) -> str:
    return repr(value) if isinstance(value, str) else _one_line(str(value))


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} must be a number, got {_describe(value)}")
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {_describe(value)}")
    return float(value)


def _integer(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be an integer, got {_describe(value)}")
    return value


def _string(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {_describe(value)}")
    return value


def _table(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a table, got {_describe(value)}")
    return value


def _check_keys(table: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in allowed:
            raise ValueError(f"unknown key {key!r} {where} (allowed: {', '.join(allowed)})")


def _address(value: object, what: str) -> str:
    text = _string(value, what)
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise ValueError(f"{what} {text!r} is not an IPv4 or IPv6 address") from None


def _key_option(table: dict[str, Any], name: str, what: str) -> int | None:
    """A key that may be absent (SAME_KEY), "none" (no key) or an integer."""
    if name not in table:
        return SAME_KEY
    value = table[name]
    if value == "none":
        return None
    return _integer(value, f'{what} {name} (an integer or "none")')


def _parse_keepalive(value: object, what: str) -> Keepalive:
    table = _table(value, what)
    _check_keys(table, _KEEPALIVE_KEYS, f"in {what}")
    inner_src = table.get("inner_src")
    inner_dst = table.get("inner_dst")
    return Keepalive(
        period=_number(table.get("period", DEFAULT_PERIOD), f"{what} period"),
        retries=_integer(table.get("retries", DEFAULT_RETRIES), f"{what} retries"),
        phase=_number(table.get("phase", 0.0), f"{what} phase"),
        jitter=_number(table.get("period_jitter", 0.0), f"{what} period_jitter"),
        inner_src=None if inner_src is None else _address(inner_src, f"{what} inner_src"),
        inner_dst=None if inner_dst is None else _address(inner_dst, f"{what} inner_dst"),
        inner_key=_key_option(table, "inner_key", what),
        inner_ttl=_integer(table.get("inner_ttl", 255), f"{what} inner_ttl"),
        payload=_integer(table.get("payload", 0), f"{what} payload"),
        ip_id=_string(table.get("ip_id", "cisco"), f"{what} ip_id"),
        machine=_string(table.get("machine", "cisco"), f"{what} machine"),
    )


def _boolean(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{what} must be true or false, got {_describe(value)}")
    return value


def _parse_outage(value: object, what: str) -> Outage:
    table = _table(value, what)
    _check_keys(table, _OUTAGE_KEYS, f"in {what}")
    for required in ("start", "end"):
        if required not in table:
            raise ValueError(f"{what} has no {required!r}")
    direction = _string(table.get("direction", "both"), f"{what} direction")
    try:
        parsed = Direction(direction)
    except ValueError:
        allowed = ", ".join(repr(d.value) for d in Direction)
        raise ValueError(f"{what} direction {direction!r} is not one of {allowed}") from None
    return Outage(
        start=_number(table["start"], f"{what} start"),
        end=_number(table["end"], f"{what} end"),
        direction=parsed,
    )


def _parse_tunnel(value: object, what: str) -> TunnelSpec:
    table = _table(value, what)
    _check_keys(table, _TUNNEL_KEYS, f"in {what}")
    for required in ("a", "b"):
        if required not in table:
            raise ValueError(f"{what} has no {required!r} address")
    if "inner_ipv6" in table:
        inner_ipv6 = table["inner_ipv6"]
        if not isinstance(inner_ipv6, bool):
            raise ValueError(f"{what} inner_ipv6 must be true or false")
        if inner_ipv6:
            raise ValueError(
                f"{what} inner_ipv6 = true is not supported "
                "(give IPv6 a/b addresses for IPv6 keepalives)"
            )
    pps = _number(table.get("data_pps", 0.0), f"{what} data_pps")
    key = table.get("key")
    sgt = table.get("metadata_sgt")
    outages = table.get("outages", [])
    if not isinstance(outages, list):
        raise ValueError(f"{what} outages must be an array of tables")
    return TunnelSpec(
        a=_address(table["a"], f"{what} a"),
        b=_address(table["b"], f"{what} b"),
        key=None if key is None else _integer(key, f"{what} key"),
        delay_ms=_number(table.get("delay_ms", DEFAULT_DELAY_MS), f"{what} delay_ms"),
        reflect_us=_number(table.get("reflect_us", DEFAULT_REFLECT_US), f"{what} reflect_us"),
        data_pps_a=_number(table.get("data_pps_a", pps), f"{what} data_pps_a"),
        data_pps_b=_number(table.get("data_pps_b", pps), f"{what} data_pps_b"),
        metadata_sgt=None if sgt is None else _integer(sgt, f"{what} metadata_sgt"),
        keepalive_a=(
            None
            if "keepalive_a" not in table
            else _parse_keepalive(table["keepalive_a"], f"{what} keepalive_a")
        ),
        keepalive_b=(
            None
            if "keepalive_b" not in table
            else _parse_keepalive(table["keepalive_b"], f"{what} keepalive_b")
        ),
        outages=tuple(
            _parse_outage(item, f"{what} outage {index}")
            for index, item in enumerate(outages, start=1)
        ),
        key_a=_key_option(table, "key_a", what),
        key_b=_key_option(table, "key_b", what),
        reflects_a=_boolean(table.get("reflects_a", True), f"{what} reflects_a"),
        reflects_b=_boolean(table.get("reflects_b", True), f"{what} reflects_b"),
    )


def _build(data: dict[str, Any], name: str) -> Scenario:
    _check_keys(data, _TOP_KEYS, "at top level")
    if "duration" not in data:
        raise ValueError("no 'duration' (seconds to simulate)")
    tunnels = data.get("tunnel")
    if tunnels is None:
        raise ValueError("no [[tunnel]] table")
    if not isinstance(tunnels, list):
        raise ValueError("'tunnel' must be an array of tables ([[tunnel]])")
    vlans = data.get("vlans", [])
    if not isinstance(vlans, list):
        raise ValueError(f"vlans must be an array of integers, got {_describe(vlans)}")
    nanosecond = data.get("nanosecond", False)
    if not isinstance(nanosecond, bool):
        raise ValueError(f"nanosecond must be true or false, got {_describe(nanosecond)}")
    return Scenario(
        tunnels=tuple(
            _parse_tunnel(item, f"tunnel {index}") for index, item in enumerate(tunnels, start=1)
        ),
        duration=_number(data["duration"], "duration"),
        start=_number(data.get("start", DEFAULT_START), "start"),
        vantage=_string(data.get("vantage", "a"), "vantage"),
        link=_string(data.get("link", "ethernet"), "link"),
        vlans=tuple(_integer(vlan, "vlan") for vlan in vlans),
        nanosecond=nanosecond,
        name=name,
    )


def _check_range(value: float, low: float, high: float | None, what: str) -> None:
    if value < low or (high is not None and value > high):
        span = f"{low:g}-{high:g}" if high is not None else f">= {low:g}"
        raise ValueError(f"{what} {value:g} out of range {span}")


def _validate_keepalive(keepalive: Keepalive, what: str) -> None:
    _check_range(keepalive.period, PERIOD_MIN, PERIOD_MAX, f"{what} period")
    if not RETRIES_MIN <= keepalive.retries <= RETRIES_MAX:
        raise ValueError(
            f"{what} retries {keepalive.retries} out of range {RETRIES_MIN}-{RETRIES_MAX}"
        )
    _check_range(keepalive.phase, 0, None, f"{what} phase")
    if not math.isfinite(keepalive.jitter):
        raise ValueError(f"{what} period_jitter must be finite")
    _check_range(keepalive.jitter, 0, keepalive.period / 4, f"{what} period_jitter")
    inner = [a for a in (keepalive.inner_src, keepalive.inner_dst) if a is not None]
    if len({ipaddress.ip_address(a).version for a in inner}) > 1:
        raise ValueError(f"{what} inner_src and inner_dst are of different IP versions")
    if keepalive.inner_key not in (None, SAME_KEY) and not 0 <= keepalive.inner_key <= KEY_MAX:
        raise ValueError(f"{what} inner_key {keepalive.inner_key} out of range 0-{KEY_MAX}")
    _check_range(keepalive.inner_ttl, 1, 255, f"{what} inner_ttl")
    _check_range(keepalive.payload, 0, 1024, f"{what} payload")
    if keepalive.ip_id not in _IP_ID_STYLES:
        raise ValueError(f"{what} ip_id {keepalive.ip_id!r} is not 'cisco' or 'random'")
    if keepalive.machine not in _MACHINES:
        allowed = ", ".join(repr(m) for m in _MACHINES)
        raise ValueError(f"{what} machine {keepalive.machine!r} is not one of {allowed}")


def _validate_tunnel(tunnel: TunnelSpec, what: str) -> None:
    a, b = ipaddress.ip_address(tunnel.a), ipaddress.ip_address(tunnel.b)
    if a.version != b.version:
        raise ValueError(f"{what}: a {tunnel.a} and b {tunnel.b} are of different IP versions")
    if a == b:
        raise ValueError(f"{what}: a and b are the same address {tunnel.a}")
    if tunnel.key is not None and not 0 <= tunnel.key <= KEY_MAX:
        raise ValueError(f"{what} key {tunnel.key} out of range 0-{KEY_MAX}")
    for label, override in (("key_a", tunnel.key_a), ("key_b", tunnel.key_b)):
        if override not in (None, SAME_KEY) and not 0 <= override <= KEY_MAX:
            raise ValueError(f"{what} {label} {override} out of range 0-{KEY_MAX}")
    if tunnel.metadata_sgt is not None and not 0 <= tunnel.metadata_sgt <= SGT_MAX:
        raise ValueError(f"{what} metadata_sgt {tunnel.metadata_sgt} out of range 0-{SGT_MAX}")
    for number, label in (
        (tunnel.delay_ms, "delay_ms"),
        (tunnel.reflect_us, "reflect_us"),
        (tunnel.data_pps_a, "data_pps_a"),
        (tunnel.data_pps_b, "data_pps_b"),
    ):
        if not math.isfinite(number):
            raise ValueError(f"{what} {label} must be finite")
        _check_range(number, 0, None, f"{what} {label}")
    for keepalive, label in (
        (tunnel.keepalive_a, "keepalive_a"),
        (tunnel.keepalive_b, "keepalive_b"),
    ):
        if keepalive is not None:
            _validate_keepalive(keepalive, f"{what} {label}")
    for index, outage in enumerate(tunnel.outages, start=1):
        where = f"{what} outage {index}"
        _check_range(outage.start, 0, None, f"{where} start")
        if not outage.end > outage.start:
            raise ValueError(f"{where} end {outage.end:g} is not after its start {outage.start:g}")
        Direction(outage.direction)


def validate(scenario: Scenario) -> None:
    """Raise :class:`ScenarioError` (``"NAME: message"``) if the scenario cannot be simulated."""
    try:
        _validate(scenario)
    except (ValueError, TypeError) as exc:
        raise ScenarioError(_one_line(f"{scenario.name}: {exc}")) from None


def _validate(scenario: Scenario) -> None:
    for number, label in ((scenario.start, "start"), (scenario.duration, "duration")):
        if not math.isfinite(number):
            raise ValueError(f"{label} must be finite")
    if scenario.duration <= 0:
        raise ValueError(f"duration {scenario.duration:g} must be positive")
    _check_range(scenario.start, 0, None, "start")
    if scenario.start + scenario.duration > MAX_EPOCH:
        raise ValueError("start + duration does not fit in a pcap timestamp (32-bit seconds)")
    if scenario.vantage not in _SIDES:
        raise ValueError(f"vantage {scenario.vantage!r} is not 'a' or 'b'")
    if scenario.link not in _LINKS:
        raise ValueError(f"link {scenario.link!r} is not 'ethernet' or 'raw'")
    if scenario.vlans and scenario.link != "ethernet":
        raise ValueError("vlans need link = 'ethernet'")
    if len(scenario.vlans) > 2:
        raise ValueError(f"{len(scenario.vlans)} vlans given; at most 2 (QinQ)")
    for vlan in scenario.vlans:
        if not 0 <= vlan <= VLAN_MAX:
            raise ValueError(f"vlan {vlan} out of range 0-{VLAN_MAX}")
    if not scenario.tunnels:
        raise ValueError("no [[tunnel]] table")
    seen: dict[tuple[frozenset[str], int | None], int] = {}
    for index, tunnel in enumerate(scenario.tunnels, start=1):
        what = f"tunnel {index}"
        for label, address in (("a", tunnel.a), ("b", tunnel.b)):
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(
                    f"{what} {label} {address!r} is not an IPv4 or IPv6 address"
                ) from None
        _validate_tunnel(tunnel, what)
        identity = (
            frozenset({str(ipaddress.ip_address(tunnel.a)), str(ipaddress.ip_address(tunnel.b))}),
            tunnel.key,
        )
        if identity in seen:
            raise ValueError(f"{what} duplicates tunnel {seen[identity]} (same endpoints and key)")
        seen[identity] = index
    frames = _frames_estimate(scenario)
    if frames > MAX_FRAMES:  # a few lines of TOML must not fill the disk
        raise ValueError(
            f"the capture would hold about {frames:.3g} frames (at most {MAX_FRAMES:,}): "
            "shorten the duration or lower data_pps"
        )


def _frames_estimate(scenario: Scenario) -> float:
    """About how many frames `scenario` writes: data, keepalives and their replies."""
    frames = 0.0
    for tunnel in scenario.tunnels:
        frames += (tunnel.data_pps_a + tunnel.data_pps_b) * scenario.duration
        for keepalive in (tunnel.keepalive_a, tunnel.keepalive_b):
            if keepalive is not None and keepalive.period > 0:
                frames += 2 * scenario.duration / keepalive.period
    return frames


def parse_scenario(text: str, name: str = "<scenario>") -> Scenario:
    """Parse and validate a scenario from TOML text; :class:`ScenarioError` on any problem."""
    try:
        data = load_toml(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(_one_line(f"{name}: TOML syntax error: {exc}")) from None
    except TomlUnreadable as exc:
        raise ScenarioError(f"{name}: {exc}") from None
    try:
        scenario = _build(data, name)
    except ValueError as exc:
        raise ScenarioError(_one_line(f"{name}: {exc}")) from None
    validate(scenario)
    return scenario


def load_scenario(path: str | os.PathLike[str]) -> Scenario:
    """Read and validate a scenario file; :class:`ScenarioError` names the file."""
    name = os.fspath(path)
    try:
        raw = read_text_file(name)
    except FileTooLarge as exc:
        raise ScenarioError(f"{name}: cannot read: {exc}") from None
    except FileNotFoundError:
        raise ScenarioError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ScenarioError(f"{name}: is a directory") from None
    except OSError as exc:
        raise ScenarioError(_one_line(f"{name}: cannot read ({exc.strerror or exc})")) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{name}: not UTF-8 text (byte {exc.start})") from None
    return parse_scenario(text, name)


# --- simulation ------------------------------------------------------------------------


def _machine(keepalive: Keepalive | None) -> KeepaliveMachine | HoldTimerMachine | None:
    """The state machine of an endpoint; times are integer nanoseconds."""
    if keepalive is None:
        return None
    if keepalive.machine == "cisco":
        return KeepaliveMachine(keepalive.retries)
    hold = _ns(keepalive.period) * keepalive.retries
    return HoldTimerMachine(keepalive.retries, hold, holddown=keepalive.machine == "openbsd")


def _is_plain(keepalive: Keepalive) -> bool:
    """True when the keepalive is the IOS one that build_keepalive_request makes."""
    return (
        keepalive.inner_src is None
        and keepalive.inner_dst is None
        and keepalive.inner_key == SAME_KEY
        and keepalive.inner_ttl == 255
        and keepalive.payload == 0
    )


def _variant_request(
    endpoint: _Endpoint, keepalive: Keepalive, inner_id: int, outer_id: int, k: int
) -> bytes:
    """A request with vendor-variant inner headers (addresses, key, TTL, payload)."""
    inner_src = keepalive.inner_src or endpoint.peer_address
    inner_dst = keepalive.inner_dst or endpoint.address
    inner_key = endpoint.key if keepalive.inner_key == SAME_KEY else keepalive.inner_key
    payload = b""
    if keepalive.payload:
        seed = f"{endpoint.address}/payload/{k}".encode()
        blocks = b"".join(
            zlib.crc32(seed + bytes([i])).to_bytes(4, "big")
            for i in range((keepalive.payload + 3) // 4)
        )
        payload = blocks[: keepalive.payload]
    inner_gre = build_gre(0, payload, key=inner_key)
    inner = build_ip(inner_src, inner_dst, inner_gre, ip_id=inner_id, ttl=keepalive.inner_ttl)
    protocol = ETH_IPV6 if ":" in inner_src else ETH_IPV4
    sgt = endpoint.spec.metadata_sgt
    if sgt is not None:
        inner = protocol.to_bytes(2, "big") + bytes([1, 1, 0, 1]) + sgt.to_bytes(2, "big") + inner
        protocol = ETH_CISCO_METADATA
    outer_gre = build_gre(protocol, inner, key=endpoint.key)
    return build_ip(endpoint.address, endpoint.peer_address, outer_gre, ip_id=outer_id, ttl=255)


# Order of events at the same instant.
_ARRIVE: Final = 0
_REFLECT: Final = 1
_TICK: Final = 2
_DATA: Final = 3

_REQUEST: Final = "request"
_REPLY: Final = "reply"
_DATA_PACKET: Final = "data"


def _ns(seconds: float) -> int:
    """Seconds (as written in the scenario) to integer nanoseconds, exactly."""
    return round(Fraction(repr(float(seconds))) * _NS)


def initial_ip_id(address: str) -> int:
    """First IP ID a simulated router originates: ``crc32(address) & 0xFFFF``."""
    return zlib.crc32(str(ipaddress.ip_address(address)).encode()) & 0xFFFF


@dataclass(slots=True)
class _Router:
    ip_id: int

    def take(self, count: int) -> int:
        first = self.ip_id
        self.ip_id = (self.ip_id + count) & 0xFFFF
        return first


@dataclass(slots=True, eq=False)
class _Send:
    time: int
    counter: int
    ip_id: int
    packet: _Packet
    returned: bool = False


@dataclass(slots=True, eq=False)
class _Packet:
    kind: str
    data: bytes
    sender: _Endpoint
    send: _Send | None = None  # the keepalive a request or reply belongs to
    frame: int | None = None
    key: int | None = None  # outer GRE key (a reply: the request's inner key)


@dataclass(slots=True, eq=False)
class _TransitionRecord:
    time: int
    state: LineState
    counter: int
    packet: _Packet | None  # None: a hold timer fired


@dataclass(slots=True, eq=False)
class _Endpoint:
    tunnel: int
    side: str
    address: str
    peer_address: str
    spec: TunnelSpec
    router: _Router
    keepalive: Keepalive | None
    pps: Fraction
    machine: KeepaliveMachine | HoldTimerMachine | None = None
    key: int | None = None  # the key this endpoint's tunnel interface is configured with
    reflects: bool = True
    peer: _Endpoint | None = None
    sends: list[_Send] = field(default_factory=list)
    transitions: list[_TransitionRecord] = field(default_factory=list)
    returned: int = 0
    data_sent: int = 0
    blackholed: int = 0

    @property
    def up(self) -> bool:
        return self.machine is None or self.machine.line_state is LineState.UP

    def data_time(self, index: int) -> int:
        """Nanoseconds of data grid point ``index``: ``(index + 0.5) / pps``, rounded."""
        numerator = (2 * index + 1) * _NS * self.pps.denominator
        denominator = 2 * self.pps.numerator
        return (2 * numerator + denominator) // (2 * denominator)


@dataclass(slots=True, eq=False)
class _Event:
    kind: int
    endpoint: _Endpoint
    index: int = 0
    packet: _Packet | None = None


class _Simulation:
    def __init__(self, scenario: Scenario, writer: PcapWriter) -> None:
        self.scenario = scenario
        self.writer = writer
        self.units = _NS if scenario.nanosecond else 10**6
        self.start_ns = _ns(scenario.start)
        self.end_ns = _ns(scenario.duration)
        self.frames = 0
        self.queue: list[tuple[int, int, int, _Event]] = []
        self.sequence = 0
        self.routers: dict[str, _Router] = {}
        self.endpoints: list[tuple[_Endpoint, _Endpoint]] = []
        self.delay: list[int] = []
        self.reflect: list[int] = []
        self.cuts: list[dict[str, list[tuple[int, int]]]] = []
        for index, tunnel in enumerate(scenario.tunnels):
            a = self._endpoint(index, "a", tunnel)
            b = self._endpoint(index, "b", tunnel)
            a.peer, b.peer = b, a
            self.endpoints.append((a, b))
            self.delay.append(_ns(tunnel.delay_ms / 1000))
            self.reflect.append(_ns(tunnel.reflect_us / 1_000_000))
            cuts: dict[str, list[tuple[int, int]]] = {"a": [], "b": []}
            for outage in tunnel.outages:
                span = (_ns(outage.start), _ns(outage.end))
                if outage.direction in (Direction.BOTH, Direction.A_TO_B):
                    cuts["a"].append(span)
                if outage.direction in (Direction.BOTH, Direction.B_TO_A):
                    cuts["b"].append(span)
            self.cuts.append(cuts)

    def _endpoint(self, index: int, side: str, tunnel: TunnelSpec) -> _Endpoint:
        address = str(ipaddress.ip_address(tunnel.a if side == "a" else tunnel.b))
        peer = str(ipaddress.ip_address(tunnel.b if side == "a" else tunnel.a))
        router = self.routers.get(address)
        if router is None:
            router = self.routers[address] = _Router(initial_ip_id(address))
        keepalive = tunnel.keepalive_a if side == "a" else tunnel.keepalive_b
        pps = tunnel.data_pps_a if side == "a" else tunnel.data_pps_b
        override = tunnel.key_a if side == "a" else tunnel.key_b
        return _Endpoint(
            tunnel=index,
            side=side,
            address=address,
            peer_address=peer,
            spec=tunnel,
            router=router,
            keepalive=keepalive,
            pps=Fraction(repr(float(pps))),
            machine=_machine(keepalive),
            key=tunnel.key if override == SAME_KEY else override,
            reflects=tunnel.reflects_a if side == "a" else tunnel.reflects_b,
        )

    # -- the event queue

    def push(self, time: int, event: _Event) -> None:
        if time > self.end_ns:
            return
        self.sequence += 1
        heapq.heappush(self.queue, (time, event.kind, self.sequence, event))

    def tick_time(self, endpoint: _Endpoint, k: int) -> int:
        keepalive = endpoint.keepalive
        assert keepalive is not None
        time = _ns(keepalive.phase) + k * _ns(keepalive.period)
        if keepalive.jitter:
            # A deterministic offset in [-jitter, +jitter], in steps of jitter / 1000.
            step = zlib.crc32(f"{endpoint.address}/{endpoint.peer_address}/{k}".encode()) % 2001
            time += (step - 1000) * _ns(keepalive.jitter) // 1000
        return max(time, 0)

    def schedule_tick(self, endpoint: _Endpoint, k: int) -> None:
        time = self.tick_time(endpoint, k)
        if time < self.end_ns:
            self.push(time, _Event(_TICK, endpoint, k))

    def schedule_data(self, endpoint: _Endpoint, index: int) -> None:
        time = endpoint.data_time(index)
        if time < self.end_ns:
            self.push(time, _Event(_DATA, endpoint, index))

    def expire(self, time: int, endpoint: _Endpoint) -> None:
        """Fire a hold timer due by `time` (time-based machines), before any other event."""
        machine = endpoint.machine
        if isinstance(machine, HoldTimerMachine):
            transition = machine.expire(time)
            if transition is not None:
                endpoint.transitions.append(
                    _TransitionRecord(
                        int(transition.time), transition.state, transition.counter, None
                    )
                )

    def run(self) -> None:
        for pair in self.endpoints:
            for endpoint in pair:
                if endpoint.keepalive is not None:
                    self.schedule_tick(endpoint, 0)
                if endpoint.pps > 0:
                    self.schedule_data(endpoint, 0)
        while self.queue:
            time, kind, _, event = heapq.heappop(self.queue)
            if kind == _ARRIVE:
                assert event.packet is not None
                self.arrive(time, event.packet)
            elif kind == _REFLECT:
                assert event.packet is not None
                self.reflect_request(time, event.endpoint, event.packet)
            elif kind == _TICK:
                self.tick(time, event.endpoint, event.index)
            else:
                self.data(time, event.endpoint, event.index)
        for pair in self.endpoints:
            for endpoint in pair:
                self.expire(self.end_ns, endpoint)

    # -- the capture

    def wire_time(self, time: int) -> float:
        return (self.start_ns + time) / _NS

    def stamp(self, time: int) -> float:
        """Epoch seconds as the capture stores them (PcapWriter rounding, reader arithmetic)."""
        value = self.wire_time(time)
        sec = math.floor(value)
        frac = round((value - sec) * self.units)
        if frac >= self.units:
            sec += 1
            frac -= self.units
        return sec + frac / self.units

    def record(self, time: int, packet: _Packet, outgoing: bool) -> None:
        self.frames += 1
        packet.frame = self.frames
        data = packet.data
        if self.scenario.link == "ethernet":
            local, remote = (MAC_A, MAC_B) if self.scenario.vantage == "a" else (MAC_B, MAC_A)
            src, dst = (local, remote) if outgoing else (remote, local)
            data = build_ethernet(data, src_mac=src, dst_mac=dst, vlans=self.scenario.vlans)
        self.writer.write(self.wire_time(time), data)

    # -- what the routers do

    def depart(self, time: int, packet: _Packet) -> bool:
        """Send `packet` from its sender at `time`; False if an outage loses it."""
        sender = packet.sender
        if sender.side == self.scenario.vantage:
            self.record(time, packet, outgoing=True)
        for start, end in self.cuts[sender.tunnel][sender.side]:
            if start <= time < end:
                return False
        self.push(time + self.delay[sender.tunnel], _Event(_ARRIVE, sender, packet=packet))
        return True

    def arrive(self, time: int, packet: _Packet) -> None:
        receiver = packet.sender.peer
        assert receiver is not None
        if receiver.side == self.scenario.vantage:
            self.record(time, packet, outgoing=False)
        if packet.key != receiver.key:
            # No tunnel interface of the receiver takes this key: the packet is dropped.
            if packet.kind == _DATA_PACKET:
                packet.sender.blackholed += 1
            return
        if packet.kind == _REQUEST:
            if not receiver.reflects:
                return
            self.push(
                time + self.reflect[receiver.tunnel], _Event(_REFLECT, receiver, packet=packet)
            )
        elif packet.kind == _REPLY:
            send = packet.send
            assert send is not None and receiver.machine is not None
            send.returned = True
            receiver.returned += 1
            self.expire(time, receiver)
            step = receiver.machine.reply(time)
            if step.transition is not None:
                receiver.transitions.append(
                    _TransitionRecord(time, step.transition.state, step.transition.counter, packet)
                )

    def reflect_request(self, time: int, endpoint: _Endpoint, request: _Packet) -> None:
        data = reflect_request(request.data)
        assert data is not None, "a simulated request is always reflectable"
        origin = request.sender
        inner_key = origin.keepalive.inner_key if origin.keepalive is not None else SAME_KEY
        key = request.key if inner_key == SAME_KEY else inner_key
        self.depart(time, _Packet(_REPLY, data, endpoint, send=request.send, key=key))

    def tick(self, time: int, endpoint: _Endpoint, k: int) -> None:
        assert endpoint.machine is not None
        spec = endpoint.spec
        self.expire(time, endpoint)
        step = endpoint.machine.send(time)
        keepalive = endpoint.keepalive
        assert keepalive is not None
        if keepalive.ip_id == "random":
            seed = f"{endpoint.address}/{endpoint.peer_address}/id/{k}".encode()
            inner_id = zlib.crc32(seed) & 0xFFFF
            outer_id = zlib.crc32(seed + b"/outer") & 0xFFFF
        else:
            inner_id = endpoint.router.take(2)
            outer_id = (inner_id + 1) & 0xFFFF
        if _is_plain(keepalive) and endpoint.key == spec.key:
            data = build_keepalive_request(
                endpoint.address,
                endpoint.peer_address,
                key=spec.key,
                outer_id=outer_id,
                inner_id=inner_id,
                ttl=255,
                inner_ttl=255,
                metadata_sgt=spec.metadata_sgt,
            )
        else:
            data = _variant_request(endpoint, keepalive, inner_id, outer_id, k)
        packet = _Packet(_REQUEST, data, endpoint, key=endpoint.key)
        send = _Send(time, step.counter, inner_id, packet)
        packet.send = send
        endpoint.sends.append(send)
        if step.transition is not None:
            endpoint.transitions.append(
                _TransitionRecord(time, step.transition.state, step.transition.counter, packet)
            )
        self.depart(time, packet)
        self.schedule_tick(endpoint, k + 1)

    def data(self, time: int, endpoint: _Endpoint, index: int) -> None:
        self.expire(time, endpoint)
        if endpoint.up:
            ip_id = endpoint.router.take(1)
            data = build_gre_data(
                endpoint.address,
                endpoint.peer_address,
                key=endpoint.key,
                ip_id=ip_id,
                ttl=255,
                payload_length=DATA_PAYLOAD,
            )
            endpoint.data_sent += 1
            if not self.depart(time, _Packet(_DATA_PACKET, data, endpoint, key=endpoint.key)):
                endpoint.blackholed += 1
        self.schedule_data(endpoint, index + 1)

    # -- the ground truth

    def truth(self) -> dict[str, object]:
        scenario = self.scenario
        tunnels: list[dict[str, object]] = []
        for index, (a, b) in enumerate(self.endpoints):
            spec = scenario.tunnels[index]
            tunnels.append(
                {
                    "index": index + 1,
                    "a": a.address,
                    "b": b.address,
                    "key": spec.key,
                    "delay_ms": spec.delay_ms,
                    "reflect_us": spec.reflect_us,
                    "metadata_sgt": spec.metadata_sgt,
                    "outages": [
                        {"start": o.start, "end": o.end, "direction": str(o.direction)}
                        for o in spec.outages
                    ],
                    "endpoints": [self.endpoint_truth(a), self.endpoint_truth(b)],
                }
            )
        return {
            "scenario": scenario.name,
            "start": scenario.start,
            "duration": scenario.duration,
            "vantage": scenario.vantage,
            "link": scenario.link,
            "vlans": list(scenario.vlans),
            "precision": 9 if scenario.nanosecond else 6,
            "frames": self.frames,
            "tunnels": tunnels,
        }

    def endpoint_truth(self, endpoint: _Endpoint) -> dict[str, object]:
        keepalive = endpoint.keepalive
        machine = endpoint.machine
        return {
            "side": endpoint.side,
            "address": endpoint.address,
            "peer": endpoint.peer_address,
            "key": endpoint.key,
            "period": None if keepalive is None else keepalive.period,
            "retries": None if keepalive is None else keepalive.retries,
            "phase": None if keepalive is None else keepalive.phase,
            "sends": [
                {
                    "time": self.stamp(send.time),
                    "frame": send.packet.frame,
                    "counter": send.counter,
                    "ip_id": send.ip_id,
                    "returned": send.returned,
                }
                for send in endpoint.sends
            ],
            "transitions": [
                {
                    "time": self.stamp(record.time),
                    "state": str(record.state),
                    "counter": record.counter,
                    "frame": None if record.packet is None else record.packet.frame,
                }
                for record in endpoint.transitions
            ],
            "sent": len(endpoint.sends),
            "returned": endpoint.returned,
            "final_state": str(LineState.UP if machine is None else machine.line_state),
            "final_counter": None if machine is None else machine.counter,
            "data_pps": float(endpoint.pps),
            "data_sent": endpoint.data_sent,
            "blackholed": endpoint.blackholed,
        }


def simulate(scenario: Scenario, output: str | os.PathLike[str] | BinaryIO) -> SimulationResult:
    """Run `scenario` and write its capture (classic pcap) to a path or binary stream.

    Raises :class:`ScenarioError` if the scenario is invalid (it is validated again here, so
    scenarios built in code get the same checks as files).
    """
    validate(scenario)
    linktype = LINKTYPE_ETHERNET if scenario.link == "ethernet" else LINKTYPE_RAW
    with PcapWriter(output, linktype, nanosecond=scenario.nanosecond) as writer:
        simulation = _Simulation(scenario, writer)
        simulation.run()
    return SimulationResult(simulation.frames, simulation.truth())


def write_truth(truth: dict[str, object], path: str | os.PathLike[str]) -> None:
    """Write the ground truth as indented JSON (UTF-8, trailing newline)."""
    with open(path, "w", encoding="utf-8") as handle:
        try:
            json.dump(truth, handle, indent=2)
            handle.write("\n")
            handle.flush()
        except OSError as exc:  # a failed write names no file: say it was the truth file
            exc.filename = os.fspath(path)
            raise


def _default_truth_path(output: str) -> str:
    return str(Path(output).with_suffix(".truth.json"))


def _transition_count(truth: dict[str, object]) -> int:
    tunnels = cast(list[dict[str, Any]], truth["tunnels"])
    return sum(len(end["transitions"]) for tunnel in tunnels for end in tunnel["endpoints"])


def run_cli(scenario_path: str, output: str, truth_path: str | None) -> int:
    """``gre-keepalive simulate``: write the capture and its truth JSON; 0 or 2 (error).

    ``output`` may be ``"-"`` (the pcap goes to stdout; the truth is written only when
    `truth_path` is given).  Errors are one line on stderr.
    """
    try:
        scenario = load_scenario(scenario_path)
        if output == "-":
            stdout = getattr(sys.stdout, "buffer", None)
            if stdout is None:  # started with stdout closed (`>&-`)
                raise OSError(errno.EBADF, "stdout is closed")
            result = simulate(scenario, stdout)
        else:
            result = simulate(scenario, output)
        truth_file = truth_path
        if truth_file is None and output != "-":
            truth_file = _default_truth_path(output)
        if truth_file is not None:
            write_truth(result.truth, truth_file)
    except ScenarioError as exc:
        print(f"{PROG}: error: {printable(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise  # the reader of stdout went away: the command line ends quietly
    except OSError as exc:
        where = exc.filename if exc.filename is not None else output
        where = "<stdout>" if where == "-" else where
        print(
            printable(_one_line(f"{PROG}: error: cannot write {where}: {exc.strerror or exc}")),
            file=sys.stderr,
        )
        return 2
    changes = _transition_count(result.truth)
    target = "<stdout>" if output == "-" else output
    truth_note = f", truth in {truth_file}" if truth_file is not None else ""
    from analyzer.keepalive.wording import counted

    print(
        f"{PROG}: {counted(result.frames, 'frame')}, {counted(len(scenario.tunnels), 'tunnel')}, "
        f"{scenario.duration:g} s, vantage {scenario.vantage}, "
        f"{counted(changes, 'line-protocol change')} -> {printable(target)}{printable(truth_note)}",
        file=sys.stderr,
    )
    return 0
