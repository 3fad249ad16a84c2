"""Live mode without the UI: run a frame source, track it, hand coalesced updates upward.

"Attributes down, messages up": :class:`LiveFeeder` owns the source and the
:class:`~analyzer.keepalive.tracker.LiveTracker` in its own threads and calls ``post`` with a
:class:`LiveUpdate` (the latest snapshot plus what happened since the previous one) at most
every ``interval`` seconds, and at least every ``heartbeat`` seconds so times keep moving.
:class:`LiveStore` folds updates into what the widgets draw, on the UI thread.
Nothing here imports textual.
"""

from __future__ import annotations

import queue
import threading
import time as _time
from array import array
from bisect import insort
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from analyzer.keepalive.analysis import Settings
from analyzer.keepalive.collect import Collector
from analyzer.keepalive.model import Analysis, Diagnosis
from analyzer.keepalive.state import LineState
from analyzer.keepalive.tracker import LiveEvent, LiveEventKind, LiveTracker, OriginatorState
from analyzer.keepalive.wording import counted
from analyzer.pipeline.analyze import analyze_collected
from analyzer.read.capture import RawFrame
from analyzer.read.packet import FrameKind, decode_frame
from analyzer.read.sources import (
    CaptureStats,
    DataRecords,
    FlowKey,
    FrameSource,
    InterfaceNotice,
    SourceItem,
)
from analyzer.tui.views import (
    RANK_DOWN,
    RANK_FINE,
    RANK_UNANSWERED,
    ChartPoint,
    LogRow,
    OriginatorView,
    Series,
    Snapshot,
    TransitionView,
    TunnelKey,
    TunnelView,
)

LIVE_SCHEMA = "gre-keepalive.live/1"
TICK = 0.25  # the tracker is advanced by the clock at least this often
INTERVAL = 0.1  # at most ten updates a second reach the UI
HEARTBEAT = 0.5  # and at least two, so clocks and "time down" keep moving
BATCH = 2000  # frames handled between two looks at the clock
ANALYSIS_INTERVAL = 1.0  # the diagnoses and blackhole figures are recomputed at most this often
ANALYSIS_SHARE = 0.1  # … and take at most this share of the tracker thread's time


@dataclass(frozen=True, slots=True)
class LiveFigures:
    """What the full analysis (:func:`analyze_collected`, rerun on everything seen so far
    as if the capture ended now) adds to the tracker's state: diagnoses, data packets and
    blackholed packets per originator."""

    time: float
    diagnoses: dict[TunnelKey, tuple[Diagnosis, ...]]
    data: dict[tuple[TunnelKey, str], tuple[int, tuple[int, int]]]  # (packets, blackholed)
    analysis: Analysis


def live_figures(collector: Collector, settings: Settings, now: float) -> LiveFigures:
    """Analyse everything collected so far as a capture that ends at `now`."""
    collector.sort_data()
    source = collector.source
    if source.start is not None and (source.end is None or source.end < now):
        source.end = now
    analysis = analyze_collected(collector, settings)
    diagnoses: dict[TunnelKey, tuple[Diagnosis, ...]] = {}
    data: dict[tuple[TunnelKey, str], tuple[int, tuple[int, int]]] = {}
    for tunnel in analysis.tunnels:
        key = (tunnel.endpoints, tunnel.key)
        diagnoses[key] = tuple(tunnel.diagnoses)
        for o in tunnel.originators:
            blackhole = o.blackholed_packets
            data[(key, o.address)] = (o.data_packets, (blackhole.min, blackhole.max))
    return LiveFigures(now, diagnoses, data, analysis)


@dataclass(frozen=True, slots=True)
class LiveUpdate:
    """The tracker's latest snapshot and everything that happened since the last update."""

    time: float
    states: tuple[OriginatorState, ...]
    events: tuple[LiveEvent, ...] = ()
    notices: tuple[InterfaceNotice, ...] = ()
    frames: int = 0
    ended: bool = False  # the source stopped yielding: the state is frozen from now on
    error: str | None = None  # the source raised this
    figures: LiveFigures | None = None  # a fresh analysis (at most once a second)
    capture: CaptureStats | None = None  # the capture's latest counters (drops)


@dataclass(frozen=True, slots=True)
class _End:
    error: str | None


