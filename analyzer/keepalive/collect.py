"""The streaming pass: classify every frame, pair keepalives and keep what the timelines need.

Memory grows with the number of tunnels and keepalives; data packets are kept as their
times and frame numbers only (or counted, with ``--no-data``)."""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from itertools import pairwise
from typing import TYPE_CHECKING

from analyzer.keepalive.model import (
    DataFrames,
    DataTimes,
    FrameError,
    SourceSummary,
    Traits,
)
from analyzer.keepalive.pairing import Pairer
from analyzer.read.capture import RawFrame
from analyzer.read.packet import Decoded, FrameKind, decode_frame

if TYPE_CHECKING:
    pass

MAX_ERRORS_LISTED = 100


Flow = tuple[str, str, int | None]  # (outer source, outer destination, GRE key)


class Collector:
    """The streaming pass: classify, pair, and remember only what the analysis needs.

    Memory grows with the number of tunnels and keepalives. Data packets cost 16 bytes
    each (their time and frame number, for blackhole accounting) unless the fast path
    keeps them in its spill file (:meth:`add_data_flow`), or nothing with
    ``include_data=False`` (--no-data: counted, times not kept).
    """

    def __init__(self, files: list[str], *, include_data: bool = True) -> None:
        self.source = SourceSummary(files=files, data_recorded=include_data)
        self.pairer = Pairer()
        self.data_times: dict[Flow, DataTimes] = {}
        self.data_frames: dict[Flow, DataFrames] = {}
        self._appended: dict[Flow, tuple[array[float], array[int]]] = {}
        self._known_sorted: set[Flow] = set()
        self.traits: dict[Flow, Traits] = {}

    def add(self, raw: RawFrame) -> None:
        """Count and classify one frame (the pure-Python reader's path)."""
        self.count(raw.time)
        self.classify(raw)

    def count(self, time: float) -> None:
        """Count a frame of the capture and widen its time span."""
        source = self.source
        source.packets += 1
        if source.start is None or time < source.start:
            source.start = time
        if source.end is None or time > source.end:
            source.end = time

    def classify(self, raw: RawFrame) -> None:
        """Decode one frame (already counted) and keep what the analysis needs of it."""
        self.classify_frame(raw.number, raw.time, raw.linktype, raw.data)

    def classify_frame(self, number: int, time: float, linktype: int, data: bytes) -> None:
        """:meth:`classify` for a frame given by its fields (the fast path's batches)."""
        source = self.source
        decoded = decode_frame(linktype, data)
        kind = decoded.kind
        if kind is FrameKind.OTHER:
            return
        if kind is FrameKind.MALFORMED:
            source.malformed += 1
            if len(source.errors) < MAX_ERRORS_LISTED:
                source.errors.append(FrameError(number, decoded.reason))
            return
        source.gre_packets += 1
        if decoded.checksum_ok is False:
            source.checksum_errors += 1
        if kind is FrameKind.DATA:
            if source.data_recorded:
                flow = (decoded.src, decoded.dst, decoded.key)
                columns = self._appended.get(flow)
                if columns is None:
                    columns = self._appended[flow] = (array("d"), array("q"))
                columns[0].append(time)
                columns[1].append(number)
            return
        source.keepalive_packets += 1
        if kind is FrameKind.REQUEST:
            self.pairer.request(number, time, decoded)
            self._note_traits(decoded)
        else:
            self.pairer.reply(number, time, decoded)

    def add_data_flow(
        self, flow: Flow, times: DataTimes, frames: DataFrames, *, in_time_order: bool
    ) -> None:
        """Data packets of one flow recorded outside Python (the fast path), in frame order;
        the caller counts them into ``source.gre_packets``."""
        self.data_times[flow] = times
        self.data_frames[flow] = frames
        if in_time_order:
            self._known_sorted.add(flow)

    def _note_traits(self, decoded: Decoded) -> None:
        inner = decoded.inner
        if inner is None:
            return
        flow = (decoded.src, decoded.dst, decoded.key)
        traits = self.traits.get(flow)
        if traits is None:
            traits = self.traits[flow] = Traits()
        traits.requests += 1
        if (
            inner.ip_id is not None
            and decoded.ip_id is not None
            and (decoded.ip_id - inner.ip_id) & 0xFFFF == 1
        ):
            traits.cisco_ip_ids += 1
        for counts, value in (
            (traits.outer_protocols, decoded.gre_protocol),
            (traits.inner_versions, inner.ip_version),
            (traits.inner_ttls, inner.ttl),
            (traits.payload_lengths, decoded.payload_length),
            (traits.outer_ttls, decoded.ttl),
        ):
            if value is not None:
                counts[value] = counts.get(value, 0) + 1
        traits.inner_keys[inner.key] = traits.inner_keys.get(inner.key, 0) + 1

    def sort_data(self) -> None:
        """Finish the data columns: merge what was decoded in Python with what the fast path
        counted (by frame number, as one reader would have seen them), then put each flow in
        time order (captures are nearly always in order already)."""
        for flow, (times, frames) in self._appended.items():
            if flow in self.data_times:
                both = sorted(
                    [
                        *zip(self.data_frames[flow], self.data_times[flow], strict=True),
                        *zip(frames, times, strict=True),
                    ]
                )
                frames = array("q", (f for f, _t in both))
                times = array("d", (t for _f, t in both))
                self._known_sorted.discard(flow)
            self.data_times[flow] = times
            self.data_frames[flow] = frames
        self._appended.clear()
        for flow, column in self.data_times.items():
            if flow in self._known_sorted or not any(b < a for a, b in pairwise(column)):
                continue
            frame_column = self.data_frames[flow]
            order = sorted(range(len(column)), key=lambda i: (column[i], frame_column[i]))
            self.data_times[flow] = array("d", (column[i] for i in order))
            self.data_frames[flow] = array("q", (frame_column[i] for i in order))
        self._known_sorted = set(self.data_times)


def collect_frames(
    frames: Iterable[RawFrame], files: list[str], *, include_data: bool = True
) -> Collector:
    """The streaming pass over one capture (see :func:`analyze_collected`)."""
    collector = Collector(files, include_data=include_data)
    for raw in frames:
        collector.add(raw)
    collector.sort_data()
    return collector
