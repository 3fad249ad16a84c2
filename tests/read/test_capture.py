"""Tests for analyzer.read.capture: the pure-Python pcap/pcapng reader and the pcap writer.

Fixtures are hand-assembled bytes with a comment on each field, so that every expected
value below can be checked against the file-format specifications by hand.
"""

from __future__ import annotations

import gzip
import io
import os
import random
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest

import analyzer.read.capture as capture_module
from analyzer.read.capture import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_RAW,
    CaptureError,
    CaptureReader,
    HeaderCut,
    PcapWriter,
    RawFrame,
    ReadWarning,
    open_capture,
)
from tests.conftest import REAL_CAPTURES, real_capture_files

REAL_DIR = REAL_CAPTURES

# --------------------------------------------------------------------------- classic pcap

PCAP_LE_USEC = (
    b"\xd4\xc3\xb2\xa1"  # magic 0xa1b2c3d4 stored little-endian: usec timestamps
    b"\x02\x00\x04\x00"  # version 2.4
    b"\x00\x00\x00\x00"  # thiszone 0
    b"\x00\x00\x00\x00"  # sigfigs 0
    b"\xff\xff\x00\x00"  # snaplen 65535
    b"\x01\x00\x00\x00"  # link type 1 (Ethernet)
    # record 1 at byte 24
    b"\x00\x10\x5e\x5f"  # ts_sec 1600000000
    b"\x40\xe2\x01\x00"  # ts_usec 123456
    b"\x04\x00\x00\x00"  # incl_len 4
    b"\x3c\x00\x00\x00"  # orig_len 60
    b"\xde\xad\xbe\xef"  # packet data
)

PCAP_BE_USEC = (
    b"\xa1\xb2\xc3\xd4"  # magic 0xa1b2c3d4 stored big-endian: usec timestamps
    b"\x00\x02\x00\x04"  # version 2.4
    b"\x00\x00\x00\x00"  # thiszone 0
    b"\x00\x00\x00\x00"  # sigfigs 0
    b"\x00\x00\xff\xff"  # snaplen 65535
    b"\x00\x00\x00\x65"  # link type 101 (raw IP)
    # record 1 at byte 24
    b"\x5f\x5e\x10\x00"  # ts_sec 1600000000
    b"\x00\x01\xe2\x40"  # ts_usec 123456
    b"\x00\x00\x00\x04"  # incl_len 4
    b"\x00\x00\x00\x3c"  # orig_len 60
    b"\xde\xad\xbe\xef"  # packet data
)

PCAP_LE_NSEC = (
    b"\x4d\x3c\xb2\xa1"  # magic 0xa1b23c4d stored little-endian: nsec timestamps
    b"\x02\x00\x04\x00"  # version 2.4
    b"\x00\x00\x00\x00"  # thiszone 0
    b"\x00\x00\x00\x00"  # sigfigs 0
    b"\x00\x00\x04\x00"  # snaplen 262144
    b"\x71\x00\x00\x00"  # link type 113 (Linux SLL)
    # record 1 at byte 24
    b"\x00\x10\x5e\x5f"  # ts_sec 1600000000
    b"\x15\xcd\x5b\x07"  # ts_nsec 123456789
    b"\x04\x00\x00\x00"  # incl_len 4
    b"\x3c\x00\x00\x00"  # orig_len 60
    b"\xde\xad\xbe\xef"  # packet data
)

PCAP_BE_NSEC = (
    b"\xa1\xb2\x3c\x4d"  # magic 0xa1b23c4d stored big-endian: nsec timestamps
    b"\x00\x02\x00\x04"  # version 2.4
    b"\x00\x00\x00\x00"  # thiszone 0
    b"\x00\x00\x00\x00"  # sigfigs 0
    b"\x00\x04\x00\x00"  # snaplen 262144
    b"\x00\x00\x00\x0c"  # link type 12 (DLT_RAW on OpenBSD) -> read as 101
    # record 1 at byte 24
    b"\x5f\x5e\x10\x00"  # ts_sec 1600000000
    b"\x07\x5b\xcd\x15"  # ts_nsec 123456789
    b"\x00\x00\x00\x04"  # incl_len 4
    b"\x00\x00\x00\x3c"  # orig_len 60
    b"\xde\xad\xbe\xef"  # packet data
)

PCAP_HEADER_FCS_BITS = (
    b"\xd4\xc3\xb2\xa1"  # magic, little-endian usec
    b"\x02\x00\x04\x00"  # version 2.4
    b"\x00\x00\x00\x00"  # thiszone 0
    b"\x00\x00\x00\x00"  # sigfigs 0
    b"\x30\x00\x00\x00"  # snaplen 48
    b"\x01\x00\x00\x30"  # link type field 0x30000001: FCS bits (F=1, len 1) over DLT 1
)

PCAP_TWO_RECORDS = (
    b"\xd4\xc3\xb2\xa1"  # magic, little-endian usec
    b"\x02\x00\x04\x00"  # version 2.4
    b"\x00\x00\x00\x00"  # thiszone 0
    b"\x00\x00\x00\x00"  # sigfigs 0
    b"\xff\xff\x00\x00"  # snaplen 65535
    b"\x01\x00\x00\x00"  # link type 1 (Ethernet)
    # record 1 at byte 24
    b"\x0a\x00\x00\x00"  # ts_sec 10
    b"\x20\xa1\x07\x00"  # ts_usec 500000
    b"\x04\x00\x00\x00"  # incl_len 4
    b"\x04\x00\x00\x00"  # orig_len 4
    b"\x01\x02\x03\x04"  # packet data
    # record 2 at byte 44
    b"\x0b\x00\x00\x00"  # ts_sec 11
    b"\x00\x00\x00\x00"  # ts_usec 0
    b"\x04\x00\x00\x00"  # incl_len 4
    b"\x40\x00\x00\x00"  # orig_len 64
    b"\x05\x06\x07\x08"  # packet data
)  # 64 bytes: ends exactly at a record boundary


def write(tmp_path: Path, data: bytes, name: str = "cap.pcap") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read_all(path: Path | str, **kwargs: object) -> tuple[CaptureReader, list[RawFrame]]:
    with open_capture(path, **kwargs) as reader:  # type: ignore[arg-type]
        return reader, list(reader)


@pytest.mark.parametrize(
    ("data", "precision", "linktype", "time"),
    [
        (PCAP_LE_USEC, 6, LINKTYPE_ETHERNET, 1_600_000_000 + 123456 / 1e6),
        (PCAP_BE_USEC, 6, LINKTYPE_RAW, 1_600_000_000 + 123456 / 1e6),
        (PCAP_LE_NSEC, 9, LINKTYPE_LINUX_SLL, 1_600_000_000 + 123456789 / 1e9),
        (PCAP_BE_NSEC, 9, LINKTYPE_RAW, 1_600_000_000 + 123456789 / 1e9),
    ],
    ids=["le-usec", "be-usec", "le-nsec", "be-nsec"],
)
def test_pcap_magics(
    tmp_path: Path, data: bytes, precision: int, linktype: int, time: float
) -> None:
    path = write(tmp_path, data)
    reader, frames = read_all(path)
    assert reader.format == "pcap"
    assert reader.compressed is False
    assert reader.precision == precision
    assert reader.warnings == []
    assert reader.total_bytes == len(data) == reader.bytes_read
    assert reader.name == str(path)
    assert frames == [RawFrame(1, time, linktype, b"\xde\xad\xbe\xef", 60, 0, 24)]
    # A float cannot hold nanoseconds at this epoch (its step is ~0.24 us here).
    assert frames[0].time == pytest.approx(1_600_000_000.123456789, abs=1e-6)