class LiveFeeder:
    """A reader thread pulls the source into a queue; a tracker thread feeds the tracker,
    advances it by the clock, and posts coalesced :class:`LiveUpdate` objects."""

    def __init__(
        self,
        source: FrameSource,
        settings: Settings,
        post: Callable[[LiveUpdate], object],
        *,
        clock: Callable[[], float] = _time.time,
        tick: float = TICK,
        interval: float = INTERVAL,
        heartbeat: float = HEARTBEAT,
    ) -> None:
        self.source = source
        self.tracker = LiveTracker(settings)
        self.post = post
        self.clock = clock
        self.tick = tick
        self.interval = interval
        self.heartbeat = heartbeat
        self.stop_event = threading.Event()
        self.posts = 0
        self.settings = settings
        self.collector = Collector(["live"], include_data=True)
        self._data: dict[FlowKey, tuple[array[float], array[int]]] = {}
        self.analysis_interval = ANALYSIS_INTERVAL
        self._queue: queue.Queue[SourceItem | _End] = queue.Queue()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start both threads (daemons: a source stuck in a system call cannot block exit)."""
        self._threads = [
            threading.Thread(target=self._read, name="gre-keepalive-source", daemon=True),
            threading.Thread(target=self._process, name="gre-keepalive-tracker", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Ask the source and the tracker thread to stop, and wait a little for them."""
        self.stop_event.set()
        deadline = _time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - _time.monotonic(), 0.0))

    def _read(self) -> None:
        try:
            for item in self.source(self.stop_event):
                self._queue.put(item)
                if self.stop_event.is_set():
                    break
        except Exception as exc:  # the UI shows it instead of dying with the thread
            self._queue.put(_End(str(exc) or type(exc).__name__))
        else:
            self._queue.put(_End(None))

    def _add_data(self, records: DataRecords) -> None:
        """Data packets the capture counted on its data handle (they never come as frames,
        so a flood cannot crowd out keepalives): added to the collector's data columns for
        the data and blackhole figures."""
        collector = self.collector
        source = collector.source
        for flow, (times, numbers) in records.flows.items():
            if not times:
                continue
            column = self._data.get(flow)
            if column is None:
                column = self._data[flow] = (array("d"), array("q"))
            column[0].extend(times)
            column[1].extend(numbers)
            collector.add_data_flow(flow, column[0], column[1], in_time_order=True)
            if source.start is None or times[0] < source.start:
                source.start = times[0]
            if source.end is None or times[-1] > source.end:
                source.end = times[-1]
        source.packets += records.packets
        source.gre_packets += records.packets

    def _process(self) -> None:
        tracker = self.tracker
        events: list[LiveEvent] = []
        notices: list[InterfaceNotice] = []
        ended = False
        error: str | None = None
        frames = 0
        capture: CaptureStats | None = None
        next_tick = 0.0
        last_post = -float("inf")
        collector = self.collector
        next_analysis = _time.monotonic() + self.analysis_interval
        figures: LiveFigures | None = None
        while not self.stop_event.is_set():
            now = _time.monotonic()
            due = last_post + (self.interval if events or notices else self.heartbeat)
            wait = min(due, next_tick) - now
            items: list[SourceItem | _End] = []
            try:
                items.append(self._queue.get(timeout=min(max(wait, 0.005), self.tick)))
                while len(items) < BATCH:
                    items.append(self._queue.get_nowait())
            except queue.Empty:
                pass
            for item in items:
                if isinstance(item, RawFrame):
                    frames += 1
                    decoded = decode_frame(item.linktype, item.data)
                    events.extend(tracker.feed(item.time, item.number, decoded))
                    collector.count(item.time)
                    if decoded.kind is not FrameKind.OTHER:
                        collector.classify(item)
                elif isinstance(item, InterfaceNotice):
                    notices.append(item)
                elif isinstance(item, CaptureStats):
                    capture = item
                elif isinstance(item, DataRecords):
                    self._add_data(item)
                elif isinstance(item, _End):
                    ended, error = True, item.error
            now = _time.monotonic()
            post_due = ended or now - last_post >= (
                self.interval if events or notices else self.heartbeat
            )
            if not (post_due or now >= next_tick):
                continue
            clock = self.clock()
            # Advance by the clock only once every queued frame is fed, so a backlog is
            # never overtaken by ticks declared missing; and always right before a
            # snapshot, so an update's states are those at its time.
            if not ended and self._queue.empty():
                events.extend(tracker.advance(clock))
                next_tick = now + self.tick
            if post_due and (ended or now >= next_analysis) and collector.source.packets:
                began = _time.monotonic()
                figures = live_figures(collector, self.settings, clock)
                took = _time.monotonic() - began
                next_analysis = began + max(self.analysis_interval, took / ANALYSIS_SHARE)
            if post_due:
                self.post(
                    LiveUpdate(
                        time=clock,
                        states=tuple(tracker.snapshot(clock)),
                        events=tuple(events),
                        notices=tuple(notices),
                        frames=frames,
                        ended=ended,
                        error=error,
                        capture=capture,
                        figures=figures,
                    )
                )
                self.posts += 1
                events, notices, figures = [], [], None
                last_post = now
                if ended:
                    return


