"""Broken, odd and hostile inputs through the real command line.

Each fault gives one clear line on stderr; the exit status is 2 only when nothing could be
read, otherwise the analysis of what could be read is written together with a warning that
names the byte offset. A file still being written is followed with `analyze --follow`.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from analyzer.read.capture import PcapWriter, RawFrame
from analyzer.read.packet import build_ip
from tests.builders import Capture
from tests.read.test_hostile_packets import wrap_link

ROOT = Path(__file__).resolve().parent.parent
LINKTYPE_ETHERNET = 1


# --- helpers ------------------------------------------------------------------------------


def cli(
    *args: str,
    stdin: bytes | None = None,
    prefix: Sequence[str] = (),
    timeout: float = 60,
    **kwargs: Any,
) -> subprocess.CompletedProcess[bytes]:
    """Run `python -m analyzer` in a subprocess, as a user would."""
    return subprocess.run(
        [*prefix, sys.executable, "-m", "analyzer", *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "120"},
        **kwargs,
    )


READER_NOTE = "with the pure-Python reader, not libpcap"


def stderr_line(result: subprocess.CompletedProcess[bytes]) -> str:
    """The one line on stderr (and no traceback), besides the note on which reader read
    stdin (tests/test_fastpath.py checks that note)."""
    err = result.stderr.decode()
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if READER_NOTE not in line]
    assert len(lines) == 1, err
    return lines[0]


def analysis_of(result: subprocess.CompletedProcess[bytes]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr.decode()
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def healthy_frames(pairs: int = 4) -> list[RawFrame]:
    """`pairs` answered keepalives 5 s apart (request, then its reply 20 ms later)."""
    capture = Capture()
    for index in range(pairs):
        request = capture.request(5.0 * index, "192.0.2.1", "198.51.100.1")
        capture.reply(5.0 * index + 0.02, request)
    return capture.raw_frames()


FRAMES = healthy_frames()  # 8 frames: 62-byte requests, 60-byte (padded) replies
RECORD_OFFSETS = [24, 102, 178, 256, 332, 410, 486, 564]  # of FRAMES in a classic pcap


def pcap_bytes(frames: Sequence[RawFrame], *, endian: str = "<", nanosecond: bool = False) -> bytes:
    """A classic pcap in either byte order and either timestamp resolution, written out."""
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    units = 10**9 if nanosecond else 10**6
    out = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 262144, LINKTYPE_ETHERNET)
    for frame in frames:
        sec = int(frame.time)
        frac = round((frame.time - sec) * units)
        out += struct.pack(endian + "IIII", sec, frac, len(frame.data), len(frame.data))
        out += frame.data
    return out


def pcapng_block(block_type: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    length = 12 + len(body)
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)


def pcapng_bytes(frames: Sequence[RawFrame], *, extra: dict[int, bytes] | None = None) -> bytes:
    """SHB, IDB, then one EPB per frame; `extra` inserts raw bytes before the EPB of frame n."""
    extra = extra or {}
    shb = pcapng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = pcapng_block(0x00000001, struct.pack("<HHI", LINKTYPE_ETHERNET, 0, 262144))
    out = shb + idb
    for frame in frames:
        out += extra.get(frame.number, b"")
        ticks = round(frame.time * 1e6)
        out += pcapng_block(
            0x00000006,
            struct.pack(
                "<IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(frame.data), len(frame.data)
            )
            + frame.data,
        )
    return out


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_record_offsets_of_the_healthy_capture() -> None:
    data = pcap_bytes(FRAMES)
    offsets, at = [], 24
    while at < len(data):
        offsets.append(at)
        at += 16 + struct.unpack("<I", data[at + 8 : at + 12])[0]
    assert offsets == RECORD_OFFSETS


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The analysis of the healthy capture as a plain little-endian microsecond pcap."""
    path = write(tmp_path_factory.mktemp("ref") / "ok.pcap", pcap_bytes(FRAMES))
    return analysis_of(cli("analyze", str(path), "--format", "json"))


# --- files that cannot be read at all: exit 2, one line -----------------------------------


def test_wrong_magic_exits_2(tmp_path: Path) -> None:
    bogus = write(tmp_path / "x.pcap", b"\x7fELF\x02\x01\x01\x00" + bytes(100))
    result = cli("analyze", str(bogus))
    assert result.returncode == 2
    assert "not a pcap or pcapng file (magic 0x7f454c46)" in stderr_line(result)


def test_zero_length_file_exits_2(tmp_path: Path) -> None:
    result = cli("analyze", str(write(tmp_path / "empty.pcap", b"")))
    assert result.returncode == 2
    assert "empty file (0 bytes)" in stderr_line(result)


