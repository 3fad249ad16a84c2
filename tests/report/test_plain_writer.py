"""The text report's shortcuts past rich (PlainConsole.print_text, print_padded,
print_table; text._clock) write exactly what rich and utc_text would."""

from __future__ import annotations

import io
import math
import random

import pytest
from rich._wrap import divide_line
from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from analyzer.keepalive.clock import utc_text
from analyzer.report.plain import PlainConsole, _divide_narrow
from analyzer.report.text import _clock


def _rich(width: int) -> tuple[io.StringIO, Console]:
    out = io.StringIO()
    console = Console(
        file=out, force_terminal=False, no_color=True, width=width, highlight=False, emoji=False
    )
    return out, console


def _plain(width: int) -> tuple[io.StringIO, PlainConsole]:
    out = io.StringIO()
    return out, PlainConsole(out, width)


TEXTS = [
    "short",
    "a paragraph of words that wraps over several lines of a narrow page, as messages do",
    "control\x07 characters\r are left out as Text leaves them out of a long line",
    "an arrow → and a range 1 … 2 and ≥ wrap like the ASCII around them do here",
    "wide 日本語の文字列 take two cells each and wrap sooner than the others do",
    "averyveryveryverylongwordthatcannotfitonanyline at all",
    "",
]


@pytest.mark.parametrize("text", TEXTS)
def test_print_text_is_print_of_a_text(text: str) -> None:
    plain, console = _plain(30)
    console.print_text(text)
    rich, reference = _rich(30)
    reference.print(Text(text))
    assert plain.getvalue() == rich.getvalue()


@pytest.mark.parametrize("text", TEXTS)
def test_print_padded_is_print_of_a_padding(text: str) -> None:
    plain, console = _plain(30)
    console.print_padded(text, 6)
    rich, reference = _rich(30)
    reference.print(Padding(Text(text), (0, 0, 0, 6), expand=False))
    assert plain.getvalue() == rich.getvalue()


ROWS = [
    ("2025-12-01 00:00:00.000000", "1", "sent, unanswered (id 5)", "1", "up"),
    ("2025-12-01 00:00:30.000000", "(extrapolated)", "LINE PROTOCOL DOWN (3 ≥ 3)", "3", "down"),
    ("00:00:40 … 23:58:30", "", "8628 ticks not in capture (extrapolated)", "8632", "down"),
    ("x", "[bold]markup[/bold]", "an \\[escaped] tag", "", ""),
]
HEADERS = ("time (UTC)", "frame", "event", "counter", "line")


@pytest.mark.parametrize("width", [120, 80, 60, 50, 20])
def test_print_table_is_print_of_a_borderless_table(width: int) -> None:
    """Wide enough, narrowed (the event column wraps) and too narrow (left to rich)."""
    plain, console = _plain(width)
    console.print_table(HEADERS, ROWS)
    rich, reference = _rich(width)
    table = Table(show_edge=False, pad_edge=True, box=None)
    for header in HEADERS:
        table.add_column(header, no_wrap=header != "event")
    for row in ROWS:
        table.add_row(*row)
    reference.print(table)
    assert plain.getvalue() == rich.getvalue()


def test_line_breaking_of_single_spaced_words_is_rich_s() -> None:
    # 3,000 lines of words apart by one space (the report's own text), widths 1-60
    rng = random.Random(5)
    for _ in range(3000):
        words = [
            "".join(rng.choice("abc…→≥x1-().,") for _ in range(rng.randint(1, 15)))
            for _ in range(rng.randint(1, 40))
        ]
        line = " ".join(words) + (" " if rng.random() < 0.3 else "")
        width = rng.randint(1, 60)
        assert _divide_narrow(line, width) == divide_line(line, width, fold=True), (line, width)


def test_clock_is_utc_text() -> None:
    rng = random.Random(7)
    times = [rng.uniform(-1e12, 3e11) for _ in range(3000)]
    times += [0.0, 1764556012.9999995, 253402300799.9999, 253402300800.0, -1e-9]
    times += [math.nan, math.inf, -math.inf]
    for time in times:
        for digits in (0, 3, 6, 9):
            for date in (True, False):
                expected = utc_text(time, date=date, digits=digits)
                assert _clock(time, digits, date=date) == expected, (time, digits, date)
