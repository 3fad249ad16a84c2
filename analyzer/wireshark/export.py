"""`gre-keepalive export-lua`: write the Wireshark post-dissector as one Lua file.

The Lua file (template: ``analyzer/wireshark/template.lua``) reads the capture file Wireshark
has open, decodes every frame with the packet rules of :mod:`analyzer.read.packet` and
re-implements, once over the whole capture, the pairing, period inference and timelines of
:mod:`analyzer.keepalive` (docs/lua.md), so every front end shows the same in any order.
:func:`generate_lua` bakes in the per-tunnel settings of a ``--config`` file and the
preference defaults (``--period`` / ``--retries``); the output is deterministic.
``lua/gre_keepalive.lua`` in the repository is the file generated with no options.

This module is imported whenever the command line is built: it stays light, and the
configuration parser is only imported when the command runs.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import sys
from importlib import resources
from typing import TYPE_CHECKING

from analyzer import __version__
from analyzer.keepalive.state import DEFAULT_RETRIES, MAX_PERIOD, MAX_RETRIES
from analyzer.options import (
    EXIT_OK,
    UsageError,
    fail,
    period_option,
    read_config,
    whole_retries_option,
    write_stdout,
)
from analyzer.report.escape import printable

if TYPE_CHECKING:
    from analyzer.config import KeepaliveConfig

TEMPLATE = "template.lua"
PLUGIN_FILE = "gre_keepalive.lua"

HELP = """\
Write a Wireshark Lua post-dissector (Wireshark 3.6 or later) that shows, on every GRE
keepalive frame, what `gre-keepalive analyze` computes for it: request or reply, the
originator and peer, the frame of the reply / request and the round-trip time, the
originator's keepalive counter and line protocol after the frame, and expert infos where
a keepalive goes unanswered, where the line protocol goes down and where it comes back up.
Filter with e.g.  grekeepalive.line_state == "down"  or  grekeepalive.transition.

The file is self-contained: per-tunnel periods and retries from --config are baked in as
a table; --period and --retries become the defaults of the plugin's preferences
(grekeepalive.period, grekeepalive.retries), which apply to every originator the table
does not name. Without them the period is inferred from the send interval and the
retries default to 3, as in `gre-keepalive analyze`.
"""

EPILOG = """\
examples:
  gre-keepalive export-lua --install
  gre-keepalive export-lua --config router-a.cfg -o gre_keepalive.lua
  tshark -X lua_script:gre_keepalive.lua -r wan.pcap -Y 'grekeepalive.line_state == "down"'
  tshark -r wan.pcap -q -z grekeepalive,tunnels     # with the plugin installed

--install writes gre_keepalive.lua into Wireshark's personal Lua plugins folder (the one
`tshark -G folders` names, else ~/.local/lib/wireshark/plugins/ on Linux and macOS,
%APPDATA%\\Wireshark\\plugins\\ on Windows), creating it, and prints where; restart
Wireshark or use Analyze > Reload Lua Plugins. Keep one copy: a second one loaded (say
with -X lua_script:) is reported and ignored.

