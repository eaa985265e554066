"""Manifest sections shared by the trainer, the gate and the drift checks.

They live apart from :mod:`models.manifest` only to keep that module small; import them
from there. Every section added after format 1 is optional in the manifest, so a
manifest written before it still loads.
"""

from __future__ import annotations

import math
from typing import Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "Distribution",
    "EvaluationMetrics",
    "GateRecord",
    "OperatingPoint",
    "ReferenceDistributions",
    "ScoreMetrics",
    "TimeWindow",
]

#: A reference distribution has at most this many bins (deciles of the non-null values).
MAX_BINS = 10


class Strict(BaseModel):
    """Frozen and closed: a typo in a manifest field is an error, never silently ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class ScoreMetrics(Strict):
    """Ranking quality on the validation split; ``None`` when it has only one class."""

    auc: float | None = Field(default=None, ge=0.0, le=1.0)
    ap: float | None = Field(default=None, ge=0.0, le=1.0)


class OperatingPoint(Strict):
    """What acting on every row scoring ``>= threshold`` would have done.

    ``precision`` is ``None`` when no row is flagged, ``recall`` when there is no fraud:
    an undefined ratio is not a zero.
    """

    threshold: float = Field(ge=0.0, le=1.0)
    flagged: int = Field(ge=0)
    precision: float | None = Field(default=None, ge=0.0, le=1.0)
    recall: float | None = Field(default=None, ge=0.0, le=1.0)


class EvaluationMetrics(ScoreMetrics):
    """The metrics a fraud team compares models on.

    ``cp_at_100``: Card Precision@100 (see :func:`models.evaluation.card_precision_at_k`);
    ``block`` / ``review``: the operating points at the model's own thresholds (review
    counts every row at or above the review threshold, BLOCK rows included).
    """

    cp_at_100: float | None = Field(default=None, ge=0.0, le=1.0)
    block: OperatingPoint | None = None
    review: OperatingPoint | None = None


class TimeWindow(Strict):
    """Event-time span of a data split (inclusive), to spot a model trained on stale data."""

    from_: AwareDatetime = Field(alias="from")
    to: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.from_ > self.to:
            raise ValueError(f"window starts ({self.from_}) after it ends ({self.to})")
        return self


class Distribution(Strict):
    """One column's reference histogram, the baseline of the drift (PSI) checks.

    Bins are ``(-inf, edges[0]], (edges[0], edges[1]], ..., (edges[-1], +inf)``: the
    edges are the column's deciles on the validation rows (duplicates merged, so a 0/1
    flag gets two bins), and the open outer bins catch live values outside the
    reference range. ``shares[i]`` is the share of *all* rows in bin ``i`` and
    ``null_share`` the share of NaN, so together they sum to 1. ``low`` and ``high`` are
    the smallest and largest finite values seen (format 3; None when every value was
    null or the manifest is older): live values outside them are "out of range".
    """

    edges: tuple[float, ...] = Field(max_length=MAX_BINS - 1)
    shares: tuple[float, ...] = Field(min_length=1, max_length=MAX_BINS)
    null_share: float = Field(ge=0.0, le=1.0)
    low: float | None = None
    high: float | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if len(self.shares) != len(self.edges) + 1:
            raise ValueError(f"{len(self.edges)} edges need {len(self.edges) + 1} shares")
        if any(not math.isfinite(e) for e in self.edges) or any(
            b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)
        ):
            raise ValueError(f"edges must be finite and strictly increasing: {self.edges}")
        if any(not 0.0 <= s <= 1.0 for s in self.shares):
            raise ValueError(f"shares must be in [0, 1]: {self.shares}")
        if not math.isclose(sum(self.shares) + self.null_share, 1.0, abs_tol=1e-6):
            raise ValueError("shares and null_share must sum to 1")
        if (self.low is None) != (self.high is None):
            raise ValueError("low and high are set together or not at all")
        if (
            self.low is not None
            and self.high is not None
            and not (math.isfinite(self.low) and math.isfinite(self.high) and self.low <= self.high)
        ):
            raise ValueError(f"need finite low <= high, got {self.low}, {self.high}")
        return self


class ReferenceDistributions(Strict):
    """Per-feature and score histograms on the validation rows the model was judged on."""

    rows: int = Field(ge=1)
    features: dict[str, Distribution]
    score: Distribution


class GateRecord(Strict):
    """The promotion decision, kept with the model it judged.

    Both models were scored on the same rows (``window``, ``rows``, ``frauds``), each at
    its own thresholds. ``verdict`` is the role the candidate got.
    """

    window: TimeWindow
    rows: int = Field(ge=0)
    frauds: int = Field(ge=0)
    champion_version: str | None
    champion: EvaluationMetrics | None
    candidate: EvaluationMetrics
    max_auc_loss: float = Field(ge=0.0, le=1.0)
    verdict: Literal["champion", "challenger"]
    reason: str
    decided_at: AwareDatetime
