from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from streams.monitoring._scrape import parse
from streams.monitoring._series import (
    bucket_counts,
    bucket_increase,
    histogram_quantile,
    increase,
)
from tests.unit.streams.monitoring._registries import LATENCY_BUCKETS, FakeScorer

_LATENCY = "fraud_decision_latency_seconds_bucket"
counts = st.floats(min_value=0, max_value=1e12, allow_nan=False)
steps = st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=20)


@given(previous=st.none() | counts, current=counts)
def test_an_increase_is_never_negative(previous: float | None, current: float) -> None:
    assert increase(previous, current) >= 0


@given(start=st.integers(min_value=0, max_value=10**9), steps=steps)
def test_increases_of_a_growing_counter_add_up_to_its_growth(start: int, steps: list[int]) -> None:
    values = list(itertools.accumulate(steps, initial=start))
    total = sum(increase(a, b) for a, b in itertools.pairwise(values))
    assert total == values[-1] - values[0]


@given(before=steps, after=steps)
def test_a_restart_counts_what_the_new_process_counted(before: list[int], after: list[int]) -> None:
    old = list(itertools.accumulate(before, initial=0))
    new = list(itertools.accumulate(after))  # the restarted process counts from zero
    assume(new[0] < old[-1])  # a restart that shows (as for Prometheus' rate)
    values = old + new
    total = sum(increase(a, b) for a, b in itertools.pairwise(values))
    assert total == old[-1] + new[-1]


def test_a_series_that_did_not_exist_started_at_zero() -> None:
    assert increase(None, 5.0) == 5.0
    assert increase(math.nan, 5.0) == 5.0
    assert increase(3.0, math.nan) == 0.0


def test_quantiles_interpolate_inside_the_bucket_like_prometheus() -> None:
    # 100 observations, all in (0.01, 0.015]: ranks spread evenly over the bucket.
    buckets = {0.01: 0.0, 0.015: 100.0, math.inf: 100.0}
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.0125)
    assert histogram_quantile(0.9, buckets) == pytest.approx(0.0145)
    # The first bucket starts at zero.
    assert histogram_quantile(0.5, {0.002: 10.0, math.inf: 10.0}) == pytest.approx(0.001)
    # A rank in the +Inf bucket gives the highest finite bound.
    assert histogram_quantile(0.99, {0.05: 90.0, 1.0: 95.0, math.inf: 100.0}) == 1.0


def test_quantiles_are_none_without_observations() -> None:
    assert histogram_quantile(0.5, {0.01: 0.0, math.inf: 0.0}) is None
    assert histogram_quantile(0.5, {}) is None
    assert histogram_quantile(0.5, {math.inf: 3.0}) is None


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
def test_quantiles_from_buckets_land_in_the_bucket_of_the_true_percentile(
    seed: int, q: float
) -> None:
    latencies = np.random.default_rng(seed).lognormal(mean=np.log(0.006), sigma=0.8, size=5000)
    scorer = FakeScorer()
    for value in latencies:
        scorer.latency.observe(float(value))

    estimate = histogram_quantile(q, bucket_counts(parse(scorer.text()), _LATENCY))

    truth = float(np.percentile(latencies, q * 100))
    bounds = (0.0, *LATENCY_BUCKETS, math.inf)
    upper = next(i for i, bound in enumerate(bounds) if bound >= truth)
    assert estimate is not None
    assert bounds[upper - 1] <= estimate <= bounds[upper]


def test_bucket_increase_is_the_interval_and_everything_after_a_restart() -> None:
    scorer = FakeScorer()
    for _ in range(10):
        scorer.latency.observe(0.001)
    before = parse(scorer.text())
    for _ in range(5):
        scorer.latency.observe(0.08)
    after = parse(scorer.text())
    restarted = FakeScorer()
    restarted.latency.observe(0.02)

    interval = bucket_increase(before, after, _LATENCY)
    since_restart = bucket_increase(after, parse(restarted.text()), _LATENCY)

    assert interval[0.001] == 0.0
    assert interval[0.075] == 0.0
    assert interval[0.1] == 5.0
    assert interval[math.inf] == 5.0
    assert since_restart[0.02] == 1.0
    assert since_restart[math.inf] == 1.0
    assert bucket_increase(None, after, _LATENCY) == {}
