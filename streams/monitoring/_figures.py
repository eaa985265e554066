"""The figures the tail shows, as plain typed values: one object feeds the JSON and the panels.

Keeping the figures apart from how they are computed (``_panels``) and drawn (``_view``)
lets the demo print the same panels from a snapshot, and lets scripts read ``--once --json``
with the exact names the panels use. Undefined figures (no observations, a zero
denominator, a NaN gauge) are None in Python and null in JSON, never NaN.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "LATENCY_BUDGET_MS",
    "Drift",
    "EndpointStatus",
    "Feedback",
    "Lag",
    "MetricsView",
    "Quantiles",
    "Shares",
    "Throughput",
    "Totals",
]

#: The decision latency budget (issue 7: p95 above 50 ms for 5 minutes alerts).
LATENCY_BUDGET_MS = 50.0


@dataclass(frozen=True)
class EndpointStatus:
    """One endpoint as of the latest scrape; ``error`` says why it is down."""

    url: str
    service: str
    up: bool
    error: str | None = None


@dataclass(frozen=True)
class Throughput:
    """Per-second rates over the interval between the two scrapes (all scorer processes)."""

    decisions_per_s: float = 0.0
    dlq_per_s: float = 0.0
    degraded_per_s: float = 0.0
    by_decision: dict[str, float] = field(default_factory=dict)
    dlq_by_reason: dict[str, float] = field(default_factory=dict)
    degraded_by_cause: dict[str, float] = field(default_factory=dict)
    rule_hits_per_s: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Totals:
    """Counts since the processes started, summed over the scorer processes up now."""

    decided: int = 0
    dlq: int = 0
    degraded: int = 0
    decisions: dict[str, int] = field(default_factory=dict)
    dlq_by_reason: dict[str, int] = field(default_factory=dict)
    degraded_by_cause: dict[str, int] = field(default_factory=dict)
    late_events: int = 0
    rule_reload_failures: int = 0
    online_model_errors: int = 0
    shadow_errors: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Shares:
    """DLQ share dlq / (decided + dlq) and degraded share degraded / decided.

    ``dlq`` and ``degraded`` are since start; ``*_interval`` over the last interval;
    ``dlq_by_reason`` and ``degraded_by_cause`` split the since-start shares.
    """

    dlq: float | None = None
    degraded: float | None = None
    dlq_interval: float | None = None
    degraded_interval: float | None = None
    dlq_by_reason: dict[str, float] = field(default_factory=dict)
    degraded_by_cause: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Quantiles:
    """Latency quantiles in milliseconds (None without observations).

    ``observations`` is how many decisions they are computed from; ``over_budget`` the
    share of them slower than the 50 ms budget.
    """

    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    observations: int = 0
    over_budget: float | None = None


@dataclass(frozen=True)
class Drift:
    """Drift of the live traffic against the champion's reference, over scorer processes.

    Gauges are per process (each sees its share of users), so they are combined with max;
    ``window_rows`` is the sum of the processes' drift windows, ``score_drift_detections``
    the summed ADWIN detections and ``score_window_mean`` the mean of ADWIN's mean score.
    ``features``, ``null_excess`` (live null ratio minus the reference's, only above it) and
    ``out_of_range`` (only above zero) keep the ten largest values, largest first.
    """

    prediction_psi: float | None = None
    features: dict[str, float] = field(default_factory=dict)
    null_excess: dict[str, float] = field(default_factory=dict)
    out_of_range: dict[str, float] = field(default_factory=dict)
    window_rows: int | None = None
    score_drift_detections: int = 0
    score_window_mean: float | None = None


@dataclass(frozen=True)
class Lag:
    """Consumer lag in messages, by ``consumer/topic/partition`` and in total.

    ``change`` is the total now minus at the previous scrape, over endpoints up at both
    (positive: falling behind).
    """

    total: int = 0
    by_partition: dict[str, int] = field(default_factory=dict)
    change: int | None = None


@dataclass(frozen=True)
class Feedback:
    """The feedback service: labels received and applied, the online model, retrains."""

    labels: dict[str, int] = field(default_factory=dict)
    applied: dict[str, int] = field(default_factory=dict)
    parked: int = 0
    online_quality: dict[str, float | None] = field(default_factory=dict)
    publishes: dict[str, int] = field(default_factory=dict)
    retrain_runs: dict[str, int] = field(default_factory=dict)
    drift_retrain_triggers: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    labels_per_s: float = 0.0


@dataclass(frozen=True)
class MetricsView:
    """Every figure of the tail at one moment, computed from two scrapes.

    ``models`` maps a role (champion, challenger, online) to the version serving it, or,
    while scorer processes disagree (mid-rollout), to an object ``url -> version``.
    ``decision_mix`` is each decision's share of all decisions since start; ``rule_hits``
    the hits per rule since start, largest first.
    """

    at: datetime
    interval_s: float
    endpoints: tuple[EndpointStatus, ...] = ()
    throughput: Throughput = field(default_factory=Throughput)
    totals: Totals = field(default_factory=Totals)
    shares: Shares = field(default_factory=Shares)
    latency_ms: Quantiles = field(default_factory=Quantiles)
    latency_ms_all: Quantiles = field(default_factory=Quantiles)
    decision_mix: dict[str, float] = field(default_factory=dict)
    rule_hits: dict[str, int] = field(default_factory=dict)
    drift: Drift = field(default_factory=Drift)
    models: dict[str, str | dict[str, str]] = field(default_factory=dict)
    lag: Lag = field(default_factory=Lag)
    feedback: Feedback = field(default_factory=Feedback)

    @property
    def any_up(self) -> bool:
        """Whether at least one endpoint answered the latest scrape."""
        return any(endpoint.up for endpoint in self.endpoints)

    def to_json(self) -> dict[str, Any]:
        """The figures as JSON-ready data: ISO UTC time, NaN and infinities as None."""
        document = asdict(self)
        document["at"] = self.at.isoformat(timespec="milliseconds")
        cleaned: dict[str, Any] = _finite(document)
        return cleaned


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float, at any depth, replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
