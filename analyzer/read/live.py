"""Live capture from a network interface through libpcap (the ``pcapy`` module of pcapy-ng).

:func:`live_frames` opens the interface at once — so a missing permission or a wrong
interface name is reported before any user interface starts — and returns a
:class:`LiveCapture`: a :data:`~analyzer.read.sources.FrameSource` (a callable that, given a
stop event, yields :class:`~analyzer.read.capture.RawFrame` records,
:class:`~analyzer.read.sources.InterfaceNotice` messages and, every :data:`STATS_INTERVAL`,
:class:`~analyzer.read.sources.CaptureStats` until the event is set).

* **Two capture handles.** Keepalives have a handle of their own, whose kernel filter passes
  only what can be a keepalive and whose buffer (``buffer_size``) therefore holds minutes of
  them: data volume cannot crowd them out. With ``data_filter``, a second handle, with a
  buffer of the same size and a short snap length, counts the GRE data per tunnel direction
  in a thread of its own (libpcap's ``next_batch``, the fast path's C classifier); its
  frames are counted, never queued for the consumer. What either handle loses is measured
  with ``pcap_stats`` (:meth:`LiveCapture.stats`).
* The keepalive capture is read in non-blocking mode, waiting at most
  :data:`READ_TIMEOUT_MS` at a time in ``select``, so the stop event is honoured within
  about that long even when nothing arrives. (A blocking read would not do: on Linux,
  libpcap's read timeout only starts once a packet has passed the filter, so on a silent
  line it blocks for good.) Nothing is yielded while the line is silent but the counters:
  a consumer that must act on the wall clock (``LiveTracker.advance``) needs its own timer.
  :func:`pump` provides one: it runs the source in a background thread and calls back on the
  calling thread for every item, and every ``idle_interval`` seconds.
* When the interface goes down (libpcap reports "The interface went down"), the source
  yields ``InterfaceNotice("IFACE went down (…); re-opening")`` — or, when the interface no
  longer exists, ``"IFACE was removed (…); waiting for it to come back"`` — retries every
  ``reopen_delay`` seconds, and yields ``InterfaceNotice("IFACE re-opened")`` once the
  capture is back (the data handle follows quietly). An interface that exists but is down
  when watching starts is waited for the same way.
* ``write``: every captured frame — keepalives, and the data frames the data handle keeps up
  with — is also appended to a classic pcap file, flushed so the file can be read while the
  capture runs. Frame numbers in the yielded records are the record numbers in that file
  (without it, the count of frames on the keepalive handle).
"""

from __future__ import annotations

import contextlib
import importlib
import queue
import select
import socket
import struct
import threading
import time
from array import array
from collections.abc import Callable, Generator, Iterator
from types import ModuleType
from typing import Any, BinaryIO, Final

from analyzer.read.bpf import FilterError, compile_filter, linktype_from_dlt
from analyzer.read.capture import PcapWriter, RawFrame
from analyzer.read.packet import FrameKind, decode_frame
from analyzer.read.sources import (
    CaptureStats,
    DataFlow,
    DataRecords,
    FlowKey,
    FrameSource,
    HandleStats,
    InterfaceNotice,
    SourceItem,
)

__all__ = [
    "DEFAULT_BUFFER_MB",
    "READ_TIMEOUT_MS",
    "STATS_INTERVAL",
    "CaptureOpenError",
    "CapturePermissionError",
    "FilterSpec",
    "LiveCapture",
    "live_frames",
    "pump",
]