def test_directory_exits_2(tmp_path: Path) -> None:
    result = cli("analyze", str(tmp_path))
    assert result.returncode == 2
    assert "is a directory" in stderr_line(result)


def test_pcap_header_cut_short_exits_2(tmp_path: Path) -> None:
    result = cli("analyze", str(write(tmp_path / "h.pcap", pcap_bytes(FRAMES)[:20])))
    assert result.returncode == 2
    assert "file too short for a pcap header (20 of 24 bytes)" in stderr_line(result)


def test_first_record_cut_short_exits_2_naming_the_offset(tmp_path: Path) -> None:
    result = cli("analyze", str(write(tmp_path / "r.pcap", pcap_bytes(FRAMES)[:50])))
    assert result.returncode == 2
    line = stderr_line(result)
    assert "no complete frame could be read (byte 24:" in line
    assert "file ends in the middle of frame 1" in line


def test_absurd_first_record_length_exits_2(tmp_path: Path) -> None:
    data = bytearray(pcap_bytes(FRAMES))
    data[24 + 8 : 24 + 12] = struct.pack("<I", 0xFFFFFFF0)  # captured length 4 GiB
    result = cli("analyze", str(write(tmp_path / "a.pcap", bytes(data))))
    assert result.returncode == 2
    assert "corrupt record header for frame 1 at byte 24" in stderr_line(result)


