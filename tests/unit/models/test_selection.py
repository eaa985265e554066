"""Weights and thresholds chosen on validation data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from models.ensemble import ThresholdPolicy, choose_thresholds, choose_weights, weighted_mean
from models.exceptions import TrainingError


def precision_at(scores: NDArray[np.float64], labels: NDArray[np.int8], cut: float) -> float:
    flagged = scores >= cut
    return float(labels[flagged].mean())


def ranked_scores(
    rows: int, frauds: int, seed: int = 0
) -> tuple[NDArray[np.float64], NDArray[np.int8]]:
    """Frauds score high with some overlap, so precision falls as the cut goes down."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(rows, dtype=np.int8)
    labels[rng.choice(rows, frauds, replace=False)] = 1
    scores = np.clip(rng.normal(0.2, 0.12, rows) + 0.55 * labels, 0.0, 1.0)
    return scores, labels


def test_weighted_mean_is_the_normalised_sum() -> None:
    members = {"a": np.array([0.2, 0.9], dtype=np.float32), "b": np.array([0.6, 0.1])}

    combined = weighted_mean(members, {"a": 3.0, "b": 1.0})

    np.testing.assert_allclose(combined, [0.75 * 0.2 + 0.25 * 0.6, 0.75 * 0.9 + 0.25 * 0.1])


def test_weights_favour_the_member_that_ranks_frauds_first() -> None:
    rng = np.random.default_rng(3)
    labels = (rng.random(5000) < 0.05).astype(np.int8)
    informative = np.clip(0.3 * rng.random(5000) + 0.7 * labels * rng.random(5000), 0, 1)
    noise = rng.random(5000)

    weights = choose_weights({"good": informative, "noise": noise}, labels)

    assert weights["good"] >= 0.8
    assert sum(weights.values()) == pytest.approx(1.0)
    assert all(round(w * 10) == pytest.approx(w * 10) for w in weights.values())


def test_weights_stay_even_without_both_classes() -> None:
    scores = {"a": np.random.default_rng(0).random(100), "b": np.zeros(100)}
    assert choose_weights(scores, np.zeros(100, dtype=np.int8)) == {"a": 0.5, "b": 0.5}


def test_three_members_get_a_grid_point_on_the_simplex() -> None:
    rng = np.random.default_rng(4)
    labels = (rng.random(2000) < 0.1).astype(np.int8)
    members = {name: rng.random(2000) + labels * rng.random() for name in "abc"}

    weights = choose_weights(members, labels)

    assert set(weights) == {"a", "b", "c"}
    assert sum(weights.values()) == pytest.approx(1.0)


def test_block_is_the_lowest_score_reaching_the_precision_target() -> None:
    scores, labels = ranked_scores(20_000, 400)

    thresholds = choose_thresholds(scores, labels)

    assert precision_at(scores, labels, thresholds.block) >= 0.8
    lower = np.unique(scores[scores < thresholds.block])
    assert all(precision_at(scores, labels, s) < 0.8 for s in lower[-200:])
    assert thresholds.review <= thresholds.block
    assert "block: precision" in thresholds.basis


def test_review_marks_the_budget_share_of_traffic() -> None:
    scores, labels = ranked_scores(20_000, 100)
    policy = ThresholdPolicy(review_share=0.02, min_positives=10_000)  # block: default 0.9

    thresholds = choose_thresholds(scores, labels, policy)

    assert thresholds.review < thresholds.block == 0.9
    assert np.mean(scores >= thresholds.review) == pytest.approx(0.02, abs=1e-4)
    assert thresholds.review_share == 0.02


def test_review_is_capped_at_block() -> None:
    scores, labels = ranked_scores(10_000, 2000)  # frauds are 20 %: the top 1 % is all fraud
    thresholds = choose_thresholds(scores, labels, ThresholdPolicy(target_precision=0.5))
    assert thresholds.review == thresholds.block
    assert "capped" in thresholds.basis


def test_too_few_frauds_fall_back_to_defaults() -> None:
    scores, labels = ranked_scores(5000, 5)

    thresholds = choose_thresholds(scores, labels)

    assert thresholds.block == 0.9
    assert thresholds.review <= thresholds.block
    assert "5 validation frauds" in thresholds.basis


def test_unreachable_precision_falls_back_to_the_default_block() -> None:
    rng = np.random.default_rng(1)
    scores = rng.random(5000)
    labels = (rng.random(5000) < 0.05).astype(np.int8)  # scores carry no signal

    thresholds = choose_thresholds(scores, labels, ThresholdPolicy(target_precision=0.9))

    assert thresholds.block == 0.9
    assert "not reachable" in thresholds.basis


def test_tiny_validation_sets_use_the_default_review() -> None:
    thresholds = choose_thresholds(np.array([0.1, 0.2, 0.9]), np.array([0, 0, 1]))
    assert (thresholds.block, thresholds.review) == (0.9, 0.5)


def test_inconsistent_policy_is_refused() -> None:
    with pytest.raises(TrainingError):
        ThresholdPolicy(default_block=0.4, default_review=0.5)


def test_mismatched_scores_and_labels_are_refused() -> None:
    with pytest.raises(TrainingError):
        choose_thresholds(np.zeros(3), np.zeros(4, dtype=np.int8))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 20), st.booleans()), min_size=1, max_size=300),
    st.floats(0.5, 1.0),
)
def test_threshold_invariants_hold_for_any_validation_set(
    rows: list[tuple[int, bool]], target: float
) -> None:
    scores = np.array([s / 20 for s, _ in rows])  # few distinct values: many ties
    labels = np.array([int(f) for _, f in rows], dtype=np.int8)
    policy = ThresholdPolicy(target_precision=target, min_positives=1, review_share=0.05)

    thresholds = choose_thresholds(scores, labels, policy)

    assert 0.0 <= thresholds.review <= thresholds.block <= 1.0
    if thresholds.basis.startswith("block: precision"):
        assert precision_at(scores, labels, thresholds.block) >= target
        lower = np.unique(scores[scores < thresholds.block])
        assert all(precision_at(scores, labels, s) < target for s in lower)
