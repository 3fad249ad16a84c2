"""Shared fixtures: where the captures live."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO_CAPTURES = ROOT / "captures"
REAL_CAPTURES = ROOT / "tests" / "data" / "real"


def all_captures() -> list[Path]:
    """Every capture the project claims to handle: the demos and the real public ones."""
    return sorted(DEMO_CAPTURES.glob("*.pcap*")) + real_capture_files()


def real_capture_files() -> list[Path]:
    """The real public captures kept in tests/data/real (see its INDEX.md).

    A test that claims every real capture must not pass vacuously: an empty or missing
    folder is an error, not a skip.
    """
    found = sorted(p for p in REAL_CAPTURES.glob("*") if p.suffix in (".pcap", ".pcapng", ".cap"))
    if not found:
        raise FileNotFoundError(f"no real captures in {REAL_CAPTURES}: the checkout is incomplete")
    return found


@pytest.fixture(scope="session")
def real_captures_dir() -> Path:
    """tests/data/real; a checkout without its real captures fails here rather than skipping."""
    real_capture_files()
    return REAL_CAPTURES
