"""Prometheus metrics of the probe, in a private registry served by ``--metrics-port``.

Labels are bounded by the configuration: ``local``, ``remote`` and ``key`` ("" for none) of
a configured tunnel, never addresses taken from received packets (drops that belong to no
configured tunnel carry empty labels).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from analyzer.keepalive.state import LineState
from analyzer.keepalive.tracker import LiveEvent, LiveEventKind

if TYPE_CHECKING:
    from analyzer.probe.tunnel import Tunnel

LABELS = ("local", "remote", "key")
# Drops that belong to no configured tunnel (key-mismatch: when several tunnels share the
# addresses, the key decides which one, so a wrong key names none of them).
UNATTRIBUTED_REASONS = ("unknown-peer", "key-mismatch", "malformed")
RTT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
METRIC_NAMES = (
    "gre_keepalive_line_protocol_up",
    "gre_keepalive_counter",
    "gre_keepalive_sent_total",
    "gre_keepalive_returned_total",
    "gre_keepalive_reflected_total",
    "gre_keepalive_dropped_total",
    "gre_keepalive_send_errors_total",
    "gre_keepalive_transitions_total",
    "gre_keepalive_rtt_seconds",
    "gre_keepalive_unmatched_returns_total",
    "gre_keepalive_period_seconds",
    "gre_keepalive_retries",
    "gre_keepalive_peer_line_protocol_up",
    "gre_keepalive_peer_retries_assumed",
)


def _labels(tunnel: Tunnel | None) -> tuple[str, str, str]:
    if tunnel is None:
        return "", "", ""
    return tunnel.local, tunnel.remote, "" if tunnel.key is None else str(tunnel.key)


class ProbeMetrics:
    """Gauges, counters and the RTT histogram of every configured tunnel."""

    def __init__(self, tunnels: list[Tunnel], drop_reasons: tuple[str, ...]) -> None:
        self.drop_reasons = drop_reasons
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.line_up = Gauge(
            "gre_keepalive_line_protocol_up",
            "Line protocol driven by this host's keepalives: 1 up, 0 down",
            LABELS,
            registry=registry,
        )
        self.counter = Gauge(
            "gre_keepalive_counter",
            "Keepalives sent since the last one that returned (down at counter >= retries)",
            LABELS,
            registry=registry,
        )
        self.sent_total = Counter(
            "gre_keepalive_sent", "Keepalive requests sent", LABELS, registry=registry
        )
        self.returned_total = Counter(
            "gre_keepalive_returned",
            "Returned keepalives received for this host's requests",
            LABELS,
            registry=registry,
        )
        self.reflected_total = Counter(
            "gre_keepalive_reflected", "Peer keepalives reflected", LABELS, registry=registry
        )
        self.dropped_total = Counter(
            "gre_keepalive_dropped",
            "Received GRE packets neither reflected nor counted as returns, by reason",
            (*LABELS, "reason"),
            registry=registry,
        )
        self.send_errors_total = Counter(
            "gre_keepalive_send_errors",
            "Sends the kernel refused (what: request or reflection)",
            (*LABELS, "what"),
            registry=registry,
        )
        self.transitions_total = Counter(
            "gre_keepalive_transitions",
            "Line protocol transitions, by the state entered",
            (*LABELS, "state"),
            registry=registry,
        )
        self.rtt = Histogram(
            "gre_keepalive_rtt_seconds",
            "Round trip of this host's keepalives",
            LABELS,
            buckets=RTT_BUCKETS,
            registry=registry,
        )
        self.unmatched_total = Counter(
            "gre_keepalive_unmatched_returns",
            "Bare PT-0 packets from the peer matching no outstanding request of this host",
            LABELS,
            registry=registry,
        )
        self.period = Gauge(
            "gre_keepalive_period_seconds",
            "Configured keepalive period of this host on the tunnel",
            LABELS,
            registry=registry,
        )
        self.retries = Gauge(
            "gre_keepalive_retries",
            "Configured keepalive retries of this host on the tunnel",
            LABELS,
            registry=registry,
        )
        self.peer_line_up = Gauge(
            "gre_keepalive_peer_line_protocol_up",
            "The peer's line protocol as inferred here from its keepalives and their "
            "reflections: 1 up, 0 down (wrong when this host's reflections are lost)",
            LABELS,
            registry=registry,
        )
        self.peer_retries = Gauge(
            "gre_keepalive_peer_retries_assumed",
            "Retries assumed for the peer when inferring its line protocol",
            LABELS,
            registry=registry,
        )
        for reason in UNATTRIBUTED_REASONS:
            self.dropped_total.labels(*_labels(None), reason)
        for tunnel in tunnels:
            self.add(tunnel)

    def add(self, tunnel: Tunnel) -> None:
        """Create every series of a tunnel (at start, or added by a reload)."""
        labels = _labels(tunnel)
        for reason in self.drop_reasons:
            if reason not in ("unknown-peer", "malformed"):
                self.dropped_total.labels(*labels, reason)
        self.reflected_total.labels(*labels)
        if tunnel.originates:
            assert tunnel.period is not None
            self.line_up.labels(*labels).set(1)
            self.counter.labels(*labels).set(0)
            self.period.labels(*labels).set(tunnel.period)
            self.retries.labels(*labels).set(tunnel.retries)
            self.sent_total.labels(*labels)
            self.returned_total.labels(*labels)
            self.unmatched_total.labels(*labels)
            self.rtt.labels(*labels)
            for what in ("request", "reflection"):
                self.send_errors_total.labels(*labels, what)
            for state in LineState:
                self.transitions_total.labels(*labels, state.value)
        else:
            self.send_errors_total.labels(*labels, "reflection")

    def remove(self, tunnel: Tunnel) -> None:
        """Delete every series of a tunnel (a reload removed it)."""
        labels = _labels(tunnel)
        plain = (
            self.line_up,
            self.counter,
            self.period,
            self.retries,
            self.peer_line_up,
            self.peer_retries,
            self.sent_total,
            self.returned_total,
            self.unmatched_total,
            self.reflected_total,
            self.rtt,
        )
        extra = (
            (self.dropped_total, self.drop_reasons),
            (self.send_errors_total, ("request", "reflection")),
            (self.transitions_total, tuple(state.value for state in LineState)),
        )
        for metric in plain:
            with contextlib.suppress(KeyError):
                metric.remove(*labels)
        for labelled, values in extra:
            for value in values:
                with contextlib.suppress(KeyError):
                    labelled.remove(*labels, value)

    def sent(self, tunnel: Tunnel) -> None:
        """A request left."""
        self.sent_total.labels(*_labels(tunnel)).inc()

    def reflected(self, tunnel: Tunnel) -> None:
        """A reflection left."""
        self.reflected_total.labels(*_labels(tunnel)).inc()

    def dropped(self, tunnel: Tunnel | None, reason: str) -> None:
        """A received packet was dropped."""
        self.dropped_total.labels(*_labels(tunnel), reason).inc()

    def send_error(self, tunnel: Tunnel, what: str) -> None:
        """The kernel refused a send."""
        self.send_errors_total.labels(*_labels(tunnel), what).inc()

    def set_state(self, tunnel: Tunnel, state: LineState) -> None:
        """The line protocol, when it is not the tracker's to tell (no keepalive left yet)."""
        self.line_up.labels(*_labels(tunnel)).set(1 if state is LineState.UP else 0)

    def unmatched_return(self, tunnel: Tunnel) -> None:
        """A bare PT-0 packet matched no outstanding request."""
        self.unmatched_total.labels(*_labels(tunnel)).inc()

    def peer_event(self, tunnel: Tunnel, event: LiveEvent, retries: int) -> None:
        """A tracker event of the peer's keepalives (its line protocol seen from here)."""
        labels = _labels(tunnel)
        self.peer_line_up.labels(*labels).set(1 if event.line_state is LineState.UP else 0)
        self.peer_retries.labels(*labels).set(retries)

    def event(self, tunnel: Tunnel, event: LiveEvent, *, count_return: bool = True) -> None:
        """A tracker event of one of this host's originators (`count_return` False: a return
        let through by --accept-any-return that matched no request of ours)."""
        labels = _labels(tunnel)
        self.counter.labels(*labels).set(event.counter)
        self.line_up.labels(*labels).set(1 if event.line_state is LineState.UP else 0)
        if event.kind is LiveEventKind.RETURNED and count_return:
            self.returned_total.labels(*labels).inc()
            if event.rtt_ms is not None:
                self.rtt.labels(*labels).observe(event.rtt_ms / 1000.0)
        elif event.kind in (LiveEventKind.DOWN, LiveEventKind.UP):
            self.transitions_total.labels(*labels, event.kind.value).inc()


def serve(metrics: ProbeMetrics, port: int, address: str) -> tuple[Any, int]:
    """Start the HTTP endpoint; (server to shut down, bound port)."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=address, registry=metrics.registry)
    return server, int(server.server_address[1])
