"""build_training_set: simulated history -> the exact vectors serving computes, plus labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.ensemble import XGBoostMember, train_ensemble
from models.exceptions import TrainingError
from models.simulator import SimulatorConfig, simulate_history
from models.training_set import build_training_set
from operators.features import FEATURE_NAMES, features_for_frame
from operators.scoring import EnsembleScorer


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    return simulate_history(SimulatorConfig(users=300, merchants=60, days=10, seed=3))


def test_rows_are_the_feature_code_output_aligned_with_labels_and_times(
    history: pd.DataFrame,
) -> None:
    training = build_training_set(history)

    np.testing.assert_array_equal(training.features, features_for_frame(history))
    np.testing.assert_array_equal(training.labels, history["label"].to_numpy())
    assert training.labels.dtype == np.int8
    assert training.event_times.dtype == np.dtype("datetime64[ms]")
    expected_ms = history["event_time"].to_numpy(dtype="datetime64[ms]").astype(np.int64)
    np.testing.assert_array_equal(training.event_times.astype(np.int64), expected_ms)


def test_unlabelled_rows_count_for_features_but_are_not_returned(history: pd.DataFrame) -> None:
    frame = history.copy()
    frame["label"] = frame["label"].map({0: "legit", 1: "fraud"}).astype(object)
    unlabelled = np.zeros(len(frame), dtype=bool)
    unlabelled[::3] = True
    frame.loc[unlabelled, "label"] = None

    training = build_training_set(frame)

    assert len(training.labels) == (~unlabelled).sum()
    np.testing.assert_array_equal(training.features, features_for_frame(history)[~unlabelled])
    np.testing.assert_array_equal(training.labels, history["label"].to_numpy()[~unlabelled])


def test_unknown_labels_are_refused(history: pd.DataFrame) -> None:
    frame = history.head(50).copy()
    frame["label"] = frame["label"].astype(object)
    frame.loc[frame.index[3], "label"] = "maybe"

    with pytest.raises(TrainingError, match="maybe"):
        build_training_set(frame)


def test_a_frame_without_labels_is_refused(history: pd.DataFrame) -> None:
    with pytest.raises(TrainingError, match="label"):
        build_training_set(history.drop(columns=["label"]))


def test_simulated_history_trains_a_model_the_dataflow_can_load(
    history: pd.DataFrame, tmp_path: Path
) -> None:
    training = build_training_set(history)

    manifest = train_ensemble(
        *training,
        FEATURE_NAMES,
        tmp_path,
        members=[XGBoostMember(n_estimators=50, n_jobs=1), "logreg"],
    )

    scorer = EnsembleScorer.load(tmp_path, expected_feature_names=FEATURE_NAMES)
    assert scorer.version == manifest.version
    assert scorer.score(training.features[-100:]).scores.shape == (100,)
