"""Plain snapshots the TUI widgets render, computed without textual.

Capture mode asks "what did every originator look like at time T?": :class:`CaptureIndex`
answers it from an :class:`~analyzer.keepalive.model.Analysis` by bisecting each originator's
timeline (its events carry the counter and line state after every event), and
:func:`state_at` is the one-shot form of the same question. Live mode folds the tracker's
snapshots into the same :class:`Snapshot` (see :mod:`analyzer.tui.live`). Sorting,
filtering and cell texts of the tunnels table live here too, so widgets only draw.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from analyzer.keepalive.clock import utc_text
from analyzer.keepalive.model import (
    Analysis,
    Diagnosis,
    KeepaliveRole,
    OriginatorResult,
    TunnelResult,
)
from analyzer.keepalive.state import LineState, Transition

TunnelKey = tuple[tuple[str, str], int | None]


def row_key(endpoints: tuple[str, str], key: int | None, address: str) -> str:
    """The table row of one originator: stable across refreshes, sorting and filtering."""
    return f"{endpoints[0]}|{endpoints[1]}|{'' if key is None else key}|{address}"


@dataclass(frozen=True, slots=True)
class OriginatorView:
    """One keepalive-originating endpoint at one moment: a row of the tunnels table."""

    endpoints: tuple[str, str]
    key: int | None
    address: str
    peer: str
    line_state: LineState | None  # None: nothing seen from this originator yet
    counter: int
    retries: int
    period: float
    period_source: str
    last_rtt_ms: float | None
    sent: int
    returned: int
    extrapolated: int
    downs: int
    down_seconds: float
    last_event: float | None

    @property
    def tunnel(self) -> TunnelKey:
        """The tunnel this originator belongs to."""
        return self.endpoints, self.key

    @property
    def lost(self) -> int:
        """Keepalives sent and not (yet) returned."""
        return max(self.sent - self.returned, 0)

    @property
    def row_key(self) -> str:
        """The key of its row in the tunnels table."""
        return row_key(self.endpoints, self.key, self.address)


@dataclass(frozen=True, slots=True)
class TransitionView:
    """A line-protocol change of one originator."""

    time: float
    originator: str
    state: LineState
    counter: int
    frame: int | None  # None for an extrapolated tick


@dataclass(frozen=True, slots=True)
class TunnelView:
    """One tunnel at one moment: its originators and the transitions so far."""

    endpoints: tuple[str, str]
    key: int | None
    vantage: str | None
    vantage_reason: str | None
    originators: tuple[OriginatorView, ...]
    transitions: tuple[TransitionView, ...]  # time-ordered, up to the snapshot's time
    diagnoses: tuple[Diagnosis, ...] = ()

    @property
    def tunnel(self) -> TunnelKey:
        """(endpoints, key)."""
        return self.endpoints, self.key


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every tunnel at `time`: what the tables show."""

    time: float
    tunnels: tuple[TunnelView, ...]

    def originators(self) -> list[OriginatorView]:
        """Every originator of every tunnel."""
        return [o for tunnel in self.tunnels for o in tunnel.originators]

    def tunnel(self, key: TunnelKey) -> TunnelView | None:
        """The tunnel with these endpoints and key."""
        return next((t for t in self.tunnels if t.tunnel == key), None)

    def originator(self, address: str, tunnel: TunnelKey | None = None) -> OriginatorView:
        """The (first) originator with this address; KeyError if there is none."""
        for view in self.originators():
            if view.address == address and (tunnel is None or view.tunnel == tunnel):
                return view
        raise KeyError(address)


@dataclass(frozen=True, slots=True)
class ChartPoint:
    """The counter and line state after one event."""

    time: float
    counter: int
    line_state: LineState


@dataclass(frozen=True, slots=True)
class Series:
    """One originator's counter over time, for the timeline chart."""

    address: str
    peer: str
    retries: int
    points: tuple[ChartPoint, ...]  # time-ordered

    def at(self, time: float) -> ChartPoint | None:
        """The last point at or before `time` (None before the first)."""
        index = bisect_right(self.points, time, key=lambda p: p.time)
        return self.points[index - 1] if index else None


@dataclass(frozen=True, slots=True)
class LogRow:
    """One line of the event log."""

    time: float
    kind: str  # sent | returned | extrapolated | down | up | notice | error
    originator: str = ""
    peer: str = ""
    frame: int | None = None
    ident: int | None = None
    counter: int | None = None
    retries: int | None = None
    line_state: LineState | None = None
    rtt_ms: float | None = None
    ticks: int = 1
    message: str = ""


