"""One micro-batch decided as the live engine decides it, vectorised over the batch.

The order and the pieces are :class:`operators.engine.DecisionEngine`'s: the rules
(:meth:`operators.rules.RuleSet.evaluate` on the same column batch), the champion's ONNX
ensemble, the online model blended in by :class:`operators._blend.OnlineBlend` (only when
the champion scored), the policy (:func:`operators.policy.decide_batch`) at the serving
model's thresholds, and reason codes from the champion's explainer for the rows it
flags. What the backtest leaves out is only what it cannot have: allow and deny lists
(Redis), the time budget (the model never times out on history) and the challenger
(shadow scores never change a decision).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from operators._blend import ONLINE_MEMBER, OnlineBlend
from operators.engine import DEFAULT_THRESHOLDS
from operators.exceptions import OperatorError, ScoringError
from operators.features import FEATURE_NAMES
from operators.policy import Thresholds, decide_batch
from operators.rules import RuleHits, RuleSet
from operators.scoring import EnsembleScorer, OnlineScorer, ScoreBatch

__all__ = ["BatchResult", "decide", "rule_columns"]

_STRING_FIELDS = (
    "user_id", "card_id", "merchant_id", "mcc", "currency", "country", "channel", "device_id",
)  # fmt: skip
_TOP_K = 3


@dataclass(frozen=True)
class BatchResult:
    """A batch's decisions, row-aligned, plus what the report and the metrics need."""

    codes: NDArray[np.int8]
    scores: NDArray[np.float64]
    champion: NDArray[np.float64]
    online: NDArray[np.float64]
    reasons: list[list[str]]
    hits: RuleHits
    model_version: str | None
    cause: str | None
    review_threshold: float
    online_error: str | None
    stage_seconds: dict[str, float]


def rule_columns(frame: pd.DataFrame) -> dict[str, NDArray[Any]]:
    """The transaction columns rules read (as the engine's ``_rule_batch`` builds them)."""
    count = len(frame)
    columns: dict[str, NDArray[Any]] = {}
    for name in ("lat", "lon"):
        columns[name] = (
            pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
            if name in frame.columns
            else np.full(count, np.nan)
        )
    for name in _STRING_FIELDS:
        if name in frame.columns:
            values = frame[name].astype(object)
            columns[name] = values.where(values.notna(), None).to_numpy(dtype=object)
        else:
            columns[name] = np.full(count, None, dtype=object)
    return columns


def decide(
    rules: RuleSet,
    champion: EnsembleScorer | None,
    online: OnlineScorer | None,
    blend: OnlineBlend,
    matrix: NDArray[np.float64],
    merchant_labels: NDArray[np.float64],
    columns: dict[str, NDArray[Any]],
    *,
    champion_reads_labels: bool = False,
) -> BatchResult:
    """Decide one batch: rules -> champion -> online blend -> policy -> reason codes.

    ``matrix`` is the batch over ``FEATURE_NAMES`` (what the champion scores),
    ``merchant_labels`` the 12 merchant label features (the rest of the decision's
    features) and ``columns`` the batch's transaction fields from :func:`rule_columns`.
    ``champion_reads_labels`` is the ``decision`` what-if: the champion scores (and
    explains) both, as the online model does.
    """
    stages: dict[str, float] = {}
    started = time.perf_counter()
    rows = matrix.shape[0]
    batch: dict[str, Any] = {name: matrix[:, i] for i, name in enumerate(FEATURE_NAMES)}
    batch.update(columns)
    try:
        hits = rules.evaluate(batch, rows)
    except OperatorError:
        hits = RuleHits.empty(rows)
    stages["rules"] = time.perf_counter() - started

    started = time.perf_counter()
    full = np.hstack((matrix, merchant_labels))
    scored_matrix = full if champion_reads_labels else matrix
    scored: ScoreBatch | None = None
    cause: str | None = "no_model"
    if champion is not None:
        try:
            scored, cause = champion.score(scored_matrix), None
        except ScoringError:
            cause = "model_error"
    champion_scores = scored.scores if scored is not None else np.full(rows, np.nan)
    online_error = None
    if scored is not None and online is not None and blend.weight > 0.0:
        scored, online_error = blend.apply(online, scored, full)
    scores = scored.scores if scored is not None else np.full(rows, np.nan)
    online_scores = np.full(rows, np.nan)
    if scored is not None and ONLINE_MEMBER in scored.member_scores:
        online_scores = scored.member_scores[ONLINE_MEMBER].astype(np.float64)

    stages["model"] = time.perf_counter() - started

    started = time.perf_counter()
    thresholds = DEFAULT_THRESHOLDS
    if champion is not None:
        thresholds = Thresholds(block=champion.thresholds.block, review=champion.thresholds.review)
    verdicts = decide_batch(scores, hits, None, None, thresholds)
    explained = _explain(champion, scored, scored_matrix, verdicts.codes)
    if explained is not None:
        verdicts = decide_batch(scores, hits, None, None, thresholds, explained)
    stages["policy"] = time.perf_counter() - started
    return BatchResult(
        codes=verdicts.codes,
        scores=np.asarray(scores, dtype=np.float64),
        champion=np.asarray(champion_scores, dtype=np.float64),
        online=online_scores,
        reasons=verdicts.reasons,
        hits=hits,
        model_version=None if scored is None else scored.model_version,
        cause=cause,
        review_threshold=thresholds.review,
        online_error=online_error,
        stage_seconds=stages,
    )


def _explain(
    model: EnsembleScorer | None,
    scored: ScoreBatch | None,
    matrix: NDArray[np.float64],
    codes: NDArray[np.int8],
) -> list[Sequence[str]] | None:
    """Reason codes from the model for the rows reviewed or blocked (as the engine does).

    Rows not flagged share one empty tuple: a batch of a day is ten thousand rows.
    """
    if model is None or scored is None:
        return None
    flagged = np.flatnonzero(codes > 0)
    if flagged.size == 0:
        return None
    explained: list[Sequence[str]] = [()] * matrix.shape[0]
    try:
        tops = model.top_features(matrix[flagged], k=_TOP_K)
    except ScoringError:
        return None
    for row, top in zip(flagged.tolist(), tops, strict=True):
        explained[row] = top
    return explained
