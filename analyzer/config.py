"""Router tunnel configuration given with ``--config FILE``.

Two input formats are understood, detected from the content (never the file extension):

* Cisco IOS ``show running-config`` text (one or several routers concatenated), from which
  every point-to-point GRE ``interface Tunnel`` block is read: ``tunnel source``,
  ``tunnel destination``, ``tunnel key``, ``tunnel mode`` and ``keepalive``.
* A small TOML schema (``[defaults]`` plus ``[[tunnel]]`` tables).

Both give a :class:`KeepaliveConfig` whose :meth:`KeepaliveConfig.lookup` finds the configured
``keepalive <period> <retries>`` of the endpoint that originates keepalives towards a peer.
Everything that makes the file unusable raises :class:`ConfigError`, whose text is a single
``FILE:LINE: message`` line; things that are only skipped are reported in
:attr:`KeepaliveConfig.warnings`.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import os
import re
import stat
import sys
import tomllib
from dataclasses import dataclass, field
from typing import Any

from analyzer import cyclic_gc

__all__ = [
    "DEFAULT_PERIOD",
    "DEFAULT_RETRIES",
    "KEY_MAX",
    "PERIOD_MAX",
    "RETRIES_MAX",
    "RETRIES_MIN",
    "ConfigError",
    "KeepaliveConfig",
    "TunnelConfig",
    "load_config",
    "parse_config",
    "parse_ios",
    "parse_toml",
    "read_config_text",
]

DEFAULT_PERIOD = 10.0
"""IOS ``keepalive`` with no argument: period in seconds."""
DEFAULT_RETRIES = 3
"""IOS ``keepalive`` / ``keepalive P``: retries."""
PERIOD_MAX = 32767
RETRIES_MIN = 1
RETRIES_MAX = 255
KEY_MAX = 0xFFFFFFFF
# Configuration files and scenarios are text a person wrote: anything larger is a mistake
# (`--config /dev/zero`, a capture given by accident), refused before it fills memory.
MAX_FILE_BYTES = 16 * 1024 * 1024
PERIOD_MIN = 0.001  # below a millisecond a "period" is a typo (or 5e-324) and overflows tick counts

_NEITHER = "neither TOML ([[tunnel]] tables) nor Cisco IOS configuration (interface Tunnel blocks)"


def _one_line(text: str) -> str:
    """Join every line of ``text`` (any Unicode line break) with single spaces."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


class ConfigError(Exception):
    """The configuration file cannot be used.

    ``str(exc)`` is always ONE line, ``FILE:LINE: message`` (or ``FILE: message`` when no line
    applies), e.g. ``router-a.cfg:12: keepalive retries 300 out of range 1-255``.
    The parts are also available as :attr:`path`, :attr:`line` and :attr:`message`.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        self.path = path
        self.line = line
        self.message = _one_line(message)
        prefix = ""
        if path is not None:
            prefix = f"{_one_line(path)}:{line}: " if line is not None else f"{_one_line(path)}: "
        super().__init__(prefix + self.message)


@dataclass(frozen=True, slots=True)
class TunnelConfig:
    """Configured keepalive of one GRE tunnel endpoint (the one whose address is ``source``).

    ``keepalive`` is False for ``no keepalive``, ``keepalive 0``, an IOS tunnel without a
    ``keepalive`` line (the IOS default is off), a TOML entry with ``keepalive = false`` or with
    a period (its own, or else the ``[defaults]`` one) of 0. ``period``/``retries`` are the
    values written in the file (IOS ``keepalive`` alone means 10 s / 3); None when not given,
    in which case the TOML ``[defaults]`` apply at analysis time.
    """

    source: str
    destination: str
    key: int | None
    keepalive: bool
    period: float | None
    retries: int | None
    name: str
    origin: str


_LookupKey = tuple[str, str, int | None]


@dataclass(frozen=True, slots=True)
class KeepaliveConfig:
    """A parsed ``--config`` file: the tunnels, TOML defaults and non-fatal warnings."""

    path: str
    format: str
    default_period: float | None
    default_retries: int | None
    tunnels: tuple[TunnelConfig, ...]
    warnings: tuple[str, ...]
    _index: dict[_LookupKey, TunnelConfig] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )
    _keys: dict[tuple[str, str], list[int | None]] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        for tunnel in self.tunnels:
            pair = (_normalise(tunnel.source), _normalise(tunnel.destination))
            if (*pair, tunnel.key) not in self._index:
                self._index[(*pair, tunnel.key)] = tunnel
                self._keys.setdefault(pair, []).append(tunnel.key)

    def lookup(self, originator: str, peer: str, key: int | None) -> TunnelConfig | None:
        """Return the tunnel configured on ``originator`` towards ``peer`` with GRE key ``key``.

        Addresses are compared after normalisation ("2001:DB8::1" == "2001:db8::1"); keys must
        match exactly, so None (no key) only matches an entry without a key. None when no entry
        matches.
        """
        return self._index.get((_normalise(originator), _normalise(peer), key))

    def other_keys(self, originator: str, peer: str, key: int | None) -> list[TunnelConfig]:
        """The entries for ``originator`` towards ``peer`` whose key is not ``key`` (an entry
        that a key written on one side only keeps from applying)."""
        pair = (_normalise(originator), _normalise(peer))
        return [self._index[(*pair, k)] for k in self._keys.get(pair, []) if k != key]


@functools.lru_cache(maxsize=4096)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """``ipaddress.ip_address``, remembered: a configuration names one tunnel source in
    thousands of blocks."""
    return ipaddress.ip_address(text)


def _normalise(address: str) -> str:
    """Canonical text of an IP address; anything else is returned unchanged."""
    try:
        return str(_address(address.strip()))
    except ValueError:
        return address


def _split_lines(text: str) -> list[str]:
    """Lines as editors (and tomllib) count them: split at LF, drop a trailing CR."""
    return [line.removesuffix("\r") for line in text.split("\n")]


class _Context:
    """File name and collected warnings while one file is parsed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.warnings: list[str] = []

    def error(self, line: int | None, message: str) -> ConfigError:
        return ConfigError(message, path=self.name, line=line)

    def warn(self, line: int, message: str) -> None:
        self.warnings.append(_one_line(f"{self.name}:{line}: {message}"))

    def origin(self, line: int) -> str:
        return f"{self.name}:{line}"