def test_linktype_fcs_bits_are_masked(tmp_path: Path) -> None:
    data = PCAP_HEADER_FCS_BITS + (
        b"\x01\x00\x00\x00"  # ts_sec 1
        b"\x00\x00\x00\x00"  # ts_usec 0
        b"\x02\x00\x00\x00"  # incl_len 2
        b"\x00\x00\x04\x00"  # orig_len 262144 (much bigger than caplen and snaplen)
        b"\xaa\xbb"  # packet data
    )
    reader, frames = read_all(write(tmp_path, data))
    assert [(f.linktype, f.data, f.wire_length, f.time) for f in frames] == [
        (LINKTYPE_ETHERNET, b"\xaa\xbb", 262144, 1.0)
    ]
    assert reader.warnings == []


def test_numbering_and_path_objects(tmp_path: Path) -> None:
    path = write(tmp_path, PCAP_TWO_RECORDS)
    reader, frames = read_all(path)  # a pathlib.Path works as well as a str
    assert [(f.number, f.time, f.data, f.wire_length, f.offset) for f in frames] == [
        (1, 10.5, b"\x01\x02\x03\x04", 4, 24),
        (2, 11.0, b"\x05\x06\x07\x08", 64, 44),
    ]
    assert reader.warnings == []  # file ends exactly at a record boundary


def test_truncated_last_record(tmp_path: Path) -> None:
    data = PCAP_TWO_RECORDS[:-2]  # record 2 (at byte 44) loses 2 of its 4 data bytes
    reader, frames = read_all(write(tmp_path, data))
    assert [f.number for f in frames] == [1]
    assert reader.warnings == [
        ReadWarning(
            44, "file ends in the middle of frame 2 (record at byte 44 needs 20 bytes, 18 present)"
        )
    ]


def test_truncated_record_header(tmp_path: Path) -> None:
    data = PCAP_TWO_RECORDS[:50]  # only 6 bytes of record 2's 16-byte header
    reader, frames = read_all(write(tmp_path, data))
    assert [f.number for f in frames] == [1]
    assert reader.warnings == [
        ReadWarning(
            44, "file ends in the middle of frame 2 (record at byte 44 needs 16 bytes, 6 present)"
        )
    ]


def test_absurd_caplen_is_corrupt(tmp_path: Path) -> None:
    data = (
        PCAP_TWO_RECORDS[:44]
        + (
            b"\x0c\x00\x00\x00"  # ts_sec 12
            b"\x00\x00\x00\x00"  # ts_usec 0
            b"\x00\x00\x00\x50"  # incl_len 0x50000000: absurd
            b"\x40\x00\x00\x00"  # orig_len 64
        )
        + b"\x00" * 64
    )
    reader, frames = read_all(write(tmp_path, data))
    assert [f.number for f in frames] == [1]
    assert len(reader.warnings) == 1
    assert reader.warnings[0].offset == 44
    assert "corrupt record header" in reader.warnings[0].message


def test_caplen_bigger_than_snaplen_but_plausible_is_accepted(tmp_path: Path) -> None:
    # snaplen 48 (like tcpdump's gre-heapoverflow-2.pcap) but a 100-byte record: other
    # tools read such files, so must we (10 x snaplen is only "absurd" above 256 KiB).
    data = (
        PCAP_HEADER_FCS_BITS
        + (
            b"\x01\x00\x00\x00"  # ts_sec 1
            b"\x00\x00\x00\x00"  # ts_usec 0
            b"\x64\x00\x00\x00"  # incl_len 100
            b"\x64\x00\x00\x00"  # orig_len 100
        )
        + bytes(100)
    )
    reader, frames = read_all(write(tmp_path, data))
    assert len(frames) == 1 and len(frames[0].data) == 100
    assert reader.warnings == []


# --------------------------------------------------------------------------- pcapng

SHB_LE = (
    b"\x0a\x0d\x0d\x0a"  # block type: Section Header Block
    b"\x1c\x00\x00\x00"  # block total length 28
    b"\x4d\x3c\x2b\x1a"  # byte-order magic 0x1a2b3c4d, little-endian
    b"\x01\x00\x00\x00"  # version 1.0
    b"\xff\xff\xff\xff\xff\xff\xff\xff"  # section length -1 (not specified)
    b"\x1c\x00\x00\x00"  # block total length 28 (trailer)
)

IDB_LE_ETHERNET_NSEC = (
    b"\x01\x00\x00\x00"  # block type: Interface Description Block
    b"\x20\x00\x00\x00"  # block total length 32
    b"\x01\x00"  # link type 1 (Ethernet)
    b"\x00\x00"  # reserved
    b"\x00\x00\x04\x00"  # snaplen 262144
    b"\x09\x00\x01\x00"  # option if_tsresol (9), length 1
    b"\x09\x00\x00\x00"  # 9 -> units of 10^-9 s, + 3 bytes padding
    b"\x00\x00\x00\x00"  # opt_endofopt
    b"\x20\x00\x00\x00"  # block total length 32 (trailer)
)

IDB_LE_RAW_POW2 = (
    b"\x01\x00\x00\x00"  # block type: Interface Description Block
    b"\x2c\x00\x00\x00"  # block total length 44
    b"\x65\x00"  # link type 101 (raw IP)
    b"\x00\x00"  # reserved
    b"\x00\x00\x00\x00"  # snaplen 0 (no limit)
    b"\x09\x00\x01\x00"  # option if_tsresol (9), length 1
    b"\x94\x00\x00\x00"  # 0x94: high bit set -> units of 2^-20 s, + 3 bytes padding
    b"\x0e\x00\x08\x00"  # option if_tsoffset (14), length 8
    b"\xe8\x03\x00\x00\x00\x00\x00\x00"  # +1000 seconds
    b"\x00\x00\x00\x00"  # opt_endofopt
    b"\x2c\x00\x00\x00"  # block total length 44 (trailer)
)

IDB_LE_ETHERNET_DEFAULT = (
    b"\x01\x00\x00\x00"  # block type: Interface Description Block
    b"\x14\x00\x00\x00"  # block total length 20
    b"\x01\x00"  # link type 1 (Ethernet)
    b"\x00\x00"  # reserved
    b"\x00\x00\x00\x00"  # snaplen 0; no options: default resolution 10^-6
    b"\x14\x00\x00\x00"  # block total length 20 (trailer)
)

