"""The fast path of `analyze`: read a capture file through libpcap at BPF speed.

libpcap (the system's, else the copy bundled with pcapy-ng) reads the file; a BPF program
compiled from :func:`analyzer.bpf.keepalive_filter` for the file's link type picks the
keepalive-shaped frames, which alone are decoded in Python (by :mod:`analyzer.packet`).
The C hot loop (:mod:`analyzer._fastscan`) counts every other frame and records the
time and frame number of each GRE data packet per flow in a temporary file that is then
memory-mapped, so memory does not grow with the number of data packets.

:func:`collect` falls back to the pure-Python reader (:mod:`analyzer.capture`) wherever
libpcap cannot give the same answer: gzip, stdin, a file being followed, timestamps
libpcap would round, a file libpcap stops on part-way. The result is the same either
way, byte for byte (tests/test_fastpath.py proves it on every capture we have).
"""

from __future__ import annotations

import glob
import importlib
import importlib.util
import mmap
import os
import socket
import struct
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType

from analyzer.analysis import Collector, collect_frames
from analyzer.bpf import keepalive_filter, linktype_from_dlt
from analyzer.capture import (
    ORDINARY_CAPLEN,
    CaptureReader,
    RawFrame,
    open_capture,
    truncation_message,
)

# `--reader` choices.
READER_AUTO = "auto"
READER_LIBPCAP = "libpcap"
READER_PYTHON = "python"
READERS = (READER_AUTO, READER_LIBPCAP, READER_PYTHON)

Progress = Callable[[int], None]  # called with the number of bytes read so far


class FastPathUnavailable(Exception):
    """libpcap cannot read this input as the pure-Python reader would; the message says why.

    ``damaged``: libpcap stopped on a damaged part of the file (the pure-Python reader's
    warnings then say what is wrong with it).
    """

    def __init__(self, message: str, *, damaged: bool = False) -> None:
        super().__init__(message)
        self.damaged = damaged


@dataclass(slots=True)
class Collected:
    """A finished streaming pass and how it was read."""

    collector: Collector
    reader: str  # READER_LIBPCAP or READER_PYTHON
    precision: int
    warnings: list[str]  # read problems, "name: byte N: message"
    fallback_reason: str | None = None  # why the pure-Python reader was used (auto only)


def _extension() -> ModuleType:
    try:
        return importlib.import_module("analyzer._fastscan")
    except ImportError:
        raise FastPathUnavailable(
            "the C extension analyzer._fastscan is not built (no C compiler at install time?)"
        ) from None


# Debian/Ubuntu (libpcap0.8), then other distributions, then a development symlink.
SYSTEM_LIBPCAP = ("libpcap.so.0.8", "libpcap.so.1", "libpcap.so")


def libpcap_candidates() -> list[str]:
    """Shared libraries to try, in order: $GRE_KEEPALIVE_LIBPCAP alone if set, else the
    system's libpcap, then the copy bundled in the pcapy-ng wheel."""
    override = os.environ.get("GRE_KEEPALIVE_LIBPCAP")
    if override:
        return [override]
    candidates = list(SYSTEM_LIBPCAP)
    spec = importlib.util.find_spec("pcapy")
    if spec is not None and spec.origin:
        site = os.path.dirname(os.path.abspath(spec.origin))
        candidates += sorted(glob.glob(os.path.join(site, "pcapy_ng.libs", "libpcap*.so*")))
    return candidates


def _exact_clocks(reader: CaptureReader) -> str | None:
    """Why libpcap's timestamps would differ from the pure-Python reader's, or None."""
    for units, offset in reader.interface_clocks:
        digits = len(str(units)) - 1
        if units != 10**digits or digits > 9:
            return f"timestamp resolution 1/{units} s (libpcap would round it)"
        if offset:
            return "interface timestamp offset (if_tsoffset)"
    if len(set(reader.interface_linktypes)) > 1:
        return "interfaces of different link types"
    return None


