"""Pure-Python packet-capture I/O: a streaming pcap/pcapng reader and a classic pcap writer.

This is the analyzer's file-reading layer.  It only uses the standard library.

* :func:`open_capture` / :class:`CaptureReader` read classic pcap (all four magics) and
  pcapng (several sections, several interfaces, EPB/SPB/obsolete PB), optionally
  gzip-compressed (detected by the ``1f 8b`` magic, not by the file name), from a path or
  from stdin (``"-"``, works with non-seekable pipes).  Frames are yielded lazily; memory
  use does not grow with the file size.
* Inputs that cannot be read at all raise :class:`CaptureError` (one human-readable line).
  Damage found part-way through (truncated last record, corrupt block, corrupt gzip data)
  ends the iteration after every good frame before it was yielded, and is reported in
  :attr:`CaptureReader.warnings` as :class:`ReadWarning` objects.
* With ``follow=SECONDS`` a regular file that is still being written is read as it grows
  (like ``tail -f``): reading waits at the end of the file and only ends once it has not
  grown for that many seconds, or :meth:`CaptureReader.stop_following` is called.
* :class:`PcapWriter` writes a standard little-endian classic pcap file.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import os
import stat
import struct
import sys
import time
import zlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Final

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_IPV4",
    "LINKTYPE_IPV6",
    "LINKTYPE_LINUX_SLL",
    "LINKTYPE_LINUX_SLL2",
    "LINKTYPE_LOOP",
    "LINKTYPE_NULL",
    "LINKTYPE_RAW",
    "CaptureError",
    "CaptureReader",
    "InterfaceClock",
    "PcapWriter",
    "RawFrame",
    "ReadWarning",
    "interface_clock",
    "open_capture",
]

LINKTYPE_NULL: Final = 0
LINKTYPE_ETHERNET: Final = 1
LINKTYPE_RAW: Final = 101
LINKTYPE_LOOP: Final = 108
LINKTYPE_LINUX_SLL: Final = 113
LINKTYPE_IPV4: Final = 228
LINKTYPE_IPV6: Final = 229
LINKTYPE_LINUX_SLL2: Final = 276

# The upper bits of the pcap link-type field carry the FCS length ("F" bit + 3 bits).
_LINKTYPE_MASK: Final = 0x03FFFFFF
# Platform-specific DLT_RAW values that some writers put in files unmapped.
_LINKTYPE_ALIASES: Final[dict[int, int]] = {12: LINKTYPE_RAW, 14: LINKTYPE_RAW}

# Classic pcap magics as they appear in the file -> (struct byte order, decimal digits).
_PCAP_MAGICS: Final[dict[bytes, tuple[str, int]]] = {
    b"\xd4\xc3\xb2\xa1": ("<", 6),  # 0xa1b2c3d4 written little-endian, microseconds
    b"\xa1\xb2\xc3\xd4": (">", 6),  # 0xa1b2c3d4 written big-endian, microseconds
    b"\x4d\x3c\xb2\xa1": ("<", 9),  # 0xa1b23c4d written little-endian, nanoseconds
    b"\xa1\xb2\x3c\x4d": (">", 9),  # 0xa1b23c4d written big-endian, nanoseconds
}
_PCAPNG_MAGIC: Final = b"\x0a\x0d\x0d\x0a"  # SHB block type (a palindrome)
_PCAPNG_BOMS: Final[dict[bytes, str]] = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}
_GZIP_MAGIC: Final = b"\x1f\x8b"

# Order of the two length fields of a classic pcap record (see _read_pcap_header).
_LENGTHS_NORMAL: Final = 0  # captured length, then wire length
_LENGTHS_SWAPPED: Final = 1  # wire length, then captured length
_LENGTHS_MAYBE_SWAPPED: Final = 2  # swapped only where the captured length is the larger

_PCAP_HEADER_LEN: Final = 24
_PCAP_RECORD_LEN: Final = 16
_MAX_CAPLEN: Final = 0x4000000  # 64 MiB: larger records are treated as corrupt
_SANE_SNAPLEN: Final = 262144
# A record this long is read by every reader (this module's limit is never lower).
ORDINARY_CAPLEN: Final = _SANE_SNAPLEN

# pcapng block types.
_BT_SHB: Final = 0x0A0D0D0A
_BT_IDB: Final = 0x00000001
_BT_PB: Final = 0x00000002  # obsolete Packet Block
_BT_SPB: Final = 0x00000003
_BT_EPB: Final = 0x00000006
_PACKET_BLOCKS: Final = frozenset({_BT_PB, _BT_SPB, _BT_EPB})
# Blocks we parse (and therefore hold in memory); everything else is skipped in chunks.
_PARSED_BLOCKS: Final = frozenset({_BT_SHB, _BT_IDB, _BT_PB, _BT_SPB, _BT_EPB})
# Minimum total length of each parsed block (header + fixed fields + trailer).
_MIN_BLOCK_LEN: Final[dict[int, int]] = {
    _BT_SHB: 28,
    _BT_IDB: 20,
    _BT_PB: 32,
    _BT_SPB: 16,
    _BT_EPB: 32,
}
_BLOCK_NAMES: Final[dict[int, str]] = {
    _BT_SHB: "Section Header Block",
    _BT_IDB: "Interface Description Block",
    _BT_PB: "Packet Block",
    _BT_SPB: "Simple Packet Block",
    _BT_EPB: "Enhanced Packet Block",
}
_MAX_BLOCK_LEN: Final = _MAX_CAPLEN + 0x10000
_BAD_FIRST_BLOCK: Final = "pcapng file whose first block is not a valid Section Header Block"
_OPT_ENDOFOPT: Final = 0
_OPT_IF_TSRESOL: Final = 9
_OPT_IF_TSOFFSET: Final = 14

_READ_CHUNK: Final = 1 << 20  # never ask the stream for more than this at once
_BUFFER_SIZE: Final = 1 << 16


def _normalize_linktype(value: int) -> int:
    """Mask off the FCS-length bits and map platform DLT_RAW aliases to LINKTYPE_RAW."""
    linktype = value & _LINKTYPE_MASK
    return _LINKTYPE_ALIASES.get(linktype, linktype)


def _one_line(text: str) -> str:
    """Collapse any line breaks so that messages stay on one line."""
    return " ".join(text.split())


@dataclass(frozen=True, slots=True)
class RawFrame:
    """One captured packet as stored in the file (no protocol decoding)."""

    number: int  # 1-based frame number in file order across all interfaces
    time: float  # Unix epoch seconds
    linktype: int  # link type of this frame's interface, FCS-length bits masked off
    data: bytes  # captured bytes
    wire_length: int  # original length on the wire
    interface: int  # pcapng interface id; 0 for classic pcap
    offset: int  # byte offset of the record in the (decompressed) stream


class CaptureError(Exception):
    """Input cannot be read at all.

    ``str(exc)`` is ONE human line naming the file, e.g.
    ``"wan.pcap: not a pcap or pcapng file (magic 0x3c68746d)"``.
    """


class HeaderCut(CaptureError):
    """The file ends inside its file header (or pcapng's first block): it holds no packet.

    The file a capture tool had only begun to write (the newest file of a ring buffer)
    looks so; read with others as one capture, it is skipped with a warning.
    """


@dataclass(frozen=True, slots=True)
class ReadWarning:
    """A problem found while reading that did not make the whole input unreadable."""

    offset: int  # byte offset in the decompressed stream where the problem is
    message: str  # one line


@dataclass(slots=True)
class _Interface:
    """State of one pcapng interface (from its Interface Description Block)."""

    linktype: int
    snaplen: int
    ts_units: int  # timestamp ticks per second
    ts_offset: int  # seconds added to every timestamp (if_tsoffset)
    precision: int  # decimal digits needed to show one tick


@dataclass(frozen=True, slots=True)
class _Block:
    """A complete, length-checked pcapng block (body excludes type, lengths and trailer)."""

    offset: int
    type: int
    body: bytes  # for an SHB: the bytes after the byte-order magic
    endian: str


class _StreamError(Exception):
    """Internal: the underlying stream (or its gzip layer) failed while reading."""


_FOLLOW_POLL: Final = 0.05  # seconds between looks at a followed file that has not grown


class _Follower:
    """When to give up waiting for a growing file: after ``timeout`` s without growth."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.stopped = False
        self._last_growth = time.monotonic()

    def grew(self) -> None:
        self._last_growth = time.monotonic()

    def wait(self) -> bool:
        """Sleep a little; False when it is time to stop waiting (idle too long, or stopped)."""
        if self.stopped or time.monotonic() - self._last_growth >= self.timeout:
            return False
        time.sleep(min(_FOLLOW_POLL, max(self.timeout, 0.0)))
        return not self.stopped


class _RawSource(io.RawIOBase):
    """Unbuffered reader over a binary stream that first replays already-peeked bytes.

    It never seeks, so it works on pipes.  ``consumed`` counts the bytes taken from the
    underlying stream (the compressed size if the data is gzip'd).  With a ``follower``,
    the end of the stream is not the end: it waits for more until the follower gives up.
    """

    def __init__(self, stream: BinaryIO, prefix: bytes, follower: _Follower | None = None) -> None:
        super().__init__()
        self._stream = stream
        self._prefix = prefix
        self._follower = follower
        self.consumed = len(prefix)
        self._fileio = stream if isinstance(stream, io.FileIO) else None
        # read1() returns what is available without waiting to fill the request, which
        # keeps a live pipe (``tcpdump -w - | ...``) responsive.
        self._read1 = getattr(stream, "read1", None)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        view = memoryview(buffer).cast("B")
        if self._prefix:
            n = min(len(view), len(self._prefix))
            view[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        while True:
            if self._fileio is not None:
                got = self._fileio.readinto(view)
                n = got or 0
            else:
                reader = self._read1 if self._read1 is not None else self._stream.read
                data = reader(len(view)) or b""
                n = len(data)
                view[:n] = data
            if n or self._follower is None:
                break
            if not self._follower.wait():
                return 0
        if self._follower is not None:
            self._follower.grew()
        self.consumed += n
        return n


def _tsresol_units(code: int) -> tuple[int, int]:
    """Decode an ``if_tsresol`` byte into (ticks per second, decimal digits of precision)."""
    exponent = code & 0x7F
    if code & 0x80:
        units = 1 << exponent
        digits = 0
        while 10**digits < units:
            digits += 1
        return units, digits
    return 10**exponent, exponent


@dataclass(frozen=True, slots=True)
class InterfaceClock:
    """What a pcapng Interface Description Block says about its packets' link and clock."""

    linktype: int  # FCS-length bits masked off
    units: int  # timestamp ticks per second (if_tsresol)
    offset: int  # seconds added to every timestamp (if_tsoffset)
    precision: int  # decimal digits needed to show one tick


def _parse_interface(body: bytes, endian: str) -> tuple[_Interface, int | None]:
    """An IDB's body (after its length field) -> its interface, and the code of a malformed
    option if there is one (the options from there on are then ignored)."""
    linktype, _reserved, snaplen = struct.unpack_from(endian + "HHI", body)
    ts_units, precision, ts_offset = 10**6, 6, 0
    malformed = None
    pos = 8
    while pos + 4 <= len(body):
        code, size = struct.unpack_from(endian + "HH", body, pos)
        pos += 4
        if code == _OPT_ENDOFOPT:
            break
        value = body[pos : pos + size]
        if len(value) < size:
            malformed = code
            break
        pos += (size + 3) & ~3
        if code == _OPT_IF_TSRESOL and size >= 1:
            ts_units, precision = _tsresol_units(value[0])
        elif code == _OPT_IF_TSOFFSET and size == 8:
            ts_offset = struct.unpack(endian + "q", value)[0]
    interface = _Interface(_normalize_linktype(linktype), snaplen, ts_units, ts_offset, precision)
    return interface, malformed


def interface_clock(body: bytes, endian: str) -> InterfaceClock | None:
    """The link and clock of an Interface Description Block (``body``: what follows its
    length field, ``endian``: struct's byte-order character), or None if this reader would
    warn about it (too short, or a malformed option)."""
    if len(body) < _MIN_BLOCK_LEN[_BT_IDB] - 12:
        return None
    interface, malformed = _parse_interface(body, endian)
    if malformed is not None:
        return None
    return InterfaceClock(
        interface.linktype, interface.ts_units, interface.ts_offset, interface.precision
    )


def warning_line(name: str, offset: int, message: str) -> str:
    """A read problem as reported on stderr and in ``source.warnings``."""
    return f"{name}: byte {offset}: {message}"


def truncation_message(frame: int, start: int, needed: int, present: int) -> str:
    """The warning for a file that ends inside a record (also used by analyzer.read.fastpath)."""
    return (
        f"file ends in the middle of frame {frame} "
        f"(record at byte {start} needs {needed} bytes, {present} present)"
    )


class CaptureReader:
    """Iterate frames of a pcap/pcapng file (optionally gzip-compressed) or of stdin ('-').

    The header is read and validated in the constructor (:class:`CaptureError` if the input
    cannot be read at all).  Iterating yields :class:`RawFrame` objects lazily; a problem
    found part-way through ends the iteration and is recorded in :attr:`warnings`.  The
    reader is single-pass: iterating it again continues where the previous loop stopped.
    It is a context manager; :meth:`close` closes what the reader opened (never stdin).

    Attributes:
        name: display name of the input (``"-"`` is shown as ``"<stdin>"``).
        format: ``"pcap"`` or ``"pcapng"``.
        compressed: True if the input is gzip data (detected by the magic bytes).
        precision: decimal digits of the timestamps (6 for usec pcap, 9 for nsec pcap;
            pcapng: the maximum over the interfaces seen so far, 6 if none yet).
        warnings: problems found while reading.
        total_bytes: size of the input file if known (None for stdin and pipes).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        stdin: BinaryIO | None = None,
        follow: float | None = None,
    ) -> None:
        """Open ``path`` ("-" for stdin, or the given ``stdin`` stream) and read its header.

        ``follow``: keep reading a regular file as it grows, until it has not grown for
        this many seconds (or :meth:`stop_following`); pipes are read to their end anyway.
        """
        spec = os.fspath(path)
        self.name: str = "<stdin>" if spec == "-" else spec
        self.format: str = "pcap"
        self.compressed: bool = False
        self.precision: int = 6
        self.warnings: list[ReadWarning] = []
        self.total_bytes: int | None = None

        self._owned: BinaryIO | None = None  # the file we opened (closed by close())
        self._raw: _RawSource | None = None
        self._buffered: io.BufferedReader | None = None
        self._gzip: gzip.GzipFile | None = None
        self._stream: BinaryIO | gzip.GzipFile | io.BufferedReader | None = None
        self._unread = b""  # bytes pushed back in front of the decompressed stream
        self._offset = 0  # position in the decompressed stream
        self._record_start = 0  # offset of the record currently being read
        self._count = 0  # frames yielded so far
        self._last_time = 0.0
        self._closed = False
        self._generator: Generator[RawFrame, None, None] | None = None
        self._follow = follow
        self._follower: _Follower | None = None

        # classic pcap state
        self._endian = "<"
        self._linktype = LINKTYPE_ETHERNET
        self._snaplen = 0
        self._lengths_order = _LENGTHS_NORMAL
        # pcapng state
        self._interfaces: list[_Interface] = []
        self._pending: _Block | None = None
        self._ended_inside_block = False  # the stream ended in the middle of a pcapng block
        self._max_precision: int | None = None

        try:
            self._open(spec, stdin)
            self._read_header()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ opening

    def _fail(self, what: str, kind: type[CaptureError] = CaptureError) -> CaptureError:
        return kind(_one_line(f"{self.name}: {what}"))

    def _open(self, spec: str, stdin: BinaryIO | None) -> None:
        stream: BinaryIO
        if spec == "-":
            if stdin is None and sys.stdin is None:
                raise self._fail("standard input is closed")
            stream = stdin if stdin is not None else sys.stdin.buffer
            if self._follow is not None:
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    if stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                        self._follower = _Follower(self._follow)
        else:
            try:
                stream = open(spec, "rb", buffering=0)  # noqa: SIM115 - closed by close()
            except FileNotFoundError:
                raise self._fail("no such file") from None
            except IsADirectoryError:
                raise self._fail("is a directory") from None
            except PermissionError:
                raise self._fail("permission denied") from None
            except OSError as exc:
                raise self._fail(f"cannot open ({exc.strerror or exc})") from None
            self._owned = stream
            try:
                info = os.fstat(stream.fileno())
            except OSError as exc:
                raise self._fail(f"cannot stat ({exc.strerror or exc})") from None
            if stat.S_ISDIR(info.st_mode):
                raise self._fail("is a directory")
            if stat.S_ISREG(info.st_mode):
                self.total_bytes = info.st_size
                if self._follow is not None:
                    self._follower = _Follower(self._follow)

        # Peek the first bytes without seeking (stdin may be a pipe).
        prefix = b""
        try:
            while len(prefix) < 4:
                chunk = stream.read(4 - len(prefix))
                if not chunk:
                    if self._follower is not None and self._follower.wait():
                        continue
                    break
                prefix += chunk
                if self._follower is not None:
                    self._follower.grew()
        except IsADirectoryError:
            raise self._fail("is a directory") from None
        except PermissionError:
            raise self._fail("permission denied") from None
        except OSError as exc:
            raise self._fail(f"read error ({exc.strerror or exc})") from None
        if not prefix:
            raise self._fail("empty file (0 bytes)", HeaderCut)

        self._raw = _RawSource(stream, prefix, self._follower)
        self._buffered = io.BufferedReader(self._raw, _BUFFER_SIZE)
        if prefix[:2] == _GZIP_MAGIC:
            self.compressed = True
            self._gzip = gzip.GzipFile(fileobj=self._buffered, mode="rb")
            self._stream = self._gzip
        else:
            self._stream = self._buffered

    def _read_header(self) -> None:
        try:
            magic = self._read(4)
        except _StreamError as exc:
            raise self._fail(str(exc)) from None
        gunzipped = " after gunzip" if self.compressed else ""
        if not magic:
            raise self._fail("empty file (gzip data decompresses to 0 bytes)")
        if len(magic) < 4:
            raise self._fail(
                f"file too short for a pcap or pcapng header ({len(magic)} bytes{gunzipped})",
                HeaderCut,
            )
        if magic in _PCAP_MAGICS:
            self._read_pcap_header(magic)
        elif magic == _PCAPNG_MAGIC:
            self._read_pcapng_header(magic)
        else:
            raise self._fail(f"not a pcap or pcapng file{gunzipped} (magic 0x{magic.hex()})")

    def _read_pcap_header(self, magic: bytes) -> None:
        self.format = "pcap"
        self._endian, self.precision = _PCAP_MAGICS[magic]
        try:
            rest = self._read(_PCAP_HEADER_LEN - 4)
        except _StreamError as exc:
            raise self._fail(str(exc)) from None
        if len(rest) < _PCAP_HEADER_LEN - 4:
            have = 4 + len(rest)
            raise self._fail(
                f"file too short for a pcap header ({have} of {_PCAP_HEADER_LEN} bytes)",
                HeaderCut,
            )
        major, minor, _zone, _sigfigs, snaplen, network = struct.unpack(
            self._endian + "HHiIII", rest
        )
        # Before format 2.3 (and in DG/UX's 543.0) a record gave the wire length first;
        # some 2.3 writers kept that order, told by a captured length above the wire length
        # (libpcap's sf-pcap.c and Wireshark both read it so).
        if (major == 2 and minor < 3) or (major, minor) == (543, 0):
            self._lengths_order = _LENGTHS_SWAPPED
        elif (major, minor) == (2, 3):
            self._lengths_order = _LENGTHS_MAYBE_SWAPPED
        self._snaplen = snaplen
        self._linktype = _normalize_linktype(network)

    def _read_pcapng_header(self, magic: bytes) -> None:
        self.format = "pcapng"
        self._unread = magic
        self._offset = 0
        try:
            first = self._next_block()
        except _StreamError as exc:
            raise self._fail(str(exc)) from None
        if first is None:
            why = self.warnings.pop().message if self.warnings else "no block found"
            kind = HeaderCut if self._ended_inside_block else CaptureError
            raise self._fail(f"{_BAD_FIRST_BLOCK} ({why})", kind)
        problem = self._start_section(first)
        if problem is not None:
            raise self._fail(f"{_BAD_FIRST_BLOCK} ({problem})")
        # Read the Interface Description Blocks that follow, so that ``precision`` is
        # known before iterating; the first other block is kept for the iterator.
        try:
            while True:
                block = self._next_block()
                if block is None:
                    break
                if block.type != _BT_IDB:
                    self._pending = block
                    break
                self._add_interface(block)
        except _StreamError as exc:
            self._warn(self._record_start, f"{exc}; stopping")

    # ------------------------------------------------------------------ low-level reading

    def _read(self, size: int) -> bytes:
        """Read up to ``size`` bytes of the (decompressed) stream; short only at the end."""
        head = b""
        if self._unread:
            head, self._unread = self._unread[:size], self._unread[size:]
            size -= len(head)
            if size == 0:
                self._offset += len(head)
                return head
        assert self._stream is not None
        try:
            if size <= _READ_CHUNK:
                data = self._stream.read(size)
            else:
                parts = []
                remaining = size
                while remaining > 0:
                    part = self._stream.read(min(remaining, _READ_CHUNK))
                    if not part:
                        break
                    parts.append(part)
                    remaining -= len(part)
                data = b"".join(parts)
        except (OSError, EOFError, zlib.error) as exc:
            raise _StreamError(self._describe(exc)) from exc
        if head:
            data = head + data
        self._offset += len(data)
        return data

    def _skip(self, size: int) -> int:
        """Discard up to ``size`` bytes without holding them; return how many were skipped."""
        skipped = 0
        while skipped < size:
            part = self._read(min(size - skipped, _READ_CHUNK))
            if not part:
                break
            skipped += len(part)
        return skipped

    def _describe(self, exc: BaseException) -> str:
        detail = str(exc) or type(exc).__name__
        if self.compressed and isinstance(exc, (EOFError, zlib.error, gzip.BadGzipFile)):
            return _one_line(f"gzip data is corrupt or truncated ({detail})")
        if isinstance(exc, OSError) and exc.strerror:
            detail = exc.strerror
        return _one_line(f"read error ({detail})")

    def _warn(self, offset: int, message: str) -> None:
        self.warnings.append(ReadWarning(offset, _one_line(message)))

    # ------------------------------------------------------------------ iteration

    def __iter__(self) -> Iterator[RawFrame]:
        """Yield the frames lazily (single pass)."""
        if self._generator is None:
            self._generator = self._frames()
        return self._generator

    def _frames(self) -> Generator[RawFrame, None, None]:
        if self._closed:
            return
        try:
            if self.format == "pcap":
                yield from self._pcap_frames()
            else:
                yield from self._pcapng_frames()
        except _StreamError as exc:
            self._warn(self._record_start, f"{exc} at byte {self._record_start}; stopping")
        except (struct.error, ValueError) as exc:  # defensive: no raw error may escape
            self._warn(
                self._record_start,
                f"cannot parse the record at byte {self._record_start} ({exc}); stopping",
            )

    def _truncated(self, start: int, needed: int, present: int) -> None:
        self._warn(start, truncation_message(self._count + 1, start, needed, present))

    def _pcap_frames(self) -> Iterator[RawFrame]:
        # The hot loop: reads the stream directly (no pushback is pending after the
        # global header) and converts stream failures like _read() does.
        assert self._stream is not None and not self._unread
        stream_read = self._stream.read
        unpack = struct.Struct(self._endian + "IIII").unpack
        units = 1e9 if self.precision == 9 else 1e6
        linktype = self._linktype
        snaplen = self._snaplen
        order = self._lengths_order
        limit = _MAX_CAPLEN
        if snaplen > 0:
            limit = min(limit, max(10 * snaplen, _SANE_SNAPLEN))
        start = self._offset
        while True:
            self._record_start = start
            try:
                header = stream_read(_PCAP_RECORD_LEN)
                if len(header) < _PCAP_RECORD_LEN:
                    self._offset = start + len(header)
                    if header:
                        self._truncated(start, _PCAP_RECORD_LEN, len(header))
                    return
                sec, frac, caplen, wire_length = unpack(header)
                if order and (order == _LENGTHS_SWAPPED or caplen > wire_length):
                    caplen, wire_length = wire_length, caplen
                if caplen > limit:
                    self._offset = start + _PCAP_RECORD_LEN
                    self._warn(
                        start,
                        f"corrupt record header for frame {self._count + 1} at byte {start} "
                        f"(captured length {caplen}, snaplen {snaplen}); stopping",
                    )
                    return
                data = stream_read(caplen)
            except (OSError, EOFError, zlib.error) as exc:
                raise _StreamError(self._describe(exc)) from exc
            if len(data) < caplen:
                self._offset = start + _PCAP_RECORD_LEN + len(data)
                self._truncated(start, _PCAP_RECORD_LEN + caplen, _PCAP_RECORD_LEN + len(data))
                return
            self._offset = end = start + _PCAP_RECORD_LEN + caplen
            self._count += 1
            yield RawFrame(self._count, sec + frac / units, linktype, data, wire_length, 0, start)
            start = end

    # ------------------------------------------------------------------ pcapng

    def _next_block(self) -> _Block | None:
        """Read one complete pcapng block; None at the end (with a warning if abnormal)."""
        start = self._offset
        self._record_start = start
        head = self._read(8)
        if len(head) < 8:
            if head:
                self._ended_inside_block = True
                self._warn(
                    start,
                    f"file ends in the middle of a block header at byte {start} "
                    f"(needs 8 bytes, {len(head)} present)",
                )
            return None
        endian = self._endian
        btype = struct.unpack_from(endian + "I", head)[0]
        prefix = b""
        if btype == _BT_SHB:
            prefix = self._read(4)
            if len(prefix) < 4:
                self._block_truncated(start, btype, None, 8 + len(prefix))
                return None
            new_endian = _PCAPNG_BOMS.get(prefix)
            if new_endian is None:
                self._warn(
                    start,
                    f"corrupt Section Header Block at byte {start}: "
                    f"bad byte-order magic 0x{prefix.hex()}; stopping",
                )
                return None
            endian = new_endian
        length = struct.unpack_from(endian + "I", head, 4)[0]
        problem = self._check_length(btype, length)
        if problem is not None:
            self._warn(start, f"corrupt pcapng block at byte {start}: {problem}; stopping")
            return None
        body_len = length - 12 - len(prefix)
        if btype in _PARSED_BLOCKS:
            body = self._read(body_len)
            got = len(body)
        else:
            body = b""
            got = self._skip(body_len)
        if got < body_len:
            self._block_truncated(start, btype, length, 8 + len(prefix) + got)
            return None
        tail = self._read(4)
        if len(tail) < 4:
            self._block_truncated(start, btype, length, length - 4 + len(tail))
            return None
        trailer = struct.unpack(endian + "I", tail)[0]
        if trailer != length:
            self._warn(
                start,
                f"corrupt pcapng block at byte {start}: trailing length copy {trailer} "
                f"does not match the total length {length}; stopping",
            )
            return None
        return _Block(start, btype, body, endian)

    @staticmethod
    def _check_length(btype: int, length: int) -> str | None:
        if length < 12:
            return f"total length {length} is less than 12"
        if length % 4:
            return f"total length {length} is not a multiple of 4"
        if btype in _PARSED_BLOCKS:
            name = _BLOCK_NAMES[btype]
            if length < _MIN_BLOCK_LEN[btype]:
                return f"total length {length} is too short for a {name}"
            if length > _MAX_BLOCK_LEN:
                return f"total length {length} of a {name} is implausibly large"
        return None

    def _block_truncated(self, start: int, btype: int, length: int | None, present: int) -> None:
        self._ended_inside_block = True
        needed = "more than 12" if length is None else str(length)
        if btype in _PACKET_BLOCKS:
            self._truncated(start, length or 0, present)
            return
        self._warn(
            start,
            f"file ends in the middle of a pcapng block (type 0x{btype:08x}) at byte {start} "
            f"(needs {needed} bytes, {present} present)",
        )

    def _start_section(self, block: _Block) -> str | None:
        """Begin a new section; return a problem description if it cannot be read."""
        major, minor = struct.unpack_from(block.endian + "HH", block.body)
        if major != 1:
            return f"unsupported pcapng version {major}.{minor}"
        self._endian = block.endian
        self._interfaces = []
        return None

    def _add_interface(self, block: _Block) -> None:
        interface, malformed = _parse_interface(block.body, block.endian)
        if malformed is not None:
            self._warn(
                block.offset,
                f"Interface Description Block at byte {block.offset} has a malformed "
                f"option {malformed}; ignored the remaining options",
            )
        self._interfaces.append(interface)
        precision = interface.precision
        if self._max_precision is None or precision > self._max_precision:
            self._max_precision = precision
            self.precision = precision

    def _pcapng_frames(self) -> Iterator[RawFrame]:
        while True:
            block = self._pending
            self._pending = None
            if block is None:
                block = self._next_block()
                if block is None:
                    return
            btype = block.type
            if btype in _PACKET_BLOCKS:
                frame = self._packet(block)
                if frame is not None:
                    yield frame
            elif btype == _BT_IDB:
                self._add_interface(block)
            elif btype == _BT_SHB:
                problem = self._start_section(block)
                if problem is not None:
                    self._warn(
                        block.offset,
                        f"Section Header Block at byte {block.offset}: {problem}; stopping",
                    )
                    return
            # any other block type is legal and carries no packet: skipped

    def _packet(self, block: _Block) -> RawFrame | None:
        body = block.body
        endian = block.endian
        name = _BLOCK_NAMES[block.type]
        if block.type == _BT_SPB:
            iface_id = 0
            (wire_length,) = struct.unpack_from(endian + "I", body)
            caplen = min(wire_length, len(body) - 4)
            header = 4
            timestamp = None
        else:
            if block.type == _BT_EPB:
                iface_id, high, low, caplen, wire_length = struct.unpack_from(
                    endian + "IIIII", body
                )
            else:
                iface_id, _drops, high, low, caplen, wire_length = struct.unpack_from(
                    endian + "HHIIII", body
                )
            header = 20
            timestamp = (high << 32) | low
        if iface_id >= len(self._interfaces):
            self._warn(
                block.offset,
                f"{name} at byte {block.offset} refers to unknown interface {iface_id} "
                f"(the section has {len(self._interfaces)}); skipped",
            )
            return None
        iface = self._interfaces[iface_id]
        if timestamp is None:
            if iface.snaplen:
                caplen = min(caplen, iface.snaplen)
            time = self._last_time
        else:
            if caplen > len(body) - header:
                self._warn(
                    block.offset,
                    f"corrupt {name} at byte {block.offset}: captured length {caplen} "
                    f"exceeds the block; skipped",
                )
                return None
            sec, frac = divmod(timestamp, iface.ts_units)
            time = (sec + iface.ts_offset) + frac / iface.ts_units
        self._last_time = time
        self._count += 1
        return RawFrame(
            self._count,
            time,
            iface.linktype,
            body[header : header + caplen],
            wire_length,
            iface_id,
            block.offset,
        )

    # ------------------------------------------------------------------ progress / closing

    def warning_lines(self) -> list[str]:
        """The problems found so far, each as :func:`warning_line` words it."""
        return [warning_line(self.name, w.offset, w.message) for w in self.warnings]

    @property
    def byte_order(self) -> str:
        """struct's byte-order character of the (current section of the) file."""
        return self._endian

    def captured_length(self, record_header: bytes) -> int:
        """Classic pcap: the captured length in a 16-byte record header of this file (its
        byte order and its version's order of the two length fields)."""
        first: int
        second: int
        _sec, _frac, first, second = struct.unpack(self._endian + "IIII", record_header)
        order = self._lengths_order
        if order == _LENGTHS_SWAPPED or (order == _LENGTHS_MAYBE_SWAPPED and first > second):
            return second
        return first

    @property
    def interface_clocks(self) -> list[InterfaceClock]:
        """pcapng: the link and clock of each interface described so far."""
        return [
            InterfaceClock(iface.linktype, iface.ts_units, iface.ts_offset, iface.precision)
            for iface in self._interfaces
        ]

    @property
    def following(self) -> bool:
        """True while a growing file is being followed (``follow=`` on a regular file)."""
        return self._follower is not None and not self._follower.stopped

    def stop_following(self) -> None:
        """Treat the current end of the file as its end (safe to call from a signal handler)."""
        if self._follower is not None:
            self._follower.stopped = True

    @property
    def bytes_read(self) -> int:
        """Bytes consumed so far (of the compressed file if compressed), for progress bars."""
        if self.compressed and self._raw is not None:
            return self._raw.consumed
        return self._offset

    def close(self) -> None:
        """Stop iterating and close everything this reader opened (stdin is left open)."""
        if self._closed:
            return
        self._closed = True
        if self._generator is not None:
            self._generator.close()
        for closable in (self._gzip, self._buffered, self._owned):
            if closable is not None:
                with contextlib.suppress(OSError, EOFError, zlib.error, ValueError):
                    closable.close()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<CaptureReader {self.name!r} format={self.format} compressed={self.compressed} "
            f"frames_read={self._count}>"
        )


def open_capture(
    path: str | os.PathLike[str],
    *,
    stdin: BinaryIO | None = None,
    follow: float | None = None,
) -> CaptureReader:
    """Open a capture file (``"-"`` for stdin) and validate its header.

    ``follow``: read a file that is still being written as it grows, until it has not
    grown for that many seconds (see :class:`CaptureReader`).
    Raises :class:`CaptureError` (one line naming the file) if the input cannot be read.
    """
    return CaptureReader(path, stdin=stdin, follow=follow)


class PcapWriter:
    """Write a classic pcap file (little-endian).

    The global header is written immediately.  Timestamps are rounded to the nearest
    microsecond (or nanosecond with ``nanosecond=True``).  Data longer than a non-zero
    ``snaplen`` is truncated to it (the original length is still recorded).  Usable as a
    context manager; :meth:`close` flushes, and closes the file if the writer opened it.
    """

    def __init__(
        self,
        stream_or_path: BinaryIO | str | os.PathLike[str],
        linktype: int = LINKTYPE_ETHERNET,
        *,
        nanosecond: bool = False,
        snaplen: int = 262144,
    ) -> None:
        """Start a pcap on a binary stream, or create/truncate the file at a path."""
        if not 0 <= linktype <= 0xFFFFFFFF:
            raise ValueError(f"link type {linktype} does not fit in 32 bits")
        if not 0 <= snaplen <= 0xFFFFFFFF:
            raise ValueError(f"snaplen {snaplen} does not fit in 32 bits")
        self._owns = isinstance(stream_or_path, (str, os.PathLike))
        if isinstance(stream_or_path, (str, os.PathLike)):
            self._stream: BinaryIO = open(stream_or_path, "wb")  # noqa: SIM115
        else:
            self._stream = stream_or_path
        self._units = 10**9 if nanosecond else 10**6
        self._snaplen = snaplen
        self._record = struct.Struct("<IIII")
        self._closed = False
        magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
        self._stream.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))

    def write(self, time: float, data: bytes, wire_length: int | None = None) -> None:
        """Append one record; ``wire_length`` defaults to ``len(data)``."""
        if self._closed:
            raise ValueError("write to a closed PcapWriter")
        if not math.isfinite(time) or time < 0:
            raise ValueError(f"timestamp {time!r} cannot be stored in a pcap file")
        sec = math.floor(time)
        frac = round((time - sec) * self._units)  # time - floor(time) is exact for floats
        if frac >= self._units:
            sec += 1
            frac -= self._units
        if sec > 0xFFFFFFFF:
            raise ValueError(f"timestamp {time!r} does not fit in 32-bit seconds")
        wire = len(data) if wire_length is None else wire_length
        if not 0 <= wire <= 0xFFFFFFFF:
            raise ValueError(f"wire length {wire} does not fit in 32 bits")
        if self._snaplen and len(data) > self._snaplen:
            data = data[: self._snaplen]
        self._stream.write(self._record.pack(sec, frac, len(data), wire))
        self._stream.write(data)

    def close(self) -> None:
        """Flush, and close the file if this writer opened it."""
        if self._closed:
            return
        self._closed = True
        self._stream.flush()
        if self._owns:
            self._stream.close()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