def _unprivileged_prefixes() -> list[list[str]]:
    candidates = []
    if shutil.which("setpriv"):
        candidates.append(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"])
    if shutil.which("runuser"):
        candidates.append(["runuser", "-u", "nobody", "--"])
    if shutil.which("setpriv"):  # root without the capabilities that bypass file modes
        drop = "-dac_override,-dac_read_search"
        candidates.append(["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}"])
    return candidates


def _runs_unprivileged(prefix: list[str], probe: Path) -> bool:
    """True when `prefix` runs this Python (and the analyzer) but cannot read `probe`."""
    try:
        result = subprocess.run(
            [
                *prefix,
                sys.executable,
                "-c",
                f"import analyzer.cli\ntry:\n open({str(probe)!r}, 'rb')\n"
                "except PermissionError:\n raise SystemExit(0)\nraise SystemExit(1)",
            ],
            cwd=ROOT,
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def test_permission_denied_exits_2(tmp_path: Path) -> None:
    secret = write(tmp_path / "secret.pcap", pcap_bytes(FRAMES))
    secret.chmod(0)
    prefix: list[str] | None = [] if os.geteuid() != 0 else None
    if prefix is None:
        prefix = next((p for p in _unprivileged_prefixes() if _runs_unprivileged(p, secret)), None)
    if prefix is None:
        pytest.skip(
            "running as root and neither setpriv nor runuser can run the analyzer unprivileged"
        )
    result = cli("analyze", str(secret), prefix=prefix)
    assert result.returncode == 2
    assert "permission denied" in stderr_line(result)


def test_stdin_closed_exits_2() -> None:
    result = cli("analyze", "-", preexec_fn=lambda: os.close(0))  # as `analyze - <&-`
    assert result.returncode == 2
    assert "standard input is closed" in stderr_line(result)


def test_stdin_closed_before_any_byte_exits_2() -> None:
    result = cli("analyze", "-", stdin=b"")
    assert result.returncode == 2
    assert "<stdin>: empty file (0 bytes)" in stderr_line(result)


def test_stdin_closed_mid_first_record_exits_2() -> None:
    result = cli("analyze", "-", stdin=pcap_bytes(FRAMES)[:30])
    assert result.returncode == 2
    assert "<stdin>: no complete frame could be read (byte 24:" in stderr_line(result)


# --- files that are partly readable: exit 0, the analysis, a warning with the offset ------


def test_stdin_closed_mid_record_analyses_what_came(reference: dict[str, Any]) -> None:
    data = pcap_bytes(FRAMES)
    result = cli("analyze", "-", "--format", "json", stdin=data[: RECORD_OFFSETS[5] + 20])
    assert analysis_of(result)["source"]["packets"] == 5
    assert "warning: <stdin>: byte 410: file ends in the middle of frame 6" in stderr_line(result)


def test_file_ending_mid_record(tmp_path: Path) -> None:
    cut = write(tmp_path / "cut.pcap", pcap_bytes(FRAMES)[: RECORD_OFFSETS[5] + 20])
    result = cli("analyze", str(cut), "--format", "json")
    document = analysis_of(result)
    assert document["source"]["packets"] == 5
    line = stderr_line(result)
    assert f"{cut}: byte 410: file ends in the middle of frame 6" in line
    assert document["source"]["warnings"] == [line.removeprefix("gre-keepalive: warning: ")]


def test_file_ending_mid_record_header(tmp_path: Path) -> None:
    cut = write(tmp_path / "cut.pcap", pcap_bytes(FRAMES)[: RECORD_OFFSETS[5] + 7])
    result = cli("analyze", str(cut), "--format", "json")
    assert analysis_of(result)["source"]["packets"] == 5
    assert "byte 410: file ends in the middle of frame 6" in stderr_line(result)


def test_record_length_beyond_the_end_of_the_file(tmp_path: Path) -> None:
    data = bytearray(pcap_bytes(FRAMES))
    last = RECORD_OFFSETS[-1]
    data[last + 8 : last + 12] = struct.pack("<I", 1000)  # but only 60 bytes follow
    result = cli("analyze", str(write(tmp_path / "b.pcap", bytes(data))), "--format", "json")
    assert analysis_of(result)["source"]["packets"] == 7
    assert "byte 564: file ends in the middle of frame 8 (record at byte 564 needs 1016" in (
        stderr_line(result)
    )


def test_absurd_record_length_mid_file(tmp_path: Path) -> None:
    data = bytearray(pcap_bytes(FRAMES))
    at = RECORD_OFFSETS[3]
    data[at + 8 : at + 12] = struct.pack("<I", 0xFFFFFF00)
    result = cli("analyze", str(write(tmp_path / "c.pcap", bytes(data))), "--format", "json")
    assert analysis_of(result)["source"]["packets"] == 3
    assert "byte 256: corrupt record header for frame 4 at byte 256" in stderr_line(result)


def test_truncated_gzip_capture(tmp_path: Path) -> None:
    packed = gzip.compress(pcap_bytes(FRAMES))[:-30]
    result = cli("analyze", str(write(tmp_path / "t.pcap.gz", packed)), "--format", "json")
    assert 0 < analysis_of(result)["source"]["packets"] < len(FRAMES)
    assert "gzip data is corrupt or truncated" in stderr_line(result)


def test_text_report_is_written_alongside_the_warning(tmp_path: Path) -> None:
    cut = write(tmp_path / "cut.pcap", pcap_bytes(FRAMES)[: RECORD_OFFSETS[5] + 20])
    result = cli("analyze", str(cut))
    assert result.returncode == 0
    assert "5 packets" in result.stdout.decode()
    assert "warning" in stderr_line(result)


# --- odd but valid formats: the same analysis ---------------------------------------------


@pytest.mark.parametrize(
    ("endian", "nanosecond"),
    [(">", False), ("<", True), (">", True)],
    ids=["byte-swapped", "nanosecond", "byte-swapped-nanosecond"],
)
def test_pcap_variants_give_the_same_analysis(
    tmp_path: Path, reference: dict[str, Any], endian: str, nanosecond: bool
) -> None:
    data = pcap_bytes(FRAMES, endian=endian, nanosecond=nanosecond)
    result = cli("analyze", str(write(tmp_path / "v.pcap", data)), "--format", "json")
    document = analysis_of(result)
    assert result.stderr == b""
    assert document["tunnels"] == reference["tunnels"]
    assert document["source"]["packets"] == len(FRAMES)


def test_pcapng_with_unknown_blocks_is_analysed_silently(
    tmp_path: Path, reference: dict[str, Any]
) -> None:
    unknown = pcapng_block(0x00000BAD, b"whatever this is")  # a block type nobody defined
    custom = pcapng_block(0x00000BAD | 0x40000000, struct.pack("<I", 32473) + b"x" * 7)
    nrb = pcapng_block(0x00000004, struct.pack("<HH", 0, 0))  # empty Name Resolution Block
    isb = pcapng_block(0x00000005, struct.pack("<III", 0, 0, 0))  # Interface Statistics
    data = pcapng_bytes(FRAMES, extra={2: unknown, 4: custom + nrb, 8: isb})
    result = cli("analyze", str(write(tmp_path / "u.pcapng", data)), "--format", "json")
    document = analysis_of(result)
    assert result.stderr == b""
    assert document["tunnels"] == reference["tunnels"]


def test_pcapng_with_a_corrupt_block_analyses_what_precedes_it(tmp_path: Path) -> None:
    good = pcapng_bytes(FRAMES[:4])
    corrupt = struct.pack("<II", 0x00000006, 64) + bytes(52) + struct.pack("<I", 60)  # 64 ≠ 60
    data = good + corrupt + pcapng_bytes(FRAMES[4:])[len(pcapng_bytes([])) :]
    result = cli("analyze", str(write(tmp_path / "c.pcapng", data)), "--format", "json")
    assert analysis_of(result)["source"]["packets"] == 4
    line = stderr_line(result)
    assert f"byte {len(good)}: corrupt pcapng block at byte {len(good)}" in line
    assert "trailing length copy 60 does not match the total length 64" in line


def test_pcapng_with_an_impossible_block_length(tmp_path: Path) -> None:
    good = pcapng_bytes(FRAMES[:2])
    data = good + struct.pack("<II", 0x00000006, 7) + bytes(40)  # length 7: not a multiple of 4
    result = cli("analyze", str(write(tmp_path / "l.pcapng", data)), "--format", "json")
    assert analysis_of(result)["source"]["packets"] == 2
    assert f"byte {len(good)}: corrupt pcapng block" in stderr_line(result)


def test_pcapng_packet_for_an_unknown_interface_is_skipped_with_a_warning(tmp_path: Path) -> None:
    data = bytearray(pcapng_bytes(FRAMES))
    first_epb = len(pcapng_bytes([]))
    data[first_epb + 8 : first_epb + 12] = struct.pack("<I", 3)  # interface 3 of 1
    result = cli("analyze", str(write(tmp_path / "i.pcapng", bytes(data))), "--format", "json")
    assert analysis_of(result)["source"]["packets"] == len(FRAMES) - 1
    assert f"byte {first_epb}: Enhanced Packet Block at byte {first_epb} refers to unknown" in (
        stderr_line(result)
    )


# --- malformed frames are counted and listed ----------------------------------------------


def test_real_truncated_gre_frames_are_listed(real_captures_dir: Path) -> None:
    result = cli(
        "analyze", str(real_captures_dir / "suricata-verify__test.pcap"), "--format", "json"
    )
    source = analysis_of(result)["source"]
    assert source["malformed"] == 2
    assert source["errors"] == [
        {"frame": 4, "reason": "GRE header truncated (2 of 4 bytes)"},
        {"frame": 8, "reason": "GRE header truncated (2 of 4 bytes)"},
    ]


def test_crafted_malformed_frames_are_counted_and_the_first_100_listed(tmp_path: Path) -> None:
    truncated_gre = wrap_link(1, build_ip("192.0.2.1", "198.51.100.1", b"\x00\x00"))
    bad_ihl = wrap_link(1, b"\x43" + bytes(40))  # IPv4 header length 12
    frames = list(FRAMES)
    for n in range(150):
        data = truncated_gre if n % 2 else bad_ihl
        frames.append(RawFrame(len(frames) + 1, FRAMES[-1].time + n, 1, data, len(data), 0, 0))
    with PcapWriter(tmp_path / "m.pcap") as writer:
        for frame in frames:
            writer.write(frame.time, frame.data)
    result = cli("analyze", str(tmp_path / "m.pcap"), "--format", "json")
    document = analysis_of(result)
    source = document["source"]
    assert (source["packets"], source["malformed"], source["keepalive_packets"]) == (158, 150, 8)
    assert len(source["errors"]) == 100
    assert source["errors"][:2] == [
        {"frame": 9, "reason": "IPv4 header length 12 < 20"},
        {"frame": 10, "reason": "GRE header truncated (2 of 4 bytes)"},
    ]
    assert [e["frame"] for e in source["errors"]] == list(range(9, 109))
    assert document["tunnels"][0]["originators"][0]["returned"] == 4


# --- real fuzz and malformed captures: no error, bounded time -----------------------------

HOSTILE_REAL = [
    "tcpdump__gre-heapoverflow-2.pcap",
    "tcpdump__isis-infinite-loop.pcap",
    "tcpdump__erspan-type-iii-pb-1.pcap",
    "suricata-verify__test.pcap",
    "snabb__sanitized4k_truncated128.pcap",
    "arkime__arkime_synthetic.pcap",
    "zeek__erspan.pcap",
    "suricata-verify__security-8550__input.pcap",
    "zeek__gre-within-gre.pcap",
]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("name", HOSTILE_REAL)
def test_real_hostile_capture_is_analysed(real_captures_dir: Path, name: str) -> None:
    result = cli("analyze", str(real_captures_dir / name), "--format", "json", timeout=18)
    document = analysis_of(result)
    assert b"Traceback" not in result.stderr
    assert document["source"]["packets"] > 0
    assert document["source"]["malformed"] == len(document["source"]["errors"])


@pytest.mark.timeout(20)
@pytest.mark.parametrize("name", HOSTILE_REAL[:2])
def test_real_hostile_capture_text_report(real_captures_dir: Path, name: str) -> None:
    result = cli("analyze", str(real_captures_dir / name), timeout=18)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""


# --- a file still being written: --follow -------------------------------------------------


def _append_slowly(
    path: Path, frames: Sequence[RawFrame], pause: float, started: threading.Event
) -> None:
    """A capture writer: the header now, then one record every `pause` seconds."""
    with path.open("wb") as stream:
        writer = PcapWriter(stream)
        stream.flush()
        started.set()
        for frame in frames:
            time.sleep(pause)
            writer.write(frame.time, frame.data)
            stream.flush()


@pytest.mark.timeout(60)
def test_follow_reads_records_appended_while_it_runs(tmp_path: Path) -> None:
    path = tmp_path / "growing.pcap"
    started = threading.Event()
    writer = threading.Thread(target=_append_slowly, args=(path, FRAMES, 0.25, started))
    writer.start()
    assert started.wait(10)
    began = time.monotonic()
    result = cli("analyze", str(path), "--follow", "--follow-timeout", "1.5", "--format", "json")
    elapsed = time.monotonic() - began
    writer.join(10)
    document = analysis_of(result)
    assert document["source"]["packets"] == len(FRAMES)  # all 8, though 2 s in the writing
    assert document["tunnels"][0]["originators"][0]["returned"] == 4
    assert result.stderr == b""
    assert 2.0 + 1.5 - 0.5 < elapsed < 2.0 + 1.5 + 15  # stopped ≈1.5 s after the last record


@pytest.mark.timeout(60)
def test_follow_waits_for_a_record_written_in_two_parts(tmp_path: Path) -> None:
    path = tmp_path / "halves.pcap"
    data = pcap_bytes(FRAMES)
    split = RECORD_OFFSETS[3] + 10  # the middle of record 4's header
    path.write_bytes(data[:split])

    def finish() -> None:
        time.sleep(1.0)
        with path.open("ab") as stream:
            stream.write(data[split:])

    finisher = threading.Thread(target=finish)
    finisher.start()
    result = cli("analyze", str(path), "--follow", "--follow-timeout", "3", "--format", "json")
    finisher.join(10)
    assert analysis_of(result)["source"]["packets"] == len(FRAMES)
    assert result.stderr == b""


@pytest.mark.timeout(60)
def test_follow_waits_for_the_header_of_a_file_just_created(tmp_path: Path) -> None:
    path = write(tmp_path / "new.pcap", b"")

    def produce() -> None:
        time.sleep(1.0)
        path.write_bytes(pcap_bytes(FRAMES))

    producer = threading.Thread(target=produce)
    producer.start()
    result = cli("analyze", str(path), "--follow", "--follow-timeout", "3", "--format", "json")
    producer.join(10)
    assert analysis_of(result)["source"]["packets"] == len(FRAMES)


@pytest.mark.timeout(60)
def test_follow_stops_after_the_timeout_without_growth(tmp_path: Path) -> None:
    path = write(tmp_path / "still.pcap", pcap_bytes(FRAMES)[: RECORD_OFFSETS[5] + 20])
    began = time.monotonic()
    result = cli("analyze", str(path), "--follow", "--follow-timeout", "1", "--format", "json")
    elapsed = time.monotonic() - began
    assert analysis_of(result)["source"]["packets"] == 5
    assert "byte 410: file ends in the middle of frame 6" in stderr_line(result)
    assert 1.0 <= elapsed < 15


@pytest.mark.timeout(60)
def test_follow_stops_on_ctrl_c_and_still_reports(tmp_path: Path) -> None:
    path = write(tmp_path / "live.pcap", pcap_bytes(FRAMES))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "analyzer",
            "analyze",
            str(path),
            "--follow",
            "--follow-timeout",
            "120",
            "--format",
            "json",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(2.0)  # long enough to import, read the 8 frames and start waiting
        assert process.poll() is None  # still following
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err.decode()
    assert json.loads(out)["source"]["packets"] == len(FRAMES)
    assert err == b""


def test_follow_of_a_pipe_reads_to_its_end() -> None:
    result = cli(
        "analyze",
        "-",
        "--follow",
        "--follow-timeout",
        "30",
        "--format",
        "json",
        stdin=pcap_bytes(FRAMES),
        timeout=20,
    )
    assert analysis_of(result)["source"]["packets"] == len(FRAMES)


def test_follow_timeout_must_be_a_number() -> None:
    result = cli("analyze", "x.pcap", "--follow", "--follow-timeout", "soon")
    assert result.returncode == 2
    assert "follow timeout must be a number of seconds" in stderr_line(result)
