"""The hostile reproducers kept in tests/data/hostile: every output of `analyze` answers
each of them with exit 0 or 2 and no traceback (they raised ValueError, OSError,
OverflowError, RecursionError or rich's MarkupError before)."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.cli import main

DATA = Path(__file__).parent.parent / "data" / "hostile"
CAPTURES = sorted(p.name for p in DATA.glob("*.pcap*"))
CONFIGS = sorted(p.name for p in DATA.iterdir() if p.suffix in (".cfg", ".toml"))


def test_the_reproducers_are_there() -> None:
    assert {"epb_year10000.pcapng", "tsoffset_huge.pcapng", "year33600_unanswered.pcapng"} <= set(
        CAPTURES
    )
    assert {"deep_nesting.toml", "keepalive_100k_zeros.cfg", "period_denormal.toml"} <= set(CONFIGS)


@pytest.mark.parametrize("reader", ["auto", "python"])
@pytest.mark.parametrize("fmt", ["text", "json", "csv"])
@pytest.mark.parametrize("capture", CAPTURES)
def test_every_output_answers_every_capture(
    tmp_path: Path, capture: str, fmt: str, reader: str
) -> None:
    args = ["analyze", str(DATA / capture), "--format", fmt, "--reader", reader]
    assert main([*args, "-o", str(tmp_path / "out")]) in (0, 2)


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize("config", CONFIGS)
def test_every_config_is_used_or_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], config: str, fmt: str
) -> None:
    args = ["analyze", str(DATA / "ka.pcap"), "--config", str(DATA / config), "--format", fmt]
    status = main([*args, "-o", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert status in (0, 2)
    if status == 2:
        assert len(error.splitlines()) == 1, error
