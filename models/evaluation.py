"""Model evaluation in the terms a fraud team works in, shared by training and the gate.

AUC and average precision measure ranking over transactions, but investigators work
customer by customer with a daily capacity. Card Precision@k (Le Borgne et al.,
*Reproducible Machine Learning for Credit Card Fraud Detection - Practical Handbook*)
measures exactly that, so it sits beside AUC/AP in every manifest and gate report.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from models.ensemble import score_metrics
from models.exceptions import EvaluationError
from models.manifest import EvaluationMetrics, OperatingPoint, Thresholds

__all__ = ["card_precision_at_k", "evaluate", "operating_point"]

_CP_K = 100


def card_precision_at_k(
    scores: Sequence[float] | NDArray[np.floating],
    labels: Sequence[int] | NDArray[np.integer],
    user_ids: Sequence[Any] | NDArray[Any],
    days: Sequence[Any] | NDArray[Any],
    k: int = _CP_K,
) -> float | None:
    """Card Precision@k: per day, the share of frauds among the ``k`` riskiest customers.

    For every day, each customer (``user_id``) gets their highest score of that day and
    counts as compromised if any of their transactions that day is fraud; the ``k``
    customers with the highest scores are "investigated" and the day's precision is
    ``compromised among them / k``. The result is the mean over the days present. As in
    the handbook, the denominator is always ``k``: a day with fewer customers than the
    investigators could check cannot reach 1. Ties are broken by user id, so the value is
    deterministic. Returns ``None`` for no rows.
    """
    if k < 1:
        raise EvaluationError(f"k must be at least 1, got {k}")
    frame = _aligned(scores, labels, user=user_ids, day=days)
    if frame.empty:
        return None
    per_customer = frame.groupby(["day", "user"], sort=False, observed=True).agg(
        score=("score", "max"), label=("label", "max")
    )
    ranked = per_customer.reset_index().sort_values(
        ["day", "score", "user"], ascending=[True, False, True], kind="stable"
    )
    caught = ranked.groupby("day", sort=False, observed=True).head(k)
    per_day = caught.groupby("day", sort=False, observed=True)["label"].sum() / k
    return float(per_day.mean())


def operating_point(
    scores: NDArray[np.floating], labels: NDArray[np.integer], threshold: float
) -> OperatingPoint:
    """Precision and recall of acting on every row with ``score >= threshold``."""
    frame = _aligned(scores, labels)
    flagged = frame["score"].to_numpy() >= threshold
    hits = int(frame["label"].to_numpy()[flagged].sum())
    frauds = int(frame["label"].sum())
    count = int(flagged.sum())
    return OperatingPoint(
        threshold=threshold,
        flagged=count,
        precision=hits / count if count else None,
        recall=hits / frauds if frauds else None,
    )


def evaluate(
    scores: NDArray[np.floating],
    labels: NDArray[np.integer],
    user_ids: NDArray[Any],
    event_times: NDArray[np.datetime64],
    thresholds: Thresholds,
) -> EvaluationMetrics:
    """AUC, AP, CP@100 (days in UTC) and the BLOCK / REVIEW operating points of one model."""
    values = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(labels)
    ranking = score_metrics(values, targets)
    days = np.asarray(event_times).astype("datetime64[D]")
    return EvaluationMetrics(
        auc=ranking.auc,
        ap=ranking.ap,
        cp_at_100=card_precision_at_k(values, targets, user_ids, days),
        block=operating_point(values, targets, thresholds.block),
        review=operating_point(values, targets, thresholds.review),
    )


def _aligned(
    scores: Sequence[float] | NDArray[np.floating],
    labels: Sequence[int] | NDArray[np.integer],
    **keys: Sequence[Any] | NDArray[Any],
) -> pd.DataFrame:
    """One frame of row-aligned columns, or an :class:`EvaluationError` saying what is off."""
    values = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(labels)
    columns: dict[str, Any] = {"score": values, "label": targets}
    columns.update({name: np.asarray(key) for name, key in keys.items()})
    lengths = {name: column.shape for name, column in columns.items()}
    if len({shape for shape in lengths.values()}) != 1 or values.ndim != 1:
        raise EvaluationError(f"inputs must be 1-d and of one length, got {lengths}")
    if np.isnan(values).any():
        raise EvaluationError("scores contain NaN")
    if targets.size and not np.isin(targets, (0, 1)).all():
        raise EvaluationError("labels must be 0 (legit) or 1 (fraud)")
    return pd.DataFrame(columns)