def log_row(event: LiveEvent) -> LogRow:
    """A live event as an event-log row."""
    return LogRow(
        time=event.time,
        kind=event.kind.value,
        originator=event.originator,
        peer=event.peer,
        frame=event.frame,
        ident=event.ident,
        counter=event.counter,
        line_state=event.line_state,
        rtt_ms=event.rtt_ms if event.kind is LiveEventKind.RETURNED else None,
    )


def _view(
    state: OriginatorState,
    now: float,
    pending: float | None,
    figures: tuple[int, tuple[int, int]] | None,
    data_lower_bound: bool = False,
) -> OriginatorView:
    """A tracker state as a table row; `pending`: the time of its last send while the
    reply is not back; `figures`: (data packets, blackholed) from the latest analysis;
    `data_lower_bound`: the data capture dropped packets, so the figures are lower bounds."""
    outstanding = 1 if pending is not None and now - pending < state.period else 0
    lost = max(state.sent - state.returned - outstanding, 0)
    downs = state.downs
    rank = (
        RANK_DOWN
        if downs or state.line_state is LineState.DOWN
        else RANK_UNANSWERED
        if lost or state.extrapolated
        else RANK_FINE
    )
    return OriginatorView(
        endpoints=state.endpoints,
        key=state.key,
        address=state.address,
        peer=state.peer,
        line_state=state.line_state,
        counter=state.counter,
        retries=state.retries,
        period=state.period,
        period_source=state.period_source.value,
        last_rtt_ms=state.last_rtt_ms,
        sent=state.sent,
        returned=state.returned,
        extrapolated=state.extrapolated,
        downs=downs,
        down_seconds=state.down_seconds,
        last_event=state.last_event,
        lost=lost,
        data_packets=None if figures is None else figures[0],
        blackholed=None if figures is None else figures[1],
        rank=rank,
        data_lower_bound=figures is not None and data_lower_bound,
    )


