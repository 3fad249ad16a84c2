"""What a user types into the TUI's go-to prompt is parsed, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.keepalive.analysis import Settings
from analyzer.keepalive.model import Analysis
from analyzer.pipeline.analyze import analyze_frames
from analyzer.read.capture import open_capture
from analyzer.tui.app import CaptureApp

KA = Path(__file__).parent.parent / "data" / "hostile" / "ka.pcap"  # 15 keepalives, one tunnel


def _load(_progress: object) -> Analysis:
    with open_capture(str(KA)) as reader:
        return analyze_frames(reader, Settings(), files=[str(KA)])


@pytest.mark.parametrize(
    "typed",
    [
        "#" + "9" * 5000,  # more digits than int() converts: ValueError took the TUI down
        "#²",  # a digit to str.isdigit(), not to int()
    ],
)
async def test_a_frame_number_int_refuses_is_not_a_frame_number(typed: str) -> None:
    app = CaptureApp(_load, name=str(KA))
    async with app.run_test(size=(120, 40)) as pilot:
        while not app.ready.is_set():
            await pilot.pause(0.05)
        before = app.cursor
        app.goto(typed)
        assert app.message.startswith("not a frame number: #")
        assert app.cursor == before
