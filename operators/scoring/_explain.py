"""Per-row reason codes from the logistic member's contributions: cheap and faithful.

Method (``logistic_contributions``): the logistic-regression member's logit is
``b + sum_j coef_j * z_j`` with ``z_j`` the median-imputed, standardised feature. Its term
``coef_j * z_j`` is how far feature ``j`` moves this row's log-odds away from an average
training row. The explainer graph returns these terms (0 for a missing input: a missing
value is never a reason); we report the ``k`` largest *positive* ones, i.e. the features
that pushed the score up, as ``HIGH:name`` when the value is above the training mean and
``LOW:name`` when below (e.g. ``LOW:user_seconds_since_prev`` for a rapid-fire burst).
Rows with fewer than ``k`` positive terms get fewer reasons; none for a row nothing pushed
towards fraud. It explains the linear member, not the trees: an approximation of the
ensemble, chosen because it costs one vectorised ONNX run per batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from models.manifest import EXPLAINER_CONTRIBUTIONS, EXPLAINER_STANDARDIZED, MEMBER_INPUT
from operators.exceptions import ScoringError
from operators.scoring._session import check_input, check_output, new_session

__all__ = ["OnnxExplainer"]


class OnnxExplainer:
    """The verified explainer graph plus the reason-code strings, built once per model."""

    __slots__ = ("_high", "_low", "_output_names", "_session")

    def __init__(self, model: bytes, feature_names: Sequence[str], *, file: str = "") -> None:
        what = f"explainer ({file or 'in memory'})"
        self._session = new_session(model, what=what)
        check_input(self._session, len(feature_names), what=what)
        for output in (EXPLAINER_CONTRIBUTIONS, EXPLAINER_STANDARDIZED):
            check_output(self._session, output, 2, what=what)
        self._output_names = [EXPLAINER_CONTRIBUTIONS, EXPLAINER_STANDARDIZED]
        self._high = np.array([f"HIGH:{name}" for name in feature_names], dtype=object)
        self._low = np.array([f"LOW:{name}" for name in feature_names], dtype=object)

    def contributions(
        self, batch: NDArray[np.float32]
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """``(contributions, standardized)``, both ``[n, f]``, for a prepared float32 batch."""
        try:
            contributions, standardized = self._session.run(
                self._output_names, {MEMBER_INPUT: batch}
            )
        except Exception as exc:  # ORT's errors are untyped; the dataflow needs one type
            raise ScoringError(
                f"explainer failed on a batch of shape {list(batch.shape)}: {exc}"
            ) from exc
        return contributions, standardized

    def top_features(self, batch: NDArray[np.float32], k: int) -> list[list[str]]:
        """Up to ``k`` reason codes per row, strongest push first."""
        rows, width = batch.shape
        k = min(k, width)
        if k <= 0 or rows == 0:
            return [[] for _ in range(rows)]
        contributions, standardized = self.contributions(batch)
        if k < width:
            chosen = np.argpartition(-contributions, k - 1, axis=1)[:, :k]
        else:
            chosen = np.broadcast_to(np.arange(width), (rows, width))
        pushes = np.take_along_axis(contributions, chosen, axis=1)
        order = np.argsort(-pushes, axis=1, kind="stable")
        chosen = np.take_along_axis(chosen, order, axis=1)
        pushes = np.take_along_axis(pushes, order, axis=1)
        above_mean = np.take_along_axis(standardized, chosen, axis=1) > 0
        codes = np.where(above_mean, self._high[chosen], self._low[chosen])
        pushed_up = pushes > 0
        return [row[keep].tolist() for row, keep in zip(codes, pushed_up, strict=True)]
