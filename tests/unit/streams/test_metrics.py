"""``observe_many`` must leave a histogram exactly as one ``observe`` per value would."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from streams.metrics import observe_many

_BUCKETS = (0.001, 0.01, 0.05, 0.1, 1.0)


def _samples(histogram: Histogram) -> dict[tuple[str, str], float]:
    return {
        (sample.name, sample.labels.get("le", "")): sample.value
        for metric in histogram.collect()
        for sample in metric.samples
        if not sample.name.endswith("_created")
    }


def _pair() -> tuple[Histogram, Histogram]:
    registry = CollectorRegistry()
    one = Histogram("one", "per value", buckets=_BUCKETS, registry=registry)
    many = Histogram("many", "bulk", buckets=_BUCKETS, registry=registry)
    return one, many


@given(
    st.lists(
        st.one_of(
            st.floats(min_value=-1.0, max_value=10.0, allow_nan=False),
            st.sampled_from(list(_BUCKETS)),  # exactly on a bound: ``le`` is inclusive
        ),
        max_size=200,
    )
)
def test_bulk_observe_equals_one_observe_per_value(values: list[float]) -> None:
    one, many = _pair()
    for value in values:
        one.observe(value)
    observe_many(many, np.array(values))
    expected = {(name.replace("one", "many"), le): v for (name, le), v in _samples(one).items()}
    got = _samples(many)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert math.isclose(got[key], value, rel_tol=1e-9, abs_tol=1e-9), key


def test_nan_is_left_out_and_labelled_children_work() -> None:
    registry = CollectorRegistry()
    histogram = Histogram("scores", "s", ["member"], buckets=_BUCKETS, registry=registry)
    observe_many(histogram.labels(member="xgb"), np.array([0.005, math.nan, 2.0], np.float32))
    samples = {
        (s.name, s.labels.get("le", "")): s.value
        for metric in histogram.collect()
        for s in metric.samples
    }
    assert samples[("scores_count", "")] == 2
    assert samples[("scores_bucket", "0.01")] == 1
    assert samples[("scores_bucket", "+Inf")] == 2
    assert math.isclose(samples[("scores_sum", "")], 2.005, rel_tol=1e-6)
