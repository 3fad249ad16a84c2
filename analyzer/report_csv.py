"""CSV output: one row per keepalive event (sent, extrapolated, returned) and per transition."""

from __future__ import annotations

import csv
from typing import TextIO

from analyzer.model import Analysis

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
)


def _cell(value: object) -> object:
    return "" if value is None else value


def write_csv(analysis: Analysis, stream: TextIO) -> None:
    """Write the header and the rows of every originator, in time order."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(COLUMNS)
    precision = analysis.source.precision
    rows: list[tuple[float, int, tuple[object, ...]]] = []
    for tunnel in analysis.tunnels:
        name = " <-> ".join(tunnel.endpoints)
        for originator in tunnel.originators:
            for event in originator.events:
                rows.append(
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
                        ),
                    )
                )
            for transition in originator.transitions:
                # A down transition precedes the send that found the counter too high;
                # an up transition follows the reply that caused it.
                rows.append(
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
                        ),
                    )
                )
    rows.sort(key=lambda row: (row[0], row[1]))
    for _time, _order, row in rows:
        writer.writerow([_cell(v) for v in row])
