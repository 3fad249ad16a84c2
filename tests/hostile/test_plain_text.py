"""The text report without colour is written by PlainConsole, not rich's renderer: the
characters must be exactly rich's, on every capture of the repository."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import pytest
from rich._wrap import divide_line
from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from analyzer.keepalive.analysis import Settings
from analyzer.pipeline.analyze import analyze_collected
from analyzer.pipeline.collect import collect
from analyzer.report import text
from analyzer.report.plain import PlainConsole, _divide_narrow

ROOT = Path(__file__).parent.parent.parent
CAPTURES = sorted(
    str(path.relative_to(ROOT))
    for folder in ("captures", "tests/data/real", "tests/data/hostile")
    for path in (ROOT / folder).iterdir()
    if path.suffix in (".pcap", ".pcapng", ".cap")
)


def _rich(file: io.StringIO, width: int) -> Console:
    return Console(
        file=file, force_terminal=False, no_color=True, width=width, highlight=False, emoji=False
    )


def _report(path: str, monkeypatch: pytest.MonkeyPatch, console: Any) -> str:
    collected = collect(str(ROOT / path))
    analysis = analyze_collected(collected.collector, Settings())
    analysis.source.precision = collected.precision
    stream = io.StringIO()
    with monkeypatch.context() as patch:
        patch.setattr(text, "PlainConsole", console)
        text.write_text(analysis, stream)
    return stream.getvalue()


@pytest.mark.parametrize("path", CAPTURES)
def test_the_report_is_rich_s_to_the_character(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _report(path, monkeypatch, PlainConsole) == _report(path, monkeypatch, _rich)


def _both(*renderables: object, width: int = 40) -> tuple[str, str]:
    plain, rich = io.StringIO(), io.StringIO()
    PlainConsole(plain, width).print(*renderables)
    _rich(rich, width).print(*renderables)
    return plain.getvalue(), rich.getvalue()


@pytest.mark.parametrize(
    "renderable",
    [
        "a line that is much longer than forty cells, so it wraps twice over at words",
        "[bold]markup[/bold] and an escaped \\[tag] in a long line that has to be wrapped",
        "averyveryveryverylongwordthatcannotfitonanylineofforty cells at all",
        Text("trailing spaces at a break     then more words to wrap past forty"),
        Padding(
            Text("indented paragraph that wraps across two or three lines of forty"),
            (0, 0, 0, 6),
            expand=False,
        ),
        Padding(Text("short"), (0, 0, 0, 4), expand=False),
        "wide characters 日本語の文字列 take two cells each and wrap sooner than others",
        "",
    ],
)
def test_each_kind_of_line_matches(renderable: object) -> None:
    plain, rich = _both(renderable)
    assert plain == rich


def test_a_table_matches_and_a_too_wide_one_is_left_to_rich() -> None:
    for cell in ("x", "a cell far too wide for a table forty cells across, so rich wraps"):
        table = Table(show_edge=False, pad_edge=True, box=None)
        for column in ("time", "event", "n"):
            table.add_column(column, no_wrap=column != "event")
        table.add_row("00:00:01", cell, "3")
        table.add_row("00:00:02", Text("down"), "4")
        plain, rich = _both(table)
        assert plain == rich


@pytest.mark.parametrize("color", [False, True])
def test_an_ipv6_address_is_not_taken_for_an_emoji_code(color: bool) -> None:
    # 4120:7467:1700:4200:143:100:7f01:400e holds ":100:", rich's code for 💯
    collected = collect(str(ROOT / "tests/data/real/tcpdump__erspan-type-iii-pb-1.pcap"))
    stream = io.StringIO()
    text.write_text(analyze_collected(collected.collector, Settings()), stream, color=color)
    assert "4200:143:100:7f01" in stream.getvalue() and "💯" not in stream.getvalue()


@pytest.mark.parametrize(
    "markup",
    [
        "[bold]a[/bold] b",
        "\\[not a tag] and \\\\[bold]real[/bold] and \\\\\\[escaped]",
        "[yellow]warning:[/yellow] x[1] y[/z\\[q]",
        "no tags [ at all ]",
    ],
)
def test_markup_text_is_rich_s(markup: str) -> None:
    plain, rich = _both(markup, width=200)
    assert plain == rich


def test_line_breaking_of_one_cell_text_is_rich_s() -> None:
    # 2,000 strings of words, runs of spaces and words longer than a line, widths 1-60
    rng = random.Random(3)
    alphabet = "ab cdefgh  …→≥xyz1234567890-().,"
    for _ in range(2000):
        line = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200)))
        if rng.random() < 0.2:
            line = line.replace(" ", "")
        width = rng.randint(1, 60)
        assert _divide_narrow(line, width) == divide_line(line, width, fold=True), (line, width)
