"""Stand-ins for the scorer and feedback processes: real prometheus_client registries.

The tail is tested on the exposition text these produce (``generate_latest``), the same
bytes a running process serves, so a change in prometheus_client's format shows here.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    make_wsgi_app,
)

from streams.monitoring import Endpoint, Scrape
from streams.monitoring._scrape import Reading, parse

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1,
    0.15, 0.25, 0.5, 1.0,
)  # fmt: skip
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class FakeScorer:
    """The scorer's metrics, in a registry of their own."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.decisions = Counter("fraud_transactions", "d", ["decision"], registry=r)
        self.latency = Histogram(
            "fraud_decision_latency_seconds", "l", buckets=LATENCY_BUCKETS, registry=r
        )
        self.rule_hits = Counter("fraud_rule_hits", "r", ["rule"], registry=r)
        self.dlq = Counter("fraud_dlq_messages", "q", ["reason"], registry=r)
        self.degraded = Counter("fraud_degraded_decisions", "g", ["cause"], registry=r)
        self.model_info = Gauge("fraud_model_info", "m", ["version", "role"], registry=r)
        self.late = Counter("fraud_late_events", "late", registry=r)
        self.prediction_psi = Gauge("fraud_prediction_drift_psi", "p", registry=r)
        self.feature_psi = Gauge("fraud_feature_drift_psi", "f", ["feature"], registry=r)
        self.null_ratio = Gauge("fraud_feature_null_ratio", "n", ["feature"], registry=r)
        self.reference_null = Gauge(
            "fraud_feature_reference_null_ratio", "rn", ["feature"], registry=r
        )
        self.out_of_range = Gauge("fraud_feature_out_of_range_ratio", "o", ["feature"], registry=r)
        self.window_rows = Gauge("fraud_drift_window_rows", "w", registry=r)
        self.detections = Counter("fraud_score_drift_detections", "a", registry=r)
        self.score_mean = Gauge("fraud_score_drift_window_mean", "mean", registry=r)
        self.lag = Gauge(
            "fraud_consumer_lag_messages", "lag", ["consumer", "topic", "partition"], registry=r
        )

    def text(self) -> str:
        """The exposition a scrape of /metrics returns."""
        return generate_latest(self.registry).decode()


class FakeFeedback:
    """The feedback service's metrics (it also exposes the scorer's empty latency histogram)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.labels = Counter("fraud_labels", "l", ["label"], registry=r)
        self.applied = Counter("fraud_feedback_labels", "a", ["outcome"], registry=r)
        self.parked = Gauge("fraud_feedback_parked_labels", "p", registry=r)
        self.quality = Gauge("fraud_online_model_quality", "q", ["metric"], registry=r)
        self.publishes = Counter("fraud_online_model_publishes", "pub", ["outcome"], registry=r)
        self.retrains = Counter("fraud_retrain_runs", "rr", ["outcome"], registry=r)
        self.triggers = Counter("fraud_drift_retrain_triggers", "t", registry=r)
        self.lag = Gauge(
            "fraud_consumer_lag_messages", "lag", ["consumer", "topic", "partition"], registry=r
        )
        Histogram("fraud_decision_latency_seconds", "l", buckets=LATENCY_BUCKETS, registry=r)

    def text(self) -> str:
        """The exposition a scrape of /metrics returns."""
        return generate_latest(self.registry).decode()


def reading(
    url: str, source: FakeScorer | FakeFeedback | None, service: str = "unknown"
) -> Reading:
    """What scraping ``source`` at ``url`` reads now (``None``: the endpoint is down)."""
    if source is None:
        return Reading(Endpoint(url, service), None, "ConnectionRefusedError: refused")
    return Reading(Endpoint(url, service), parse(source.text()))


def scrape_at(seconds: float, *readings: Reading) -> Scrape:
    """A scrape taken ``seconds`` after a fixed origin (wall and monotonic clocks agree)."""
    return Scrape(at=_EPOCH + timedelta(seconds=seconds), monotonic=seconds, readings=readings)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Keep test output clean."""


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class Servers:
    """prometheus_client WSGI apps served on 127.0.0.1, stopped at the end of the test."""

    def __init__(self) -> None:
        self._running: dict[int, WSGIServer] = {}

    def __call__(self, registry: CollectorRegistry) -> int:
        """Serve ``registry`` at /metrics on a free port; returns the port."""
        server = make_server(
            "127.0.0.1",
            0,
            make_wsgi_app(registry),
            server_class=_ThreadingServer,
            handler_class=_QuietHandler,
        )
        # A short poll interval: stopping a server takes milliseconds, not half a second.
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()
        port = int(server.server_address[1])
        self._running[port] = server
        return port

    def stop(self, port: int) -> None:
        """Stop the server on ``port``: it no longer answers."""
        server = self._running.pop(port)
        server.shutdown()
        server.server_close()

    def stop_all(self) -> None:
        """Stop every server still running."""
        for port in list(self._running):
            self.stop(port)
