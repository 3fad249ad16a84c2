"""Plain snapshots the TUI widgets render, computed without textual.

Capture mode asks "what did every originator look like at time T?": :class:`CaptureIndex`
answers it from an :class:`~analyzer.keepalive.model.Analysis` by bisecting each originator's
timeline (its events carry the counter and line state after every event), and
:func:`state_at` is the one-shot form of the same question. Live mode folds the tracker's
snapshots into the same :class:`Snapshot` (see :mod:`analyzer.tui.live`). Sorting,
filtering, cell texts of the tunnels table and the one time format live here too, so
widgets only draw.

Everything a cursor move recomputes is O(originators × log events): the event log is one
merged order of every originator's rows built once, and rows become :class:`LogRow`
objects only when they are shown.
"""

from __future__ import annotations

import ipaddress
import re
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import chain
from typing import Any, overload

from analyzer.keepalive.analysis import blackhole_windows
from analyzer.keepalive.clock import in_calendar, utc_text
from analyzer.keepalive.model import (
    Analysis,
    DataTimes,
    Diagnosis,
    KeepaliveEvent,
    KeepaliveRole,
    OriginatorResult,
    TunnelResult,
)
from analyzer.keepalive.state import LineState, Transition
from analyzer.keepalive.wording import counted

TunnelKey = tuple[tuple[str, str], int | None]


def row_key(endpoints: tuple[str, str], key: int | None, address: str) -> str:
    """The table row of one originator: stable across refreshes, sorting and filtering."""
    return f"{endpoints[0]}|{endpoints[1]}|{'' if key is None else key}|{address}"


# Problem ranks: the default table order puts tunnels that went down first, then those
# with unanswered keepalives, then the rest.
RANK_DOWN = 0
RANK_UNANSWERED = 1
RANK_FINE = 2


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
    lost: int = 0  # sent and never answered (a send whose reply is still due is not lost)
    data_packets: int | None = None  # data it sent into the tunnel so far; None: not known
    blackholed: tuple[int, int] | None = None  # (min, max) so far; None: not known
    rank: int = RANK_FINE  # RANK_DOWN, RANK_UNANSWERED or RANK_FINE
    # The live data capture dropped packets: data and blackholed are at least what they say.
    data_lower_bound: bool = False

    @property
    def tunnel(self) -> TunnelKey:
        """The tunnel this originator belongs to."""
        return self.endpoints, self.key

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
    """Every originator at `time`: what the table shows. Tunnel views (transitions,
    diagnoses) are made only for the tunnel asked for, by `tunnel_view`."""

    time: float
    views: Sequence[OriginatorView]  # in tunnel order
    tunnel_view: Callable[[TunnelKey], TunnelView | None] = field(compare=False)

    def originators(self) -> list[OriginatorView]:
        """Every originator of every tunnel."""
        return list(self.views)

    @property
    def tunnels(self) -> tuple[TunnelView, ...]:
        """Every tunnel, in the order of its first originator."""
        keys = dict.fromkeys(view.tunnel for view in self.views)
        found = (self.tunnel_view(key) for key in keys)
        return tuple(view for view in found if view is not None)

    def tunnel(self, key: TunnelKey) -> TunnelView | None:
        """The tunnel with these endpoints and key."""
        return self.tunnel_view(key)

    def originator(self, address: str, tunnel: TunnelKey | None = None) -> OriginatorView:
        """The (first) originator with this address; KeyError if there is none."""
        for view in self.views:
            if view.address == address and (tunnel is None or view.tunnel == tunnel):
                return view
        raise KeyError(address)


def _no_row(index: int) -> OriginatorView:
    raise IndexError(index)


class Rows(Sequence[OriginatorView]):
    """Table rows in order: their keys up front, each view made only when asked for (a
    hub capture has thousands of rows and the screen shows a few dozen)."""

    def __init__(self, keys: list[str], get: Callable[[int], OriginatorView]) -> None:
        self.keys = keys
        self._get = get

    @classmethod
    def empty(cls) -> Rows:
        """No rows."""
        return cls([], _no_row)

    @classmethod
    def of(cls, views: Sequence[OriginatorView]) -> Rows:
        """Rows of views already made."""
        return cls([view.row_key for view in views], views.__getitem__)

    def __len__(self) -> int:
        return len(self.keys)

    @overload
    def __getitem__(self, index: int) -> OriginatorView: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[OriginatorView]: ...

    def __getitem__(self, index: int | slice) -> OriginatorView | Sequence[OriginatorView]:
        if isinstance(index, slice):
            return [self._get(i) for i in range(*index.indices(len(self.keys)))]
        if index < 0:
            index += len(self.keys)
        if not 0 <= index < len(self.keys):
            raise IndexError("row index out of range")
        return self._get(index)


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


