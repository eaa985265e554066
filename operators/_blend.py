"""The online model's part of a batch: its columns picked by name, its score blended in.

The online model is learned by another service from labels, on the decision's features
(:data:`~operators.engine.DECISION_FEATURES`), and may be published with any subset of
them in any order: its columns are picked by name from the batch's decision matrix, NaN
for a name this scorer does not compute (the model imputes missing values itself).

Blending is a convex combination, ``(1 - w) * champion + w * online``, so scores stay
probabilities and ``w = 0`` is the champion alone. The online model only ever adjusts a
champion score: anything going wrong with it leaves the champion's score as it was.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from operators.exceptions import PolicyError, ScoringError
from operators.scoring import OnlineScorer, ScoreBatch

__all__ = ["ONLINE_MEMBER", "OnlineBlend"]

#: The member name of the online model's scores in ``member_scores``.
ONLINE_MEMBER = "online"


class OnlineBlend:
    """Blends an online model's P(fraud) into a champion's scores with a fixed weight."""

    def __init__(self, weight: float, columns: Sequence[str]) -> None:
        if not 0.0 <= weight <= 1.0:
            raise PolicyError(f"online_weight must be within [0, 1], got {weight}")
        self.weight = weight
        self._column_of = {name: i for i, name in enumerate(columns)}
        # The last model's name order and where its columns come from (models rarely change).
        self._names: tuple[str, ...] | None = None
        self._into = np.zeros(0, dtype=np.intp)
        self._source = np.zeros(0, dtype=np.intp)

    def apply(
        self, online: OnlineScorer, scored: ScoreBatch, matrix: NDArray[np.float64]
    ) -> tuple[ScoreBatch, str | None]:
        """``scored`` blended with ``online``'s scores of ``matrix`` (columns as given).

        Returns the blended batch (with the ``online`` member score) and None, or
        ``scored`` unchanged and what went wrong.
        """
        try:
            p_online = np.asarray(online.score(self.columns(online, matrix)), dtype=np.float64)
            if p_online.shape != scored.scores.shape:
                raise ScoringError(
                    f"online model {online.version!r} returned shape {p_online.shape} "
                    f"for {scored.scores.shape[0]} rows"
                )
        except Exception as exc:  # the online model is an extra: it never costs a decision
            return scored, f"{type(exc).__name__}: {exc}"
        weight = self.weight
        blended = np.where(
            np.isfinite(p_online),
            (1.0 - weight) * scored.scores + weight * p_online,
            scored.scores,
        )
        members = {**scored.member_scores, ONLINE_MEMBER: p_online.astype(np.float32)}
        return ScoreBatch(np.clip(blended, 0.0, 1.0), members, scored.model_version), None

    def columns(self, online: OnlineScorer, matrix: NDArray[np.float64]) -> NDArray[np.float64]:
        """``matrix``'s columns in ``online``'s feature order; NaN for names not in it."""
        names = tuple(online.feature_names)
        if names != self._names:
            known = [(i, self._column_of[n]) for i, n in enumerate(names) if n in self._column_of]
            self._into = np.array([i for i, _ in known], dtype=np.intp)
            self._source = np.array([c for _, c in known], dtype=np.intp)
            self._names = names
        out = np.full((matrix.shape[0], len(names)), np.nan)
        out[:, self._into] = matrix[:, self._source]
        return out