def _address(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def collect_libpcap(
    path: str, files: list[str], *, include_data: bool, progress: Progress | None = None
) -> Collected:
    """The streaming pass through libpcap. Raises :class:`FastPathUnavailable`."""
    fastscan = _extension()
    libraries = libpcap_candidates()
    with open_capture(path) as reader:
        if reader.compressed:
            raise FastPathUnavailable("gzip-compressed input")
        why = _exact_clocks(reader)
        if why is not None:
            raise FastPathUnavailable(why)
        precision = reader.precision
        file_format, byte_order = reader.format, reader.byte_order
    collector = Collector(files, include_data=include_data)
    classify = collector.classify

    def on_frame(number: int, time: float, linktype: int, data: bytes, wire_length: int) -> None:
        classify(RawFrame(number, time, linktype, data, wire_length, 0, 0))

    def filter_for(dlt: int) -> tuple[str, int]:
        linktype = linktype_from_dlt(dlt)
        return keepalive_filter(include_data=False, linktype=linktype), linktype

    with (
        tempfile.TemporaryFile(prefix="gre-keepalive-") as spill,
        tempfile.TemporaryFile(prefix="gre-keepalive-") as laid_out,
    ):
        try:
            _linktype, packets, start, end, data_packets, flows, stopped = fastscan.scan(
                libraries,
                path,
                filter_for,
                on_frame,
                include_data,
                spill.fileno(),
                laid_out.fileno(),
                progress,
            )
        except fastscan.ScanError as exc:
            raise FastPathUnavailable(" ".join(str(exc).split())) from None
        warnings: list[str] = []
        if stopped is not None:
            error, position = stopped
            warning = (
                _pcap_truncation(path, byte_order, packets, position)
                if file_format == "pcap"
                else None
            )
            if warning is None:
                raise FastPathUnavailable(
                    f"libpcap stopped after frame {packets}: {' '.join(str(error).split())}",
                    damaged=True,
                )
            warnings.append(f"{files[0]}: byte {position}: {warning}")
        size = os.fstat(laid_out.fileno()).st_size
        view = (
            memoryview(mmap.mmap(laid_out.fileno(), size, access=mmap.ACCESS_READ))
            if size
            else None
        )
    # The mapping outlives the (already unlinked) file; it is freed with the last view.
    collector.source.packets = packets
    collector.source.start = start
    collector.source.end = end
    for src, dst, key, count, offset, in_order in flows:
        flow = (_address(src), _address(dst), key)
        if view is None:
            times, frames = memoryview(b"").cast("d"), memoryview(b"").cast("q")
        else:
            frames_at = offset + 8 * count
            times = view[offset:frames_at].cast("d")
            frames = view[frames_at : frames_at + 8 * count].cast("q")
        collector.add_data_flow(flow, times, frames, in_time_order=bool(in_order))
    if not include_data:
        collector.source.gre_packets += data_packets
    collector.sort_data()
    return Collected(collector, READER_LIBPCAP, precision, warnings)


PCAP_RECORD_HEADER = 16


def _pcap_truncation(path: str, byte_order: str, frames: int, position: int) -> str | None:
    """The pure-Python reader's warning when a classic pcap file ends inside the record at
    `position`, or None if libpcap stopped there for another reason (then the Python reader
    reads the file again, and words whatever it finds)."""
    try:
        with open(path, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            stream.seek(position)
            header = stream.read(PCAP_RECORD_HEADER)
    except OSError:
        return None
    present = size - position
    if present <= 0:
        return None
    if len(header) < PCAP_RECORD_HEADER:
        return truncation_message(frames + 1, position, PCAP_RECORD_HEADER, present)
    caplen = struct.unpack(byte_order + "I", header[8:12])[0]
    if caplen > ORDINARY_CAPLEN or PCAP_RECORD_HEADER + caplen <= present:
        return None
    return truncation_message(frames + 1, position, PCAP_RECORD_HEADER + caplen, present)


def collect_python(
    reader: CaptureReader, files: list[str], *, include_data: bool, progress: Progress | None = None
) -> Collected:
    """The streaming pass through the pure-Python reader (any input it can read)."""
    frames = reader if progress is None else _reporting(reader, progress)
    collector = collect_frames(frames, files, include_data=include_data)
    warnings = [f"{reader.name}: byte {w.offset}: {w.message}" for w in reader.warnings]
    return Collected(collector, READER_PYTHON, reader.precision, warnings)


def _reporting(reader: CaptureReader, progress: Progress) -> Iterator[RawFrame]:
    every = 1 << 14
    for index, frame in enumerate(reader, 1):
        if index % every == 0:
            progress(reader.bytes_read)
        yield frame


def collect(
    path: str,
    *,
    reader: str = READER_AUTO,
    include_data: bool = True,
    progress: Progress | None = None,
) -> Collected:
    """The streaming pass over one capture file ('-': stdin) with the chosen reader.

    ``auto`` takes libpcap where it can and otherwise the pure-Python reader, saying why
    in :attr:`Collected.fallback_reason`; ``libpcap`` raises :class:`FastPathUnavailable`
    instead of falling back. Raises :class:`analyzer.capture.CaptureError` if the input
    cannot be read at all.
    """
    reason: str | None = None
    damaged = False
    if reader != READER_PYTHON:
        if path == "-":
            reason = "standard input"
        else:
            try:
                return collect_libpcap(path, [path], include_data=include_data, progress=progress)
            except FastPathUnavailable as exc:
                reason, damaged = str(exc), exc.damaged
        if reader == READER_LIBPCAP:
            raise FastPathUnavailable(reason, damaged=damaged)
    with open_capture(path) as capture:
        collected = collect_python(
            capture, [capture.name], include_data=include_data, progress=progress
        )
    # On a damaged file the reader's warnings tell the story; a note would repeat it.
    collected.fallback_reason = None if damaged and collected.warnings else reason
    return collected
