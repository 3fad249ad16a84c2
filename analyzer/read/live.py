"""Live capture from a network interface through libpcap (the ``pcapy`` module of pcapy-ng).

:func:`live_frames` opens the interface at once — so a missing permission or a wrong
interface name is reported before any user interface starts — and returns a
:data:`~analyzer.read.sources.FrameSource`: a callable that, given a stop event, yields
:class:`~analyzer.read.capture.RawFrame` records and :class:`~analyzer.read.sources.InterfaceNotice`
messages until the event is set.

* The capture is read in non-blocking mode, waiting at most :data:`READ_TIMEOUT_MS` at a
  time in ``select``, so the stop event is honoured within about that long even when
  nothing arrives. (A blocking read would not do: on Linux, libpcap's read timeout only
  starts once a packet has passed the filter, so on a silent line it blocks for good.)
  Nothing is yielded while the line is silent: a consumer that must act on the wall clock
  (``LiveTracker.advance``) needs its own timer. :func:`pump` provides one: it runs the
  source in a background thread and calls back on the calling thread for every frame,
  every notice, and every ``idle_interval`` seconds.
* When the interface goes down or disappears (libpcap reports "The interface went down"),
  the source yields ``InterfaceNotice("IFACE went down (…); re-opening")``, retries every
  ``reopen_delay`` seconds, and yields ``InterfaceNotice("IFACE re-opened")`` once the
  capture is back. An interface that exists but is down when watching starts is waited
  for the same way.
* ``write``: every captured frame is also appended to a classic pcap file, flushed frame
  by frame so the file can be read while the capture runs. Frame numbers in the yielded
  records are the record numbers in that file.
"""

from __future__ import annotations

import contextlib
import importlib
import queue
import select
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any, BinaryIO, Final

from analyzer.read.bpf import FilterError, linktype_from_dlt
from analyzer.read.capture import PcapWriter, RawFrame
from analyzer.read.sources import FrameSource, InterfaceNotice

__all__ = [
    "READ_TIMEOUT_MS",
    "CaptureOpenError",
    "CapturePermissionError",
    "FilterSpec",
    "live_frames",
    "pump",
]

READ_TIMEOUT_MS: Final = 100  # longest wait for the capture: the stop event's latency
_QUEUE_LIMIT: Final = 65536  # frames buffered between the capture thread and the consumer
_JOIN_TIMEOUT: Final = 5.0

# A filter expression, or a function of the interface's pcap link type (LINKTYPE_) that
# returns one (VLAN tests, for example, only compile for Ethernet).
FilterSpec = str | Callable[[int], str]

_PERMISSION_HINT: Final = (
    "run as root or grant CAP_NET_RAW and CAP_NET_ADMIN: "
    "sudo setcap cap_net_raw,cap_net_admin=eip $(readlink -f $(which python3))"
)


class CapturePermissionError(Exception):
    """The process may not capture (not root, no CAP_NET_RAW/CAP_NET_ADMIN); one line."""


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


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _is_permission_problem(message: str) -> bool:
    lowered = message.lower()
    return "permission" in lowered or "operation not permitted" in lowered


def _is_down(message: str) -> bool:
    return "not up" in message.lower()


def _reason(message: str, interface: str) -> str:
    """libpcap's message without the interface name it starts with."""
    prefix = f"{interface}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


class _Opener:
    """Opens the interface and installs the filter; remembers the link type."""

    def __init__(
        self, interface: str, bpf_filter: FilterSpec, snaplen: int, promiscuous: bool
    ) -> None:
        self.interface = interface
        self.bpf_filter = bpf_filter
        self.snaplen = snaplen
        self.promiscuous = promiscuous
        self.pcapy = _pcapy()

    def open(self) -> tuple[Any, int]:
        """(handle, pcap link type); raises the errors of this module or _InterfaceDown."""
        pcapy = self.pcapy
        interface = self.interface
        try:
            handle = pcapy.open_live(
                interface, self.snaplen, int(self.promiscuous), READ_TIMEOUT_MS
            )
        except pcapy.PcapError as exc:
            message = _one_line(exc)
            if _is_permission_problem(message):
                raise CapturePermissionError(
                    f"cannot capture on {interface}: permission denied ({_PERMISSION_HINT})"
                ) from None
            if _is_down(message):
                raise _InterfaceDown(_reason(message, interface)) from None
            raise CaptureOpenError(
                f"cannot capture on {interface}: {_reason(message, interface)}"
            ) from None
        linktype = linktype_from_dlt(handle.datalink())
        spec = self.bpf_filter
        expression = spec(linktype) if callable(spec) else spec
        try:
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


