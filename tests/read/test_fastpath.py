"""The fast path: libpcap + BPF + the C hot loop give the pure-Python reader's answer.

Every capture we have is analysed both ways and the JSON compared byte for byte. The C
classifier is held to analyzer.read.packet.decode_frame by byte fixtures and by hypothesis; the
spilled data columns are compared with the in-memory ones; the CLI's notes, errors and
progress bar are checked through the real command.
"""

from __future__ import annotations

import gzip
import io
import os
import pty
import select
import struct
import subprocess
import sys
import time
from array import array
from bisect import bisect_left, bisect_right
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyzer.keepalive.analysis import Settings
from analyzer.pipeline.analyze import analyze_collected
from analyzer.pipeline.collect import collect
from analyzer.read.capture import LINKTYPE_ETHERNET, LINKTYPE_RAW, CaptureError, PcapWriter
from analyzer.read.fastpath import (
    KEEPALIVE_RECORD,
    READER_LIBPCAP,
    READER_PYTHON,
    RECORD_INNER_KEY,
    RECORD_KEY,
    RECORD_METADATA,
    RECORD_REPLY,
    RECORD_REQUEST,
    Collected,
    FastPathUnavailable,
    SpilledColumn,
)
from analyzer.read.packet import (
    FrameKind,
    InnerHeader,
    build_ethernet,
    build_gre_data,
    build_keepalive_request,
    decode_frame,
    reflect_request,
)
from analyzer.report.json import write_json
from tests.builders import START, Capture
from tests.conftest import DEMO_CAPTURES, all_captures
from tests.read.test_hostile_packets import HOSTILE, hostile_frames

OUTAGE = DEMO_CAPTURES / "outage.pcap"
ROOT = Path(__file__).resolve().parents[2]


def fastscan() -> object:
    import analyzer.read._fastscan as module

    return module


def test_the_c_extension_is_built() -> None:
    # CI installs gcc: a missing extension there would silently mean "no fast path".
    module = fastscan()
    assert callable(module.scan)  # type: ignore[attr-defined]


def json_of(collected: Collected, settings: Settings) -> str:
    analysis = analyze_collected(collected.collector, settings)
    analysis.source.precision = collected.precision
    analysis.source.warnings.extend(collected.warnings)
    out = io.StringIO()
    write_json(analysis, out)
    return out.getvalue()


# --- the same answer either way -------------------------------------------------------------

# Captures libpcap (1.10) refuses as a whole; the fallback must say why.
LIBPCAP_REFUSES = {"PcapPlusPlus__GrePackets.pcap"}  # interfaces with different snaplens

SETTINGS = [
    pytest.param(Settings(), True, id="default"),
    pytest.param(
        Settings(what_if="keepalive 2 3", infer_retries=True), True, id="what-if+infer-retries"
    ),
    pytest.param(Settings(), False, id="no-data"),
]


@pytest.mark.parametrize(("settings", "include_data"), SETTINGS)
@pytest.mark.parametrize("path", all_captures(), ids=lambda p: p.name)
def test_fast_path_and_python_reader_write_the_same_json(
    path: Path, settings: Settings, include_data: bool
) -> None:
    fast = collect(str(path), include_data=include_data)
    slow = collect(str(path), reader=READER_PYTHON, include_data=include_data)
    if path.name in LIBPCAP_REFUSES:
        assert fast.reader == READER_PYTHON and fast.fallback_reason
    else:
        assert fast.reader == READER_LIBPCAP, fast.fallback_reason
    assert json_of(fast, settings) == json_of(slow, settings)


def test_cli_output_is_byte_identical_with_either_reader(tmp_path: Path) -> None:
    outputs = []
    for reader in ("libpcap", "python"):
        out = tmp_path / f"{reader}.json"
        result = run_cli(
            "analyze", str(OUTAGE), "--reader", reader, "--format", "json", "-o", str(out)
        )
        assert result.returncode == 0 and result.stderr == b"", result.stderr
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]


