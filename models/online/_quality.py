"""Progressive validation: every label is first a test of the model, then a lesson.

The learner scores a labelled transaction *before* learning from it, so these metrics
measure the model on data it had not seen, like a holdout set that never runs dry. They
are river's streaming metrics; their state is a few counters, kept in the learner's
checkpoint so a restarted feedback service continues the same running figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from river import metrics as river_metrics
from river import stats
from river import utils as river_utils

from models.exceptions import ModelFormatError
from models.online._state import count, is_number

__all__ = ["DECISION_CUT", "RECENT_WINDOW", "ProgressiveQuality"]

#: P(fraud) at or above which a prediction counts as "fraud" for precision and recall.
DECISION_CUT = 0.5
#: Thresholds of river's ROCAUC, which approximates the ROC curve on an even grid over
#: [0, 1]: 50 keeps the approximation within about a point of AUC for scores spread over
#: the grid, at ~50 counter updates per label.
AUC_THRESHOLDS = 50
#: Labels the "recent" precision looks back over (what the review console shows): the
#: running precision since the first label hides a model that got worse last week.
RECENT_WINDOW = 500

_CELLS = ("tp", "fp", "fn", "tn")
#: river.metrics is unannotated; its objects are typed Any at this module's boundary.
metrics: Any = river_metrics
utils: Any = river_utils


class ProgressiveQuality:
    """ROC AUC, log loss, precision and recall of predictions made before learning.

    Besides the running figures, ``recent_precision`` is river's rolling precision over
    the last :data:`RECENT_WINDOW` labels.
    """

    def __init__(self) -> None:
        self._auc = metrics.ROCAUC(n_thresholds=AUC_THRESHOLDS)
        self._logloss = metrics.LogLoss()
        # Precision and recall read one shared confusion matrix, updated once per label.
        self._confusion = metrics.ConfusionMatrix()
        self._precision = metrics.Precision(cm=self._confusion)
        self._recall = metrics.Recall(cm=self._confusion)
        self._recent = utils.Rolling(metrics.Precision, window_size=RECENT_WINDOW)

    def update(self, fraud: bool, probability: float) -> None:
        """Record one prediction made before its label was learned."""
        self._auc.update(fraud, probability)
        self._logloss.update(fraud, probability)
        self._precision.update(fraud, probability >= DECISION_CUT)  # also feeds recall
        self._recent.update(fraud, probability >= DECISION_CUT)

    def report(self) -> dict[str, float]:
        """``auc``, ``logloss``, ``precision``, ``recall``, ``recent_precision``; NaN if undefined.

        River reports 0 for an undefined ratio (no fraud seen yet, nothing flagged yet);
        NaN says "not known yet" instead of looking like a broken model.
        """
        tp, fp, fn, tn = _cells(self._confusion)
        return {
            "auc": float(self._auc.get()) if tp + fn > 0 and fp + tn > 0 else math.nan,
            "logloss": float(self._logloss.get()) if tp + fp + fn + tn > 0 else math.nan,
            "precision": float(self._precision.get()) if tp + fp > 0 else math.nan,
            "recall": float(self._recall.get()) if tp + fn > 0 else math.nan,
            "recent_precision": self._recent_precision(),
        }

    def _recent_precision(self) -> float:
        flagged = any(predicted for (_, predicted), _ in self._recent.window)
        return float(self._recent.get()) if flagged else math.nan

    def state(self) -> dict[str, Any]:
        """The metrics' counters as plain numbers: enough to resume them exactly."""
        mean = self._logloss._mean  # river keeps a MeanMetric's running mean here
        return {
            "auc_thresholds": AUC_THRESHOLDS,
            "auc": [_counts(cm) for cm in self._auc.cms],
            "logloss": {"n": float(mean.n), "mean": float(mean.get())},
            "confusion": _counts(self._confusion),
            "recent": [[int(y), int(p)] for (y, p), _ in self._recent.window],
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ProgressiveQuality:
        """Rebuild the metrics from :meth:`state`; raise ModelFormatError if it does not fit."""
        quality = cls()
        auc = state.get("auc")
        if state.get("auc_thresholds") != AUC_THRESHOLDS or not isinstance(auc, list):
            raise ModelFormatError(
                f"online learner state: quality.auc must hold {AUC_THRESHOLDS} threshold counts"
            )
        if len(auc) != AUC_THRESHOLDS:
            raise ModelFormatError(f"online learner state: quality.auc has {len(auc)} entries")
        for cm, counts in zip(quality._auc.cms, auc, strict=True):
            _replay(cm, counts, "quality.auc")
        _replay(quality._confusion, state.get("confusion"), "quality.confusion")
        logloss = state.get("logloss")
        if not isinstance(logloss, Mapping):
            raise ModelFormatError("online learner state: quality.logloss must be an object")
        n = count(logloss.get("n"), "quality.logloss.n")
        mean = logloss.get("mean")
        if not is_number(mean) or mean < 0:
            raise ModelFormatError("online learner state: quality.logloss.mean must be >= 0")
        quality._logloss._mean = stats.Mean._from_state(n, float(mean))
        recent = state.get("recent", [])  # absent from checkpoints older than the field
        if not isinstance(recent, list) or len(recent) > RECENT_WINDOW:
            raise ModelFormatError(
                f"online learner state: quality.recent must list at most {RECENT_WINDOW} pairs"
            )
        for pair in recent:
            if not (isinstance(pair, list) and len(pair) == 2 and all(v in (0, 1) for v in pair)):
                raise ModelFormatError(
                    "online learner state: quality.recent holds [fraud, flagged] pairs of 0/1"
                )
            quality._recent.update(bool(pair[0]), bool(pair[1]))
        return quality


def _cells(cm: Any) -> tuple[float, float, float, float]:
    return (
        float(cm.true_positives(True)),
        float(cm.false_positives(True)),
        float(cm.false_negatives(True)),
        float(cm.true_negatives(True)),
    )


def _counts(cm: Any) -> dict[str, float]:
    return dict(zip(_CELLS, _cells(cm), strict=True))


def _replay(cm: Any, counts: object, where: str) -> None:
    """Restore a confusion matrix by one weighted update per cell (river has no setter)."""
    if not isinstance(counts, Mapping) or set(counts) != set(_CELLS):
        raise ModelFormatError(f"online learner state: {where} must map {list(_CELLS)} to counts")
    outcomes = {"tp": (True, True), "fp": (False, True), "fn": (True, False), "tn": (False, False)}
    for cell, (actual, predicted) in outcomes.items():
        weight = count(counts[cell], f"{where}.{cell}")
        if weight:
            cm.update(actual, predicted, w=weight)