READ_TIMEOUT_MS: Final = 100  # longest wait for the capture: the stop event's latency
DEFAULT_BUFFER_MB: Final = 32  # per handle; tcpdump's -B default is 2 MiB
DATA_SNAPLEN: Final = 256  # enough for the headers a data packet is counted by
DATA_BATCH: Final = 4096  # frames taken from the data handle in one libpcap call
STATS_INTERVAL: Final = 1.0  # how often the source yields its counters
RECORDS_LIMIT: Final = 1 << 20  # data packets handed on as records but not yet consumed
_QUEUE_LIMIT: Final = 65536  # items buffered between the capture thread and the consumer
_JOIN_TIMEOUT: Final = 5.0
# pcap_activate's error statuses, worded as pcap_statustostr words them.
_ACTIVATE_ERRORS: Final = {
    -1: "generic error",
    -5: "No such device exists",
    -6: "That device doesn't support monitor mode",
    -8: "You don't have permission to capture on that device",
    -9: "That device is not up",
    -10: "That device doesn't support setting the time stamp type",
    -11: "You don't have permission to capture in promiscuous mode",
    -12: "That device doesn't support that time stamp precision",
}
_META: Final = struct.Struct("=IIII")  # next_batch's record: sec, usec, offset, caplen

# A filter expression, or a function of the interface's pcap link type (LINKTYPE_) that
# returns one (VLAN tests, for example, only compile for Ethernet).
FilterSpec = str | Callable[[int], str]

_PERMISSION_HINT: Final = (
    "run as root or grant CAP_NET_RAW and CAP_NET_ADMIN: "
    "sudo setcap cap_net_raw,cap_net_admin=eip $(readlink -f $(which python3))"
)


class CapturePermissionError(Exception):
    """The process may not capture (not root, no CAP_NET_RAW/CAP_NET_ADMIN); one line."""


class CaptureWriteError(Exception):
    """The ``write`` file stopped taking frames (a full disk, an I/O error): one line that
    names it. Raised by the source's iteration, which then ends."""


class CaptureOpenError(Exception):
    """The capture cannot start: no such interface, a filter libpcap rejects, an unwritable
    ``write`` file, …; ``str(exc)`` is one line."""


class _InterfaceDown(Exception):
    """The interface exists but is not up (a transient state: wait for it)."""


def _pcapy() -> Any:
    try:
        return importlib.import_module("pcapy")
    except ImportError as exc:  # pragma: no cover - pcapy-ng is a dependency
        raise CaptureOpenError(f"live capture needs pcapy-ng ({exc})") from exc


def _classifier() -> Callable[[int, Any], object] | None:
    """The fast path's C frame classifier, or None where the extension is not built."""
    try:
        module: ModuleType = importlib.import_module("analyzer.read._fastscan")
    except ImportError:  # pragma: no cover - built at install time
        return None
    classify: Callable[[int, Any], object] = module.classify
    return classify


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _is_permission_problem(message: str) -> bool:
    lowered = message.lower()
    return "permission" in lowered or "operation not permitted" in lowered


def _is_down(message: str) -> bool:
    return "not up" in message.lower()


def _interface_exists(interface: str) -> bool:
    """Whether the network namespace still has an interface of this name."""
    try:
        socket.if_nametoindex(interface)
    except OSError:
        return False
    return True


def _lost_notice(interface: str, message: str) -> str:
    """What a capture error that closed the handle says: the interface was removed
    (libpcap: "The interface disappeared", or no interface has that name any more) or it
    went down. Deleting an interface takes it down first, so libpcap often says "went
    down" for a removal too: the name is looked up to tell."""
    if "disappeared" in message.lower() or not _interface_exists(interface):
        return f"{interface} was removed ({message}); waiting for it to come back"
    return f"{interface} went down ({message}); re-opening"


def _reason(message: str, interface: str) -> str:
    """libpcap's message without the interface name it starts with."""
    prefix = f"{interface}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


