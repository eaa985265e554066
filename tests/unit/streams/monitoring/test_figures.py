from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import orjson

from streams.monitoring import MetricsView, figures
from streams.monitoring._figures import Drift, Feedback, Quantiles
from tests.unit.streams.monitoring._registries import (
    FakeFeedback,
    FakeScorer,
    reading,
    scrape_at,
)

TOP_LEVEL = [
    "at",
    "interval_s",
    "endpoints",
    "throughput",
    "totals",
    "shares",
    "latency_ms",
    "latency_ms_all",
    "decision_mix",
    "rule_hits",
    "drift",
    "models",
    "lag",
    "feedback",
]


def _view() -> MetricsView:
    scorer, feedback = FakeScorer(), FakeFeedback()
    scorer.decisions.labels("APPROVE").inc(9)
    scorer.latency.observe(0.004)
    scorer.rule_hits.labels("velocity").inc(2)
    scorer.model_info.labels("v1", "champion").set(1)
    scorer.lag.labels("scorer", "transactions", "0").set(4)
    feedback.quality.labels("auc").set(math.nan)
    before = scrape_at(0.0, reading("http://s/metrics", scorer), reading("http://f/metrics", None))
    scorer.decisions.labels("APPROVE").inc(1)
    return figures(
        before,
        scrape_at(1.0, reading("http://s/metrics", scorer), reading("http://f/metrics", feedback)),
    )


def test_the_json_document_has_the_documented_shape() -> None:
    document = json.loads(orjson.dumps(_view().to_json()))

    assert list(document) == TOP_LEVEL
    assert document["at"] == "2026-01-01T00:00:01.000+00:00"
    assert document["endpoints"] == [
        {"url": "http://s/metrics", "service": "scorer", "up": True, "error": None},
        {"url": "http://f/metrics", "service": "feedback", "up": True, "error": None},
    ]
    assert document["throughput"]["decisions_per_s"] == 1.0
    assert document["throughput"]["dlq_per_s"] == 0.0
    assert {"decided", "dlq", "degraded", "decisions", "dlq_by_reason", "degraded_by_cause"} <= set(
        document["totals"]
    )
    assert document["totals"]["decisions"] == {"APPROVE": 10}
    assert set(document["shares"]) >= {"dlq", "degraded"}
    assert set(document["latency_ms"]) >= {"p50", "p95", "p99"}
    assert document["latency_ms"]["p50"] is None  # no decision was timed in the interval
    assert 3.0 < document["latency_ms_all"]["p50"] <= 5.0
    assert document["decision_mix"] == {"APPROVE": 1.0}
    assert document["rule_hits"] == {"velocity": 2}
    assert set(document["drift"]) >= {
        "prediction_psi",
        "features",
        "null_excess",
        "out_of_range",
        "window_rows",
        "score_drift_detections",
    }
    assert document["models"] == {"champion": "v1"}
    assert document["lag"]["total"] == 4
    assert document["lag"]["by_partition"] == {"scorer/transactions/0": 4}
    assert set(document["feedback"]) >= {
        "labels",
        "applied",
        "parked",
        "online_quality",
        "publishes",
        "retrain_runs",
        "drift_retrain_triggers",
    }
    assert document["feedback"]["online_quality"] == {"auc": None}


def test_every_non_finite_number_becomes_null_at_any_depth() -> None:
    view = MetricsView(
        at=datetime(2026, 1, 1, tzinfo=UTC),
        interval_s=math.nan,
        latency_ms=Quantiles(p50=math.inf),
        drift=Drift(prediction_psi=math.nan, features={"amount": math.nan}),
        feedback=Feedback(online_quality={"auc": -math.inf}),
    )

    document = view.to_json()

    assert document["interval_s"] is None
    assert document["latency_ms"]["p50"] is None
    assert document["drift"]["prediction_psi"] is None
    assert document["drift"]["features"] == {"amount": None}
    assert document["feedback"]["online_quality"] == {"auc": None}
    assert b"NaN" not in json.dumps(document).encode()
    assert not view.any_up
