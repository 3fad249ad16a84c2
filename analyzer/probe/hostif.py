"""This host's interfaces, for ``tunnel source IFNAME`` in an IOS configuration.

On a router ``tunnel source GigabitEthernet0/0`` names one of its own interfaces, and the
configuration parser resolves it from that router's ``interface`` blocks. A probe running
on a Linux host with ``tunnel source eth0`` means the host's interface, which the file does
not describe: such lines are resolved here, before the file is parsed, to the interface's
first address of the tunnel destination's family (IPv4 through ``SIOCGIFADDR``, IPv6 from
``/proc/net/if_inet6``, global scope only; stdlib, no netlink library needed for this).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import re
import socket
import struct
from collections.abc import Callable
from pathlib import Path

SIOCGIFADDR = 0x8915
IF_INET6 = Path("/proc/net/if_inet6")
_SOURCE = re.compile(r"^(?P<lead>[ \t]*tunnel[ \t]+source[ \t]+)(?P<name>\S+)[ \t]*$", re.I)
_DESTINATION = re.compile(r"^[ \t]*tunnel[ \t]+destination[ \t]+(?P<address>\S+)", re.I)
_INTERFACE = re.compile(r"^[ \t]*interface[ \t]+(?P<name>.+?)[ \t]*$", re.I)

Lookup = Callable[[str, int], str | None]


def interface_address(name: str, family: int) -> str | None:
    """The first address of IP version `family` on this host's interface `name`, or None."""
    if family == 4:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                request = struct.pack("256s", name.encode()[:15])
                answer = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, request)
            except OSError:
                return None
        return socket.inet_ntoa(answer[20:24])
    with contextlib.suppress(OSError):
        for line in IF_INET6.read_text().splitlines():
            fields = line.split()
            # address, ifindex, prefix length, scope (0 = global), flags, name
            if len(fields) == 6 and fields[5] == name and fields[3] == "00":
                return str(ipaddress.IPv6Address(bytes.fromhex(fields[0])))
    return None


def interface_exists(name: str) -> bool:
    """True when this host has an interface called `name`."""
    try:
        socket.if_nametoindex(name)
    except (OSError, ValueError):
        return False
    return True


def resolve_interface_sources(
    text: str, lookup: Lookup = interface_address, exists: Callable[[str], bool] = interface_exists
) -> tuple[str, list[str]]:
    """IOS text with each ``tunnel source NAME`` naming a host interface (and no
    ``interface NAME`` block of the file) replaced by that interface's address; notes (also
    for a host interface without an address of the destination's family)."""
    lines = text.splitlines(keepends=True)
    declared = {m.group("name").lower() for line in lines if (m := _INTERFACE.match(line))}
    blocks: list[tuple[int, int]] = []
    start = 0
    for number, line in enumerate(lines):
        if _INTERFACE.match(line) and number > start:
            blocks.append((start, number))
            start = number
    blocks.append((start, len(lines)))
    notes: list[str] = []
    for first, end in blocks:
        family = None
        for line in lines[first:end]:
            found = _DESTINATION.match(line)
            if found:
                with contextlib.suppress(ValueError):
                    family = ipaddress.ip_address(found.group("address")).version
        if family is None:
            continue
        for number in range(first, end):
            source = _SOURCE.match(lines[number].rstrip("\r\n"))
            if source is None:
                continue
            name = source.group("name")
            with contextlib.suppress(ValueError):
                ipaddress.ip_address(name)
                continue
            if name.lower() in declared:
                continue  # the file's own interface block answers
            address = lookup(name, family)
            if address is None:
                # the parser then warns that the file has no such interface
                if exists(name):
                    scope = "" if family == 4 else "global "
                    notes.append(
                        f"line {number + 1}: tunnel source {name}: this host's interface "
                        f"{name} has no {scope}IPv{family} address"
                    )
                continue
            ending = lines[number][len(lines[number].rstrip("\r\n")) :]
            lines[number] = f"{source.group('lead')}{address}{ending}"
            notes.append(f"line {number + 1}: tunnel source {name} is {address} on this host")
    return "".join(lines), notes