LOG_KINDS = ("sent", "returned", "extrapolated", "down", "up", "notice", "error")


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Which event-log rows to show: event kinds (any of them) and words that must each
    appear in the originator's address. Empty: every row."""

    kinds: frozenset[str] = frozenset()
    words: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> LogFilter:
        """`down up 192.0.2.1`: words naming an event kind (or a prefix of one, `ret`,
        `extra`; `transitions` for down and up) pick kinds, the others match addresses."""
        kinds: set[str] = set()
        words: list[str] = []
        for word in text.lower().split():
            if word in ("transition", "transitions"):
                kinds.update(("down", "up"))
                continue
            named = [
                kind
                for kind in LOG_KINDS
                if kind == word or (len(word) >= 3 and kind.startswith(word))
            ]
            if named:
                kinds.update(named)
            else:
                words.append(word)
        return cls(frozenset(kinds), tuple(words))

    def __bool__(self) -> bool:
        return bool(self.kinds or self.words)

    def matches(self, row: LogRow) -> bool:
        """True when the row passes the filter."""
        if self.kinds and row.kind not in self.kinds:
            return False
        if self.words:
            if row.kind in ("notice", "error"):
                return all(word in row.message.lower() for word in self.words)
            return all(word in row.originator for word in self.words)
        return True


# ---------------------------------------------------------------------------- time format


@dataclass(frozen=True, slots=True)
class TimeFormat:
    """The one way the screen writes a moment: seconds after `origin` (`+50.000`) or the
    UTC clock (`00:00:50.000`); `t` toggles between them."""

    origin: float | None  # the capture's (or the live session's) start
    relative: bool

    def __call__(self, time: float, digits: int = 3) -> str:
        if self.relative and self.origin is not None:
            return f"+{time - self.origin:.{digits}f}"
        return fmt_utc(time, date=False, digits=digits)

    def toggled(self) -> TimeFormat:
        """The other format."""
        return TimeFormat(self.origin, not self.relative)

    @property
    def name(self) -> str:
        """`relative` or `UTC`."""
        return "relative" if self.relative and self.origin is not None else "UTC"

    def parse(self, text: str) -> float | None:
        """A moment typed by the user: `+50`, `50.2` (seconds after the origin), `00:00:50`
        or `00:00:50.5` (UTC clock on the origin's day, or the next one when earlier), or
        `2025-11-26 00:00:50`. None when it is none of these."""
        text = text.strip()
        try:
            if re.fullmatch(r"\+?\d+(\.\d*)?", text):
                return None if self.origin is None else self.origin + float(text)
            match = re.fullmatch(r"(\d{4}-\d\d-\d\d)[ T](\d\d?:\d\d:\d\d(\.\d+)?)", text)
            if match:
                day = datetime.fromisoformat(match.group(1)).replace(tzinfo=UTC)
                return day.timestamp() + _clock_seconds(match.group(2))
            if re.fullmatch(r"\d\d?:\d\d:\d\d(\.\d+)?", text):
                return self.clock_time(_clock_seconds(text))
        except ValueError:
            return None
        return None

    def clock_time(self, seconds_of_day: float) -> float | None:
        """The moment at this time of day on the origin's day (the next day when earlier)."""
        if self.origin is None or not in_calendar(self.origin):
            return None
        start = datetime.fromtimestamp(self.origin, UTC)
        midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
        moment = midnight + timedelta(seconds=seconds_of_day)
        if moment.timestamp() < self.origin - 1.0:
            moment += timedelta(days=1)
        return moment.timestamp()


def _clock_seconds(text: str) -> float:
    hours, minutes, seconds = text.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


CLOCK_IN_TEXT = re.compile(r"\b(\d\d):(\d\d):(\d\d\.\d{3})\b")


def retime_text(text: str, fmt: TimeFormat) -> str:
    """Clock times (`00:00:35.000`, as diagnoses write them) in the screen's format."""
    if not fmt.relative or fmt.origin is None:
        return text

    def replace(match: re.Match[str]) -> str:
        hours, minutes, seconds = match.groups()
        moment = fmt.clock_time(int(hours) * 3600 + int(minutes) * 60 + float(seconds))
        return match.group(0) if moment is None else fmt(moment)

    return CLOCK_IN_TEXT.sub(replace, text)


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


def _count_before(times: Sequence[float], start: float, end: float) -> int:
    """Values of a sorted column in [start, end)."""
    if end <= start:
        return 0
    return bisect_left(times, end) - bisect_left(times, start)


