"""The ensemble's members: how each is fitted, exported to ONNX and checked against itself.

Every member follows one protocol so the trainer, the contract test suite and (later) the
registry treat them alike; adding a member means adding a class and a ``MEMBERS`` entry.
Inputs are float32 everywhere, because ONNX evaluates in float32: fitting on the same
float32 values the scorer will see is what makes native/ONNX parity hold to 1e-5.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np
import onnx
from numpy.typing import NDArray
from onnxmltools import convert_xgboost
from onnxmltools.convert.common.data_types import FloatTensorType as XGBoostFloatTensorType
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType as SklearnFloatTensorType
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from xgboost import XGBClassifier

from models.ensemble._onnx import ONNX_ML_OPSET, ONNX_OPSET, logistic_explainer, to_member_contract
from models.manifest import MEMBER_INPUT

__all__ = [
    "MEMBERS",
    "EnsembleMember",
    "LogisticMember",
    "XGBoostMember",
]

Matrix32 = NDArray[np.float32]
Labels = NDArray[np.int8]


class EnsembleMember(Protocol):
    """A trainable model that can leave Python as an ONNX graph under the member contract."""

    name: str

    def fit(self, features: Matrix32, labels: Labels) -> None:
        """Fit on float32 features (NaN = missing) and 0/1 labels."""

    def predict_native(self, features: Matrix32) -> NDArray[np.float64]:
        """P(fraud) from the in-memory model: the reference the ONNX export must match."""

    def to_onnx(self) -> onnx.ModelProto:
        """Export as ``features float32 [n, f] -> fraud_probability float32 [n]``."""

    def explainer_onnx(self) -> onnx.ModelProto | None:
        """Build a per-feature contribution graph, or return ``None`` if it cannot explain."""


class XGBoostMember:
    """Gradient-boosted trees: the ensemble's strongest ranker.

    NaN goes down each split's learned default branch (also in ONNX, whose tree operator
    tracks missing values), and fraud's rarity is offset with ``scale_pos_weight`` =
    legit/fraud count, so no resampling is needed.
    """

    name = "xgboost"

    def __init__(
        self,
        *,
        n_estimators: int = 200,
        max_depth: int = 5,
        learning_rate: float = 0.1,
        n_jobs: int = 2,
        seed: int = 0,
    ) -> None:
        self._params: dict[str, Any] = {
            "n_estimators": n_estimators,
            "max_depth": max_depth,
            "learning_rate": learning_rate,
            "n_jobs": n_jobs,
            "random_state": seed,
            "tree_method": "hist",
            "objective": "binary:logistic",
            "verbosity": 0,
        }
        self._model: Any = None
        self._width = 0

    def fit(self, features: Matrix32, labels: Labels) -> None:
        """Fit with ``scale_pos_weight`` set from the label balance."""
        frauds = int(labels.sum())
        weight = (len(labels) - frauds) / max(frauds, 1)
        self._model = XGBClassifier(scale_pos_weight=weight, **self._params)
        self._model.fit(features, labels)
        self._width = features.shape[1]

    def predict_native(self, features: Matrix32) -> NDArray[np.float64]:
        """P(fraud) from the booster."""
        return np.asarray(self._model.predict_proba(features)[:, 1], dtype=np.float64)

    def to_onnx(self) -> onnx.ModelProto:
        """Export with onnxmltools (TreeEnsembleClassifier), then apply the member contract."""
        exported = convert_xgboost(
            self._model,
            initial_types=[(MEMBER_INPUT, XGBoostFloatTensorType([None, self._width]))],
            target_opset=ONNX_OPSET,
        )
        return to_member_contract(exported, self.name)

    def explainer_onnx(self) -> onnx.ModelProto | None:
        """Trees get no explainer: the logistic member's contributions are cheaper to serve."""
        return None


class LogisticMember:
    """Median imputation, standardisation and a class-balanced logistic regression.

    A weak but well-calibrated, monotone model that disagrees with the trees in useful
    ways, and whose coefficients make per-row reason codes nearly free. Columns that are
    entirely missing in training are kept (imputed to 0) so the input width never changes.
    """

    name = "logreg"

    def __init__(self, *, max_iter: int = 1000, seed: int = 0) -> None:
        self._max_iter = max_iter
        self._seed = seed
        self._pipeline: Any = None
        self._width = 0

    def fit(self, features: Matrix32, labels: Labels) -> None:
        """Fit the imputer, the scaler and the regression on the same rows."""
        self._pipeline = Pipeline(
            [
                (
                    "impute",
                    SimpleImputer(strategy="median", add_indicator=False, keep_empty_features=True),
                ),
                ("scale", StandardScaler()),
                (
                    "classify",
                    LogisticRegression(
                        class_weight="balanced", max_iter=self._max_iter, random_state=self._seed
                    ),
                ),
            ]
        )
        self._pipeline.fit(features, labels)
        self._width = features.shape[1]

    def predict_native(self, features: Matrix32) -> NDArray[np.float64]:
        """P(fraud) from the scikit-learn pipeline."""
        return np.asarray(self._pipeline.predict_proba(features)[:, 1], dtype=np.float64)

    def to_onnx(self) -> onnx.ModelProto:
        """Export with skl2onnx, probabilities as a plain tensor (no ZipMap)."""
        exported = convert_sklearn(
            self._pipeline,
            initial_types=[(MEMBER_INPUT, SklearnFloatTensorType([None, self._width]))],
            options={id(self._pipeline): {"zipmap": False}},
            target_opset={"": ONNX_OPSET, "ai.onnx.ml": ONNX_ML_OPSET},
        )
        return to_member_contract(exported, self.name)

    def explainer_onnx(self) -> onnx.ModelProto | None:
        """Per-feature logit contributions: ``coef * standardized value``."""
        impute = self._pipeline.named_steps["impute"]
        scale = self._pipeline.named_steps["scale"]
        classify = self._pipeline.named_steps["classify"]
        return logistic_explainer(
            medians=impute.statistics_,
            means=scale.mean_,
            scales=scale.scale_,
            coefficients=classify.coef_[0],
        )

    def native_contributions(self, features: Matrix32) -> NDArray[np.float64]:
        """Native per-feature contributions (NaN inputs count 0), the explainer's reference."""
        impute = self._pipeline.named_steps["impute"]
        scale = self._pipeline.named_steps["scale"]
        classify = self._pipeline.named_steps["classify"]
        standardized = scale.transform(impute.transform(features))
        contributions = np.asarray(standardized * classify.coef_[0], dtype=np.float64)
        contributions[np.isnan(features)] = 0.0
        return contributions


def _online_member(seed: int) -> EnsembleMember:
    """The online learner as a member (deterministic: ``seed`` is not needed).

    Imported on use because :mod:`models.online` builds its graph with this package's
    ONNX helpers; importing it here at module level would be circular.
    """
    from models.online import OnlineMember

    return OnlineMember()


#: Every member the trainer knows, by manifest name, as factories taking the seed.
#: ``online`` (:class:`models.online.OnlineMember`) is known but not trained by default.
MEMBERS: Mapping[str, Callable[[int], EnsembleMember]] = {
    XGBoostMember.name: lambda seed: XGBoostMember(seed=seed),
    LogisticMember.name: lambda seed: LogisticMember(seed=seed),
    "online": _online_member,
}
