"""Panel figures from two scrapes: sums over processes, rates from deltas, quantiles from buckets.

Each scorer process counts only what it handled, so every counter is summed over the
scorer endpoints (what Prometheus' ``sum(...)`` does); drift gauges, which each process
computes on its share of users, are combined with ``max`` (issue 7's contract).

Rates and interval quantiles come from the difference between two scrapes of the same
endpoint, series by series. A counter that went down was reset (the process restarted), so
its whole new value is the increase, as in Prometheus' ``rate``; a series absent at the
first scrape of an endpoint that was up started at zero. An endpoint down at either scrape
adds nothing to the rates of that interval. Quantiles interpolate linearly inside a bucket
like ``histogram_quantile``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence

from streams.monitoring._figures import (
    LATENCY_BUDGET_MS,
    Drift,
    EndpointStatus,
    Feedback,
    Lag,
    MetricsView,
    Quantiles,
    Shares,
    Throughput,
    Totals,
)
from streams.monitoring._scrape import Endpoint, Samples, Scrape, scrape
from streams.monitoring._series import (
    Pair,
    bucket_counts,
    bucket_increase,
    histogram_quantile,
    maxes,
    merged,
    pair_up,
    rates,
    samples_of,
    sums,
)

__all__ = ["figures", "snapshot"]

_DECISIONS = "fraud_transactions_total"
_LATENCY = "fraud_decision_latency_seconds_bucket"
_DLQ = "fraud_dlq_messages_total"
_DEGRADED = "fraud_degraded_decisions_total"
_RULE_HITS = "fraud_rule_hits_total"
_TOP = 10
_ORDER = {"APPROVE": 0, "REVIEW": 1, "BLOCK": 2}


def _quantiles(buckets: Mapping[float, float]) -> Quantiles:
    total = buckets.get(math.inf, 0.0)
    if total <= 0:
        return Quantiles()
    within = buckets.get(LATENCY_BUDGET_MS / 1000)

    def ms(q: float) -> float | None:
        seconds = histogram_quantile(q, buckets)
        return None if seconds is None else seconds * 1000

    return Quantiles(
        p50=ms(0.5),
        p95=ms(0.95),
        p99=ms(0.99),
        observations=round(total),
        over_budget=None if within is None else max(0.0, 1 - within / total),
    )


def _counts(values: Mapping[str, float]) -> dict[str, int]:
    """Rounded counts, largest first (decisions in APPROVE, REVIEW, BLOCK order)."""
    ordered = sorted(values.items(), key=lambda kv: (_ORDER.get(kv[0], 3), -kv[1], kv[0]))
    return {key: round(value) for key, value in ordered}


def _top(values: Mapping[str, float], above: float | None = None) -> dict[str, float]:
    kept = [(k, v) for k, v in values.items() if above is None or v > above]
    return dict(sorted(kept, key=lambda kv: (-kv[1], kv[0]))[:_TOP])


def _share(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 else None


def _drift(readings: Sequence[Samples]) -> Drift:
    # Unlabelled gauges read 0 before they are first set: a process whose drift window is
    # still empty has no drift figure yet (a process without the rows gauge is trusted).
    filled = [
        samples
        for samples in readings
        if sums([samples], "fraud_drift_window_rows").get("", 1.0) > 0
    ]
    excess: dict[str, float] = {}
    for samples in filled:
        reference = sums([samples], "fraud_feature_reference_null_ratio", "feature")
        for feature, live in sums([samples], "fraud_feature_null_ratio", "feature").items():
            gap = live - reference.get(feature, 0.0)
            excess[feature] = max(excess.get(feature, -math.inf), gap)
    rows = sums(readings, "fraud_drift_window_rows").get("")
    means = [
        s.value
        for samples in filled
        for s in samples_of(samples, "fraud_score_drift_window_mean")
        if math.isfinite(s.value)
    ]
    return Drift(
        prediction_psi=maxes(filled, "fraud_prediction_drift_psi").get(""),
        features=_top(maxes(filled, "fraud_feature_drift_psi", "feature")),
        null_excess=_top(excess, above=0.0),
        out_of_range=_top(maxes(filled, "fraud_feature_out_of_range_ratio", "feature"), 0.0),
        window_rows=None if rows is None else round(rows),
        score_drift_detections=round(
            sums(readings, "fraud_score_drift_detections_total").get("", 0.0)
        ),
        score_window_mean=sum(means) / len(means) if means else None,
    )


def _models(pairs: Sequence[Pair]) -> dict[str, str | dict[str, str]]:
    by_role: dict[str, dict[str, str]] = {}
    for pair in pairs:
        serving: dict[str, set[str]] = {}
        for sample in samples_of(pair.after, "fraud_model_info"):
            if sample.value > 0:
                role = sample.labels.get("role", "?")
                serving.setdefault(role, set()).add(sample.labels.get("version", "?"))
        for role, versions in serving.items():
            by_role.setdefault(role, {})[pair.url] = ",".join(sorted(versions))
    return {
        role: next(iter(set(per_url.values()))) if len(set(per_url.values())) == 1 else per_url
        for role, per_url in sorted(by_role.items())
    }


def _lag(pairs: Sequence[Pair]) -> Lag:
    by_partition: dict[str, float] = {}
    for pair in pairs:
        for sample in samples_of(pair.after, "fraud_consumer_lag_messages"):
            if math.isfinite(sample.value):
                labels = sample.labels
                key = "/".join(labels.get(k, "?") for k in ("consumer", "topic", "partition"))
                by_partition[key] = by_partition.get(key, 0.0) + sample.value
    both = [p for p in pairs if p.before is not None and p.after is not None]
    change = None
    if both:
        now = sum(sums([p.after for p in both if p.after], "fraud_consumer_lag_messages").values())
        then = sum(
            sums([p.before for p in both if p.before], "fraud_consumer_lag_messages").values()
        )
        change = round(now - then)
    ordered = sorted(by_partition.items(), key=lambda kv: _partition_order(kv[0]))
    return Lag(
        total=round(sum(by_partition.values())),
        by_partition={key: round(value) for key, value in ordered},
        change=change,
    )


def _partition_order(key: str) -> tuple[str, str, int, str]:
    consumer, topic, partition = [*key.split("/"), "", "", ""][:3]
    return (consumer, topic, int(partition) if partition.isdigit() else -1, partition)


def _feedback(pairs: Sequence[Pair], interval_s: float) -> Feedback:
    readings = [p.after for p in pairs if p.after is not None]
    quality: dict[str, float | None] = {}
    for samples in readings:
        for sample in samples_of(samples, "fraud_online_model_quality"):
            value = sample.value
            quality[sample.labels.get("metric", "?")] = value if math.isfinite(value) else None
    rejected: dict[str, float] = {}
    for samples in readings:
        for sample in samples_of(samples, "fraud_feedback_rejected_records_total"):
            key = f"{sample.labels.get('topic', '?')}/{sample.labels.get('reason', '?')}"
            rejected[key] = rejected.get(key, 0.0) + sample.value
    return Feedback(
        labels=_counts(sums(readings, "fraud_labels_total", "label")),
        applied=_counts(sums(readings, "fraud_feedback_labels_total", "outcome")),
        parked=round(sums(readings, "fraud_feedback_parked_labels").get("", 0.0)),
        online_quality=dict(sorted(quality.items())),
        publishes=_counts(sums(readings, "fraud_online_model_publishes_total", "outcome")),
        retrain_runs=_counts(sums(readings, "fraud_retrain_runs_total", "outcome")),
        drift_retrain_triggers=round(
            sums(readings, "fraud_drift_retrain_triggers_total").get("", 0.0)
        ),
        rejected=_counts(rejected),
        labels_per_s=sum(rates(pairs, "fraud_labels_total", None, interval_s).values()),
    )


def figures(before: Scrape | None, after: Scrape) -> MetricsView:
    """Every panel figure at ``after``; rates and interval latency from ``before`` to it."""
    interval_s = 0.0 if before is None else max(0.0, after.monotonic - before.monotonic)
    pairs = pair_up(before, after)
    scoring = [p for p in pairs if p.service != "feedback"]
    feeding = [p for p in pairs if p.service != "scorer"]
    now = [p.after for p in scoring if p.after is not None]

    decisions = sums(now, _DECISIONS, "decision")
    dlq = sums(now, _DLQ, "reason")
    degraded = sums(now, _DEGRADED, "cause")
    decided, dead, degraded_n = sum(decisions.values()), sum(dlq.values()), sum(degraded.values())
    by_decision = rates(scoring, _DECISIONS, "decision", interval_s)
    dlq_rates = rates(scoring, _DLQ, "reason", interval_s)
    degraded_rates = rates(scoring, _DEGRADED, "cause", interval_s)
    decided_rate, dlq_rate = sum(by_decision.values()), sum(dlq_rates.values())
    degraded_rate = sum(degraded_rates.values())
    hits = sums(now, _RULE_HITS, "rule")
    hit_rates = rates(scoring, _RULE_HITS, "rule", interval_s)
    ranked_hits = sorted(hits.items(), key=lambda kv: (-kv[1], kv[0]))

    return MetricsView(
        at=after.at,
        interval_s=interval_s,
        endpoints=tuple(EndpointStatus(p.url, p.service, p.up, p.error) for p in pairs),
        throughput=Throughput(
            decisions_per_s=decided_rate,
            dlq_per_s=dlq_rate,
            degraded_per_s=degraded_rate,
            by_decision={k: by_decision[k] for k in _counts(by_decision)},
            dlq_by_reason={k: dlq_rates[k] for k in _counts(dlq_rates)},
            degraded_by_cause={k: degraded_rates[k] for k in _counts(degraded_rates)},
            rule_hits_per_s={rule: hit_rates.get(rule, 0.0) for rule, _ in ranked_hits},
        ),
        totals=Totals(
            decided=round(decided),
            dlq=round(dead),
            degraded=round(degraded_n),
            decisions=_counts(decisions),
            dlq_by_reason=_counts(dlq),
            degraded_by_cause=_counts(degraded),
            late_events=round(sums(now, "fraud_late_events_total").get("", 0.0)),
            rule_reload_failures=round(sums(now, "fraud_rule_reload_failures_total").get("", 0.0)),
            online_model_errors=round(sums(now, "fraud_online_model_errors_total").get("", 0.0)),
            shadow_errors=_counts(sums(now, "fraud_shadow_errors_total", "cause")),
        ),
        shares=Shares(
            dlq=_share(dead, decided + dead),
            degraded=_share(degraded_n, decided),
            dlq_interval=_share(dlq_rate, decided_rate + dlq_rate),
            degraded_interval=_share(degraded_rate, decided_rate),
            dlq_by_reason={k: v / (decided + dead) for k, v in _counts(dlq).items() if v},
            degraded_by_cause={k: v / decided for k, v in _counts(degraded).items() if decided},
        ),
        latency_ms=_quantiles(
            merged(bucket_increase(p.before, p.after, _LATENCY) for p in scoring)
        ),
        latency_ms_all=_quantiles(merged(bucket_counts(samples, _LATENCY) for samples in now)),
        decision_mix={k: v / decided for k, v in _counts(decisions).items() if decided},
        rule_hits={rule: round(count) for rule, count in ranked_hits},
        drift=_drift(now),
        models=_models(scoring),
        lag=_lag(pairs),
        feedback=_feedback(feeding, interval_s),
    )


def snapshot(
    endpoints: Sequence[Endpoint], interval_s: float = 1.0, timeout_s: float = 0.5
) -> MetricsView:
    """Scrape ``endpoints`` twice, ``interval_s`` apart, and compute every figure."""
    before = scrape(endpoints, timeout_s)
    time.sleep(max(0.0, interval_s))
    return figures(before, scrape(endpoints, timeout_s))