# ---------------------------------------------------------------------------- capture mode


def _down_until(transitions: Sequence[Transition], time: float) -> tuple[int, float]:
    """Down transitions at or before `time`, and seconds spent down up to `time`."""
    downs = 0
    total = 0.0
    since: float | None = None
    for transition in transitions:
        if transition.time > time:
            break
        if transition.state is LineState.DOWN:
            downs += 1
            since = transition.time
        elif since is not None:
            total += transition.time - since
            since = None
    if since is not None:
        total += time - since
    return downs, total


class _OriginatorIndex:
    """Prefix counts over one originator's timeline, for O(log n) lookups by time."""

    def __init__(self, tunnel: TunnelResult, result: OriginatorResult) -> None:
        self.tunnel = tunnel
        self.result = result
        self.row_key = row_key(tunnel.endpoints, tunnel.key, result.address)
        self.times = [event.time for event in result.events]
        sent = returned = extrapolated = 0
        rtt: float | None = None
        # Index i: counts over events[:i].
        self.sent_before = [0]
        self.returned_before = [0]
        self.rtt_before: list[float | None] = [None]
        self.extrapolated_before = [0]
        for event in result.events:
            if event.role is KeepaliveRole.SENT:
                sent += 1
            elif event.role is KeepaliveRole.RETURNED:
                if event.partner_frame is not None:
                    returned += 1
                if event.rtt_ms is not None:
                    rtt = event.rtt_ms  # known only once the reply has arrived
            else:
                extrapolated += event.ticks
            self.sent_before.append(sent)
            self.returned_before.append(returned)
            self.rtt_before.append(rtt)
            self.extrapolated_before.append(extrapolated)
        self.transition_times = [t.time for t in result.transitions]

    def view(self, time: float) -> OriginatorView:
        result = self.result
        index = bisect_right(self.times, time)
        if index:
            last = result.events[index - 1]
            line_state: LineState | None = last.line_state
            counter = last.counter
            last_event: float | None = last.time
        else:
            line_state, counter, last_event = None, 0, None
        downs, down_seconds = _down_until(result.transitions, time)
        return OriginatorView(
            endpoints=self.tunnel.endpoints,
            key=self.tunnel.key,
            address=result.address,
            peer=result.peer,
            line_state=line_state,
            counter=counter,
            retries=result.retries,
            period=result.period,
            period_source=result.period_source.value,
            last_rtt_ms=self.rtt_before[index],
            sent=self.sent_before[index],
            returned=self.returned_before[index],
            extrapolated=self.extrapolated_before[index],
            downs=downs,
            down_seconds=down_seconds,
            last_event=last_event,
        )

    def transitions_until(self, time: float) -> list[TransitionView]:
        count = bisect_right(self.transition_times, time)
        return [_transition_view(self.result.address, t) for t in self.result.transitions[:count]]


def _transition_view(address: str, transition: Transition) -> TransitionView:
    return TransitionView(
        transition.time, address, transition.state, transition.counter, transition.frame
    )


def _log_rows(result: OriginatorResult) -> list[LogRow]:
    """One originator's events and transitions in the order the live tracker reports them:
    a down transition before the send that finds the counter too high, an up after the
    reply that causes it."""
    rows: list[LogRow] = []
    pending = list(result.transitions)
    position = 0
    for event in result.events:
        if (
            position < len(pending)
            and pending[position].state is LineState.DOWN
            and pending[position].time == event.time
        ):
            rows.append(_transition_row(result, pending[position]))
            position += 1
        rows.append(
            LogRow(
                time=event.time,
                kind=event.role.value,
                originator=result.address,
                peer=result.peer,
                frame=event.frame,
                ident=event.ident,
                counter=event.counter,
                retries=result.retries,
                line_state=event.line_state,
                rtt_ms=event.rtt_ms if event.role is KeepaliveRole.RETURNED else None,
                ticks=event.ticks,
            )
        )
        if (
            position < len(pending)
            and pending[position].state is LineState.UP
            and pending[position].time == event.time
        ):
            rows.append(_transition_row(result, pending[position]))
            position += 1
    rows.extend(_transition_row(result, t) for t in pending[position:])
    return rows


def _transition_row(result: OriginatorResult, transition: Transition) -> LogRow:
    return LogRow(
        time=transition.time,
        kind=transition.state.value,
        originator=result.address,
        peer=result.peer,
        frame=transition.frame,
        counter=transition.counter,
        retries=result.retries,
        line_state=transition.state,
    )


