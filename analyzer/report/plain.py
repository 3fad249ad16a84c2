"""The text report without colour — for files and pipes — written without rich's renderer.

rich lays out every line through its segment pipeline: about 5 ms per tunnel, so 200,000
tunnels took a quarter of an hour. :class:`PlainConsole` writes the same characters
(a test holds it to rich's output over every capture in the repository) for the few kinds
of renderable the report prints — markup strings, ``Text``, ``Padding`` of ``Text`` and a
borderless ``Table`` — using rich's own line breaking (``divide_line``) and cell widths.
Anything else, and a table too wide for the page (rich would squeeze its columns), is
handed to a real rich console on the same stream.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from itertools import pairwise
from typing import Any, TextIO

from rich._wrap import divide_line
from rich.cells import cell_len
from rich.console import Console
from rich.control import strip_control_codes
from rich.markup import RE_TAGS
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

_WORD = re.compile(r"\s*\S+\s*")  # rich's word: leading space, the word, trailing space
# A character that is neither ASCII nor one the report itself writes (each one cell wide).
_WIDE = re.compile(r"[^\x00-\x7f…↔→≥·×]")
# The control characters rich's Text leaves out (rich.control.strip_control_codes).
_CONTROL = re.compile("[\a\b\v\f\r]")
# Text whose words are apart by single spaces (no other whitespace, none leading).
_ODD_SPACES = re.compile(r"^ |  |[^\S ]")


def _narrow(text: str) -> bool:
    """Every character of `text` is one cell wide (ASCII and the report's own arrows)."""
    return text.isascii() or _WIDE.search(text) is None


def _cells(text: str) -> int:
    """Cells `text` takes on a terminal: its length when every character is one cell
    wide, else rich's count."""
    return len(text) if _narrow(text) else cell_len(text)


def _divide_narrow(text: str, width: int) -> list[int]:
    """rich's ``divide_line`` (fold on) for text of one-cell characters, counting with
    len(): the offsets at which to break `text` into lines of at most `width` cells."""
    if _ODD_SPACES.search(text) is None and max(map(len, text.split(" "))) <= width:
        return _divide_spaced(text, width)
    breaks: list[int] = []
    offset = 0  # cells used on the current line
    for match in _WORD.finditer(text):
        start, word = match.start(), match.group(0)
        length = len(word.rstrip())
        if width - offset >= length:
            offset += len(word)
        elif length > width:  # a word longer than a line: folded across lines
            pieces = [word[at : at + width] for at in range(0, len(word), width)]
            for piece in pieces[:-1]:
                if start:
                    breaks.append(start)
                start += len(piece)
            if start:
                breaks.append(start)
            offset = len(pieces[-1])
        elif offset and start:
            breaks.append(start)
            offset = len(word)
    return breaks


def _divide_spaced(text: str, width: int) -> list[int]:
    """:func:`_divide_narrow` for words apart by single spaces, none longer than a line:
    each line ends before the first word that does not fit whole."""
    breaks: list[int] = []
    line = 0  # where the current line starts
    end = len(text)
    while end - line > width:
        limit = line + width  # the first offset past the line
        if text[limit] == " ":  # a word ends right at the edge: the next one starts a line
            if limit + 1 == end:
                break  # only the trailing space is left, and rich keeps it
            line = limit + 1
        else:  # the edge cuts a word: it starts the next line
            line = text.rfind(" ", line, limit) + 1
        breaks.append(line)
    return breaks


def _plain(renderable: object) -> str | None:
    """The characters of a string (markup rendered) or of a Text; None for anything else."""
    if isinstance(renderable, Text):
        return renderable.plain
    if isinstance(renderable, str):
        return _markup_plain(renderable) if "[" in renderable else renderable
    return None


def _markup_plain(markup: str) -> str:
    """The text of console markup: tags dropped, escaped tags and backslashes kept, as
    rich's markup parser yields them (without building styled Text)."""
    out: list[str] = []
    position = 0
    for match in RE_TAGS.finditer(markup):
        full_text, escapes, _tag = match.groups()
        start, end = match.span()
        out.append(markup[position:start])
        backslashes, escaped = divmod(len(escapes), 2)
        out.append("\\" * backslashes)
        if escaped:
            out.append(full_text[len(escapes) :])
        position = end
    out.append(markup[position:])
    return "".join(out)


def wrap(text: str, width: int) -> list[str]:
    """`text` broken into lines of at most `width` cells as rich breaks it (words kept
    whole unless longer than a line; trailing spaces kept where they fit)."""
    if len(text) <= width and "\n" not in text and _narrow(text):
        return [text]  # the common case: it fits
    lines: list[str] = []
    for line in text.split("\n"):
        if _cells(line) <= width:
            lines.append(line)
            continue
        breaks = _divide_narrow(line, width) if _narrow(line) else divide_line(line, width)
        offsets = [0, *breaks, len(line)]
        for start, end in pairwise(offsets):
            piece = line[start:end]
            while _cells(piece) > width and piece.endswith(" "):
                piece = piece[:-1]
            lines.append(piece)
    return lines


def _ljust(text: str, width: int) -> str:
    return text + " " * (width - _cells(text))


class PlainConsole(Console):
    """rich's console without colour, printing what :mod:`analyzer.report.text` prints as
    rich would, without its renderer; any other call goes to rich itself."""

    def __init__(self, file: TextIO, width: int) -> None:
        """Write to `file`, `width` cells to a line."""
        super().__init__(
            file=file,
            force_terminal=False,
            no_color=True,
            width=width,
            highlight=False,
            emoji=False,
        )
        self.plain_width = width
        self._write = file.write  # (Console.file is a property)

    def print(self, *objects: Any, **options: Any) -> None:
        """Print one renderable (or an empty line), ending with a newline."""
        if not options and len(objects) <= 1:
            line = objects[0] if objects else ""
            if (
                type(line) is str
                and len(line) <= self.plain_width
                and "[" not in line
                and "\n" not in line
                and _narrow(line)
            ):
                self._write(line + "\n")  # the common case: a short plain line
                return
            lines = self._lines(line)
            if lines is not None:
                self._write("\n".join(lines) + "\n")
                return
        super().print(*objects, **options)

    def _lines(self, renderable: object) -> list[str] | None:
        text = _plain(renderable)
        if text is not None:
            return wrap(text, self.plain_width)
        if isinstance(renderable, Padding):
            return self._padded(renderable)
        if isinstance(renderable, Table):
            return self._table(renderable)
        return None

    def print_text(self, text: str) -> None:
        """``print(Text(text))``, without building it."""
        if _CONTROL.search(text) is not None:
            text = strip_control_codes(text)  # as Text does
        self._write("\n".join(wrap(text, self.plain_width)) + "\n")

    def print_padded(self, text: str, left: int) -> None:
        """``print(Padding(Text(text), (0, 0, 0, left), expand=False))``, without
        building them."""
        if _CONTROL.search(text) is not None:
            text = strip_control_codes(text)
        lines = self._padded_lines(text, left)
        if lines is None:
            super().print(Padding(Text(text), (0, 0, 0, left), expand=False))
        else:
            self._write("\n".join(lines) + "\n")

    def print_table(self, headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
        """``print`` of a borderless Table (``show_edge=False, box=None``) with these
        headers and rows (cells are markup, as in a Table), every column ``no_wrap`` but
        the one headed "event", without building it."""
        grid = [tuple(headers), *map(tuple, rows)]
        cells = "".join(cell for row in grid for cell in row)
        if "[" not in cells and "\n" not in cells and _narrow(cells):
            lines = self._narrow_table(grid, list(headers).index("event"))
            if lines is not None:
                self._write("\n".join(lines) + "\n")
                return
        columns = [list(column) for column in zip(*grid, strict=True)]
        wrapable = [header == "event" for header in headers]
        plain = [
            [_markup_plain(cell) for cell in cells] if "[" in "".join(cells) else cells
            for cells in columns
        ]
        lines = self._table_lines(plain, wrapable)
        if lines is not None:
            self._write("\n".join(lines) + "\n")
            return
        table = Table(show_edge=False, pad_edge=True, box=None)
        for header, can_wrap in zip(headers, wrapable, strict=True):
            table.add_column(header, no_wrap=not can_wrap)
        for index in range(1, len(columns[0])):
            table.add_row(*(column[index] for column in columns))
        super().print(table)

    def _narrow_table(self, grid: list[tuple[str, ...]], wrapable: int) -> list[str] | None:
        """:meth:`_table_lines` for plain cells of one-cell characters (len() is their
        width), the column `wrapable` the only one that may wrap."""
        widths = [max(map(len, column)) for column in zip(*grid, strict=True)]
        excess = sum(widths) + 2 * len(widths) - self.plain_width
        if excess > 0:
            if widths[wrapable] - excess < 1:
                return None
            widths[wrapable] -= excess
        line = " " + "  ".join(f"{{:<{width}}}" for width in widths) + " "
        width = widths[wrapable]
        lines = []
        for row in grid:
            if len(row[wrapable]) <= width:
                lines.append(line.format(*row))
                continue
            blank = [""] * len(row)
            for index, piece in enumerate(wrap(row[wrapable], width)):
                cells = list(row) if index == 0 else blank
                cells[wrapable] = piece
                lines.append(line.format(*cells))
        return lines

    def _padded(self, padding: Padding) -> list[str] | None:
        text = _plain(padding.renderable)
        if text is None or padding.expand or padding.top or padding.bottom or padding.right:
            return None
        return self._padded_lines(text, padding.left)

    def _padded_lines(self, text: str, left: int) -> list[str] | None:
        widest = max((_cells(line) for line in text.split("\n")), default=0)
        inner = min(widest + left, self.plain_width) - left
        if inner < 1:
            return None
        return [" " * left + _ljust(line, inner) for line in wrap(text, inner)]

    def _table(self, table: Table) -> list[str] | None:
        """A table without borders or edges (box None), padding (0, 1): each cell padded by
        a space either side, columns as wide as their widest cell."""
        if (
            table.box is not None
            or table.show_edge
            or not table.pad_edge
            or table.padding != (0, 1, 0, 1)
            or table.expand
            or table.title
            or table.caption
            or not table.show_header
        ):
            return None
        columns: list[list[str]] = []
        for column in table.columns:
            cells = [_plain(column.header), *(_plain(cell) for cell in column.cells)]
            if any(cell is None for cell in cells):
                return None
            columns.append([str(cell) for cell in cells])
        wrapable = [column.width is None and not column.no_wrap for column in table.columns]
        return self._table_lines(columns, wrapable)

    def _table_lines(self, columns: list[list[str]], wrapable: list[bool]) -> list[str] | None:
        """The lines of a borderless table of these columns (header first): None when rich
        would lay it out otherwise than this knows how to."""
        if not columns or any("\n" in "".join(cells) for cells in columns):
            return None
        sizes = [
            list(map(len, cells)) if _narrow("".join(cells)) else list(map(_cells, cells))
            for cells in columns
        ]
        widths = [max(column) for column in sizes]
        excess = sum(width + 2 for width in widths) - self.plain_width
        rows = range(len(columns[0]))
        if excess <= 0:
            return [
                "".join(
                    f" {cells[row]}{' ' * (width - size[row] + 1)}"
                    for cells, size, width in zip(columns, sizes, widths, strict=True)
                )
                for row in rows
            ]
        # rich narrows the widest wrapable column by the excess; with one such column (the
        # report's "event") that is all it does, unless it would vanish.
        if wrapable.count(True) != 1:
            return None
        narrowed = wrapable.index(True)
        if widths[narrowed] - excess < 1:
            return None
        widths[narrowed] -= excess
        lines: list[str] = []
        for row in rows:
            if sizes[narrowed][row] <= widths[narrowed]:  # the row fits: one line
                lines.append(
                    "".join(
                        f" {cells[row]}{' ' * (width - size[row] + 1)}"
                        for cells, size, width in zip(columns, sizes, widths, strict=True)
                    )
                )
                continue
            wrapped = [
                wrap(cells[row], width) if index == narrowed else [cells[row]]
                for index, (cells, width) in enumerate(zip(columns, widths, strict=True))
            ]
            for index in range(max(len(cell) for cell in wrapped)):
                lines.append(
                    "".join(
                        f" {_ljust(cell[index] if index < len(cell) else '', width)} "
                        for cell, width in zip(wrapped, widths, strict=True)
                    )
                )
        return lines
