"""Options and conventions every subcommand shares: exit statuses, the period and retries
argument types, and reading ``--config``.

The registering modules of the subcommands (probe, tui, watch, export-lua) import these from
here rather than from :mod:`analyzer.cli`, which imports them.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from analyzer.keepalive.state import MAX_PERIOD, MAX_RETRIES
from analyzer.report.escape import printable

if TYPE_CHECKING:
    from analyzer.config import KeepaliveConfig

PROG = "gre-keepalive"

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_DOWN = 3

MIN_PERIOD = 0.001  # sub-second periods are for lab use (probe --lab, watch tests)


def period_option(text: str) -> float:
    """argparse type of a keepalive period in seconds (every subcommand's --period)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"period must be a number of seconds, not {_quoted(text)}"
        ) from None
    # below MIN_PERIOD (5e-324, say) every count of ticks would overflow
    if not MIN_PERIOD <= value <= MAX_PERIOD:
        raise argparse.ArgumentTypeError(
            f"period {_short(text)} out of range {MIN_PERIOD:g}-{MAX_PERIOD} seconds"
        )
    return value


def positive_option(unit: str, most: float = math.inf) -> Callable[[str], float]:
    """argparse type of a finite number of `unit` ("seconds") above 0, at most `most`."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of {unit}, not {text!r}") from None
        if not 0 < value < math.inf:
            raise argparse.ArgumentTypeError(
                f"{text} {unit} out of range (a finite number above 0)"
            )
        if value > most:
            raise argparse.ArgumentTypeError(f"{text} {unit} is too long (at most {most:.0f})")
        return value

    return parse


MAX_COUNT = 10**12  # more packets or transitions than any capture holds


def count_option(what: str, least: int) -> Callable[[str], int]:
    """argparse type of a whole number of `what` ("packets"), `least` … MAX_COUNT."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number of {what}, not {text!r}"
            ) from None
        if not least <= value <= MAX_COUNT:
            raise argparse.ArgumentTypeError(f"{text} {what} out of range ({least}-{MAX_COUNT:,})")
        return value

    return parse


def retries_option(text: str) -> int | str:
    """argparse type of `analyze --retries`: a count, or 'infer'."""
    if text == "infer":
        return text
    return whole_retries_option(text)


def whole_retries_option(text: str) -> int:
    """argparse type of a keepalive retries count."""
    digits = text.strip().lstrip("0") or "0"  # int() refuses 100,000 digits with its own error
    if len(digits) > len(str(MAX_RETRIES)) and digits.isdigit():
        raise argparse.ArgumentTypeError(f"retries {_short(text)} out of range 1-{MAX_RETRIES}")
    try:
        value = int(digits) if digits.isdigit() else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"retries must be an integer, not {_quoted(text)}"
        ) from None
    if not 1 <= value <= MAX_RETRIES:
        raise argparse.ArgumentTypeError(f"retries {_short(text)} out of range 1-{MAX_RETRIES}")
    return value


def _quoted(text: str, limit: int = 40) -> str:
    """`text` as repr() shows it, shortened to about `limit` characters."""
    shown = repr(text)
    return shown if len(shown) <= limit else f"{shown[: limit - 1]}…' ({len(text)} characters)"


def _short(number: str, limit: int = 40) -> str:
    """A number as written, shortened when it has more than `limit` characters."""
    return number if len(number) <= limit else f"{number[:limit]}… ({len(number)} characters)"


class UsageError(Exception):
    """A problem with what the user gave us: one line, reported with exit status 2."""


def write_stdout(text: str) -> None:
    """Write `text` to standard output whole, or raise (BrokenPipeError when its reader went
    away). A large write into a pipe whose reader quits part-way returns short, and the
    buffered stream dropped the rest without an error: the command ended 0, its output cut."""
    sys.stdout.flush()
    try:
        descriptor = sys.stdout.fileno()
    except (OSError, ValueError):  # not a file (closed at start, a test's buffer): its own write
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    view = memoryview(text.encode(sys.stdout.encoding or "utf-8"))
    while view:
        view = view[os.write(descriptor, view) :]


def fail(message: str, *, who: str = PROG) -> int:
    """Say `message` as one escaped error line on stderr; the usage exit status."""
    print(f"{who}: error: {printable(message)}", file=sys.stderr)
    return EXIT_USAGE


def read_config(path: str | None, *, who: str = PROG) -> KeepaliveConfig | None:
    """Load `--config` (None without one), printing its warnings on stderr as `who`.
    Raises UsageError (one line) when the file cannot be used."""
    if not path:
        return None
    from analyzer.config import ConfigError, load_config

    try:
        config = load_config(path)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    for warning in config.warnings:
        print(f"{who}: warning: {printable(warning)}", file=sys.stderr)
    return config
