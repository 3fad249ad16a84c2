"""A capture written as many files (ring buffers: ``tcpdump -G/-C``, ``dumpcap -b``) read as
one: the same analysis as the files concatenated into one capture.

The files are ordered by their first timestamp and numbered on from one another (frame 1
of the second file is the first file's last frame + 1). Each is read by the usual
streaming pass (:func:`analyzer.read.fastpath.collect`: the libpcap C loop runs without the
GIL, so files are decoded in parallel, ``jobs`` at a time) into a collector that records
its keepalives instead of pairing them; the records are then replayed, file after file,
into one collector that pairs them as a single pass over the concatenation would. Data
columns stay where each file's pass put them (its spill file) and are read through one
view per flow. At most ``2 × jobs`` files are in flight, whatever their number.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from array import array
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any, TypeVar

from analyzer.keepalive.collect import MAX_ERRORS_LISTED, Collector, Flow, copy_traits
from analyzer.keepalive.model import FrameError, SourceSummary, Traits
from analyzer.keepalive.pairing import Pairer
from analyzer.keepalive.segments import Backwards
from analyzer.pipeline import collect as one_pass
from analyzer.pipeline.files import capture_files, default_jobs
from analyzer.read import fastpath
from analyzer.read.capture import CaptureError, HeaderCut, open_capture
from analyzer.read.fastpath import (
    BLOCK_RECORDS,
    READER_AUTO,
    READER_LIBPCAP,
    READER_PYTHON,
    RECORD,
    Collected,
    FastPathUnavailable,
    LazyColumn,
    SpillBlocks,
    SpilledColumn,
)


def order_by_first_time(paths: Sequence[str]) -> list[str]:
    """The files in the order of their first frame's timestamp (files without a frame last,
    ties and those by name; so are files cut inside their header, which
    :func:`collect_files` skips). Raises CaptureError for a file that cannot be opened."""

    def first_time(path: str) -> tuple[bool, float, str]:
        try:
            with open_capture(path) as reader:
                first = next(iter(reader), None)
        except HeaderCut:
            first = None
        return (first is None, first.time if first is not None else 0.0, path)

    return sorted(paths, key=first_time)


T = TypeVar("T", int, float)


class ChainedColumn(LazyColumn[T]):
    """One flow's data column across files, read through: the parts in file order, each
    value of part i plus ``offsets[i]`` (frame numbers continue from file to file)."""

    def __init__(self, code: str, parts: list[Sequence[T]], offsets: list[int]) -> None:
        """`code`: "d" for times, "q" for frame numbers."""
        self._code = code
        self._parts: list[Sequence[T]] = parts
        self._offsets = offsets
        self._starts: list[int] = []
        total = 0
        for part in parts:
            self._starts.append(total)
            total += len(part)
        self._count = total

    def _value(self, index: int) -> T:
        part = bisect_right(self._starts, index) - 1
        value: T = self._parts[part][index - self._starts[part]] + self._offsets[part]
        return value

    def __iter__(self) -> Iterator[T]:
        for part, offset in zip(self._parts, self._offsets, strict=True):
            if offset:
                yield from (value + offset for value in part)
            else:
                yield from part


class RecordingPairer(Pairer):
    """Keeps every request and reply handed to it, unpaired, to be replayed (frame numbers
    moved on) into the pairer of the whole capture."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def request(self, frame: int, time: float, *args: Any) -> None:
        """Record a request (decoded)."""
        self.calls.append(("request", (frame, time, *args)))

    def reply(self, frame: int, time: float, *args: Any) -> None:
        """Record a reply (decoded)."""
        self.calls.append(("reply", (frame, time, *args)))

    def add_request(self, frame: int, time: float, *args: Any) -> None:
        """Record a request (given by its fields)."""
        self.calls.append(("add_request", (frame, time, *args)))

    def add_reply(self, frame: int, time: float, *args: Any) -> None:
        """Record a reply (given by its fields)."""
        self.calls.append(("add_reply", (frame, time, *args)))


def _recording_collector(files: list[str], include_data: bool) -> Collector:
    collector = Collector(files, include_data=include_data)
    collector.pairer = RecordingPairer()
    return collector


