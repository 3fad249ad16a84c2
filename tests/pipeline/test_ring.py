"""Ring buffers: a capture written as many files reads as the files concatenated.

The oracle is the whole capture: tests/data/diagnose/leg_a_to_b.toml simulated at A (an
outage, both ends originating, data both ways) is split at frame boundaries into files,
one cut falling between a request and its reply; analysing the files (a directory, a list,
any --jobs, either reader) must give the whole file's JSON document, frame numbers and all,
but for `source.files`.
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from analyzer.cli import main
from analyzer.pipeline.files import capture_files
from analyzer.pipeline.ring import order_by_first_time
from analyzer.read.capture import PcapWriter, RawFrame, open_capture
from analyzer.simulate import load_scenario, simulate

SCENARIO = Path(__file__).resolve().parents[1] / "data" / "diagnose" / "leg_a_to_b.toml"


def frames_of(path: Path) -> list[RawFrame]:
    with open_capture(path) as reader:
        return list(reader)


def write(path: Path, frames: list[RawFrame]) -> Path:
    with PcapWriter(path) as writer:
        for frame in frames:
            writer.write(frame.time, frame.data)
    return path


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ring") / "whole.pcap"
    simulate(load_scenario(SCENARIO), path)
    return path


def cuts(frames: list[RawFrame]) -> list[int]:
    """Where the files start: after frame 1 (A's first request, whose reply is frame 2,
    so the pair spans two files), then at a third and two thirds of the capture."""
    return [1, len(frames) // 3, 2 * len(frames) // 3]


def split(whole: Path, directory: Path) -> list[Path]:
    """The whole capture as four files (named so that name order is not time order)."""
    frames = frames_of(whole)
    directory.mkdir()
    bounds = [0, *cuts(frames), len(frames)]
    names = ["d.pcap", "c.pcap", "b.pcap", "a.pcap"]
    return [
        write(directory / name, frames[low:high])
        for name, low, high in zip(names, bounds, bounds[1:], strict=False)
    ]


def document(*arguments: str, tmp_path: Path) -> dict[str, Any]:
    out = tmp_path / "out.json"
    assert main(["analyze", *arguments, "--format", "json", "-o", str(out)]) == 0
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def without_files(document: dict[str, Any]) -> dict[str, Any]:
    document["source"].pop("files")
    return document


@pytest.mark.parametrize("jobs", ["1", "2", "3"])
def test_a_directory_reads_as_the_concatenated_capture(
    whole: Path, tmp_path: Path, jobs: str
) -> None:
    split(whole, tmp_path / "ring")
    expected = without_files(document(str(whole), tmp_path=tmp_path))
    got = document(str(tmp_path / "ring"), "--jobs", jobs, tmp_path=tmp_path)
    assert got["source"]["files"] == [str(tmp_path / "ring" / f"{n}.pcap") for n in "dcba"]
    assert without_files(got) == expected


def test_the_python_reader_gives_the_same(whole: Path, tmp_path: Path) -> None:
    split(whole, tmp_path / "ring")
    expected = without_files(document(str(whole), tmp_path=tmp_path))
    got = document(str(tmp_path / "ring"), "--reader", "python", "--jobs", "2", tmp_path=tmp_path)
    assert without_files(got) == expected


def test_files_given_with_commas_are_put_in_time_order(whole: Path, tmp_path: Path) -> None:
    d, c, b, a = split(whole, tmp_path / "ring")
    expected = without_files(document(str(whole), tmp_path=tmp_path))
    got = document(f"{b},{a},{d},{c}", tmp_path=tmp_path)
    assert got["source"]["files"] == [str(d), str(c), str(b), str(a)]
    assert without_files(got) == expected


def test_a_gzip_file_and_other_files_in_the_directory(whole: Path, tmp_path: Path) -> None:
    d, _c, _b, _a = split(whole, tmp_path / "ring")
    with open(d, "rb") as plain, gzip.open(tmp_path / "ring" / "d.pcap.gz", "wb") as packed:
        shutil.copyfileobj(plain, packed)
    d.unlink()
    (tmp_path / "ring" / "README.txt").write_text("not a capture\n")
    (tmp_path / "ring" / ".hidden.pcap").write_bytes(d.name.encode())
    expected = without_files(document(str(whole), tmp_path=tmp_path))
    assert without_files(document(str(tmp_path / "ring"), tmp_path=tmp_path)) == expected


SKIPPED = "skipped, it holds no packet (the file a ring buffer was still writing?)"


@pytest.mark.parametrize("reader", ["libpcap", "python"])
def test_files_cut_inside_their_header_are_skipped_with_a_warning(
    whole: Path, tmp_path: Path, reader: str
) -> None:
    d, c, b, a = split(whole, tmp_path / "ring")
    ring = tmp_path / "ring"
    (ring / "e.pcap").write_bytes(a.read_bytes()[:10])  # 10 of the 24 header bytes
    (ring / "f.pcapng").write_bytes(
        b"\x0a\x0d\x0d\x0a"  # block type: Section Header Block
        b"\x1c\x00\x00\x00"  # block total length 28, of which 12 bytes were written:
        b"\x4d\x3c\x2b\x1a"  # byte-order magic, little-endian
    )
    (ring / "g.pcap").write_bytes(b"")  # no first bytes: a capture by its name
    (ring / "h.txt").write_bytes(b"")  # nor by its name: not part of the ring
    expected = without_files(document(str(whole), "--reader", reader, tmp_path=tmp_path))
    got = document(str(ring), "--reader", reader, tmp_path=tmp_path)
    assert got["source"]["files"] == [str(d), str(c), str(b), str(a)]
    warnings = got["source"].pop("warnings")
    assert warnings[: len(expected["source"]["warnings"])] == expected["source"].pop("warnings")
    skipped = warnings[-3:]
    assert [w.split(": ", 1)[0] for w in skipped] == [
        str(ring / n) for n in ("e.pcap", "f.pcapng", "g.pcap")
    ]
    assert all(w.endswith(SKIPPED) for w in skipped)
    assert without_files(got) == expected


def test_a_ring_of_files_all_cut_inside_their_header_is_an_error(
    whole: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ring = tmp_path / "ring"
    ring.mkdir()
    for name in ("a.pcap", "b.pcap"):
        (ring / name).write_bytes(whole.read_bytes()[:20])
    assert main(["analyze", str(ring)]) == 2
    assert "every file ends inside its header; no packet to read" in capsys.readouterr().err


def test_a_file_that_is_no_capture_among_several_is_still_an_error(
    whole: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "notes.pcap"
    other.write_bytes(b"<html><body>404 Not Found</body></html>\n")
    assert main(["analyze", f"{whole},{other}"]) == 2
    assert "not a pcap or pcapng file" in capsys.readouterr().err


def test_frame_numbers_continue_from_file_to_file(whole: Path, tmp_path: Path) -> None:
    split(whole, tmp_path / "ring")
    got = document(str(tmp_path / "ring"), tmp_path=tmp_path)
    (tunnel,) = got["tunnels"]
    a = next(o for o in tunnel["originators"] if o["address"] == "192.0.2.1")
    # A's first request is frame 1, alone in the first file; its reply opens the second
    # file and is frame 2 of the whole.
    first = a["keepalives"][0]
    assert (first["frame"], first["type"], first["partner_frame"]) == (1, "sent", 2)


def test_two_vantages_each_of_several_files(whole: Path, tmp_path: Path) -> None:
    import dataclasses

    b_side = tmp_path / "b-side.pcap"
    simulate(dataclasses.replace(load_scenario(SCENARIO), vantage="b", start=1764115202.5), b_side)
    split(whole, tmp_path / "a-ring")
    split(b_side, tmp_path / "b-ring")
    expected = document(str(whole), str(b_side), tmp_path=tmp_path)
    got = document(str(tmp_path / "a-ring"), str(tmp_path / "b-ring"), tmp_path=tmp_path)
    # The same but for how each side is named: the file, or the directory as given.
    named = json.dumps(expected).replace(str(whole), "A").replace(str(b_side), "B")
    assert (
        json.dumps(got)
        .replace(str(tmp_path / "a-ring"), "A")
        .replace(str(tmp_path / "b-ring"), "B")
        == named
    )


def test_more_than_two_captures_is_a_usage_error(
    whole: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["analyze", str(whole), str(whole), str(whole)]) == 2
    error = capsys.readouterr().err
    assert "3 captures given" in error
    assert "a1.pcap,a2.pcap" in error


def test_a_directory_without_captures_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("hello\n")
    assert main(["analyze", str(tmp_path)]) == 2
    assert "is a directory holding no pcap, pcapng or gzip file" in capsys.readouterr().err


def test_a_name_with_a_comma_that_exists_is_one_file(whole: Path, tmp_path: Path) -> None:
    odd = tmp_path / "wan,1.pcap"
    shutil.copy(whole, odd)
    assert capture_files(str(odd)) == [str(odd)]


def test_files_without_frames_go_last(whole: Path, tmp_path: Path) -> None:
    empty = write(tmp_path / "0-empty.pcap", [])
    assert order_by_first_time([str(empty), str(whole)]) == [str(whole), str(empty)]


def test_collect_capture_takes_one_file_or_several(whole: Path, tmp_path: Path) -> None:
    from analyzer.keepalive.analysis import Settings
    from analyzer.pipeline.analyze import analyze_collected
    from analyzer.pipeline.ring import collect_capture
    from analyzer.report.json import analysis_dict

    split(whole, tmp_path / "ring")
    documents = []
    for argument in (str(whole), str(tmp_path / "ring")):
        collected = collect_capture(argument, jobs=2)
        analysis = analyze_collected(collected.collector, Settings())
        analysis.source.precision = collected.precision
        documents.append(without_files(analysis_dict(analysis)))
    assert documents[0] == documents[1]


def test_a_missing_file_among_several_is_named(whole: Path, tmp_path: Path) -> None:
    from analyzer.pipeline.ring import check_capture
    from analyzer.read.capture import CaptureError

    with pytest.raises(CaptureError, match=r"nowhere\.pcap"):
        check_capture(f"{whole},{tmp_path / 'nowhere.pcap'}")


def test_two_vantages_list_tunnels_without_keepalives(
    real_captures_dir: Path, whole: Path, tmp_path: Path
) -> None:
    # gre-sample.pcap (a tunnel with data only, 2003) as the other end's capture.
    got = document(str(whole), str(real_captures_dir / "zeek__gre-sample.pcap"), tmp_path=tmp_path)
    data_only = [t for t in got["tunnels"] if not t["originators"]]
    assert [(t["endpoints"], t["data_packets"]) for t in data_only] == [
        (["172.27.1.66", "66.59.109.137"], 40)
    ]


def test_at_most_two_files_per_job_are_read_ahead(
    whole: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analyzer.pipeline import ring
    from analyzer.read import fastpath

    frames = frames_of(whole)
    files = [
        str(write(tmp_path / f"{i:02d}.pcap", frames[i * 100 : (i + 1) * 100])) for i in range(12)
    ]
    started: list[str] = []
    real = fastpath.collect

    def counting(path: str, *args: Any, **kwargs: Any) -> Any:
        started.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(fastpath, "collect", counting)
    ahead: list[int] = []
    ring.collect_files(files, jobs=2, progress=lambda done, _all: ahead.append(len(started) - done))
    assert sorted(started) == files
    # Files read but not yet merged: never more than 2 × jobs (memory stays flat).
    assert max(ahead) <= 4


def test_tui_takes_a_ring_directory(
    whole: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analyzer.tui import app

    split(whole, tmp_path / "ring")
    loaded: list[Any] = []

    def run_capture(load: Any, name: str, **_kwargs: Any) -> int:
        loaded.append(load(lambda _position: None))
        return 0

    monkeypatch.setattr(app, "run_capture", run_capture)
    assert main(["tui", str(tmp_path / "ring"), "--jobs", "2"]) == 0
    assert main(["tui", str(whole)]) == 0
    ring, single = loaded
    assert ring.source.files == [str(tmp_path / "ring" / f"{n}.pcap") for n in "dcba"]
    assert (ring.source.packets, len(ring.tunnels)) == (single.source.packets, 1)
    assert ring.tunnels[0].originators[0].events == single.tunnels[0].originators[0].events


def test_reader_libpcap_names_the_file_it_cannot_read(
    whole: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d, _c, _b, _a = split(whole, tmp_path / "ring")
    with open(d, "rb") as plain, gzip.open(tmp_path / "ring" / "d.pcap.gz", "wb") as packed:
        shutil.copyfileobj(plain, packed)
    d.unlink()
    assert main(["analyze", str(tmp_path / "ring"), "--reader", "libpcap"]) == 2
    error = capsys.readouterr().err
    assert f"({tmp_path / 'ring' / 'd.pcap.gz'}: gzip-compressed input)" in error


def test_a_comma_list_may_hold_directories(whole: Path, tmp_path: Path) -> None:
    d, c, b, a = split(whole, tmp_path / "ring")
    (tmp_path / "more").mkdir()
    a.rename(tmp_path / "more" / "a.pcap")
    assert capture_files(f"{tmp_path / 'ring'},{tmp_path / 'more'}") == [
        str(b),
        str(c),
        str(d),
        str(tmp_path / "more" / "a.pcap"),
    ]


def test_more_files_than_open_files_allowed_share_one_spill_file(
    whole: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from analyzer.pipeline import ring

    expected = without_files(document(str(whole), tmp_path=tmp_path))
    frames = frames_of(whole)
    directory = tmp_path / "ring"
    directory.mkdir()
    step = len(frames) // 12 + 1
    for i in range(12):
        write(directory / f"{i:02d}.pcap", frames[i * step : (i + 1) * step])
    # An open-files limit that cannot hold 12 spill files: one for them all.
    monkeypatch.setattr(ring, "_spills_allowed", lambda files, jobs: False)
    before = len(os.listdir("/proc/self/fd"))
    collected = ring.collect_files(sorted(str(p) for p in directory.iterdir()), jobs=2)
    assert len(os.listdir("/proc/self/fd")) - before == 1
    del collected
    got = document(str(directory), "--jobs", "2", tmp_path=tmp_path)
    assert without_files(got) == expected


def test_a_ring_of_many_files_holds_one_spill_file_open(whole: Path, tmp_path: Path) -> None:
    import os

    from analyzer.pipeline import ring

    expected = without_files(document(str(whole), tmp_path=tmp_path))
    frames = frames_of(whole)
    count = ring.FILES_WITH_OWN_SPILL + 6
    step = len(frames) // count + 1
    directory = tmp_path / "ring"
    directory.mkdir()
    for i in range(count):
        write(directory / f"{i:03d}.pcap", frames[i * step : (i + 1) * step])
    files = sorted(str(p) for p in directory.iterdir())
    before = len(os.listdir("/proc/self/fd"))
    collected = ring.collect_files(files, jobs=2)
    # Open files (and the columns each file would keep) do not grow with the files.
    assert len(os.listdir("/proc/self/fd")) - before == 1
    del collected
    assert without_files(document(str(directory), tmp_path=tmp_path)) == expected


def test_a_compressed_file_that_is_no_capture_is_not_part_of_the_ring(
    whole: Path, tmp_path: Path
) -> None:
    d, c, b, a = split(whole, tmp_path / "ring")
    with gzip.open(tmp_path / "ring" / "rotate.log.gz", "wb") as log:
        log.write(b"ring rotated\n")
    assert capture_files(str(tmp_path / "ring")) == [str(p) for p in (a, b, c, d)]
