"""Drift of live traffic away from what the serving model was judged on.

A model fails silently: nothing errors, its scores just stop meaning what they meant. The
champion's manifest keeps the decile histogram of every feature and of its score on the
validation rows (``models.reference``). This monitor bins each scored batch on those same
edges, keeps the counts over a sliding window of wall-clock time, and compares them with
the same PSI function training uses (:func:`models.reference.psi_of_shares`), so live and
offline figures can never disagree on the bins. It also tracks, per feature, the null
share (next to the reference's, since some features are null by design) and the share of
values outside the range training saw; and runs river's ADWIN on the score stream, which
notices a change in the mean score long before a PSI over an hour does.

The window is ``slices`` time slices: a batch adds its counts to the current slice and to
running totals, an expired slice is subtracted again, so a report costs
O(features x bins) however much traffic the window holds. Binning is vectorised over the
whole batch. One monitor serves a whole process (every worker thread), behind a lock.
A new champion resets everything: its reference, and its score scale, are new.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from river.drift import ADWIN

from models.manifest import Distribution, ReferenceDistributions
from models.reference import psi_of_shares

__all__ = ["DriftMonitor", "DriftReport"]

#: Columns of a count row: up to 10 bins (deciles), then the null count.
_WIDTH = 11
_NULL = _WIDTH - 1


@dataclass(frozen=True, slots=True)
class DriftReport:
    """The window's figures; a feature the reference lacks is absent from the dicts."""

    model_version: str
    rows: int
    scored_rows: int
    #: None until the window holds scored rows (every batch so far was degraded).
    prediction_psi: float | None
    feature_psi: dict[str, float]
    null_ratio: dict[str, float]
    reference_null_ratio: dict[str, float]
    #: Only for features whose reference records a range (manifest format 3).
    out_of_range_ratio: dict[str, float]
    #: ADWIN's mean of the recent scores, and its change detections since the process
    #: started (a running total across models, like a Prometheus counter).
    score_mean: float | None
    score_detections: int


class _Layout:
    """The reference's bins, padded to one array so a batch bins in one numpy pass."""

    def __init__(self, reference: ReferenceDistributions, feature_names: Sequence[str]) -> None:
        known = [(i, n) for i, n in enumerate(feature_names) if n in reference.features]
        self.names = tuple(name for _, name in known)
        self.columns = np.array([i for i, _ in known], dtype=np.intp)
        self.features = tuple(reference.features[name] for name in self.names)
        self.edges = _padded_edges(self.features)
        self.low = np.array([_bound(d.low) for d in self.features], dtype=np.float64)
        self.high = np.array([_bound(d.high) for d in self.features], dtype=np.float64)
        self.score = reference.score
        self.score_edges = _padded_edges((reference.score,))


class _Counts:
    """Counts of one time slice, or of the whole window (the running totals)."""

    def __init__(self, features: int) -> None:
        self.rows = 0
        self.bins = np.zeros((features, _WIDTH), dtype=np.int64)
        self.out_of_range = np.zeros(features, dtype=np.int64)
        self.scored = 0
        self.score_bins = np.zeros(_WIDTH, dtype=np.int64)

    def add(self, other: _Counts, sign: int = 1) -> None:
        self.rows += sign * other.rows
        self.bins += sign * other.bins
        self.out_of_range += sign * other.out_of_range
        self.scored += sign * other.scored
        self.score_bins += sign * other.score_bins