@dataclasses.dataclass(slots=True)
class _MergedColumn:
    """One flow's data column in the ring's spill file: its full blocks' offsets, and the
    records of the block not yet full."""

    blocks: array[int]
    count: int = 0
    tail: bytearray = dataclasses.field(default_factory=bytearray)


@dataclasses.dataclass(slots=True)
class _Whole:
    """The collector of the whole capture, filled file by file."""

    collector: Collector
    times: dict[Flow, list[Sequence[float]]] = dataclasses.field(default_factory=dict)
    frames: dict[Flow, list[Sequence[int]]] = dataclasses.field(default_factory=dict)
    offsets: dict[Flow, list[int]] = dataclasses.field(default_factory=dict)
    in_order: dict[Flow, bool] = dataclasses.field(default_factory=dict)
    packets: int = 0  # frames of the files added so far
    precision: int = 0
    warnings: list[str] = dataclasses.field(default_factory=list)
    fallbacks: list[str] = dataclasses.field(default_factory=list)
    readers: set[str] = dataclasses.field(default_factory=set)
    # With many files (or more than open files allowed): one spill file for the data of
    # them all, each flow one column in it whatever the number of files, so that memory
    # and open files stay flat; each file's own spill file closes once copied.
    spill: IO[bytes] | None = None
    cache: SpillBlocks | None = None
    merged: dict[Flow, _MergedColumn] = dataclasses.field(default_factory=dict)
    last_time: dict[Flow, float] = dataclasses.field(default_factory=dict)
    spilled: int = 0  # bytes written to `spill`

    def respill(
        self, flow: Flow, times: Sequence[float], frames: Sequence[int], offset: int
    ) -> None:
        """Append one file's data column of `flow` (frame numbers moved on by `offset`) to
        the flow's column in the ring's spill file, a full block of records at a time."""
        column = self.merged.get(flow)
        if column is None:
            column = self.merged[flow] = _MergedColumn(array("Q"))
        tail = column.tail
        full = RECORD.size * BLOCK_RECORDS
        pack = RECORD.pack
        for time, frame in zip(times, frames, strict=True):
            tail += pack(time, frame + offset)
            if len(tail) == full:
                self._write_block(column)
        column.count += len(times)

    def _write_block(self, column: _MergedColumn) -> None:
        assert self.spill is not None
        column.blocks.append(self.spilled)
        try:
            self.spilled += self.spill.write(column.tail)
        except OSError as exc:
            raise CaptureError(
                f"cannot write the data of the capture's files to a temporary file in "
                f"{tempfile.gettempdir()} ({exc.strerror or exc}): free space there, set "
                "TMPDIR, or use --no-data"
            ) from None
        column.tail.clear()

    def add(self, path: str, part: Collected[Collector]) -> None:
        """Append one file's pass (the next in order)."""
        offset = self.packets
        whole = self.collector
        piece = part.collector
        pairer = piece.pairer
        assert isinstance(pairer, RecordingPairer)
        for name, (frame, *rest) in pairer.calls:
            getattr(whole.pairer, name)(frame + offset, *rest)
        _add_source(whole.source, piece.source, offset)
        for flow, traits in piece.traits.items():
            mine = whole.traits.get(flow)
            whole.traits[flow] = traits if mine is None else _add_traits(mine, traits)
        for flow, steps in piece.data_backwards.items():
            # Steps inside one file; steps between files are found when the chain is sorted.
            shifted = Backwards(steps.count, steps.largest, steps.first_frame + offset)
            before = whole.data_backwards.get(flow)
            whole.data_backwards[flow] = (
                shifted
                if before is None
                else Backwards(
                    before.count + shifted.count,
                    max(before.largest, shifted.largest),
                    min(before.first_frame, shifted.first_frame),
                )
            )
        for flow, times in piece.data_times.items():
            if not len(times):
                continue
            # Each file's columns are in time order once its pass is done; the chain is
            # if every file's first time is no earlier than the one before's last.
            last = self.last_time.get(flow)
            ordered = self.in_order.get(flow, True)
            self.in_order[flow] = ordered and not (last is not None and last > times[0])
            self.last_time[flow] = times[-1] if last is None else max(last, times[-1])
            if self.spill is not None:
                self.respill(flow, times, piece.data_frames[flow], offset)
                continue
            self.times.setdefault(flow, []).append(times)
            self.frames.setdefault(flow, []).append(piece.data_frames[flow])
            self.offsets.setdefault(flow, []).append(offset)
        self.packets += piece.source.packets
        self.precision = max(self.precision, part.precision)
        self.warnings.extend(part.warnings)
        self.readers.add(part.reader)
        if part.fallback_reason is not None:
            self.fallbacks.append(f"{path}: {part.fallback_reason}")

    def finish(self) -> Collected[Collector]:
        """The whole capture's pass, as one file's would be."""
        whole = self.collector
        if self.spill is not None:
            assert self.cache is not None
            for column in self.merged.values():
                if column.tail:
                    self._write_block(column)
            self.spill.flush()  # the columns read with pread
            for flow, column in self.merged.items():
                whole.add_data_flow(
                    flow,
                    SpilledColumn(self.spill, 0, column.blocks, column.count, self.cache),
                    SpilledColumn(self.spill, 1, column.blocks, column.count, self.cache),
                    in_time_order=self.in_order[flow],
                )
        for flow, parts in self.times.items():
            offsets = self.offsets[flow]
            whole.add_data_flow(
                flow,
                ChainedColumn("d", parts, [0] * len(parts)),
                ChainedColumn("q", self.frames[flow], offsets),
                in_time_order=self.in_order[flow],
            )
        whole.sort_data()
        reader = READER_LIBPCAP if self.readers == {READER_LIBPCAP} else READER_PYTHON
        fallback = "; ".join(self.fallbacks) if self.fallbacks else None
        return Collected(whole, reader, self.precision or 6, self.warnings, fallback)


