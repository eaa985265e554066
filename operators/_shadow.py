"""The challenger's part of a batch: shadow scoring, the A/B split, and merged verdicts.

A challenger is on trial, so nothing it does may cost the champion anything: it scores on
its own thread (a slow challenger never queues in front of the champion), a batch never
waits for it beyond the champion's own budget, and every failure of it becomes data (a
cause string the service counts) rather than a degraded decision.

The A/B split is a stable hash: crc32 of the user id, seeded with the challenger's
version, into 10,000 buckets. A user therefore always meets the same model while one
challenger is on trial (no flip-flopping verdicts within a session), and every new
challenger draws a fresh sample of users instead of the same unlucky ones each time.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from operators.enrichment import Enrichment
from operators.policy import BatchDecisions
from operators.scoring import EnsembleScorer, ScoreBatch

__all__ = [
    "AB_BUCKETS",
    "RowSources",
    "ShadowResult",
    "ShadowScorer",
    "challenger_rows",
    "merge_verdicts",
    "role_columns",
    "row_dicts",
]

#: Resolution of the traffic share: 0.01 % of users.
AB_BUCKETS = 10_000


@dataclass(frozen=True, slots=True)
class ShadowResult:
    """The challenger's scores for a batch, or why there are none (``error`` is a cause)."""

    scored: ScoreBatch | None = None
    error: str | None = None
    detail: str | None = None


class ShadowScorer:
    """Runs the challenger on its own thread; at most one shadow run is ever in flight.

    When the previous run has not finished (a challenger slower than the traffic), the
    batch goes without shadow scores (``shadow_busy``) instead of queueing more work.
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnx-shadow")
        self._in_flight: Future[ScoreBatch] | None = None

    def start(
        self, model: EnsembleScorer | None, matrix: NDArray[np.float64]
    ) -> Future[ScoreBatch] | ShadowResult:
        """Start scoring ``matrix`` (before the champion runs, so both run at once)."""
        if model is None:
            return ShadowResult()
        if self._in_flight is not None and not self._in_flight.done():
            return ShadowResult(error="shadow_busy", detail="the previous shadow run is running")
        self._in_flight = self._executor.submit(model.score, matrix)
        return self._in_flight

    @staticmethod
    def finish(pending: Future[ScoreBatch] | ShadowResult, timeout_s: float) -> ShadowResult:
        """Wait at most ``timeout_s`` for the run started by :meth:`start`."""
        if isinstance(pending, ShadowResult):
            return pending
        try:
            return ShadowResult(scored=pending.result(timeout=max(0.0, timeout_s)))
        except FutureTimeout:
            return ShadowResult(error="shadow_timeout", detail="over the model budget")
        except Exception as exc:  # any challenger failure is only counted
            return ShadowResult(error="shadow_error", detail=f"{type(exc).__name__}: {exc}")

    def close(self) -> None:
        """Stop the shadow thread (a run in flight is abandoned)."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def challenger_rows(user_ids: Sequence[str], share: float, version: str) -> NDArray[np.bool_]:
    """Rows whose user falls in the challenger's share (see the module doc for the hash)."""
    cutoff = round(share * AB_BUCKETS)
    if cutoff <= 0:
        return np.zeros(len(user_ids), dtype=np.bool_)
    seed = zlib.crc32(version.encode() + b"\x00")
    buckets = np.fromiter(
        (zlib.crc32(user.encode(), seed) % AB_BUCKETS for user in user_ids),
        dtype=np.int64,
        count=len(user_ids),
    )
    return buckets < cutoff


def role_columns(role: str, scored: ScoreBatch | None) -> dict[str, NDArray[np.float64]]:
    """``{role: ensemble, "role:member": member, ...}``: a model's scores as shadow columns."""
    if scored is None:
        return {}
    columns = {role: scored.scores}
    for member, values in scored.member_scores.items():
        columns[f"{role}:{member}"] = values.astype(np.float64)
    return columns


def row_dicts(columns: Mapping[str, NDArray[np.floating]], n_rows: int) -> list[dict[str, float]]:
    """Column arrays -> one ``{name: value}`` dict per row (the Decision's score maps)."""
    if not columns:
        return [{} for _ in range(n_rows)]
    names = list(columns)
    lists = [columns[name].tolist() for name in names]
    return [dict(zip(names, values, strict=True)) for values in zip(*lists, strict=True)]


def merge_verdicts(
    champion: BatchDecisions, challenger: BatchDecisions, rows: NDArray[np.bool_]
) -> BatchDecisions:
    """The champion's verdicts, with the challenger's on ``rows`` (the A/B share)."""
    reasons = list(champion.reasons)
    for row in np.flatnonzero(rows).tolist():
        reasons[row] = challenger.reasons[row]
    return BatchDecisions(
        codes=np.where(rows, challenger.codes, champion.codes).astype(np.int8),
        reasons=reasons,
        rules_only=np.where(rows, challenger.rules_only, champion.rules_only),
    )


@dataclass(slots=True)
class RowSources:
    """Per row: the deciding model's score, members and version, the other's shadow scores."""

    score_array: NDArray[np.float64]
    scores: list[float]
    members: list[dict[str, float]]
    shadow: list[dict[str, float]]
    versions: list[str | None]
    causes: list[str | None]

    @classmethod
    def of(
        cls,
        n_rows: int,
        scored: ScoreBatch | None,
        model_cause: str | None,
        shadow: ShadowResult,
        ab_rows: NDArray[np.bool_] | None,
        enrichment: Enrichment,
    ) -> RowSources:
        """Rows from both models' results: the champion's unless the A/B split says otherwise."""
        champion_cause = "+".join(c for c in (model_cause, enrichment.degraded_cause) if c)
        members = scored.member_scores if scored is not None else {}
        score_array = scored.scores if scored is not None else np.full(n_rows, np.nan)
        sources = cls(
            score_array=score_array,
            scores=[],
            members=row_dicts(members, n_rows),
            shadow=row_dicts(role_columns("challenger", shadow.scored), n_rows),
            versions=[None if scored is None else scored.model_version] * n_rows,
            causes=[champion_cause or None] * n_rows,
        )
        if ab_rows is not None and shadow.scored is not None:
            on_trial = shadow.scored
            sources.score_array = np.where(ab_rows, on_trial.scores, score_array)
            trial_members = row_dicts(on_trial.member_scores, n_rows)
            champion_shadow = row_dicts(role_columns("champion", scored), n_rows)
            for row in np.flatnonzero(ab_rows).tolist():
                sources.members[row] = trial_members[row]
                sources.shadow[row] = champion_shadow[row]
                sources.versions[row] = on_trial.model_version
                sources.causes[row] = enrichment.degraded_cause
        sources.scores = sources.score_array.tolist()
        return sources