exit status: 0 written; 2 unreadable configuration, unwritable output or bad usage.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `export-lua` subcommand."""
    parser = subparsers.add_parser(
        "export-lua",
        help="write a Wireshark Lua plugin that shows keepalive pairing, counter and line protocol",
        description=HELP,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="where to write the Lua file ('-' or none: standard output); missing "
        "folders are created",
    )
    target.add_argument(
        "--install",
        action="store_true",
        help="write gre_keepalive.lua into Wireshark's personal Lua plugins folder "
        "(created if missing) and print its path",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="router configuration (Cisco IOS running-config or TOML, as for analyze) whose "
        "per-tunnel keepalive period and retries are baked into the plugin",
    )
    parser.add_argument(
        "--period",
        type=period_option,
        metavar="S",
        help="default of the plugin's period preference: the period of every originator "
        "not in --config (default: inferred from the send interval, else 10)",
    )
    parser.add_argument(
        "--retries",
        type=whole_retries_option,
        metavar="N",
        help="default of the plugin's retries preference: the retries of every originator "
        "not in --config (default 3)",
    )
    parser.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    try:
        config = read_config(args.config)
    except UsageError as exc:
        return fail(str(exc))
    text = generate_lua(config, args.period, args.retries)
    output = args.output
    if args.install:
        output = os.path.join(personal_plugins_folder(), PLUGIN_FILE)
    if output and output != "-":
        try:
            folder = os.path.dirname(os.path.abspath(output))
            os.makedirs(folder, exist_ok=True)
            with open(output, "w", encoding="utf-8", newline="\n") as stream:
                stream.write(text)
        except OSError as exc:
            return fail(f"{output}: cannot write ({exc.strerror or exc})")
        if args.install:
            print(f"installed the Wireshark plugin: {printable(output)}")
            print("restart Wireshark (or Analyze > Reload Lua Plugins) to load it")
    else:
        write_stdout(text)
    return EXIT_OK


def personal_plugins_folder() -> str:
    """Wireshark's personal Lua plugins folder: what `tshark -G folders` says, else the
    default of Wireshark 3.6+ on this system."""
    import shutil
    import subprocess

    tshark = shutil.which("tshark")
    if tshark is not None:
        try:
            listing = subprocess.run(
                [tshark, "-G", "folders"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            ).stdout
        except (OSError, subprocess.SubprocessError):
            listing = ""
        for line in listing.splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "Personal Lua Plugins" and value.strip():
                return value.strip()
    if sys.platform == "win32":
        return os.path.join(
            os.environ.get("APPDATA", os.path.expanduser("~")), "Wireshark", "plugins"
        )
    return os.path.join(os.path.expanduser("~"), ".local", "lib", "wireshark", "plugins")


# --- generation ---------------------------------------------------------------------------


def _lua_string(text: str) -> str:
    """A Lua string literal (double-quoted; bytes outside printable ASCII escaped)."""
    out = ['"']
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\{byte:03d}")
    out.append('"')
    return "".join(out)


def _lua_number(value: float) -> str:
    """A Lua number literal that reads back as exactly `value`."""
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    if float(value).is_integer() and abs(value) < 2**53:
        return f"{int(value)}.0" if isinstance(value, float) else str(int(value))
    return repr(float(value))


def _plain_number(value: float) -> str:
    """`value` as a person writes it: 5, 2.5 (and exactly, unlike the "g" format)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _comment(text: str) -> str:
    """Text safe inside a `--` comment line (one line, printable ASCII)."""
    line = " ".join(text.split())
    return "".join(c if 0x20 <= ord(c) < 0x7F else "?" for c in line)


