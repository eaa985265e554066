"""Card Precision@k on a hand-computed case, operating points, and the metric bundle."""

from __future__ import annotations

import numpy as np
import pytest

from models.evaluation import card_precision_at_k, evaluate, operating_point
from models.exceptions import EvaluationError
from models.manifest import Thresholds

# Two days. Day 1, per customer (max score, any fraud): A (0.9, yes: its 0.2 row is
# fraud), B (0.8, no), C (0.7, yes), D (0.1, yes). Day 2: E (0.95, yes), F (0.5, yes),
# A (0.3, no).
SCORES = np.array([0.9, 0.2, 0.8, 0.7, 0.1, 0.3, 0.95, 0.5])
LABELS = np.array([0, 1, 0, 1, 1, 0, 1, 1])
USERS = np.array(["A", "A", "B", "C", "D", "A", "E", "F"], dtype=object)
DAYS = np.array(["2026-01-01"] * 5 + ["2026-01-02"] * 3, dtype="datetime64[D]")


def test_card_precision_at_2_by_hand() -> None:
    # Day 1 top 2: A (fraud), B (legit) -> 1/2. Day 2 top 2: E, F (both fraud) -> 2/2.
    assert card_precision_at_k(SCORES, LABELS, USERS, DAYS, k=2) == pytest.approx(0.75)


def test_card_precision_at_100_divides_by_k_even_on_small_days() -> None:
    # Day 1: A, C, D compromised among 4 customers -> 3/100; day 2: E, F -> 2/100.
    assert card_precision_at_k(SCORES, LABELS, USERS, DAYS) == pytest.approx(0.025)


def test_a_customer_counts_once_per_day_with_the_max_score() -> None:
    # Three rows of one customer at the top must not fill the top 2 alone.
    scores = np.array([0.99, 0.98, 0.97, 0.5])
    labels = np.array([0, 0, 0, 1])
    users = np.array(["X", "X", "X", "Y"], dtype=object)
    days = np.zeros(4, dtype="datetime64[D]")

    assert card_precision_at_k(scores, labels, users, days, k=2) == pytest.approx(0.5)


def test_ties_are_broken_by_user_id() -> None:
    scores = np.array([0.5, 0.5, 0.5])
    labels = np.array([0, 1, 0])
    users = np.array(["c", "a", "b"], dtype=object)
    days = np.zeros(3, dtype="datetime64[D]")

    assert card_precision_at_k(scores, labels, users, days, k=1) == 1.0  # "a" wins the tie


def test_card_precision_refuses_misaligned_input_and_is_none_without_rows() -> None:
    with pytest.raises(EvaluationError, match="one length"):
        card_precision_at_k(SCORES, LABELS[:-1], USERS, DAYS)
    with pytest.raises(EvaluationError, match="NaN"):
        card_precision_at_k(np.array([np.nan]), [1], ["a"], DAYS[:1])
    assert card_precision_at_k([], [], [], []) is None


def test_operating_point_counts_rows_at_or_above_the_threshold() -> None:
    point = operating_point(SCORES, LABELS, 0.7)  # 0.9, 0.8, 0.7, 0.95 flagged

    assert point.flagged == 4
    assert point.precision == pytest.approx(2 / 4)  # 0.7 (C) and 0.95 (E)
    assert point.recall == pytest.approx(2 / 5)


def test_operating_point_leaves_undefined_ratios_unset() -> None:
    point = operating_point(np.array([0.1, 0.2]), np.array([0, 0]), 0.5)

    assert (point.flagged, point.precision, point.recall) == (0, None, None)


def test_evaluate_bundles_every_metric() -> None:
    thresholds = Thresholds(
        block=0.9, review=0.5, target_precision=0.8, review_share=0.01, basis="test"
    )
    times = DAYS.astype("datetime64[ms]") + np.timedelta64(3_600_000, "ms")

    metrics = evaluate(SCORES, LABELS, USERS, times, thresholds)

    assert metrics.cp_at_100 == pytest.approx(0.025)
    assert metrics.block is not None and metrics.block.flagged == 2
    assert metrics.review is not None and metrics.review.flagged == 5
    assert metrics.auc is not None and 0.0 < metrics.auc < 1.0
    assert metrics.ap is not None
