"""Synthetic, labelled card traffic: a history for training and backtests, a live stream for demos.

Real fraud data is scarce and private, yet every part of fraudstream (features, rules,
models, backtests, the demo) needs traffic whose fraud is known. The simulator draws a
population of users and merchants with habits, genuine activity with daily and weekly
rhythm and trips abroad, and five fraud patterns tagged in a ``pattern`` column:

- ``card_testing``: bursts of tiny charges at web shops new to the cardholder;
- ``account_takeover``: a new device in a new country, then large online purchases;
- ``impossible_travel``: a card used in person too far away too soon after its last use;
- ``compromised_merchant``: one breached merchant charging many cardholders over days;
- ``spending_spree``: a compromised card drained with many pricey buys within hours.

The same seed always yields the same rows, so tests and benchmarks are reproducible.

The live stream (:func:`live_events`) follows the simulated timeline at 1x real time from
the moment it starts, so its users behave as the history's do; its rate comes from the
size of the population (:func:`population_for_rate`), never from squeezing time.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from models.simulator._config import (
    DEFAULT_FRAUD_RATE,
    DEFAULT_START,
    LEGIT,
    PATTERNS,
    SCHEMA_VERSION,
    SimulatorConfig,
)
from models.simulator._files import history_format, read_history, write_history
from models.simulator._history import simulate_period
from models.simulator._live import Clock, held_to_clock, live_events, utc_now
from models.simulator._population import build_population
from models.simulator._render import COLUMNS, Renderer
from models.simulator._sizing import (
    MAX_LIVE_USERS,
    MIN_LIVE_USERS,
    merchants_for_users,
    natural_rate,
    population_for_rate,
)

__all__ = [
    "COLUMNS",
    "DEFAULT_FRAUD_RATE",
    "DEFAULT_START",
    "LEGIT",
    "MAX_LIVE_USERS",
    "MIN_LIVE_USERS",
    "PATTERNS",
    "SCHEMA_VERSION",
    "Clock",
    "SimulatorConfig",
    "held_to_clock",
    "history_format",
    "live_events",
    "merchants_for_users",
    "natural_rate",
    "population_for_rate",
    "read_history",
    "simulate_history",
    "utc_now",
    "write_history",
]


def simulate_history(
    config: SimulatorConfig, *, on_stage: Callable[[str], None] | None = None
) -> pd.DataFrame:
    """Simulate ``config.days`` days of labelled traffic, sorted by event time then tx_id.

    ``on_stage`` is told the name of each stage as it starts, for progress displays.
    """
    report = on_stage or (lambda _stage: None)
    report("population")
    population = build_population(config)
    batch = simulate_period(
        population,
        start_ms=config.start_ms,
        days=config.days,
        fraud_rate=config.fraud_rate,
        rng=np.random.default_rng([config.seed, 1]),
        first_fraud_device=population.device_count_total,
        on_stage=report,
    )
    report("rendering")
    tx_ids = [f"tx-{config.seed}-n{n:010d}" for n in range(len(batch))]
    return Renderer(population).table(batch, tx_ids).to_pandas()
