"""The streaming pass of ``analyze`` and ``tui``: a capture read into the keepalive stage's
:class:`~analyzer.keepalive.collect.Collector` by the fast path or the pure-Python reader.

Light to import: the collector is loaded by the decoding thread while libpcap is already
reading (and dpkt only if a frame is left to Python).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from analyzer.read import fastpath
from analyzer.read.capture import CaptureReader
from analyzer.read.fastpath import READER_AUTO, Collected, Progress

if TYPE_CHECKING:
    from analyzer.keepalive.collect import Collector


def new_collector(files: list[str], include_data: bool) -> Collector:
    """A collector for one streaming pass."""
    from analyzer.keepalive.collect import Collector

    return Collector(files, include_data=include_data)


def collect(
    path: str,
    *,
    reader: str = READER_AUTO,
    include_data: bool = True,
    progress: Progress | None = None,
) -> Collected[Collector]:
    """:func:`analyzer.read.fastpath.collect` into a keepalive collector."""
    return fastpath.collect(
        path, new_collector, reader=reader, include_data=include_data, progress=progress
    )


def collect_python(
    reader: CaptureReader, files: list[str], *, include_data: bool = True
) -> Collected[Collector]:
    """The pure-Python reader's streaming pass (followed files, stdin) into a collector."""
    return fastpath.collect_python(reader, files, new_collector, include_data=include_data)
