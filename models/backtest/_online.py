"""The feedback loop's online learner, fed labels as they become visible in event time.

Live, the feedback service joins each label with its decision, learns it with
:class:`models.online.OnlineLearner` on the decision's features
(:data:`operators.engine.DECISION_FEATURES`) and publishes the learner as ONNX; scorers
load it as an :class:`operators.scoring.OnlineScorer` and blend it into the champion with
:class:`operators._blend.OnlineBlend`. Here the same three pieces run in-process:
before each batch, every label visible by the batch's start that was not learnt yet is
learnt (in the order labels became visible), and the learner is exported to ONNX again
if it changed. So a batch is scored by an online model that knows exactly the labels
visible before it, never one more.

``feedback`` labels are the ones a fraud team sends (every fraud, and the legit rows it
reviewed or blocked, whose verdict an analyst gives); ``all`` sends every label.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from models.backtest._config import OnlineLabels
from models.backtest._history import NO_LABEL, Prepared
from models.manifest import sha256_bytes
from models.online import OnlineLearner
from operators.engine import DECISION_FEATURES
from operators.scoring import OnlineScorer, OnnxMember

__all__ = ["OnlineFeed"]

_FEATURES = len(DECISION_FEATURES)


class OnlineFeed:
    """Feeds the learner the labels visible at each batch start; serves it as ONNX."""

    def __init__(self, prepared: Prepared, mode: OnlineLabels) -> None:
        self.learner = OnlineLearner(DECISION_FEATURES)
        self._prepared = prepared
        self._mode = mode
        self._labelled = np.flatnonzero(prepared.labels != NO_LABEL)
        self._next = 0  # index into ``_labelled``
        self._scorer: OnlineScorer | None = None
        self._exported_at = -1
        self.learnt = 0

    def learn_until(self, moment_ms: int, codes: NDArray[np.int8]) -> int:
        """Learn every label visible strictly before ``moment_ms``; return how many.

        ``codes`` are the decisions made so far (row-aligned; 0/1/2 for APPROVE/REVIEW/
        BLOCK): in ``feedback`` mode a legit label reaches the learner only if its
        transaction was reviewed or blocked. A label is always of an earlier event than
        ``moment_ms``, so its decision is already made.
        """
        prepared = self._prepared
        labelled = self._labelled
        stop = int(np.searchsorted(prepared.known_ms[labelled], moment_ms, "left"))
        rows = labelled[self._next : stop]
        self._next = stop
        if rows.size == 0:
            return 0
        if self._mode == "feedback":
            rows = rows[(prepared.labels[rows] == 1) | (codes[rows] > 0)]
        learner, names = self.learner, DECISION_FEATURES
        matrix = np.hstack((prepared.features[rows], prepared.merchant_labels[rows])).tolist()
        for values, label in zip(matrix, prepared.labels[rows].tolist(), strict=True):
            learner.learn_one(dict(zip(names, values, strict=True)), label == 1)
        self.learnt += len(rows)
        return len(rows)

    def scorer(self, moment_ms: int) -> OnlineScorer | None:
        """The learner as the scorers would load it (ONNX), or None before any label."""
        learnt = self.learner.n_learned
        if learnt == 0:
            return None
        if learnt != self._exported_at:
            data = self.learner.to_onnx().SerializeToString()
            moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=moment_ms)
            self._scorer = OnlineScorer(
                OnnxMember("online", data, _FEATURES, file="in memory"),
                version=f"online-{moment:%Y%m%dT%H%M}-n{learnt}",
                feature_names=DECISION_FEATURES,
                sha256=sha256_bytes(data),
            )
            self._exported_at = learnt
        return self._scorer