EPB_LE_IF0 = (
    b"\x06\x00\x00\x00"  # block type: Enhanced Packet Block
    b"\x28\x00\x00\x00"  # block total length 40
    b"\x00\x00\x00\x00"  # interface id 0
    b"\x0d\x12\xd1\x14"  # timestamp high 0x14d1120d
    b"\x80\xb2\xfc\x89"  # timestamp low 0x89fcb280: 1500000000250000000 ns
    b"\x05\x00\x00\x00"  # captured length 5
    b"\x40\x00\x00\x00"  # original length 64
    b"\x45\x00\x00\x14\x00\x00\x00\x00"  # packet data (5 bytes) + 3 bytes padding
    b"\x28\x00\x00\x00"  # block total length 40 (trailer)
)

EPB_LE_IF1 = (
    b"\x06\x00\x00\x00"  # block type: Enhanced Packet Block
    b"\x24\x00\x00\x00"  # block total length 36
    b"\x01\x00\x00\x00"  # interface id 1
    b"\x82\x96\x05\x00"  # timestamp high 0x00059682
    b"\x00\x00\x8c\xb1"  # timestamp low 0xb18c0000: (1499999000 << 20) + 3 * 2^18 ticks
    b"\x04\x00\x00\x00"  # captured length 4
    b"\x04\x00\x00\x00"  # original length 4
    b"\x60\x00\x00\x00"  # packet data (4 bytes)
    b"\x24\x00\x00\x00"  # block total length 36 (trailer)
)

EPB_LE_IF0_LATER = (
    b"\x06\x00\x00\x00"  # block type: Enhanced Packet Block
    b"\x24\x00\x00\x00"  # block total length 36
    b"\x00\x00\x00\x00"  # interface id 0
    b"\x0d\x12\xd1\x14"  # timestamp high 0x14d1120d
    b"\x00\x2f\x7e\xd4"  # timestamp low 0xd47e2f00: 1500000001500000000 ns
    b"\x04\x00\x00\x00"  # captured length 4
    b"\x04\x00\x00\x00"  # original length 4
    b"\xca\xfe\xba\xbe"  # packet data (4 bytes)
    b"\x24\x00\x00\x00"  # block total length 36 (trailer)
)

UNKNOWN_BLOCK = (
    b"\x99\x00\x00\x00"  # block type 0x99: not defined, must be skipped silently
    b"\x14\x00\x00\x00"  # block total length 20
    b"\x01\x02\x03\x04\x05\x06\x07\x08"  # opaque body
    b"\x14\x00\x00\x00"  # block total length 20 (trailer)
)

ISB_LE = (
    b"\x05\x00\x00\x00"  # block type: Interface Statistics Block (not a packet)
    b"\x18\x00\x00\x00"  # block total length 24
    b"\x00\x00\x00\x00"  # interface id 0
    b"\x00\x00\x00\x00"  # timestamp high
    b"\x00\x00\x00\x00"  # timestamp low
    b"\x18\x00\x00\x00"  # block total length 24 (trailer)
)

# Two interfaces with different link types and resolutions, an unknown block, an ISB.
PCAPNG_TWO_IFACES = (
    SHB_LE  # bytes 0-27
    + IDB_LE_ETHERNET_NSEC  # bytes 28-59
    + IDB_LE_RAW_POW2  # bytes 60-103
    + EPB_LE_IF0  # bytes 104-143: frame 1
    + UNKNOWN_BLOCK  # bytes 144-163
    + EPB_LE_IF1  # bytes 164-199: frame 2
    + ISB_LE  # bytes 200-223
    + EPB_LE_IF0_LATER  # bytes 224-259: frame 3
)


def test_pcapng_two_interfaces(tmp_path: Path) -> None:
    reader, frames = read_all(write(tmp_path, PCAPNG_TWO_IFACES, "two.pcapng"))
    assert reader.format == "pcapng"
    assert reader.warnings == []
    # 10^-9 -> 9 digits; 2^-20 s (~0.95 us) needs 7 digits; the maximum wins.
    assert reader.precision == 9
    assert frames == [
        # 1500000000250000000 ns = 1500000000.25 s exactly
        RawFrame(1, 1_500_000_000.25, LINKTYPE_ETHERNET, b"\x45\x00\x00\x14\x00", 64, 0, 104),
        # (1499999000 * 2^20 + 3 * 2^18) / 2^20 = 1499999000.75 s, + if_tsoffset 1000 s
        RawFrame(2, 1_500_000_000.75, LINKTYPE_RAW, b"\x60\x00\x00\x00", 4, 1, 164),
        RawFrame(3, 1_500_000_001.5, LINKTYPE_ETHERNET, b"\xca\xfe\xba\xbe", 4, 0, 224),
    ]


def test_pcapng_precision_known_right_after_open(tmp_path: Path) -> None:
    with open_capture(write(tmp_path, PCAPNG_TWO_IFACES, "two.pcapng")) as reader:
        assert reader.precision == 9  # IDBs after the SHB are read by open_capture
    with open_capture(write(tmp_path, SHB_LE + IDB_LE_RAW_POW2, "pow2.pcapng")) as reader:
        assert reader.precision == 7  # 2^-20 s = 0.95 us: 7 decimals tell ticks apart
    data = SHB_LE + IDB_LE_ETHERNET_DEFAULT
    reader, frames = read_all(write(tmp_path, data, "empty.pcapng"))
    assert (reader.precision, frames, reader.warnings) == (6, [], [])


SHB_BE = (
    b"\x0a\x0d\x0d\x0a"  # block type: Section Header Block (same in both byte orders)
    b"\x00\x00\x00\x1c"  # block total length 28
    b"\x1a\x2b\x3c\x4d"  # byte-order magic, big-endian
    b"\x00\x01\x00\x00"  # version 1.0
    b"\xff\xff\xff\xff\xff\xff\xff\xff"  # section length -1
    b"\x00\x00\x00\x1c"  # block total length 28 (trailer)
)

IDB_BE_SLL_MSEC = (
    b"\x00\x00\x00\x01"  # block type: Interface Description Block
    b"\x00\x00\x00\x20"  # block total length 32
    b"\x00\x71"  # link type 113 (Linux SLL)
    b"\x00\x00"  # reserved
    b"\x00\x00\xff\xff"  # snaplen 65535
    b"\x00\x09\x00\x01"  # option if_tsresol, length 1
    b"\x03\x00\x00\x00"  # 3 -> milliseconds, + padding
    b"\x00\x00\x00\x00"  # opt_endofopt
    b"\x00\x00\x00\x20"  # block total length 32 (trailer)
)

EPB_BE_IF1 = (
    b"\x00\x00\x00\x06"  # block type: Enhanced Packet Block
    b"\x00\x00\x00\x24"  # block total length 36
    b"\x00\x00\x00\x01"  # interface id 1: does not exist in this section
    b"\x00\x00\x00\x00"  # timestamp high
    b"\x00\x00\x00\x01"  # timestamp low
    b"\x00\x00\x00\x04"  # captured length 4
    b"\x00\x00\x00\x04"  # original length 4
    b"\x00\x00\x00\x00"  # packet data
    b"\x00\x00\x00\x24"  # block total length 36 (trailer)
)