# --------------------------------------------------------------------------------------------
# Loading and format detection
# --------------------------------------------------------------------------------------------

_IOS_INTERFACE_LINE = re.compile(r"^[ \t]*interface[ \t]+\S", re.MULTILINE | re.IGNORECASE)
_LOOKS_LIKE_TOML = re.compile(
    r"""^[ \t]*(?:\[\[?[ \t]*["']?(?:tunnel|defaults)\b|["']?(?:tunnel|defaults)["']?[ \t]*[.=])""",
    re.MULTILINE,
)


def load_config(path: str | os.PathLike[str]) -> KeepaliveConfig:
    """Read ``path`` and parse it as TOML or Cisco IOS configuration, detected from the content.

    A file that cannot be read (missing, a directory, no permission, not UTF-8) or that is
    neither format raises :class:`ConfigError`.
    """
    name = os.fspath(path)
    return parse_config(read_config_text(name), name)


def read_config_text(path: str | os.PathLike[str]) -> str:
    """The text of the configuration file ``path`` (read once, at most
    :data:`MAX_FILE_BYTES`, a UTF-8 BOM dropped); :class:`ConfigError` when it cannot be
    read or is not UTF-8."""
    name = os.fspath(path)
    try:
        raw = read_text_file(name)
    except FileTooLarge as exc:
        raise ConfigError(f"cannot read: {exc}", path=name) from None
    except FileNotFoundError:
        raise ConfigError("cannot read: no such file", path=name) from None
    except IsADirectoryError:
        raise ConfigError("cannot read: is a directory", path=name) from None
    except PermissionError:
        reason = "is a directory" if os.path.isdir(name) else "permission denied"
        raise ConfigError(f"cannot read: {reason}", path=name) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", path=name) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"not UTF-8 text (invalid byte 0x{raw[exc.start]:02x})", path=name, line=line
        ) from None
    return text


def parse_config(text: str, name: str = "<config>") -> KeepaliveConfig:
    """Parse ``text`` as TOML or Cisco IOS configuration, detected from the content
    (:class:`ConfigError` when it is neither); ``name`` is the file named in messages."""
    # Parsing allocates many objects and no cycles: the cyclic collector's passes over
    # them made 50,000 tunnel blocks take twice as long.
    with cyclic_gc.paused():
        return _parse_detected(text, name)


class FileTooLarge(OSError):
    """A file :func:`read_text_file` refuses: too large, or not a regular file."""