class DriftMonitor:
    """Sliding-window drift figures of one process; see the module doc."""

    def __init__(
        self,
        *,
        window_s: float = 3600.0,
        slices: int = 12,
        min_rows: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``report()`` stays None until the window holds ``min_rows`` rows."""
        if window_s <= 0 or slices < 1 or min_rows < 1:
            raise ValueError("window_s > 0, slices >= 1 and min_rows >= 1 are required")
        self._slice_s = window_s / slices
        self._slices = slices
        self._min_rows = min_rows
        self._clock = clock
        self._lock = threading.Lock()
        self._version: str | None = None
        self._layout: _Layout | None = None
        self._window: deque[tuple[int, _Counts]] = deque()
        self._totals = _Counts(0)
        self._adwin: Any = _new_detector()
        self._detections = 0

    def observe(
        self,
        model_version: str,
        reference: ReferenceDistributions,
        feature_names: Sequence[str],
        features: NDArray[np.float64],
        scores: NDArray[np.float64] | None,
    ) -> None:
        """Count one batch: ``features`` is [rows, len(feature_names)]; ``scores`` the model's."""
        if features.shape[0] == 0:
            return
        with self._lock:
            layout = self._layout
            if model_version != self._version or layout is None:
                layout = self._reset(model_version, reference, feature_names)
        # Binning, the costly part, runs outside the lock: worker threads only queue for
        # the additions below.
        counts, scored = _count(layout, features, scores)
        with self._lock:
            if layout is not self._layout:
                return  # a new model arrived meanwhile: this batch was scored by the old one
            if scored.size:
                self._watch_scores(scored)
            self._current_slice().add(counts)
            self._totals.add(counts)

    def window_rows(self) -> int:
        """Rows the window holds now (reported or not)."""
        with self._lock:
            self._expire()
            return self._totals.rows

    def report(self) -> DriftReport | None:
        """The figures over the window, or None while it holds fewer than ``min_rows``."""
        with self._lock:
            self._expire()
            layout, totals = self._layout, self._totals
            if layout is None or self._version is None or totals.rows < self._min_rows:
                return None
            rows = totals.rows
            psi, nulls, outside = {}, {}, {}
            for i, (name, reference) in enumerate(zip(layout.names, layout.features, strict=True)):
                psi[name] = _psi(reference, totals.bins[i], rows)
                nulls[name] = float(totals.bins[i, _NULL] / rows)
                if reference.low is not None:
                    outside[name] = float(totals.out_of_range[i] / rows)
            return DriftReport(
                model_version=self._version,
                rows=rows,
                scored_rows=totals.scored,
                prediction_psi=(
                    _psi(layout.score, totals.score_bins, totals.scored) if totals.scored else None
                ),
                feature_psi=psi,
                null_ratio=nulls,
                reference_null_ratio={
                    n: d.null_share for n, d in zip(layout.names, layout.features, strict=True)
                },
                out_of_range_ratio=outside,
                score_mean=float(self._adwin.estimation) if self._adwin.width else None,
                score_detections=self._detections,
            )

    # --- internals ---------------------------------------------------------------------

    def _reset(
        self, version: str, reference: ReferenceDistributions, feature_names: Sequence[str]
    ) -> _Layout:
        layout = _Layout(reference, feature_names)
        self._version, self._layout = version, layout
        self._window.clear()
        self._totals = _Counts(len(layout.names))
        self._adwin = _new_detector()
        return layout

    def _watch_scores(self, scores: NDArray[np.float64]) -> None:
        adwin = self._adwin
        for value in scores.tolist():
            adwin.update(value)
            if adwin.drift_detected:
                self._detections += 1

    def _expire(self) -> int:
        """Drop slices that left the window; returns the current slice's index."""
        now = math.floor(self._clock() / self._slice_s)
        while self._window and self._window[0][0] <= now - self._slices:
            _, old = self._window.popleft()
            self._totals.add(old, sign=-1)
        return now

    def _current_slice(self) -> _Counts:
        now = self._expire()
        if not self._window or self._window[-1][0] != now:
            self._window.append((now, _Counts(self._totals.bins.shape[0])))
        return self._window[-1][1]


def _count(
    layout: _Layout, features: NDArray[np.float64], scores: NDArray[np.float64] | None
) -> tuple[_Counts, NDArray[np.float64]]:
    """One batch's counts on ``layout``, and its non-null scores."""
    counts = _Counts(len(layout.names))
    counts.rows = int(features.shape[0])
    values = features[:, layout.columns]
    counts.bins = _bin_counts(values, layout.edges)
    with np.errstate(invalid="ignore"):
        outside = (values < layout.low) | (values > layout.high)
    counts.out_of_range = outside.sum(axis=0)
    scored = np.empty(0, dtype=np.float64) if scores is None else scores[~np.isnan(scores)]
    counts.scored = int(scored.size)
    if scored.size:
        counts.score_bins = _bin_counts(scored[:, None], layout.score_edges)[0]
    return counts, scored


def _new_detector() -> Any:
    """River's ADWIN (untyped, hence ``Any``) with its defaults: delta 0.002."""
    return ADWIN()  # type: ignore[no-untyped-call]


def _bound(value: float | None) -> float:
    return math.nan if value is None else value


def _padded_edges(distributions: Sequence[Distribution]) -> NDArray[np.float64]:
    """[columns, 9] edges, padded with +inf: no value is greater than the padding."""
    edges = np.full((len(distributions), _WIDTH - 2), np.inf, dtype=np.float64)
    for i, distribution in enumerate(distributions):
        edges[i, : len(distribution.edges)] = distribution.edges
    return edges


def _bin_counts(values: NDArray[np.float64], edges: NDArray[np.float64]) -> NDArray[np.int64]:
    """[rows, columns] values -> [columns, 11] counts: bins as ``models.reference``, then null.

    A value's bin is the number of edges below it (``searchsorted(side="left")``); NaN
    goes to the null column.
    """
    with np.errstate(invalid="ignore"):
        bins = (values[:, :, None] > edges[None, :, :]).sum(axis=2)
    bins[np.isnan(values)] = _NULL
    flat = bins + np.arange(values.shape[1]) * _WIDTH
    counts = np.bincount(flat.ravel(), minlength=values.shape[1] * _WIDTH)
    return counts.reshape(values.shape[1], _WIDTH).astype(np.int64)


def _psi(reference: Distribution, counts: NDArray[np.int64], rows: int) -> float:
    """PSI of one count row: the reference's bins, then the null count, over ``rows``."""
    used = len(reference.shares)
    shares = np.append(counts[:used], counts[_NULL]) / rows
    return psi_of_shares(reference, shares)