class _Opener:
    """Opens the interface with a buffer size and installs the filter."""

    def __init__(
        self,
        interface: str,
        bpf_filter: FilterSpec,
        snaplen: int,
        promiscuous: bool,
        buffer_size: int,
    ) -> None:
        self.interface = interface
        self.bpf_filter = bpf_filter
        self.snaplen = snaplen
        self.promiscuous = promiscuous
        self.buffer_size = buffer_size
        self.pcapy = _pcapy()

    def _error(self, exc: object) -> Exception:
        message = _one_line(exc)
        interface = self.interface
        if _is_permission_problem(message):
            return CapturePermissionError(
                f"cannot capture on {interface}: permission denied ({_PERMISSION_HINT})"
            )
        if _is_down(message):
            return _InterfaceDown(_reason(message, interface))
        return CaptureOpenError(f"cannot capture on {interface}: {_reason(message, interface)}")

    def _activate_error(self, status: int) -> str:
        """libpcap's whole message for a failed activation: the status alone lacks the
        detail (``SIOCGIFHWADDR: No such device``), which only ``pcap_open_live`` reports."""
        pcapy = self.pcapy
        try:
            pcapy.open_live(self.interface, 64, 0, READ_TIMEOUT_MS).close()
        except pcapy.PcapError as exc:
            return _one_line(exc)
        except Exception:
            pass
        return f"{self.interface}: {_ACTIVATE_ERRORS.get(status, f'libpcap error {status}')}"

    def open(self) -> tuple[Any, int]:
        """(handle, pcap link type); raises the errors of this module or _InterfaceDown."""
        pcapy = self.pcapy
        interface = self.interface
        try:
            handle = pcapy.create(interface)
            handle.set_snaplen(self.snaplen)
            handle.set_promisc(int(self.promiscuous))
            handle.set_timeout(READ_TIMEOUT_MS)
            handle.set_buffer_size(self.buffer_size)
            status = handle.activate()
        except pcapy.PcapError as exc:
            raise self._error(exc) from None
        # pcapy returns pcap_activate's status instead of raising for most failures
        # (negative: an error, positive: a warning such as "promiscuous mode not supported").
        if isinstance(status, int) and status < 0:
            with contextlib.suppress(Exception):
                handle.close()
            raise self._error(self._activate_error(status)) from None
        linktype = linktype_from_dlt(handle.datalink())
        spec = self.bpf_filter
        try:
            expression = spec(linktype) if callable(spec) else spec
            handle.setfilter(expression)
        except pcapy.PcapError as exc:
            with contextlib.suppress(Exception):
                handle.close()
            raise CaptureOpenError(
                f"cannot capture on {interface}: bad capture filter: {_one_line(exc)}"
            ) from None
        except FilterError as exc:
            with contextlib.suppress(Exception):
                handle.close()
            raise CaptureOpenError(f"cannot capture on {interface}: {exc}") from None
        handle.setnonblock(1)
        return handle, linktype


class _Handle:
    """One capture handle, re-opened as the interface comes and goes, with its counters
    summed over every handle it has been (libpcap's restart at zero on each open)."""

    def __init__(self, opener: _Opener) -> None:
        self.opener = opener
        self.lock = threading.Lock()  # libpcap handles are not thread-safe
        self.pcap: Any = None
        self.linktype = 0
        self._closed_totals = (0, 0, 0)
        self._current = (0, 0, 0)

    def attach(self, opened: tuple[Any, int]) -> None:
        with self.lock:
            self.pcap, self.linktype = opened
            self._current = (0, 0, 0)

    def _poll(self) -> None:
        """Read the open handle's counters (the caller holds the lock)."""
        if self.pcap is not None:
            with contextlib.suppress(Exception):
                received, dropped, interface_dropped = self.pcap.stats()
                self._current = (int(received), int(dropped), int(interface_dropped))

    def close(self) -> None:
        with self.lock:
            if self.pcap is None:
                return
            self._poll()
            self._closed_totals = tuple(  # type: ignore[assignment]
                a + b for a, b in zip(self._closed_totals, self._current, strict=True)
            )
            self._current = (0, 0, 0)
            with contextlib.suppress(Exception):
                self.pcap.close()
            self.pcap = None

    def stats(self) -> HandleStats:
        with self.lock:
            self._poll()
            received, dropped, interface_dropped = (
                a + b for a, b in zip(self._closed_totals, self._current, strict=True)
            )
        return HandleStats(received, dropped, interface_dropped)