EPB_BE_IF0 = (
    b"\x00\x00\x00\x06"  # block type: Enhanced Packet Block
    b"\x00\x00\x00\x24"  # block total length 36
    b"\x00\x00\x00\x00"  # interface id 0
    b"\x00\x00\x00\x00"  # timestamp high
    b"\x00\x00\x07\xd2"  # timestamp low 2002 ms
    b"\x00\x00\x00\x03"  # captured length 3
    b"\x00\x00\x00\x10"  # original length 16
    b"\x00\x04\x00\x00"  # packet data (3 bytes) + 1 byte padding
    b"\x00\x00\x00\x24"  # block total length 36 (trailer)
)


def test_pcapng_sections_reset_interfaces_and_byte_order(tmp_path: Path) -> None:
    data = (
        SHB_LE  # bytes 0-27: section 1, little-endian
        + IDB_LE_ETHERNET_NSEC  # bytes 28-59
        + IDB_LE_RAW_POW2  # bytes 60-103
        + EPB_LE_IF1  # bytes 104-139: frame 1 on interface 1 (raw IP)
        + SHB_BE  # bytes 140-167: section 2, big-endian, interfaces reset
        + IDB_BE_SLL_MSEC  # bytes 168-199: the only interface of section 2
        + EPB_BE_IF1  # bytes 200-235: unknown interface -> warning, skipped
        + EPB_BE_IF0  # bytes 236-271: frame 2
    )
    reader, frames = read_all(write(tmp_path, data, "sections.pcapng"))
    assert [(f.number, f.time, f.linktype, f.interface, f.offset) for f in frames] == [
        (1, 1_500_000_000.75, LINKTYPE_RAW, 1, 104),
        (2, 2.002, LINKTYPE_LINUX_SLL, 0, 236),
    ]
    assert frames[1].data == b"\x00\x04\x00" and frames[1].wire_length == 16
    assert len(reader.warnings) == 1
    assert reader.warnings[0].offset == 200
    assert "unknown interface 1" in reader.warnings[0].message
    assert reader.precision == 9


SPB_LE = (
    b"\x03\x00\x00\x00"  # block type: Simple Packet Block
    b"\x14\x00\x00\x00"  # block total length 20
    b"\x06\x00\x00\x00"  # original length 6
    b"\x11\x22\x33\x44"  # packet data: 4 bytes (interface snaplen is 4)
    b"\x14\x00\x00\x00"  # block total length 20 (trailer)
)

IDB_LE_SNAP4 = (
    b"\x01\x00\x00\x00"  # block type: Interface Description Block
    b"\x14\x00\x00\x00"  # block total length 20
    b"\x01\x00"  # link type 1 (Ethernet)
    b"\x00\x00"  # reserved
    b"\x04\x00\x00\x00"  # snaplen 4
    b"\x14\x00\x00\x00"  # block total length 20 (trailer)
)

EPB_LE_SNAP4 = (
    b"\x06\x00\x00\x00"  # block type: Enhanced Packet Block
    b"\x24\x00\x00\x00"  # block total length 36
    b"\x00\x00\x00\x00"  # interface id 0
    b"\x00\x00\x00\x00"  # timestamp high
    b"\x40\x42\x0f\x00"  # timestamp low 1000000 us = 1.0 s (default resolution)
    b"\x04\x00\x00\x00"  # captured length 4
    b"\x08\x00\x00\x00"  # original length 8
    b"\xaa\xbb\xcc\xdd"  # packet data
    b"\x24\x00\x00\x00"  # block total length 36 (trailer)
)

PB_LE = (
    b"\x02\x00\x00\x00"  # block type: Packet Block (obsolete)
    b"\x24\x00\x00\x00"  # block total length 36
    b"\x00\x00"  # interface id 0 (16 bits)
    b"\x00\x00"  # drops count 0
    b"\x00\x00\x00\x00"  # timestamp high
    b"\xa0\x25\x26\x00"  # timestamp low 2500000 us = 2.5 s
    b"\x02\x00\x00\x00"  # captured length 2
    b"\x02\x00\x00\x00"  # original length 2
    b"\x99\x88\x00\x00"  # packet data (2 bytes) + 2 bytes padding
    b"\x24\x00\x00\x00"  # block total length 36 (trailer)
)


def test_pcapng_simple_and_obsolete_packet_blocks(tmp_path: Path) -> None:
    data = (
        SHB_LE  # bytes 0-27
        + IDB_LE_SNAP4  # bytes 28-47
        + SPB_LE  # bytes 48-67: frame 1, no previous frame -> time 0.0
        + EPB_LE_SNAP4  # bytes 68-103: frame 2 at 1.0 s
        + SPB_LE  # bytes 104-123: frame 3, time of the previous frame
        + PB_LE  # bytes 124-159: frame 4 at 2.5 s
    )
    reader, frames = read_all(write(tmp_path, data, "spb.pcapng"))
    assert reader.warnings == []
    assert frames == [
        RawFrame(1, 0.0, LINKTYPE_ETHERNET, b"\x11\x22\x33\x44", 6, 0, 48),
        RawFrame(2, 1.0, LINKTYPE_ETHERNET, b"\xaa\xbb\xcc\xdd", 8, 0, 68),
        RawFrame(3, 1.0, LINKTYPE_ETHERNET, b"\x11\x22\x33\x44", 6, 0, 104),
        RawFrame(4, 2.5, LINKTYPE_ETHERNET, b"\x99\x88", 2, 0, 124),
    ]


@pytest.mark.parametrize(
    ("bad_block", "reason"),
    [
        (
            b"\x06\x00\x00\x00"  # block type: Enhanced Packet Block
            b"\x0d\x00\x00\x00"  # block total length 13: not a multiple of 4
            b"\x00\x00\x00\x00",  # (would-be body)
            "not a multiple of 4",
        ),
        (
            b"\x99\x00\x00\x00"  # block type 0x99
            b"\x08\x00\x00\x00"  # block total length 8: less than 12
            b"\x08\x00\x00\x00",  # trailer
            "less than 12",
        ),
        (
            b"\x99\x00\x00\x00"  # block type 0x99
            b"\x10\x00\x00\x00"  # block total length 16
            b"\x00\x00\x00\x00"  # body
            b"\x14\x00\x00\x00",  # trailer says 20: disagrees
            "does not match",
        ),
    ],
    ids=["not-multiple-of-4", "too-short", "trailer-mismatch"],
)
def test_pcapng_corrupt_block_length(tmp_path: Path, bad_block: bytes, reason: str) -> None:
    data = (
        SHB_LE  # bytes 0-27
        + IDB_LE_ETHERNET_DEFAULT  # bytes 28-47
        + EPB_LE_SNAP4  # bytes 48-83: frame 1
        + bad_block  # byte 84: corrupt
        + EPB_LE_SNAP4  # never reached
    )
    reader, frames = read_all(write(tmp_path, data, "corrupt.pcapng"))
    assert [(f.number, f.offset) for f in frames] == [(1, 48)]
    assert len(reader.warnings) == 1
    assert reader.warnings[0].offset == 84
    assert reason in reader.warnings[0].message
    assert "corrupt" in reader.warnings[0].message


