"""The streaming pass: classify every frame, pair keepalives and keep what the timelines need.

Memory grows with the number of tunnels and keepalives; data packets are kept as their
times and frame numbers only (or counted, with ``--no-data``)."""

from __future__ import annotations

import socket
from array import array
from collections.abc import Iterable
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from analyzer.keepalive.model import (
    DataFrames,
    DataTimes,
    FrameError,
    SourceSummary,
    Traits,
)
from analyzer.keepalive.pairing import Pairer
from analyzer.keepalive.segments import Backwards, backwards_steps
from analyzer.read.capture import RawFrame
from analyzer.read.fastpath import (
    KEEPALIVE_HEAD,
    KEEPALIVE_SHAPE,
    RECORD_FRAME,
    RECORD_INNER_KEY,
    RECORD_KEY,
    RECORD_METADATA,
    RECORD_REPLY,
    RECORD_REQUEST,
    Batch,
)

if TYPE_CHECKING:  # analyzer.read.packet loads dpkt: only when a frame is decoded in Python
    from analyzer.read.packet import InnerHeader

MAX_ERRORS_LISTED = 100


Flow = tuple[str, str, int | None]  # (outer source, outer destination, GRE key)
# (inner IP ID = outer − 1, outer GRE protocol, inner IP version, inner TTL, payload length,
# outer TTL, inner GRE key) of a request
_TraitSignature = tuple[bool, int | None, int, int, int, int, int | None]
_Context = tuple[Any, ...]  # what the fast path's records of one shape say (Collector._context)
MAX_CONTEXTS = 65536  # shapes remembered (a few per tunnel, unless the capture is hostile)


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
        # Data flows whose packets went back in time in frame order (a merged file), with
        # how: a step back shorter than the keepalive period shows nowhere else.
        self.data_backwards: dict[Flow, Backwards] = {}
        self._traits: dict[Flow, Traits] = {}
        # Requests counted by what they show of their sender (_TraitSignature), per flow:
        # one count per request instead of seven, turned into Traits when they are read.
        self._signatures: dict[Flow, dict[_TraitSignature, int]] = {}
        # Flows whose requests all look alike share one Traits (most tunnels of a capture
        # do; a Traits is about 1.2 KB): by the set of signature counts that made it. A
        # shared one is copied before counts are added to it (live sources count again).
        self._shared_traits: dict[frozenset[tuple[_TraitSignature, int]], Traits] = {}
        self._shared_ids: set[int] = set()
        # Address text by its bytes (records of the fast path), one string per address.
        self._names: tuple[dict[bytes, str], dict[bytes, str]] = ({}, {})
        # What the fast path's records of each shape say (see _context).
        self._contexts: dict[bytes, _Context] = {}

    @property
    def traits(self) -> dict[Flow, Traits]:
        """What each flow's requests show of their sender, counted so far (by flow)."""
        if self._signatures:
            self._count_signatures()
        return self._traits

    def _count_signatures(self) -> None:
        all_traits = self._traits
        shared = self._shared_traits
        for flow, signatures in self._signatures.items():
            traits = all_traits.get(flow)
            if traits is None:
                made_of = frozenset(signatures.items())
                found = shared.get(made_of)
                if found is not None:
                    all_traits[flow] = found
                    continue
                traits = all_traits[flow] = shared[made_of] = Traits()
                self._shared_ids.add(id(traits))
            elif id(traits) in self._shared_ids:
                traits = all_traits[flow] = copy_traits(traits)
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
        self._contexts.clear()  # they hold the signature counts just cleared

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
        from analyzer.read.packet import FrameKind, decode_frame

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
            if decoded.cut:
                source.cut_requests += 1
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
        frames it left to Python, each in the place of a record of kind RECORD_FRAME.

        A record's shape (all but its frame, time and IP IDs) is looked up whole: what it
        says is worked out once per shape (:meth:`_context`), nearly always once per flow.
        """
        source = self.source
        pending = iter(frames)
        contexts, context_of = self._contexts, self._context
        pairer = self.pairer
        # A pairer of another kind (the ring's, which records the calls) gets every
        # keepalive through add_request/add_reply, by its fields.
        shaped = type(pairer) is Pairer
        add_request, add_reply = pairer.add_shaped_request, pairer.add_tunnel_reply
        keepalives = 0
        for number, time, ip_id, inner_ip_id, shape in KEEPALIVE_HEAD.iter_unpack(records):
            context = contexts.get(shape) or context_of(shape, shaped)
            kind = context[0]
            if kind == RECORD_REPLY:
                keepalives += 1
                _kind, src, dst, key, ttl, length, outer4, tunnel = context
                if tunnel is not None:
                    add_reply(
                        number, time, src, dst, key, ip_id if outer4 else None, ttl, length, tunnel
                    )
                else:
                    pairer.add_reply(
                        number, time, src, dst, key, ip_id if outer4 else None, ttl, length
                    )
            elif kind == RECORD_REQUEST:
                keepalives += 1
                _kind, request_shape, fields, signatures, cisco, plain, both4, inner4 = context
                ident = inner_ip_id if inner4 else None
                if request_shape is not None:
                    add_request(number, time, ident, request_shape)
                else:
                    from analyzer.read.packet import InnerHeader

                    src, dst, key, version, length, *inner = fields
                    header = InnerHeader(inner[0], inner[1], inner[2], ident, *inner[3:])
                    pairer.add_request(number, time, src, dst, key, version, header, length)
                # _note_traits: the request's signature, one of the two its shape can give
                signature = cisco if both4 and (ip_id - inner_ip_id) & 0xFFFF == 1 else plain
                signatures[signature] = signatures.get(signature, 0) + 1
            else:
                frame_number, frame_time, linktype, data, _wire = next(pending)
                self.classify_frame(frame_number, frame_time, linktype, data)
        source.gre_packets += keepalives
        source.keepalive_packets += keepalives

    def _context(self, shape: bytes, shaped: bool) -> _Context:
        """What the records of one shape (the KEEPALIVE_SHAPE bytes) say, remembered:
        (RECORD_FRAME,) for a frame left to Python; (RECORD_REPLY, source, destination, GRE
        key, TTL, payload length, outer IPv4, tunnel or None); (RECORD_REQUEST, its
        :class:`RequestShape` or None, its fields, the flow's signature counts, its signature
        with and without a Cisco IP ID, whether both IP IDs are there, whether the inner
        one is). `shaped`: the pairer takes shapes (tunnels, request shapes)."""
        contexts = self._contexts
        if len(contexts) >= MAX_CONTEXTS:
            contexts.clear()
        (
            kind,
            version,
            ttl,
            flags,
            gre_protocol,
            sgt,
            key,
            payload_length,
            inner_version,
            inner_ttl,
            inner_key,
            src_raw,
            dst_raw,
            inner_src_raw,
            inner_dst_raw,
        ) = KEEPALIVE_SHAPE.unpack(shape)
        if kind != RECORD_REQUEST and kind != RECORD_REPLY:
            found: _Context = (RECORD_FRAME,)
            contexts[shape] = found
            return found
        names4, names6 = self._names
        names = names4 if version == 4 else names6
        src = names.get(src_raw) or _name(names, src_raw, version)
        dst = names.get(dst_raw) or _name(names, dst_raw, version)
        outer_key = key if flags & RECORD_KEY else None
        if kind == RECORD_REPLY:
            tunnel = self.pairer.tunnel_of(src, dst, outer_key) if shaped else None
            found = (RECORD_REPLY, src, dst, outer_key, ttl, payload_length, version == 4, tunnel)
            contexts[shape] = found
            return found
        if inner_version == version and inner_src_raw == dst_raw and inner_dst_raw == src_raw:
            inner_src, inner_dst = dst, src  # the usual: the peer sends it back
        else:
            names = names4 if inner_version == 4 else names6
            inner_src = names.get(inner_src_raw) or _name(names, inner_src_raw, inner_version)
            inner_dst = names.get(inner_dst_raw) or _name(names, inner_dst_raw, inner_version)
        metadata = bool(flags & RECORD_METADATA)
        inner_key_value = inner_key if flags & RECORD_INNER_KEY else None
        fields = (
            src,
            dst,
            outer_key,
            version,
            payload_length,
            inner_src,
            inner_dst,
            inner_version,
            inner_ttl,
            inner_key_value,
            metadata,
            sgt if metadata else None,
        )
        flow = (src, dst, outer_key)
        signatures = self._signatures.get(flow)
        if signatures is None:
            signatures = self._signatures[flow] = {}
        # (inner IP ID = outer − 1, GRE protocol, inner version, inner TTL, payload length,
        # outer TTL, inner key): _TraitSignature
        rest = (gre_protocol, inner_version, inner_ttl, payload_length, ttl, inner_key_value)
        both4 = version == 4 and inner_version == 4
        found = (
            RECORD_REQUEST,
            self.pairer.request_shape(*fields) if shaped else None,
            fields,
            signatures,
            (True, *rest),
            (False, *rest),
            both4,
            inner_version == 4,
        )
        contexts[shape] = found
        return found

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
        self._contexts.clear()  # the records are in: what their shapes said is not needed
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
            steps = backwards_steps(sorted(zip(frame_column, column, strict=True)))
            if steps is not None:
                self.data_backwards[flow] = steps
            order = sorted(range(len(column)), key=lambda i: (column[i], frame_column[i]))
            self.data_times[flow] = array("d", (column[i] for i in order))
            self.data_frames[flow] = array("q", (frame_column[i] for i in order))
        self._known_sorted = set(self.data_times)


def copy_traits(traits: Traits) -> Traits:
    """A Traits of its own, with the same counts (to count on in one that may be shared
    with other flows)."""
    return Traits(
        requests=traits.requests,
        cisco_ip_ids=traits.cisco_ip_ids,
        outer_protocols=dict(traits.outer_protocols),
        inner_versions=dict(traits.inner_versions),
        inner_ttls=dict(traits.inner_ttls),
        inner_keys=dict(traits.inner_keys),
        payload_lengths=dict(traits.payload_lengths),
        outer_ttls=dict(traits.outer_ttls),
    )


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