class _PcapFile:
    """The ``write`` file: opened at once, its header written once the link type is known.
    Written from both capture threads; each record gets the next frame number."""

    def __init__(self, path: str, snaplen: int) -> None:
        self.path = path
        self.snaplen = snaplen
        try:
            self.stream: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise CaptureOpenError(f"{path}: cannot write ({exc.strerror})") from None
        self.writer: PcapWriter | None = None
        self.linktype: int | None = None
        self.records = 0
        self.failure: CaptureWriteError | None = None
        self.lock = threading.Lock()

    def start(self, linktype: int) -> None:
        """Write the file header now that the link type is known: a capture that has seen
        no packet yet is then a valid, empty pcap (not a file of 0 bytes)."""
        with self.lock:
            if self.writer is not None or self.failure is not None or self.stream.closed:
                return
            try:
                self.writer = PcapWriter(self.stream, linktype, snaplen=self.snaplen)
                self.linktype = linktype
                self.stream.flush()
            except OSError as exc:
                raise self._failed(exc) from None

    def write(
        self, time_: float, linktype: int, data: bytes, wire_length: int, *, flush: bool = True
    ) -> int | None:
        """Append one frame; its record number, or None when it cannot be written (closed,
        another link type). Raises CaptureWriteError when the file fails (then and after)."""
        with self.lock:
            if self.failure is not None:
                raise self.failure
            if self.stream.closed:
                return None
            try:
                if self.writer is None:
                    self.writer = PcapWriter(self.stream, linktype, snaplen=self.snaplen)
                    self.linktype = linktype
                if linktype != self.linktype:
                    return None  # a pcap file has one link type; the interface came back as another
                self.writer.write(time_, data, wire_length)
                if flush:
                    self.stream.flush()
            except OSError as exc:
                raise self._failed(exc) from None
            self.records += 1
            return self.records

    def flush(self) -> None:
        """Write out what is buffered; CaptureWriteError when the file fails."""
        with self.lock:
            if self.failure is not None:
                raise self.failure
            if self.stream.closed:
                return
            try:
                self.stream.flush()
            except OSError as exc:
                raise self._failed(exc) from None

    def _failed(self, exc: OSError) -> CaptureWriteError:
        """Remember the failure (every later write raises it) and let the file go."""
        self.failure = CaptureWriteError(f"{self.path}: cannot write ({exc.strerror or exc})")
        with contextlib.suppress(OSError):
            self.stream.close()
        return self.failure

    def close(self) -> None:
        """Flush and close; CaptureWriteError when the last of the file cannot be written."""
        with self.lock:
            if self.failure is not None or self.stream.closed:
                return
            try:
                if self.writer is not None:
                    self.writer.close()
                self.stream.close()
            except OSError as exc:
                raise self._failed(exc) from None


