"""The fast path of `analyze`: read a capture file through libpcap at BPF speed.

libpcap (the system's, else the copy bundled with pcapy-ng) reads the file and the C hot
loop (:mod:`analyzer.read._fastscan`) classifies every frame: it decodes the usual shapes
of keepalive requests and replies itself and hands them over as compact records
(:data:`KEEPALIVE_RECORD`), counts every other frame, and records the time and frame number
of each GRE data packet per flow in a temporary file, read back where the analysis looks,
so memory does not grow with the number of data packets. Frames it does not decide itself
are decoded in Python (by :mod:`analyzer.read.packet`, the reference it is tested against).

:func:`collect` falls back to the pure-Python reader (:mod:`analyzer.read.capture`) wherever
libpcap cannot give the same answer: gzip, stdin, a file being followed, timestamps
libpcap would round, a file libpcap stops on part-way. The result is the same either
way, byte for byte (tests/test_fastpath.py proves it on every capture we have).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import importlib
import importlib.util
import os
import queue
import socket
import struct
import sys
import tempfile
import threading
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import IO, Any, Generic, Protocol, TypeVar, overload

from analyzer.read.bpf import keepalive_filter, linktype_from_dlt
from analyzer.read.capture import (
    ORDINARY_CAPLEN,
    CaptureError,
    CaptureReader,
    InterfaceClock,
    RawFrame,
    interface_clock,
    open_capture,
    truncation_message,
    warning_line,
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


class SourceTotals(Protocol):
    """The capture-wide counts a sink keeps, which the C loop fills in directly."""

    packets: int
    start: float | None
    end: float | None
    gre_packets: int


class FrameSink(Protocol):
    """What the streaming pass hands frames to: the keepalive stage's collector (the read
    stage never imports it; the caller passes a factory)."""

    @property
    def source(self) -> SourceTotals:
        """Capture-wide counts."""

    def add(self, raw: RawFrame) -> None:
        """Count and classify one frame."""

    def classify_frame(self, number: int, time: float, linktype: int, data: bytes) -> None:
        """Classify one frame the C loop already counted."""

    def add_records(self, frames: Batch, records: bytes) -> None:
        """One batch of the C loop: the keepalives it decoded (:data:`KEEPALIVE_RECORD`
        records, in frame order) and, one for each record of kind RECORD_FRAME among them,
        the frames it left to Python."""

    def add_data_flow(
        self,
        flow: tuple[str, str, int | None],
        times: Sequence[float],
        frames: Sequence[int],
        *,
        in_time_order: bool,
    ) -> None:
        """Data packets of one flow that the C loop recorded."""

    def sort_data(self) -> None:
        """Finish the data columns once every frame is in."""


Batch = list[tuple[int, float, int, bytes, int]]  # (number, time, linktype, data, wire length)

# A keepalive the C loop decoded (_fastscan.c: struct keepalive), native byte order:
# frame, time, IP ID, inner IP ID; then its shape (KEEPALIVE_SHAPE): kind, IP version, TTL,
# flags, GRE protocol type, Cisco MetaData SGT, GRE key, payload length, inner IP version,
# inner TTL, inner GRE key; outer source, destination, inner source, destination (IPv4: the
# first 4 bytes; unused bytes are zero).
KEEPALIVE_RECORD = struct.Struct("=qdHHBBBBHHIIBB2xI16s16s16s16s")
# The same record as frame, time, IP ID, inner IP ID and the shape's bytes, whole: the
# shape is the same for every keepalive of a flow, nearly always (a record of kind
# RECORD_FRAME has a shape of zeros).
KEEPALIVE_HEAD = struct.Struct("=qdHH88s")
KEEPALIVE_SHAPE = struct.Struct("=BBBBHHIIBB2xI16s16s16s16s")
RECORD_FRAME = 0  # the next frame of the batch's list, for Python to decode
RECORD_REQUEST = 3
RECORD_REPLY = 4
RECORD_KEY = 1  # flags: the outer GRE header has a key
RECORD_INNER_KEY = 2  # the inner GRE header has a key
RECORD_METADATA = 4  # the inner packet is behind a Cisco MetaData header

S = TypeVar("S", bound=FrameSink)
SinkFactory = Callable[[list[str], bool], S]  # (file names, include data) -> a new sink


@dataclass(slots=True)
class Collected(Generic[S]):
    """A finished streaming pass and how it was read."""

    collector: S
    reader: str  # READER_LIBPCAP or READER_PYTHON
    precision: int
    warnings: list[str]  # read problems, "name: byte N: message"
    fallback_reason: str | None = None  # why the pure-Python reader was used (auto only)


def _extension() -> ModuleType:
    try:
        return importlib.import_module("analyzer.read._fastscan")
    except ImportError:
        raise FastPathUnavailable(
            "the C extension analyzer.read._fastscan is not built (no C compiler at install time?)"
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


def _exact_clocks(clocks: Sequence[InterfaceClock]) -> str | None:
    """Why libpcap's timestamps would differ from the pure-Python reader's, or None."""
    for clock in clocks:
        digits = len(str(clock.units)) - 1
        if clock.units != 10**digits or digits > 9:
            return f"timestamp resolution 1/{clock.units} s (libpcap would round it)"
        if clock.offset:
            return "interface timestamp offset (if_tsoffset)"
    if len({clock.linktype for clock in clocks}) > 1:
        return "interfaces of different link types"
    return None


# What libpcap reads differently from the pure-Python reader in a pcapng file, as found by
# _fastscan.survey (docs/readers.md; in a classic pcap, the C loop finds what differs).
SURVEY_FINDINGS = {
    "spb": "a Simple Packet Block (no timestamp; libpcap would date it 1970-01-01)",
    "interfaces": "more or larger Interface Description Blocks than are checked",
}


class _Survey:
    """``_fastscan.survey`` of a pcapng file, in a thread of its own while libpcap reads
    the file: what libpcap would read differently, and the clocks of all its interfaces
    (also those described after the first packet)."""

    def __init__(self, fastscan: ModuleType, path: str) -> None:
        self._outcome: list[Any] = []
        self._thread = threading.Thread(
            target=self._run, args=(fastscan, path), name="gre-keepalive-survey", daemon=True
        )
        self._thread.start()

    def _run(self, fastscan: ModuleType, path: str) -> None:
        try:
            with open(path, "rb") as stream:
                self._outcome.append(fastscan.survey(stream.fileno()))
        except BaseException as exc:  # handed to clocks()
            self._outcome.append(exc)

    def wait(self) -> None:
        """Wait for the walk to end."""
        self._thread.join()

    def clocks(self) -> list[InterfaceClock]:
        """Every interface's clock; raises :class:`FastPathUnavailable` if libpcap would
        read the file differently."""
        self.wait()
        outcome = self._outcome[0]
        if isinstance(outcome, OSError):
            why = outcome.strerror or outcome
            raise FastPathUnavailable(f"cannot read the file ({why})") from None
        if isinstance(outcome, BaseException):
            raise outcome
        found, interfaces = outcome
        if found:
            kind, offset = min(found.items(), key=lambda item: item[1])
            raise FastPathUnavailable(f"{SURVEY_FINDINGS[kind]} at byte {offset}")
        clocks = []
        for byte_order, body in interfaces:
            clock = interface_clock(body, byte_order)
            if clock is None:
                raise FastPathUnavailable("a malformed Interface Description Block")
            clocks.append(clock)
        return clocks


def _address(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def collect_libpcap(
    path: str,
    files: list[str],
    new_sink: SinkFactory[S],
    *,
    include_data: bool,
    progress: Progress | None = None,
) -> Collected[S]:
    """The streaming pass through libpcap. Raises :class:`FastPathUnavailable`."""
    fastscan = _extension()
    libraries = libpcap_candidates()
    with open_capture(path) as reader:
        if reader.compressed:
            raise FastPathUnavailable("gzip-compressed input")
        try:
            path.encode()  # the C loop takes UTF-8; os.fsencode would not get there
        except UnicodeEncodeError:
            raise FastPathUnavailable("a file name that is not UTF-8") from None
        why = _exact_clocks(reader.interface_clocks)  # those before the first packet
        if why is not None:
            raise FastPathUnavailable(why)
        header_precision = reader.precision
        file_format, captured_length = reader.format, reader.captured_length
    survey = _Survey(fastscan, path) if file_format == "pcapng" else None

    def filter_for(dlt: int) -> tuple[str, int]:
        linktype = linktype_from_dlt(dlt)
        return keepalive_filter(include_data=False, linktype=linktype), linktype

    # The (unlinked) spill file stays open for the data columns; it closes with the last one.
    try:
        spill = tempfile.TemporaryFile(prefix="gre-keepalive-")  # noqa: SIM115
    except OSError as exc:
        if survey is not None:
            survey.wait()
        raise CaptureError(_spill_message(path, exc, None)) from None
    try:
        collector, outcome = _scan_in_parallel(
            lambda hand_over: fastscan.scan(
                libraries, path, filter_for, hand_over, include_data, spill.fileno(), progress
            ),
            fastscan.ScanError,
            lambda: new_sink(files, include_data),
        )
        _linktype, packets, start, end, data_packets, flows, stopped = outcome
        # a finding there outweighs where libpcap stopped
        clocks = [] if survey is None else survey.clocks()
        why = _exact_clocks(clocks)
        if why is not None:
            raise FastPathUnavailable(why)
        # the Python reader's, at its end: the finest of all interfaces' clocks
        precision = max((clock.precision for clock in clocks), default=header_precision)
        warnings: list[str] = []
        if stopped is not None:
            error, position = stopped
            warning = (
                _pcap_truncation(path, captured_length, packets, position)
                if file_format == "pcap"
                else None
            )
            if warning is None:
                raise FastPathUnavailable(
                    f"libpcap stopped after frame {packets}: {' '.join(str(error).split())}",
                    damaged=True,
                )
            warnings.append(warning_line(files[0], position, warning))
    except OSError as exc:  # writing the spill file (the C loop raises nothing else)
        written = _size(spill)
        spill.close()
        raise CaptureError(_spill_message(path, exc, written)) from None
    except BaseException:
        spill.close()
        raise
    finally:
        if survey is not None:
            survey.wait()
    collector.source.packets = packets
    collector.source.start = start
    collector.source.end = end
    collector.source.gre_packets += data_packets  # counted in C, recorded or not
    cache = SpillBlocks(spill)
    names: dict[bytes, str] = {}  # one string per address, however many flows share it
    for src, dst, key, count, blocks, in_order, *ends in flows:
        offsets = array("Q", blocks)
        first_time, first_frame, last_time, last_frame = ends
        times: SpilledColumn[float] = SpilledColumn(
            spill, 0, offsets, count, cache, (first_time, last_time)
        )
        frames: SpilledColumn[int] = SpilledColumn(
            spill, 1, offsets, count, cache, (first_frame, last_frame)
        )
        source = names.get(src) or names.setdefault(src, _address(src))
        destination = names.get(dst) or names.setdefault(dst, _address(dst))
        collector.add_data_flow(
            (source, destination, key), times, frames, in_time_order=bool(in_order)
        )
    collector.sort_data()
    return Collected(collector, READER_LIBPCAP, precision, warnings)


def _size(stream: IO[bytes]) -> int | None:
    try:
        return os.fstat(stream.fileno()).st_size
    except OSError:
        return None


def _spill_message(path: str, exc: OSError, written: int | None) -> str:
    """One line on a temporary file of data packets that cannot be made or written."""
    where = tempfile.gettempdir()
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        what = f"no space left in {where} for the temporary file of data packets"
    else:
        what = f"cannot write the temporary file of data packets in {where} ({exc.strerror})"
    size = "" if not written else f" after {written / 1e6:.0f} MB"
    return (
        f"{path}: {what}{size} (16 bytes a data packet): free space there, point TMPDIR "
        "elsewhere, or use --no-data"
    )


PCAP_RECORD_HEADER = 16


def _pcap_truncation(
    path: str, captured_length: Callable[[bytes], int], frames: int, position: int
) -> str | None:
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
    caplen = captured_length(header)
    if caplen > ORDINARY_CAPLEN or PCAP_RECORD_HEADER + caplen <= present:
        return None
    return truncation_message(frames + 1, position, PCAP_RECORD_HEADER + caplen, present)


T = TypeVar("T", int, float)

RECORD = struct.Struct("=dq")  # one spilled data record: time, frame number (native order)


class SpillBlocks:
    """The blocks of a spill file read last, shared by all its columns (at most
    CACHED_BLOCKS of them): a bisection's last probes fall in one block, read once."""

    __slots__ = ("_blocks", "_fd")

    def __init__(self, spill: IO[bytes]) -> None:
        self._fd = spill.fileno()
        self._blocks: dict[int, bytes] = {}

    def read(self, offset: int, records: int) -> bytes:
        """The `records` records of the block at `offset`."""
        found = self._blocks.get(offset)
        if found is None:
            found = os.pread(self._fd, RECORD.size * records, offset)
            if len(self._blocks) >= CACHED_BLOCKS:
                del self._blocks[next(iter(self._blocks))]
            self._blocks[offset] = found
        return found


