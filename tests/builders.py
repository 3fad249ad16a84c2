"""Build captures frame by frame for tests: each test spells out its own timeline."""

from __future__ import annotations

from dataclasses import dataclass, field

from analyzer.read.capture import RawFrame
from analyzer.read.packet import (
    build_ethernet,
    build_gre_data,
    build_keepalive_request,
    reflect_request,
)

START = 1764115200.0  # 2025-11-26 00:00:00 UTC, the epoch of t = 0 in test timelines


@dataclass
class Capture:
    """Frames in the order they are added; times are seconds after START."""

    vlans: tuple[int, ...] = ()
    frames: list[tuple[float, bytes]] = field(default_factory=list)
    ip_id: int = 1000

    def add(self, t: float, ip_packet: bytes) -> int:
        """Add one IP packet (framed as Ethernet) at t; returns its 1-based frame number."""
        self.frames.append((t, build_ethernet(ip_packet, vlans=self.vlans)))
        return len(self.frames)

    def request(self, t: float, originator: str, peer: str, **kw: object) -> bytes:
        """Add a keepalive request from `originator` (IP IDs like IOS: inner = outer - 1)."""
        self.ip_id += 2
        packet = build_keepalive_request(
            originator,
            peer,
            outer_id=self.ip_id,
            inner_id=self.ip_id - 1,
            **kw,  # type: ignore[arg-type]
        )
        self.add(t, packet)
        return packet

    def reply(self, t: float, request: bytes) -> None:
        """Add the reflection of `request` at t."""
        reflected = reflect_request(request)
        assert reflected is not None
        self.add(t, reflected)

    def data(self, t: float, src: str, dst: str, key: int | None = None) -> None:
        """Add one tunnel data packet."""
        self.ip_id += 1
        self.add(t, build_gre_data(src, dst, key=key, ip_id=self.ip_id))

    def raw_frames(self) -> list[RawFrame]:
        """The frames as the capture reader would yield them."""
        return [
            RawFrame(
                number=i + 1,
                time=round(START + t, 6),
                linktype=1,
                data=data,
                wire_length=len(data),
                interface=0,
                offset=0,
            )
            for i, (t, data) in enumerate(self.frames)
        ]

    def sorted(self) -> Capture:
        """The same frames in time order (as a capture would hold them)."""
        ordered = sorted(self.frames, key=lambda f: f[0])
        return Capture(vlans=self.vlans, frames=ordered, ip_id=self.ip_id)
