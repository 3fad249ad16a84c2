"""What live frame sources hand to their consumers (watch, TUI, probe)."""

from __future__ import annotations

import threading
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from analyzer.read.capture import RawFrame


@dataclass(frozen=True, slots=True)
class InterfaceNotice:
    """Something happened to the capture itself (interface down, re-opened, …)."""

    time: float
    message: str  # one line, e.g. "eth0 went down; re-opening" / "eth0 re-opened"


@dataclass(frozen=True, slots=True)
class HandleStats:
    """libpcap's counters (``pcap_stats``) for one capture handle, summed over re-opens."""

    received: int  # ps_recv: packets that passed the filter (on Linux, dropped ones included)
    dropped: int  # ps_drop: passed the filter but dropped, the capture buffer being full
    interface_dropped: int  # ps_ifdrop: dropped by the interface (all its traffic, not ours only)

    @property
    def lost(self) -> int:
        """Packets this handle may have missed: kernel and interface drops."""
        return self.dropped + self.interface_dropped

    def to_json(self) -> dict[str, int]:
        """A flat JSON object."""
        return {
            "received": self.received,
            "dropped": self.dropped,
            "interface_dropped": self.interface_dropped,
        }


NO_STATS = HandleStats(0, 0, 0)


@dataclass(frozen=True, slots=True)
class DataFlow:
    """GRE data packets counted in one tunnel direction (outer source → destination, key)."""

    src: str
    dst: str
    key: int | None
    packets: int


@dataclass(frozen=True, slots=True)
class CaptureStats:
    """What a live capture has seen and lost so far."""

    time: float
    keepalive: HandleStats  # the keepalive handle (the only one with data not counted)
    data: HandleStats | None  # the data-counting handle; None when data is not counted
    data_packets: int = 0  # GRE data packets counted on the data handle
    flows: tuple[DataFlow, ...] = ()
    data_unrecorded: int = 0  # counted, but not handed on as DataRecords (consumer too slow)

    @property
    def data_lower_bound(self) -> bool:
        """True when the data handle lost packets (or some were not handed on as records):
        data and blackhole figures are then at least what they say."""
        return self.data is not None and (self.data.lost > 0 or self.data_unrecorded > 0)

    @property
    def keepalive_lost(self) -> int:
        """Packets the keepalive handle may have missed (kernel and interface drops)."""
        return self.keepalive.lost


# A tunnel direction: outer source, outer destination, GRE key.
FlowKey = tuple[str, str, int | None]


@dataclass(frozen=True, slots=True)
class DataRecords:
    """GRE data packets counted since the previous records, per tunnel direction: their
    capture times and frame numbers (what blackhole figures are computed from)."""

    flows: dict[FlowKey, tuple[array[float], array[int]]]
    packets: int


# A live source: called with a stop event, yields frames (and notices, now and then its
# counters, and the data records a consumer asked for) until it is set.
SourceItem = RawFrame | InterfaceNotice | CaptureStats | DataRecords
FrameSource = Callable[[threading.Event], Iterator[SourceItem]]