class _DataCounter:
    """GRE data packets per tunnel direction, counted on the data handle's thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.packets = 0
        self.unrecorded = 0  # counted but not handed on (the records' consumer lagged)
        self._counts: dict[FlowKey, int] = {}
        self._names: dict[tuple[bytes, bytes, int | None], FlowKey] = {}  # C flows as text
        self.classify = _classifier()

    def _name(self, flow: tuple[bytes, bytes, int | None]) -> FlowKey:
        src, dst, key = flow
        family = socket.AF_INET if len(src) == 4 else socket.AF_INET6
        name = self._names[flow] = (
            socket.inet_ntop(family, src),
            socket.inet_ntop(family, dst),
            key,
        )
        return name

    def count(
        self, linktype: int, frames: list[memoryview]
    ) -> tuple[list[FlowKey | None], list[int]]:
        """Count the data packets among `frames`: each frame's tunnel direction (None when
        it is no data packet), and the indexes of the keepalives among them."""
        classify = self.classify
        names = self._names
        counts = self._counts
        flows: list[FlowKey | None] = []
        keepalives: list[int] = []
        for index, data in enumerate(frames):
            found = classify(linktype, data) if classify is not None else None
            flow: FlowKey | None = None
            if isinstance(found, tuple):  # a data packet: (src, dst, key) as bytes
                flow = names.get(found) or self._name(found)
            elif found is None:  # what the C loop leaves to Python (keepalives, odd GRE)
                decoded = decode_frame(linktype, bytes(data))
                if decoded.kind is FrameKind.DATA:
                    flow = (decoded.src, decoded.dst, decoded.key)
                elif decoded.kind in (FrameKind.REQUEST, FrameKind.REPLY):
                    keepalives.append(index)
            flows.append(flow)
        with self.lock:
            for flow in flows:
                if flow is not None:
                    counts[flow] = counts.get(flow, 0) + 1
                    self.packets += 1
        return flows, keepalives

    def flows(self) -> tuple[int, int, tuple[DataFlow, ...]]:
        """(packets, unrecorded, per direction) so far."""
        with self.lock:
            packets, unrecorded = self.packets, self.unrecorded
            counts = sorted(
                self._counts.items(), key=lambda item: (item[0][0], item[0][1], item[0][2] or -1)
            )
        return packets, unrecorded, tuple(DataFlow(s, d, k, n) for (s, d, k), n in counts)


class LiveCapture:
    """A live capture: call it with a stop event to iterate it (once)."""

    def __init__(
        self,
        interface: str,
        keepalive: _Opener,
        data: _Opener | None,
        output: _PcapFile | None,
        reopen_delay: float,
        record_data: bool = False,
    ) -> None:
        self.interface = interface
        self.record_data = record_data
        self._keepalive = _Handle(keepalive)
        self._data = _Handle(data) if data is not None else None
        self._counter = _DataCounter() if data is not None else None
        self._output = output
        self._reopen_delay = reopen_delay
        self._initially_down: str | None = None
        self._used = False
        self._numbers = 0
        self._numbers_lock = threading.Lock()
        self._forwarded: queue.SimpleQueue[RawFrame | DataRecords] = queue.SimpleQueue()
        self._pending_records = 0  # data packets in `_forwarded`, not yet handed on
        self._programs: dict[int, Any] = {}
        try:
            self._keepalive.attach(keepalive.open())
            if self._data is not None and data is not None:
                self._data.attach(data.open())
            if output is not None:
                output.start(self._keepalive.linktype)
        except _InterfaceDown as exc:
            self._keepalive.close()
            self._initially_down = str(exc)
        except BaseException:
            self._close()
            raise

    def stats(self) -> CaptureStats:
        """The counters now (safe from any thread, also after the capture ended)."""
        data = self._data.stats() if self._data is not None else None
        packets, unrecorded, flows = (
            self._counter.flows() if self._counter is not None else (0, 0, ())
        )
        return CaptureStats(time.time(), self._keepalive.stats(), data, packets, flows, unrecorded)

    def _close(self) -> None:
        self._keepalive.close()
        if self._data is not None:
            self._data.close()
        if self._output is not None:
            self._output.close()

    def __call__(self, stop: threading.Event) -> Iterator[SourceItem]:
        """Yield frames, notices and counters until `stop` is set."""
        if self._used:
            raise RuntimeError("a live capture source can be iterated only once")
        self._used = True
        return self._iterate(stop)

    def _iterate(self, stop: threading.Event) -> Iterator[SourceItem]:
        data_done = threading.Event()
        data_thread: threading.Thread | None = None
        if self._data is not None:
            data_thread = threading.Thread(
                target=self._count_data, args=(stop, data_done), name="live-data", daemon=True
            )
            data_thread.start()
        try:
            yield from self._read_keepalives(stop)
        finally:
            data_done.set()
            if data_thread is not None:
                data_thread.join(_JOIN_TIMEOUT)
            self._close()

    def _number(self, when: float, linktype: int, data: bytes, wire_length: int) -> int:
        """The frame's number: its record number in the ``write`` file, else the count of
        frames handed on so far."""
        if self._output is not None:
            written = self._output.write(when, linktype, data, wire_length)
            if written is not None:
                return written
        with self._numbers_lock:
            self._numbers += 1
            return self._numbers

    def _read_keepalives(self, stop: threading.Event) -> Iterator[SourceItem]:
        handle = self._keepalive
        interface = self.interface
        pcapy = handle.opener.pcapy
        forwarded = self._forwarded
        next_stats = time.monotonic() + STATS_INTERVAL
        if handle.pcap is None:
            yield InterfaceNotice(
                time.time(), f"{interface} is down ({self._initially_down}); waiting for it"
            )
        fd = handle.pcap.getfd() if handle.pcap is not None else -1
        output = self._output
        while not stop.is_set():
            if output is not None and output.failure is not None:
                raise output.failure  # the data thread found the write file failing
            if time.monotonic() >= next_stats:
                next_stats = time.monotonic() + STATS_INTERVAL
                yield self.stats()
            while not forwarded.empty():
                item = forwarded.get_nowait()
                if isinstance(item, DataRecords):
                    with self._numbers_lock:
                        self._pending_records -= item.packets
                yield item
            if handle.pcap is None:
                reopened = yield from _reopen(handle.opener, stop, self._reopen_delay)
                if reopened is None:
                    break
                handle.attach(reopened)
                fd = reopened[0].getfd()
                yield InterfaceNotice(time.time(), f"{interface} re-opened")
                continue
            try:
                with handle.lock:
                    header, data = handle.pcap.next()
            except pcapy.PcapError as exc:
                handle.close()
                yield InterfaceNotice(time.time(), _lost_notice(interface, _one_line(exc)))
                continue
            if header is None:  # nothing buffered: wait a little, then look at `stop`
                select.select([fd], [], [fd], READ_TIMEOUT_MS / 1000)
                continue
            seconds, micros = header.getts()
            when = seconds + micros / 1e6
            payload = bytes(data)
            linktype = handle.linktype
            number = self._number(when, linktype, payload, header.getlen())
            yield RawFrame(number, when, linktype, payload, header.getlen(), 0, 0)

    def _missed_by_keepalive_filter(self, linktype: int, data: bytes) -> bool:
        """True for a keepalive the keepalive handle's filter does not pass (IP-in-IP, IPv6
        extension headers, three VLAN tags): the data handle hands those on."""
        if linktype not in self._programs:
            spec = self._keepalive.opener.bpf_filter
            try:
                expression = spec(linktype) if callable(spec) else spec
                self._programs[linktype] = compile_filter(expression, linktype)
            except (FilterError, ValueError):
                self._programs[linktype] = None  # cannot tell: rather not count it twice
        program = self._programs[linktype]
        return program is not None and not program.filter(data)

    def _count_data(self, stop: threading.Event, done: threading.Event) -> None:
        """The data handle's thread: count (and with ``write`` save) GRE data until told."""
        handle = self._data
        counter = self._counter
        assert handle is not None and counter is not None
        pcapy = handle.opener.pcapy
        while not (stop.is_set() or done.is_set()):
            if handle.pcap is None:
                if stop.wait(self._reopen_delay) or done.is_set():
                    break
                with contextlib.suppress(_InterfaceDown, CaptureOpenError, CapturePermissionError):
                    handle.attach(handle.opener.open())
                continue
            try:
                with handle.lock:
                    packed, meta = handle.pcap.next_batch(DATA_BATCH)
            except pcapy.PcapError:
                handle.close()  # the keepalive thread says what happened to the interface
                continue
            if not meta:
                select.select([handle.pcap.getfd()], [], [], READ_TIMEOUT_MS / 1000)
                continue
            linktype = handle.linktype
            view = memoryview(packed)
            records = list(_META.iter_unpack(meta))
            frames = [view[offset : offset + length] for _s, _u, offset, length in records]
            flows, keepalives = counter.count(linktype, frames)
            missed = {
                index
                for index in keepalives
                if self._missed_by_keepalive_filter(linktype, bytes(frames[index]))
            }
            try:
                numbers = self._number_batch(linktype, records, frames, flows, missed)
            except CaptureWriteError:
                return  # the keepalive thread raises it
            if self.record_data:
                self._hand_on(records, flows, numbers)

    def _number_batch(
        self,
        linktype: int,
        records: list[tuple[int, int, int, int]],
        frames: list[memoryview],
        flows: list[FlowKey | None],
        missed: set[int],
    ) -> list[int]:
        """Number (and with ``write`` save) a batch's data packets and the keepalives only
        it has (handed on to the consumer), in capture order; the data packets' numbers."""
        output = self._output
        kept = [i for i, flow in enumerate(flows) if flow is not None or i in missed]
        if output is None:
            with self._numbers_lock:
                first = self._numbers + 1
                self._numbers += len(kept)
            numbered = dict(zip(kept, range(first, first + len(kept)), strict=True))
        else:
            numbered = {}
            for index in kept:
                seconds, micros, _offset, length = records[index]
                # next_batch gives no wire length: the captured one stands for it
                written = output.write(
                    seconds + micros / 1e6, linktype, bytes(frames[index]), length, flush=False
                )
                numbered[index] = written or 0
            output.flush()
        for index in sorted(missed):
            seconds, micros, _offset, length = records[index]
            data = bytes(frames[index])
            when = seconds + micros / 1e6
            self._forwarded.put(RawFrame(numbered[index], when, linktype, data, length, 0, 0))
        return [numbered[i] for i, flow in enumerate(flows) if flow is not None]

    def _hand_on(
        self,
        records: list[tuple[int, int, int, int]],
        flows: list[FlowKey | None],
        numbers: list[int],
    ) -> None:
        """Queue a batch's data packets as :class:`DataRecords` for the consumer, unless it
        lags :data:`RECORDS_LIMIT` packets behind (those are counted as unrecorded)."""
        columns: dict[FlowKey, tuple[array[float], array[int]]] = {}
        numbered = iter(numbers)
        for (seconds, micros, _offset, _length), flow in zip(records, flows, strict=True):
            if flow is None:
                continue
            column = columns.get(flow)
            if column is None:
                column = columns[flow] = (array("d"), array("q"))
            column[0].append(seconds + micros / 1e6)
            column[1].append(next(numbered))
        packets = len(numbers)
        if not packets:
            return
        with self._numbers_lock:
            lagging = self._pending_records + packets > RECORDS_LIMIT
            if not lagging:
                self._pending_records += packets
        if lagging:
            assert self._counter is not None
            with self._counter.lock:
                self._counter.unrecorded += packets
            return
        self._forwarded.put(DataRecords(columns, packets))