CACHED_BLOCKS = 16


class LazyColumn(Sequence[T]):
    """A read-only column of times ("d") or frame numbers ("q") whose values are fetched one
    at a time by :meth:`_value`; a slice is an array of the values it covers."""

    __slots__ = ()
    _code: str
    _count: int

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[T]: ...

    def __getitem__(self, index: int | slice) -> T | Sequence[T]:
        if isinstance(index, slice):
            values: array[Any] = array(
                self._code, map(self.__getitem__, range(*index.indices(self._count)))
            )
            return values
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError("data column index out of range")
        return self._value(index)

    def _value(self, index: int) -> T:
        raise NotImplementedError


class SpilledColumn(LazyColumn[T]):
    """One column (times or frame numbers) of one flow's data records in the spill file:
    blocks of BLOCK_RECORDS (float64 time, int64 frame) records, the last one partial.

    Values are read with pread when asked for, a block at a time, and only the few blocks
    read last are kept (:class:`SpillBlocks`), so memory stays flat however many packets
    the file holds (the analysis reads a few thousand values, bisecting around failures; a
    memory map made the kernel fault in 64 KiB around each of them). The open spill file
    lives as long as its columns.
    """

    __slots__ = (
        "_blocks",
        "_cache",
        "_code",
        "_column",
        "_count",
        "_fd",
        "_first",
        "_last",
        "_spill",
    )

    def __init__(
        self,
        spill: IO[bytes],
        column: int,
        blocks: array[int],
        count: int,
        cache: SpillBlocks | None = None,
        ends: tuple[T, T] | None = None,
    ) -> None:
        """`column`: 0 for times, 1 for frame numbers; `blocks`: file offsets, in order;
        `cache`: the spill file's blocks read last (shared by its columns); `ends`: its
        first and last value if known (the analysis asks for them of every flow, more
        than once: read from the file, one block each time)."""
        self._spill = spill
        self._fd = spill.fileno()
        self._column = column
        self._code = "d" if column == 0 else "q"
        self._blocks = blocks
        self._count = count
        self._cache = cache or SpillBlocks(spill)
        self._first: T | None = None
        self._last: T | None = None
        if ends is not None and count:
            self._first, self._last = ends

    def _value(self, index: int) -> T:
        if index == 0 and self._first is not None:
            return self._first
        if index == self._count - 1 and self._last is not None:
            return self._last
        block, position = divmod(index, BLOCK_RECORDS)
        records = self._cache.read(
            self._blocks[block], min(BLOCK_RECORDS, self._count - block * BLOCK_RECORDS)
        )
        value: T = RECORD.unpack_from(records, RECORD.size * position)[self._column]
        return value

    def __iter__(self) -> Iterator[T]:
        left = self._count
        for offset in self._blocks:
            take = min(left, BLOCK_RECORDS)
            records: array[Any] = array(self._code)
            records.frombytes(os.pread(self._fd, RECORD.size * take, offset))
            yield from records[self._column :: 2]
            left -= take


