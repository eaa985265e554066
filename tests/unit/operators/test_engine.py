"""The decision engine: one batch in, one valid Decision per row out, degraded not down."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from models.ensemble import XGBoostMember, train_ensemble
from operators.engine import DECISION_FEATURES, DecisionEngine, FeaturedTx
from operators.enrichment import Enrichment
from operators.exceptions import ScoringError
from operators.features import FEATURE_NAMES
from operators.rules import RuleSet
from operators.scoring import EnsembleScorer
from schemas import Decision, Transaction
from tests.unit.models._synthetic import make_dataset

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def scorer(tmp_path_factory: pytest.TempPathFactory) -> EnsembleScorer:
    data = make_dataset(5_000, seed=3)
    out = tmp_path_factory.mktemp("engine-model")
    train_ensemble(
        data.features, data.labels, data.event_times, FEATURE_NAMES, out,
        members=[XGBoostMember(n_jobs=1, n_estimators=20), "logreg"],
    )  # fmt: skip
    return EnsembleScorer.load(out)


class FixedModel:
    def __init__(self, model: object) -> None:
        self.model = model

    def current(self) -> object:
        return self.model


class FixedRules:
    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules

    def get(self) -> RuleSet:
        return self.rules


class FailingScorer:
    """Stands in for an ONNX session that throws (corrupt model, bad input)."""

    def __init__(self, real: EnsembleScorer) -> None:
        self.thresholds = real.thresholds

    def score(self, _matrix: object) -> object:
        raise ScoringError("onnxruntime exploded")


class SlowScorer(FailingScorer):
    def score(self, _matrix: object) -> object:
        time.sleep(0.2)
        raise AssertionError("should have been abandoned")


def _item(i: int, **features: float) -> FeaturedTx:
    tx = Transaction(
        tx_id=f"t{i}", user_id=f"u{i % 3}", merchant_id="m1", amount=Decimal("12.50"),
        channel="atm" if i == 0 else "pos", event_time=NOW + timedelta(seconds=i),
    )  # fmt: skip
    values = dict.fromkeys(FEATURE_NAMES, 1.0) | features
    produced = int((NOW + timedelta(seconds=i)).timestamp() * 1000)
    return FeaturedTx(tx=tx, features=values, produced_ms=produced)


def _engine(model: object, **kw: object) -> DecisionEngine:
    return DecisionEngine(
        FixedRules(RuleSet.default()), FixedModel(model),  # type: ignore[arg-type]
        clock=lambda: NOW.timestamp() + 60, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def test_every_row_gets_a_valid_decision_with_scores_and_features(scorer: EnsembleScorer):
    items = [_item(i) for i in range(20)]
    outcome = _engine(scorer).decide(items, Enrichment.empty(20))
    assert len(outcome.decisions) == 20
    for item, payload in zip(items, outcome.decisions, strict=True):
        decision = Decision.model_validate(payload)
        assert decision.tx_id == item.tx.tx_id
        assert decision.model_version == scorer.version
        assert decision.score is not None
        assert set(decision.member_scores) == {"xgboost", "logreg"}
        assert list(decision.features) == list(DECISION_FEATURES)
        assert (decision.merchant_id, decision.amount) == ("m1", Decimal("12.50"))
        assert not decision.degraded
        assert decision.latency_ms == pytest.approx(60_000 - int(item.tx.tx_id[1:]) * 1000)


def test_rules_fire_and_their_reasons_lead(scorer: EnsembleScorer):
    burst = _item(1, user_count_1m=9.0)
    outcome = _engine(scorer).decide([burst], Enrichment.empty(1))
    decision = Decision.model_validate(outcome.decisions[0])
    assert "velocity_burst_1m" in {hit.id for hit in decision.rules_fired}
    assert decision.reasons[0] == "VELOCITY_BURST"
    assert decision.decision in {"REVIEW", "BLOCK"}
    assert outcome.rule_counts["velocity_burst_1m"] == 1


def test_deny_list_blocks_whatever_the_score(scorer: EnsembleScorer):
    enrichment = Enrichment(
        merchant_risk=np.array([np.nan]), allow=np.array([False]), deny=np.array([True])
    )
    decision = _engine(scorer).decide([_item(1)], enrichment).decisions[0]
    assert decision["decision"] == "BLOCK"
    assert "DENY_LIST" in decision["reasons"]


def test_merchant_risk_from_enrichment_is_the_scored_feature(scorer: EnsembleScorer):
    enrichment = Enrichment(
        merchant_risk=np.array([0.42]), allow=np.array([False]), deny=np.array([False])
    )
    decision = _engine(scorer).decide([_item(1)], enrichment).decisions[0]
    assert decision["features"]["merchant_risk"] == pytest.approx(0.42)


@pytest.mark.parametrize(
    ("model_kind", "cause"),
    [("none", "no_model"), ("failing", "model_error"), ("slow", "model_timeout")],
)
def test_model_trouble_decides_by_rules_only_and_says_why(scorer, model_kind, cause):
    model = {"none": None, "failing": FailingScorer(scorer), "slow": SlowScorer(scorer)}[model_kind]
    items = [_item(0), _item(1, user_count_1m=9.0)]
    outcome = _engine(model, model_budget_s=0.05).decide(items, Enrichment.empty(2))
    first, burst = (Decision.model_validate(d) for d in outcome.decisions)
    assert first.degraded and first.degraded_cause == cause
    assert first.score is None and first.member_scores == {}
    assert first.decision == "APPROVE"
    assert burst.decision == "REVIEW"  # the rules still decide
    assert outcome.degraded_causes == [cause, cause]


def test_redis_trouble_is_flagged_but_the_model_still_scores(scorer: EnsembleScorer):
    outcome = _engine(scorer).decide([_item(1)], Enrichment.empty(1, "redis_timeout"))
    decision = Decision.model_validate(outcome.decisions[0])
    assert decision.degraded_cause == "redis_timeout"
    assert decision.score is not None


def test_missing_features_are_null_in_the_decision(scorer: EnsembleScorer):
    item = _item(1, user_travel_kmh=float("nan"))
    decision = _engine(scorer).decide([item], Enrichment.empty(1)).decisions[0]
    assert decision["features"]["user_travel_kmh"] is None
    assert decision["features"]["merchant_risk"] is None


def test_a_broken_rules_file_never_stops_decisions(scorer: EnsembleScorer, tmp_path: Path):
    class BrokenRules:
        def get(self) -> RuleSet:
            from operators.exceptions import BatchError

            raise BatchError("column missing")

    engine = DecisionEngine(BrokenRules(), FixedModel(scorer))  # type: ignore[arg-type]
    outcome = engine.decide([_item(1)], Enrichment.empty(1))
    assert outcome.decisions[0]["rules_fired"] == []
    assert outcome.decisions[0]["score"] is not None
