"""Tiny real online models and the ModelUpdate messages that announce them.

The learner is the feedback service's own (:class:`models.online.OnlineLearner`), taught a
few hundred labels on random features and exported with
:func:`models.online.write_online_model`, so the scorer loads, verifies and scores exactly
what production publishes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from models.online import OnlineLearner, write_online_model
from operators.engine import DECISION_FEATURES
from schemas import ModelUpdate

__all__ = ["online_update", "train_online"]


def train_online(folder: Path, version: str, seed: int, labels: int = 300) -> tuple[Path, str]:
    """Learn ``labels`` random labels over the decision features; (onnx path, its sha256)."""
    rng = np.random.default_rng(seed)
    learner = OnlineLearner(DECISION_FEATURES)
    for values in rng.normal(size=(labels, len(DECISION_FEATURES))):
        features = dict(zip(DECISION_FEATURES, values.tolist(), strict=True))
        learner.learn_one(features, bool(values[0] + 0.5 * values[1] > 0.8))
    return write_online_model(learner, folder, version)


def online_update(path: Path, sha256: str, version: str | None = None) -> ModelUpdate:
    """The update the feedback service publishes for the online model at ``path``."""
    return ModelUpdate(
        version=version or path.stem,
        role="online",
        uri=str(path.resolve()),
        sha256=sha256,
        published_at=datetime.now(UTC),
    )
