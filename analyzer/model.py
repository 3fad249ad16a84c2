"""Typed results of an analysis: what every output (text, JSON, CSV, TUI, Lua tests) reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from analyzer.state import LineState, Transition


class KeepaliveRole(StrEnum):
    """Role of a row in an originator's keepalive timeline."""

    SENT = "sent"  # a request seen in the capture
    EXTRAPOLATED = "extrapolated"  # a tick the capture does not show, inferred from the period
    RETURNED = "returned"  # a reply addressed to the originator


class ValueSource(StrEnum):
    """Where a period or retries figure came from."""

    CONFIG = "config"
    CLI = "cli"
    INFERRED = "inferred"
    DEFAULT = "default"


@dataclass(frozen=True, slots=True)
class KeepaliveEvent:
    """One row of an originator's timeline: the counter and line state after the event."""

    time: float
    frame: int | None
    role: KeepaliveRole
    ident: int | None  # inner IP ID of the request (= IP ID of the reply); None for IPv6
    counter: int
    line_state: LineState
    partner_frame: int | None = None  # sent: the reply's frame; returned: the request's frame
    rtt_ms: float | None = None  # on both rows of an answered pair
    reply_ttl: int | None = None  # TTL of the reply (on both rows of an answered pair)
    ticks: int = 1  # extrapolated rows of a long gap stand for this many ticks, the last at `time`


@dataclass(frozen=True, slots=True)
class RttStats:
    """Round-trip times of answered keepalives, in milliseconds."""

    min: float
    median: float
    max: float


@dataclass(frozen=True, slots=True)
class Blackhole:
    """Tunnel data packets sent while keepalives were failing and the line was still up.

    The failure began between the last answered send and the first unanswered one, so
    `min` counts from the first unanswered send and `max` from the last answered one.
    """

    min: int
    max: int


@dataclass(slots=True)
class OriginatorResult:
    """Everything about one keepalive-originating endpoint of a tunnel."""

    address: str
    peer: str
    period: float
    period_source: ValueSource
    retries: int
    retries_source: ValueSource
    sent: int
    returned: int
    unanswered: int
    extrapolated: int
    duplicates: int
    rtt_ms: RttStats | None
    transitions: list[Transition]
    final_state: LineState
    final_counter: int
    down_seconds: float
    blackholed_packets: Blackhole
    data_packets: int  # GRE data packets this endpoint sent into the tunnel
    inner_addresses: tuple[str, str] | None  # (src, dst) of the inner header when not mirrored
    variants: list[str]
    events: list[KeepaliveEvent]
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class TunnelResult:
    """One GRE tunnel (outer endpoint pair and key) with keepalive activity."""

    endpoints: tuple[str, str]  # sorted
    key: int | None
    vantage: str | None
    vantage_reason: str | None
    originators: list[OriginatorResult]
    data_packets: int
    diagnoses: list[dict[str, object]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FrameError:
    """A frame that could not be decoded, for the user to open in Wireshark."""

    frame: int
    reason: str


@dataclass(slots=True)
class SourceSummary:
    """What was read."""

    files: list[str]
    packets: int = 0
    gre_packets: int = 0
    keepalive_packets: int = 0
    malformed: int = 0
    checksum_errors: int = 0
    start: float | None = None
    end: float | None = None
    precision: int = 6
    warnings: list[str] = field(default_factory=list)
    errors: list[FrameError] = field(default_factory=list)


@dataclass(slots=True)
class Analysis:
    """The result of analysing one capture."""

    source: SourceSummary
    tunnels: list[TunnelResult]

    @property
    def any_down(self) -> bool:
        """True when some originator's line protocol went down during the capture."""
        return any(
            transition.state is LineState.DOWN
            for tunnel in self.tunnels
            for originator in tunnel.originators
            for transition in originator.transitions
        )
