"""CSV output: one row per keepalive event (sent, extrapolated, returned) and per transition."""

from __future__ import annotations

import csv
import heapq
from collections.abc import Iterable, Iterator
from itertools import pairwise
from typing import TextIO

from analyzer.keepalive.model import Analysis, OriginatorResult, TunnelResult

COLUMNS = (
    "time",
    "frame",
    "tunnel",
    "key",
    "originator",
    "peer",
    "event",
    "ident",
    "counter",
    "line_state",
    "partner_frame",
    "rtt_ms",
    "reply_ttl",
    "ticks",  # extrapolated rows: how many ticks the row stands for (the last at `time`)
)


def _cell(value: object) -> object:
    return "" if value is None else value


Row = tuple[float, int, tuple[object, ...]]  # (time, order among equal times, cells)


def write_csv(analysis: Analysis, stream: TextIO) -> None:
    """Write the header and the rows of every originator, in time order.

    Rows are produced and written one at a time (a merge of the originators' timelines,
    each already in time order): no list of all rows is built.
    """
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(COLUMNS)
    precision = analysis.source.precision
    streams = [
        _originator_rows(tunnel, originator, precision)
        for tunnel in analysis.tunnels
        for originator in tunnel.originators
    ]
    # Ties keep the order of the streams (heapq.merge is stable), as a global sort would.
    for _time, _order, row in heapq.merge(*streams, key=_row_key):
        writer.writerow([_cell(v) for v in row])


def _row_key(row: Row) -> tuple[float, int]:
    return row[0], row[1]


def _originator_rows(
    tunnel: TunnelResult, originator: OriginatorResult, precision: int
) -> Iterator[Row]:
    """One originator's rows in (time, order) order: its events, then at equal keys its
    transitions (a down transition precedes the send that found the counter too high; an
    up transition follows the reply that caused it)."""
    name = " <-> ".join(tunnel.endpoints)
    events: Iterable[Row] = (
        (
            event.time,
            0,
            (
                f"{event.time:.{precision}f}",
                event.frame,
                name,
                tunnel.key,
                originator.address,
                originator.peer,
                event.role.value,
                event.ident,
                event.counter,
                event.line_state.value,
                event.partner_frame,
                event.rtt_ms,
                event.reply_ttl,
                event.ticks,
            ),
        )
        for event in originator.events
    )
    transitions: Iterable[Row] = (
        (
            transition.time,
            -1 if transition.state.value == "down" else 1,
            (
                f"{transition.time:.{precision}f}",
                transition.frame,
                name,
                tunnel.key,
                originator.address,
                originator.peer,
                f"line-{transition.state.value}",
                None,
                transition.counter,
                transition.state.value,
                None,
                None,
                None,
                None,
            ),
        )
        for transition in originator.transitions
    )
    in_order = all(a.time <= b.time for a, b in pairwise(originator.events)) and all(
        a.time <= b.time for a, b in pairwise(originator.transitions)
    )
    if not in_order:  # never seen; then this originator's rows are sorted in memory
        events, transitions = sorted(events, key=_row_key), sorted(transitions, key=_row_key)
    return heapq.merge(events, transitions, key=_row_key)
