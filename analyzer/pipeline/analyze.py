"""``analyze`` as one pass through the stages: read → keepalive → diagnose.

The report stage is the caller's (text, JSON or CSV of the returned analysis).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from itertools import groupby
from operator import attrgetter

from analyzer.diagnose.rules import DiagnoseOptions, diagnose
from analyzer.diagnose.whatif import apply_what_if
from analyzer.keepalive.analysis import Settings, build_analysis, plan_tunnels
from analyzer.keepalive.collect import Collector, collect_frames
from analyzer.keepalive.model import Analysis, SourceSummary, StreamedAnalysis, TunnelResult
from analyzer.read.capture import RawFrame


def analyze_collected(collector: Collector, settings: Settings, *, final: bool = False) -> Analysis:
    """Timelines from a finished streaming pass, then the what-if replay and the diagnoses
    the settings ask for. `final`: the collector takes no more frames (it may be compacted),
    and the tunnels are made as the report asks for them (a :class:`StreamedAnalysis`)."""
    if final:
        plan = plan_tunnels(collector, settings, final=True)
        source = collector.source
        return StreamedAnalysis(
            source,
            lambda: _finished(source, plan, settings),
            keepalives=bool(collector.pairer.originators),
        )
    analysis = build_analysis(collector, settings)
    _finish(analysis, settings, diagnose_options(settings))
    return analysis


def _finish(analysis: Analysis, settings: Settings, options: DiagnoseOptions) -> None:
    if settings.what_if is not None:
        apply_what_if(analysis, settings.what_if)
    if settings.diagnose:
        diagnose(analysis, options)


_ENDPOINTS = attrgetter("endpoints")
# Tunnels made (and diagnosed) before the writer takes them: making and writing them in
# turns, one at a time, took a tenth longer (the interpreter's caches go cold), and a
# few hundred cost only about a megabyte.
BATCH = 512


def _finished(
    source: SourceSummary, plan: Callable[[], Iterator[TunnelResult]], settings: Settings
) -> Iterator[TunnelResult]:
    """The planned tunnels with their what-if replays and diagnoses, a batch at a time.
    The tunnels of one endpoint pair (one per GRE key, next to each other in the order) are
    diagnosed together: the only diagnosis that compares tunnels compares those."""
    options = diagnose_options(settings)
    batch: list[TunnelResult] = []
    for _endpoints, same_pair in groupby(plan(), key=_ENDPOINTS):
        batch.extend(same_pair)
        if len(batch) >= BATCH:
            _finish(Analysis(source, batch), settings, options)
            yield from batch
            batch = []
    _finish(Analysis(source, batch), settings, options)
    yield from batch


def analyze_frames(
    frames: Iterable[RawFrame], settings: Settings | None = None, *, files: list[str] | None = None
) -> Analysis:
    """Analyse frames (in capture order): every tunnel's timelines with their diagnoses."""
    return analyze_collected(collect_frames(frames, files or []), settings or Settings())


def diagnose_options(settings: Settings) -> DiagnoseOptions:
    """The diagnosis thresholds the settings carry."""
    return DiagnoseOptions(
        flap_transitions=settings.flap_transitions,
        flap_minutes=settings.flap_minutes,
        late_detection_packets=settings.late_detection_packets,
        one_way_seconds=settings.one_way_seconds,
        linux_reflectors=tuple(
            where for where, name in settings.profiles if name == "linux-reflector"
        ),
    )
