"""Timestamps the calendar cannot show (past 9999, before 1970): every output writes them
raw (@epoch seconds) with a warning, and no timeline is extrapolated across the edge."""

from __future__ import annotations

import csv
import io
import json
import struct
from pathlib import Path
from typing import Any

import pytest

from analyzer.cli import main
from analyzer.keepalive.clock import calendar_edges, in_calendar, utc_text
from analyzer.read.packet import build_ethernet, build_keepalive_request

END_OF_9999 = 253_402_300_800  # 10000-01-01 00:00:00 UTC in Unix seconds


def _block(kind: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


def pcapng(times_us: list[int]) -> bytes:
    """A pcapng file: one Ethernet interface (microseconds) and one keepalive request of
    192.0.2.1 to 198.51.100.1 at each time (none is answered)."""
    shb = _block(
        0x0A0D0D0A,  # Section Header Block
        struct.pack("<I", 0x1A2B3C4D)  # byte-order magic (little-endian)
        + struct.pack("<HH", 1, 0)  # version 1.0
        + struct.pack("<q", -1),  # section length: unknown
    )
    idb = _block(
        1,  # Interface Description Block
        struct.pack("<HH", 1, 0)  # link type 1 (Ethernet), reserved
        + struct.pack("<I", 0),  # snaplen 0: no limit; no options: if_tsresol 6 (µs)
    )
    blocks = [shb, idb]
    for index, stamp in enumerate(times_us):
        frame = build_ethernet(
            build_keepalive_request("192.0.2.1", "198.51.100.1", outer_id=index + 1, inner_id=index)
        )
        blocks.append(
            _block(
                6,  # Enhanced Packet Block
                struct.pack("<I", 0)  # interface 0
                + struct.pack("<II", stamp >> 32, stamp & 0xFFFFFFFF)  # timestamp high, low (µs)
                + struct.pack("<II", len(frame), len(frame))  # captured, original length
                + frame
                + b"\x00" * (-len(frame) % 4),  # padding to 32 bits
            )
        )
    return b"".join(blocks)


@pytest.fixture
def across_the_edge(tmp_path: Path) -> Path:
    """Sends 20 s and 10 s before the year 10000 begins, then 30 s after it: with a period
    of 10 s, ticks at the edge, +10 and +20 would be extrapolated between them."""
    path = tmp_path / "edge.pcapng"
    path.write_bytes(pcapng([(END_OF_9999 + offset) * 1_000_000 for offset in (-20, -10, 30)]))
    return path


def _json(path: Path, tmp_path: Path) -> Any:
    out = tmp_path / "out.json"
    assert main(["analyze", str(path), "--period", "10", "--format", "json", "-o", str(out)]) == 0
    return json.loads(out.read_text())


def test_no_tick_is_extrapolated_across_the_calendar_edge(
    across_the_edge: Path, tmp_path: Path
) -> None:
    document = _json(across_the_edge, tmp_path)
    (tunnel,) = document["tunnels"]
    (originator,) = tunnel["originators"]
    assert originator["extrapolated"] == 0
    assert [k["type"] for k in originator["keepalives"]] == ["sent", "sent", "sent"]


def test_times_outside_the_calendar_are_warned_about(across_the_edge: Path, tmp_path: Path) -> None:
    source = _json(across_the_edge, tmp_path)["source"]
    assert any(
        "1 keepalive timestamp outside the years 1970-9999 (from @253402300830.000000" in w
        for w in source["warnings"]
    ), source["warnings"]


def test_text_writes_them_raw(across_the_edge: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    assert main(["analyze", str(across_the_edge), "--period", "10", "-o", str(out)]) == 0
    text = out.read_text()
    assert "9999-12-31 23:59:40.000000" in text  # still in the calendar: a date
    assert "@253402300830.000000" in text  # past it: raw


def test_csv_writes_the_epoch_seconds(across_the_edge: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    assert main(["analyze", str(across_the_edge), "--format", "csv", "-o", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert rows[-1]["time"] == "253402300830.000000"


@pytest.mark.parametrize("output", ["text", "json", "csv"])
def test_a_capture_wholly_past_9999_is_analysed(tmp_path: Path, output: str) -> None:
    # 10^12 s after the epoch (the year 33,658): three unanswered sends, 10 s apart.
    path = tmp_path / "far.pcapng"
    path.write_bytes(pcapng([(10**12 + k * 10) * 1_000_000 for k in range(3)]))
    assert main(["analyze", str(path), "--format", output, "-o", str(tmp_path / "o")]) == 0


def test_utc_text_writes_a_date_inside_and_raw_seconds_outside() -> None:
    assert utc_text(0.0) == "1970-01-01 00:00:00.000000"
    assert utc_text(END_OF_9999 - 1.5, digits=3) == "9999-12-31 23:59:58.500"
    assert utc_text(END_OF_9999) == "@253402300800.000000"
    assert utc_text(-1.25, date=False, digits=2) == "@-1.25"
    assert utc_text(float("nan")) == "@nan"
    assert not in_calendar(float("inf"))


def test_calendar_edges_are_the_steps_in_or_out() -> None:
    assert calendar_edges([-5.0, 1.0, 2.0, END_OF_9999 + 1.0]) == [
        (-5.0, 1.0),
        (2.0, END_OF_9999 + 1.0),
    ]
