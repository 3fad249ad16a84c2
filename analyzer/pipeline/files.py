"""Which files a capture argument names: one file, a directory of a ring buffer's files,
or files joined by commas. Standard library only: `analyze` resolves its arguments before
it loads anything heavier."""

from __future__ import annotations

import os

from analyzer.read.capture import CaptureError

# The first bytes of the files a directory's captures are recognised by (name aside:
# tcpdump -C writes wan.pcap1, wan.pcap2, …; -G whatever strftime makes of -w).
CAPTURE_MAGICS = (
    b"\xd4\xc3\xb2\xa1",  # pcap, little-endian, microseconds
    b"\xa1\xb2\xc3\xd4",  # pcap, big-endian
    b"\x4d\x3c\xb2\xa1",  # pcap, little-endian, nanoseconds
    b"\xa1\xb2\x3c\x4d",  # pcap, big-endian, nanoseconds
    b"\x0a\x0d\x0d\x0a",  # pcapng section header
)
GZIP_MAGIC = b"\x1f\x8b"


def default_jobs() -> int:
    """The cores this process may run on."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def capture_files(argument: str) -> list[str]:
    """The files one capture argument names: '-' or a file; a directory (every pcap,
    pcapng or gzip file in it by its first bytes, or an empty one by its name, hidden files
    aside); or files (or directories) joined by
    commas (``a.pcap,b.pcap``; a name that exists as given is one file, commas and all).
    Raises CaptureError when a directory holds no capture."""
    if argument == "-" or os.path.isfile(argument) or not argument:
        return [argument]
    if os.path.isdir(argument):
        found = [
            os.path.join(argument, name)
            for name in sorted(os.listdir(argument))
            if not name.startswith(".") and _looks_like_capture(os.path.join(argument, name))
        ]
        if not found:
            raise CaptureError(f"{argument}: is a directory holding no pcap, pcapng or gzip file")
        return found
    if "," in argument:
        return [path for part in argument.split(",") if part for path in capture_files(part)]
    return [argument]  # missing: the reader says so


def _looks_like_capture(path: str) -> bool:
    try:
        if not os.path.isfile(path):
            return False
        with open(path, "rb") as stream:
            head = stream.read(4)
    except OSError:
        return False
    if head.startswith(GZIP_MAGIC):
        return _gzip_holds_capture(path)
    if len(head) < 4:  # the file a ring buffer had only begun: a capture by its name
        return path.lower().endswith(_CAPTURE_SUFFIXES)
    return head in CAPTURE_MAGICS


# Names capture tools give their files (tcpdump -w/-C/-G, dumpcap -b, editcap), gzipped or not.
_CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz", ".cap.gz")


def _gzip_holds_capture(path: str) -> bool:
    """A gzip file whose first bytes unpacked are a capture's (a compressed log beside the
    ring's files is not); one that cannot be unpacked is left to the reader to name."""
    import gzip
    import zlib

    try:
        with gzip.open(path, "rb") as stream:
            head = stream.read(4)
    except (OSError, EOFError, zlib.error):
        return True
    return head in CAPTURE_MAGICS
