"""Labelled history -> ``(features, labels, event_times)``, the input of ``train_ensemble``.

Features come from :func:`operators.features.features_for_frame`, the same code the live
dataflow runs, so a model is trained on exactly the vector it will be served: no
training/serving skew. The column order is ``operators.features.FEATURE_NAMES``; pass it
as ``feature_names`` when training.

Velocity features need every transaction, labelled or not (an unlabelled purchase still
counts towards the next one's ``user_count_1h``), so features are computed on the whole
frame first and only then restricted to rows with a known label.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from models.exceptions import TrainingError
from operators.features import FEATURE_NAMES, MerchantRisk, features_for_frame

__all__ = ["TrainingSet", "build_training_set"]

_LABELS = {0: 0, 1: 1, "legit": 0, "fraud": 1}  # bools and 0.0/1.0 hash like 0/1


class TrainingSet(NamedTuple):
    """Row-aligned arrays: float64 features ``[n, len(FEATURE_NAMES)]``, 0/1 labels, UTC times."""

    features: NDArray[np.float64]
    labels: NDArray[np.int8]
    event_times: NDArray[np.datetime64]


def build_training_set(
    frame: pd.DataFrame, *, merchant_risk: MerchantRisk | None = None
) -> TrainingSet:
    """Compute features for a history frame and keep its labelled rows.

    ``frame`` has the Transaction columns plus ``label`` (1/0 or "fraud"/"legit"; missing
    = unlabelled), as returned by the simulator's or ``schemas.history``'s
    ``read_history``. Event times come back as naive UTC ``datetime64[ms]``.
    ``merchant_risk`` is the point-in-time risk lookup ``features_for_frame`` takes (the
    feature is NaN without it, as in serving when Redis has no value). Bad transaction
    columns raise ``operators.exceptions.FeatureInputError`` from the feature code.
    """
    missing = [column for column in ("label", "event_time") if column not in frame.columns]
    if missing:
        raise TrainingError(f"history frame lacks {missing}; columns: {list(frame.columns)[:20]}")
    features = np.asarray(features_for_frame(frame, merchant_risk=merchant_risk), dtype=np.float64)
    if features.shape != (len(frame), len(FEATURE_NAMES)):
        raise TrainingError(
            f"features_for_frame returned {features.shape}, "
            f"expected ({len(frame)}, {len(FEATURE_NAMES)})"
        )
    labels = frame["label"].map(_LABELS)
    unknown = labels.isna() & frame["label"].notna()
    if unknown.any():
        bad = sorted({str(v) for v in frame.loc[unknown, "label"].head(5)})
        raise TrainingError(f"labels must be 1/0 or fraud/legit, got {bad}")
    labelled = labels.notna().to_numpy()
    times = pd.DatetimeIndex(pd.to_datetime(frame["event_time"], utc=True)).tz_convert(None)
    return TrainingSet(
        features=features[labelled],
        labels=labels[labelled].to_numpy(dtype=np.int8),
        event_times=times.to_numpy(dtype="datetime64[ms]")[labelled],
    )