def test_a_truncated_pcap_is_read_by_libpcap_with_the_python_readers_warning(
    tmp_path: Path,
) -> None:
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(OUTAGE.read_bytes()[:-10])  # the last record loses 10 of its bytes
    fast = collect(str(cut))
    slow = collect(str(cut), reader=READER_PYTHON)
    assert fast.reader == READER_LIBPCAP  # no second reading of the whole file
    assert fast.warnings == slow.warnings and len(fast.warnings) == 1
    assert "file ends in the middle of frame" in fast.warnings[0]
    assert json_of(fast, Settings()) == json_of(slow, Settings())


def test_data_times_are_spilled_not_kept_in_memory() -> None:
    fast = collect(str(OUTAGE))
    slow = collect(str(OUTAGE), reader=READER_PYTHON)
    assert fast.collector.data_times.keys() == slow.collector.data_times.keys()
    for flow, times in fast.collector.data_times.items():
        assert isinstance(times, SpilledColumn)
        assert list(times) == list(slow.collector.data_times[flow])
        assert list(fast.collector.data_frames[flow]) == list(slow.collector.data_frames[flow])


def test_no_data_keeps_no_data_times_but_counts_the_packets() -> None:
    with_data = collect(str(OUTAGE))
    without = collect(str(OUTAGE), include_data=False)
    assert without.collector.data_times == {}
    assert without.collector.source.gre_packets == with_data.collector.source.gre_packets
    assert without.collector.source.data_recorded is False


# --- SpilledColumn ----------------------------------------------------------------------------


def many_data_packets(path: Path, count: int, *, shuffle_at: int | None = None) -> None:
    """One flow of `count` data packets 10 ms apart (two swapped at `shuffle_at`)."""
    packet = build_ethernet(build_gre_data("192.0.2.1", "198.51.100.1", key=7))
    times = [START + i * 0.01 for i in range(count)]
    if shuffle_at is not None:
        times[shuffle_at], times[shuffle_at + 1] = times[shuffle_at + 1], times[shuffle_at]
    with PcapWriter(path, LINKTYPE_ETHERNET) as writer:
        for t in times:
            writer.write(t, packet)


def test_spilled_column_reads_across_blocks_like_an_array(tmp_path: Path) -> None:
    path = tmp_path / "many.pcap"
    many_data_packets(path, 1000)  # 3 full blocks of 256 and a partial one
    fast = collect(str(path))
    ((flow, times),) = fast.collector.data_times.items()
    assert flow == ("192.0.2.1", "198.51.100.1", 7)
    expected = array("d", (START + i * 0.01 for i in range(1000)))
    assert len(times) == 1000
    assert times[0] == expected[0] and times[-1] == expected[-1] and times[511] == expected[511]
    assert list(times[250:260]) == list(expected[250:260])  # across a block boundary
    assert list(times[::100]) == list(expected[::100])
    for probe in (START - 1, START + 2.555, START + 2.56, START + 9.99, START + 99):
        assert bisect_left(times, probe) == bisect_left(expected, probe)
        assert bisect_right(times, probe) == bisect_right(expected, probe)
    assert list(fast.collector.data_frames[flow]) == list(range(1, 1001))
    with pytest.raises(IndexError):
        times[1000]


def test_a_flows_first_and_last_values_come_from_the_c_loop_not_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "many.pcap"
    many_data_packets(path, 1000)  # frames 1..1000, 10 ms apart from START
    fast = collect(str(path))
    ((flow, times),) = fast.collector.data_times.items()
    frames = fast.collector.data_frames[flow]

    def no_read(*_args: object) -> bytes:
        raise AssertionError("the spill file was read")

    monkeypatch.setattr(os, "pread", no_read)
    assert (times[0], times[-1]) == (START, START + 999 * 0.01)
    assert (frames[0], frames[-1], frames[999]) == (1, 1000, 1000)


def spill_size(collected: Collected) -> int:
    column = next(iter(collected.collector.data_times.values()))
    assert isinstance(column, SpilledColumn)
    return os.fstat(column._fd).st_size


