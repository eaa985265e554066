from __future__ import annotations

import math

import numpy as np
import pytest

from models.exceptions import SimulatorError
from models.simulator import (
    MAX_LIVE_USERS,
    MIN_LIVE_USERS,
    SimulatorConfig,
    merchants_for_users,
    natural_rate,
    population_for_rate,
)
from models.simulator._population import MEAN_TX_PER_USER_PER_DAY, build_population


@pytest.mark.parametrize("rate", [0.5, 10.0, 50.0])
def test_the_sized_population_makes_the_requested_rate(rate: float) -> None:
    users, merchants = population_for_rate(rate)
    assert natural_rate(SimulatorConfig(users=users, merchants=merchants)) == pytest.approx(
        rate, rel=1e-3
    )


def test_merchants_keep_the_default_configs_proportion() -> None:
    default = SimulatorConfig()
    users, merchants = population_for_rate(20.0)
    assert merchants / users == pytest.approx(default.merchants / default.users, rel=1e-3)
    assert merchants_for_users(default.users) == default.merchants


def test_fifty_per_second_needs_about_a_million_users() -> None:
    users, merchants = population_for_rate(50.0)
    assert 1_000_000 < users < 1_200_000
    assert merchants == round(users / 4)


@pytest.mark.parametrize("rate", [200.0, 1e6, math.inf])
def test_large_rates_are_capped(rate: float) -> None:
    assert population_for_rate(rate) == (MAX_LIVE_USERS, MAX_LIVE_USERS // 4)


def test_tiny_rates_get_a_small_floor() -> None:
    assert population_for_rate(1e-6) == (MIN_LIVE_USERS, merchants_for_users(MIN_LIVE_USERS))
    assert merchants_for_users(MIN_LIVE_USERS) >= 10


@pytest.mark.parametrize("rate", [0.0, -1.0, math.nan])
def test_a_rate_must_be_positive(rate: float) -> None:
    with pytest.raises(SimulatorError, match="positive"):
        population_for_rate(rate)


def test_the_mean_activity_is_the_populations() -> None:
    tx_per_day = build_population(SimulatorConfig(users=50_000, merchants=500)).tx_per_day
    assert float(np.mean(tx_per_day)) == pytest.approx(MEAN_TX_PER_USER_PER_DAY, rel=0.01)
