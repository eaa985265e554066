"""Point-in-time datasets shared by the gate and retrain tests (simulated once per session)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta

import numpy as np
import pytest

from models.ensemble import EnsembleMember, XGBoostMember
from models.pit import PointInTimeSet, point_in_time_dataset
from models.simulator import SimulatorConfig, simulate_history

Members = Callable[[], list[EnsembleMember]]


@pytest.fixture(scope="session")
def pit_dataset() -> PointInTimeSet:
    history = simulate_history(SimulatorConfig(users=300, merchants=60, days=21, seed=5))
    return point_in_time_dataset(history, label_delay=timedelta(days=3))


@pytest.fixture(scope="session")
def shuffled_dataset(pit_dataset: PointInTimeSet) -> PointInTimeSet:
    """Same rows and features, labels permuted: a model that learns nothing real."""
    labels = np.random.default_rng(0).permutation(pit_dataset.training.labels)
    training = pit_dataset.training._replace(labels=labels)
    return dataclasses.replace(pit_dataset, training=training)


@pytest.fixture(scope="session")
def small_members() -> Members:
    """A fresh, small, single-threaded member (the test machine is shared).

    Trees only: the logistic member's solver dominates training time and the gate and
    registry logic do not depend on which members a model has.
    """
    return lambda: [XGBoostMember(n_estimators=60, n_jobs=1)]