def test_the_spill_file_grows_with_data_packets_not_with_flows(tmp_path: Path) -> None:
    path = tmp_path / "flows.pcap"
    with PcapWriter(path, LINKTYPE_ETHERNET) as writer:
        for index in range(300):  # 300 flows of one packet each
            packet = build_gre_data("192.0.2.1", "198.51.100.1", key=index)
            writer.write(START + index * 0.001, build_ethernet(packet))
        packet = build_gre_data("192.0.2.1", "198.51.100.1", key=1000)
        for index in range(600):  # and one of 600: two full blocks of 256 and 88 records
            writer.write(START + 1 + index * 0.001, build_ethernet(packet))
    fast = collect(str(path))
    assert len(fast.collector.data_times) == 301
    assert spill_size(fast) == 16 * 900  # a float64 time and an int64 frame number each
    slow = collect(str(path), reader=READER_PYTHON)
    assert json_of(fast, Settings()) == json_of(slow, Settings())


def test_interleaved_flows_keep_their_own_records_at_every_block_and_chunk_edge(
    tmp_path: Path,
) -> None:
    # The C loop gathers a flow's records 8 at a time into blocks of 256: lengths just
    # under, at and over both, sent round-robin so every flow's records interleave.
    lengths = {1: 7, 2: 8, 3: 9, 4: 15, 5: 16, 6: 17, 7: 255, 8: 256, 9: 257, 10: 264, 11: 512}
    path = tmp_path / "interleaved.pcap"
    with PcapWriter(path, LINKTYPE_ETHERNET) as writer:
        for index in range(max(lengths.values())):
            for key, length in lengths.items():
                if index < length:
                    packet = build_gre_data("192.0.2.1", "198.51.100.1", key=key)
                    writer.write(START + index * 0.01 + key * 0.001, build_ethernet(packet))
    fast = collect(str(path))
    slow = collect(str(path), reader=READER_PYTHON)
    assert {flow[2]: len(times) for flow, times in fast.collector.data_times.items()} == lengths
    for flow, times in fast.collector.data_times.items():
        assert list(times) == list(slow.collector.data_times[flow])
        assert list(fast.collector.data_frames[flow]) == list(slow.collector.data_frames[flow])
    assert spill_size(fast) == 16 * sum(lengths.values())


def test_a_full_temporary_disk_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import analyzer.read.fastpath as fastpath_module

    def full_disk(prefix: str = "") -> object:
        return open("/dev/full", "w+b")  # every write: ENOSPC

    monkeypatch.setattr(fastpath_module.tempfile, "TemporaryFile", full_disk)
    with pytest.raises(CaptureError) as caught:
        collect(str(OUTAGE))
    message = str(caught.value)
    assert message.startswith(f"{OUTAGE}: no space left in ")
    assert message.endswith("point TMPDIR elsewhere, or use --no-data")
    assert collect(str(OUTAGE), include_data=False).reader == READER_LIBPCAP  # needs no file


def test_out_of_order_data_is_sorted_as_the_python_reader_sorts_it(tmp_path: Path) -> None:
    path = tmp_path / "shuffled.pcap"
    many_data_packets(path, 600, shuffle_at=300)
    fast = collect(str(path))
    slow = collect(str(path), reader=READER_PYTHON)
    ((flow, times),) = fast.collector.data_times.items()
    assert list(times) == list(slow.collector.data_times[flow]) == sorted(times)
    assert list(fast.collector.data_frames[flow])[300:302] == [302, 301]


# --- the C classifier never contradicts analyzer.read.packet ------------------------------


def classify(linktype: int, data: bytes) -> object:
    return fastscan().classify(linktype, data)  # type: ignore[attr-defined]


def ip_text(raw: bytes) -> str:
    import socket

    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def keepalive_record(linktype: int, data: bytes) -> tuple[object, ...] | None:
    """What the hot loop's keepalive decoder makes of a frame (None: not decided there)."""
    raw = fastscan().decode_keepalive(linktype, data)  # type: ignore[attr-defined]
    return None if raw is None else KEEPALIVE_RECORD.unpack(raw)