BLOCK_RECORDS = 256  # records per block (_fastscan.c: BLOCK)
BATCHES_QUEUED = 16  # batches of frames waiting for the decoder (bounds memory)
SWITCH_INTERVAL = 0.0005  # s: how soon the reader thread gets the GIL back for a batch


def _scan_in_parallel(
    scan: Callable[[Callable[[Batch, bytes], bool]], Any],
    scan_error: type[Exception],
    new_sink: Callable[[], S],
) -> tuple[S, tuple[Any, ...]]:
    """Run `scan(hand_over)` (the C loop; it reads without the GIL) in a worker thread while
    this thread loads the analysis core and decodes the frames handed over, in order.
    Raises FastPathUnavailable on `scan_error`."""
    batches: queue.Queue[tuple[Batch, bytes] | None] = queue.Queue(BATCHES_QUEUED)
    stop = threading.Event()
    outcome: list[Any] = []

    def hand_over(batch: Batch, records: bytes) -> bool:
        if stop.is_set():
            return False
        batches.put((batch, records))
        return True

    def read() -> None:
        try:
            outcome.append(scan(hand_over))
        except BaseException as exc:  # re-raised by the decoding thread
            outcome.append(exc)
        finally:
            batches.put(None)

    reader = threading.Thread(target=read, name="gre-keepalive-libpcap", daemon=True)
    previous = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        reader.start()
        collector = new_sink()  # the keepalive stage loads while libpcap reads
        add_records = collector.add_records
        while (batch := batches.get()) is not None:
            add_records(*batch)
    finally:
        stop.set()
        while reader.is_alive():  # let a reader blocked on a full queue finish
            with contextlib.suppress(queue.Empty):
                batches.get(timeout=0.05)
        reader.join()
        sys.setswitchinterval(previous)
    result = outcome[0]
    if isinstance(result, scan_error):
        raise FastPathUnavailable(" ".join(str(result).split())) from None
    if isinstance(result, BaseException):
        raise result
    return collector, tuple(result)


