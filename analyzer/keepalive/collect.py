"""The streaming pass: classify every frame, pair keepalives and keep what the timelines need.

Memory grows with the number of tunnels and keepalives; data packets are kept as their
times and frame numbers only (or counted, with ``--no-data``)."""

from __future__ import annotations

import socket
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
from analyzer.read.fastpath import (
    KEEPALIVE_RECORD,
    RECORD_INNER_KEY,
    RECORD_KEY,
    RECORD_METADATA,
    RECORD_REPLY,
    RECORD_REQUEST,
    Batch,
)
from analyzer.read.packet import FrameKind, InnerHeader, decode_frame

if TYPE_CHECKING:
    pass

MAX_ERRORS_LISTED = 100


Flow = tuple[str, str, int | None]  # (outer source, outer destination, GRE key)
# (inner IP ID = outer − 1, outer GRE protocol, inner IP version, inner TTL, payload length,
# outer TTL, inner GRE key) of a request
_TraitSignature = tuple[bool, int | None, int, int, int, int, int | None]


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
        self._traits: dict[Flow, Traits] = {}
        # Requests counted by what they show of their sender (_TraitSignature), per flow:
        # one count per request instead of seven, turned into Traits when they are read.
        self._signatures: dict[Flow, dict[_TraitSignature, int]] = {}
        # Address text by its bytes (records of the fast path), one string per address.
        self._names: tuple[dict[bytes, str], dict[bytes, str]] = ({}, {})

    @property
    def traits(self) -> dict[Flow, Traits]:
        """What each flow's requests show of their sender, counted so far (by flow)."""
        if self._signatures:
            self._count_signatures()
        return self._traits

    def _count_signatures(self) -> None:
        all_traits = self._traits
        for flow, signatures in self._signatures.items():
            traits = all_traits.get(flow)
            if traits is None:
                traits = all_traits[flow] = Traits()
            for (cisco, protocol, version, inner_ttl, length, ttl, key), n in signatures.items():
                traits.requests += n
                if cisco:
                    traits.cisco_ip_ids += n
                if protocol is not None:
                    counts = traits.outer_protocols
                    counts[protocol] = counts.get(protocol, 0) + n
                counts = traits.inner_versions
                counts[version] = counts.get(version, 0) + n
                counts = traits.inner_ttls
                counts[inner_ttl] = counts.get(inner_ttl, 0) + n
                counts = traits.payload_lengths
                counts[length] = counts.get(length, 0) + n
                counts = traits.outer_ttls
                counts[ttl] = counts.get(ttl, 0) + n
                keys = traits.inner_keys
                keys[key] = keys.get(key, 0) + n
        self._signatures.clear()

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
            inner = decoded.inner
            assert inner is not None  # a request always has its inner header
            src, dst, key = decoded.src, decoded.dst, decoded.key
            self.pairer.add_request(
                number, time, src, dst, key, decoded.ip_version, inner, decoded.payload_length
            )
            self._note_traits(
                (src, dst, key),
                inner,
                decoded.ip_id,
                decoded.gre_protocol,
                decoded.payload_length,
                decoded.ttl,
            )
        else:
            self.pairer.reply(number, time, decoded)

    def add_records(self, frames: Batch, records: bytes) -> None:
        """One batch of the fast path: the keepalives its C loop decoded, as
        :data:`~analyzer.read.fastpath.KEEPALIVE_RECORD` records in frame order, and the
        frames it left to Python, each in the place of a record of kind RECORD_FRAME."""
        source = self.source
        names4, names6 = self._names
        pending = iter(frames)
        add_request, add_reply = self.pairer.add_request, self.pairer.add_reply
        all_signatures = self._signatures
        for (
            number,
            time,
            kind,
            version,
            ttl,
            flags,
            ip_id,
            gre_protocol,
            key,
            payload_length,
            inner_version,
            inner_ttl,
            inner_ip_id,
            sgt,
            inner_key,
            src_raw,
            dst_raw,
            inner_src_raw,
            inner_dst_raw,
        ) in KEEPALIVE_RECORD.iter_unpack(records):
            if kind != RECORD_REQUEST and kind != RECORD_REPLY:
                frame_number, frame_time, linktype, data, _wire = next(pending)
                self.classify_frame(frame_number, frame_time, linktype, data)
                continue
            source.gre_packets += 1
            source.keepalive_packets += 1
            names = names4 if version == 4 else names6
            src = names.get(src_raw) or _name(names, src_raw, version)
            dst = names.get(dst_raw) or _name(names, dst_raw, version)
            outer_key = key if flags & RECORD_KEY else None
            outer_id = ip_id if version == 4 else None
            if kind == RECORD_REPLY:
                add_reply(number, time, src, dst, outer_key, outer_id, ttl, payload_length)
                continue
            if inner_version == version and inner_src_raw == dst_raw and inner_dst_raw == src_raw:
                inner_src, inner_dst = dst, src  # the usual: the peer sends it back
            else:
                names = names4 if inner_version == 4 else names6
                inner_src = names.get(inner_src_raw) or _name(names, inner_src_raw, inner_version)
                inner_dst = names.get(inner_dst_raw) or _name(names, inner_dst_raw, inner_version)
            inner = InnerHeader(
                inner_src,
                inner_dst,
                inner_version,
                inner_ip_id if inner_version == 4 else None,
                inner_ttl,
                inner_key if flags & RECORD_INNER_KEY else None,
                bool(flags & RECORD_METADATA),
                sgt if flags & RECORD_METADATA else None,
            )
            add_request(number, time, src, dst, outer_key, version, inner, payload_length)
            # _note_traits, inline (once per request)
            flow = (src, dst, outer_key)
            signatures = all_signatures.get(flow)
            if signatures is None:
                signatures = all_signatures[flow] = {}
            signature = (
                inner.ip_id is not None
                and outer_id is not None
                and (outer_id - inner.ip_id) & 0xFFFF == 1,
                gre_protocol,
                inner_version,
                inner_ttl,
                payload_length,
                ttl,
                inner.key,
            )
            signatures[signature] = signatures.get(signature, 0) + 1

    def add_data_flow(
        self, flow: Flow, times: DataTimes, frames: DataFrames, *, in_time_order: bool
    ) -> None:
        """Data packets of one flow recorded outside Python (the fast path), in frame order;
        the caller counts them into ``source.gre_packets``."""
        self.data_times[flow] = times
        self.data_frames[flow] = frames
        if in_time_order:
            self._known_sorted.add(flow)

    def _note_traits(
        self,
        flow: Flow,
        inner: InnerHeader,
        ip_id: int | None,
        gre_protocol: int | None,
        payload_length: int,
        ttl: int,
    ) -> None:
        """Count what a request shows of its sender (outer IP ID, GRE protocol type, ...)."""
        signatures = self._signatures.get(flow)
        if signatures is None:
            signatures = self._signatures[flow] = {}
        signature = (
            inner.ip_id is not None and ip_id is not None and (ip_id - inner.ip_id) & 0xFFFF == 1,
            gre_protocol,
            inner.ip_version,
            inner.ttl,
            payload_length,
            ttl,
            inner.key,
        )
        signatures[signature] = signatures.get(signature, 0) + 1

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


def _name(names: dict[bytes, str], raw: bytes, version: int) -> str:
    """The text of an address of a fast-path record (IPv4: its first 4 bytes), remembered."""
    if version == 4:
        text = socket.inet_ntop(socket.AF_INET, raw[:4])
    else:
        text = socket.inet_ntop(socket.AF_INET6, raw)
    names[raw] = text
    return text


def collect_frames(
    frames: Iterable[RawFrame], files: list[str], *, include_data: bool = True
) -> Collector:
    """The streaming pass over one capture (see :func:`analyze_collected`)."""
    collector = Collector(files, include_data=include_data)
    for raw in frames:
        collector.add(raw)
    collector.sort_data()
    return collector