def _address(text: str) -> str:
    """The address as the plugin writes it, which is how the analyzer decodes it
    (inet_ntop): RFC 5952 text, except that an IPv4-mapped (::ffff:a.b.c.d) or
    IPv4-compatible (::a.b.c.d) IPv6 address ends in dotted form, where Python's
    ipaddress writes hex groups (::ffff:c000:201)."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return text
    if isinstance(address, ipaddress.IPv6Address):
        packed = address.packed
        words = [int.from_bytes(packed[i : i + 2], "big") for i in range(0, 16, 2)]
        if words[:5] == [0] * 5 and (words[5] == 0xFFFF or (words[5] == 0 and words[6] != 0)):
            prefix = "::ffff:" if words[5] == 0xFFFF else "::"
            return prefix + str(ipaddress.IPv4Address(packed[12:]))
    return str(address)


def _tunnel_rows(config: KeepaliveConfig) -> list[str]:
    rows: dict[str, str] = {}
    for tunnel in config.tunnels:
        source, destination = _address(tunnel.source), _address(tunnel.destination)
        key = "none" if tunnel.key is None else str(tunnel.key)
        lookup = f"{source} {destination} {key}"
        if lookup in rows:  # the first entry wins, as in KeepaliveConfig.lookup
            continue
        fields = [f"keepalive = {'true' if tunnel.keepalive else 'false'}"]
        if tunnel.period is not None:
            fields.append(f"period = {_lua_number(tunnel.period)}")
        if tunnel.retries is not None:
            fields.append(f"retries = {tunnel.retries}")
        path, _, line = tunnel.origin.rpartition(":")  # FILE:LINE, FILE as given
        where = f"{os.path.basename(path)}:{line}" if path else tunnel.origin
        fields.append(f"where = {_lua_string(f'{where} {tunnel.name}')}")
        rows[lookup] = f"    [{_lua_string(lookup)}] = {{ {', '.join(fields)} }},"
    return [rows[k] for k in sorted(rows)]


def _settings_comment(
    config: KeepaliveConfig | None, period: float | None, retries: int | None
) -> list[str]:
    from analyzer.keepalive.wording import counted

    lines: list[str] = []
    if config is None:
        lines.append("--   no --config: no per-tunnel table")
    else:
        name = os.path.basename(config.path)
        lines.append(
            f"--   --config {_comment(name)} ({config.format}): "
            f"{counted(len(config.tunnels), 'tunnel')} in the table below"
        )
        if config.default_period is not None or config.default_retries is not None:
            lines.append(
                "--   configuration defaults: period "
                + ("-" if config.default_period is None else _plain_number(config.default_period))
                + ", retries "
                + ("-" if config.default_retries is None else str(config.default_retries))
            )
    lines.append(
        "--   --period "
        + (_plain_number(period) if period is not None else "not given (inferred from sends)")
    )
    lines.append(
        "--   --retries "
        + (str(retries) if retries is not None else f"not given ({DEFAULT_RETRIES})")
    )
    return lines


def _template() -> str:
    return resources.files("analyzer.wireshark").joinpath(TEMPLATE).read_text(encoding="utf-8")


def generate_lua(config: KeepaliveConfig | None, period: float | None, retries: int | None) -> str:
    """The Lua post-dissector with `config`'s tunnels and the preference defaults baked in.

    `period` and `retries` (the command line's --period/--retries) become the defaults of
    the plugin's preferences; without them the configuration file's ``[defaults]`` are
    used, else the period is inferred and retries are 3. Deterministic: the same inputs
    always give the same text.
    """
    if period is not None and not 0 < period <= MAX_PERIOD:
        raise ValueError(f"keepalive period {period:g} out of range 1-{MAX_PERIOD} seconds")
    if retries is not None and not 1 <= retries <= MAX_RETRIES:
        raise ValueError(f"keepalive retries {retries} out of range 1-{MAX_RETRIES}")
    # A [defaults] period of 0 (keepalive off) is no period (as in resolve_settings).
    file_period = config.default_period if config is not None and config.default_period else None
    file_retries = config.default_retries if config is not None else None

    # The preferences stand for --period/--retries and default to them, else to the
    # configuration's [defaults] (what applies to originators the table does not name).
    if period is not None:
        pref_period, period_origin = period, '"cli"'
    elif file_period is not None:
        pref_period, period_origin = file_period, '"config"'
    else:
        pref_period, period_origin = 0.0, "nil"
    if retries is not None:
        pref_retries, retries_origin = retries, '"cli"'
    elif file_retries is not None:
        pref_retries, retries_origin = file_retries, '"config"'
    else:
        pref_retries, retries_origin = DEFAULT_RETRIES, '"default"'

    rows = _tunnel_rows(config) if config is not None else []
    values = {
        "@@VERSION@@": _lua_string(__version__),
        "@@VERSION_TEXT@@": _comment(__version__),
        "@@SETTINGS@@": "\n".join(_settings_comment(config, period, retries)),
        "@@CONFIG_DEFAULT_PERIOD@@": "nil" if file_period is None else _lua_number(file_period),
        "@@CONFIG_DEFAULT_RETRIES@@": str(file_retries) if file_retries is not None else "nil",
        "@@CONFIG_TUNNELS@@": "\n".join(rows) if rows else "    -- (none)",
        "@@PREF_PERIOD_DEFAULT@@": _lua_string(_plain_number(pref_period)),
        "@@PREF_PERIOD_ORIGIN@@": period_origin,
        "@@PREF_RETRIES_DEFAULT@@": str(pref_retries),
        "@@PREF_RETRIES_ORIGIN@@": retries_origin,
    }
    text = _template()
    for placeholder, value in values.items():
        if placeholder not in text:
            raise RuntimeError(f"{TEMPLATE}: placeholder {placeholder} missing")
        text = text.replace(placeholder, value)
    return text