class _Blackhole:
    """One originator's blackhole windows with their data packets copied out, so the
    figure at any moment is a few bisections in memory (the fast path's data columns are
    read from disk value by value)."""

    def __init__(self, result: OriginatorResult, data: Sequence[float], capture_end: float) -> None:
        self.windows: list[tuple[float, float, float, array[float]]] = []
        if not len(data):
            return
        for first, start_max, end in blackhole_windows(
            result.events, result.transitions, result.period, capture_end
        ):
            lo, hi = bisect_left(data, start_max), bisect_left(data, end)
            self.windows.append((first, start_max, end, array("d", data[lo:hi])))
        self.starts = [start for _first, start, _end, _times in self.windows]

    def at(self, time: float) -> tuple[int, int]:
        """(min, max) blackholed up to `time`: each window counted up to `time` at most."""
        low = high = 0
        if not self.windows:
            return 0, 0
        for first, start_max, end, times in self.windows[: bisect_right(self.starts, time)]:
            until = min(end, time)
            low += _count_before(times, first, until)
            high += _count_before(times, start_max, until)
        return low, high


class _DataCount:
    """Data packets an originator sent up to a moment. The fast path keeps data times on
    disk and reads them value by value; the TUI asks for every originator at every cursor
    move, so it keeps its own copy in memory (8 bytes a packet)."""

    def __init__(self, times: DataTimes) -> None:
        self.times: Sequence[float] = times if isinstance(times, array) else array("d", times)

    def at(self, time: float) -> int:
        """Packets with a time at or before `time`."""
        return bisect_right(self.times, time)


