"""The decision policy: rules, allow/deny lists and the model score -> APPROVE/REVIEW/BLOCK.

Precedence, strongest first, so that a decision can always be explained in one sentence:

1. deny list hit -> BLOCK (reason ``DENY_LIST``);
2. an active BLOCK rule -> BLOCK;
3. allow list hit or an active ALLOW rule -> APPROVE (a BLOCK above still wins);
4. the score: ``>= block`` -> BLOCK, ``>= review`` -> REVIEW, else APPROVE; an active
   REVIEW rule raises APPROVE to REVIEW. Without a score (NaN: the model is down and the
   decision is flagged degraded) only the rules decide.

Shadow rules never change a decision and TAG rules only add their reason code. Every step
is a numpy operation over the batch; only the per-row reason lists are Python objects.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from operators.exceptions import PolicyError
from operators.rules import RuleHits
from schemas.messages import DecisionKind

__all__ = [
    "ALLOW_LIST_REASON",
    "DENY_LIST_REASON",
    "BatchDecisions",
    "Thresholds",
    "decide_batch",
]

#: Reason code of a transaction blocked because it matched the deny list.
DENY_LIST_REASON = "DENY_LIST"
#: Reason code of a transaction approved because it matched the allow list.
ALLOW_LIST_REASON = "ALLOW_LIST"

_APPROVE, _REVIEW, _BLOCK = 0, 1, 2
_KINDS: tuple[DecisionKind, ...] = ("APPROVE", "REVIEW", "BLOCK")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Score cut-offs: ``score >= block`` blocks, ``score >= review`` goes to an analyst.

    Validated on construction (``0 <= review <= block <= 1``) so a misconfigured
    deployment fails at start-up rather than approving everything.
    """

    block: float
    review: float

    def __post_init__(self) -> None:
        values = (self.block, self.review)
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
            raise PolicyError(f"thresholds must be finite numbers, got {values}")
        if not 0.0 <= self.review <= self.block <= 1.0:
            raise PolicyError(
                f"thresholds must satisfy 0 <= review <= block <= 1, "
                f"got review={self.review}, block={self.block}"
            )


@dataclass(frozen=True, slots=True)
class BatchDecisions:
    """The policy's verdicts on a batch, row-aligned with its input.

    ``codes`` holds 0/1/2 for APPROVE/REVIEW/BLOCK (cheap to count for metrics);
    ``rules_only`` marks rows decided without a score, which the dataflow flags degraded.
    """

    codes: NDArray[np.int8]
    reasons: list[list[str]]
    rules_only: NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.reasons)

    def __getitem__(self, row: int) -> tuple[DecisionKind, list[str]]:
        return _KINDS[int(self.codes[row])], self.reasons[row]

    def __iter__(self) -> Iterator[tuple[DecisionKind, list[str]]]:
        return zip(self.decisions, self.reasons, strict=True)

    @property
    def decisions(self) -> list[DecisionKind]:
        """The decision of every row."""
        return [_KINDS[code] for code in self.codes.tolist()]

    def counts(self) -> dict[DecisionKind, int]:
        """Rows per decision, for ``fraud_transactions_total{decision}``."""
        totals = np.bincount(self.codes, minlength=len(_KINDS)).tolist()
        return {kind: int(total) for kind, total in zip(_KINDS, totals, strict=True)}


def decide_batch(
    scores: NDArray[np.float64],
    rule_hits: RuleHits,
    allow: NDArray[np.bool_] | None,
    deny: NDArray[np.bool_] | None,
    thresholds: Thresholds,
    top_features: Sequence[Sequence[str]] | None = None,
) -> BatchDecisions:
    """Decide a batch; every argument is row-aligned (NaN score = no score for that row).

    ``allow``/``deny`` are the list lookups (None: not available, e.g. Redis is down);
    ``top_features`` are the scorer's explanations per row (e.g.
    ``"HIGH:user_amount_zscore_30d"``), appended after the rule reason codes.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n_rows = _check_rows(scores, rule_hits, allow, deny, top_features)
    deny_mask = _mask(deny, n_rows)
    allow_mask = _mask(allow, n_rows)

    rules_only = np.isnan(scores)
    with np.errstate(invalid="ignore"):
        from_score = np.where(
            scores >= thresholds.block, _BLOCK, np.where(scores >= thresholds.review, _REVIEW, 0)
        )
    soft = np.maximum(from_score, np.where(rule_hits.any_active("REVIEW"), _REVIEW, _APPROVE))
    approve = allow_mask | rule_hits.any_active("ALLOW")
    block = deny_mask | rule_hits.any_active("BLOCK")
    codes = np.where(block, _BLOCK, np.where(approve, _APPROVE, soft)).astype(np.int8)

    reasons = rule_hits.active_reasons()
    for row in np.flatnonzero(deny_mask | allow_mask).tolist():
        listed = [DENY_LIST_REASON] if deny_mask[row] else []
        if allow_mask[row]:
            listed.append(ALLOW_LIST_REASON)
        reasons[row][:0] = listed
    if top_features is not None:
        for codes_of_row, features in zip(reasons, top_features, strict=True):
            if codes_of_row:
                codes_of_row.extend(f for f in features if f not in codes_of_row)
            else:
                codes_of_row.extend(features)
    return BatchDecisions(codes=codes, reasons=reasons, rules_only=rules_only)


def _mask(values: NDArray[np.bool_] | None, n_rows: int) -> NDArray[np.bool_]:
    if values is None:
        return np.zeros(n_rows, dtype=np.bool_)
    return np.asarray(values, dtype=np.bool_)


def _check_rows(
    scores: NDArray[np.float64],
    rule_hits: RuleHits,
    allow: Any,
    deny: Any,
    top_features: Sequence[Sequence[str]] | None,
) -> int:
    if scores.ndim != 1:
        raise PolicyError(f"scores must be a 1-D array, got shape {scores.shape}")
    n_rows = int(scores.shape[0])
    lengths = {"rule_hits": rule_hits.n_rows}
    for name, values in (("allow", allow), ("deny", deny)):
        if values is not None:
            lengths[name] = int(np.shape(values)[0]) if np.ndim(values) == 1 else -1
    if top_features is not None:
        lengths["top_features"] = len(top_features)
    wrong = {name: length for name, length in lengths.items() if length != n_rows}
    if wrong:
        raise PolicyError(f"inputs must have {n_rows} rows like scores, got {wrong}")
    return n_rows
