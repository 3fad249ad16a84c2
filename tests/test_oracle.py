"""tshark, an independent decoder, agrees with the analyzer on which frames are keepalives."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from analyzer.cli import main
from tests.conftest import all_captures

TSHARK = shutil.which("tshark")


def _tshark_keepalive_frames(capture: Path) -> set[int]:
    result = subprocess.run(
        [
            TSHARK or "tshark",
            "-n",
            "-r",
            str(capture),
            "-Y",
            "gre.proto == 0x0000",
            "-T",
            "fields",
            "-e",
            "frame.number",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return {int(line) for line in result.stdout.split()}


def _analyzer_keepalive_frames(capture: Path, tmp_path: Path) -> tuple[set[int], int]:
    out = tmp_path / "analysis.json"
    assert main(["analyze", str(capture), "--format", "json", "-o", str(out)]) == 0
    document = json.loads(out.read_text())
    frames = {
        event["frame"]
        for tunnel in document["tunnels"]
        for originator in tunnel["originators"]
        for event in originator["keepalives"]
        if event["frame"] is not None
    }
    return frames, document["source"]["keepalive_packets"]


@pytest.mark.skipif(TSHARK is None, reason="tshark not installed: apt-get install tshark")
@pytest.mark.parametrize("capture", all_captures(), ids=lambda p: p.name)
def test_tshark_finds_the_same_keepalive_frames(capture: Path, tmp_path: Path) -> None:
    expected = _tshark_keepalive_frames(capture)
    frames, counted = _analyzer_keepalive_frames(capture, tmp_path)
    assert frames == expected
    assert counted == len(expected)
