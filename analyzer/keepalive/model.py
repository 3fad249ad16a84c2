"""Typed results of an analysis: what every output (text, JSON, CSV, TUI, Lua tests) reads."""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from analyzer.keepalive.state import LineState, Transition

# Times (sorted) and frame numbers of one direction's tunnel data packets: an array in
# memory, or a view of the fast path's memory-mapped spill file (analyzer.read.fastpath).
DataTimes = Sequence[float]
DataFrames = Sequence[int]


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


# Not frozen, though nothing changes one once made (hashable all the same): a hub's capture
# makes hundreds of thousands, and a frozen dataclass takes five times as long to build.
@dataclass(slots=True, unsafe_hash=True)
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
    # An extrapolated row after the line went down stands for the rest of the gap: `ticks`
    # ticks, the first at `first_time` (None: `time`), the last at `time`.
    ticks: int = 1
    first_time: float | None = None


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


@dataclass(frozen=True, slots=True)
class Span:
    """A duration in seconds known within bounds (like :class:`Blackhole`, `min` ≤ `max`)."""

    min: float
    max: float


@dataclass(slots=True)
class Traits:
    """What an originator's requests look like: the raw material of diagnoses and of
    vendor fingerprints. Each mapping counts requests per value."""

    requests: int = 0
    cisco_ip_ids: int = 0  # requests whose inner IP ID is the outer IP ID − 1 (IOS)
    outer_protocols: dict[int, int] = field(default_factory=dict)  # outer GRE protocol type
    inner_versions: dict[int, int] = field(default_factory=dict)
    inner_ttls: dict[int, int] = field(default_factory=dict)
    inner_keys: dict[int | None, int] = field(default_factory=dict)
    payload_lengths: dict[int, int] = field(default_factory=dict)
    outer_ttls: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RetriesInference:
    """Retries read from when the originator's data stopped after its keepalives failed."""

    retries: int | None  # None: no episode showed the line going down
    confidence: float  # 0..1
    lower_bound: int | None  # episodes that did not take the line down prove retries ≥ this
    episodes: int  # failure episodes that gave a value
    evidence: tuple[int, ...]  # frames: the last data packet and the send that stopped it
    reason: str


@dataclass(frozen=True, slots=True)
class Burst:
    """Sends of one originator far closer together than its period (a stalled endpoint
    releasing queued keepalives): each stands for a tick, none is a period of its own."""

    time: float  # the first send
    frame: int | None
    sends: int
    span: float  # seconds from the first send to the last


@dataclass(frozen=True, slots=True)
class WhatIf:
    """The same capture replayed under another keepalive setting (see analyzer.diagnose.rules)."""

    setting: str  # as the user wrote it, normalised ("keepalive 2 3")
    period: float
    retries: int
    hold_time: float | None
    sent: int  # ticks of the replay
    transitions: tuple[Transition, ...]
    down_seconds: float
    blackholed_packets: Blackhole
    blackhole_seconds: Span
    estimated: bool  # packets include an estimate for stretches the capture has no data for
    baseline_packets: Blackhole  # the same model under the setting the analysis used
    baseline_seconds: Span
    baseline_transitions: int


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
    # What the diagnoses add; every field has a default.
    observed_period: float | None = None  # inferred from the send interval, whatever was used
    retries_confidence: float | None = None  # set when retries_source is "inferred"
    retries_inferred: RetriesInference | None = None
    blackhole_seconds: Span = Span(0.0, 0.0)
    traits: Traits | None = None
    data_times: DataTimes = field(default_factory=lambda: array("d"))  # sorted
    data_frames: DataFrames = field(default_factory=lambda: array("q"))  # same order
    profile: str | None = None
    profile_source: str | None = None  # "cli", "auto" or None (no --profile)
    profile_evidence: list[str] = field(default_factory=list)
    hold_time: float | None = None  # time-based profiles (juniper, openbsd)
    what_if: WhatIf | None = None
    capture: str | None = None  # two-vantage analysis: the file this originator was read from
    # Of the intervals between its sends, how many agree with observed_period (a whole
    # multiple of it), out of how many.
    period_agreeing: int = 0
    period_intervals: int = 0
    bursts: list[Burst] = field(default_factory=list)
    # A capture with gaps (not running): the (start, end) of each stretch this originator's
    # timeline covers; it is never extrapolated from one to the next. Empty without gaps.
    segments: list[tuple[float, float]] = field(default_factory=list)


class Severity(StrEnum):
    """How much a diagnosis matters."""

    ERROR = "error"  # the tunnel failed or cannot work
    WARNING = "warning"  # a risk or a misconfiguration
    INFO = "info"  # worth knowing


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """Why a tunnel's keepalives failed, or a risk in how they are set up
    (:mod:`analyzer.diagnose.rules`)."""

    code: str  # leg-down, one-sided, late-detection, …
    severity: Severity
    message: str  # one paragraph for a person
    time: float | None  # when it began; None for a property of the whole capture
    evidence: tuple[int, ...]  # capture frames that show it
    originator: str | None = None
    details: dict[str, object] = field(default_factory=dict)  # code-specific figures

    def as_dict(self) -> dict[str, object]:
        """The diagnosis as the JSON contract spells it."""
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "time": self.time,
            "evidence": list(self.evidence),
            "originator": self.originator,
            "details": self.details,
        }