def live_frames(
    interface: str,
    *,
    bpf_filter: FilterSpec,
    data_filter: FilterSpec | None = None,
    write: str | None = None,
    snaplen: int = 262144,
    buffer_size: int = DEFAULT_BUFFER_MB << 20,
    reopen_delay: float = 1.0,
    promiscuous: bool = True,
    record_data: bool = False,
) -> LiveCapture:
    """Open `interface` for capture now; return the source that reads it.

    `bpf_filter` selects the frames the source yields (the keepalives): a libpcap
    expression, or a function of the interface's link type returning one (e.g.
    ``lambda lt: keepalive_filter(include_data=False, linktype=lt)``). With `data_filter`,
    a second handle counts the GRE data it passes (see :meth:`LiveCapture.stats`); each
    handle has a kernel buffer of `buffer_size` bytes; with `record_data` the source also
    yields the counted packets' times and frame numbers (:class:`DataRecords`). Raises
    :class:`CapturePermissionError` or :class:`CaptureOpenError` (one line each).

    The returned source is meant to be iterated once; it closes the capture (and the
    ``write`` file) when its iteration ends.
    """
    keepalive = _Opener(interface, bpf_filter, snaplen, promiscuous, buffer_size)
    data = None
    if data_filter is not None:
        data_snaplen = snaplen if write is not None else min(snaplen, DATA_SNAPLEN)
        data = _Opener(interface, data_filter, data_snaplen, promiscuous, buffer_size)
    output = _PcapFile(write, snaplen) if write is not None else None
    try:
        return LiveCapture(interface, keepalive, data, output, reopen_delay, record_data)
    except BaseException:
        if output is not None:
            with contextlib.suppress(CaptureWriteError):
                output.close()
        raise