def read_text_file(path: str) -> bytes:
    """The bytes of a regular file of at most :data:`MAX_FILE_BYTES`.

    FIFOs, devices and sockets are refused (``/dev/zero`` never ends, a FIFO without a
    writer blocks forever), as is a larger file: :class:`FileTooLarge` with a one-line
    reason. Other failures raise the usual :class:`OSError`.
    """
    # O_NONBLOCK: opening a FIFO nobody writes to must not block before it can be refused.
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(descriptor, "rb") as handle:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(21, "is a directory")
        if not stat.S_ISREG(mode):
            kind = (
                "a FIFO or pipe"
                if stat.S_ISFIFO(mode)
                else "a socket"
                if stat.S_ISSOCK(mode)
                else "a device"
            )
            raise FileTooLarge(f"{kind}, not a regular file (save it to a file first)")
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise FileTooLarge(f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    return data


def _parse_detected(text: str, name: str) -> KeepaliveConfig:
    """Pick TOML or IOS from the content of ``text``."""
    data: dict[str, Any] | None
    syntax_error: tomllib.TOMLDecodeError | None = None
    try:
        data = load_toml(text)
    except tomllib.TOMLDecodeError as exc:
        data, syntax_error = None, exc
    except TomlUnreadable as exc:
        raise ConfigError(str(exc), path=name) from None
    if data is not None and ("tunnel" in data or "defaults" in data):
        return _build_toml(data, text, _Context(name))
    if _IOS_INTERFACE_LINE.search(text):
        return parse_ios(text, name)
    if syntax_error is not None and _LOOKS_LIKE_TOML.search(text):
        raise _toml_syntax_error(syntax_error, name)
    raise ConfigError(_NEITHER, path=name)


# --------------------------------------------------------------------------------------------
# TOML
# --------------------------------------------------------------------------------------------

_DEFAULTS_KEYS = ("period", "retries")
_TUNNEL_KEYS = ("source", "destination", "key", "period", "retries", "keepalive")
_TOP_KEYS = ("defaults", "tunnel")
_TOML_HEADER = re.compile(r"""^[ \t]*(\[\[?)([^\[\]#]*?)\]\]?[ \t]*(?:#.*)?$""")


class _TomlLines:
    """Best-effort line numbers for TOML tables and keys (tomllib reports none)."""

    def __init__(self, text: str) -> None:
        self.lines = _split_lines(text)
        self.headers: list[tuple[int, str, bool]] = []  # (line, dotted name, is array)
        for number, line in enumerate(self.lines, 1):
            match = _TOML_HEADER.match(line)
            if match:
                table = re.sub(r"""[\s"']""", "", match.group(2))
                self.headers.append((number, table, match.group(1) == "[["))

    def tables(self, table: str, array: bool) -> list[int]:
        return [
            line for line, name, is_array in self.headers if name == table and is_array == array
        ]

    def key(self, table_line: int | None, key: str) -> int | None:
        """Line of ``key = ...`` in the table whose header is on ``table_line`` (None: root)."""
        start = table_line or 0
        later = [line for line, _, _ in self.headers if line > start]
        end = later[0] if later else len(self.lines) + 1
        pattern = re.compile(rf"""^[ \t]*["']?{re.escape(key)}["']?[ \t]*[=.]""")
        for number in range(start + 1, end):
            if pattern.match(self.lines[number - 1]):
                return number
        for number, name, _ in self.headers:  # a sub-table such as [tunnel.extra]
            if number > start and name.endswith(f".{key}"):
                return number
        return None


def _toml_syntax_error(exc: tomllib.TOMLDecodeError, name: str) -> ConfigError:
    message = str(exc)
    line: int | None = getattr(exc, "lineno", None)
    if line is None:
        match = re.search(r"\(at line (\d+), column \d+\)", message)
        line = int(match.group(1)) if match else None
    return ConfigError(f"TOML syntax error: {message}", path=name, line=line)


def parse_toml(text: str, name: str = "<config>") -> KeepaliveConfig:
    """Parse the TOML format (``[defaults]`` period/retries, ``[[tunnel]]`` tables).

    Unknown keys, missing or invalid addresses, out-of-range values, duplicate
    (source, destination, key) entries and TOML syntax errors raise :class:`ConfigError`.
    """
    try:
        data = load_toml(text)
    except tomllib.TOMLDecodeError as exc:
        raise _toml_syntax_error(exc, name) from None
    except TomlUnreadable as exc:
        raise ConfigError(str(exc), path=name) from None
    return _build_toml(data, text, _Context(name))


class TomlUnreadable(ValueError):
    """Well-formed TOML that tomllib cannot take: see the subclasses."""


class TomlTooDeep(TomlUnreadable):
    """TOML nested deeper than the parser's recursion allows (5,000 levels of ``[[[…]]]``)."""


class TomlNumberTooLong(TomlUnreadable):
    """A TOML integer of more digits than Python converts (``sys.get_int_max_str_digits``)."""


def load_toml(text: str) -> dict[str, Any]:
    """``tomllib.loads``; what it cannot take although well-formed as :class:`TomlUnreadable`."""
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise TomlTooDeep("TOML nested too deeply (arrays or tables inside each other)") from None
    except tomllib.TOMLDecodeError:
        raise
    except ValueError:  # int() of 100,000 digits: no period or retries count is that long
        raise TomlNumberTooLong(
            f"TOML number too long (more than {sys.get_int_max_str_digits()} digits)"
        ) from None


def _describe(value: object) -> str:
    return repr(value) if isinstance(value, str) else _one_line(str(value))


def _toml_period(value: object, what: str) -> float:
    """Validate a TOML period (seconds, int or float, 0-32767); ValueError text on failure."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} must be a number of seconds, got {_describe(value)}")
    if not math.isfinite(value) or not 0 <= value <= PERIOD_MAX:
        raise ValueError(f"{what} {_describe(value)} out of range 0-{PERIOD_MAX}")
    if 0 < value < PERIOD_MIN:
        raise ValueError(f"{what} {_describe(value)} too small (0, or at least {PERIOD_MIN:g} s)")
    return float(value)


def _toml_int(value: object, what: str, low: int, high: int) -> int:
    """Validate a TOML integer in ``low..high``; ValueError text on failure."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be an integer {low}-{high}, got {_describe(value)}")
    if not low <= value <= high:
        raise ValueError(f"{what} {value} out of range {low}-{high}")
    return value


