"""What live frame sources hand to their consumers (watch, TUI, probe)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from analyzer.read.capture import RawFrame


@dataclass(frozen=True, slots=True)
class InterfaceNotice:
    """Something happened to the capture itself (interface down, re-opened, …)."""

    time: float
    message: str  # one line, e.g. "eth0 went down; re-opening" / "eth0 re-opened"


# A live source: called with a stop event, yields frames (and notices) until it is set.
FrameSource = Callable[[threading.Event], Iterator[RawFrame | InterfaceNotice]]
