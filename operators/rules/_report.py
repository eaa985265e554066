"""Hit rates and precision of a rule set on labelled history: the core of ``rules test``.

Analysts run this before a rules edit goes live, to see how many transactions each rule
would flag and how many of those were really fraud.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from operators.exceptions import BatchError
from operators.rules._frame import Batch
from operators.rules._hits import Action
from operators.rules._ruleset import RuleSet

__all__ = ["RuleStats", "rule_report"]


@dataclass(frozen=True, slots=True)
class RuleStats:
    """How one rule did on a labelled batch.

    ``precision`` (fraud among hits) and ``recall`` (share of all fraud the rule caught)
    are None when undefined (no hits, or no fraud in the data), never a misleading 0.
    """

    rule_id: str
    reason: str
    action: Action
    shadow: bool
    rows: int
    hits: int
    fraud_hits: int
    hit_rate: float
    precision: float | None
    recall: float | None


def rule_report(rules: RuleSet, batch: Batch, labels: Any) -> list[RuleStats]:
    """Evaluate every rule on a labelled batch; ``labels`` is True/1 for fraud, per row.

    Shadow rules are reported like active ones: trying them out is the point.
    """
    fraud = _fraud_mask(labels)
    hits = rules.evaluate(batch, n_rows=fraud.shape[0])
    rows = hits.n_rows
    total_fraud = int(fraud.sum())
    hit_counts = hits.matrix.sum(axis=1).tolist()
    fraud_counts = (hits.matrix & fraud).sum(axis=1).tolist()
    return [
        RuleStats(
            rule_id=rule.id,
            reason=rule.reason,
            action=rule.action,
            shadow=rule.shadow,
            rows=rows,
            hits=int(count),
            fraud_hits=int(caught),
            hit_rate=count / rows if rows else 0.0,
            precision=caught / count if count else None,
            recall=caught / total_fraud if total_fraud else None,
        )
        for rule, count, caught in zip(hits.rules, hit_counts, fraud_counts, strict=True)
    ]


def _fraud_mask(labels: Any) -> NDArray[np.bool_]:
    values: NDArray[Any] = np.asarray(labels)
    if values.ndim != 1:
        raise BatchError(f"labels must be a 1-D array, got shape {values.shape}")
    if values.dtype == np.bool_:
        return values.astype(np.bool_, copy=False)
    if not np.isin(values, (0, 1)).all():
        raise BatchError("labels must be booleans or 0/1 (1 = fraud) for every row")
    fraud: NDArray[np.bool_] = values == 1
    return fraud