def _toml_address(value: object, what: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string with an IP address, got {_describe(value)}")
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        raise ValueError(f"{what} {value!r} is not an IPv4 or IPv6 address") from None


def _check_keys(
    ctx: _Context, lines: _TomlLines, table: dict[str, Any], header: int | None, label: str
) -> None:
    allowed = {"root": _TOP_KEYS, "[defaults]": _DEFAULTS_KEYS}.get(label, _TUNNEL_KEYS)
    for key in table:
        if key not in allowed:
            where = "at top level" if label == "root" else f"in {label}"
            raise ctx.error(
                lines.key(header, key) or header or 1,
                f"unknown key {key!r} {where} (allowed: {', '.join(allowed)})",
            )


def _build_toml(data: dict[str, Any], text: str, ctx: _Context) -> KeepaliveConfig:
    lines = _TomlLines(text)
    _check_keys(ctx, lines, data, None, "root")

    default_period: float | None = None
    default_retries: int | None = None
    if "defaults" in data:
        defaults = data["defaults"]
        headers = lines.tables("defaults", array=False)
        header = headers[0] if headers else lines.key(None, "defaults") or 1
        if not isinstance(defaults, dict):
            raise ctx.error(header, "'defaults' must be a table ([defaults])")
        _check_keys(ctx, lines, defaults, header, "[defaults]")
        current = ""
        try:
            if "period" in defaults:
                current = "period"
                default_period = _toml_period(defaults["period"], "defaults: period")
            if "retries" in defaults:
                current = "retries"
                default_retries = _toml_int(
                    defaults["retries"], "defaults: retries", RETRIES_MIN, RETRIES_MAX
                )
        except ValueError as exc:
            raise ctx.error(lines.key(header, current) or header, str(exc)) from None

    entries = data.get("tunnel", [])
    tunnel_line = lines.key(None, "tunnel") or 1
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        single = lines.tables("tunnel", array=False)
        raise ctx.error(
            single[0] if single else tunnel_line, "'tunnel' must be an array of tables ([[tunnel]])"
        )
    headers = lines.tables("tunnel", array=True)
    if len(headers) != len(entries):
        headers = [tunnel_line] * len(entries)
    if not entries:
        ctx.warn(1, "no [[tunnel]] tables")

    tunnels: list[TunnelConfig] = []
    seen: dict[_LookupKey, str] = {}
    for index, (entry, header) in enumerate(zip(entries, headers, strict=True), 1):
        tunnel = _toml_tunnel(ctx, lines, entry, header, f"tunnel[{index}]", default_period)
        ident = (tunnel.source, tunnel.destination, tunnel.key)
        if ident in seen:
            key = "none" if tunnel.key is None else str(tunnel.key)
            raise ctx.error(
                header,
                f"{tunnel.name}: duplicate of {seen[ident]} (source {tunnel.source}, "
                f"destination {tunnel.destination}, key {key})",
            )
        seen[ident] = f"{tunnel.name} at {tunnel.origin}"
        tunnels.append(tunnel)
    return KeepaliveConfig(
        path=ctx.name,
        format="toml",
        default_period=default_period,
        default_retries=default_retries,
        tunnels=tuple(tunnels),
        warnings=tuple(ctx.warnings),
    )


def _toml_tunnel(
    ctx: _Context,
    lines: _TomlLines,
    entry: dict[str, Any],
    header: int,
    name: str,
    default_period: float | None,
) -> TunnelConfig:
    _check_keys(ctx, lines, entry, header, f"[[tunnel]] {name}")
    current = ""

    def fail(message: str) -> ConfigError:
        line = lines.key(header, current) if current else None
        return ctx.error(line or header, message)

    for required in ("source", "destination"):
        if required not in entry:
            raise fail(f"{name}: missing {required!r}")
    try:
        current = "source"
        source = _toml_address(entry["source"], f"{name}: source")
        current = "destination"
        destination = _toml_address(entry["destination"], f"{name}: destination")
        if source.version != destination.version:
            raise ValueError(
                f"{name}: source {source} (IPv{source.version}) and destination {destination} "
                f"(IPv{destination.version}) are of different address families"
            )
        key = period = retries = None
        if "key" in entry:
            current = "key"
            key = _toml_int(entry["key"], f"{name}: key", 0, KEY_MAX)
        if "period" in entry:
            current = "period"
            period = _toml_period(entry["period"], f"{name}: period")
        if "retries" in entry:
            current = "retries"
            retries = _toml_int(entry["retries"], f"{name}: retries", RETRIES_MIN, RETRIES_MAX)
        current = "keepalive"
        enabled = entry.get("keepalive", True)
        if not isinstance(enabled, bool):
            raise ValueError(f"{name}: keepalive must be true or false, got {_describe(enabled)}")
        if period == 0 and "keepalive" in entry and enabled:
            raise ValueError(f"{name}: keepalive = true contradicts period = 0 (keepalive off)")
    except ValueError as exc:
        raise fail(str(exc)) from None
    effective = period if period is not None else default_period
    return TunnelConfig(
        source=str(source),
        destination=str(destination),
        key=key,
        keepalive=enabled and effective != 0,
        period=period,
        retries=retries,
        name=name,
        origin=ctx.origin(header),
    )


# --------------------------------------------------------------------------------------------
# Cisco IOS running-config
# --------------------------------------------------------------------------------------------

_IfName = tuple[str, str]  # (lower-case alphabetic prefix, rest), e.g. ("loopback", "0")
_IFNAME = re.compile(r"([a-z][a-z_-]*?)([0-9].*)?")
_SUBIF_TYPES = {"point-to-point", "multipoint"}
_NON_COMMAND = re.compile(
    r"^(?:[\w.-]+(?:\([^)]*\))?[#>]"
    r"|building configuration|current configuration|last configuration change"
    r"|nvram config last updated)",
    re.IGNORECASE,
)
_BLOCK_END_WORDS = {
    "router",
    "line",
    "end",
    "version",
    "boot-start-marker",
    "boot-end-marker",
    "control-plane",
    "access-list",
    "route-map",
    "username",
    "aaa",
    "snmp-server",
}
_GLOBAL_IP_COMMANDS = {
    "route",
    "access-list",
    "prefix-list",
    "domain",
    "domain-name",
    "name-server",
    "cef",
    "routing",
    "unicast-routing",
    "forward-protocol",
    "http",
    "ssh",
}
_DOTTED_QUAD = re.compile(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+")
_DIGITS = re.compile(r"[0-9]+")


def _ifname(words: list[str]) -> _IfName:
    """Split an interface name (possibly written with spaces) for abbreviation matching."""
    joined = "".join(words).lower()
    match = _IFNAME.fullmatch(joined)
    if match is None:
        return ("", joined)
    return (match.group(1), match.group(2) or "")


def _same_interface(a: _IfName, b: _IfName) -> bool:
    """``Lo0`` == ``Loopback0`` == ``loopback 0``: equal suffixes, one prefix abbreviates."""
    if a[1] != b[1]:
        return False
    if not a[0] or not b[0]:
        return a[0] == b[0]
    return a[0].startswith(b[0]) or b[0].startswith(a[0])


def _is_tunnel_name(name: _IfName) -> bool:
    return len(name[0]) >= 2 and "tunnel".startswith(name[0]) and name[1] != ""


@dataclass
class _Block:
    """One ``interface`` block: header line, name and the lines that belong to it."""

    line: int
    display: str
    name: _IfName
    commands: list[tuple[int, list[str]]] = field(default_factory=list)

    def address(self, version: int) -> str | None:
        """First primary address of the given IP version (``secondary`` ignored)."""
        for _, words in self.commands:
            low = [w.lower() for w in words]
            if version == 4 and low[:2] == ["ip", "address"] and len(low) >= 3:
                if "secondary" in low[3:]:
                    continue
                found = _parse_interface_address(words[2], 4)
            elif version == 6 and low[:2] == ["ipv6", "address"] and len(low) >= 3:
                if {"link-local", "eui-64", "anycast"} & set(low[3:]) or "/" not in words[2]:
                    continue
                found = _parse_interface_address(words[2], 6)
            else:
                continue
            if found is not None:
                return found
        return None


def _parse_interface_address(text: str, version: int) -> str | None:
    try:
        address = ipaddress.ip_interface(text).ip
    except ValueError:
        return None
    return str(address) if address.version == version else None


@dataclass
class _Section:
    """The configuration of one router inside a (possibly concatenated) file."""

    hostname: str | None = None
    blocks: list[_Block] = field(default_factory=list)
    # Indexes that keep `find` from scanning every block (50,000 tunnels were quadratic):
    # (suffix, prefix) → position of the first block so named, and (suffix, every leading
    # part of a non-empty prefix) → position of the first block whose prefix starts so.
    _exact: dict[_IfName, int] = field(default_factory=dict)
    _leading: dict[_IfName, int] = field(default_factory=dict)

    def add(self, block: _Block) -> None:
        """Append an interface block."""
        position = len(self.blocks)
        self.blocks.append(block)
        prefix, suffix = block.name
        self._exact.setdefault((prefix, suffix), position)
        for end in range(1, len(prefix) + 1):
            self._leading.setdefault((prefix[:end], suffix), position)

    def find(self, name: _IfName) -> _Block | None:
        """The block `name` designates: the first of that exact name, else the first that
        :func:`_same_interface` matches (one abbreviates the other)."""
        exact = self._exact.get(name)
        if exact is not None:
            return self.blocks[exact]
        prefix, suffix = name
        if not prefix:
            return None  # an empty prefix matches only itself
        found = [self._leading.get((prefix, suffix))]  # blocks whose prefix extends `prefix`
        found += [self._exact.get((prefix[:end], suffix)) for end in range(1, len(prefix))]
        positions = [position for position in found if position is not None]
        return self.blocks[min(positions)] if positions else None


def _ends_block(words: list[str]) -> bool:
    low = [w.lower() for w in words[:2]]
    if low[0] in _BLOCK_END_WORDS:
        return True
    return len(low) > 1 and low[0] in ("ip", "ipv6") and low[1] in _GLOBAL_IP_COMMANDS


def _split_sections(text: str) -> list[_Section]:
    """Cut the text into routers and interface blocks (tolerant of missing indentation/``!``)."""
    sections = [_Section()]
    block: _Block | None = None
    header_indent = 0
    indented: bool | None = None
    for number, raw in enumerate(_split_lines(text), 1):
        stripped = raw.strip()
        if not stripped:
            continue
        if stripped.startswith("!"):
            block = None
            continue
        indent = len(raw) - len(raw.lstrip())
        words = stripped.split()
        first = words[0].lower()
        if first == "interface" and len(words) >= 2:
            name_words = words[1:]
            if len(name_words) > 1 and name_words[-1].lower() in _SUBIF_TYPES:
                name_words = name_words[:-1]
            name = _ifname(name_words)
            if sections[-1].find(name) is not None:
                sections.append(_Section())
            display = "".join(name_words)
            if _is_tunnel_name(name):
                display = "Tunnel" + name[1]
            block = _Block(line=number, display=display, name=name)
            sections[-1].add(block)
            header_indent, indented = indent, None
            continue
        if first == "hostname":
            block = None
            hostname = words[1] if len(words) > 1 else None
            if sections[-1].blocks or sections[-1].hostname is not None:
                sections.append(_Section(hostname=hostname))
            else:
                sections[-1].hostname = hostname
            continue
        if block is None:
            continue
        if _ends_block(words) or _NON_COMMAND.match(stripped):
            block = None
            continue
        if indented is None:
            indented = indent > header_indent
        if indented and indent <= header_indent:
            block = None
            continue
        block.commands.append((number, words))
    return sections


def parse_ios(text: str, name: str = "<config>") -> KeepaliveConfig:
    """Parse Cisco IOS running-config text (one or several routers) into GRE tunnels.

    Each point-to-point GRE tunnel with a ``tunnel destination`` address and a resolvable
    ``tunnel source`` becomes a :class:`TunnelConfig`; tunnels that cannot be used (other
    tunnel modes, no destination, hostnames, unknown source interfaces) are skipped with a
    warning. Out-of-range or non-numeric ``keepalive``/``tunnel key`` values raise
    :class:`ConfigError`.
    """
    ctx = _Context(name)
    tunnels: list[TunnelConfig] = []
    seen: dict[_LookupKey, TunnelConfig] = {}
    any_tunnel_block = False
    for section in _split_sections(text):
        for block in section.blocks:
            if not _is_tunnel_block(block):
                continue
            any_tunnel_block = True
            tunnel = _ios_tunnel(ctx, section, block)
            if tunnel is None:
                continue
            ident = (tunnel.source, tunnel.destination, tunnel.key)
            previous = seen.get(ident)
            if previous is None:
                seen[ident] = tunnel
                tunnels.append(tunnel)
                continue
            settings = (tunnel.keepalive, tunnel.period, tunnel.retries)
            if settings != (previous.keepalive, previous.period, previous.retries):
                raise ctx.error(
                    block.line,
                    f"{tunnel.name}: same source {tunnel.source}, destination "
                    f"{tunnel.destination} and key as {previous.name} at {previous.origin} "
                    "but a different keepalive",
                )
            ctx.warn(
                block.line,
                f"{tunnel.name}: duplicate of {previous.name} at {previous.origin}; ignored",
            )
    if not any_tunnel_block:
        ctx.warn(1, "no interface Tunnel blocks found")
    return KeepaliveConfig(
        path=name,
        format="ios",
        default_period=None,
        default_retries=None,
        tunnels=tuple(tunnels),
        warnings=tuple(ctx.warnings),
    )


def _is_tunnel_block(block: _Block) -> bool:
    if _is_tunnel_name(block.name):
        return True
    return any(
        len(words) >= 2
        and words[0].lower() == "tunnel"
        and words[1].lower() in ("source", "destination", "mode", "key")
        for _, words in block.commands
    )


def _ios_number(ctx: _Context, line: int, token: str, what: str, low: int, high: int) -> int:
    if not _DIGITS.fullmatch(token):
        raise ctx.error(line, f"{what} {token!r} is not an integer {low}-{high}")
    digits = token.lstrip("0") or "0"  # int() of 100,000 digits is an error of its own
    if len(digits) > len(str(high)) or not low <= int(digits) <= high:
        shown = token if len(token) <= 20 else f"{token[:8]}…({len(token)} digits)"
        raise ctx.error(line, f"{what} {shown} out of range {low}-{high}")
    return int(digits)


def _ios_key(ctx: _Context, line: int, token: str) -> int:
    if _DOTTED_QUAD.fullmatch(token):
        try:
            return int(ipaddress.IPv4Address(token))
        except ValueError:
            raise ctx.error(line, f"tunnel key {token!r} is not a valid dotted quad") from None
    if not _DIGITS.fullmatch(token):
        raise ctx.error(
            line, f"tunnel key {token!r} is not an integer 0-{KEY_MAX} or a dotted quad"
        )
    return _ios_number(ctx, line, token, "tunnel key", 0, KEY_MAX)


def _ios_keepalive(
    ctx: _Context, line: int, args: list[str]
) -> tuple[bool, float | None, int | None]:
    if len(args) > 2:
        raise ctx.error(line, f"keepalive: unexpected argument {args[2]!r}")
    period = DEFAULT_PERIOD
    retries = DEFAULT_RETRIES
    if args:
        period = float(_ios_number(ctx, line, args[0], "keepalive period", 0, PERIOD_MAX))
    if len(args) > 1:
        retries = _ios_number(ctx, line, args[1], "keepalive retries", RETRIES_MIN, RETRIES_MAX)
    return (period != 0, period, retries)


def _ios_tunnel(ctx: _Context, section: _Section, block: _Block) -> TunnelConfig | None:
    """Build the tunnel of one interface block, or warn and return None when unusable."""
    name = block.display
    source: tuple[int, list[str]] | None = None
    destination: tuple[int, str] | None = None
    mode: tuple[int, list[str]] | None = None
    key: int | None = None
    keepalive: tuple[bool, float | None, int | None] = (False, None, None)
    for line, words in block.commands:
        low = [w.lower() for w in words]
        if low[0] == "tunnel" and len(low) >= 3:
            if low[1] == "source":
                source = (line, words[2:])
            elif low[1] == "destination":
                destination = (line, words[2])
            elif low[1] == "key":
                key = _ios_key(ctx, line, words[2])
            elif low[1] == "mode":
                mode = (line, low[2:])
        elif low[0] == "keepalive":
            keepalive = _ios_keepalive(ctx, line, words[1:])
        elif low[:2] == ["no", "keepalive"]:
            keepalive = (False, None, None)
        elif low[:3] == ["no", "tunnel", "key"]:
            key = None

    multipoint = False
    family: int | None = None
    if mode is not None:
        mode_line, mode_words = mode
        if mode_words[:2] == ["gre", "multipoint"]:
            multipoint = True
        elif mode_words in (["gre"], ["gre", "ip"]):
            family = 4
        elif mode_words == ["gre", "ipv6"]:
            family = 6
        else:
            ctx.warn(
                mode_line,
                f"{name}: tunnel mode {' '.join(mode_words)} is not point-to-point GRE; "
                "tunnel skipped",
            )
            return None

    if destination is None:
        if multipoint:
            ctx.warn(
                block.line,
                f"{name}: multipoint GRE (mGRE/DMVPN) tunnel without tunnel destination; "
                "keepalives are not supported on mGRE, tunnel skipped",
            )
        else:
            ctx.warn(block.line, f"{name}: no tunnel destination; tunnel skipped")
        return None
    dest_line, dest_text = destination
    try:
        dest_address = _address(dest_text)
    except ValueError:
        ctx.warn(
            dest_line,
            f"{name}: tunnel destination {dest_text!r} is not an IP address "
            "(hostnames cannot be resolved); tunnel skipped",
        )
        return None
    if mode is not None and family is not None and family != dest_address.version:
        ctx.warn(
            mode[0],
            f"{name}: tunnel mode {' '.join(mode[1])} does not match the "
            f"IPv{dest_address.version} tunnel destination {dest_address}",
        )

    if source is None:
        ctx.warn(block.line, f"{name}: no tunnel source; tunnel skipped")
        return None
    src_line, src_words = source
    source_address = _resolve_source(ctx, section, name, src_line, src_words, dest_address.version)
    if source_address is None:
        return None

    if multipoint:
        ctx.warn(
            mode[0] if mode else block.line,
            f"{name}: keepalives are not supported on multipoint GRE (mGRE) tunnels",
        )
    enabled, period, retries = keepalive
    return TunnelConfig(
        source=source_address,
        destination=str(dest_address),
        key=key,
        keepalive=enabled,
        period=period,
        retries=retries,
        name=name,
        origin=ctx.origin(block.line),
    )


def _resolve_source(
    ctx: _Context, section: _Section, name: str, line: int, words: list[str], version: int
) -> str | None:
    """Address of ``tunnel source`` (an address or an interface of the same router)."""
    try:
        address = _address(words[0])
    except ValueError:
        pass
    else:
        if address.version != version:
            ctx.warn(
                line,
                f"{name}: tunnel source {address} and destination are of different "
                "address families; tunnel skipped",
            )
            return None
        return str(address)
    interface = "".join(words)
    block = section.find(_ifname(words))
    if block is None:
        ctx.warn(
            line,
            f"{name}: tunnel source interface {interface} not found in this router's "
            "configuration; tunnel skipped",
        )
        return None
    resolved = block.address(version)
    if resolved is None:
        ctx.warn(
            line,
            f"{name}: tunnel source interface {interface} has no IPv{version} address "
            f"(ip{'v6' if version == 6 else ''} address line); tunnel skipped",
        )
    return resolved
