from __future__ import annotations

import math

import pytest

from streams.monitoring import figures
from tests.unit.streams.monitoring._registries import (
    FakeFeedback,
    FakeScorer,
    reading,
    scrape_at,
)

A, B, F = "http://a/metrics", "http://b/metrics", "http://f/metrics"


def _decide(scorer: FakeScorer, approve: int, block: int = 0, latency_s: float = 0.004) -> None:
    scorer.decisions.labels("APPROVE").inc(approve)
    if block:
        scorer.decisions.labels("BLOCK").inc(block)
    for _ in range(approve + block):
        scorer.latency.observe(latency_s)


def test_counters_are_summed_over_scorer_processes_and_rates_come_from_the_interval() -> None:
    a, b = FakeScorer(), FakeScorer()
    _decide(a, 100)
    _decide(b, 40, block=10)
    before = scrape_at(0.0, reading(A, a, "scorer"), reading(B, b, "scorer"))
    _decide(a, 200)
    _decide(b, 90, block=10)
    view = figures(before, scrape_at(2.0, reading(A, a, "scorer"), reading(B, b, "scorer")))

    assert view.interval_s == 2.0
    assert view.totals.decided == 450
    assert view.totals.decisions == {"APPROVE": 430, "BLOCK": 20}
    assert view.throughput.decisions_per_s == pytest.approx(150.0)
    assert view.throughput.by_decision == {"APPROVE": 145.0, "BLOCK": 5.0}
    assert view.decision_mix["BLOCK"] == pytest.approx(20 / 450)
    assert view.latency_ms.observations == 300
    assert view.latency_ms_all.observations == 450


def test_a_restarted_process_counts_from_zero_and_never_gives_a_negative_rate() -> None:
    a = FakeScorer()
    _decide(a, 1000)
    a.dlq.labels("schema").inc(30)
    before = scrape_at(0.0, reading(A, a, "scorer"))
    restarted = FakeScorer()
    _decide(restarted, 50)
    restarted.dlq.labels("schema").inc(2)

    view = figures(before, scrape_at(1.0, reading(A, restarted, "scorer")))

    assert view.throughput.decisions_per_s == pytest.approx(50.0)
    assert view.throughput.dlq_per_s == pytest.approx(2.0)
    assert view.latency_ms.observations == 50
    assert view.totals.decided == 50


def test_a_new_label_counts_from_zero_but_an_endpoint_that_was_down_adds_no_rate() -> None:
    a, b = FakeScorer(), FakeScorer()
    _decide(a, 10)
    _decide(b, 10)
    before = scrape_at(0.0, reading(A, a, "scorer"), reading(B, None, "scorer"))
    a.rule_hits.labels("velocity").inc(4)
    _decide(b, 10)

    view = figures(before, scrape_at(1.0, reading(A, a, "scorer"), reading(B, b, "scorer")))

    assert view.throughput.rule_hits_per_s == {"velocity": 4.0}
    assert view.throughput.decisions_per_s == 0.0  # b had no baseline, a decided nothing
    assert view.totals.decided == 30
    assert [e.up for e in view.endpoints] == [True, True]


def test_an_endpoint_that_disappears_is_down_and_nothing_breaks() -> None:
    a, b = FakeScorer(), FakeScorer()
    _decide(a, 10)
    _decide(b, 20)
    before = scrape_at(0.0, reading(A, a, "scorer"), reading(B, b, "scorer"))
    _decide(a, 10)

    view = figures(before, scrape_at(1.0, reading(A, a, "scorer"), reading(B, None, "scorer")))

    assert [(e.url, e.up) for e in view.endpoints] == [(A, True), (B, False)]
    assert view.endpoints[1].error
    assert view.totals.decided == 20
    assert view.throughput.decisions_per_s == pytest.approx(10.0)


def test_interval_latency_follows_the_last_interval_and_all_time_the_whole_run() -> None:
    a = FakeScorer()
    _decide(a, 1000, latency_s=0.0008)
    before = scrape_at(0.0, reading(A, a, "scorer"))
    _decide(a, 100, latency_s=0.08)
    view = figures(before, scrape_at(1.0, reading(A, a, "scorer")))

    assert view.latency_ms.p50 is not None
    assert 75.0 < view.latency_ms.p50 <= 100.0
    assert view.latency_ms.over_budget == pytest.approx(1.0)
    assert view.latency_ms_all.p50 is not None
    assert 0.5 < view.latency_ms_all.p50 <= 1.0
    assert view.latency_ms_all.over_budget == pytest.approx(100 / 1100)


def test_latency_is_none_without_observations_and_rates_are_zero_without_a_baseline() -> None:
    view = figures(None, scrape_at(5.0, reading(A, FakeScorer(), "scorer")))
    assert (view.latency_ms.p50, view.latency_ms.p95, view.latency_ms.p99) == (None, None, None)
    assert view.latency_ms_all.p99 is None
    assert view.shares.dlq is None
    assert view.shares.degraded is None
    assert view.interval_s == 0.0
    assert view.throughput.decisions_per_s == 0.0


