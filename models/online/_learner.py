"""The online learner: a logistic regression that keeps learning from analysts' verdicts.

The ensemble is retrained in batches, days apart; fraud rings change tactics within
hours. A model that takes one SGD step per confirmed label closes that gap cheaply, and a
linear one stays predictable: each step moves the score of similar transactions a little,
never flips unrelated ones, and the whole model is a few numbers per feature, so it is
checkpointed as JSON and served as a tiny hand-built ONNX graph.

It is river parts composed in the order of a river pipeline (each stage learns, then
transforms): a running mean per feature (:class:`river.stats.Mean`) imputes missing
values, :class:`river.preprocessing.StandardScaler` standardises, the result is clipped to
``[-CLIP, CLIP]`` so one heavy-tailed amount cannot blow up an SGD step, and
:class:`river.linear_model.LogisticRegression` (plain SGD, L2) learns. Missing means
``None``, NaN, ±inf or an absent key: a non-finite feature is a bug upstream, never a
reason to score higher, so it is imputed and never enters the running statistics.

Class imbalance: fraud is ~1% of traffic, but analysts mostly label suspicious
transactions, so the labelled stream is far less skewed than traffic. ``fraud_weight``
(river's ``Log(weight_pos=...)``) scales fraud gradients; it defaults to 1 and is the
place to compensate if the labelled stream turns out heavily skewed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray
from river import linear_model, optim, preprocessing, stats, utils

from models.exceptions import ModelFormatError, TrainingError
from models.online._graph import Parameters, learner_graph
from models.online._quality import ProgressiveQuality
from models.online._state import check_state, number

__all__ = ["CLIP", "OnlineLearner"]

#: Standardised values are clipped to [-CLIP, CLIP] before the regression, here and in ONNX.
CLIP = 10.0
#: Version of :meth:`OnlineLearner.state`'s layout.
STATE_FORMAT = 1

Features = Mapping[str, float | None]


class OnlineLearner:
    """P(fraud) learnt one verdict at a time; see the module doc for the design.

    ``learning_rate`` is the SGD step for weights and intercept, ``l2`` the ridge penalty
    pulling weights toward 0 (old lessons fade slowly), ``fraud_weight`` the multiplier on
    the gradient of fraud labels.
    """

    def __init__(
        self,
        feature_names: Sequence[str],
        *,
        learning_rate: float = 0.05,
        l2: float = 1e-4,
        fraud_weight: float = 1.0,
    ) -> None:
        names = tuple(feature_names)
        if not names or len(set(names)) != len(names):
            raise TrainingError("online learner: feature_names must be non-empty and unique")
        if not all(isinstance(name, str) and name for name in names):
            raise TrainingError("online learner: feature names must be non-empty strings")
        if not (math.isfinite(learning_rate) and learning_rate > 0):
            raise TrainingError(f"online learner: learning_rate must be > 0, got {learning_rate}")
        if not (math.isfinite(l2) and l2 >= 0):
            raise TrainingError(f"online learner: l2 must be >= 0, got {l2}")
        if not (math.isfinite(fraud_weight) and fraud_weight > 0):
            raise TrainingError(f"online learner: fraud_weight must be > 0, got {fraud_weight}")
        self.feature_names: tuple[str, ...] = names
        self.learning_rate = float(learning_rate)
        self.l2 = float(l2)
        self.fraud_weight = float(fraud_weight)
        #: Labels learned with :meth:`learn_one` (corrections are counted in ``n_corrected``).
        self.n_learned = 0
        self.n_corrected = 0
        self._impute = {name: stats.Mean() for name in names}
        # river's estimators are unannotated: typed Any here, at the boundary.
        self._scaler: Any = preprocessing.StandardScaler()
        self._model: Any = linear_model.LogisticRegression(
            optimizer=optim.SGD(self.learning_rate),
            loss=optim.losses.Log(weight_pos=self.fraud_weight),
            l2=self.l2,
            intercept_lr=self.learning_rate,
        )
        self._quality = ProgressiveQuality()

    # -- learning and predicting ---------------------------------------------------------

    def predict_one(self, features: Features) -> float:
        """P(fraud) of one transaction; missing, None and non-finite values are imputed."""
        return self._probability(self._standardised(self._imputed(self._observed(features))))

    def learn_one(self, features: Features, fraud: bool) -> float:
        """Learn one verdict; return the prediction made *before* learning it.

        Progressive validation: that prediction updates :meth:`quality` first, then the
        imputation means (observed values only), the scaler and the regression learn.
        """
        observed = self._observed(features)
        before = self._probability(self._standardised(self._imputed(observed)))
        self._quality.update(bool(fraud), before)
        for name, value in observed.items():
            self._impute[name].update(value)
        imputed = self._imputed(observed)
        self._scaler.learn_one(imputed)
        self._model.learn_one(self._standardised(imputed), bool(fraud))
        self.n_learned += 1
        return before

    def correct(self, features: Features, fraud: bool) -> None:
        """Apply a changed verdict: unlearn the old label, then learn ``fraud``.

        SGD cannot delete a past step, so the old lesson is undone approximately: one
        step on the old label with negated weight (a gradient *ascent* step at the current
        prediction), then one ordinary step on the new label. For a logistic loss the
        pair moves the weights by about ``learning_rate * x`` (``x`` standardised) toward
        the new verdict whatever the current prediction, i.e. like learning the new label
        with weight 2 at p = 0.5 (``fraud_weight`` scales the fraud half of the pair).

        The imputation means and the scaler already counted these features when the
        first verdict was learned, so they are left alone; the progressive metrics and
        ``n_learned`` are not touched either (that prediction was already scored).
        """
        standardised = self._standardised(self._imputed(self._observed(features)))
        self._model.learn_one(standardised, not fraud, w=-1.0)
        self._model.learn_one(standardised, bool(fraud))
        self.n_corrected += 1

    def predict_many(self, matrix: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
        """P(fraud) for a ``[n, len(feature_names)]`` matrix (NaN = missing), vectorised.

        Same arithmetic as :meth:`predict_one` in numpy float64, for batch evaluation.
        """
        x = np.asarray(matrix, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            raise TrainingError(
                f"online learner: expected [n, {len(self.feature_names)}], got {list(x.shape)}"
            )
        p = self.parameters()
        imputed = np.where(np.isfinite(x), x, p.impute)
        standardised = np.clip((imputed - p.centre) * p.inverse_scale, -CLIP, CLIP)
        logits = standardised @ p.weights + p.intercept
        return np.asarray(np.exp(-np.logaddexp(0.0, -logits)), dtype=np.float64)  # sigmoid

    def quality(self) -> dict[str, float]:
        """Progressive validation: ``auc``, ``logloss``, ``precision``, ``recall``, ``labels``.

        Precision and recall count a prediction >= 0.5 as fraud. A figure is NaN while it
        is undefined (e.g. AUC before both classes were seen). River's ROC AUC is an
        approximation on a 50-threshold grid.
        """
        return {**self._quality.report(), "labels": float(self.n_learned)}

    def parameters(self) -> Parameters:
        """The current model as arrays: what :meth:`to_onnx` bakes into the graph."""
        names = self.feature_names
        variances = np.array([self._scaler.vars.get(n, 0.0) for n in names], dtype=np.float64)
        scales = np.sqrt(variances)
        inverse = np.divide(1.0, scales, out=np.zeros_like(scales), where=scales > 0)
        weights = self._model.weights
        return Parameters(
            impute=np.array([self._impute[n].get() for n in names], dtype=np.float64),
            centre=np.array([self._scaler.means.get(n, 0.0) for n in names], dtype=np.float64),
            inverse_scale=inverse,
            weights=np.array([weights.get(n, 0.0) for n in names], dtype=np.float64),
            intercept=float(self._model.intercept),
        )

    def to_onnx(self) -> onnx.ModelProto:
        """This model as ``features float32 [n, f] -> fraud_probability float32 [n]``."""
        return learner_graph(self.parameters(), CLIP, n_learned=self.n_learned)

    # -- checkpoint ----------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """A JSON-serialisable checkpoint (plain floats, lists, dicts): :meth:`from_state` input.

        It holds the hyper-parameters, the imputation means with their counts, the
        scaler's counts/means/variances, the weights, the intercept, the optimiser's step
        count and the progressive metrics' counters, so a restored learner predicts and
        learns exactly as this one would.
        """
        names = self.feature_names
        scaler = self._scaler
        weights = self._model.weights
        return {
            "format": STATE_FORMAT,
            "feature_names": list(names),
            "learning_rate": self.learning_rate,
            "l2": self.l2,
            "fraud_weight": self.fraud_weight,
            "n_learned": self.n_learned,
            "n_corrected": self.n_corrected,
            "impute": {
                n: {"n": float(self._impute[n].n), "mean": float(self._impute[n].get())}
                for n in names
            },
            "scaler": {
                "counts": {n: int(scaler.counts.get(n, 0)) for n in names},
                "means": {n: float(scaler.means.get(n, 0.0)) for n in names},
                "vars": {n: float(scaler.vars.get(n, 0.0)) for n in names},
            },
            "weights": {n: float(weights.get(n, 0.0)) for n in names},
            "intercept": float(self._model.intercept),
            "optimizer_steps": int(self._model.optimizer.n_iterations),
            "quality": self._quality.state(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> OnlineLearner:
        """Rebuild a learner from :meth:`state`; ModelFormatError names what is wrong."""
        checked = check_state(state, STATE_FORMAT)
        try:
            learner = cls(
                checked.feature_names,
                learning_rate=number(state, "learning_rate"),
                l2=number(state, "l2"),
                fraud_weight=number(state, "fraud_weight"),
            )
        except TrainingError as exc:
            raise ModelFormatError(f"online learner state: {exc}") from exc
        learner.n_learned = checked.n_learned
        learner.n_corrected = checked.n_corrected
        learner._impute = {
            n: stats.Mean._from_state(count, mean) for n, (count, mean) in checked.impute.items()
        }
        learner._scaler = preprocessing.StandardScaler._from_state(
            checked.scaler_counts, checked.scaler_means, checked.scaler_vars
        )
        model = learner._model
        model._weights = utils.VectorDict(dict(checked.weights))  # river 0.26: no public setter
        model.intercept = checked.intercept
        model.optimizer.n_iterations = checked.optimizer_steps
        learner._quality = ProgressiveQuality.from_state(checked.quality)
        return learner

    # -- one row -------------------------------------------------------------------------

    def _observed(self, features: Features) -> dict[str, float]:
        observed: dict[str, float] = {}
        for name in self.feature_names:
            value = features.get(name)
            if value is None:
                continue
            value = float(value)
            if math.isfinite(value):
                observed[name] = value
        return observed

    def _imputed(self, observed: Mapping[str, float]) -> dict[str, float]:
        return {
            name: observed[name] if name in observed else mean.get()
            for name, mean in self._impute.items()
        }

    def _probability(self, standardised: dict[str, float]) -> float:
        return float(self._model.predict_proba_one(standardised)[True])

    def _standardised(self, imputed: dict[str, float]) -> dict[str, float]:
        scaled: dict[str, float] = self._scaler.transform_one(imputed)
        return {name: min(max(value, -CLIP), CLIP) for name, value in scaled.items()}
