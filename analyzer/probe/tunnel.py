"""The tunnels a probe terminates, as the engine, the metrics and the command see them."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=4096)
def normalise(address: str) -> str:
    """Canonical text of an IP address (as the decoder and the tracker write it)."""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address


@dataclass(frozen=True, slots=True)
class Tunnel:
    """One GRE tunnel this host terminates."""

    local: str
    remote: str
    key: int | None
    period: float | None  # None: this tunnel only reflects the peer's keepalives
    retries: int
    name: str
    origin: str  # "command line" or FILE:LINE of its configuration

    @property
    def originates(self) -> bool:
        """Whether this host sends keepalives on the tunnel."""
        return self.period is not None

    @property
    def family(self) -> int:
        """IP version of the outer header."""
        return 6 if ":" in self.local else 4

    def describe(self) -> dict[str, Any]:
        """The tunnel as JSON."""
        return {
            "name": self.name,
            "origin": self.origin,
            "local": self.local,
            "remote": self.remote,
            "key": self.key,
            "originate": self.originates,
            "period": self.period,
            "retries": self.retries if self.originates else None,
        }
