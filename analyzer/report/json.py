"""The `gre-keepalive.analysis/1` JSON document: a contract, changed only by adding fields."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from functools import cache
from itertools import chain
from typing import Any, TextIO

from analyzer.keepalive.model import (
    Analysis,
    Diagnosis,
    KeepaliveEvent,
    OriginatorResult,
    RetriesInference,
    TunnelResult,
    WhatIf,
)
from analyzer.keepalive.state import Transition
from analyzer.report.escape import strict_json

SCHEMA = "gre-keepalive.analysis/1"


def _time(value: float | None, precision: int) -> float | None:
    return None if value is None else round(value, precision)


def _transition(transition: Transition, precision: int) -> dict[str, Any]:
    return {
        "time": _time(transition.time, precision),
        "state": transition.state.value,
        "counter": transition.counter,
        "frame": transition.frame,
        "extrapolated": transition.frame is None,
    }


def _event(event: KeepaliveEvent, precision: int) -> dict[str, Any]:
    # One row per keepalive (hundreds of thousands on a hub): the enums' own text, and the
    # time rounded once.
    time = round(event.time, precision)
    return {
        "time": time,
        "frame": event.frame,
        "type": event.role,
        "ident": event.ident,
        "counter": event.counter,
        "line_state": event.line_state,
        "partner_frame": event.partner_frame,
        "rtt_ms": event.rtt_ms,
        "reply_ttl": event.reply_ttl,
        "ticks": event.ticks,
        # A run of extrapolated ticks: the first of them (`time` is the last); else `time`.
        "first_time": time if event.first_time is None else round(event.first_time, precision),
    }


def originator_dict(originator: OriginatorResult, precision: int) -> dict[str, Any]:
    """One originator as the JSON contract spells it."""
    return _originator(originator, precision, [_event(e, precision) for e in originator.events])


def _originator(
    originator: OriginatorResult, precision: int, keepalives: list[dict[str, Any]] | _EventRows
) -> dict[str, Any]:
    rtt = originator.rtt_ms
    return {
        "address": originator.address,
        "peer": originator.peer,
        "period": float(originator.period),
        "period_source": originator.period_source.value,
        "retries": originator.retries,
        "retries_source": originator.retries_source.value,
        "sent": originator.sent,
        "returned": originator.returned,
        "unanswered": originator.unanswered,
        "extrapolated": originator.extrapolated,
        "duplicates": originator.duplicates,
        "rtt_ms": None if rtt is None else {"min": rtt.min, "median": rtt.median, "max": rtt.max},
        "transitions": [_transition(t, precision) for t in originator.transitions],
        "final_state": originator.final_state.value,
        "final_counter": originator.final_counter,
        "down_seconds": round(originator.down_seconds, precision),
        "blackholed_packets": {
            "min": originator.blackholed_packets.min,
            "max": originator.blackholed_packets.max,
        },
        "data_packets": originator.data_packets,
        "inner_addresses": None
        if originator.inner_addresses is None
        else {"src": originator.inner_addresses[0], "dst": originator.inner_addresses[1]},
        "variants": list(originator.variants),
        "notes": list(originator.notes),
        "keepalives": keepalives,
        "observed_period": originator.observed_period,
        "retries_confidence": originator.retries_confidence,
        "retries_inferred": _retries_inferred(originator.retries_inferred),
        "blackhole_seconds": {
            "min": round(originator.blackhole_seconds.min, precision),
            "max": round(originator.blackhole_seconds.max, precision),
        },
        "what_if": _what_if(originator.what_if, precision),
        "profile": originator.profile,
        "profile_source": originator.profile_source,
        "profile_evidence": list(originator.profile_evidence),
        "hold_time": originator.hold_time,
        "capture": originator.capture,
        "period_agreement": {
            "agreeing": originator.period_agreeing,
            "intervals": originator.period_intervals,
        },
        "bursts": [
            {
                "time": _time(b.time, precision),
                "frame": b.frame,
                "sends": b.sends,
                "span": round(b.span, precision),
            }
            for b in originator.bursts
        ],
        "segments": [
            {"start": _time(start, precision), "end": _time(end, precision)}
            for start, end in originator.segments
        ],
    }


def _what_if(what_if: WhatIf | None, precision: int) -> dict[str, Any] | None:
    if what_if is None:
        return None
    return {
        "setting": what_if.setting,
        "period": float(what_if.period),
        "retries": what_if.retries,
        "hold_time": what_if.hold_time,
        "sent": what_if.sent,
        "transitions": [
            {"time": _time(t.time, precision), "state": t.state.value, "counter": t.counter}
            for t in what_if.transitions
        ],
        "down_seconds": round(what_if.down_seconds, precision),
        "blackholed_packets": {
            "min": what_if.blackholed_packets.min,
            "max": what_if.blackholed_packets.max,
        },
        "blackhole_seconds": {
            "min": round(what_if.blackhole_seconds.min, precision),
            "max": round(what_if.blackhole_seconds.max, precision),
        },
        "estimated": what_if.estimated,
        "baseline": {
            "transitions": what_if.baseline_transitions,
            "blackholed_packets": {
                "min": what_if.baseline_packets.min,
                "max": what_if.baseline_packets.max,
            },
            "blackhole_seconds": {
                "min": round(what_if.baseline_seconds.min, precision),
                "max": round(what_if.baseline_seconds.max, precision),
            },
        },
    }


def _retries_inferred(inference: RetriesInference | None) -> dict[str, Any] | None:
    if inference is None:
        return None
    return {
        "retries": inference.retries,
        "confidence": inference.confidence,
        "lower_bound": inference.lower_bound,
        "episodes": inference.episodes,
        "evidence": list(inference.evidence),
        "reason": inference.reason,
    }


def tunnel_dict(tunnel: TunnelResult, precision: int) -> dict[str, Any]:
    """One tunnel as the JSON contract spells it."""
    return _tunnel(tunnel, precision, [originator_dict(o, precision) for o in tunnel.originators])


def _tunnel(
    tunnel: TunnelResult, precision: int, originators: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "endpoints": list(tunnel.endpoints),
        "key": tunnel.key,
        "vantage": tunnel.vantage,
        "vantage_reason": tunnel.vantage_reason,
        "data_packets": tunnel.data_packets,
        "originators": originators,
        "diagnoses": [_diagnosis(d, precision) for d in tunnel.diagnoses],
        "merge": tunnel.merge,
        "directions": [
            {
                "source": d.source,
                "destination": d.destination,
                "data_packets": d.packets,
                "first": _time(d.first, precision),
                "last": _time(d.last, precision),
            }
            for d in tunnel.directions
        ],
    }


def _diagnosis(diagnosis: Diagnosis, precision: int) -> dict[str, object]:
    document = diagnosis.as_dict()
    if diagnosis.time is not None:
        document["time"] = _time(diagnosis.time, precision)
    return document


def analysis_dict(analysis: Analysis) -> dict[str, Any]:
    """The whole document as plain Python data."""
    source = analysis.source
    precision = source.precision
    return {
        "schema": SCHEMA,
        "source": {
            "files": list(source.files),
            "packets": source.packets,
            "gre_packets": source.gre_packets,
            "keepalive_packets": source.keepalive_packets,
            "malformed": source.malformed,
            "checksum_errors": source.checksum_errors,
            "start": _time(source.start, precision),
            "end": _time(source.end, precision),
            "warnings": list(source.warnings),
            "errors": [{"frame": e.frame, "reason": e.reason} for e in source.errors],
            "data_recorded": source.data_recorded,
            "gaps": [
                {"from": _time(before, precision), "to": _time(after, precision)}
                for before, after in source.gaps
            ],
        },
        "tunnels": [
            _counted(tunnel_dict(t, precision), source.data_recorded) for t in analysis.tunnels
        ],
    }


def _counted(tunnel: dict[str, Any], data_recorded: bool) -> dict[str, Any]:
    """The tunnel's document; with --no-data (data packets not recorded) its data and
    blackholed-packet counts are null, not zeros nobody counted."""
    if data_recorded:
        return tunnel
    tunnel["data_packets"] = None
    for originator in tunnel["originators"]:
        originator["data_packets"] = None
        originator["blackholed_packets"] = None
        what_if = originator.get("what_if")
        if what_if is not None:
            what_if["blackholed_packets"] = None
            what_if["baseline"]["blackholed_packets"] = None
    return tunnel


def write_json(analysis: Analysis, stream: TextIO) -> None:
    """Write the document, indented, with a final newline.

    An object or array holding no other object or array (a keepalive row, a transition,
    an address pair) is written on one line by the C encoder; the pure-Python encoder
    that ``indent`` needs would spend more time than the whole capture read.
    """
    document = analysis_dict(Analysis(analysis.source, []))
    document.pop("tunnels")
    head = _render(document, "")
    # The tunnels one at a time: one tunnel's dict and text are in memory, not the
    # document's (200,000 tunnels would hold gigabytes).
    stream.write(strict_json(head[:-2]) + ',\n  "tunnels": [')
    separator = "\n    "
    precision = analysis.source.precision
    empty = True
    for tunnel in analysis.each_tunnel():  # made one at a time by a streamed analysis
        empty = False
        stream.write(separator)
        originators = [
            _originator(o, precision, _EventRows(o.events, precision)) for o in tunnel.originators
        ]
        document = _counted(_tunnel(tunnel, precision, originators), analysis.source.data_recorded)
        stream.write(strict_json(_render(document, "    ")))
        separator = ",\n    "
    stream.write("]\n}\n" if empty else "\n  ]\n}\n")


def _no_default(value: object) -> object:
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# One C encoder for every row: json.dumps would build a new one per call.
_c_encoder = json.encoder.c_make_encoder(  # type: ignore[attr-defined]
    None, _no_default, json.encoder.encode_basestring_ascii, None, ": ", ", ", False, False, True
)


def _encode(value: Any) -> str:
    return "".join(_c_encoder(value, 0))


_INDENT = "  "


_encode_string = json.encoder.encode_basestring_ascii
_CONTAINERS = (dict, list)


def _flat(items: Iterable[Any]) -> bool:
    return all(type(item) not in _CONTAINERS for item in items)


def _scalar(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return str(_encode_string(value))
    if kind is int:
        return int.__repr__(value)
    if value is None:
        return "null"
    return _encode(value)  # floats (repr, or NaN/Infinity as json.dumps writes them), bools


def _render(value: Any, indent: str) -> str:
    """`value` as JSON text, containers of containers indented, the rest on one line."""
    kind = type(value)
    if kind is dict:
        if not value or _flat(value.values()):
            return _encode(value)
        inner = indent + _INDENT
        fields = [
            f"{inner}{_encode_string(key)}: "
            + (
                _render(item, inner)
                if type(item) in _CONTAINERS
                else item.render(inner)
                if type(item) is _EventRows
                else _scalar(item)
            )
            for key, item in value.items()
        ]
        return "{\n" + ",\n".join(fields) + f"\n{indent}}}"
    if kind is list:
        if not value or _flat(value):
            return _encode(value)
        inner = indent + _INDENT
        rows = _rows(value, inner)
        if rows is not None:
            return f"[\n{inner}{rows}\n{indent}]"
        items = (_render(item, inner) for item in value)
        return f"[\n{inner}" + f",\n{inner}".join(items) + f"\n{indent}]"
    return _scalar(value)


_ROW_BOUNDARY = "}, {"


def _rows(value: list[Any], inner: str) -> str | None:
    """A list of objects holding no containers (keepalives, transitions) one per line, in
    one C-encoder call for them all; None for any other list."""
    if set(map(type, value)) != {dict}:
        return None
    if not _CONTAINER_SET.isdisjoint(map(type, chain.from_iterable(map(dict.values, value)))):
        return None
    text = _encode(value)
    # Between rows the encoder writes "}, {"; a string value holding it would show here as
    # one boundary too many, and then each row is encoded on its own.
    if text.count(_ROW_BOUNDARY) == len(value) - 1:
        return text[1:-1].replace(_ROW_BOUNDARY, "},\n" + inner + "{")
    return f",\n{inner}".join(map(_encode, value))


_CONTAINER_SET = frozenset(_CONTAINERS)


class _EventRows:
    """An originator's keepalive rows, written by :func:`_render` straight from the events
    with one f-string each: the hub's hundreds of thousands of rows cost about half of
    what a dict per row through the C encoder did. The text is the encoder's, byte for
    byte (the keys and separators of `_event`'s dict as the encoder writes them); an
    originator with a time or round trip that is not finite (written ``NaN`` or
    ``Infinity``) goes through the dicts and the encoder."""

    __slots__ = ("events", "precision")

    def __init__(self, events: list[KeepaliveEvent], precision: int) -> None:
        self.events = events
        self.precision = precision

    def render(self, indent: str) -> str:
        """The JSON array, one row a line, as `_render` writes a list of `_event` dicts."""
        events, precision = self.events, self.precision
        if not events:
            return "[]"
        quoted, quote = _quoted, _quote
        rows: list[str] = []
        append = rows.append
        low, high, digits = _plain_range(precision)
        # The text of each round trip written so far (a pair's two rows share theirs; a
        # link's round trips repeat)
        rtt_texts: dict[float, str] = {}
        for event in events:
            when = event.time
            if when.__class__ is float and (low <= when < high or -high < when <= -low):
                time = f"{when:{digits}}".rstrip("0")  # repr(round(when, precision))
                if time[-1] == ".":
                    time += "0"
            else:
                time = repr(round(when, precision))
            frame, ident, partner = event.frame, event.ident, event.partner_frame
            rtt = event.rtt_ms
            rtt_text: str | None = "null"
            if rtt is not None:
                rtt_text = rtt_texts.get(rtt) if rtt else None  # 0.0 and -0.0: one key
                if rtt_text is None:
                    rtt_text = rtt_texts[rtt] = repr(rtt)
            ttl, first, role, state = (
                event.reply_ttl,
                event.first_time,
                event.role,
                event.line_state,
            )
            # An f-string: a fifth faster than the same row through %-formatting; an int
            # (an exact int, as every number here is) formatted as it is: str(), not a call.
            append(
                f'{{"time": {time}, '
                f'"frame": {"null" if frame is None else frame}, '
                f'"type": {quoted.get(role) or quote(role)}, '
                f'"ident": {"null" if ident is None else ident}, '
                f'"counter": {event.counter}, '
                f'"line_state": {quoted.get(state) or quote(state)}, '
                f'"partner_frame": {"null" if partner is None else partner}, '
                f'"rtt_ms": {rtt_text}, '
                f'"reply_ttl": {"null" if ttl is None else ttl}, '
                f'"ticks": {event.ticks}, '
                f'"first_time": {time if first is None else repr(round(first, precision))}}}'
            )
        inner = indent + _INDENT
        text = f",\n{inner}".join(rows)
        if "inf" in text or "nan" in text:  # repr's inf/nan: the encoder writes Infinity/NaN
            return _render([_event(e, precision) for e in events], indent)
        return f"[\n{inner}{text}\n{indent}]"


@cache
def _plain_range(precision: int) -> tuple[float, float, str]:
    """Where ``repr(round(t, precision))`` is ``f"{t:.{precision}f}"`` with its trailing
    zeros taken off (one left after the point): (lowest and above-highest magnitude of t,
    the format). Both give the digits of t correctly rounded to `precision` places (round()
    turns them back into a float); repr writes them as they are when no shorter string
    gives the same float, which holds while a float's spacing is finer than a unit of the
    last place, and while repr writes no exponent (from 1e-4 on). Precision 0: nowhere."""
    if precision < 1:
        return 1.0, 0.0, ".0f"
    return 1e-3, 2.0 ** (52 - math.ceil(precision * math.log2(10))), f".{precision}f"


_quoted: dict[str, str] = {}


def _quote(text: str) -> str:
    quoted = _quoted[text] = str(_encode_string(text))
    return quoted