class _OriginatorIndex:
    """Prefix counts over one originator's timeline, for O(log n) lookups by time. They are
    built the first time the originator is looked at (a hub capture shows a screenful of
    its thousands of originators first; :meth:`CaptureIndex.warm` builds the rest)."""

    def __init__(
        self, tunnel: TunnelResult, result: OriginatorResult, capture_end: float, data: bool
    ) -> None:
        self.tunnel = tunnel
        self.result = result
        self.capture_end = capture_end
        self.with_data = data
        self.row_key = row_key(tunnel.endpoints, tunnel.key, result.address)
        self.endpoints, self.key = tunnel.endpoints, tunnel.key
        self.period_source = result.period_source.value
        self.times = array("d", (event.time for event in result.events))
        self.transition_times = [t.time for t in result.transitions]
        # Times of its log rows (events and transitions), in its log's order.
        self.log_times = (
            array("d", sorted([*self.times, *self.transition_times]))
            if self.transition_times
            else self.times
        )
        self.rank = (
            RANK_DOWN
            if result.transitions
            else RANK_UNANSWERED
            if result.unanswered or result.extrapolated
            else RANK_FINE
        )
        self.built = False
        self._last: tuple[float, OriginatorView] | None = None
        self._unchanged: tuple[tuple[int, int | None], OriginatorView] | None = None

    def build(self) -> None:
        """The prefix counts, data copy and blackhole windows (once)."""
        if self.built:
            return
        result = self.result
        sent = returned = extrapolated = unanswered = 0
        rtt: float | None = None
        # Index i: counts over events[:i].
        sent_before = [0]
        returned_before = [0]
        unanswered_before = [0]
        rtt_before: list[float | None] = [None]
        extrapolated_before = [0]
        for event in result.events:
            role = event.role
            if role is KeepaliveRole.SENT:
                sent += 1
                if event.partner_frame is None:
                    unanswered += 1  # known from the whole capture: it is never answered
            elif role is KeepaliveRole.RETURNED:
                if event.partner_frame is not None:
                    returned += 1
                if event.rtt_ms is not None:
                    rtt = event.rtt_ms  # known only once the reply has arrived
            else:
                extrapolated += event.ticks
            sent_before.append(sent)
            returned_before.append(returned)
            unanswered_before.append(unanswered)
            rtt_before.append(rtt)
            extrapolated_before.append(extrapolated)
        self.sent_before = array("l", sent_before)
        self.returned_before = array("l", returned_before)
        self.unanswered_before = array("l", unanswered_before)
        self.rtt_before = rtt_before
        self.extrapolated_before = array("l", extrapolated_before)
        self.data = _DataCount(result.data_times) if self.with_data else None
        self.blackhole = (
            _Blackhole(result, self.data.times, self.capture_end) if self.data else None
        )
        self.built = True

    def static_view(self) -> OriginatorView:
        """A row with only what never changes with the cursor (addresses, key, settings,
        problem rank): enough to sort by those, without building the counts."""
        result = self.result
        return OriginatorView(
            self.tunnel.endpoints,
            self.tunnel.key,
            result.address,
            result.peer,
            None,
            0,
            result.retries,
            result.period,
            result.period_source.value,
            None,
            0,
            0,
            0,
            0,
            0.0,
            None,
            rank=self.rank,
        )

    def view(self, time: float) -> OriginatorView:
        last_view = self._last
        if last_view is not None and last_view[0] == time:
            return last_view[1]
        self.build()
        result = self.result
        index = bisect_right(self.times, time)
        data_count = self.data.at(time) if self.data is not None else None
        # Between two of its events and two of its data packets nothing on its row moves
        # (blackhole windows begin and end at events), except time down while it is down.
        state = (index, data_count)
        unchanged = self._unchanged
        if unchanged is not None and unchanged[0] == state:
            view = unchanged[1]
            if view.line_state is not LineState.DOWN:
                self._last = (time, view)
                return view
        if index:
            last = result.events[index - 1]
            line_state: LineState | None = last.line_state
            counter = last.counter
            last_event: float | None = last.time
        else:
            line_state, counter, last_event = None, 0, None
        downs, down_seconds = (
            _down_until(result.transitions, time) if result.transitions else (0, 0.0)
        )
        blackhole = self.blackhole
        view = OriginatorView(  # positional: this runs for every row at every cursor jump
            self.endpoints,
            self.key,
            result.address,
            result.peer,
            line_state,
            counter,
            result.retries,
            result.period,
            self.period_source,
            self.rtt_before[index],
            self.sent_before[index],
            self.returned_before[index],
            self.extrapolated_before[index],
            downs,
            down_seconds,
            last_event,
            self.unanswered_before[index],
            data_count,
            blackhole.at(time) if blackhole is not None else None,
            self.rank,
        )
        self._last = (time, view)
        self._unchanged = (state, view)
        return view

    def sort_value(self, by: str, time: float) -> Any:
        """What column `by` sorts this originator's row by at `time` — the value the
        column's sort gives its view — from the prefix counts, without making the view (a
        figure sort is redone for every row at every cursor move)."""
        self.build()
        index = bisect_right(self.times, time)
        if by == "sent":
            return self.sent_before[index]
        if by == "returned":
            return self.returned_before[index]
        if by == "lost":
            return self.unanswered_before[index]
        if by == "rtt":
            rtt = self.rtt_before[index]
            return -1.0 if rtt is None else rtt
        if by in ("line", "counter"):
            last = self.result.events[index - 1] if index else None
            if by == "line":
                return _LINE_ORDER[None if last is None else last.line_state]
            counter, retries = (0 if last is None else last.counter), self.result.retries
            return (counter / retries if retries else 0.0, counter)
        if by == "data":
            return -1 if self.data is None else self.data.at(time)
        if by == "blackholed":
            if self.blackhole is None:
                return (-1, -1)
            low, high = self.blackhole.at(time)
            return (high, low)
        if by in ("downs", "down"):
            transitions = self.result.transitions
            downs, seconds = _down_until(transitions, time) if transitions else (0, 0.0)
            return downs if by == "downs" else seconds
        return column(by).sort(self.view(time))

    def transitions_until(self, time: float) -> list[TransitionView]:
        count = bisect_right(self.transition_times, time)
        return [_transition_view(self.result.address, t) for t in self.result.transitions[:count]]


def _transition_view(address: str, transition: Transition) -> TransitionView:
    return TransitionView(
        transition.time, address, transition.state, transition.counter, transition.frame
    )


LogItem = KeepaliveEvent | Transition


def _log_items(result: OriginatorResult) -> list[LogItem]:
    """One originator's events and transitions in the order the live tracker reports them:
    a down transition before the send that finds the counter too high, an up after the
    reply that causes it."""
    items: list[LogItem] = []
    pending = result.transitions
    position = 0
    for event in result.events:
        if (
            position < len(pending)
            and pending[position].state is LineState.DOWN
            and pending[position].time == event.time
        ):
            items.append(pending[position])
            position += 1
        items.append(event)
        if (
            position < len(pending)
            and pending[position].state is LineState.UP
            and pending[position].time == event.time
        ):
            items.append(pending[position])
            position += 1
    items.extend(pending[position:])
    return items


def _log_row(result: OriginatorResult, item: LogItem) -> LogRow:
    if isinstance(item, Transition):
        return LogRow(
            time=item.time,
            kind=item.state.value,
            originator=result.address,
            peer=result.peer,
            frame=item.frame,
            counter=item.counter,
            retries=result.retries,
            line_state=item.state,
        )
    return LogRow(
        time=item.time,
        kind=item.role.value,
        originator=result.address,
        peer=result.peer,
        frame=item.frame,
        ident=item.ident,
        counter=item.counter,
        retries=result.retries,
        line_state=item.line_state,
        rtt_ms=item.rtt_ms if item.role is KeepaliveRole.RETURNED else None,
        ticks=item.ticks,
    )


