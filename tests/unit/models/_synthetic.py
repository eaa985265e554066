"""A small labelled dataset in the real feature layout, with signal, interactions and NaNs.

Columns follow ``operators.features.FEATURE_NAMES``, so models trained here load where the
dataflow would use them.

Fraud depends on a handful of features, partly through interactions only trees capture
(a burst at new merchants, far travel), so both ensemble members earn weight.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from operators.features import FEATURE_NAMES

START = np.datetime64("2025-03-01T00:00:00", "ms")


class Dataset(NamedTuple):
    features: NDArray[np.float64]
    labels: NDArray[np.int8]
    event_times: NDArray[np.datetime64]
    feature_names: tuple[str, ...]


def column(name: str) -> int:
    return FEATURE_NAMES.index(name)


def make_dataset(rows: int, seed: int = 0, nan_share: float = 0.05) -> Dataset:
    rng = np.random.default_rng(seed)
    x = np.empty((rows, len(FEATURE_NAMES)))
    for i, name in enumerate(FEATURE_NAMES):
        if name.startswith("user_count") or name.startswith("merchant_count"):
            x[:, i] = rng.poisson(2.0, rows)
        elif "amount" in name and "zscore" not in name and "ratio" not in name:
            x[:, i] = rng.lognormal(3.5, 1.0, rows)
        else:
            x[:, i] = rng.normal(0.0, 1.0, rows)
    zscore = rng.normal(0.0, 1.0, rows)
    burst = rng.poisson(1.0, rows).astype(np.float64)
    first_time = (rng.random(rows) < 0.2).astype(np.float64)
    travel = rng.exponential(60.0, rows)
    night = (rng.random(rows) < 0.25).astype(np.float64)
    risk = rng.beta(1.0, 15.0, rows)
    x[:, column("user_amount_zscore_30d")] = zscore
    x[:, column("user_count_1h")] = burst
    x[:, column("user_first_time_merchant")] = first_time
    x[:, column("user_travel_kmh")] = travel
    x[:, column("is_night")] = night
    x[:, column("merchant_risk")] = risk
    logit = (
        -6.5
        + 1.8 * zscore
        + 4.5 * (travel > 250)
        + 4.5 * first_time * (burst >= 3)
        + 14.0 * risk
        + 0.8 * night
    )
    labels = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int8)
    x[rng.random(x.shape) < nan_share] = np.nan
    x[rng.random(rows) < 0.3, column("user_travel_kmh")] = np.nan  # no location known
    offsets = np.sort(rng.integers(0, 28 * 86_400_000, rows)).astype("timedelta64[ms]")
    return Dataset(x, labels, START + offsets, FEATURE_NAMES)