def address_text(raw: bytes, version: int) -> str:
    return ip_text(raw[:4] if version == 4 else raw)


def assert_keepalive_agrees(linktype: int, data: bytes) -> None:
    record = keepalive_record(linktype, data)
    if record is None:
        return  # handed to Python (or not a keepalive): always right
    (_frame, _time, ip_id, inner_id, kind, version, ttl, flags, protocol, sgt) = record[:10]
    (payload_length, key) = (record[11], record[10])
    (inner_version, inner_ttl, inner_key, src, dst, inner_src, inner_dst) = record[12:]
    decoded = decode_frame(linktype, data)
    assert decoded.kind is (FrameKind.REQUEST if kind == RECORD_REQUEST else FrameKind.REPLY)
    assert kind in (RECORD_REQUEST, RECORD_REPLY)
    assert isinstance(src, bytes) and isinstance(dst, bytes) and isinstance(version, int)
    assert (address_text(src, version), address_text(dst, version)) == (decoded.src, decoded.dst)
    assert (version, ttl) == (decoded.ip_version, decoded.ttl)
    assert (ip_id if version == 4 else None) == decoded.ip_id
    assert (key if flags & RECORD_KEY else None) == decoded.key  # type: ignore[operator]
    assert payload_length == decoded.payload_length
    assert decoded.checksum_ok is None  # checksummed GRE is always Python's
    if kind == RECORD_REPLY:
        return
    assert protocol == decoded.gre_protocol
    assert isinstance(inner_src, bytes) and isinstance(inner_dst, bytes)
    assert isinstance(inner_version, int) and isinstance(flags, int)
    assert decoded.inner == InnerHeader(
        address_text(inner_src, inner_version),
        address_text(inner_dst, inner_version),
        inner_version,
        inner_id if inner_version == 4 else None,  # type: ignore[arg-type]
        inner_ttl,  # type: ignore[arg-type]
        inner_key if flags & RECORD_INNER_KEY else None,  # type: ignore[arg-type]
        bool(flags & RECORD_METADATA),
        sgt if flags & RECORD_METADATA else None,  # type: ignore[arg-type]
    )


def assert_agrees(linktype: int, data: bytes) -> None:
    assert_keepalive_agrees(linktype, data)
    answer = classify(linktype, data)
    if answer is None:
        return  # handed to Python: always right
    decoded = decode_frame(linktype, data)
    if answer == "other":
        assert decoded.kind is FrameKind.OTHER, decoded
        return
    src, dst, key = answer  # type: ignore[misc]
    assert decoded.kind is FrameKind.DATA, decoded
    assert (ip_text(src), ip_text(dst), key) == (decoded.src, decoded.dst, decoded.key)
    assert decoded.checksum_ok is None  # checksummed GRE is always Python's


@HOSTILE
@given(hostile_frames())
def test_classifier_agrees_with_decode_frame_on_generated_gre(frame: tuple[int, bytes]) -> None:
    assert_agrees(*frame)


@HOSTILE
@given(st.sampled_from([LINKTYPE_ETHERNET, LINKTYPE_RAW, 228, 229]), st.binary(max_size=200))
def test_classifier_agrees_with_decode_frame_on_any_bytes(linktype: int, data: bytes) -> None:
    assert_agrees(linktype, data)


