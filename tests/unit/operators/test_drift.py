"""The streaming drift monitor agrees with the offline PSI, and sees what it must see."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.typing import NDArray

from models.manifest import ReferenceDistributions
from models.reference import (
    population_stability_index,
    reference_distribution,
    reference_distributions,
)
from operators.drift import DriftMonitor, _bin_counts, _padded_edges
from tests.doubles import FakeClock

NAMES = ("amount", "count", "travel")
RNG = np.random.default_rng(7)


def _traffic(rows: int, *, amount_scale: float = 1.0, null_share: float = 0.3) -> NDArray:
    amount = RNG.lognormal(3.0, 1.0, rows) * amount_scale
    count = RNG.poisson(2.0, rows).astype(np.float64)
    travel = RNG.exponential(10.0, rows)
    travel[RNG.random(rows) < null_share] = np.nan  # null by design, like user_travel_kmh
    return np.column_stack((amount, count, travel))


def _scores(rows: int, a: float = 1.0, b: float = 20.0) -> NDArray:
    return RNG.beta(a, b, rows)


@pytest.fixture(scope="module")
def reference() -> ReferenceDistributions:
    return reference_distributions(_traffic(20_000), NAMES, _scores(20_000))


def _monitor(clock: FakeClock | None = None, **kw: float) -> DriftMonitor:
    options = {"window_s": 600.0, "slices": 10, "min_rows": 500} | kw
    return DriftMonitor(
        window_s=options["window_s"],
        slices=int(options["slices"]),
        min_rows=int(options["min_rows"]),
        clock=clock or FakeClock(),
    )


def test_windowed_figures_equal_the_offline_psi_of_the_same_rows(
    reference: ReferenceDistributions,
) -> None:
    monitor = _monitor()
    batches = [(_traffic(n), _scores(n)) for n in (37, 400, 1, 900)]
    for features, scores in batches:
        monitor.observe("v1", reference, NAMES, features, scores)

    report = monitor.report()

    assert report is not None
    features = np.vstack([f for f, _ in batches])
    scores = np.concatenate([s for _, s in batches])
    assert report.rows == report.scored_rows == features.shape[0]
    for i, name in enumerate(NAMES):
        offline = population_stability_index(reference.features[name], features[:, i])
        assert report.feature_psi[name] == pytest.approx(offline, abs=1e-12)
        assert report.null_ratio[name] == pytest.approx(np.isnan(features[:, i]).mean())
    assert report.prediction_psi == pytest.approx(
        population_stability_index(reference.score, scores), abs=1e-12
    )
    assert report.reference_null_ratio["travel"] == reference.features["travel"].null_share


def test_a_shifted_feature_crosses_the_alert_threshold_and_the_others_stay_below(
    reference: ReferenceDistributions,
) -> None:
    monitor = _monitor()
    monitor.observe("v1", reference, NAMES, _traffic(3000, amount_scale=3.0), _scores(3000))

    report = monitor.report()

    assert report is not None
    assert report.feature_psi["amount"] > 0.25
    assert report.feature_psi["count"] < 0.1
    assert report.feature_psi["travel"] < 0.1
    assert report.prediction_psi is not None and report.prediction_psi < 0.1
    assert report.out_of_range_ratio["amount"] > report.out_of_range_ratio["count"]


def test_a_shifted_score_raises_the_prediction_psi_and_adwin_detects_the_change(
    reference: ReferenceDistributions,
) -> None:
    monitor = _monitor()
    for _ in range(5):
        monitor.observe("v1", reference, NAMES, _traffic(400), _scores(400))
    steady = monitor.report()
    for _ in range(5):
        monitor.observe("v1", reference, NAMES, _traffic(400), _scores(400, a=5.0, b=5.0))
    shifted = monitor.report()

    assert steady is not None and shifted is not None
    assert steady.score_detections == 0
    assert steady.prediction_psi is not None and steady.prediction_psi < 0.1
    assert shifted.prediction_psi is not None and shifted.prediction_psi > 0.2
    assert shifted.score_detections >= 1
    assert shifted.score_mean is not None and shifted.score_mean > 0.3


def test_rows_leave_the_window_as_time_passes(reference: ReferenceDistributions) -> None:
    clock = FakeClock()
    monitor = _monitor(clock)
    monitor.observe("v1", reference, NAMES, _traffic(600, amount_scale=5.0), _scores(600))
    clock.advance(300)
    monitor.observe("v1", reference, NAMES, _traffic(600), _scores(600))
    both = monitor.report()
    clock.advance(330)  # the first batch's slice is now older than the 600 s window
    recent = monitor.report()
    clock.advance(600)
    empty = monitor.report()

    assert both is not None and both.rows == 1200
    assert recent is not None and recent.rows == 600
    assert recent.feature_psi["amount"] < 0.1 < both.feature_psi["amount"]
    assert empty is None


def test_no_report_below_the_minimum_and_a_new_model_starts_afresh(
    reference: ReferenceDistributions,
) -> None:
    monitor = _monitor(min_rows=1000)
    monitor.observe("v1", reference, NAMES, _traffic(999), _scores(999))
    assert monitor.report() is None
    monitor.observe("v1", reference, NAMES, _traffic(1), _scores(1))
    assert monitor.report() is not None

    monitor.observe("v2", reference, NAMES, _traffic(10), _scores(10))

    assert monitor.report() is None  # v2's window holds 10 rows


def test_degraded_batches_count_features_but_no_scores(reference: ReferenceDistributions) -> None:
    monitor = _monitor()
    monitor.observe("v1", reference, NAMES, _traffic(600), None)
    unscored = monitor.report()
    monitor.observe("v1", reference, NAMES, _traffic(10), np.full(10, np.nan))

    assert unscored is not None and unscored.prediction_psi is None and unscored.score_mean is None
    report = monitor.report()
    assert report is not None and report.rows == 610 and report.scored_rows == 0


def test_features_the_reference_lacks_are_skipped(reference: ReferenceDistributions) -> None:
    monitor = _monitor()
    names = ("new_feature", *NAMES)
    features = np.column_stack((np.ones(600), _traffic(600)))
    monitor.observe("v1", reference, names, features, _scores(600))

    report = monitor.report()

    assert report is not None and set(report.feature_psi) == set(NAMES)
    assert report.feature_psi["amount"] < 0.1  # columns matched by name, not position


_VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, 1.0, 2.0, -1.0]),  # values on the edges
)


@settings(max_examples=200, deadline=None)
@given(
    points=st.lists(st.floats(-5, 5, allow_nan=False), max_size=30),
    values=arrays(np.float64, st.integers(1, 40), elements=_VALUES),
)
def test_vectorised_binning_equals_the_reference_binning(
    points: list[float], values: NDArray[np.float64]
) -> None:
    distribution = reference_distribution(np.array([*points, 0.0]))  # its deciles: the edges
    padded = _padded_edges([distribution])
    expected = np.searchsorted(distribution.edges, values[~np.isnan(values)], side="left")

    counts = _bin_counts(values[:, None], padded)[0]

    assert counts[-1] == np.isnan(values).sum()
    bins = np.bincount(expected, minlength=len(distribution.edges) + 1)
    assert counts[: len(bins)].tolist() == bins.tolist()
    assert counts[len(bins) : -1].sum() == 0
    assert not math.isnan(float(counts.sum()))
