"""Two network namespaces joined by a veth pair, for live-capture and probe tests.

Only documentation addresses are used (192.0.2.0/24 on the link), and nothing is routed
out of the namespaces. Tests that need this call :func:`veth_pair` and get a visible skip
where namespaces cannot be created (not root, no iproute2).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

A_ADDRESS = "192.0.2.1"
B_ADDRESS = "192.0.2.2"
PREFIX = 24


@dataclass(frozen=True)
class VethPair:
    """Namespace `ns_a` (interface `if_a`, A_ADDRESS) ↔ `ns_b` (`if_b`, B_ADDRESS)."""

    ns_a: str
    ns_b: str
    if_a: str
    if_b: str
    address_a: str = A_ADDRESS
    address_b: str = B_ADDRESS

    def run(
        self, namespace: str, command: Sequence[str], **kwargs: object
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside a namespace (checked, text output)."""
        return subprocess.run(  # type: ignore[call-overload, no-any-return]
            ["ip", "netns", "exec", namespace, *command],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
            **kwargs,
        )

    def popen(
        self, namespace: str, command: Sequence[str], **kwargs: object
    ) -> subprocess.Popen[bytes]:
        """Start a command inside a namespace."""
        return subprocess.Popen(["ip", "netns", "exec", namespace, *command], **kwargs)  # type: ignore[call-overload, no-any-return]

    def set_link(self, namespace: str, interface: str, up: bool) -> None:
        """Bring one end of the veth down or up (cuts the path both ways)."""
        self.run(namespace, ["ip", "link", "set", interface, "up" if up else "down"])


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def namespaces_unavailable() -> str | None:
    """Why namespaces cannot be used here, or None."""
    if shutil.which("ip") is None:
        return "iproute2 ('ip') is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    probe = f"gkt-{uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        ["ip", "netns", "add", probe], capture_output=True, text=True, timeout=30
    )
    if result.returncode != 0:
        return f"ip netns add failed: {result.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=30)
    return None


@contextmanager
def veth_pair() -> Iterator[VethPair]:
    """Create the pair (skip the test visibly where impossible); tear it down afterwards."""
    reason = namespaces_unavailable()
    if reason is not None:
        pytest.skip(f"network namespaces unavailable: {reason}")
    tag = uuid.uuid4().hex[:6]
    pair = VethPair(f"gka-{tag}", f"gkb-{tag}", f"vka{tag}", f"vkb{tag}")
    try:
        _ip("netns", "add", pair.ns_a)
        _ip("netns", "add", pair.ns_b)
        _ip("link", "add", pair.if_a, "type", "veth", "peer", "name", pair.if_b)
        _ip("link", "set", pair.if_a, "netns", pair.ns_a)
        _ip("link", "set", pair.if_b, "netns", pair.ns_b)
        for namespace, interface, address in (
            (pair.ns_a, pair.if_a, pair.address_a),
            (pair.ns_b, pair.if_b, pair.address_b),
        ):
            pair.run(namespace, ["ip", "addr", "add", f"{address}/{PREFIX}", "dev", interface])
            pair.run(namespace, ["ip", "link", "set", interface, "up"])
            pair.run(namespace, ["ip", "link", "set", "lo", "up"])
        yield pair
    finally:
        for namespace in (pair.ns_a, pair.ns_b):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30)
