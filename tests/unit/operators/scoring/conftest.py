from __future__ import annotations

from pathlib import Path

import pytest

from models.ensemble import XGBoostMember, train_ensemble
from tests.unit.models._synthetic import Dataset, make_dataset


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    return make_dataset(20_000, seed=5)


@pytest.fixture(scope="session")
def model_dir(dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out_dir = tmp_path_factory.mktemp("scoring-model")
    train_ensemble(
        dataset.features,
        dataset.labels,
        dataset.event_times,
        dataset.feature_names,
        out_dir,
        members=[XGBoostMember(n_jobs=1), "logreg"],
    )
    return out_dir
