"""Prometheus metrics of the scoring and feedback services (names from ARCHITECTURE.md).

Labels never carry a user, card or transaction id: only bounded sets (decision, stage,
rule id, member, reason, cause). Each process serves its own ``/metrics`` on
``metrics_port + process_id``; Prometheus sums across processes.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

__all__ = [
    "CONSUMER_LAG",
    "DECISIONS",
    "DECISION_LATENCY",
    "DEGRADED",
    "DLQ_MESSAGES",
    "DRIFT_WINDOW_ROWS",
    "FEATURE_DRIFT_PSI",
    "FEATURE_NULL_RATIO",
    "FEATURE_OUT_OF_RANGE",
    "FEATURE_REFERENCE_NULL_RATIO",
    "LATE_EVENTS",
    "MODEL_INFO",
    "MODEL_SCORE",
    "ONLINE_ERRORS",
    "PREDICTION_DRIFT_PSI",
    "REDIS_CIRCUIT_OPENS",
    "RULE_HITS",
    "RULE_RELOAD_FAILURES",
    "SCORE_DRIFT_DETECTIONS",
    "SCORE_WINDOW_MEAN",
    "SHADOW_ERRORS",
    "STAGE_DURATION",
    "Health",
    "observe_many",
    "serve_metrics",
]

# 0.5 ms to 1 s: sub-millisecond resolution where the budget is, coarse near the top.
_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1,
    0.15, 0.25, 0.5, 1.0,
)  # fmt: skip
_STAGE_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
)  # fmt: skip

DECISIONS = Counter("fraud_transactions", "Transactions decided, by decision.", ["decision"])
DECISION_LATENCY = Histogram(
    "fraud_decision_latency_seconds",
    "Transaction produced to decision produced.",
    buckets=_LATENCY_BUCKETS,
)
STAGE_DURATION = Histogram(
    "fraud_stage_duration_seconds", "Time per batch in each stage.", ["stage"],
    buckets=_STAGE_BUCKETS,
)  # fmt: skip
MODEL_SCORE = Histogram(
    "fraud_model_score", "Scores by ensemble member; member=challenger: the shadow model.",
    ["member"],
    buckets=tuple(i / 20 for i in range(1, 21)),
)  # fmt: skip
RULE_HITS = Counter("fraud_rule_hits", "Rule hits, active and shadow.", ["rule"])
DLQ_MESSAGES = Counter("fraud_dlq_messages", "Records sent to the DLQ, by reason.", ["reason"])
DEGRADED = Counter("fraud_degraded_decisions", "Decisions made degraded, by cause.", ["cause"])
MODEL_INFO = Gauge("fraud_model_info", "The model serving (value 1).", ["version", "role"])
LATE_EVENTS = Counter("fraud_late_events", "Events older than the allowed lateness.")
RULE_RELOAD_FAILURES = Counter("fraud_rule_reload_failures", "Rule edits refused.")
ONLINE_ERRORS = Counter(
    "fraud_online_model_errors",
    "Batches the online model could not score (the champion's score stood, not degraded).",
)
SHADOW_ERRORS = Counter(
    "fraud_shadow_errors", "Batches the challenger could not score in shadow, by cause.", ["cause"]
)
REDIS_CIRCUIT_OPENS = Counter(
    "fraud_redis_circuit_opens",
    "Times the hot path stopped calling Redis (its circuit opened), by cause.",
    ["cause"],
)

# Drift of the serving champion's inputs and score (streams/drift.py); per process: each
# sees its share of the users, so aggregate with max.
FEATURE_DRIFT_PSI = Gauge(
    "fraud_feature_drift_psi",
    "PSI of a feature over the drift window against the champion's reference.",
    ["feature"],
)
PREDICTION_DRIFT_PSI = Gauge(
    "fraud_prediction_drift_psi",
    "PSI of the champion's score over the drift window against its reference (NaN: too few rows).",
)
FEATURE_NULL_RATIO = Gauge(
    "fraud_feature_null_ratio", "Share of null values of a feature in the drift window.",
    ["feature"],
)  # fmt: skip
FEATURE_REFERENCE_NULL_RATIO = Gauge(
    "fraud_feature_reference_null_ratio",
    "Share of null values of a feature in the champion's reference (some are null by design).",
    ["feature"],
)
FEATURE_OUT_OF_RANGE = Gauge(
    "fraud_feature_out_of_range_ratio",
    "Share of a feature's values in the drift window outside the range training saw.",
    ["feature"],
)
DRIFT_WINDOW_ROWS = Gauge("fraud_drift_window_rows", "Rows in the drift window.")
SCORE_DRIFT_DETECTIONS = Counter(
    "fraud_score_drift_detections", "Changes in the mean score detected by ADWIN (river)."
)
SCORE_WINDOW_MEAN = Gauge("fraud_score_drift_window_mean", "ADWIN's current mean score.")
CONSUMER_LAG = Gauge(
    "fraud_consumer_lag_messages",
    "Messages between a partition's end and the consumer's position, by consumer.",
    ["consumer", "topic", "partition"],
)


class Health:
    """Liveness and readiness of one process, served at /healthz and /readyz."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.alive = True


def serve_metrics(host: str, port: int, health: Health) -> ThreadingHTTPServer:
    """Serve /metrics, /healthz and /readyz on a daemon thread."""

    class _Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                body, status, kind = generate_latest(), 200, CONTENT_TYPE_LATEST
            elif self.path == "/healthz":
                ok = health.alive
                body, status, kind = (b"ok" if ok else b"dead"), (200 if ok else 503), "text/plain"
            elif self.path == "/readyz":
                ok = health.ready.is_set()
                body = b"ready" if ok else b"starting"
                status, kind = (200 if ok else 503), "text/plain"
            else:
                body, status, kind = b"not found", 404, "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # scrapes every few seconds would drown the logs

    server = ThreadingHTTPServer((host, port), _Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


def observe_many(histogram: Histogram, values: ArrayLike) -> None:
    """``histogram.observe(v)`` for every non-NaN ``v``, with one increment per bucket.

    A batch of 500 decisions observes 500 latencies and 1,500 member scores: one Python
    ``observe`` each cost ~1.5 us a value, a few percent of the scorer's CPU. This bins the
    batch with numpy instead. It uses the child's bucket counters (prometheus-client is
    pinned; tests/unit/streams/test_metrics.py compares it with ``observe``).
    """
    array = np.asarray(values, dtype=np.float64).ravel()
    array = array[~np.isnan(array)]
    if array.size == 0:
        return
    child: Any = histogram
    bounds = np.asarray(child._upper_bounds, dtype=np.float64)
    counts = np.bincount(np.searchsorted(bounds, array, side="left"), minlength=bounds.size)
    for bucket, count in zip(child._buckets, counts.tolist(), strict=False):
        if count:
            bucket.inc(count)
    child._sum.inc(float(array.sum()))
