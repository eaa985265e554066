"""Choices made on validation data: member weights, decision thresholds, metrics.

All of them are made on the *latest* 20 % of the data by event time, scored by the
exported ONNX members, so they describe the model exactly as it will be served and the
way it will be used: on transactions newer than anything it was trained on.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import average_precision_score, roc_auc_score

from models.exceptions import TrainingError
from models.manifest import ScoreMetrics, Thresholds

__all__ = [
    "ThresholdPolicy",
    "choose_thresholds",
    "choose_weights",
    "score_metrics",
    "weighted_mean",
]


@dataclass(frozen=True, slots=True)
class ThresholdPolicy:
    """How thresholds are fitted, and the defaults used when the data cannot support a fit.

    - ``block``: the lowest score whose BLOCK set (score >= t) reaches
      ``target_precision`` on validation, i.e. the most frauds stopped at that precision.
    - ``review``: the score above which ``review_share`` of validation traffic falls (the
      analysts' budget), capped at ``block`` so REVIEW never overlaps BLOCK.
    - with fewer than ``min_positives`` validation frauds, or an unreachable precision
      target, ``block`` is ``default_block``; with a budget below one row, ``review`` is
      ``default_review`` (again capped at ``block``).
    """

    target_precision: float = 0.8
    review_share: float = 0.01
    min_positives: int = 20
    default_block: float = 0.9
    default_review: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.target_precision <= 1.0 or not 0.0 < self.review_share < 1.0:
            raise TrainingError(f"threshold policy out of range: {self}")
        if not 0.0 <= self.default_review <= self.default_block <= 1.0:
            raise TrainingError(f"default thresholds must satisfy review <= block: {self}")


def weighted_mean(
    member_scores: Mapping[str, NDArray[np.floating]], weights: Mapping[str, float]
) -> NDArray[np.float64]:
    """``sum_i w_i * p_i / sum_i w_i``: the documented combination, same as the scorer's."""
    total = sum(weights.values())
    if total <= 0:
        raise TrainingError(f"weights must not all be zero: {dict(weights)}")
    combined = np.zeros(len(next(iter(member_scores.values()))), dtype=np.float64)
    for name, scores in member_scores.items():
        combined += (weights[name] / total) * np.asarray(scores, dtype=np.float64)
    return combined


def _weight_grid(members: int, steps: int) -> Iterator[tuple[int, ...]]:
    """Every way to split ``steps`` units among ``members`` (the simplex grid)."""
    for cuts in itertools.combinations(range(steps + members - 1), members - 1):
        bounds = (-1, *cuts, steps + members - 1)
        yield tuple(bounds[i + 1] - bounds[i] - 1 for i in range(members))


def choose_weights(
    member_scores: Mapping[str, NDArray[np.floating]],
    labels: NDArray[np.integer],
    *,
    step: float = 0.1,
) -> dict[str, float]:
    """Weights on a grid of ``step`` over the simplex, maximising average precision.

    Average precision rewards ranking frauds first, which is what BLOCK and REVIEW use.
    Ties go to the most even weights (less variance, no member silently dropped); with a
    single-class validation set the weights stay even.
    """
    names = list(member_scores)
    steps = round(1.0 / step)
    if not math.isclose(steps * step, 1.0):
        raise TrainingError(f"weight step {step} does not divide 1")
    even = {name: 1.0 / len(names) for name in names}
    if len(names) == 1 or len(np.unique(labels)) < 2:
        return even
    candidates = sorted(
        _weight_grid(len(names), steps),
        key=lambda units: (sum((u / steps - 1.0 / len(names)) ** 2 for u in units), units),
    )
    best: dict[str, float] = even
    best_ap = -1.0
    for units in candidates:
        weights = {name: u / steps for name, u in zip(names, units, strict=True)}
        ap = float(average_precision_score(labels, weighted_mean(member_scores, weights)))
        if ap > best_ap + 1e-12:
            best, best_ap = weights, ap
    return best


def score_metrics(scores: NDArray[np.floating], labels: NDArray[np.integer]) -> ScoreMetrics:
    """ROC AUC and average precision, or ``None`` for both when only one class is present."""
    if len(np.unique(labels)) < 2:
        return ScoreMetrics(auc=None, ap=None)
    return ScoreMetrics(
        auc=float(roc_auc_score(labels, scores)),
        ap=float(average_precision_score(labels, scores)),
    )


def choose_thresholds(
    scores: NDArray[np.floating],
    labels: NDArray[np.integer],
    policy: ThresholdPolicy | None = None,
) -> Thresholds:
    """BLOCK and REVIEW thresholds for the ensemble score; see :class:`ThresholdPolicy`."""
    policy = policy or ThresholdPolicy()
    values: NDArray[np.float64] = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if values.shape != labels.shape or values.ndim != 1 or values.size == 0:
        raise TrainingError(f"scores {values.shape} and labels {labels.shape} do not match")
    order = np.argsort(-values, kind="stable")
    ranked = values[order]
    basis: list[str] = []

    block = _precision_cut(ranked, labels[order], policy, basis)
    budget = math.floor(policy.review_share * ranked.size)
    if budget >= 1:
        review = float(ranked[budget - 1])
        basis.append(f"review: top {policy.review_share:.2%} of {ranked.size} validation rows")
    else:
        review = policy.default_review
        basis.append(f"review: default, {ranked.size} rows give no {policy.review_share:.2%}")
    if review > block:
        review = block
        basis.append("review capped at block")
    return Thresholds(
        block=block,
        review=review,
        target_precision=policy.target_precision,
        review_share=policy.review_share,
        basis="; ".join(basis),
    )


def _precision_cut(
    ranked: NDArray[np.float64],
    ranked_labels: NDArray[np.integer],
    policy: ThresholdPolicy,
    basis: list[str],
) -> float:
    """Lowest score ``t`` with precision(score >= t) >= target, ties kept together."""
    positives = int(ranked_labels.sum())
    if positives < policy.min_positives:
        basis.append(f"block: default, {positives} validation frauds < {policy.min_positives}")
        return policy.default_block
    precision = np.cumsum(ranked_labels) / np.arange(1, ranked.size + 1)
    group_ends = np.append(ranked[:-1] != ranked[1:], True)  # cut only between distinct scores
    reachable = np.flatnonzero(group_ends & (precision >= policy.target_precision))
    if reachable.size == 0:
        basis.append(f"block: default, precision {policy.target_precision:.0%} not reachable")
        return policy.default_block
    cut = int(reachable[-1])
    caught = int(ranked_labels[: cut + 1].sum())
    basis.append(
        f"block: precision {precision[cut]:.3f} >= {policy.target_precision:.2f}, "
        f"recall {caught / positives:.3f} on validation"
    )
    return float(ranked[cut])