def _add_source(whole: SourceSummary, piece: SourceSummary, offset: int) -> None:
    whole.packets += piece.packets
    whole.gre_packets += piece.gre_packets
    whole.keepalive_packets += piece.keepalive_packets
    whole.malformed += piece.malformed
    whole.checksum_errors += piece.checksum_errors
    whole.cut_requests += piece.cut_requests
    for bound, pick in (("start", min), ("end", max)):
        mine, theirs = getattr(whole, bound), getattr(piece, bound)
        if theirs is not None:
            setattr(whole, bound, theirs if mine is None else pick(mine, theirs))
    room = max(MAX_ERRORS_LISTED - len(whole.errors), 0)
    whole.errors.extend(FrameError(e.frame + offset, e.reason) for e in piece.errors[:room])


def _add_traits(mine: Traits, theirs: Traits) -> Traits:
    """Counts of both, as a new Traits (every field of Traits is a count or a mapping of
    counts; either may be shared with other flows, so neither is changed)."""
    both = copy_traits(mine)
    for item in dataclasses.fields(Traits):
        ours, other = getattr(both, item.name), getattr(theirs, item.name)
        if isinstance(ours, dict):
            for value, number in other.items():
                ours[value] = ours.get(value, 0) + number
        else:
            setattr(both, item.name, ours + other)
    return both


# More files than this share one spill file (see _Whole.spill); fewer keep their own, read
# where each file's pass wrote it (no copy).
FILES_WITH_OWN_SPILL = 64
# Open files kept for everything but the files' spills: standard streams, libraries, and
# per file in flight its capture, its spill and libpcap's stream.
RESERVED_OPEN_FILES = 64
OPEN_FILES_PER_JOB = 6


def _allow_open_files(needed: int) -> int | None:
    """Raise the soft limit on open files towards `needed` (as far as the hard one allows);
    the limit now (None: no limit known)."""
    try:
        import resource
    except ImportError:  # not on a Unix
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return None if soft == resource.RLIM_INFINITY else soft


