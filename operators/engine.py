"""The decision engine: one batch of featured transactions in, one decision per row out.

This is the whole per-batch brain of the scorer as plain Python, so that the live
dataflow, backtests and tests run the same code: assemble the feature matrix, evaluate
the rules (vectorised), score with the current ONNX ensemble (one run per member), apply
the decision policy, and build the wire form of each decision.

Degraded, not down: when the model is missing, fails, or overruns its time budget the
batch is decided by the rules alone; when enrichment is missing the batch goes on without
it. Either way each decision says ``degraded`` and why.

Champion and challenger: the champion decides. A challenger, when the model source has
one, scores every batch in shadow (its scores go to each decision's ``shadow_scores`` as
``challenger`` and ``challenger:<member>``) and, with ``challenger_share > 0``, decides
that share of users (see :mod:`operators._shadow`); those decisions carry the
challenger's version and score, and the champion's scores as ``champion`` shadow scores.
A challenger failure is reported in :attr:`BatchOutcome.shadow_error`, never degrades a
decision: its A/B rows are then decided by the champion.

The online model: when the model source has one (learned live from analyst labels by the
feedback service) and ``online_weight`` ``w`` is above 0, it scores every batch the
champion scored, inline right after it (one tiny ONNX run), on the scored features plus
the merchant label features. The champion's score ``c`` becomes ``(1 - w) * c + w * p``
with ``p`` the online P(fraud), kept as the ``online`` member score. It never decides
alone: without a champion score the batch stays rules-only, and an online failure only
leaves the champion's score as it was (:attr:`BatchOutcome.online_error`). The reason
codes stay the champion's.

Each decision carries ``features`` over :data:`DECISION_FEATURES` (the scored vector, then
the merchant label features), so that whoever learns from decisions sees what was known.
"""

from __future__ import annotations

import math
import operator
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from operators._blend import OnlineBlend
from operators._shadow import (
    RowSources,
    ShadowResult,
    ShadowScorer,
    challenger_rows,
    merge_verdicts,
    role_columns,
)
from operators.enrichment import Enrichment
from operators.exceptions import OperatorError, PolicyError, ScoringError
from operators.features import FEATURE_NAMES
from operators.merchant_labels import MERCHANT_LABEL_FEATURES
from operators.policy import BatchDecisions, Thresholds, decide_batch
from operators.rules import RuleHits, RuleSet
from operators.scoring import EnsembleScorer, OnlineScorer, ScoreBatch
from schemas import Transaction
from schemas._types import epoch_ms, format_timestamp

__all__ = [
    "DECISION_FEATURES",
    "BatchOutcome",
    "DecisionEngine",
    "FeaturedTx",
    "ModelSource",
    "RuleSource",
]

_STRING_FIELDS = (
    "user_id", "card_id", "merchant_id", "mcc", "currency", "country", "channel", "device_id",
)  # fmt: skip
_RISK_COLUMN = FEATURE_NAMES.index("merchant_risk")
_WINDOW_COLUMNS = [i for i, name in enumerate(FEATURE_NAMES) if i != _RISK_COLUMN]
_window_values = operator.itemgetter(*(FEATURE_NAMES[i] for i in _WINDOW_COLUMNS))
#: The names of a decision's ``features``, in order: what the champion scored, then the
#: merchant label features the online model also reads.
DECISION_FEATURES: tuple[str, ...] = FEATURE_NAMES + MERCHANT_LABEL_FEATURES
DEFAULT_THRESHOLDS = Thresholds(block=0.9, review=0.5)


class ModelSource(Protocol):
    """Where the engine gets the models for a batch: swapped between batches, never during.

    The engine asks once per batch, so a batch never sees two versions of a role. A source
    without ``challenger`` or ``online`` (written before they existed) simply has none.
    """

    def current(self) -> EnsembleScorer | None:
        """The champion to decide this batch with, or None when there is none (rules only)."""

    def challenger(self) -> EnsembleScorer | None:
        """The model on trial (shadow scores, A/B share), or None."""

    def online(self) -> OnlineScorer | None:
        """The model learned online from labels (blended into the champion), or None."""


