"""A retrain end to end: train -> register -> gate -> champion or challenger -> publish."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.manifest import MANIFEST_FILENAME, read_manifest, sha256_bytes
from models.pit import PointInTimeSet
from models.registry import ModelRegistry, Role
from models.retrain import RetrainOutcome, retrain, train_to_folder
from operators.features import FEATURE_NAMES
from operators.scoring import EnsembleScorer
from schemas import ModelUpdate
from tests.unit.models.conftest import Members

Published = list[tuple[Role, ModelUpdate | None]]


@pytest.fixture(scope="module")
def runs(
    pit_dataset: PointInTimeSet,
    shuffled_dataset: PointInTimeSet,
    small_members: Members,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[ModelRegistry, Published, RetrainOutcome, RetrainOutcome]:
    published: Published = []
    registry = ModelRegistry(
        tmp_path_factory.mktemp("registry"),
        publish=lambda role, update: published.append((role, update)),
    )
    first = retrain(pit_dataset, registry, members=small_members())
    second = retrain(shuffled_dataset, registry, members=small_members())
    return registry, published, first, second


def test_the_first_model_becomes_champion_and_is_published_with_its_manifest_hash(
    runs: tuple[ModelRegistry, Published, RetrainOutcome, RetrainOutcome],
) -> None:
    _, published, first, _ = runs

    assert first.gate.verdict == "champion" and first.event.role == "champion"
    assert first.publish_error is None
    role, update = published[0]
    assert role == "champion" and update is not None
    assert update.version == first.manifest.version
    assert update.sha256 == sha256_bytes((first.path / MANIFEST_FILENAME).read_bytes())
    assert read_manifest(first.path) == first.manifest


def test_the_manifest_carries_cutoff_delay_metrics_reference_and_gate(
    runs: tuple[ModelRegistry, Published, RetrainOutcome, RetrainOutcome],
    pit_dataset: PointInTimeSet,
) -> None:
    manifest = runs[2].manifest

    assert manifest.training_cutoff == pit_dataset.cutoff
    assert manifest.label_delay == pit_dataset.label_delay
    assert manifest.parent_version is None
    assert manifest.metrics.cp_at_100 is not None
    assert manifest.metrics.block is not None and manifest.metrics.review is not None
    assert manifest.metrics.block.threshold == manifest.thresholds.block
    assert manifest.reference is not None
    assert set(manifest.reference.features) == set(FEATURE_NAMES)
    assert manifest.reference.rows == manifest.validation_rows
    assert manifest.gate is not None and manifest.gate.verdict == "champion"
    assert manifest.training_window.to <= pit_dataset.labels_known_until


def test_a_worse_retrain_becomes_challenger_with_the_champion_as_parent(
    runs: tuple[ModelRegistry, Published, RetrainOutcome, RetrainOutcome],
) -> None:
    registry, published, first, second = runs

    assert second.gate.verdict == "challenger", second.gate.reason
    assert second.manifest.parent_version == first.manifest.version
    assert second.gate.champion_version == first.manifest.version
    aliases = registry.aliases()
    assert (aliases.champion, aliases.challenger) == (
        first.manifest.version,
        second.manifest.version,
    )
    assert [(role, u.version if u else None) for role, u in published] == [
        ("champion", first.manifest.version),
        ("challenger", second.manifest.version),
    ]
    assert [entry.version for entry in registry.entries()] == [
        first.manifest.version,
        second.manifest.version,
    ]


def test_train_to_folder_writes_a_servable_model(
    pit_dataset: PointInTimeSet, small_members: Members, tmp_path: Path
) -> None:
    folder = tmp_path / "model"

    manifest = train_to_folder(pit_dataset, folder, members=small_members())

    scorer = EnsembleScorer.load(folder, expected_feature_names=FEATURE_NAMES)
    assert scorer.manifest == manifest
    assert manifest.gate is None and manifest.reference is not None
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging left behind
