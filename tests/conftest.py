"""Shared fixtures: where the captures live."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO_CAPTURES = ROOT / "captures"
REAL_CAPTURES = ROOT.parent / "shared" / "captures-real"


def all_captures() -> list[Path]:
    """Every capture the project claims to handle: the demos and the real public ones."""
    found = sorted(DEMO_CAPTURES.glob("*.pcap*"))
    if REAL_CAPTURES.is_dir():
        found += sorted(
            p for p in REAL_CAPTURES.iterdir() if p.suffix in (".pcap", ".pcapng", ".cap")
        )
    return found


@pytest.fixture(scope="session")
def real_captures_dir() -> Path:
    """../shared/captures-real, or a visible skip when this checkout has none beside it."""
    if not REAL_CAPTURES.is_dir():
        pytest.skip(f"real captures not found at {REAL_CAPTURES}")
    return REAL_CAPTURES