def test_dlq_and_degraded_shares_follow_the_alert_definitions() -> None:
    a = FakeScorer()
    _decide(a, 990)
    a.dlq.labels("schema").inc(6)
    a.dlq.labels("json").inc(4)
    a.degraded.labels("redis_timeout").inc(99)

    view = figures(None, scrape_at(0.0, reading(A, a, "scorer")))

    assert view.shares.dlq == pytest.approx(10 / 1000)
    assert view.shares.dlq_by_reason == pytest.approx({"schema": 0.006, "json": 0.004})
    assert view.shares.degraded == pytest.approx(0.1)
    assert view.totals.dlq_by_reason == {"schema": 6, "json": 4}
    assert view.totals.degraded_by_cause == {"redis_timeout": 99}


def test_drift_takes_the_max_over_processes_and_keeps_the_top_ten() -> None:
    a, b = FakeScorer(), FakeScorer()
    a.prediction_psi.set(0.05)
    b.prediction_psi.set(0.3)
    for i in range(12):
        a.feature_psi.labels(f"f{i:02d}").set(i / 100)
        b.feature_psi.labels(f"f{i:02d}").set(0.0)
    b.feature_psi.labels("f00").set(0.9)
    a.null_ratio.labels("since_last").set(0.40)
    a.reference_null.labels("since_last").set(0.30)
    a.null_ratio.labels("amount").set(0.0)
    a.reference_null.labels("amount").set(0.0)
    b.out_of_range.labels("amount").set(0.02)
    a.window_rows.set(1000)
    b.window_rows.set(500)
    b.detections.inc(2)

    drift = figures(None, scrape_at(0.0, reading(A, a), reading(B, b))).drift

    assert drift.prediction_psi == pytest.approx(0.3)
    assert len(drift.features) == 10
    assert next(iter(drift.features)) == "f00"  # largest first
    assert drift.features["f00"] == pytest.approx(0.9)
    assert "f01" not in drift.features  # 0.01, the smallest, is dropped
    assert drift.null_excess == {"since_last": pytest.approx(0.1)}
    assert drift.out_of_range == {"amount": pytest.approx(0.02)}
    assert drift.window_rows == 1500
    assert drift.score_drift_detections == 2


def test_drift_is_undefined_while_the_drift_window_is_empty() -> None:
    empty, filling = FakeScorer(), FakeScorer()
    filling.prediction_psi.set(float("nan"))  # too few rows for a PSI yet
    filling.window_rows.set(10)
    filling.score_mean.set(0.4)

    drift = figures(None, scrape_at(0.0, reading(A, empty), reading(B, filling))).drift

    assert drift.prediction_psi is None  # not the 0 an unset gauge reads
    assert drift.features == {}
    assert drift.score_window_mean == pytest.approx(0.4)  # the empty window's 0 is left out
    assert drift.window_rows == 10


def test_models_are_one_version_per_role_unless_processes_disagree() -> None:
    a, b = FakeScorer(), FakeScorer()
    a.model_info.labels("v2", "champion").set(1)
    b.model_info.labels("v2", "champion").set(1)
    a.model_info.labels("c1", "challenger").set(1)
    b.model_info.labels("c0", "challenger").set(1)
    b.model_info.labels("old", "online").set(0)

    models = figures(None, scrape_at(0.0, reading(A, a), reading(B, b))).models

    assert models == {"challenger": {A: "c1", B: "c0"}, "champion": "v2"}


def test_lag_is_summed_per_partition_with_its_change_since_the_last_scrape() -> None:
    a, feedback = FakeScorer(), FakeFeedback()
    a.lag.labels("scorer", "transactions", "10").set(5)
    a.lag.labels("scorer", "transactions", "2").set(7)
    feedback.lag.labels("feedback", "labels", "0").set(3)
    before = scrape_at(0.0, reading(A, a), reading(F, feedback))
    a.lag.labels("scorer", "transactions", "2").set(27)

    lag = figures(before, scrape_at(1.0, reading(A, a), reading(F, feedback))).lag

    assert lag.total == 35
    assert list(lag.by_partition) == [
        "feedback/labels/0",
        "scorer/transactions/2",
        "scorer/transactions/10",
    ]
    assert lag.change == 20


def test_feedback_figures_come_from_the_feedback_service_and_nan_quality_is_none() -> None:
    a, feedback = FakeScorer(), FakeFeedback()
    _decide(a, 10)
    feedback.labels.labels("legit").inc(90)
    feedback.labels.labels("fraud").inc(10)
    feedback.applied.labels("new").inc(95)
    feedback.applied.labels("corrected").inc(1)
    feedback.parked.set(4)
    feedback.quality.labels("auc").set(0.9)
    feedback.quality.labels("logloss").set(math.nan)
    feedback.publishes.labels("published").inc(3)
    feedback.retrains.labels("challenger").inc()
    feedback.triggers.inc()
    before = scrape_at(0.0, reading(A, a), reading(F, feedback))
    feedback.labels.labels("legit").inc(8)

    view = figures(before, scrape_at(2.0, reading(A, a), reading(F, feedback)))

    assert [e.service for e in view.endpoints] == ["scorer", "feedback"]
    fb = view.feedback
    assert fb.labels == {"legit": 98, "fraud": 10}
    assert fb.applied == {"new": 95, "corrected": 1}
    assert fb.parked == 4
    assert fb.online_quality == {"auc": 0.9, "logloss": None}
    assert fb.publishes == {"published": 3}
    assert fb.retrain_runs == {"challenger": 1}
    assert fb.drift_retrain_triggers == 1
    assert fb.labels_per_s == pytest.approx(4.0)
    # The feedback service's empty latency histogram is not a scorer's.
    assert view.totals.decided == 10
    assert view.latency_ms_all.observations == 10