@dataclass(frozen=True, slots=True)
class DataDirection:
    """The GRE data packets one endpoint sent into a tunnel, as the capture shows them."""

    source: str
    destination: str
    packets: int
    first: float | None  # times of the first and last packet
    last: float | None


@dataclass(slots=True)
class TunnelResult:
    """One GRE tunnel (outer endpoint pair and key) with keepalive activity."""

    endpoints: tuple[str, str]  # sorted
    key: int | None
    vantage: str | None
    vantage_reason: str | None
    originators: list[OriginatorResult]
    data_packets: int
    diagnoses: list[Diagnosis] = field(default_factory=list)
    # GRE data packets seen per sending endpoint: sorted times and their frames
    data_times: dict[str, DataTimes] = field(default_factory=dict)
    data_frames: dict[str, DataFrames] = field(default_factory=dict)
    merge: dict[str, object] | None = None  # two-vantage analysis (analyzer.pipeline.merge)
    # Captured at both ends: the two-vantage merge judges each leg exactly.
    legs_seen_from_both_ends: bool = False
    directions: list[DataDirection] = field(default_factory=list)  # data each way


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
    # requests cut short (snaplen) inside their inner GRE header, taken as requests by
    # their inner IP header: said in `warnings`
    cut_requests: int = 0
    start: float | None = None
    end: float | None = None
    precision: int = 6
    warnings: list[str] = field(default_factory=list)
    errors: list[FrameError] = field(default_factory=list)
    data_recorded: bool = True  # False with --no-data: data packets counted, times not kept
    # (last time before, first time after) of every stretch the capture was not running
    gaps: list[tuple[float, float]] = field(default_factory=list)


@dataclass(slots=True)
class Analysis:
    """The result of analysing one capture."""

    source: SourceSummary
    tunnels: list[TunnelResult]

    def each_tunnel(self) -> Iterator[TunnelResult]:
        """The tunnels in order, for a writer that needs one at a time."""
        return iter(self.tunnels)

    def any_keepalives(self) -> bool:
        """True when some tunnel has a keepalive originator."""
        return any(tunnel.originators for tunnel in self.tunnels)

    @property
    def any_down(self) -> bool:
        """True when some originator's line protocol went down during the capture."""
        return any(map(_went_down, self.tunnels))


def _went_down(tunnel: TunnelResult) -> bool:
    return any(
        transition.state is LineState.DOWN
        for originator in tunnel.originators
        for transition in originator.transitions
    )


class StreamedAnalysis(Analysis):
    """An analysis whose tunnels are made one at a time as a writer asks for them
    (:meth:`each_tunnel`) and let go once written: memory holds what the capture showed and
    one tunnel's results, not every tunnel's (200,000 idle tunnels: 2.5 KB each).

    `make` makes the tunnels anew each time it is called. Reading :attr:`tunnels` makes
    them all and keeps them, as in any other analysis.
    """

    __slots__ = ("_down", "_keepalives", "_make")

    def __init__(
        self,
        source: SourceSummary,
        make: Callable[[], Iterator[TunnelResult]],
        *,
        keepalives: bool,
    ) -> None:
        """`make`: a fresh iterator over the tunnels, in order, on every call;
        `keepalives`: whether some tunnel will have a keepalive originator."""
        self.source = source
        self._make = make
        self._keepalives = keepalives
        self._down: bool | None = None  # any_down, once every tunnel went by

    def __getattr__(self, name: str) -> list[TunnelResult]:
        # Only for an attribute not set: the tunnels slot until it is first read.
        if name != "tunnels":
            raise AttributeError(name)
        self.tunnels = list(self._make())
        return self.tunnels

    def _kept(self) -> list[TunnelResult] | None:
        try:  # the slot, without making the tunnels (__getattr__)
            kept: list[TunnelResult] = object.__getattribute__(self, "tunnels")
            return kept
        except AttributeError:
            return None

    def each_tunnel(self) -> Iterator[TunnelResult]:
        """The tunnels in order, each made as it is asked for and not kept (unless
        :attr:`tunnels` was read already)."""
        kept = self._kept()
        if kept is not None:
            yield from kept
            return
        down = False
        for tunnel in self._make():
            down = down or _went_down(tunnel)
            yield tunnel
        self._down = down

    def any_keepalives(self) -> bool:
        """True when some tunnel has a keepalive originator (known before making any)."""
        return self._keepalives

    @property
    def any_down(self) -> bool:
        """True when some originator's line protocol went down during the capture (known
        without making the tunnels again once :meth:`each_tunnel` went through them)."""
        if self._down is None:
            self._down = any(map(_went_down, self.each_tunnel()))
        return self._down
