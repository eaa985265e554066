"""The online learner as an ensemble member, so the member contract suite covers it.

Fitting replays a labelled history through :meth:`OnlineLearner.learn_one` in row order
(one pass, as the live learner would have seen it), which is also how a live learner can
be warm-started from history before it follows the label stream.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from numpy.typing import NDArray

from models.exceptions import TrainingError
from models.online._graph import ONLINE_ROLE
from models.online._learner import OnlineLearner

__all__ = ["OnlineMember"]


class OnlineMember:
    """An :class:`~models.ensemble.EnsembleMember` wrapping one :class:`OnlineLearner`.

    Without ``feature_names`` the columns are named ``x0``, ``x1``, ... (the member
    protocol passes bare matrices); pass the real names to reuse :attr:`learner` live.
    """

    name = ONLINE_ROLE

    def __init__(
        self,
        *,
        feature_names: Sequence[str] | None = None,
        learning_rate: float = 0.05,
        l2: float = 1e-4,
        fraud_weight: float = 1.0,
    ) -> None:
        self._feature_names = None if feature_names is None else tuple(feature_names)
        self._settings = {"learning_rate": learning_rate, "l2": l2, "fraud_weight": fraud_weight}
        self._learner: OnlineLearner | None = None

    @property
    def learner(self) -> OnlineLearner:
        """The fitted learner (TrainingError before :meth:`fit`)."""
        if self._learner is None:
            raise TrainingError(f"member {self.name!r} is not fitted")
        return self._learner

    def fit(self, features: NDArray[np.float32], labels: NDArray[np.int8]) -> None:
        """Learn every row once, in order (NaN = missing), with progressive validation."""
        if features.ndim != 2 or len(features) != len(labels):
            raise TrainingError(
                f"member {self.name!r}: features {list(features.shape)} and "
                f"{len(labels)} labels do not line up"
            )
        width = features.shape[1]
        names = self._feature_names or tuple(f"x{i}" for i in range(width))
        if len(names) != width:
            raise TrainingError(f"member {self.name!r}: {len(names)} names for {width} columns")
        learner = OnlineLearner(names, **self._settings)
        for row, label in zip(features.tolist(), labels.tolist(), strict=True):
            learner.learn_one(dict(zip(names, row, strict=True)), bool(label))
        self._learner = learner

    def predict_native(self, features: NDArray[np.float32]) -> NDArray[np.float64]:
        """P(fraud) from the learner's parameters in float64 (what ``predict_one`` computes)."""
        return self.learner.predict_many(features)

    def to_onnx(self) -> onnx.ModelProto:
        """The learner's hand-built graph (already under the member contract)."""
        return self.learner.to_onnx()

    def explainer_onnx(self) -> onnx.ModelProto | None:
        """No explainer: reason codes come from the batch ``logreg`` member."""
        return None