def collect_python(
    reader: CaptureReader,
    files: list[str],
    new_sink: SinkFactory[S],
    *,
    include_data: bool,
    progress: Progress | None = None,
) -> Collected[S]:
    """The streaming pass through the pure-Python reader (any input it can read)."""
    collector = new_sink(files, include_data)
    for frame in reader if progress is None else _reporting(reader, progress):
        collector.add(frame)
    collector.sort_data()
    return Collected(collector, READER_PYTHON, reader.precision, reader.warning_lines())


def _reporting(reader: CaptureReader, progress: Progress) -> Iterator[RawFrame]:
    every = 1 << 14
    for index, frame in enumerate(reader, 1):
        if index % every == 0:
            progress(reader.bytes_read)
        yield frame


def collect(
    path: str,
    new_sink: SinkFactory[S],
    *,
    reader: str = READER_AUTO,
    include_data: bool = True,
    progress: Progress | None = None,
) -> Collected[S]:
    """The streaming pass over one capture file ('-': stdin) with the chosen reader.

    ``auto`` takes libpcap where it can and otherwise the pure-Python reader, saying why
    in :attr:`Collected.fallback_reason`; ``libpcap`` raises :class:`FastPathUnavailable`
    instead of falling back. Raises :class:`analyzer.read.capture.CaptureError` if the input
    cannot be read at all.
    """
    reason: str | None = None
    damaged = False
    if reader != READER_PYTHON:
        if path == "-":
            reason = "standard input"
        else:
            try:
                return collect_libpcap(
                    path, [path], new_sink, include_data=include_data, progress=progress
                )
            except FastPathUnavailable as exc:
                reason, damaged = str(exc), exc.damaged
        if reader == READER_LIBPCAP:
            raise FastPathUnavailable(reason, damaged=damaged)
    with open_capture(path) as capture:
        collected = collect_python(
            capture, [capture.name], new_sink, include_data=include_data, progress=progress
        )
    # On a damaged file the reader's warnings tell the story; a note would repeat it.
    collected.fallback_reason = None if damaged and collected.warnings else reason
    return collected
