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
from itertools import pairwise
from typing import Any, TextIO

from rich._wrap import divide_line
from rich.cells import cell_len
from rich.console import Console
from rich.markup import RE_TAGS
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

_WORD = re.compile(r"\s*\S+\s*")  # rich's word: leading space, the word, trailing space
# Characters the report itself writes outside ASCII, each one cell wide.
_NARROW = str.maketrans("", "", "…↔→≥·×")


def _narrow(text: str) -> bool:
    """Every character of `text` is one cell wide (ASCII and the report's own arrows)."""
    return text.isascii() or text.translate(_NARROW).isascii()


def _cells(text: str) -> int:
    """Cells `text` takes on a terminal: its length when every character is one cell
    wide, else rich's count."""
    return len(text) if _narrow(text) else cell_len(text)


def _divide_narrow(text: str, width: int) -> list[int]:
    """rich's ``divide_line`` (fold on) for text of one-cell characters, counting with
    len(): the offsets at which to break `text` into lines of at most `width` cells."""
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
                self.file.write(line + "\n")  # the common case: a short plain line
                return
            lines = self._lines(line)
            if lines is not None:
                self.file.write("\n".join(lines) + "\n")
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

    def _padded(self, padding: Padding) -> list[str] | None:
        text = _plain(padding.renderable)
        if text is None or padding.expand or padding.top or padding.bottom or padding.right:
            return None
        left = padding.left
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
            if any(cell is None or "\n" in cell for cell in cells):
                return None
            columns.append([str(cell) for cell in cells])
        if not columns:
            return None
        sizes = [[_cells(cell) for cell in cells] for cells in columns]
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
        wrapable = [column.width is None and not column.no_wrap for column in table.columns]
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