ETHERNET_HEADER = (
    b"\x02\x00\x00\x00\x00\x02"  # destination MAC
    b"\x02\x00\x00\x00\x00\x01"  # source MAC
)
IPV4_GRE_HEADER = (
    b"\x45\x00\x00\x3c"  # version 4, IHL 5; TOS 0; total length 60
    b"\x12\x34\x00\x00"  # identification 0x1234; flags 0, fragment offset 0
    b"\xff\x2f\x00\x00"  # TTL 255; protocol 47 (GRE); checksum (not checked)
    b"\xc0\x00\x02\x01"  # source 192.0.2.1
    b"\xc6\x33\x64\x01"  # destination 198.51.100.1
)
INNER_UDP = (
    b"\x45\x00\x00\x1c"  # inner IPv4, total length 28
    b"\x00\x01\x00\x00"  # identification 1
    b"\x40\x11\x00\x00"  # TTL 64, protocol 17 (UDP)
    b"\xc0\x00\x02\x01\xc0\x00\x02\x02"  # 192.0.2.1 -> 192.0.2.2
    b"\xc0\x00\x00\x09\x00\x08\x00\x00"  # UDP 49152 -> 9, length 8
)


def gre_frame(gre_header: bytes, inner: bytes = INNER_UDP, *, vlan: bool = False) -> bytes:
    tag = b"\x81\x00\x00\x64" if vlan else b""  # 802.1Q, VLAN 100
    ip = bytearray(IPV4_GRE_HEADER + gre_header + inner)
    struct.pack_into("!H", ip, 2, len(ip))
    return ETHERNET_HEADER + tag + b"\x08\x00" + bytes(ip)


FIXTURES = [
    pytest.param(
        gre_frame(b"\x20\x00\x08\x00\x00\x00\x00\x07"),  # K; PT IPv4; key 7
        (bytes([192, 0, 2, 1]), bytes([198, 51, 100, 1]), 7),
        id="keyed-data",
    ),
    pytest.param(
        gre_frame(b"\x00\x00\x08\x00", vlan=True),  # no flags; PT IPv4; behind a VLAN tag
        (bytes([192, 0, 2, 1]), bytes([198, 51, 100, 1]), None),
        id="vlan-data",
    ),
    pytest.param(
        gre_frame(b"\x10\x00\x65\x58\x00\x00\x00\x2a", b"\x00" * 14),  # S; PT 0x6558 (TEB)
        (bytes([192, 0, 2, 1]), bytes([198, 51, 100, 1]), None),
        id="sequenced-bridged-data",
    ),
    pytest.param(gre_frame(b"\x00\x00\x00\x00", b""), None, id="reply-pt0"),
    pytest.param(
        gre_frame(b"\x00\x00\x08\x00", INNER_UDP[:9] + b"\x2f" + INNER_UDP[10:]),  # inner GRE
        None,
        id="maybe-request",
    ),
    pytest.param(gre_frame(b"\x80\x00\x08\x00\x00\x00\x00\x00"), None, id="checksummed"),
    pytest.param(gre_frame(b"\x00\x01\x88\x0b"), None, id="pptp-version-1"),
    pytest.param(gre_frame(b"\x00\x00\x00\x04"), None, id="huawei-type-4"),  # PT 4: Python's
    pytest.param(gre_frame(b"\x20\x00\x08", b""), None, id="truncated-gre"),
    pytest.param(
        ETHERNET_HEADER + b"\x08\x00" + IPV4_GRE_HEADER[:9] + b"\x06" + IPV4_GRE_HEADER[10:],
        "other",
        id="tcp-not-gre",
    ),
    pytest.param(ETHERNET_HEADER + b"\x08\x06" + bytes(28), "other", id="arp"),
    pytest.param(ETHERNET_HEADER + b"\x88\x47" + bytes(24), None, id="mpls"),
    pytest.param(
        ETHERNET_HEADER
        + b"\x88\x64"  # PPPoE session
        + b"\x11\x00\x12\x34\x00\x42"  # version/type 0x11, code 0, session 0x1234, length 66
        + b"\x00\x21"  # PPP protocol 0x0021: IPv4
        + gre_frame(b"\x00\x00\x08\x00")[14:],  # the IPv4 GRE packet of "vlan-data"
        (bytes([192, 0, 2, 1]), bytes([198, 51, 100, 1]), None),
        id="pppoe-data",
    ),
    pytest.param(
        ETHERNET_HEADER + b"\x88\x64" + b"\x11\x00\x12\x34\x00\x06" + b"\xc0\x21" + bytes(4),
        "other",  # PPP protocol 0xC021: LCP, no IP
        id="pppoe-lcp",
    ),
    pytest.param(ETHERNET_HEADER + b"\x88\x64\x11\x00", None, id="pppoe-cut"),
    pytest.param(ETHERNET_HEADER + b"\x08\x00" + IPV4_GRE_HEADER[:12], None, id="short-ipv4"),
]