class CaptureIndex:
    """An analysis indexed by time: the state at any cursor, and where the events are."""

    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis
        self._tunnels: list[tuple[TunnelResult, list[_OriginatorIndex]]] = [
            (tunnel, [_OriginatorIndex(tunnel, o) for o in tunnel.originators])
            for tunnel in analysis.tunnels
        ]
        self._by_row = {o.row_key: o for _, members in self._tunnels for o in members}
        times = {t for _, members in self._tunnels for o in members for t in o.times}
        self.event_times: list[float] = sorted(times)
        self.transition_times: list[float] = sorted(
            {t for _, members in self._tunnels for o in members for t in o.transition_times}
        )
        source = analysis.source
        first = self.event_times[0] if self.event_times else 0.0
        last = self.event_times[-1] if self.event_times else first
        self.start: float = source.start if source.start is not None else first
        self.end: float = max(source.end if source.end is not None else last, self.start)
        indexes = [o for _, members in self._tunnels for o in members]
        rows = [
            (row.time, order, position, row)
            for order, index in enumerate(indexes)
            for position, row in enumerate(_log_rows(index.result))
        ]
        rows.sort(key=lambda item: (item[0], item[1], item[2]))
        self.log: list[LogRow] = [row for *_, row in rows]
        self._log_times = [row.time for row in self.log]

    def state_at(self, time: float) -> Snapshot:
        """Every originator's state after its last event at or before `time`."""
        return Snapshot(
            time,
            tuple(
                TunnelView(
                    endpoints=tunnel.endpoints,
                    key=tunnel.key,
                    vantage=tunnel.vantage,
                    vantage_reason=tunnel.vantage_reason,
                    originators=tuple(o.view(time) for o in members),
                    transitions=tuple(
                        sorted(
                            (t for o in members for t in o.transitions_until(time)),
                            key=lambda t: t.time,
                        )
                    ),
                    diagnoses=tuple(tunnel.diagnoses),
                )
                for tunnel, members in self._tunnels
            ),
        )

    def all_transitions(self, tunnel: TunnelKey) -> tuple[TransitionView, ...]:
        """Every transition of a tunnel's originators, time-ordered (past and future)."""
        found = [
            _transition_view(o.result.address, t)
            for result, members in self._tunnels
            if (result.endpoints, result.key) == tunnel
            for o in members
            for t in o.result.transitions
        ]
        return tuple(sorted(found, key=lambda t: t.time))

    def series(self, tunnel: TunnelKey) -> tuple[Series, ...]:
        """The counter timeline of each originator of a tunnel."""
        for result, members in self._tunnels:
            if (result.endpoints, result.key) == tunnel:
                return tuple(
                    Series(
                        o.result.address,
                        o.result.peer,
                        o.result.retries,
                        tuple(ChartPoint(e.time, e.counter, e.line_state) for e in o.result.events),
                    )
                    for o in members
                )
        return ()

    def log_until(self, time: float, limit: int) -> list[LogRow]:
        """The last `limit` log rows at or before `time`, oldest first."""
        end = bisect_right(self._log_times, time)
        return self.log[max(end - limit, 0) : end]

    def event_position(self, time: float) -> tuple[int, int]:
        """(how many distinct event times are at or before `time`, how many there are)."""
        return bisect_right(self.event_times, time), len(self.event_times)

    def next_event(self, time: float) -> float | None:
        """The first keepalive event strictly after `time`."""
        return _after(self.event_times, time)

    def previous_event(self, time: float) -> float | None:
        """The last keepalive event strictly before `time`."""
        return _before(self.event_times, time)

    def _transition_times(self, row: str | None) -> list[float]:
        if row is None:
            return self.transition_times
        found = self._by_row.get(row)
        return found.transition_times if found is not None else []

    def next_transition(self, time: float, row: str | None = None) -> float | None:
        """The first transition strictly after `time` (of one originator's row, or any)."""
        return _after(self._transition_times(row), time)

    def previous_transition(self, time: float, row: str | None = None) -> float | None:
        """The last transition strictly before `time` (of one originator's row, or any)."""
        return _before(self._transition_times(row), time)


def _after(times: Sequence[float], time: float) -> float | None:
    index = bisect_right(times, time)
    return times[index] if index < len(times) else None


def _before(times: Sequence[float], time: float) -> float | None:
    index = bisect_left(times, time)
    return times[index - 1] if index else None