_NO_FRAME = (1 << 62) - 1  # extrapolated rows sort after framed ones at the same time


class CaptureIndex:
    """An analysis indexed by time: the state at any cursor, and where the events are."""

    def __init__(self, analysis: Analysis) -> None:
        self.analysis = analysis
        source = analysis.source
        first_time = min(
            (o.events[0].time for t in analysis.tunnels for o in t.originators if o.events),
            default=0.0,
        )
        last_time = max(
            (o.events[-1].time for t in analysis.tunnels for o in t.originators if o.events),
            default=first_time,
        )
        self.start: float = source.start if source.start is not None else first_time
        self.end: float = max(source.end if source.end is not None else last_time, self.start)
        data = source.data_recorded
        self._tunnels: list[tuple[TunnelResult, list[_OriginatorIndex]]] = [
            (tunnel, [_OriginatorIndex(tunnel, o, self.end, data) for o in tunnel.originators])
            for tunnel in analysis.tunnels
        ]
        self._by_tunnel = {
            (tunnel.endpoints, tunnel.key): (tunnel, members) for tunnel, members in self._tunnels
        }
        self._indexes = [o for _, members in self._tunnels for o in members]
        self._by_row = {o.row_key: o for o in self._indexes}
        self._keys = [o.row_key for o in self._indexes]
        self._orders: dict[tuple[str, bool], list[int]] = {}
        self._tunnel_order: list[int] | None = None
        self._search: list[str] | None = None  # each originator's addresses and key
        # Every keepalive event's time, in order: "keepalive N/M", stepping, and where the
        # last rows of the event log begin.
        self.event_times = array("d", sorted(chain.from_iterable(o.times for o in self._indexes)))
        self.transition_times: list[float] = sorted(
            {t for o in self._indexes for t in o.transition_times}
        )
        self._items: dict[int, list[LogItem]] = {}

    def warm(self, stop: Callable[[], bool] = lambda: False) -> None:
        """Build every originator's counts now (in a background thread after the first
        paint), so the first sort by a figure does not wait for them."""
        for index in self._indexes:
            if stop():
                return
            index.build()
        for by in STATIC_SORTS:  # and the orders that never change, both ways
            for reverse in (False, True):
                if stop():
                    return
                self.rows_at(self.start, by, reverse)
        self._tunnel_positions()

    @property
    def warmed(self) -> bool:
        """Every originator's counts are built."""
        return all(index.built for index in self._indexes)

    def _log_item(self, number: int, position: int) -> LogItem:
        items = self._items.get(number)
        if items is None:
            items = self._items[number] = _log_items(self._indexes[number].result)
        return items[position]

    @property
    def log_size(self) -> int:
        """Rows in the whole event log."""
        return sum(len(o.log_times) for o in self._indexes)

    def _log_between(
        self, start: float, end: float, numbers: Iterable[int] | None = None
    ) -> list[LogRow]:
        """Every log row with start ≤ time ≤ end (of these originators), in log order:
        time, then frame, then originator, then the originator's own order (a down before
        its send, an up after its reply)."""
        found: list[tuple[float, int, int, int]] = []
        indexes = self._indexes
        for number in range(len(indexes)) if numbers is None else numbers:
            times = indexes[number].log_times
            first, last = bisect_left(times, start), bisect_right(times, end)
            for position in range(first, last):
                item = self._log_item(number, position)
                frame = item.frame if item.frame is not None else _NO_FRAME
                found.append((item.time, frame, number, position))
        found.sort()
        return [
            _log_row(indexes[number].result, self._log_item(number, position))
            for _time, _frame, number, position in found
        ]

    def state_at(self, time: float) -> Snapshot:
        """Every originator's state after its last event at or before `time` (each view is
        made when it is first looked at)."""
        indexes = self._indexes
        return Snapshot(
            time,
            Rows(self._keys, lambda i: indexes[i].view(time)),
            lambda key: self.tunnel_at(key, time),
        )

    def _tunnel_positions(self) -> list[int]:
        """The originators' positions in tunnel order (addresses numerically), once."""
        if self._tunnel_order is None:
            views = [o.static_view() for o in self._indexes]
            position = {id(view): number for number, view in enumerate(views)}
            self._tunnel_order = [position[id(v)] for v in sorted(views, key=_tunnel_order)]
        return self._tunnel_order

    def rows_at(self, time: float, by: str, reverse: bool, query: str = "") -> Rows:
        """The table's rows at `time`, filtered and sorted. Orders that do not change with
        time (problems first in a capture, addresses, key, period) are sorted once, and
        then only the rows on screen are made."""
        indexes = self._indexes
        words = query.lower().split()
        if by in STATIC_SORTS:
            order = self._orders.get((by, reverse))
            if order is None:
                views = [o.static_view() for o in indexes]
                position = {id(view): number for number, view in enumerate(views)}
                ranked = sort_views(views, by, reverse=reverse)
                order = self._orders[(by, reverse)] = [position[id(v)] for v in ranked]
            if words:
                order = [i for i in order if self._matches(i, words, time)]
            kept = order
            return Rows([self._keys[i] for i in kept], lambda i: indexes[kept[i]].view(time))
        numbers = self._tunnel_positions()
        if words:
            numbers = [i for i in numbers if self._matches(i, words, time)]
        # Sorted by each row's value alone (ties stay in tunnel order, as sort_views
        # keeps them); the views are made only for the rows on screen.
        values = [indexes[i].sort_value(by, time) for i in numbers]
        places = sorted(range(len(numbers)), key=values.__getitem__, reverse=reverse)
        shown = [numbers[place] for place in places]
        return Rows([self._keys[i] for i in shown], lambda i: indexes[shown[i]].view(time))

    def _matches(self, number: int, words: Sequence[str], time: float) -> bool:
        """What :func:`filter_views` says of this originator at `time`, its view made only
        when a word is not in its addresses or key (a word has no space, so it is in the
        search text exactly when it is in one of its space-free parts)."""
        if self._search is None:
            self._search = [search_text(o.static_view(), state=False) for o in self._indexes]
        text = self._search[number]
        missing = [word for word in words if word not in text]
        if not missing:
            return True
        line = self._indexes[number].sort_value("line", time)  # its view is not needed
        state = _LINE_TEXT[line]
        return all(word in state for word in missing)

    def tunnel_at(self, key: TunnelKey, time: float) -> TunnelView | None:
        """One tunnel at `time`: its originators, transitions so far and diagnoses."""
        found = self._by_tunnel.get(key)
        if found is None:
            return None
        tunnel, members = found
        return TunnelView(
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

    def all_transitions(self, tunnel: TunnelKey) -> tuple[TransitionView, ...]:
        """Every transition of a tunnel's originators, time-ordered (past and future)."""
        found = self._by_tunnel.get(tunnel)
        if found is None:
            return ()
        return tuple(
            sorted(
                (
                    _transition_view(o.result.address, t)
                    for o in found[1]
                    for t in o.result.transitions
                ),
                key=lambda t: t.time,
            )
        )

    def series(self, tunnel: TunnelKey) -> tuple[Series, ...]:
        """The counter timeline of each originator of a tunnel."""
        found = self._by_tunnel.get(tunnel)
        if found is None:
            return ()
        return tuple(
            Series(
                o.result.address,
                o.result.peer,
                o.result.retries,
                tuple(ChartPoint(e.time, e.counter, e.line_state) for e in o.result.events),
            )
            for o in found[1]
        )

    def log_until(
        self, time: float, limit: int, log_filter: LogFilter | None = None
    ) -> list[LogRow]:
        """The last `limit` log rows at or before `time` that pass the filter, oldest first."""
        numbers: list[int] | None = None
        if log_filter and log_filter.words:
            numbers = [
                number
                for number, index in enumerate(self._indexes)
                if all(word in index.result.address for word in log_filter.words)
            ]
        if log_filter and log_filter.kinds and log_filter.kinds <= {"down", "up"}:
            chosen = set(range(len(self._indexes)) if numbers is None else numbers)
            rows = [
                _log_row(index.result, transition)
                for number, index in enumerate(self._indexes)
                if number in chosen
                for transition in index.result.transitions
                if transition.time <= time
            ]
            rows.sort(key=lambda r: (r.time, _NO_FRAME if r.frame is None else r.frame))
            return [row for row in rows if log_filter.matches(row)][-limit:]
        # Widen a window back from `time` until it holds `limit` rows (or the start).
        end = bisect_right(self.event_times, time)
        span = limit
        while True:
            start = self.event_times[max(end - span, 0)] if end else self.start
            rows = self._log_between(start, time, numbers)
            if log_filter:
                rows = [row for row in rows if log_filter.matches(row)]
            if len(rows) >= limit or end - span <= 0 or span > 64 * limit:
                return rows[-limit:]
            span *= 4

    def event_position(self, time: float) -> tuple[int, int]:
        """(keepalive events at or before `time`, keepalive events in the capture)."""
        return bisect_right(self.event_times, time), len(self.event_times)

    def next_event(self, time: float) -> float | None:
        """The first keepalive event strictly after `time`."""
        return _after(self.event_times, time)

    def previous_event(self, time: float) -> float | None:
        """The last keepalive event strictly before `time`."""
        return _before(self.event_times, time)

    def frame_time(self, frame: int) -> float | None:
        """The time of the keepalive event or transition with this frame number (the
        nearest keepalive frame at or after it when it is not one)."""
        best: tuple[int, float] | None = None
        for index in self._indexes:
            for event in index.result.events:
                if event.frame is not None and event.frame >= frame:
                    if best is None or event.frame < best[0]:
                        best = (event.frame, event.time)
                    break
        return None if best is None else best[1]

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
    at or before `time`, with sent/returned/lost, downs, time down and blackholed data
    counted up to it."""
    return CaptureIndex(analysis).state_at(time)


# ---------------------------------------------------------------------------- formatting


def fmt_utc(time: float, *, date: bool = True, digits: int = 6) -> str:
    """`2025-11-26 00:00:50.000000` (UTC); `@<epoch seconds>` outside 1970-9999."""
    return utc_text(time, date=date, digits=digits)


def fmt_seconds(seconds: float | None) -> str:
    """A duration for a table cell: `25.020 s`, `1 h 02 m`, `—` for none."""
    if seconds is None or seconds < 0:
        return "—"
    if seconds < 100:
        return f"{seconds:.3f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} m {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} m"


def load_summary(analysis: Analysis, warnings: Sequence[str] = ()) -> str:
    """What the status line says once a capture is analysed: `1,234 packets, 1 keepalive,
    2 tunnels; 1 warning: …`."""
    source = analysis.source
    text = (
        f"{counted(source.packets, 'packet')}, {counted(source.keepalive_packets, 'keepalive')}, "
        f"{counted(len(analysis.tunnels), 'tunnel')}"
    )
    if warnings:
        text += f"; {counted(len(warnings), 'warning')}: {warnings[0]}"
    return text


def fmt_number(value: float) -> str:
    """A period or offset without useless decimals: 5, 0.2, 75.02005."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


def fmt_blackholed(blackholed: tuple[int, int] | None, *, lower_bound: bool = False) -> str:
    """`200–250` packets (min–max), `0`, or `—` when data was not recorded; `≥200–250`
    when data packets were dropped by the capture (the figures are lower bounds)."""
    if blackholed is None:
        return "—"
    low, high = blackholed
    text = str(low) if low == high else f"{low}–{high}"
    return f"≥{text}" if lower_bound else text


def fmt_data(view: OriginatorView) -> str:
    """Data packets of a row: `800`, `≥800` when the capture dropped data, `—` unknown."""
    if view.data_packets is None:
        return "—"
    return f"≥{view.data_packets}" if view.data_lower_bound else str(view.data_packets)


# ---------------------------------------------------------------------------- the table


@lru_cache(maxsize=65536)
def address_order(address: str) -> tuple[int, int, str]:
    """Addresses in numeric order (IPv4 before IPv6); anything else after, as text."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return 9, 0, address
    return parsed.version, int(parsed), ""


@dataclass(frozen=True, slots=True)
class Column:
    """A column of the tunnels table: its label, cell text, sort key, width (at least),
    and priority (the lowest are hidden first when the screen is narrow)."""

    key: str
    label: str
    text: Callable[[OriginatorView], str]
    sort: Callable[[OriginatorView], Any]
    numeric: bool = False
    width: int = 0
    priority: int = 5


def _state_text(view: OriginatorView) -> str:
    return "—" if view.line_state is None else view.line_state.value


_LINE_ORDER: dict[LineState | None, int] = {LineState.DOWN: 0, LineState.UP: 1, None: 2}
# What the filter matches of a line state, by its _LINE_ORDER (as _state_text writes it).
_LINE_TEXT = {order: "—" if state is None else state.value for state, order in _LINE_ORDER.items()}


def _state_order(view: OriginatorView) -> int:
    return _LINE_ORDER[view.line_state]


def _tunnel_order(view: OriginatorView) -> tuple[Any, ...]:
    return (
        address_order(view.endpoints[0]),
        address_order(view.endpoints[1]),
        -1 if view.key is None else view.key,
        address_order(view.address),
    )


def _originator_order(view: OriginatorView) -> tuple[Any, ...]:
    return (
        address_order(view.address),
        address_order(view.peer),
        -1 if view.key is None else view.key,
    )


def _problem_order(view: OriginatorView) -> int:
    """Went down, then unanswered keepalives, then the rest."""
    return view.rank


def _down_text(view: OriginatorView) -> str:
    return "—" if view.downs == 0 else fmt_seconds(view.down_seconds)


COLUMNS: tuple[Column, ...] = (
    Column(
        "originator",
        "Originator → peer",
        lambda v: f"{v.address} → {v.peer}",
        _originator_order,
        priority=10,
    ),
    Column(
        "key",
        "Key",
        lambda v: "—" if v.key is None else str(v.key),
        lambda v: -1 if v.key is None else v.key,
        numeric=True,
        width=3,
        priority=2,
    ),
    Column("line", "Line", _state_text, _state_order, width=4, priority=9),
    Column(
        "counter",
        "Counter",
        lambda v: f"{v.counter}/{v.retries}",
        lambda v: (v.counter / v.retries if v.retries else 0.0, v.counter),
        numeric=True,
        width=7,
        priority=8,
    ),
    Column(
        "period",
        "Period",
        lambda v: f"{fmt_number(v.period)} s {v.period_source}",
        lambda v: v.period,
        width=13,
        priority=1,
    ),
    Column(
        "rtt",
        "Last RTT",
        lambda v: "—" if v.last_rtt_ms is None else f"{v.last_rtt_ms:.2f} ms",
        lambda v: -1.0 if v.last_rtt_ms is None else v.last_rtt_ms,
        numeric=True,
        width=9,
        priority=3,
    ),
    Column(
        "sent", "Sent", lambda v: str(v.sent), lambda v: v.sent, numeric=True, width=5, priority=4
    ),
    Column(
        "returned",
        "Ret",
        lambda v: str(v.returned),
        lambda v: v.returned,
        numeric=True,
        width=5,
        priority=3,
    ),
    Column(
        "lost", "Lost", lambda v: str(v.lost), lambda v: v.lost, numeric=True, width=4, priority=7
    ),
    Column(
        "data",
        "Data",
        fmt_data,
        lambda v: -1 if v.data_packets is None else v.data_packets,
        numeric=True,
        width=6,
        priority=4,
    ),
    Column(
        "blackholed",
        "Blackholed",
        lambda v: fmt_blackholed(v.blackholed, lower_bound=v.data_lower_bound),
        lambda v: (-1, -1) if v.blackholed is None else (v.blackholed[1], v.blackholed[0]),
        numeric=True,
        width=10,
        priority=8,
    ),
    Column(
        "downs",
        "Downs",
        lambda v: str(v.downs),
        lambda v: v.downs,
        numeric=True,
        width=5,
        priority=6,
    ),
    Column(
        "down",
        "Time down",
        _down_text,
        lambda v: v.down_seconds,
        numeric=True,
        width=9,
        priority=6,
    ),
)
COLUMN_KEYS = tuple(column.key for column in COLUMNS)
_COLUMNS_BY_KEY = {column.key: column for column in COLUMNS}

PROBLEMS = "problems"  # the default order: not a column
SORT_KEYS = (PROBLEMS, *COLUMN_KEYS)  # what `s` steps through
# Orders a capture's rows keep at every cursor position (the problem rank of a capture is
# its whole-capture outcome).
STATIC_SORTS = frozenset((PROBLEMS, "originator", "key", "period"))


def column(key: str) -> Column:
    """The column with this key."""
    return _COLUMNS_BY_KEY[key]


def sort_label(key: str) -> str:
    """How the status line names a sort order."""
    return "problems first" if key == PROBLEMS else column(key).label


def sort_views(
    views: Iterable[OriginatorView], by: str = PROBLEMS, *, reverse: bool = False
) -> list[OriginatorView]:
    """Rows in table order: by one column, or problems first (ties in tunnel order)."""
    rows = sorted(views, key=_tunnel_order)
    if by == PROBLEMS:
        return sorted(rows, key=_problem_order, reverse=reverse)
    return sorted(rows, key=column(by).sort, reverse=reverse)


def search_text(view: OriginatorView, *, state: bool = True) -> str:
    """What the filter matches against: addresses, key, line state (`state` False: not)."""
    key = "" if view.key is None else f"key {view.key} {view.key}"
    line = _state_text(view) if state else ""
    return f"{view.address} {view.peer} {key} {line}".lower()


def filter_views(views: Iterable[OriginatorView], query: str) -> list[OriginatorView]:
    """Rows whose addresses, key or line state contain every word of `query`."""
    words = query.lower().split()
    if not words:
        return list(views)
    return [v for v in views if all(word in search_text(v) for word in words)]