@pytest.mark.parametrize(("frame", "expected"), FIXTURES)
def test_classifier_byte_fixtures(frame: bytes, expected: object) -> None:
    assert classify(LINKTYPE_ETHERNET, frame) == expected
    assert_agrees(LINKTYPE_ETHERNET, frame)


# --- keepalives decoded in the C loop ---------------------------------------------------------

IOS_REQUEST = (
    b"\x45\x00\x00\x38"  # outer IPv4, IHL 5; total length 56 (20 + GRE 8 + inner 28)
    b"\x01\x02\x00\x00"  # identification 0x0102
    b"\xff\x2f\x00\x00"  # TTL 255; protocol 47 (GRE)
    b"\xc0\x00\x02\x01"  # source 192.0.2.1 (the originator)
    b"\xc6\x33\x64\x01"  # destination 198.51.100.1 (the peer)
    b"\x20\x00\x08\x00"  # GRE: K; protocol type IPv4
    b"\x00\x00\x00\x2a"  # key 42
    b"\x45\x00\x00\x1c"  # inner IPv4, total length 28
    b"\x01\x01\x00\x00"  # identification 0x0101
    b"\xfe\x2f\x00\x00"  # TTL 254; protocol 47 (GRE)
    b"\xc6\x33\x64\x01"  # source 198.51.100.1 (the peer)
    b"\xc0\x00\x02\x01"  # destination 192.0.2.1 (back to the originator)
    b"\x20\x00\x00\x00"  # inner GRE: K; protocol type 0 (the keepalive)
    b"\x00\x00\x00\x2a"  # key 42
)
IOS_REPLY = IOS_REQUEST[28:]  # what the peer forwards back: the inner packet
V4_ORIGINATOR = bytes([192, 0, 2, 1]) + bytes(12)  # records carry IPv4 in 4 of 16 bytes
V4_PEER = bytes([198, 51, 100, 1]) + bytes(12)


def test_the_c_loop_decodes_an_ios_request() -> None:
    record = keepalive_record(LINKTYPE_RAW, IOS_REQUEST)
    assert record == (
        0,  # frame number (set by the loop)
        0.0,  # time (set by the loop)
        0x0102,  # outer IP ID
        0x0101,  # inner IP ID
        RECORD_REQUEST,
        4,  # outer IPv4
        255,  # outer TTL
        RECORD_KEY | RECORD_INNER_KEY,
        0x0800,  # outer GRE protocol type
        0,  # no Cisco MetaData SGT
        42,  # outer key
        0,  # no payload after the inner GRE header
        4,  # inner IPv4
        254,  # inner TTL
        42,  # inner key
        V4_ORIGINATOR,
        V4_PEER,
        V4_PEER,  # inner source
        V4_ORIGINATOR,  # inner destination
    )
    assert_keepalive_agrees(LINKTYPE_RAW, IOS_REQUEST)


def test_the_c_loop_decodes_an_ios_reply_behind_ethernet_padding() -> None:
    frame = ETHERNET_HEADER + b"\x08\x00" + IOS_REPLY + bytes(14)  # padded to 60 bytes
    record = keepalive_record(LINKTYPE_ETHERNET, frame)
    assert record is not None
    assert record[2:12] == (0x0101, 0, RECORD_REPLY, 4, 254, RECORD_KEY, 0, 0, 42, 0)
    assert record[15:17] == (V4_PEER, V4_ORIGINATOR)
    assert_keepalive_agrees(LINKTYPE_ETHERNET, frame)