class LiveStore:
    """What live mode shows, folded from updates: latest states, timelines, the log."""

    def __init__(self, *, log_limit: int = 2000, points_limit: int = 4096) -> None:
        self.log_limit = log_limit
        self.now: float | None = None
        self.states: tuple[OriginatorState, ...] = ()
        self.frames = 0
        self.start: float | None = None  # the first update: times relative to it
        self.figures: LiveFigures | None = None
        self._pending: dict[tuple[TunnelKey, str], float | None] = {}
        self.capture: CaptureStats | None = None
        self._lost_at_transition: dict[tuple[TunnelKey, str], int] = {}
        self.ended = False
        self.error: str | None = None
        self.last_notice: InterfaceNotice | None = None
        self.log: list[LogRow] = []  # in time order: a tick declared missing late slots in
        self.events: deque[LiveEvent] = deque(maxlen=log_limit)
        self._points_limit = points_limit
        self._points: dict[tuple[TunnelKey, str], deque[ChartPoint]] = {}
        self._transitions: dict[TunnelKey, list[TransitionView]] = {}

    def apply(self, update: LiveUpdate) -> None:
        """Fold one update in."""
        self.now = update.time
        if self.start is None:
            self.start = update.time
        self.states = update.states
        if update.figures is not None:
            self.figures = update.figures
        self.frames = update.frames
        if update.capture is not None:
            self.capture = update.capture
        retries = {(s.endpoints, s.key, s.address): s.retries for s in update.states}
        for event in update.events:
            self.events.append(event)
            row = log_row(event)
            row = replace(row, retries=retries.get((event.endpoints, event.key, event.originator)))
            self._log(row)
            tunnel = (event.endpoints, event.key)
            if event.kind is LiveEventKind.SENT:
                self._pending[(tunnel, event.originator)] = event.time
            elif event.kind is LiveEventKind.RETURNED:
                self._pending[(tunnel, event.originator)] = None
            points = self._points.get((tunnel, event.originator))
            if points is None:
                points = self._points[(tunnel, event.originator)] = deque(maxlen=self._points_limit)
            points.append(ChartPoint(event.time, event.counter, event.line_state))
            if event.kind in (LiveEventKind.DOWN, LiveEventKind.UP):
                self._transitions.setdefault(tunnel, []).append(
                    TransitionView(
                        event.time,
                        event.originator,
                        LineState.DOWN if event.kind is LiveEventKind.DOWN else LineState.UP,
                        event.counter,
                        event.frame,
                    )
                )
                self._note_capture_losses(event)
        for notice in update.notices:
            self.last_notice = notice
            self._log(LogRow(notice.time, "notice", message=notice.message))
        if update.error is not None and self.error is None:
            self.error = update.error
            self._log(LogRow(update.time, "error", message=update.error))
        if update.ended and not self.ended:
            self.ended = True
            if update.error is None:
                self._log(LogRow(update.time, "notice", message="the capture source ended"))

    def _note_capture_losses(self, event: LiveEvent) -> None:
        """Log a notice beside a transition that follows losses of the keepalive capture."""
        lost = self.capture.keepalive_lost if self.capture is not None else 0
        who = ((event.endpoints, event.key), event.originator)
        before = self._lost_at_transition.get(who, 0)
        self._lost_at_transition[who] = lost
        if lost > before:
            self._log(
                LogRow(
                    event.time,
                    "notice",
                    message=f"{event.originator} {event.kind.value}: the keepalive capture lost "
                    f"{counted(lost - before, 'packet')} before it (a lost keepalive may have "
                    "caused it)",
                )
            )

    def capture_text(self) -> str:
        """The capture's losses for the status line ("" before the first counters)."""
        stats = self.capture
        if stats is None:
            return ""
        text = f"keepalive capture lost {stats.keepalive_lost}"
        if stats.data is not None:
            bound = "≥ " if stats.data_lower_bound else ""
            text += f" · data {bound}{stats.data_packets} (lost {stats.data.lost})"
        return text

    def _log(self, row: LogRow) -> None:
        insort(self.log, row, key=lambda r: r.time)
        if len(self.log) > 2 * self.log_limit:
            del self.log[: len(self.log) - self.log_limit]

    def snapshot(self) -> Snapshot:
        """The latest states as table rows; tunnel views (transitions, diagnoses) on demand."""
        now = self.now or 0.0
        figures = self.figures
        lower_bound = self.capture is not None and self.capture.data_lower_bound
        views = tuple(
            _view(
                state,
                now,
                self._pending.get(((state.endpoints, state.key), state.address)),
                None
                if figures is None
                else figures.data.get(((state.endpoints, state.key), state.address)),
                lower_bound,
            )
            for state in self.states
        )
        return Snapshot(now, views, lambda key: self.tunnel_view(key, views))

    def tunnel_view(self, key: TunnelKey, views: Sequence[OriginatorView]) -> TunnelView | None:
        """One tunnel: its originators, transitions so far and latest diagnoses."""
        members = tuple(view for view in views if view.tunnel == key)
        if not members:
            return None
        figures = self.figures
        return TunnelView(
            endpoints=key[0],
            key=key[1],
            vantage=None,
            vantage_reason=None,
            originators=members,
            # A tick declared missing by the clock is reported after later packets.
            transitions=tuple(sorted(self._transitions.get(key, ()), key=lambda t: t.time)),
            diagnoses=() if figures is None else figures.diagnoses.get(key, ()),
        )

    def series(self, tunnel: TunnelKey) -> tuple[Series, ...]:
        """The recent counter timeline of each originator of a tunnel."""
        return tuple(
            Series(
                state.address,
                state.peer,
                state.retries,
                tuple(self._points.get((tunnel, state.address), ())),
            )
            for state in self.states
            if (state.endpoints, state.key) == tunnel
        )

    def window(self, tunnel: TunnelKey) -> tuple[float, float]:
        """The stretch of time the charts show: up to forty periods (at least 10 s, at most
        an hour) before now, from the first event kept."""
        now = self.now or 0.0
        periods = [s.period for s in self.states if (s.endpoints, s.key) == tunnel]
        span = min(max(40 * max(periods, default=1.0), 10.0), 3600.0)
        firsts = [
            points[0].time for (key, _), points in self._points.items() if key == tunnel and points
        ]
        start = max(now - span, min(firsts, default=now - span))
        return min(start, now - 10.0), now

    def document(self, title: str) -> dict[str, Any]:
        """The current snapshots as a JSON document (the `e` key in live mode)."""
        return {
            "schema": LIVE_SCHEMA,
            "title": title,
            "time": self.now,
            "frames": self.frames,
            "ended": self.ended,
            "error": self.error,
            "originators": [
                {
                    "endpoints": list(s.endpoints),
                    "key": s.key,
                    "address": s.address,
                    "peer": s.peer,
                    "line_state": s.line_state.value,
                    "counter": s.counter,
                    "retries": s.retries,
                    "period": s.period,
                    "period_source": s.period_source.value,
                    "sent": s.sent,
                    "returned": s.returned,
                    "extrapolated": s.extrapolated,
                    "last_rtt_ms": s.last_rtt_ms,
                    "downs": s.downs,
                    "down_seconds": s.down_seconds,
                    "last_event": s.last_event,
                    "transitions": [
                        {
                            "time": t.time,
                            "state": t.state.value,
                            "counter": t.counter,
                            "frame": t.frame,
                        }
                        for t in self._transitions.get((s.endpoints, s.key), ())
                        if t.originator == s.address
                    ],
                }
                for s in self.states
            ],
            "events": [event.to_json() for event in self.events],
        }