def state_at(analysis: Analysis, time: float) -> Snapshot:
    """The state of every originator at `time`: the counter and line state of its last event
    at or before `time`, with sent/returned/lost, downs and time down counted up to it."""
    return CaptureIndex(analysis).state_at(time)


# ---------------------------------------------------------------------------- formatting


def fmt_utc(time: float, *, date: bool = True, digits: int = 6) -> str:
    """`2025-11-26 00:00:50.000000` (UTC); `@<epoch seconds>` outside 1970-9999."""
    return utc_text(time, date=date, digits=digits)


def fmt_seconds(seconds: float | None) -> str:
    """A duration for a table cell: `25.020 s`, `1 h 02 m`, `—` for none."""
    if seconds is None or seconds <= 0:
        return "—"
    if seconds < 100:
        return f"{seconds:.3f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} m {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} m"


def fmt_number(value: float) -> str:
    """A period or offset without useless decimals: 5, 0.2, 75.02005."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


# ---------------------------------------------------------------------------- the table


@dataclass(frozen=True, slots=True)
class Column:
    """A column of the tunnels table: its label, cell text and sort key."""

    key: str
    label: str
    text: Callable[[OriginatorView], str]
    sort: Callable[[OriginatorView], Any]
    numeric: bool = False


def _state_text(view: OriginatorView) -> str:
    return "—" if view.line_state is None else view.line_state.value


def _state_order(view: OriginatorView) -> int:
    return {LineState.DOWN: 0, LineState.UP: 1, None: 2}[view.line_state]


def _tunnel_order(view: OriginatorView) -> tuple[str, str, int, str]:
    return view.endpoints[0], view.endpoints[1], -1 if view.key is None else view.key, view.address


COLUMNS: tuple[Column, ...] = (
    Column(
        "originator",
        "Originator → peer",
        lambda v: f"{v.address} → {v.peer}",
        _tunnel_order,
    ),
    Column("key", "Key", lambda v: "—" if v.key is None else str(v.key), lambda v: v.key or -1),
    Column("line", "Line", _state_text, _state_order),
    Column(
        "counter",
        "Counter",
        lambda v: f"{v.counter}/{v.retries}",
        lambda v: (v.counter / v.retries if v.retries else 0.0, v.counter),
        numeric=True,
    ),
    Column(
        "period",
        "Period",
        lambda v: f"{fmt_number(v.period)} s {v.period_source}",
        lambda v: v.period,
        numeric=True,
    ),
    Column(
        "rtt",
        "Last RTT",
        lambda v: "—" if v.last_rtt_ms is None else f"{v.last_rtt_ms:.2f} ms",
        lambda v: -1.0 if v.last_rtt_ms is None else v.last_rtt_ms,
        numeric=True,
    ),
    Column("sent", "Sent", lambda v: str(v.sent), lambda v: v.sent, numeric=True),
    Column("returned", "Ret", lambda v: str(v.returned), lambda v: v.returned, numeric=True),
    Column("lost", "Lost", lambda v: str(v.lost), lambda v: v.lost, numeric=True),
    Column("downs", "Downs", lambda v: str(v.downs), lambda v: v.downs, numeric=True),
    Column(
        "down",
        "Time down",
        lambda v: fmt_seconds(v.down_seconds),
        lambda v: v.down_seconds,
        numeric=True,
    ),
)
COLUMN_KEYS = tuple(column.key for column in COLUMNS)
_COLUMNS_BY_KEY = {column.key: column for column in COLUMNS}


def column(key: str) -> Column:
    """The column with this key."""
    return _COLUMNS_BY_KEY[key]


def sort_views(
    views: Iterable[OriginatorView], by: str = "originator", *, reverse: bool = False
) -> list[OriginatorView]:
    """Rows in table order: by one column (ties in tunnel order)."""
    rows = sorted(views, key=_tunnel_order)
    return sorted(rows, key=column(by).sort, reverse=reverse)


def search_text(view: OriginatorView) -> str:
    """What the filter matches against: addresses, key, line state."""
    key = "" if view.key is None else f"key {view.key} {view.key}"
    return f"{view.address} {view.peer} {key} {_state_text(view)}".lower()


def filter_views(views: Iterable[OriginatorView], query: str) -> list[OriginatorView]:
    """Rows whose addresses, key or line state contain every word of `query`."""
    words = query.lower().split()
    return [v for v in views if all(word in search_text(v) for word in words)]
