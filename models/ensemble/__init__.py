"""The fraud model ensemble: members, their ONNX export, weights, thresholds and training.

Training lives here, serving in :mod:`operators.scoring`; the two meet only in the model
directory that :func:`train_ensemble` writes and :mod:`models.manifest` describes, so the
scorer never imports a training library and never unpickles anything.

Members: ``xgboost`` (gradient-boosted trees, NaN-aware, ``scale_pos_weight`` for the
imbalance) and ``logreg`` (median imputation + standardisation + class-balanced logistic
regression, which also provides the reason-code explainer). ``MEMBERS`` also knows
``online`` (:class:`models.online.OnlineMember`, the label-stream learner replayed over
history), which is not in ``DEFAULT_MEMBERS``. Combination: weighted mean
of member probabilities, weights chosen on time-ordered validation data by average
precision over a 0.1 grid (:func:`choose_weights`).
"""

from models.ensemble._members import MEMBERS, EnsembleMember, LogisticMember, XGBoostMember
from models.ensemble._selection import (
    ThresholdPolicy,
    choose_thresholds,
    choose_weights,
    score_metrics,
    weighted_mean,
)
from models.ensemble._train import DEFAULT_MEMBERS, PARITY_TOLERANCE, train_ensemble

__all__ = [
    "DEFAULT_MEMBERS",
    "MEMBERS",
    "PARITY_TOLERANCE",
    "EnsembleMember",
    "LogisticMember",
    "ThresholdPolicy",
    "XGBoostMember",
    "choose_thresholds",
    "choose_weights",
    "score_metrics",
    "train_ensemble",
    "weighted_mean",
]
