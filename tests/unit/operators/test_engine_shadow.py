"""Champion and challenger in the engine: shadow scores, A/B share, challenger failures."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from operators._shadow import challenger_rows
from operators.engine import DecisionEngine, FeaturedTx
from operators.enrichment import Enrichment
from operators.exceptions import PolicyError, ScoringError
from operators.features import FEATURE_NAMES
from operators.rules import RuleSet
from operators.scoring import EnsembleScorer
from schemas import Decision, Transaction
from tests.unit.models._synthetic import make_dataset
from tests.unit.models._trained import train_tiny

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[EnsembleScorer, EnsembleScorer]:
    root = tmp_path_factory.mktemp("registry")
    champion = EnsembleScorer.load(train_tiny(root, "champion-a", seed=3))
    challenger = EnsembleScorer.load(train_tiny(root, "challenger-b", seed=7))
    return champion, challenger


class Models:
    def __init__(self, champion: object, challenger: object) -> None:
        self.champion, self.on_trial = champion, challenger

    def current(self) -> object:
        return self.champion

    def challenger(self) -> object:
        return self.on_trial


class FixedRules:
    def get(self) -> RuleSet:
        return RuleSet.default()


class BrokenChallenger:
    """A challenger whose ONNX session throws."""

    version = "broken-c"

    def score(self, _matrix: object) -> object:
        raise ScoringError("onnxruntime exploded")


class SlowChallenger(BrokenChallenger):
    version = "slow-c"

    def score(self, _matrix: object) -> object:
        time.sleep(0.3)
        raise AssertionError("should have been abandoned")


def _items(count: int, users: int | None = None, seed: int = 11) -> list[FeaturedTx]:
    """Rows with realistic, varied features (so the two models disagree)."""
    data = make_dataset(count, seed=seed)
    out = []
    for i in range(count):
        tx = Transaction(
            tx_id=f"t{i}", user_id=f"u{i % (users or count)}", merchant_id="m1",
            amount=Decimal("12.50"), channel="pos", event_time=NOW + timedelta(seconds=i),
        )  # fmt: skip
        features = dict(zip(FEATURE_NAMES, data.features[i].tolist(), strict=True))
        out.append(FeaturedTx(tx=tx, features=features, produced_ms=int(NOW.timestamp() * 1000)))
    return out


def _engine(champion: object, challenger: object, **kw: object) -> DecisionEngine:
    return DecisionEngine(
        FixedRules(), Models(champion, challenger),  # type: ignore[arg-type]
        clock=lambda: NOW.timestamp() + 60, model_budget_s=5.0, **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def _matrix(items: list[FeaturedTx]) -> np.ndarray:
    """What the engine scores: the features, with merchant_risk from (empty) enrichment."""
    matrix = np.array([[item.features[name] for name in FEATURE_NAMES] for item in items])
    matrix[:, FEATURE_NAMES.index("merchant_risk")] = np.nan
    return matrix


def test_challenger_scores_every_row_in_shadow_and_the_champion_decides(models):
    champion, challenger = models
    items = _items(200)
    outcome = _engine(champion, challenger).decide(items, Enrichment.empty(200))
    own = challenger.score(_matrix(items))
    decided = champion.score(_matrix(items))
    assert not np.allclose(own.scores, decided.scores)  # the two models do differ
    for row, payload in enumerate(outcome.decisions):
        decision = Decision.model_validate(payload)
        assert decision.model_version == champion.version
        assert decision.score == pytest.approx(decided.scores[row], abs=1e-12)
        assert decision.shadow_scores["challenger"] == pytest.approx(own.scores[row], abs=1e-12)
        for member, values in own.member_scores.items():
            assert decision.shadow_scores[f"challenger:{member}"] == pytest.approx(
                float(values[row]), abs=1e-7
            )
        assert not decision.degraded
    np.testing.assert_allclose(outcome.shadow_scores["challenger"], own.scores)
    assert outcome.shadow_error is None
    assert outcome.challenger_decided == 0


def test_without_a_challenger_there_are_no_shadow_scores(models):
    champion, _ = models
    outcome = _engine(champion, None).decide(_items(5), Enrichment.empty(5))
    assert all(d["shadow_scores"] == {} for d in outcome.decisions)
    assert outcome.shadow_scores == {} and outcome.shadow_error is None


def test_one_version_in_both_roles_is_not_shadowed_against_itself(models):
    champion, _ = models
    outcome = _engine(champion, champion).decide(_items(5), Enrichment.empty(5))
    assert all(d["shadow_scores"] == {} for d in outcome.decisions)


@pytest.mark.parametrize(
    ("challenger_kind", "cause"), [("broken", "shadow_error"), ("slow", "shadow_timeout")]
)
def test_a_failing_challenger_never_changes_the_champions_decisions(models, challenger_kind, cause):
    champion, _ = models
    challenger = {"broken": BrokenChallenger(), "slow": SlowChallenger()}[challenger_kind]
    items = _items(50)
    alone = _engine(champion, None).decide(items, Enrichment.empty(50))
    engine = _engine(champion, challenger, challenger_share=0.5)
    engine._budget_s = 0.1  # the slow challenger must overrun it
    outcome = engine.decide(items, Enrichment.empty(50))
    assert outcome.shadow_error == cause
    assert outcome.challenger_decided == 0  # its A/B share falls back to the champion
    for with_shadow, without in zip(outcome.decisions, alone.decisions, strict=True):
        assert with_shadow["shadow_scores"] == {}
        assert {k: v for k, v in with_shadow.items() if k != "shadow_scores"} == {
            k: v for k, v in without.items() if k != "shadow_scores"
        }
        assert not with_shadow["degraded"]


def test_a_challenger_still_busy_is_skipped_not_queued(models):
    champion, _ = models
    engine = _engine(champion, SlowChallenger())
    engine._budget_s = 0.05
    assert engine.decide(_items(3), Enrichment.empty(3)).shadow_error == "shadow_timeout"
    second = engine.decide(_items(3), Enrichment.empty(3))
    assert second.shadow_error == "shadow_busy"
    assert all(d["model_version"] == champion.version for d in second.decisions)


def test_ab_share_is_decided_by_the_challenger_by_stable_user_hash(models):
    champion, challenger = models
    items = _items(2_000)  # 2,000 distinct users
    outcome = _engine(champion, challenger, challenger_share=0.25).decide(
        items, Enrichment.empty(2_000)
    )
    own = challenger.score(_matrix(items)).scores
    decided = champion.score(_matrix(items)).scores
    by_challenger = [d for d in outcome.decisions if d["model_version"] == challenger.version]
    assert 0.21 < len(by_challenger) / 2_000 < 0.29
    assert outcome.challenger_decided == len(by_challenger)
    for row, payload in enumerate(outcome.decisions):
        decision = Decision.model_validate(payload)
        if decision.model_version == challenger.version:
            assert decision.score == pytest.approx(own[row], abs=1e-12)
            assert decision.shadow_scores["champion"] == pytest.approx(decided[row], abs=1e-12)
            assert "challenger" not in decision.shadow_scores
            assert set(decision.member_scores) == {"xgboost", "logreg"}
        else:
            assert decision.model_version == champion.version
            assert decision.score == pytest.approx(decided[row], abs=1e-12)
            assert decision.shadow_scores["challenger"] == pytest.approx(own[row], abs=1e-12)
    # the challenger's own thresholds decide its rows
    block = challenger.thresholds.block
    for payload in by_challenger:
        if payload["score"] >= block:
            assert payload["decision"] == "BLOCK"


def test_the_split_is_stable_per_user_across_batches(models):
    champion, challenger = models
    engine = _engine(champion, challenger, challenger_share=0.4)
    first = engine.decide(_items(300, users=60), Enrichment.empty(300))
    later = engine.decide(_items(300, users=60, seed=12)[::-1], Enrichment.empty(300))
    deciding: dict[str, set[str]] = {}
    for payload in first.decisions + later.decisions:
        deciding.setdefault(payload["user_id"], set()).add(payload["model_version"])
    assert all(len(versions) == 1 for versions in deciding.values())
    assert {v for versions in deciding.values() for v in versions} == {
        champion.version,
        challenger.version,
    }


def test_the_hash_split_matches_the_configured_share_and_reshuffles_per_challenger():
    users = [f"user-{i}" for i in range(20_000)]
    for share in (0.0, 0.05, 0.5, 1.0):
        chosen = challenger_rows(users, share, "v1")
        assert abs(chosen.mean() - share) < 0.015
    again = challenger_rows(list(reversed(users)), 0.3, "v1")[::-1]
    assert np.array_equal(challenger_rows(users, 0.3, "v1"), again)
    other = challenger_rows(users, 0.3, "v2")
    assert not np.array_equal(challenger_rows(users, 0.3, "v1"), other)


def test_with_no_champion_the_challenger_decides_its_share_and_the_rest_is_rules_only(models):
    _, challenger = models
    outcome = _engine(None, challenger, challenger_share=0.5).decide(
        _items(200), Enrichment.empty(200)
    )
    for payload in outcome.decisions:
        if payload["model_version"] == challenger.version:
            assert not payload["degraded"] and payload["score"] is not None
        else:
            assert payload["degraded_cause"] == "no_model" and payload["score"] is None
            assert payload["shadow_scores"]["challenger"] is not None
    assert 0 < outcome.challenger_decided < 200


def test_a_share_outside_zero_to_one_is_refused(models, tmp_path: Path):
    with pytest.raises(PolicyError, match="challenger_share"):
        _engine(models[0], None, challenger_share=1.5)
