"""Retraining on the offline store plus history: store rows as scored, one per tx_id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.exceptions import TrainingError
from models.feedback_training import feedback_dataset, retrain_from_feedback, with_feedback
from models.offline_store import JoinedLabel, OfflineStoreWriter, read_feedback_examples
from models.pit import PointInTimeSet, point_in_time_dataset
from models.registry import ModelRegistry, Role
from models.retrain import RetrainOutcome
from models.simulator import SimulatorConfig, simulate_history
from operators.features import FEATURE_NAMES, features_for_frame
from schemas import ModelUpdate
from tests.unit.models.conftest import Members

DELAY = timedelta(days=3)
Published = list[tuple[Role, ModelUpdate | None]]


def store_rows(
    frame: pd.DataFrame, features: np.ndarray, labeled_after: timedelta
) -> list[JoinedLabel]:
    """Each row of ``frame`` joined with its served vector, labelled ``labeled_after`` later."""
    vectors = np.where(np.isnan(features), None, features).tolist()
    return [
        JoinedLabel(
            tx_id=tx_id,
            user_id=user_id,
            merchant_id=merchant_id,
            amount=amount,
            event_time=event,
            label=int(label),
            source="chargeback" if label else "analyst",
            labeled_at=event + labeled_after,
            analyst_id=None,
            decision="allow",
            score=0.5,
            model_version="v0",
            features=dict(zip(FEATURE_NAMES, vector, strict=True)),
        )
        for tx_id, user_id, merchant_id, amount, event, label, vector in zip(
            frame["tx_id"],
            frame["user_id"],
            frame["merchant_id"],
            frame["amount"],
            frame["event_time"].dt.to_pydatetime(),
            frame["label"],
            vectors,
            strict=True,
        )
    ]


class Scenario:
    """A simulated history split into an exported file (days 0-13) and a store (days 9-20)."""

    def __init__(self, folder: Path) -> None:
        history = simulate_history(SimulatorConfig(users=150, merchants=40, days=21, seed=5))
        served = features_for_frame(history)
        split = history["event_time"].min().normalize() + pd.Timedelta(days=14)
        in_file = (history["event_time"] < split).to_numpy()
        in_store = (history["event_time"] >= split - pd.Timedelta(days=5)).to_numpy()
        self.history = folder / "history.parquet"
        history.loc[in_file].to_parquet(self.history)
        self.store = folder / "store"
        writer = OfflineStoreWriter(self.store)
        for _, rows in history.loc[in_store].groupby(history["event_time"].dt.date):
            writer.append(store_rows(rows, served[rows.index], timedelta(hours=20)))
        self.served = served
        self.file_rows = history.loc[in_file]
        self.store_frame = history.loc[in_store]
        self.newest_verdict = self.store_frame["event_time"].max() + pd.Timedelta(hours=20)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return Scenario(tmp_path_factory.mktemp("feedback"))


@pytest.fixture(scope="module")
def promoted(
    scenario: Scenario, small_members: Members, tmp_path_factory: pytest.TempPathFactory
) -> tuple[ModelRegistry, Published, RetrainOutcome]:
    published: Published = []
    registry = ModelRegistry(
        tmp_path_factory.mktemp("registry"),
        publish=lambda role, update: published.append((role, update)),
    )
    outcome = retrain_from_feedback(
        scenario.history, scenario.store, registry, label_delay=DELAY, members=small_members()
    )
    return registry, published, outcome


def test_a_retrain_on_history_plus_store_is_promoted_and_published(
    promoted: tuple[ModelRegistry, Published, RetrainOutcome],
) -> None:
    registry, published, outcome = promoted

    assert outcome.gate.verdict == "champion" and outcome.publish_error is None
    assert registry.aliases().champion == outcome.manifest.version
    assert [(role, u.version if u else None) for role, u in published] == [
        ("champion", outcome.manifest.version)
    ]
    assert outcome.manifest.metrics.auc is not None and outcome.manifest.metrics.auc > 0.8


def test_the_training_set_is_history_known_at_its_cutoff_plus_every_store_row(
    promoted: tuple[ModelRegistry, Published, RetrainOutcome], scenario: Scenario
) -> None:
    manifest = promoted[2].manifest
    history_cutoff = scenario.file_rows["event_time"].max()
    known = scenario.file_rows["event_time"] <= history_cutoff - DELAY
    history_only = ~scenario.file_rows["tx_id"].isin(scenario.store_frame["tx_id"]) & known

    rows = manifest.training_rows + manifest.validation_rows
    assert rows == int(history_only.sum()) + len(scenario.store_frame)
    assert manifest.training_cutoff == scenario.newest_verdict.to_pydatetime()
    assert manifest.label_delay == DELAY
    # the store's newest rows are trained and gated on although younger than the delay
    newest_event = scenario.store_frame["event_time"].max().to_pydatetime()
    assert manifest.validation_window.to == newest_event
    assert promoted[2].gate.window.to == newest_event


def test_store_rows_replace_history_rows_and_keep_their_served_features() -> None:
    frame = tiny_history(["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"])
    dataset = point_in_time_dataset(frame, label_delay=timedelta(0))
    examples = pd.DataFrame(
        {
            "tx_id": ["t1", "t9"],
            "user_id": ["u1", "u2"],
            "event_time": pd.to_datetime(["2026-01-02", "2026-01-05"], utc=True),
            "label": np.array([1, 0], dtype=np.int8),
            "labeled_at": pd.to_datetime(["2026-01-06T00:00", "2026-01-07T12:00"], utc=True),
            "f:user_count_1h": [9.0, np.nan],
            "f:not_a_model_feature": [1.0, 2.0],
        }
    )

    merged = with_feedback(dataset, examples)

    assert merged.tx_ids is not None
    assert merged.tx_ids.tolist() == ["t0", "t1", "t2", "t3", "t9"]
    assert merged.training.labels.tolist() == [0, 1, 0, 0, 0]
    assert merged.user_ids.tolist() == ["u1", "u1", "u1", "u1", "u2"]
    count = FEATURE_NAMES.index("user_count_1h")
    assert merged.training.features[1, count] == 9.0
    assert np.isnan(np.delete(merged.training.features[1], count)).all()
    np.testing.assert_array_equal(
        merged.training.features[[0, 2, 3]], dataset.training.features[[0, 2, 3]]
    )
    assert merged.training.event_times[-1] == np.datetime64("2026-01-05T00:00:00.000")
    assert merged.cutoff == datetime(2026, 1, 7, 12, tzinfo=UTC)
    assert (merged.label_delay, merged.replayed) == (dataset.label_delay, dataset.replayed)


def test_no_store_rows_change_nothing_and_a_set_without_tx_ids_is_refused(tmp_path: Path) -> None:
    dataset = point_in_time_dataset(
        tiny_history(["2026-01-01", "2026-01-02"]), label_delay=timedelta(0)
    )
    examples = read_feedback_examples(tmp_path)
    OfflineStoreWriter(tmp_path).append(
        store_rows(tiny_history(["2026-01-03"]), np.zeros((1, len(FEATURE_NAMES))), timedelta(0))
    )

    assert with_feedback(dataset, examples) is dataset
    without_ids = PointInTimeSet(
        dataset.training, dataset.user_ids, dataset.cutoff, dataset.label_delay, 2, 0
    )
    with pytest.raises(TrainingError, match="no tx_ids"):
        with_feedback(without_ids, read_feedback_examples(tmp_path))


def test_the_store_alone_makes_a_set_cut_off_at_its_newest_verdict(scenario: Scenario) -> None:
    examples = read_feedback_examples(scenario.store)

    dataset = feedback_dataset(examples, DELAY)

    assert len(dataset.training.labels) == len(scenario.store_frame)
    assert dataset.training.labels.sum() == scenario.store_frame["label"].sum()
    assert dataset.cutoff == scenario.newest_verdict.to_pydatetime()
    assert (dataset.replayed, dataset.withheld, dataset.label_delay) == (0, 0, DELAY)
    assert dataset.tx_ids is not None
    assert dataset.tx_ids.tolist() == scenario.store_frame["tx_id"].tolist()
    np.testing.assert_array_equal(
        dataset.training.features, scenario.served[scenario.store_frame.index]
    )


def test_one_class_or_no_data_is_refused_and_the_registry_is_unchanged(
    promoted: tuple[ModelRegistry, Published, RetrainOutcome],
    small_members: Members,
    tmp_path: Path,
) -> None:
    registry, published, _ = promoted
    before, published_before = snapshot(registry.root), list(published)
    legit = tmp_path / "legit"
    frame = tiny_history([f"2026-01-{day:02d}" for day in range(1, 20)])
    OfflineStoreWriter(legit).append(
        store_rows(frame, np.zeros((len(frame), len(FEATURE_NAMES))), timedelta(hours=1))
    )

    with pytest.raises(TrainingError, match="no fraud label"):
        retrain_from_feedback(None, legit, registry, label_delay=DELAY, members=small_members())
    with pytest.raises(TrainingError, match="nothing to train on"):
        retrain_from_feedback(
            None, tmp_path / "empty", registry, label_delay=DELAY, members=small_members()
        )

    assert snapshot(registry.root) == before
    assert published == published_before


def test_a_retrain_failing_inside_training_leaves_the_registry_unchanged(
    promoted: tuple[ModelRegistry, Published, RetrainOutcome],
    small_members: Members,
    tmp_path: Path,
) -> None:
    registry, published, _ = promoted
    before, published_before = snapshot(registry.root), list(published)
    frame = tiny_history([f"2026-01-{day:02d}" for day in range(1, 21)])
    frame["label"] = [0] * 18 + [1, 1]  # frauds only in the validation split
    store = tmp_path / "store"
    OfflineStoreWriter(store).append(
        store_rows(frame, np.ones((len(frame), len(FEATURE_NAMES))), timedelta(hours=1))
    )
    stages: list[str] = []

    with pytest.raises(TrainingError, match="training part needs both"):
        retrain_from_feedback(
            None,
            store,
            registry,
            label_delay=DELAY,
            members=small_members(),
            on_stage=stages.append,
        )

    assert any(stage.startswith("split") for stage in stages)  # it failed inside training
    assert snapshot(registry.root) == before
    assert published == published_before


def tiny_history(days: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tx_id": [f"t{i}" for i in range(len(days))],
            "user_id": "u1",
            "merchant_id": "m1",
            "amount": "10.00",
            "event_time": pd.to_datetime(days, utc=True),
            "label": 0,
        }
    )


def snapshot(root: Path) -> list[tuple[str, bytes | None]]:
    """Every path under ``root`` (hidden ones too) with the bytes of files."""
    return sorted(
        (str(p.relative_to(root)), p.read_bytes() if p.is_file() else None) for p in root.rglob("*")
    )