class RuleSource(Protocol):
    """Where the engine gets the rules for a batch (a file that reloads when edited)."""

    def get(self) -> RuleSet:
        """The rules to apply to this batch."""


@dataclass(slots=True)
class FeaturedTx:
    """A valid transaction with its velocity features, on its way to a decision.

    ``features`` holds the user and merchant window features (``merchant_risk`` is added
    by enrichment); ``produced_ms`` is the Kafka timestamp of the transaction record, the
    start of the decision latency; ``event_ms`` is the event time in epoch milliseconds,
    computed once here rather than by every step that needs it.
    """

    tx: Transaction
    features: dict[str, float]
    produced_ms: int
    late: bool = False
    duplicate: bool = False
    event_ms: int = field(default=-1)

    def __post_init__(self) -> None:
        if self.event_ms < 0:
            self.event_ms = epoch_ms(self.tx.event_time)


@dataclass
class BatchOutcome:
    """Decisions of a batch (wire-ready dicts, row-aligned) and what metrics need."""

    decisions: list[dict[str, Any]]
    codes: NDArray[np.int8]
    rule_counts: dict[str, int]
    stage_seconds: dict[str, float]
    degraded_causes: list[str | None]
    member_scores: dict[str, NDArray[np.float32]] = field(default_factory=dict)
    scores: NDArray[np.float64] | None = None
    shadow_scores: dict[str, NDArray[np.float64]] = field(default_factory=dict)
    shadow_error: str | None = None
    shadow_error_detail: str | None = None
    challenger_decided: int = 0
    online_error: str | None = None
    #: For the drift monitor: the champion that scored the batch, the matrix it scored
    #: (its ``feature_names`` columns) and its own scores, before any online blend.
    champion: EnsembleScorer | None = None
    features: NDArray[np.float64] | None = None
    champion_scores: NDArray[np.float64] | None = None


def _feature_matrix(items: Sequence[FeaturedTx], risk: NDArray[np.float64]) -> NDArray[np.float64]:
    """The scored matrix: window features from each item, ``merchant_risk`` from Redis.

    Rows with every window feature (the usual case) are gathered by one C-level
    ``itemgetter`` each; a row missing some (a repeat, not featured again) goes by name.
    """
    matrix = np.full((len(items), len(FEATURE_NAMES)), np.nan, dtype=np.float64)
    complete: list[int] = []
    values: list[tuple[float, ...]] = []
    for row, item in enumerate(items):
        try:
            values.append(_window_values(item.features))
        except KeyError:
            features = item.features
            matrix[row] = [features.get(name, math.nan) for name in FEATURE_NAMES]
        else:
            complete.append(row)
    if complete:
        matrix[np.ix_(complete, _WINDOW_COLUMNS)] = values
    matrix[:, _RISK_COLUMN] = risk
    return matrix


def _json_rows(matrix: NDArray[np.float64]) -> list[list[float | None]]:
    """Rows of ``matrix`` as Python lists, NaN as None (JSON null), built in C not per cell."""
    cells = matrix.astype(object)
    cells[np.isnan(matrix)] = None
    rows: list[list[float | None]] = cells.tolist()
    return rows


def _rule_batch(items: Sequence[FeaturedTx], matrix: NDArray[np.float64]) -> dict[str, Any]:
    batch: dict[str, Any] = {name: matrix[:, i] for i, name in enumerate(FEATURE_NAMES)}
    txs = [item.tx for item in items]
    batch["lat"] = np.array([math.nan if t.lat is None else t.lat for t in txs], dtype=np.float64)
    batch["lon"] = np.array([math.nan if t.lon is None else t.lon for t in txs], dtype=np.float64)
    for name in _STRING_FIELDS:
        batch[name] = np.array([getattr(t, name) for t in txs], dtype=object)
    return batch


