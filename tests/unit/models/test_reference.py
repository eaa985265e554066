"""Reference distributions (decile bins + null share) and PSI against them."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from models.exceptions import EvaluationError
from models.manifest import Distribution
from models.reference import (
    bin_shares,
    population_stability_index,
    reference_distribution,
    reference_distributions,
)


def test_deciles_of_1_to_100_make_ten_equal_bins() -> None:
    values = np.arange(1.0, 101.0)

    reference = reference_distribution(values)

    assert reference.edges == (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0)
    assert reference.shares == pytest.approx((0.1,) * 10)
    assert reference.null_share == 0.0


def test_nulls_are_their_own_share_and_every_row_is_counted_once() -> None:
    values = np.array([np.nan, np.nan, 1.0, 2.0, 3.0, np.inf, -np.inf, 4.0])

    reference = reference_distribution(values)

    assert reference.null_share == pytest.approx(2 / 8)
    assert sum(reference.shares) + reference.null_share == pytest.approx(1.0)
    assert all(np.isfinite(reference.edges))


def test_a_flag_gets_a_bin_per_value() -> None:
    values = np.array([0.0] * 75 + [1.0] * 25)

    reference = reference_distribution(values)

    assert reference.edges == (0.0, 1.0)
    assert reference.shares == pytest.approx((0.75, 0.25, 0.0))


def test_an_all_null_column_has_one_empty_bin() -> None:
    reference = reference_distribution(np.full(5, np.nan))

    assert (reference.edges, reference.shares, reference.null_share) == ((), (0.0,), 1.0)


def test_live_values_bin_on_the_reference_edges_including_outside_its_range() -> None:
    reference = reference_distribution(np.arange(1.0, 101.0))

    shares, nulls = bin_shares(np.array([-5.0, 10.0, 10.5, 1e9, np.nan]), reference)

    assert shares.tolist() == pytest.approx([0.4, 0.2, 0, 0, 0, 0, 0, 0, 0, 0.2])
    assert nulls == pytest.approx(0.2)


def test_psi_is_zero_on_the_reference_and_large_on_a_shift() -> None:
    rng = np.random.default_rng(0)
    baseline = rng.normal(0.0, 1.0, 20_000)
    reference = reference_distribution(baseline)

    assert population_stability_index(reference, baseline) == pytest.approx(0.0, abs=1e-9)
    assert population_stability_index(reference, rng.normal(0.0, 1.0, 20_000)) < 0.01
    assert population_stability_index(reference, rng.normal(1.0, 1.0, 20_000)) > 0.25


def test_reference_distributions_cover_every_feature_and_the_score() -> None:
    matrix = np.column_stack([np.arange(10.0), np.full(10, np.nan)])

    references = reference_distributions(matrix, ["a", "b"], np.linspace(0, 1, 10))

    assert references.rows == 10
    assert set(references.features) == {"a", "b"}
    assert references.features["b"].null_share == 1.0
    assert len(references.score.shares) == len(references.score.edges) + 1
    with pytest.raises(EvaluationError):
        reference_distributions(matrix, ["a"], np.zeros(10))


def test_a_distribution_must_be_consistent() -> None:
    with pytest.raises(ValidationError, match="shares"):
        Distribution(edges=(1.0,), shares=(1.0,), null_share=0.0)
    with pytest.raises(ValidationError, match="increasing"):
        Distribution(edges=(2.0, 1.0), shares=(0.5, 0.5, 0.0), null_share=0.0)
    with pytest.raises(ValidationError, match="sum to 1"):
        Distribution(edges=(1.0,), shares=(0.5, 0.1), null_share=0.0)