def _spills_allowed(files: int, jobs: int) -> bool:
    """Whether `files` spill files may stay open beside the files `jobs` passes have in
    flight (the soft open-files limit raised as far as needed and allowed)."""
    needed = files + RESERVED_OPEN_FILES + OPEN_FILES_PER_JOB * 2 * jobs
    limit = _allow_open_files(needed)
    return limit is None or limit >= needed


Progress = Callable[[int, int], None]  # (files done, files in all)


def collect_files(
    paths: Sequence[str],
    *,
    reader: str = READER_AUTO,
    include_data: bool = True,
    jobs: int | None = None,
    progress: Progress | None = None,
) -> Collected[Collector]:
    """One streaming pass over several files taken as one capture, in the order given
    (see :func:`order_by_first_time`), `jobs` files at a time. A file cut inside its header
    holds no packet: it is skipped with a warning, unless every file is. Raises
    CaptureError (or FastPathUnavailable with ``reader="libpcap"``) naming the file that
    failed."""
    jobs = max(jobs or default_jobs(), 1)
    files = list(paths)
    skipped: list[str] = []
    whole = _Whole(Collector(files, include_data=include_data))
    # Each file's data columns keep its spill file open, unless that is too many files.
    own = include_data and len(files) <= FILES_WITH_OWN_SPILL
    if not _spills_allowed(len(files) if own else 0, jobs):  # room for the files in flight
        own = False
    if include_data and not own:
        try:
            whole.spill = tempfile.TemporaryFile(prefix="gre-keepalive-ring-")  # noqa: SIM115
        except OSError as exc:
            raise CaptureError(
                f"cannot create a temporary file in {tempfile.gettempdir()} "
                f"({exc.strerror or exc}): set TMPDIR, or use --no-data"
            ) from None
        whole.cache = SpillBlocks(whole.spill)

    def one(path: str) -> Collected[Collector] | HeaderCut:
        try:
            return fastpath.collect(
                path, _recording_collector, reader=reader, include_data=include_data
            )
        except HeaderCut as exc:
            return exc
        except FastPathUnavailable as exc:  # say which of the files
            raise FastPathUnavailable(f"{path}: {exc}", damaged=exc.damaged) from None

    switch = sys.getswitchinterval()  # each pass sets and restores it: keep it ours
    try:
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="gre-keepalive-file") as pool:
            pending: list[Future[Collected[Collector] | HeaderCut]] = []
            submitted = 0
            for index, path in enumerate(files):
                while submitted < len(files) and submitted < index + 2 * jobs:
                    pending.append(pool.submit(one, files[submitted]))
                    submitted += 1
                try:
                    part = pending.pop(0).result()
                except BaseException:
                    for future in pending:
                        future.cancel()
                    raise
                if isinstance(part, HeaderCut):
                    skipped.append(path)
                    whole.warnings.append(
                        f"{part}: skipped, it holds no packet (the file a ring buffer was "
                        "still writing?)"
                    )
                else:
                    whole.add(path, part)
                del part
                if progress is not None:
                    progress(index + 1, len(files))
    finally:
        sys.setswitchinterval(switch)
    if len(skipped) == len(files):
        raise CaptureError(
            f"{', '.join(files)}: every file ends inside its header; no packet to read"
        )
    whole.collector.source.files = [path for path in files if path not in skipped]
    return whole.finish()


def check_capture(argument: str) -> list[str]:
    """The files a capture argument names (see :func:`capture_files`), in time order, each
    opened once: raises CaptureError for the first that cannot be read."""
    files = capture_files(argument)
    if len(files) == 1:
        open_capture(files[0]).close()
        return files
    return order_by_first_time(files)


def collect_capture(
    argument: str,
    *,
    reader: str = READER_AUTO,
    include_data: bool = True,
    jobs: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Collected[Collector]:
    """The streaming pass over a capture argument: one file as
    :func:`analyzer.pipeline.collect.collect` reads it (`progress`: bytes read), several
    (a directory, a,b,c) as :func:`collect_files` does."""
    files = check_capture(argument)
    if len(files) == 1:
        return one_pass.collect(
            files[0], reader=reader, include_data=include_data, progress=progress
        )
    return collect_files(files, reader=reader, include_data=include_data, jobs=jobs)