class DecisionEngine:
    """Decides batches; see the module doc. Not thread-safe: one engine per worker."""

    def __init__(
        self,
        rules: RuleSource,
        models: ModelSource,
        *,
        model_budget_s: float = 0.025,
        top_k: int = 3,
        clock: Callable[[], float] = time.time,
        challenger_share: float = 0.0,
        online_weight: float = 0.0,
    ) -> None:
        if not 0.0 <= challenger_share <= 1.0:
            raise PolicyError(f"challenger_share must be within [0, 1], got {challenger_share}")
        self._rules = rules
        self._models = models
        self._challenger_of: Callable[[], EnsembleScorer | None] = getattr(
            models, "challenger", _no_model
        )
        self._budget_s = model_budget_s
        self._top_k = top_k
        self._clock = clock
        self._share = challenger_share
        self._online_of: Callable[[], OnlineScorer | None] = getattr(models, "online", _no_online)
        self._blend = OnlineBlend(online_weight, DECISION_FEATURES)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnx")
        self._running: Future[ScoreBatch] | None = None
        self._shadow = ShadowScorer()

    def _score(
        self, model: EnsembleScorer | None, matrix: NDArray[np.float64]
    ) -> tuple[ScoreBatch | None, str | None]:
        if model is None:
            return None, "no_model"
        if self._running is not None and not self._running.done():
            # The last batch overran its budget and is still running: queueing behind it
            # would make every following batch late too. Decide this one by rules now.
            return None, "model_timeout"
        future = self._executor.submit(model.score, matrix)
        self._running = future
        try:
            return future.result(timeout=self._budget_s), None
        except FutureTimeout:
            return None, "model_timeout"
        except ScoringError:
            return None, "model_error"

    def decide(self, items: Sequence[FeaturedTx], enrichment: Enrichment) -> BatchOutcome:
        """Decide every item; never raises for one bad row (the whole batch degrades)."""
        stages: dict[str, float] = {}
        started = time.perf_counter()
        matrix = _feature_matrix(items, enrichment.merchant_risk)
        full = np.hstack((matrix, enrichment.merchant_labels))
        try:
            hits = self._rules.get().evaluate(_rule_batch(items, matrix), len(items))
        except OperatorError:
            hits = RuleHits.empty(len(items))
        stages["rules"] = time.perf_counter() - started

        started = time.perf_counter()
        champion = self._models.current()
        challenger = self._challenger_of()
        if (
            challenger is not None
            and champion is not None
            and challenger.version == champion.version
        ):
            challenger = None  # one model in both roles (just promoted): nothing to compare
        pending = self._shadow.start(challenger, matrix)
        scored, model_cause = self._score(champion, matrix)
        champion_scores = scored.scores if scored is not None else None
        online = self._online_of() if self._blend.weight > 0.0 else None
        online_error = None
        if online is not None and scored is not None:  # never without the champion's score
            if time.perf_counter() - started < self._budget_s:
                scored, online_error = self._blend.apply(online, scored, full)
            else:
                online_error = "online_skipped: the champion used the whole model budget"
        shadow = self._shadow.finish(pending, self._budget_s - (time.perf_counter() - started))
        stages["model"] = time.perf_counter() - started

        started = time.perf_counter()
        ab_rows = self._ab_rows(items, challenger, shadow)
        verdicts = self._verdicts(champion, scored, matrix, hits, enrichment)
        if ab_rows is not None:
            on_trial = self._verdicts(challenger, shadow.scored, matrix, hits, enrichment, ab_rows)
            verdicts = merge_verdicts(verdicts, on_trial, ab_rows)
        stages["policy"] = time.perf_counter() - started

        started = time.perf_counter()
        rows = RowSources.of(len(items), scored, model_cause, shadow, ab_rows, enrichment)
        decided_ms = self._clock() * 1000.0
        decided_at = _format_ms(decided_ms)
        per_row = hits.per_row()
        feature_rows = _json_rows(full)
        decisions = []
        for row, item in enumerate(items):
            kind, reasons = verdicts[row]
            score = rows.scores[row]
            cause = rows.causes[row]
            decisions.append(
                {
                    "schema_version": 1,
                    "tx_id": item.tx.tx_id,
                    "user_id": item.tx.user_id,
                    "merchant_id": item.tx.merchant_id,
                    "amount": format(item.tx.amount, "f"),
                    "decision": kind,
                    "score": None if math.isnan(score) else score,
                    "member_scores": rows.members[row],
                    "shadow_scores": rows.shadow[row],
                    "model_version": rows.versions[row],
                    "rules_fired": [
                        {
                            "schema_version": 1,
                            "id": h.id,
                            "reason": h.reason,
                            "action": h.action,
                            "shadow": h.shadow,
                        }
                        for h in per_row[row]
                    ],
                    "reasons": reasons,
                    "features": dict(zip(DECISION_FEATURES, feature_rows[row], strict=True)),
                    "degraded": cause is not None,
                    "degraded_cause": cause,
                    "event_time": format_timestamp(item.tx.event_time),
                    "decided_at": decided_at,
                    "latency_ms": max(0.0, decided_ms - item.produced_ms),
                }
            )
        stages["build"] = time.perf_counter() - started
        return BatchOutcome(
            decisions=decisions,
            codes=verdicts.codes,
            rule_counts=hits.counts(),
            stage_seconds=stages,
            degraded_causes=rows.causes,
            member_scores=dict(scored.member_scores) if scored is not None else {},
            scores=rows.score_array,
            shadow_scores=role_columns("challenger", shadow.scored),
            shadow_error=shadow.error,
            shadow_error_detail=shadow.detail,
            challenger_decided=0 if ab_rows is None else int(ab_rows.sum()),
            online_error=online_error,
            champion=champion,
            features=matrix,
            champion_scores=champion_scores,
        )

    def _ab_rows(
        self, items: Sequence[FeaturedTx], challenger: EnsembleScorer | None, shadow: ShadowResult
    ) -> NDArray[np.bool_] | None:
        """Rows the challenger decides; None when it decides none (the usual case)."""
        if self._share <= 0.0 or challenger is None or shadow.scored is None:
            return None
        rows = challenger_rows([item.tx.user_id for item in items], self._share, challenger.version)
        return rows if rows.any() else None

    def _verdicts(
        self,
        model: EnsembleScorer | None,
        scored: ScoreBatch | None,
        matrix: NDArray[np.float64],
        hits: RuleHits,
        enrichment: Enrichment,
        only: NDArray[np.bool_] | None = None,
    ) -> BatchDecisions:
        """The policy applied to one model's scores, explained where they flag a row."""
        scores = scored.scores if scored is not None else np.full(matrix.shape[0], np.nan)
        thresholds = DEFAULT_THRESHOLDS
        if model is not None:
            thresholds = Thresholds(block=model.thresholds.block, review=model.thresholds.review)
        verdicts = decide_batch(scores, hits, enrichment.allow, enrichment.deny, thresholds)
        flagged = verdicts.codes if only is None else np.where(only, verdicts.codes, 0)
        explained = self._explain(model, scored, matrix, flagged)
        if explained is None:
            return verdicts
        return decide_batch(scores, hits, enrichment.allow, enrichment.deny, thresholds, explained)

    def _explain(
        self,
        model: EnsembleScorer | None,
        scored: ScoreBatch | None,
        matrix: NDArray[np.float64],
        codes: NDArray[np.int8],
    ) -> list[list[str]] | None:
        """Reason codes from the model, only for rows that are reviewed or blocked."""
        if model is None or scored is None:
            return None
        flagged = np.flatnonzero(codes > 0)
        if flagged.size == 0:
            return None
        explained: list[list[str]] = [[] for _ in range(matrix.shape[0])]
        try:
            tops = model.top_features(matrix[flagged], k=self._top_k)
        except ScoringError:
            return None
        for row, top in zip(flagged.tolist(), tops, strict=True):
            explained[row] = top
        return explained

    def close(self) -> None:
        """Stop the scoring threads."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._shadow.close()


def _no_model() -> EnsembleScorer | None:
    return None


def _no_online() -> OnlineScorer | None:
    return None


def _format_ms(epoch_ms: float) -> str:
    return format_timestamp(datetime.fromtimestamp(epoch_ms / 1000.0, tz=UTC))