def test_the_c_loop_leaves_checksummed_and_cut_keepalives_to_python() -> None:
    checksummed = build_keepalive_request("192.0.2.1", "198.51.100.1", checksum=True)
    assert keepalive_record(LINKTYPE_RAW, checksummed) is None
    assert keepalive_record(LINKTYPE_RAW, IOS_REQUEST[:-2]) is None  # inner key cut short
    assert classify(LINKTYPE_RAW, IOS_REQUEST) is None  # classify() still defers keepalives


@st.composite
def well_formed_keepalives(draw: st.DrawFn) -> bytes:
    """A request or its reflection as routers send them, in any of the variants we know."""
    outer6 = draw(st.booleans())
    inner6 = draw(st.booleans())
    originator, peer = ("2001:db8::1", "2001:db8::2") if outer6 else ("192.0.2.1", "198.51.100.1")
    inner_src, inner_dst = (
        ("2001:db8::2", "2001:db8::1") if inner6 else ("198.51.100.1", "192.0.2.1")
    )
    request = build_keepalive_request(
        originator,
        peer,
        key=draw(st.one_of(st.none(), st.integers(0, 0xFFFFFFFF))),
        outer_id=draw(st.integers(0, 0xFFFF)),
        inner_id=draw(st.integers(0, 0xFFFF)),
        ttl=draw(st.integers(0, 255)),
        inner_ttl=draw(st.integers(1, 255)),
        inner_src=inner_src,
        inner_dst=inner_dst,
        metadata_sgt=draw(st.one_of(st.none(), st.integers(0, 0xFFFF))),
        payload=draw(st.binary(max_size=16)),
    )
    if draw(st.booleans()):
        reply = reflect_request(request)
        assert reply is not None
        return reply
    return request


@HOSTILE
@given(well_formed_keepalives(), st.integers(0, 2))
def test_the_c_loop_decodes_every_well_formed_keepalive_as_python_does(
    packet: bytes, vlans: int
) -> None:
    version = 0x86DD if packet[0] >> 4 == 6 else 0x0800
    frame = ETHERNET_HEADER + b"\x81\x00\x00\x64" * vlans + struct.pack("!H", version) + packet
    assert keepalive_record(LINKTYPE_ETHERNET, frame) is not None  # not left to Python
    assert_keepalive_agrees(LINKTYPE_ETHERNET, frame)


# --- the command line ---------------------------------------------------------------------


def run_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "analyzer", *args],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )


NOTE = "with the pure-Python reader, not libpcap"


def test_gzip_input_falls_back_with_one_note(tmp_path: Path) -> None:
    packed = tmp_path / "outage.pcap.gz"
    packed.write_bytes(gzip.compress(OUTAGE.read_bytes()))
    result = run_cli("analyze", str(packed), "--format", "json")
    assert result.returncode == 0
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and NOTE in lines[0] and "gzip" in lines[0], lines


def test_stdin_falls_back_with_one_note_and_quiet_silences_it() -> None:
    loud = run_cli("analyze", "-", "--format", "json", stdin=OUTAGE.read_bytes())
    assert loud.returncode == 0
    assert loud.stderr.decode().count(NOTE) == 1 and "standard input" in loud.stderr.decode()
    quiet = run_cli("analyze", "-", "--format", "json", "--quiet", stdin=OUTAGE.read_bytes())
    assert quiet.returncode == 0 and quiet.stderr == b""
    assert quiet.stdout == loud.stdout


def test_reader_libpcap_refuses_gzip_instead_of_falling_back(tmp_path: Path) -> None:
    packed = tmp_path / "outage.pcap.gz"
    packed.write_bytes(gzip.compress(OUTAGE.read_bytes()))
    result = run_cli("analyze", str(packed), "--reader", "libpcap")
    assert result.returncode == 2
    assert "libpcap cannot read it (gzip-compressed input)" in result.stderr.decode()


def test_binary_timestamp_resolution_falls_back(tmp_path: Path) -> None:
    capture = Capture()
    capture.data(0.0, "192.0.2.1", "198.51.100.1")
    path = tmp_path / "pow2.pcapng"
    path.write_bytes(pcapng_pow2(capture.frames[0][1]))
    with pytest.raises(FastPathUnavailable, match="resolution"):
        collect(str(path), reader=READER_LIBPCAP)
    assert collect(str(path)).reader == READER_PYTHON


