"""Both readers give one answer: libpcap (with the C loop) and the pure-Python reader.

Where libpcap, Wireshark and the file-format specifications disagree, docs/readers.md says
which answer this project takes; here the two readers are held to it: by byte fixtures for
the header survey that decides when libpcap may read a file, by the hostile reproducers in
tests/data/hostile (expected values from tshark and the specifications, worked in the
comments), and by a hypothesis property over generated pcap and pcapng files that carry
every class of disagreement found so far, with GRE keepalives so the analysis has content.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from analyzer.cli import main
from analyzer.pipeline.collect import collect
from analyzer.read.fastpath import FastPathUnavailable
from analyzer.read.packet import build_ethernet, build_gre_data, build_keepalive_request
from analyzer.read.packet import reflect_request as reflect

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = ROOT / "tests" / "data" / "hostile"
START = 1764115200  # 2025-11-26 00:00:00 UTC


def survey(data: bytes, tmp_path: Path) -> tuple[dict[str, int], list[tuple[str, bytes]]]:
    fastscan = importlib.import_module("analyzer.read._fastscan")
    path = tmp_path / "survey.bin"
    path.write_bytes(data)
    with open(path, "rb") as stream:
        found, interfaces = fastscan.survey(stream.fileno())
    return found, interfaces


# --- classic pcap: the C loop notices what libpcap reads differently --------------------

PCAP_HEADER_SNAPLEN_64 = (
    b"\xd4\xc3\xb2\xa1"  # magic 0xa1b2c3d4, little-endian, microseconds
    b"\x02\x00\x04\x00"  # version 2.4
    b"\x00\x00\x00\x00"  # thiszone 0
    b"\x00\x00\x00\x00"  # sigfigs 0
    b"\x40\x00\x00\x00"  # snaplen 64
    b"\x01\x00\x00\x00"  # link type 1 (Ethernet)
)


def pcap_record(seconds: int, fraction: int, caplen: int, wire: int) -> bytes:
    """A little-endian record header and `caplen` zero bytes."""
    return struct.pack("<IIII", seconds, fraction, caplen, wire) + bytes(caplen)


def write(tmp_path: Path, data: bytes, name: str = "capture.pcap") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_libpcap_reads_records_up_to_the_snaplen(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        PCAP_HEADER_SNAPLEN_64
        + pcap_record(START, 999_999, 64, 1500)  # byte 24: cut at the snaplen when captured
        + pcap_record(START + 1, 0, 0, 0),  # byte 104: a zero-length frame
    )
    fast = collect(path, reader="libpcap")
    # frame 1: zeros, an 802.3 frame (type field 0 is a length); frame 2: no Ethernet header
    assert (fast.collector.source.packets, fast.collector.source.malformed) == (2, 1)


def test_libpcap_refuses_a_record_longer_than_the_snaplen(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        PCAP_HEADER_SNAPLEN_64
        + pcap_record(START, 0, 60, 60)  # byte 24: 60 <= 64
        + pcap_record(START, 0, 65, 65),  # byte 100: 65 > 64, libpcap keeps 64 of them
    )
    with pytest.raises(FastPathUnavailable, match=r"snapshot length .* at byte 100"):
        collect(path, reader="libpcap")


def test_libpcap_takes_a_2_2_files_captured_length_from_the_second_field(tmp_path: Path) -> None:
    header = bytearray(PCAP_HEADER_SNAPLEN_64)
    header[4:8] = b"\x02\x00\x02\x00"  # version 2.2: wire length first
    fits = write(tmp_path, bytes(header) + struct.pack("<IIII", START, 0, 1500, 64) + bytes(64))
    assert collect(fits, reader="libpcap").collector.source.packets == 1
    too_long = bytes(header) + struct.pack("<IIII", START, 0, 64, 1500) + bytes(1500)
    with pytest.raises(FastPathUnavailable, match=r"snapshot length .* at byte 24"):
        collect(write(tmp_path, too_long), reader="libpcap")


def test_libpcap_never_gives_another_time_for_a_sub_second_field_over_2_31(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        PCAP_HEADER_SNAPLEN_64
        + pcap_record(0xFFFFFFFF, 0x7FFFFFFF, 0, 0)  # byte 24: read alike by every libpcap
        + pcap_record(START, 0x80000000, 0, 0),  # byte 40: negative in libpcap < 1.10.5
    )
    slow = collect(path, reader="python")
    try:
        fast = collect(path, reader="libpcap")
    except FastPathUnavailable as exc:  # libpcap < 1.10.5 (Debian 12 has 1.10.3)
        assert "sub-second timestamp of 2^31 or more" in str(exc) and "at byte 40" in str(exc)
        return
    assert (fast.collector.source.start, fast.collector.source.end) == (
        slow.collector.source.start,
        slow.collector.source.end,
    )


def test_libpcap_reads_top_bit_seconds_unsigned(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        PCAP_HEADER_SNAPLEN_64
        + pcap_record(0x80000000, 0, 0, 0)  # 2147483648 s: 2038-01-19 03:14:08 UTC
        + pcap_record(0xFFFFFFFF, 500_000, 0, 0),  # 4294967295.5 s: 2106-02-07 06:28:15.5
    )
    source = collect(path, reader="libpcap").collector.source
    assert (source.start, source.end) == (2147483648.0, 4294967295.5)


# --- pcapng: the survey of block headers ----------------------------------------------------

SHB_BE = (
    b"\x0a\x0d\x0d\x0a"  # block type: Section Header Block
    b"\x00\x00\x00\x1c"  # block total length 28
    b"\x1a\x2b\x3c\x4d"  # byte-order magic, big-endian
    b"\x00\x01\x00\x00"  # version 1.0
    b"\xff\xff\xff\xff\xff\xff\xff\xff"  # section length -1
    b"\x00\x00\x00\x1c"  # block total length 28 (trailer)
)
IDB_BE_USEC_BODY = (
    b"\x00\x01"  # link type 1 (Ethernet)
    b"\x00\x00"  # reserved
    b"\x00\x00\x00\x00"  # snaplen 0
)
IDB_BE_USEC = (
    b"\x00\x00\x00\x01"  # block type: Interface Description Block
    b"\x00\x00\x00\x14"  # block total length 20
    + IDB_BE_USEC_BODY
    + b"\x00\x00\x00\x14"  # block total length 20 (trailer)
)
EPB_BE = (
    b"\x00\x00\x00\x06"  # block type: Enhanced Packet Block
    b"\x00\x00\x00\x20"  # block total length 32
    b"\x00\x00\x00\x00"  # interface id 0
    b"\x00\x00\x00\x00"  # timestamp high
    b"\x00\x0f\x42\x40"  # timestamp low 1000000 us = 1 s
    b"\x00\x00\x00\x00"  # captured length 0
    b"\x00\x00\x00\x00"  # original length 0
    b"\x00\x00\x00\x20"  # block total length 32 (trailer)
)
IDB_BE_NSEC_BODY = (
    b"\x00\x01"  # link type 1 (Ethernet)
    b"\x00\x00"  # reserved
    b"\x00\x00\x00\x00"  # snaplen 0
    b"\x00\x09\x00\x01"  # option if_tsresol, length 1
    b"\x09\x00\x00\x00"  # 9: nanoseconds, + 3 bytes padding
    b"\x00\x00\x00\x00"  # opt_endofopt
)
IDB_BE_NSEC = (
    b"\x00\x00\x00\x01"  # block type: Interface Description Block
    b"\x00\x00\x00\x20"  # block total length 32
    + IDB_BE_NSEC_BODY
    + b"\x00\x00\x00\x20"  # block total length 32 (trailer)
)
SPB_BE = (
    b"\x00\x00\x00\x03"  # block type: Simple Packet Block
    b"\x00\x00\x00\x10"  # block total length 16
    b"\x00\x00\x00\x00"  # original length 0
    b"\x00\x00\x00\x10"  # block total length 16 (trailer)
)


def test_survey_lists_every_interface_also_one_after_the_first_packet(tmp_path: Path) -> None:
    data = SHB_BE + IDB_BE_USEC + EPB_BE + IDB_BE_NSEC  # the nsec IDB at byte 80
    assert survey(data, tmp_path) == ({}, [(">", IDB_BE_USEC_BODY), (">", IDB_BE_NSEC_BODY)])


def test_survey_finds_a_simple_packet_block(tmp_path: Path) -> None:
    data = SHB_BE + IDB_BE_USEC + EPB_BE + SPB_BE  # the SPB at byte 28 + 20 + 32
    assert survey(data, tmp_path) == ({"spb": 80}, [(">", IDB_BE_USEC_BODY)])


def test_a_late_nanosecond_interface_keeps_the_fast_path_with_its_precision(
    tmp_path: Path,
) -> None:
    path = tmp_path / "late.pcapng"
    path.write_bytes(SHB_BE + IDB_BE_USEC + EPB_BE + IDB_BE_NSEC)
    fast = collect(str(path), reader="libpcap")
    slow = collect(str(path), reader="python")
    assert fast.precision == slow.precision == 9


def test_libpcap_refuses_a_file_with_a_simple_packet_block(tmp_path: Path) -> None:
    path = tmp_path / "spb.pcapng"
    path.write_bytes(SHB_BE + IDB_BE_USEC + EPB_BE + SPB_BE)
    with pytest.raises(FastPathUnavailable, match=r"Simple Packet Block .* at byte 80"):
        collect(str(path), reader="libpcap")


# --- the CLI, in-process: both readers, the same JSON -------------------------------------


@dataclass(frozen=True)
class Run:
    status: int
    json: str | None
    stderr: str


def analyze(path: Path, reader: str, out_dir: Path) -> Run:
    """`analyze --format json --reader READER`; an exception (a traceback) fails the test."""
    out = out_dir / f"{path.name}.{reader}.json"
    with contextlib.suppress(FileNotFoundError):
        out.unlink()
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        status = main(
            ["analyze", str(path), "--format", "json", "--reader", reader, "-o", str(out)]
        )
    return Run(status, out.read_text() if out.exists() else None, stderr.getvalue())


def assert_readers_agree(path: Path, out_dir: Path) -> tuple[Run, Run]:
    """Exit 0 or 2 and identical JSON from `--reader python` and auto; `--reader libpcap`
    either agrees too or refuses the file in one line (exit 2). Returns (python, auto)."""
    python = analyze(path, "python", out_dir)
    auto = analyze(path, "auto", out_dir)
    libpcap = analyze(path, "libpcap", out_dir)
    for run in (python, auto, libpcap):
        assert "internal" not in run.stderr, run
    assert python.status in (0, 2), python
    assert (auto.status, auto.json) == (python.status, python.json), (python, auto)
    refused = libpcap.status == 2 and libpcap.json is None
    if refused and python.status == 0:
        assert len(libpcap.stderr.splitlines()) == 1, libpcap
        assert "--reader libpcap cannot read it" in libpcap.stderr, libpcap
    else:
        assert (libpcap.status, libpcap.json) == (python.status, python.json), libpcap
    return python, auto


def source_of(run: Run) -> dict[str, object]:
    assert run.json is not None
    source: dict[str, object] = json.loads(run.json)["source"]
    return source


FALLBACK = "with the pure-Python reader, not libpcap"

REPRODUCERS = [
    # (file, whether auto falls back to the Python reader, what the source must say)
    pytest.param(
        # snaplen 40, nine records of 60-62 bytes: Wireshark shows them whole
        "caplen_gt_snaplen.pcap",
        True,
        {"packets": 9, "keepalive_packets": 9, "malformed": 0},
        id="record-longer-than-snaplen",
    ),
    pytest.param("snaplen_1.pcap", True, {"packets": 2, "malformed": 0}, id="snaplen-1"),
    pytest.param(
        # record 2 at byte 24 + 16 + 100 = 140 needs 16 + 62 bytes; 30 are there
        "snaplen40_wrong_offset.pcap",
        True,
        {
            "packets": 1,
            "warnings": [
                "tests/data/hostile/snaplen40_wrong_offset.pcap: byte 140: file ends in the "
                "middle of frame 2 (record at byte 140 needs 78 bytes, 30 present)"
            ],
        },
        id="truncation-offset",
    ),
    pytest.param(
        # seconds 0x80000000, unsigned: 2038-01-19 03:14:08 UTC; reply 20 ms later
        "ts_2038.pcap",
        False,
        {"start": 2147483648.0, "end": 2147483648.02},
        id="top-bit-seconds",
    ),
    pytest.param(
        # first record: 1764115200 s + 0xffffffff us = 1764115200 + 4294.967295 s
        "usec_ffffffff.pcap",
        True,
        {"start": 1764115201.0, "end": 1764115200 + 4294.967295},
        id="sub-second-field-over-2^31",
    ),
    pytest.param(
        # the SPB (a reply) takes the previous packet's time 1764115200.0
        "spb_reply.pcapng",
        True,
        {"packets": 2, "start": 1764115200.0, "end": 1764115200.0},
        id="simple-packet-block",
    ),
    pytest.param(
        # the second EPB is on a nanosecond interface described after the first packet
        "late_idb_ns.pcapng",
        False,
        {"start": 1000.0, "end": 1000.020000123},
        id="late-nanosecond-idb",
    ),
    pytest.param(
        # 2^64 - 1 ticks of 1 s, unsigned (libpcap and Wireshark wrap it to -1)
        "epb_ts_u64max_1s.pcapng",
        False,
        {"start": float(2**64 - 1)},
        id="pcapng-time-past-2^63",
    ),
    pytest.param(
        # nine records with the wire length (1460/1462) before the captured length (60/62)
        "v22_old_format.pcap",
        False,
        {"packets": 9, "keepalive_packets": 9, "malformed": 0},
        id="pcap-2.2",
    ),
    pytest.param(
        # one record of 0 bytes: a frame too short for its Ethernet header
        "caplen0_only.pcap",
        False,
        {
            "packets": 1,
            "malformed": 1,
            "errors": [{"frame": 1, "reason": "link-layer header truncated"}],
        },
        id="zero-length-frame",
    ),
]


@pytest.mark.parametrize(("name", "falls_back", "expected"), REPRODUCERS)
def test_hostile_reproducers_give_one_answer(
    name: str,
    falls_back: bool,
    expected: dict[str, object],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)  # file names in the JSON are as given: relative to the repository
    python, auto = assert_readers_agree(Path("tests/data/hostile") / name, tmp_path)
    assert python.status == 0
    assert (FALLBACK in auto.stderr) is falls_back, auto.stderr
    source = source_of(python)
    assert {key: source[key] for key in expected} == expected


def test_every_capture_in_the_repository_gives_one_answer(tmp_path: Path) -> None:
    captures = sorted(
        p
        for folder in ("captures", "tests/data/real", "tests/data/hostile")
        for p in (ROOT / folder).glob("*")
        if p.suffix in (".pcap", ".pcapng", ".cap")
    )
    assert len(captures) > 20
    for path in captures:
        assert_readers_agree(path, tmp_path)


JSON = ("--format", "json", "--reader", "libpcap")


def test_a_zero_length_frame_reaches_python_as_empty_bytes_in_a_process(tmp_path: Path) -> None:
    # The C loop once handed None here ("internal decoder error (TypeError...)").
    result = subprocess.run(
        [sys.executable, "-m", "analyzer", "analyze", str(HOSTILE / "caplen0_only.pcap"), *JSON],
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0 and result.stderr == b"", result.stderr
    assert json.loads(result.stdout)["source"]["errors"] == [
        {"frame": 1, "reason": "link-layer header truncated"}
    ]


# --- generated captures ---------------------------------------------------------------------

ORIGINATOR, PEER = "192.0.2.1", "198.51.100.1"


@st.composite
def frames(draw: st.DrawFn) -> list[bytes]:
    """Frames of a GRE keepalive exchange: requests, their reflections, data, oddities."""
    request = build_ethernet(build_keepalive_request(ORIGINATOR, PEER, outer_id=7, inner_id=6))
    reply = reflect(build_keepalive_request(ORIGINATOR, PEER, outer_id=7, inner_id=6))
    assert reply is not None
    pool = [
        request,
        build_ethernet(reply),
        build_ethernet(build_gre_data(ORIGINATOR, PEER, key=5)),
        b"",  # a zero-length frame
        request[:20],  # cut inside the IP header
    ]
    return draw(st.lists(st.sampled_from(pool), min_size=1, max_size=12))


PCAP_ODDITIES = [
    "top-bit seconds",  # 2^31 s or more: 2038-2106 (signed in libpcap < 1.10.5)
    "sub-second field of a second or more",
    "sub-second field with the top bit set",
    "records longer than the snaplen",
    "snaplen 0",
    "wire length over captured length",
    "cut short",
]


@st.composite
def pcap_files(draw: st.DrawFn) -> tuple[bytes, set[str]]:
    """A classic pcap: either byte order, µs or ns, versions 2.4/2.3/2.2/543.0/2.5, and up
    to two oddities (each on a random frame, or on the file)."""
    odd = draw(st.sets(st.sampled_from(PCAP_ODDITIES), max_size=2))
    endian = draw(st.sampled_from("<>"))
    magic = draw(st.sampled_from([0xA1B2C3D4, 0xA1B23C4D]))
    version = draw(st.sampled_from([(2, 4), (2, 3), (2, 2), (543, 0), (2, 5)]))
    snaplen = 65535
    if "records longer than the snaplen" in odd:
        snaplen = draw(st.sampled_from([1, 40, 61]))
    elif "snaplen 0" in odd:
        snaplen = 0
    out = struct.pack(endian + "IHHiIII", magic, *version, 0, 0, snaplen, 1)
    payloads = draw(frames())
    pick = draw(st.integers(0, len(payloads) - 1))  # the frame that gets the odd times
    base = START
    if "top-bit seconds" in odd:
        base = draw(st.sampled_from([0x80000000, 0xFFFFFFFF - len(payloads)]))
    for index, data in enumerate(payloads):
        fraction = 20_000 * index
        if index == pick and "sub-second field of a second or more" in odd:
            fraction = draw(st.integers(1_000_000, 0x7FFFFFFF))
        if index == pick and "sub-second field with the top bit set" in odd:
            fraction = draw(st.integers(0x80000000, 0xFFFFFFFF))
        wire = len(data) + (1400 if "wire length over captured length" in odd else 0)
        old_order = version[0] == 543 or version < (2, 3)
        if version == (2, 3):
            old_order = draw(st.booleans())
        lengths = (wire, len(data)) if old_order else (len(data), wire)
        out += struct.pack(endian + "IIII", base + index, fraction, *lengths) + data
    if "cut short" in odd:
        out = out[: draw(st.integers(24, len(out) - 1))]
    return out, odd


def block(endian: str, block_type: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    length = 12 + len(body)
    return struct.pack(endian + "II", block_type, length) + body + struct.pack(endian + "I", length)


def idb(endian: str, resolution: int | None, snaplen: int, offset: int | None) -> bytes:
    options = b""
    if resolution is not None:
        options += struct.pack(endian + "HH", 9, 1) + bytes([resolution, 0, 0, 0])
    if offset is not None:
        options += struct.pack(endian + "HHq", 14, 8, offset)
    if options:
        options += struct.pack(endian + "HH", 0, 0)
    return block(endian, 1, struct.pack(endian + "HHI", 1, 0, snaplen) + options)


PCAPNG_ODDITIES = [
    "Simple Packet Blocks",
    "obsolete Packet Blocks",
    "an interface described after the first packet",
    "timestamps of 2^63 ticks or more",
    "records longer than the snaplen",
    "zero-length frames",
    "a 2^-20 s clock",
    "a timestamp offset",
    "cut short",
]
RESOLUTIONS = [None, 6, 9, 3, 0]  # if_tsresol: absent (µs), µs, ns, ms, s


@st.composite
def pcapng_files(draw: st.DrawFn) -> tuple[bytes, set[str]]:
    """A pcapng: either byte order, EPBs on interfaces of decimal resolutions, and up to
    two oddities."""
    odd = draw(st.sets(st.sampled_from(PCAPNG_ODDITIES), max_size=2))
    endian = draw(st.sampled_from("<>"))
    out = block(endian, 0x0A0D0D0A, struct.pack(endian + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    snaplen = draw(st.sampled_from([40, 61])) if "records longer than the snaplen" in odd else 0

    def interface(first: bool) -> tuple[bytes, int]:
        resolution = draw(st.sampled_from(RESOLUTIONS))
        if first and "a 2^-20 s clock" in odd:
            resolution = 0x94
        offset = 1000 if first and "a timestamp offset" in odd else None
        units = 10**6 if resolution is None else 10 ** (resolution & 0x7F)
        if resolution is not None and resolution & 0x80:
            units = 2 ** (resolution & 0x7F)
        return idb(endian, resolution, snaplen, offset), units

    described, units_0 = interface(first=True)
    out += described
    units = [units_0]
    payloads = draw(frames())
    if "zero-length frames" in odd:
        payloads = [b"" if i % 2 else p for i, p in enumerate(payloads)]
    pick = draw(st.integers(0, len(payloads) - 1))
    kinds = ["epb"]
    kinds += ["spb"] if "Simple Packet Blocks" in odd else []
    kinds += ["pb"] if "obsolete Packet Blocks" in odd else []
    for index, data in enumerate(payloads):
        if index == pick and "an interface described after the first packet" in odd:
            described, more = interface(first=False)
            out += described
            units.append(more)
        kind = draw(st.sampled_from(kinds))
        on = draw(st.integers(0, len(units) - 1))
        stamp = (START + index) * units[on] + draw(st.integers(0, units[on] - 1))
        if index == pick and "timestamps of 2^63 ticks or more" in odd:
            stamp = draw(st.integers(2**63, 2**64 - 1))
        high, low = stamp >> 32, stamp & 0xFFFFFFFF
        if kind == "spb":
            out += block(endian, 3, struct.pack(endian + "I", len(data)) + data)
        elif kind == "pb":
            fields = struct.pack(endian + "HHIIII", on, 0, high, low, len(data), len(data))
            out += block(endian, 2, fields + data)
        else:
            fields = struct.pack(endian + "IIIII", on, high, low, len(data), len(data))
            out += block(endian, 6, fields + data)
    if "cut short" in odd:
        out = out[: draw(st.integers(28, len(out) - 1))]
    return out, odd


@settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(generated=st.one_of(pcap_files(), pcapng_files()))
def test_generated_captures_give_one_answer(
    generated: tuple[bytes, set[str]], tmp_path: Path
) -> None:
    capture, oddities = generated
    suffix = ".pcapng" if capture[:4] == b"\x0a\x0d\x0d\x0a" else ".pcap"
    path = tmp_path / f"generated{suffix}"
    path.write_bytes(capture)
    python, auto = assert_readers_agree(path, tmp_path)
    # what the examples covered: pytest --hypothesis-show-statistics
    event(f"{suffix[1:]}, exit {python.status}")
    for oddity in oddities:
        event(f"{suffix[1:]} with {oddity}")
    note = auto.stderr.partition("not libpcap: ")[2]
    why = note.split(" at byte")[0].strip() if note else "libpcap (or as a damaged file)"
    event(f"auto read it with {why}")


@pytest.mark.parametrize("reader", ["libpcap", "python"])
def test_a_snaplen_that_cuts_requests_keeps_the_timeline(tmp_path: Path, reader: str) -> None:
    """captures/outage.pcap with every frame cut to 60 bytes, as `tcpdump -s 60` takes it:
    Ethernet 14 + IPv4 20 + GRE 4 + inner IPv4 20 leave 2 of the inner GRE header's 4
    bytes, so no request shows its protocol type; replies (38 bytes) stay whole. By the
    scenario's hand-worked timeline (captures/outage.toml, keepalive 5 4): A goes down at
    its send at 55 s and up at 75.02005 s; B down at its tick at 52 s, seen here 10 ms
    later (its sends reach A after 10 ms: 52.01 s), up at 72.01005 s. A sends 20 requests
    (0 … 95 s), B's sends at 2 … 97 s but 32 … 67 s reach A: 12; all 32 were cut."""
    from analyzer.read.capture import PcapWriter, open_capture

    cut = tmp_path / "snaplen-60.pcap"
    with open_capture(ROOT / "captures" / "outage.pcap") as source, PcapWriter(cut) as writer:
        for frame in source:
            writer.write(frame.time, frame.data[:60])
    out = tmp_path / "out.json"
    arguments = ["analyze", str(cut), "--reader", reader, "--retries", "4"]  # keepalive 5 4
    assert main([*arguments, "--format", "json", "-o", str(out)]) == 0
    document = json.loads(out.read_text())
    originators = {o["address"]: o for o in document["tunnels"][0]["originators"]}
    transitions = {
        address: [(t["state"], round(t["time"] - START, 5)) for t in o["transitions"]]
        for address, o in originators.items()
    }
    assert transitions == {
        "192.0.2.1": [("down", 55.0), ("up", 75.02005)],
        "198.51.100.1": [("down", 52.01), ("up", 72.01005)],
    }
    assert any(
        w.startswith("32 keepalive requests cut short by the capture's snaplen")
        for w in document["source"]["warnings"]
    ), document["source"]["warnings"]