def _reopen(
    opener: _Opener, stop: threading.Event, delay: float
) -> Generator[InterfaceNotice, None, tuple[Any, int] | None]:
    """Try to open again every `delay` seconds until it works (the handle) or `stop` is set
    (None); yields a notice whenever the reason it fails changes."""
    last_reason: str | None = None
    while not stop.wait(delay):
        try:
            return opener.open()
        except (_InterfaceDown, CaptureOpenError, CapturePermissionError) as exc:
            reason = str(exc)
            if reason != last_reason and last_reason is not None:
                yield InterfaceNotice(time.time(), f"{opener.interface}: {reason}; still trying")
            last_reason = reason
    return None


class _End:
    pass


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def pump(
    source: FrameSource,
    stop: threading.Event,
    *,
    on_frame: Callable[[RawFrame], None],
    on_notice: Callable[[InterfaceNotice], None],
    on_idle: Callable[[], None],
    on_stats: Callable[[CaptureStats], None] | None = None,
    idle_interval: float = 0.5,
) -> None:
    """Run `source` in a background thread and call back on this thread.

    `on_frame`, `on_notice` and `on_stats` are called in order for everything the source
    yields (counters are dropped without `on_stats`), and
    `on_idle` every `idle_interval` seconds whether or not anything arrives (call
    ``tracker.advance(time.time())`` there) — but only after everything already captured
    has been delivered, so the clock never overtakes queued frames.

    Returns when the source ends: it does once `stop` is set (by a callback, by another
    thread, or here on KeyboardInterrupt, which is re-raised). An exception raised by the
    source is re-raised here.
    """
    items: queue.Queue[SourceItem | _End | _Failed] = queue.Queue(_QUEUE_LIMIT)

    def put(item: SourceItem | _End | _Failed) -> bool:
        while True:
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                if stop.is_set() and not isinstance(item, (_End, _Failed)):
                    return False

    def read() -> None:
        try:
            for item in source(stop):
                if not put(item):
                    break
        except BaseException as exc:  # handed to the consumer thread
            put(_Failed(exc))
        finally:
            put(_End())

    reader = threading.Thread(target=read, name="live-capture", daemon=True)
    reader.start()
    next_idle = time.monotonic() + idle_interval

    def deliver(item: SourceItem | _End | _Failed) -> bool:
        """Hand one item to its callback; False at the end of the source."""
        if isinstance(item, _End):
            return False
        if isinstance(item, _Failed):
            raise item.error
        if isinstance(item, InterfaceNotice):
            on_notice(item)
        elif isinstance(item, CaptureStats):
            if on_stats is not None:
                on_stats(item)
        elif isinstance(item, DataRecords):
            pass  # only handed on when asked for (record_data)
        else:
            on_frame(item)
        return True

    try:
        running = True
        while running:
            if time.monotonic() >= next_idle:
                # Frames already captured go first, so the clock never overtakes them.
                for _ in range(items.qsize()):
                    running = deliver(items.get_nowait())
                    if not running:
                        break
                if not running:
                    break
                on_idle()
                next_idle = max(next_idle + idle_interval, time.monotonic())
            try:
                item = items.get(timeout=max(next_idle - time.monotonic(), 0.0))
            except queue.Empty:
                continue
            running = deliver(item)
    finally:
        stop.set()
        # Unblock a reader waiting for room in the queue, then wait for it to finish.
        deadline = time.monotonic() + _JOIN_TIMEOUT
        while reader.is_alive() and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                while True:
                    items.get_nowait()
            reader.join(0.05)