def pcapng_pow2(frame: bytes) -> bytes:
    """One Ethernet frame in a pcapng whose interface counts time in 2^-20 s."""
    shb = (
        b"\x0a\x0d\x0d\x0a"
        b"\x1c\x00\x00\x00"  # Section Header Block, length 28
        b"\x4d\x3c\x2b\x1a"
        b"\x01\x00\x00\x00"  # little-endian; version 1.0
        b"\xff\xff\xff\xff\xff\xff\xff\xff"  # section length unknown
        b"\x1c\x00\x00\x00"  # length (trailer)
    )
    idb = (
        b"\x01\x00\x00\x00"
        b"\x20\x00\x00\x00"  # Interface Description Block, length 32
        b"\x01\x00\x00\x00"
        b"\x00\x00\x04\x00"  # Ethernet; reserved; snaplen 262144
        b"\x09\x00\x01\x00"
        b"\x94\x00\x00\x00"  # if_tsresol 0x94: 2^-20 s (+ padding)
        b"\x00\x00\x00\x00"  # opt_endofopt
        b"\x20\x00\x00\x00"  # length (trailer)
    )
    padded = frame + bytes(-len(frame) % 4)
    ticks = int(START) << 20
    length = 32 + len(padded)
    epb = (
        struct.pack("<II", 6, length)  # Enhanced Packet Block
        + struct.pack("<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(frame), len(frame))
        + padded
        + struct.pack("<I", length)
    )
    return shb + idb + epb


def big_capture(path: Path, megabytes: int) -> None:
    packet = build_ethernet(build_gre_data("192.0.2.1", "198.51.100.1", payload_length=1000))
    with PcapWriter(path, LINKTYPE_ETHERNET) as writer:
        for i in range(megabytes * 1024 * 1024 // (len(packet) + 16) + 1):
            writer.write(START + i * 0.001, packet)


def stderr_through_a_terminal(*args: str) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal; (exit status, what it wrote there)."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "analyzer", *args],
        stdout=subprocess.DEVNULL,
        stderr=terminal,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "100"},
    )
    os.close(terminal)
    written = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal closed: the process is gone
                break
            if not chunk:
                break
            written += chunk
        elif process.poll() is not None:
            break
    status = process.wait(timeout=60)
    os.close(controller)
    return status, written.decode(errors="replace")


def test_progress_bar_on_a_terminal_and_quiet_silences_it(tmp_path: Path) -> None:
    path = tmp_path / "big.pcap"
    big_capture(path, 12)  # above the 8 MB threshold
    status, written = stderr_through_a_terminal("analyze", str(path), "--format", "json")
    assert status == 0
    assert "reading big.pcap" in written
    status, written = stderr_through_a_terminal("analyze", str(path), "--format", "json", "--quiet")
    assert status == 0 and written == ""


def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    path = tmp_path / "big.pcap"
    big_capture(path, 12)
    result = run_cli("analyze", str(path), "--format", "json")
    assert result.returncode == 0 and result.stderr == b""


def test_json_says_whether_data_packets_were_recorded() -> None:
    import json

    recorded = json.loads(run_cli("analyze", str(OUTAGE), "--format", "json").stdout)
    skipped = json.loads(run_cli("analyze", str(OUTAGE), "--format", "json", "--no-data").stdout)
    assert recorded["source"]["data_recorded"] is True
    assert skipped["source"]["data_recorded"] is False
    assert skipped["source"]["gre_packets"] == recorded["source"]["gre_packets"]
    (originator, _peer) = skipped["tunnels"][0]["originators"]
    # not counted: null, not zeros (the text report says "unknown")
    assert (originator["blackholed_packets"], originator["data_packets"]) == (None, None)
    assert skipped["tunnels"][0]["data_packets"] is None
