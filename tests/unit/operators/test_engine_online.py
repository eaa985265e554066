"""The online model in the engine: the blend, its failures, and what decisions carry for it.

The champion is a real tiny ensemble; the online model is a stand-in with the
:class:`~operators.scoring.OnlineScorer` surface (``version``, ``feature_names``,
``score``) returning known probabilities, so the blend formula is checked exactly.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.typing import NDArray

from operators._blend import OnlineBlend
from operators.engine import DECISION_FEATURES, DecisionEngine, FeaturedTx
from operators.enrichment import Enrichment
from operators.exceptions import PolicyError, ScoringError
from operators.features import FEATURE_NAMES
from operators.merchant_labels import MERCHANT_LABEL_FEATURES
from operators.rules import RuleSet
from operators.scoring import EnsembleScorer, ScoreBatch
from schemas import Decision, Transaction
from tests.unit.models._synthetic import make_dataset
from tests.unit.models._trained import train_tiny

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
LABELS = len(MERCHANT_LABEL_FEATURES)


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> EnsembleScorer:
    return EnsembleScorer.load(train_tiny(tmp_path_factory.mktemp("online"), "champ-o", seed=3))


class FakeOnline:
    """An online model returning ``0.1 + 0.8 * row / n`` (or failing), recording its input."""

    version = "online-1"

    def __init__(self, feature_names: tuple[str, ...], *, fail: bool = False) -> None:
        self.feature_names = feature_names
        self.fail = fail
        self.seen: list[NDArray[np.float64]] = []

    def score(self, matrix: NDArray[np.float64]) -> NDArray[np.float64]:
        self.seen.append(matrix.copy())
        if self.fail:
            raise ScoringError("online session exploded")
        return expected_online(matrix.shape[0])


def expected_online(rows: int) -> NDArray[np.float64]:
    return 0.1 + 0.8 * np.arange(rows, dtype=np.float64) / rows


class Models:
    def __init__(self, champion: object, online: object) -> None:
        self.champion, self.learned = champion, online

    def current(self) -> object:
        return self.champion

    def online(self) -> object:
        return self.learned


class FixedRules:
    def get(self) -> RuleSet:
        return RuleSet.default()


def _items(count: int, seed: int = 11) -> list[FeaturedTx]:
    data = make_dataset(count, seed=seed)
    out = []
    for i in range(count):
        tx = Transaction(
            tx_id=f"t{i}", user_id=f"u{i}", merchant_id=f"m{i % 4}",
            amount=Decimal(f"{i + 1}.25"), channel="pos", event_time=NOW + timedelta(seconds=i),
        )  # fmt: skip
        features = dict(zip(FEATURE_NAMES, data.features[i].tolist(), strict=True))
        out.append(FeaturedTx(tx=tx, features=features, produced_ms=int(NOW.timestamp() * 1000)))
    return out


def _labels(rows: int) -> NDArray[np.float64]:
    """Merchant label values: distinct per cell, one NaN per row (an undefined share)."""
    values = np.arange(rows * LABELS, dtype=np.float64).reshape(rows, LABELS) / 10.0
    values[:, 1] = np.nan
    return values


def _enrichment(rows: int, labels: NDArray[np.float64] | None = None) -> Enrichment:
    empty = Enrichment.empty(rows)
    return Enrichment(
        merchant_risk=empty.merchant_risk,
        allow=empty.allow,
        deny=empty.deny,
        merchant_labels=_labels(rows) if labels is None else labels,
    )


def _engine(champion: object, online: object, **kw: object) -> DecisionEngine:
    return DecisionEngine(
        FixedRules(), Models(champion, online),  # type: ignore[arg-type]
        clock=lambda: NOW.timestamp() + 60, model_budget_s=5.0, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def _champion_scores(champion: EnsembleScorer, items: list[FeaturedTx]) -> NDArray[np.float64]:
    matrix = np.array([[item.features[name] for name in FEATURE_NAMES] for item in items])
    matrix[:, FEATURE_NAMES.index("merchant_risk")] = np.nan
    return champion.score(matrix).scores


def test_decisions_carry_merchant_amount_and_the_merchant_label_features(champion):
    items = _items(6)
    labels = _labels(6)
    outcome = _engine(champion, None).decide(items, _enrichment(6, labels))
    for row, (item, payload) in enumerate(zip(items, outcome.decisions, strict=True)):
        decision = Decision.model_validate(payload)
        assert decision.merchant_id == item.tx.merchant_id
        assert decision.amount == item.tx.amount
        assert payload["amount"] == f"{row + 1}.25"  # the wire form: an exact decimal string
        assert list(decision.features) == list(DECISION_FEATURES)
        for column, name in enumerate(MERCHANT_LABEL_FEATURES):
            assert decision.features[name] == _wire(labels[row, column])
        for name in FEATURE_NAMES[:-1]:  # merchant_risk comes from (empty) enrichment
            assert decision.features[name] == _wire(item.features[name])


def _wire(value: float) -> float | None:
    return None if math.isnan(value) else value


def test_weight_zero_leaves_the_champion_alone_and_never_runs_the_online_model(champion):
    items = _items(40)
    online = FakeOnline(DECISION_FEATURES)
    alone = _engine(champion, None).decide(items, _enrichment(40))
    outcome = _engine(champion, online, online_weight=0.0).decide(items, _enrichment(40))
    assert online.seen == []
    assert outcome.decisions == alone.decisions
    assert "online" not in outcome.member_scores


@pytest.mark.parametrize("weight", [0.2, 0.5, 1.0])
def test_the_blend_is_the_weighted_mean_of_champion_and_online(champion, weight):
    items = _items(50)
    online = FakeOnline(DECISION_FEATURES)
    outcome = _engine(champion, online, online_weight=weight).decide(items, _enrichment(50))
    c = _champion_scores(champion, items)
    p = expected_online(50)
    expected = (1 - weight) * c + weight * p
    assert [d["score"] for d in outcome.decisions] == pytest.approx(expected.tolist(), abs=1e-12)
    for row, payload in enumerate(outcome.decisions):
        decision = Decision.model_validate(payload)
        assert decision.member_scores["online"] == pytest.approx(p[row], abs=1e-7)
        assert {"xgboost", "logreg"} <= decision.member_scores.keys()
        assert decision.model_version == champion.version
        assert not decision.degraded
    np.testing.assert_allclose(outcome.member_scores["online"], p, atol=1e-7)
    assert outcome.online_error is None


def test_the_online_model_gets_its_columns_by_name_and_nan_for_unknown_ones(champion):
    names = ("merchant_known_fraud_share_28d", "user_count_1h", "not_computed_here", "amount")
    online = FakeOnline(names)
    items = _items(5)
    labels = _labels(5)
    _engine(champion, online, online_weight=0.3).decide(items, _enrichment(5, labels))
    [seen] = online.seen
    assert seen.shape == (5, 4)
    share = MERCHANT_LABEL_FEATURES.index("merchant_known_fraud_share_28d")
    np.testing.assert_array_equal(seen[:, 0], labels[:, share])
    np.testing.assert_array_equal(seen[:, 1], [item.features["user_count_1h"] for item in items])
    assert np.isnan(seen[:, 2]).all()
    np.testing.assert_array_equal(seen[:, 3], [item.features["amount"] for item in items])


def test_an_online_failure_leaves_the_champion_score_and_does_not_degrade(champion):
    items = _items(30)
    alone = _engine(champion, None).decide(items, _enrichment(30))
    outcome = _engine(champion, FakeOnline(DECISION_FEATURES, fail=True), online_weight=0.5).decide(
        items, _enrichment(30)
    )
    assert outcome.decisions == alone.decisions
    assert outcome.online_error is not None and "online session exploded" in outcome.online_error
    assert not any(d["degraded"] for d in outcome.decisions)


def test_without_a_champion_the_online_model_does_not_decide(champion):
    online = FakeOnline(DECISION_FEATURES)
    items = [*_items(3)]
    outcome = _engine(None, online, online_weight=0.9).decide(items, _enrichment(3))
    assert online.seen == []
    for payload in outcome.decisions:
        assert payload["score"] is None and payload["member_scores"] == {}
        assert payload["degraded_cause"] == "no_model"


def test_an_online_weight_outside_zero_to_one_is_refused(champion):
    with pytest.raises(PolicyError, match="online_weight"):
        _engine(champion, None, online_weight=1.5)


@given(
    st.lists(
        st.tuples(
            st.floats(0, 1),
            st.one_of(st.floats(0, 1), st.just(math.nan)),
        ),
        min_size=1,
        max_size=20,
    ),
    st.floats(0, 1),
)
def test_a_blended_score_lies_between_the_two_models(rows, weight):
    champion = np.array([c for c, _ in rows])
    online = np.array([p for _, p in rows])

    class Fixed:
        version, feature_names = "fixed", ("amount",)

        def score(self, _matrix: object) -> NDArray[np.float64]:
            return online

    scored = ScoreBatch(champion, {}, "v")
    blended, error = OnlineBlend(weight, FEATURE_NAMES).apply(
        Fixed(),  # type: ignore[arg-type]
        scored,
        np.zeros((len(rows), len(FEATURE_NAMES))),
    )
    assert error is None
    for c, p, score in zip(champion, online, blended.scores, strict=True):
        if math.isnan(p):
            assert score == c  # nothing to blend with: the champion's score stands
        else:
            assert min(c, p) - 1e-12 <= score <= max(c, p) + 1e-12
            assert 0.0 <= score <= 1.0