class _PcapFile:
    """The ``write`` file: opened at once, its header written once the link type is known."""

    def __init__(self, path: str, snaplen: int) -> None:
        self.path = path
        self.snaplen = snaplen
        try:
            self.stream: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise CaptureOpenError(f"{path}: cannot write ({exc.strerror})") from None
        self.writer: PcapWriter | None = None
        self.linktype: int | None = None

    def write(self, frame: RawFrame) -> None:
        if self.writer is None:
            self.writer = PcapWriter(self.stream, frame.linktype, snaplen=self.snaplen)
            self.linktype = frame.linktype
        if frame.linktype != self.linktype:
            return  # a pcap file has one link type; the interface came back as another
        self.writer.write(frame.time, frame.data, frame.wire_length)
        self.stream.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        with contextlib.suppress(OSError):
            self.stream.close()


def live_frames(
    interface: str,
    *,
    bpf_filter: FilterSpec,
    write: str | None = None,
    snaplen: int = 262144,
    reopen_delay: float = 1.0,
    promiscuous: bool = True,
) -> FrameSource:
    """Open `interface` for capture now; return the source that reads it.

    `bpf_filter` is a libpcap expression, or a function of the interface's link type
    returning one (e.g. ``lambda lt: keepalive_filter(include_data=True, linktype=lt)``).
    Raises :class:`CapturePermissionError` or :class:`CaptureOpenError` (one line each).

    The returned source is meant to be iterated once; it closes the capture (and the
    ``write`` file) when its iteration ends.
    """
    opener = _Opener(interface, bpf_filter, snaplen, promiscuous)
    initially_down: str | None = None
    first: tuple[Any, int] | None = None
    try:
        first = opener.open()
    except _InterfaceDown as exc:
        initially_down = str(exc)
    output = _PcapFile(write, snaplen) if write is not None else None
    used = False

    def source(stop: threading.Event) -> Iterator[RawFrame | InterfaceNotice]:
        nonlocal used, first
        if used:
            raise RuntimeError("a live capture source can be iterated only once")
        used = True
        handle: Any = None
        linktype = 0
        fd = -1
        number = 0
        pcapy = opener.pcapy
        try:
            if first is not None:
                handle, linktype = first
                fd = handle.getfd()
                first = None
            else:
                yield InterfaceNotice(
                    time.time(), f"{interface} is down ({initially_down}); waiting for it"
                )
            while not stop.is_set():
                if handle is None:
                    reopened = yield from _reopen(opener, stop, reopen_delay)
                    if reopened is None:
                        break
                    handle, linktype = reopened
                    fd = handle.getfd()
                    yield InterfaceNotice(time.time(), f"{interface} re-opened")
                    continue
                try:
                    header, data = handle.next()
                except pcapy.PcapError as exc:
                    with contextlib.suppress(Exception):
                        handle.close()
                    handle = None
                    yield InterfaceNotice(
                        time.time(), f"{interface} went down ({_one_line(exc)}); re-opening"
                    )
                    continue
                if header is None:  # nothing buffered: wait a little, then look at `stop`
                    select.select([fd], [], [fd], READ_TIMEOUT_MS / 1000)
                    continue
                seconds, micros = header.getts()
                number += 1
                frame = RawFrame(
                    number,
                    seconds + micros / 1e6,
                    linktype,
                    bytes(data),
                    header.getlen(),
                    0,
                    0,
                )
                if output is not None:
                    output.write(frame)
                yield frame
        finally:
            if handle is not None:
                with contextlib.suppress(Exception):
                    handle.close()
            if output is not None:
                output.close()

    return source


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
    idle_interval: float = 0.5,
) -> None:
    """Run `source` in a background thread and call back on this thread.

    `on_frame` and `on_notice` are called in order for everything the source yields, and
    `on_idle` every `idle_interval` seconds whether or not anything arrives (call
    ``tracker.advance(time.time())`` there) — but only after everything already captured
    has been delivered, so the clock never overtakes queued frames.

    Returns when the source ends: it does once `stop` is set (by a callback, by another
    thread, or here on KeyboardInterrupt, which is re-raised). An exception raised by the
    source is re-raised here.
    """
    items: queue.Queue[RawFrame | InterfaceNotice | _End | _Failed] = queue.Queue(_QUEUE_LIMIT)

    def put(item: RawFrame | InterfaceNotice | _End | _Failed) -> bool:
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

    def deliver(item: RawFrame | InterfaceNotice | _End | _Failed) -> bool:
        """Hand one item to its callback; False at the end of the source."""
        if isinstance(item, _End):
            return False
        if isinstance(item, _Failed):
            raise item.error
        if isinstance(item, InterfaceNotice):
            on_notice(item)
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