def test_pcapng_truncated_packet_block(tmp_path: Path) -> None:
    data = SHB_LE + IDB_LE_ETHERNET_DEFAULT + EPB_LE_SNAP4 + EPB_LE_SNAP4[:30]
    reader, frames = read_all(write(tmp_path, data, "trunc.pcapng"))
    assert [f.number for f in frames] == [1]
    assert reader.warnings == [
        ReadWarning(
            84, "file ends in the middle of frame 2 (record at byte 84 needs 36 bytes, 30 present)"
        )
    ]


# --------------------------------------------------------------------------- gzip / stdin


class NonSeekableStream(io.RawIOBase):
    """A pipe-like stream: not seekable, no peek/read1, returns at most 7 bytes a call."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = data
        self.served = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = len(self._data)
        chunk = self._data[self.served : self.served + min(size, 7)]
        self.served += len(chunk)
        return chunk


def test_gzip_file_detected_by_magic(tmp_path: Path) -> None:
    compressed = gzip.compress(PCAP_TWO_RECORDS)
    path = write(tmp_path, compressed, "plain-name.pcap")  # name says nothing about gzip
    reader, frames = read_all(path)
    assert reader.compressed is True
    assert reader.format == "pcap"
    assert [f.time for f in frames] == [10.5, 11.0]
    assert reader.warnings == []
    assert reader.total_bytes == len(compressed)
    assert reader.bytes_read == len(compressed)


def test_gzip_over_non_seekable_stdin() -> None:
    stream = NonSeekableStream(gzip.compress(PCAPNG_TWO_IFACES))
    reader, frames = read_all("-", stdin=stream)
    assert reader.name == "<stdin>"
    assert reader.total_bytes is None
    assert (reader.compressed, reader.format) == (True, "pcapng")
    assert [f.time for f in frames] == [1_500_000_000.25, 1_500_000_000.75, 1_500_000_001.5]


def test_stdin_os_pipe() -> None:
    read_fd, write_fd = os.pipe()

    def feed() -> None:
        with os.fdopen(write_fd, "wb") as pipe:
            for i in range(0, len(PCAP_TWO_RECORDS), 5):  # dribble it in small writes
                pipe.write(PCAP_TWO_RECORDS[i : i + 5])
                pipe.flush()

    feeder = threading.Thread(target=feed)
    feeder.start()
    with os.fdopen(read_fd, "rb") as pipe:
        assert not pipe.seekable()
        reader, frames = read_all("-", stdin=pipe)
    feeder.join()
    assert [f.number for f in frames] == [1, 2]
    assert reader.warnings == []


def test_dash_defaults_to_sys_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(PCAP_LE_NSEC)))
    reader, frames = read_all("-")
    assert reader.name == "<stdin>" and reader.precision == 9 and len(frames) == 1


def many_frames_pcap(count: int, size: int) -> bytes:
    rng = random.Random(1)
    out = io.BytesIO()
    with PcapWriter(out, snaplen=65535) as writer:
        for i in range(count):
            writer.write(1000 + i / 8, rng.randbytes(size))
        return out.getvalue()


def test_truncated_gzip_stream() -> None:
    plain = many_frames_pcap(3000, 200)  # incompressible payloads, ~650 KB
    compressed = gzip.compress(plain)
    reader, frames = read_all("-", stdin=io.BytesIO(compressed[: len(compressed) * 6 // 10]))
    assert 0 < len(frames) < 3000
    assert [f.number for f in frames] == list(range(1, len(frames) + 1))
    assert frames[-1].time == 1000 + (len(frames) - 1) / 8
    assert len(reader.warnings) == 1
    warning = reader.warnings[0]
    assert "gzip" in warning.message
    assert warning.offset == 24 + len(frames) * (16 + 200)  # the record it could not finish


def test_corrupt_gzip_stream(tmp_path: Path) -> None:
    plain = many_frames_pcap(500, 200)
    compressed = bytearray(gzip.compress(plain))
    for i in range(len(compressed) // 2, len(compressed) // 2 + 64):
        compressed[i] ^= 0x5A
    reader, frames = read_all(write(tmp_path, bytes(compressed)))
    assert len(frames) < 500
    assert len(reader.warnings) == 1 and "gzip" in reader.warnings[0].message


def test_frames_are_read_lazily() -> None:
    plain = many_frames_pcap(5000, 1000)  # ~5 MB
    stream = io.BytesIO(plain)
    with open_capture("-", stdin=stream) as reader:
        first = next(iter(reader))
        assert first.number == 1
        assert stream.tell() < 256 * 1024  # only a buffer's worth has been consumed
        assert reader.bytes_read == 24 + 16 + 1000
        count = 1 + sum(1 for _ in reader)
    assert count == 5000


# --------------------------------------------------------------------------- fatal errors


def assert_one_line_error(exc: pytest.ExceptionInfo[CaptureError], name: str, text: str) -> None:
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(f"{name}: "), message
    assert text in message, message


@pytest.mark.parametrize(
    ("data", "text", "cut"),
    [
        (b"", "empty file (0 bytes)", True),
        (
            b"<html><body>404 Not Found</body></html>\n",
            "not a pcap or pcapng file (magic 0x3c68746d)",
            False,
        ),
        (b"\xd4\xc3", "file too short", True),
        (
            b"\xd4\xc3\xb2\xa1"  # magic, little-endian usec
            b"\x02\x00\x04\x00",  # version 2.4, then nothing
            "file too short for a pcap header (8 of 24 bytes)",
            True,
        ),
        (
            b"\x0a\x0d\x0d\x0a"  # block type: Section Header Block
            b"\x1c\x00\x00\x00"  # block total length 28
            b"\x11\x22\x33\x44"  # not a byte-order magic
            b"\x01\x00\x00\x00"  # version 1.0
            b"\xff\xff\xff\xff\xff\xff\xff\xff"  # section length -1
            b"\x1c\x00\x00\x00",  # block total length 28 (trailer)
            "first block is not a valid Section Header Block",
            False,
        ),
        (
            b"\x0a\x0d\x0d\x0a"  # block type: Section Header Block
            b"\x10\x00\x00\x00"  # block total length 16: too short for an SHB
            b"\x4d\x3c\x2b\x1a"  # byte-order magic, little-endian
            b"\x10\x00\x00\x00",  # trailer
            "first block is not a valid Section Header Block",
            False,
        ),
        (SHB_LE[:20], "first block is not a valid Section Header Block", True),
        (gzip.compress(b"hello world"), "not a pcap or pcapng file after gunzip", False),
        (b"\x1f\x8b\x08\x00garbage", "gzip", False),
    ],
    ids=[
        "empty",
        "html",
        "two-bytes",
        "short-pcap-header",
        "bad-bom",
        "short-shb",
        "truncated-shb",
        "gzip-text",
        "bad-gzip",
    ],
)
def test_unreadable_inputs(tmp_path: Path, data: bytes, text: str, cut: bool) -> None:
    """`cut`: the file ends before a packet could begin (a ring buffer's newest file), told
    from files that are something else; read with others, only those are skipped."""
    path = write(tmp_path, data, "wan.pcap")
    with pytest.raises(CaptureError) as exc:
        open_capture(path)
    assert_one_line_error(exc, str(path), text)
    assert isinstance(exc.value, HeaderCut) is cut


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.pcap"
    with pytest.raises(CaptureError) as exc:
        open_capture(path)
    assert_one_line_error(exc, str(path), "no such file")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(CaptureError) as exc:
        open_capture(tmp_path)
    assert_one_line_error(exc, str(tmp_path), "is a directory")


def test_empty_stdin() -> None:
    with pytest.raises(CaptureError) as exc:
        open_capture("-", stdin=io.BytesIO(b""))
    assert_one_line_error(exc, "<stdin>", "empty")


def test_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, PCAP_LE_USEC)
    path.chmod(0)
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # root ignores file modes: simulate

        def deny(*args: object, **kwargs: object) -> None:
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr(capture_module, "open", deny, raising=False)
    with pytest.raises(CaptureError) as exc:
        open_capture(path)
    assert_one_line_error(exc, str(path), "permission denied")


class FailingStream(io.RawIOBase):
    """Serves ``data`` and then fails like a dying disk or a reset network mount."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self._data.read(size)
        if not chunk:
            raise OSError(5, "Input/output error")
        return chunk


def test_io_error_while_iterating_becomes_a_warning() -> None:
    reader, frames = read_all("-", stdin=FailingStream(PCAP_TWO_RECORDS[:50]))
    assert [f.number for f in frames] == [1]
    assert len(reader.warnings) == 1
    assert reader.warnings[0].offset == 44
    assert "read error (Input/output error)" in reader.warnings[0].message


def test_close_stops_iteration() -> None:
    reader = open_capture("-", stdin=io.BytesIO(PCAP_TWO_RECORDS))
    frames = iter(reader)
    assert next(frames).number == 1
    reader.close()
    assert list(frames) == []
    assert list(reader) == []


# --------------------------------------------------------------------------- writer


def test_writer_round_trip_usec(tmp_path: Path) -> None:
    path = tmp_path / "out.pcap"
    with PcapWriter(path) as writer:
        writer.write(0.0, b"\x01")
        writer.write(1.9999999, b"\x02\x03", wire_length=60)  # rounds up to 2.000000
        writer.write(1_600_000_000.25, b"\x04" * 5)
        writer.write(1_234_567_890.000001, b"")
    data = path.read_bytes()
    assert data[:24] == (
        b"\xd4\xc3\xb2\xa1"  # magic, little-endian usec
        b"\x02\x00\x04\x00"  # version 2.4
        b"\x00\x00\x00\x00"  # thiszone
        b"\x00\x00\x00\x00"  # sigfigs
        b"\x00\x00\x04\x00"  # snaplen 262144
        b"\x01\x00\x00\x00"  # link type 1
    )
    assert data[41:57] == (
        b"\x02\x00\x00\x00"  # ts_sec 2
        b"\x00\x00\x00\x00"  # ts_usec 0
        b"\x02\x00\x00\x00"  # incl_len 2
        b"\x3c\x00\x00\x00"  # orig_len 60
    )
    reader, frames = read_all(path)
    assert reader.precision == 6 and reader.warnings == []
    assert [(f.time, f.data, f.wire_length, f.linktype) for f in frames] == [
        (0.0, b"\x01", 1, LINKTYPE_ETHERNET),
        (2.0, b"\x02\x03", 60, LINKTYPE_ETHERNET),
        (1_600_000_000.25, b"\x04" * 5, 5, LINKTYPE_ETHERNET),
        (1_234_567_890 + 1 / 1e6, b"", 0, LINKTYPE_ETHERNET),
    ]


def test_writer_round_trip_nsec() -> None:
    out = io.BytesIO()
    writer = PcapWriter(out, LINKTYPE_RAW, nanosecond=True, snaplen=4)
    writer.write(1.000000001, b"\x45\x00")
    writer.write(7.9999999996, b"\x45\x01\x02\x03\x04\x05")  # rounds to 8.000000000; cut to 4
    writer.write(1_500_000_000.5, b"\x45")
    writer.close()
    data = out.getvalue()
    assert data[:4] == b"\x4d\x3c\xb2\xa1"  # magic 0xa1b23c4d little-endian: nsec
    assert data[24:32] == (
        b"\x01\x00\x00\x00"  # ts_sec 1
        b"\x01\x00\x00\x00"  # ts_nsec 1
    )
    reader, frames = read_all("-", stdin=io.BytesIO(data))
    assert reader.precision == 9 and reader.warnings == []
    assert [(f.time, f.data, f.wire_length, f.linktype) for f in frames] == [
        (1 + 1 / 1e9, b"\x45\x00", 2, LINKTYPE_RAW),
        (8.0, b"\x45\x01\x02\x03", 6, LINKTYPE_RAW),
        (1_500_000_000.5, b"\x45", 1, LINKTYPE_RAW),
    ]


def test_writer_rejects_bad_values() -> None:
    writer = PcapWriter(io.BytesIO())
    with pytest.raises(ValueError):
        writer.write(-1.0, b"")
    with pytest.raises(ValueError):
        writer.write(float("nan"), b"")
    writer.close()
    with pytest.raises(ValueError):
        writer.write(1.0, b"")


# --------------------------------------------------------------------------- real captures


def index_packet_counts() -> dict[str, int]:
    """Parse the markdown table of INDEX.md: file name -> packets column."""
    counts: dict[str, int] = {}
    columns: list[str] | None = None
    for line in (REAL_DIR / "INDEX.md").read_text().splitlines():
        if not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if columns is None:
            columns = cells
            continue
        if set("".join(cells)) <= set("-: "):
            continue  # the |---|---| separator row
        row = dict(zip(columns, cells, strict=True))
        counts[row["file"].strip("`")] = int(row["packets"])
    return counts


def test_real_captures_frame_counts() -> None:
    expected = index_packet_counts()
    files = real_capture_files()
    assert sorted(p.name for p in files) == sorted(expected)
    for path in files:
        reader, frames = read_all(path)
        assert len(frames) == expected[path.name], path.name
        assert reader.warnings == [], path.name
        assert [f.number for f in frames] == list(range(1, len(frames) + 1))
        assert reader.bytes_read == reader.total_bytes
    # The misnamed one really is pcapng.
    assert open_capture(REAL_DIR / "PcapPlusPlus__GrePackets.pcap").format == "pcapng"


@pytest.mark.parametrize(
    ("name", "linktype"),
    [
        ("tcpdump__isis-infinite-loop.pcap", LINKTYPE_LINUX_SLL),
        ("tcpdump__erspan-type-iii-pb-1.pcap", LINKTYPE_RAW),
        ("tcpdump__gre-heapoverflow-2.pcap", LINKTYPE_ETHERNET),  # field is 0x30000001
    ],
)
def test_real_capture_linktypes(name: str, linktype: int) -> None:
    _, frames = read_all(REAL_DIR / name)
    assert {f.linktype for f in frames} == {linktype}


# Only the frame layer and the link layer matter here; not dissecting IP makes tshark ~2x faster.
TSHARK_FIELDS = [
    *("--disable-protocol", "ip", "--disable-protocol", "ipv6", "--disable-protocol", "arp"),
    *("-T", "fields", "-e", "frame.time_epoch", "-e", "frame.protocols"),
]
TSHARK_FIRST_LAYER = {"eth": LINKTYPE_ETHERNET, "sll": LINKTYPE_LINUX_SLL, "raw": LINKTYPE_RAW}


def run_tshark(tshark: str, path: Path) -> list[tuple[float, str]]:
    result = subprocess.run(
        [tshark, "-n", "-r", str(path), *TSHARK_FIELDS],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = []
    for line in result.stdout.splitlines():
        epoch, _, protocols = line.partition("\t")
        rows.append((float(epoch), protocols.split(":")[0]))
    return rows


def compare_with_tshark(frames: list[RawFrame], rows: list[tuple[float, str]], label: str) -> None:
    assert len(frames) == len(rows), label
    for frame, (epoch, layer) in zip(frames, rows, strict=True):
        assert abs(frame.time - epoch) <= 1e-6, (label, frame.number, frame.time, epoch)
        if layer in TSHARK_FIRST_LAYER:
            assert frame.linktype == TSHARK_FIRST_LAYER[layer], (label, frame.number, layer)


def test_real_captures_match_tshark(tmp_path: Path) -> None:
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark not installed: cannot cross-check frame times and link types")

    # A file written by PcapWriter must be readable by tshark too.
    written = tmp_path / "written.pcap"
    with PcapWriter(written, LINKTYPE_RAW) as writer:
        for i, when in enumerate([0.5, 1_700_000_000.123456, 1_700_000_001.9999999]):
            writer.write(when, bytes([0x45, 0, 0, 20 + i]) + bytes(16 + i))
    files = [*real_capture_files(), written]
    ours = {path: read_all(path)[1] for path in files}

    # tshark's first dissected layer for the files whose link type the brief names.
    direct = {
        REAL_DIR / "tcpdump__isis-infinite-loop.pcap": "sll",
        REAL_DIR / "tcpdump__erspan-type-iii-pb-1.pcap": "raw",
        REAL_DIR / "tcpdump__gre-heapoverflow-2.pcap": "eth",  # link-type field 0x30000001
    }

    def check_direct(path: Path, layer: str | None) -> None:
        rows = run_tshark(tshark, path)
        compare_with_tshark(ours[path], rows, path.name)
        if layer is not None:
            assert {first for _, first in rows} == {layer}, path.name

    # Starting tshark costs ~0.4 s, so running it on each of the ~60 files would be slow.
    # Instead all files are also read once as a mergecap concatenation (pcapng, one section
    # per input, file order and timestamps preserved) and compared file by file.
    mergecap = shutil.which("mergecap")
    merged = tmp_path / "all.pcapng"
    jobs: list[Callable[[], None]] = [
        partial(check_direct, p, layer) for p, layer in direct.items()
    ]
    if mergecap is not None:
        subprocess.run(
            [mergecap, "-a", "-F", "pcapng", "-w", str(merged), *map(str, files)],
            capture_output=True,
            timeout=120,
            check=True,
        )

        def check_merged() -> None:
            rows = run_tshark(tshark, merged)
            start = 0
            for path in files:
                count = len(ours[path])
                compare_with_tshark(ours[path], rows[start : start + count], path.name)
                start += count
            assert start == len(rows)

        jobs.append(check_merged)
    else:  # slow path: one tshark per file
        jobs += [partial(check_direct, p, None) for p in files if p not in direct]

    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()


def test_error_messages_name_magic_in_file_order(tmp_path: Path) -> None:
    path = write(tmp_path, b"\x00\x01\x02\x03" + bytes(40), "zeros.pcap")
    with pytest.raises(CaptureError, match=re.escape("(magic 0x00010203)")):
        open_capture(path)


# ------------------------------------------- what libpcap and Wireshark agree on (docs/readers.md)

PCAP_V22_SWAPPED_LENGTHS = (
    b"\xd4\xc3\xb2\xa1"  # magic, little-endian usec
    b"\x02\x00\x02\x00"  # version 2.2: lengths stored wire length first
    b"\x00\x00\x00\x00"  # thiszone 0
    b"\x00\x00\x00\x00"  # sigfigs 0
    b"\xff\xff\x00\x00"  # snaplen 65535
    b"\x01\x00\x00\x00"  # link type 1 (Ethernet)
    # record 1 at byte 24
    b"\x01\x00\x00\x00"  # ts_sec 1
    b"\x00\x00\x00\x00"  # ts_usec 0
    b"\xdc\x05\x00\x00"  # orig_len 1500 (in the captured-length place of 2.4)
    b"\x03\x00\x00\x00"  # incl_len 3
    b"\xaa\xbb\xcc"  # packet data (3 bytes)
    # record 2 at byte 43
    b"\x02\x00\x00\x00"  # ts_sec 2
    b"\x00\x00\x00\x00"  # ts_usec 0
    b"\x02\x00\x00\x00"  # orig_len 2
    b"\x02\x00\x00\x00"  # incl_len 2
    b"\xdd\xee"  # packet data (2 bytes)
)


def test_pcap_2_2_records_give_the_wire_length_first(tmp_path: Path) -> None:
    reader, frames = read_all(write(tmp_path, PCAP_V22_SWAPPED_LENGTHS))
    assert reader.warnings == []
    assert [(f.time, f.data, f.wire_length, f.offset) for f in frames] == [
        (1.0, b"\xaa\xbb\xcc", 1500, 24),
        (2.0, b"\xdd\xee", 2, 43),
    ]


def test_pcap_543_0_of_dg_ux_gives_the_wire_length_first(tmp_path: Path) -> None:
    data = bytearray(PCAP_V22_SWAPPED_LENGTHS)
    data[4:8] = b"\x1f\x02\x00\x00"  # version 543.0 (DG/UX tcpdump)
    _reader, frames = read_all(write(tmp_path, bytes(data)))
    assert [(f.data, f.wire_length) for f in frames] == [(b"\xaa\xbb\xcc", 1500), (b"\xdd\xee", 2)]


PCAP_V25 = (
    b"\xd4\xc3\xb2\xa1"  # magic, little-endian usec
    b"\x02\x00\x05\x00"  # version 2.5: libpcap refuses it, Wireshark reads it as 2.4
    b"\x00\x00\x00\x00"  # thiszone 0
    b"\x00\x00\x00\x00"  # sigfigs 0
    b"\xff\xff\x00\x00"  # snaplen 65535
    b"\x01\x00\x00\x00"  # link type 1 (Ethernet)
    # record 1 at byte 24
    b"\x01\x00\x00\x00"  # ts_sec 1
    b"\x00\x00\x00\x00"  # ts_usec 0
    b"\x03\x00\x00\x00"  # incl_len 3
    b"\xdc\x05\x00\x00"  # orig_len 1500
    b"\xaa\xbb\xcc"  # packet data (3 bytes)
)


def test_pcap_versions_after_2_4_are_read_as_2_4(tmp_path: Path) -> None:
    _reader, frames = read_all(write(tmp_path, PCAP_V25))
    assert [(f.data, f.wire_length) for f in frames] == [(b"\xaa\xbb\xcc", 1500)]


PCAP_V23_MIXED = (
    b"\xd4\xc3\xb2\xa1"  # magic, little-endian usec
    b"\x02\x00\x03\x00"  # version 2.3: either order, told by which length is larger
    b"\x00\x00\x00\x00"  # thiszone 0
    b"\x00\x00\x00\x00"  # sigfigs 0
    b"\xff\xff\x00\x00"  # snaplen 65535
    b"\x01\x00\x00\x00"  # link type 1 (Ethernet)
    # record 1 at byte 24: the old order (first field larger)
    b"\x01\x00\x00\x00"  # ts_sec 1
    b"\x00\x00\x00\x00"  # ts_usec 0
    b"\xdc\x05\x00\x00"  # 1500: larger, so it is the wire length
    b"\x03\x00\x00\x00"  # 3: the captured length
    b"\xaa\xbb\xcc"  # packet data (3 bytes)
    # record 2 at byte 43: the 2.4 order
    b"\x02\x00\x00\x00"  # ts_sec 2
    b"\x00\x00\x00\x00"  # ts_usec 0
    b"\x02\x00\x00\x00"  # incl_len 2
    b"\x40\x00\x00\x00"  # orig_len 64
    b"\xdd\xee"  # packet data (2 bytes)
)


def test_pcap_2_3_swaps_only_records_whose_first_length_is_larger(tmp_path: Path) -> None:
    with open_capture(write(tmp_path, PCAP_V23_MIXED)) as reader:
        frames = list(reader)
        assert reader.captured_length(PCAP_V23_MIXED[24:40]) == 3
        assert reader.captured_length(PCAP_V23_MIXED[43:59]) == 2
    assert [(f.data, f.wire_length) for f in frames] == [(b"\xaa\xbb\xcc", 1500), (b"\xdd\xee", 64)]


PCAP_TOP_BIT_TIMES = (
    b"\xd4\xc3\xb2\xa1"  # magic, little-endian usec
    b"\x02\x00\x04\x00"  # version 2.4
    b"\x00\x00\x00\x00"  # thiszone 0
    b"\x00\x00\x00\x00"  # sigfigs 0
    b"\xff\xff\x00\x00"  # snaplen 65535
    b"\x01\x00\x00\x00"  # link type 1 (Ethernet)
    # record 1 at byte 24
    b"\x00\x00\x00\x80"  # ts_sec 0x80000000 = 2147483648 (unsigned: 2038-01-19 03:14:08)
    b"\x00\x00\x00\x00"  # ts_usec 0
    b"\x01\x00\x00\x00"  # incl_len 1
    b"\x01\x00\x00\x00"  # orig_len 1
    b"\x01"  # packet data
    # record 2 at byte 41
    b"\xff\xff\xff\xff"  # ts_sec 0xffffffff = 4294967295
    b"\xff\xff\xff\xff"  # ts_usec 0xffffffff = 4294967295 us = 4294.967295 s
    b"\x01\x00\x00\x00"  # incl_len 1
    b"\x01\x00\x00\x00"  # orig_len 1
    b"\x02"  # packet data
    # record 3 at byte 58
    b"\x0a\x00\x00\x00"  # ts_sec 10
    b"\x40\x42\x0f\x00"  # ts_usec 1000000: a whole second more
    b"\x00\x00\x00\x00"  # incl_len 0: a zero-length frame
    b"\x00\x00\x00\x00"  # orig_len 0
)


def test_pcap_timestamp_fields_are_unsigned_and_added_as_they_are(tmp_path: Path) -> None:
    _reader, frames = read_all(write(tmp_path, PCAP_TOP_BIT_TIMES))
    assert [(f.time, f.data) for f in frames] == [
        (2147483648.0, b"\x01"),
        (4294967295 + 4294.967295, b"\x02"),
        (11.0, b""),
    ]


IDB_LE_ETHERNET_SECONDS = (
    b"\x01\x00\x00\x00"  # block type: Interface Description Block
    b"\x20\x00\x00\x00"  # block total length 32
    b"\x01\x00"  # link type 1 (Ethernet)
    b"\x00\x00"  # reserved
    b"\x00\x00\x00\x00"  # snaplen 0
    b"\x09\x00\x01\x00"  # option if_tsresol (9), length 1
    b"\x00\x00\x00\x00"  # 0 -> units of 10^0 = 1 s, + 3 bytes padding
    b"\x00\x00\x00\x00"  # opt_endofopt
    b"\x20\x00\x00\x00"  # block total length 32 (trailer)
)

EPB_LE_TS_MAX = (
    b"\x06\x00\x00\x00"  # block type: Enhanced Packet Block
    b"\x20\x00\x00\x00"  # block total length 32
    b"\x00\x00\x00\x00"  # interface id 0
    b"\xff\xff\xff\xff"  # timestamp high 0xffffffff
    b"\xff\xff\xff\xff"  # timestamp low 0xffffffff: 2^64 - 1 ticks of 1 s
    b"\x00\x00\x00\x00"  # captured length 0
    b"\x00\x00\x00\x00"  # original length 0
    b"\x20\x00\x00\x00"  # block total length 32 (trailer)
)


def test_pcapng_timestamps_are_unsigned_64_bit(tmp_path: Path) -> None:
    data = SHB_LE + IDB_LE_ETHERNET_SECONDS + EPB_LE_TS_MAX
    reader, frames = read_all(write(tmp_path, data, "max.pcapng"))
    assert reader.warnings == [] and reader.precision == 0
    assert [(f.time, f.data) for f in frames] == [(float(2**64 - 1), b"")]


def test_pcapng_interface_described_after_a_packet_sets_the_precision(tmp_path: Path) -> None:
    data = (
        SHB_LE  # bytes 0-27
        + IDB_LE_ETHERNET_DEFAULT  # bytes 28-47: interface 0, microseconds
        + EPB_LE_SNAP4  # bytes 48-83: frame 1 at 1.0 s on interface 0
        + IDB_LE_ETHERNET_NSEC  # bytes 84-115: interface 1, nanoseconds
    )
    with open_capture(write(tmp_path, data, "late.pcapng")) as reader:
        assert reader.precision == 6  # all that is known before the first packet
        frames = list(reader)
        assert reader.precision == 9
    assert [f.time for f in frames] == [1.0]


def test_interface_clock_of_an_idb_body() -> None:
    body = IDB_LE_RAW_POW2[8:-4]  # what follows the block length, without the trailer
    assert capture_module.interface_clock(body, "<") == capture_module.InterfaceClock(
        linktype=LINKTYPE_RAW, units=2**20, offset=1000, precision=7
    )
    assert capture_module.interface_clock(IDB_BE_SLL_MSEC[8:-4], ">") == (
        capture_module.InterfaceClock(LINKTYPE_LINUX_SLL, 1000, 0, 3)
    )


def test_interface_clock_refuses_what_the_reader_would_warn_about() -> None:
    cut_option = (
        b"\x01\x00"  # link type 1 (Ethernet)
        b"\x00\x00"  # reserved
        b"\x00\x00\x00\x00"  # snaplen 0
        b"\x09\x00\x08\x00"  # option if_tsresol, length 8: longer than what is left
        b"\x09\x00\x00\x00"  # 4 bytes
    )
    assert capture_module.interface_clock(cut_option, "<") is None
    assert capture_module.interface_clock(b"\x01\x00\x00\x00", "<") is None  # 4 of 8 bytes
