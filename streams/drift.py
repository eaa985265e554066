"""Drift in a scorer process: the monitor fed by every batch, its gauges, a Redis summary.

The figures themselves are :class:`operators.drift.DriftMonitor`'s. Worker threads only
count their batches into it; a side thread computes the figures every
``FRAUD_DRIFT_REPORT_INTERVAL_S`` (so the window keeps sliding when traffic stops, and the
hot path never pays for a report), sets the ``fraud_*drift*`` gauges, and leaves a short
summary in Redis. The summary is how the feedback service, which never scrapes metrics,
learns of sustained drift and can retrain on it.

Each scorer process sees its own share of the users, so each reports its own figures;
Prometheus aggregates them with ``max``.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import orjson
import structlog
from pydantic import TypeAdapter

from operators.drift import DriftMonitor, DriftReport
from operators.engine import BatchOutcome
from streams import metrics
from streams.logs import FailureLog
from streams.settings import Settings

__all__ = ["DriftSink", "DriftStatus", "ScorerDrift"]

_log = structlog.get_logger("drift")


class DriftSink(Protocol):
    """Where drift summaries go: :class:`streams.redis_store.RedisStore` in production."""

    def write_drift_status(self, reporter: str, status: bytes, ttl_s: int) -> None:
        """Store ``status`` under ``reporter`` for ``ttl_s`` seconds; never raises."""


@dataclass(frozen=True, slots=True)
class DriftStatus:
    """What one scorer process last reported, as the feedback service reads it."""

    reporter: str
    model_version: str
    rows: int
    prediction_psi: float | None
    max_feature_psi: float | None
    at: float

    @classmethod
    def of(cls, reporter: str, report: DriftReport, at: float) -> DriftStatus:
        """The summary of ``report``: the worst feature rather than all of them."""
        return cls(
            reporter=reporter,
            model_version=report.model_version,
            rows=report.rows,
            prediction_psi=report.prediction_psi,
            max_feature_psi=max(report.feature_psi.values(), default=None),
            at=at,
        )

    def to_json(self) -> bytes:
        """The Redis value."""
        return orjson.dumps(self)

    @classmethod
    def from_json(cls, raw: bytes) -> DriftStatus:
        """Parse a Redis value; raises ValueError on anything malformed."""
        return _STATUS.validate_json(raw)


_STATUS = TypeAdapter(DriftStatus)


class ScorerDrift:
    """The process-wide drift monitor and its publication; see the module doc."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.monotonic,
        reporter: str | None = None,
    ) -> None:
        """``reporter`` names this process in Redis (default: host and pid)."""
        self.monitor = DriftMonitor(
            window_s=settings.drift_window_s, min_rows=settings.drift_min_rows, clock=clock
        )
        self.reporter = reporter or f"{socket.gethostname()}-{os.getpid()}"
        self._interval_s = settings.drift_report_interval_s
        # Long enough to survive a few missed reports, short enough that a stopped
        # process's summary is gone before anyone acts on it.
        self._ttl_s = max(30, math.ceil(6 * self._interval_s))
        self._detections_seen = 0
        self._stop = threading.Event()
        self._failures = FailureLog(_log, "drift_not_published", step="drift")
        metrics.PREDICTION_DRIFT_PSI.set(math.nan)

    def observe(self, outcome: BatchOutcome) -> None:
        """Count a decided batch (the champion's features and scores) into the window."""
        champion = outcome.champion
        if champion is None or outcome.features is None:
            return  # rules-only: no model, no reference to drift from
        reference = champion.manifest.reference
        if reference is None:
            return  # a model trained before references were stored
        self.monitor.observe(
            champion.version,
            reference,
            champion.feature_names,
            outcome.features,
            outcome.champion_scores,
        )

    def publish(self, sink: DriftSink) -> DriftReport | None:
        """Compute the figures, set the gauges and write the summary; returns the report."""
        report = self.monitor.report()
        self._set_gauges(report)
        if report is not None:
            status = DriftStatus.of(self.reporter, report, time.time())
            sink.write_drift_status(self.reporter, status.to_json(), self._ttl_s)
        return report

    def start(self, sink: DriftSink) -> ScorerDrift:
        """Publish every interval on a daemon thread until :meth:`stop`."""
        threading.Thread(target=self._run, args=(sink,), name="drift", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop publishing (idempotent)."""
        self._stop.set()

    def _run(self, sink: DriftSink) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.publish(sink)
            except Exception as exc:  # the figures are an extra: never let the thread die
                self._failures.failed(exc)
            else:
                self._failures.succeeded()

    def _set_gauges(self, report: DriftReport | None) -> None:
        metrics.DRIFT_WINDOW_ROWS.set(self.monitor.window_rows())
        labelled = (
            metrics.FEATURE_DRIFT_PSI,
            metrics.FEATURE_NULL_RATIO,
            metrics.FEATURE_REFERENCE_NULL_RATIO,
            metrics.FEATURE_OUT_OF_RANGE,
        )
        if report is None:  # too few rows (just started, or a new model): no figures yet
            for gauge in labelled:
                gauge.clear()
            metrics.PREDICTION_DRIFT_PSI.set(math.nan)
            return
        for gauge, values in zip(
            labelled,
            (
                report.feature_psi,
                report.null_ratio,
                report.reference_null_ratio,
                report.out_of_range_ratio,
            ),
            strict=True,
        ):
            for feature, value in values.items():
                gauge.labels(feature=feature).set(value)
        psi = report.prediction_psi
        metrics.PREDICTION_DRIFT_PSI.set(math.nan if psi is None else psi)
        metrics.SCORE_WINDOW_MEAN.set(math.nan if report.score_mean is None else report.score_mean)
        new = report.score_detections - self._detections_seen
        self._detections_seen = report.score_detections
        if new > 0:
            metrics.SCORE_DRIFT_DETECTIONS.inc(new)
