"""Reference distributions stored with a model, and the PSI that compares live data to them.

A model is only as good as the resemblance of live traffic to the data it was judged
on. The trainer stores, per feature and for the score, the decile histogram of the
validation rows (:class:`~models.manifest.Distribution`); a drift check bins live values
with :func:`bin_shares` on the same edges and compares with
:func:`population_stability_index`. Both sides use these functions, so the bins can
never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from models.exceptions import EvaluationError
from models.manifest import Distribution, ReferenceDistributions

__all__ = [
    "bin_shares",
    "population_stability_index",
    "psi_of_shares",
    "reference_distribution",
    "reference_distributions",
]

_DECILES = np.arange(1, 10) / 10.0
#: Floor for an empty bin's share in PSI: keeps ln() finite, and a bin empty on both
#: sides contributes 0.
_PSI_FLOOR = 1e-4


def reference_distribution(values: NDArray[np.floating]) -> Distribution:
    """Decile edges of the non-null values, and the share of rows in each bin and null.

    Edges are observed values (no interpolation), duplicates merged: a 0/1 flag gets the
    bins ``<= 0``, ``(0, 1]`` and ``> 1``. Infinite values fall into the outer bins.
    """
    column = np.asarray(values, dtype=np.float64)
    if column.ndim != 1 or column.size == 0:
        raise EvaluationError(f"need a non-empty 1-d column, got shape {column.shape}")
    finite = column[np.isfinite(column)]
    edges: NDArray[np.float64] = (
        np.unique(np.quantile(finite, _DECILES, method="inverted_cdf"))
        if finite.size
        else np.empty(0, dtype=np.float64)
    )
    shares, null_share = _shares(column, edges)
    return Distribution(
        edges=tuple(edges.tolist()),
        shares=tuple(shares.tolist()),
        null_share=null_share,
        low=float(finite.min()) if finite.size else None,
        high=float(finite.max()) if finite.size else None,
    )


def reference_distributions(
    features: NDArray[np.floating], feature_names: Sequence[str], scores: NDArray[np.floating]
) -> ReferenceDistributions:
    """The histograms of every feature column and of the ensemble score."""
    matrix = np.asarray(features, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != len(feature_names):
        raise EvaluationError(f"{matrix.shape} features for {len(feature_names)} names")
    if len(scores) != matrix.shape[0]:
        raise EvaluationError(f"{len(scores)} scores for {matrix.shape[0]} rows")
    return ReferenceDistributions(
        rows=int(matrix.shape[0]),
        features={
            name: reference_distribution(matrix[:, i]) for i, name in enumerate(feature_names)
        },
        score=reference_distribution(np.asarray(scores, dtype=np.float64)),
    )


def bin_shares(
    values: NDArray[np.floating], reference: Distribution
) -> tuple[NDArray[np.float64], float]:
    """Live values binned on the reference's edges: ``(shares per bin, null share)``."""
    column = np.asarray(values, dtype=np.float64)
    if column.ndim != 1 or column.size == 0:
        raise EvaluationError(f"need a non-empty 1-d column, got shape {column.shape}")
    return _shares(column, np.asarray(reference.edges, dtype=np.float64))


def population_stability_index(reference: Distribution, values: NDArray[np.floating]) -> float:
    """PSI of live ``values`` against the reference, the null share counted as one more bin.

    ``sum((actual - expected) * ln(actual / expected))``; by the usual reading < 0.1 is
    stable, 0.1-0.25 a shift worth watching, > 0.25 a shift worth acting on.
    """
    shares, null_share = bin_shares(values, reference)
    return psi_of_shares(reference, np.append(shares, null_share))


def psi_of_shares(reference: Distribution, actual_shares: NDArray[np.floating]) -> float:
    """PSI of live shares (one per bin, then the null share) against the reference.

    What :func:`population_stability_index` computes once the values are binned; a
    streaming monitor that keeps bin counts over a sliding window calls this directly.
    """
    actual = np.maximum(np.asarray(actual_shares, dtype=np.float64), _PSI_FLOOR)
    if actual.shape != (len(reference.shares) + 1,):
        raise EvaluationError(
            f"{actual.shape[0]} shares for {len(reference.shares)} bins and the null share"
        )
    expected = np.maximum(
        np.append(np.asarray(reference.shares, dtype=np.float64), reference.null_share),
        _PSI_FLOOR,
    )
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _shares(
    column: NDArray[np.float64], edges: NDArray[np.float64]
) -> tuple[NDArray[np.float64], float]:
    nulls = np.isnan(column)
    bins = np.searchsorted(edges, column[~nulls], side="left")
    counts = np.bincount(bins, minlength=edges.size + 1)
    return counts / column.size, float(nulls.sum() / column.size)
