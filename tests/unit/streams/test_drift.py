"""A scorer process's drift: fed by the engine's batches, published as gauges and a summary."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from prometheus_client import REGISTRY

from models.candidate import updated_manifest, validation_mask
from models.ensemble import XGBoostMember, train_ensemble
from models.manifest import write_manifest
from models.reference import reference_distributions
from operators.engine import BatchOutcome, DecisionEngine, FeaturedTx
from operators.enrichment import Enrichment
from operators.features import FEATURE_NAMES
from operators.rules import RuleSet
from operators.scoring import EnsembleScorer
from schemas import Transaction
from streams.drift import DriftStatus, ScorerDrift
from streams.settings import Settings
from tests.doubles import FakeClock, RecordingDriftSink
from tests.unit.models._synthetic import Dataset, make_dataset

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
SHIFTED = "amount"


@pytest.fixture(scope="module")
def data() -> Dataset:
    return make_dataset(8_000, seed=11)


@pytest.fixture(scope="module")
def scorer(data: Dataset, tmp_path_factory: pytest.TempPathFactory) -> EnsembleScorer:
    out = tmp_path_factory.mktemp("drift-model")
    manifest = train_ensemble(
        data.features, data.labels, data.event_times, FEATURE_NAMES, out,
        members=[XGBoostMember(n_jobs=1, n_estimators=20), "logreg"],
    )  # fmt: skip
    rows = validation_mask(data.event_times, manifest)  # what the registry's trainer stores
    scores = EnsembleScorer.load(out).score(data.features[rows]).scores
    reference = reference_distributions(data.features[rows], FEATURE_NAMES, scores)
    write_manifest(updated_manifest(manifest, reference=reference), out)
    return EnsembleScorer.load(out)


class _Fixed:
    def __init__(self, value: object) -> None:
        self.value = value

    def current(self) -> object:
        return self.value

    def get(self) -> object:
        return self.value


def _batch(rows: np.ndarray, start: int) -> list[FeaturedTx]:
    items = []
    for i, row in enumerate(rows):
        tx = Transaction(
            tx_id=f"t{start + i}", user_id=f"u{i % 50}", merchant_id="m1",
            amount=Decimal("12.50"), event_time=NOW + timedelta(seconds=i),
        )  # fmt: skip
        values = dict(zip(FEATURE_NAMES, row.tolist(), strict=True))
        items.append(FeaturedTx(tx=tx, features=values, produced_ms=0))
    return items


def _decide(scorer: EnsembleScorer, rows: np.ndarray, start: int = 0) -> BatchOutcome:
    engine = DecisionEngine(
        _Fixed(RuleSet.default()), _Fixed(scorer),  # type: ignore[arg-type]
        clock=lambda: NOW.timestamp(),
    )  # fmt: skip
    items = _batch(rows, start)
    risk = np.asarray([item.features["merchant_risk"] for item in items], dtype=np.float64)
    enrichment = Enrichment(risk, np.zeros(len(items), bool), np.zeros(len(items), bool))
    return engine.decide(items, enrichment)


def _gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_gauges_and_summary_show_a_shifted_feature_and_not_the_others(
    scorer: EnsembleScorer, data: Dataset
) -> None:
    sink = RecordingDriftSink()
    drift = ScorerDrift(Settings(drift_min_rows=1000), clock=FakeClock(), reporter="host-1")
    rows = data.features[-3000:].copy()
    column = FEATURE_NAMES.index(SHIFTED)
    rows[:, column] = rows[:, column] * 20 + 500

    drift.observe(_decide(scorer, rows[:500]))
    early = drift.publish(sink)  # too few rows: no figures, no summary
    drift.observe(_decide(scorer, rows[500:1500], 500))
    drift.observe(_decide(scorer, rows[1500:], 1500))
    report = drift.publish(sink)

    assert early is None and report is not None and report.rows == 3000
    assert _gauge("fraud_drift_window_rows") == 3000
    assert _gauge("fraud_feature_drift_psi", feature=SHIFTED) == report.feature_psi[SHIFTED] > 0.25
    calm = [name for name in FEATURE_NAMES if name != SHIFTED]
    assert max(report.feature_psi[name] for name in calm) < 0.25
    assert _gauge("fraud_feature_out_of_range_ratio", feature=SHIFTED) == pytest.approx(
        report.out_of_range_ratio[SHIFTED]
    )
    assert report.out_of_range_ratio[SHIFTED] > 0.5
    assert _gauge("fraud_prediction_drift_psi") == report.prediction_psi
    assert [w[0] for w in sink.written] == ["host-1"]  # one report had enough rows
    status = DriftStatus.from_json(sink.written[0][1])
    assert status.model_version == scorer.version
    assert status.max_feature_psi == max(report.feature_psi.values())
    assert status.prediction_psi == report.prediction_psi


def test_the_side_thread_publishes_without_traffic(scorer: EnsembleScorer, data: Dataset) -> None:
    sink = RecordingDriftSink()
    drift = ScorerDrift(Settings(drift_min_rows=100, drift_report_interval_s=0.05))
    drift.observe(_decide(scorer, data.features[:200]))

    drift.start(sink)
    deadline = time.monotonic() + 10
    while not sink.written and time.monotonic() < deadline:
        time.sleep(0.05)
    drift.stop()

    assert sink.written and DriftStatus.from_json(sink.written[0][1]).rows == 200


def test_a_rules_only_batch_is_not_counted(scorer: EnsembleScorer, data: Dataset) -> None:
    drift = ScorerDrift(Settings(drift_min_rows=1), clock=FakeClock())
    outcome = _decide(scorer, data.features[:10])
    outcome.champion = None  # as when no model is loaded

    drift.observe(outcome)

    assert drift.monitor.window_rows() == 0
    assert drift.publish(RecordingDriftSink()) is None


@pytest.mark.parametrize(
    "raw",
    [b"[]", b"{}", b'{"reporter": "a", "model_version": "v", "rows": 1, "at": 1, '
     b'"prediction_psi": "high"}', b"not json"],
)  # fmt: skip
def test_a_malformed_summary_is_refused(raw: bytes) -> None:
    with pytest.raises((ValueError, TypeError, KeyError)):
        DriftStatus.from_json(raw)
