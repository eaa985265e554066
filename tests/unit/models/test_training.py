"""train_ensemble end to end on synthetic data: split, files, manifest, thresholds, refusals."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from models.ensemble import LogisticMember, XGBoostMember, train_ensemble
from models.ensemble import _train as train_module
from models.exceptions import TrainingError
from models.manifest import MANIFEST_FILENAME, Manifest, read_manifest, sha256_bytes
from operators.scoring import EnsembleScorer
from tests.unit.models._synthetic import Dataset, make_dataset

ROWS = 20_000


@pytest.fixture(scope="module")
def data() -> Dataset:
    return make_dataset(ROWS, seed=7)


@pytest.fixture(scope="module")
def trained(
    data: Dataset, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Manifest, Path, list[str]]:
    out_dir = tmp_path_factory.mktemp("model")
    stages: list[str] = []
    manifest = train_ensemble(
        data.features,
        data.labels,
        data.event_times,
        data.feature_names,
        out_dir,
        members=[XGBoostMember(n_jobs=1), "logreg"],
        on_stage=stages.append,
    )
    return manifest, out_dir, stages


def validation_rows(data: Dataset, manifest: Manifest) -> np.ndarray:
    start = np.datetime64(manifest.validation_window.from_.replace(tzinfo=None), "ms")
    return data.event_times >= start


def test_directory_holds_every_pinned_file_and_the_manifest(
    trained: tuple[Manifest, Path, list[str]],
) -> None:
    manifest, out_dir, _ = trained

    assert read_manifest(out_dir) == manifest
    assert [m.name for m in manifest.members] == ["xgboost", "logreg"]
    assert manifest.explainer is not None
    assert manifest.explainer.member == "logreg"
    for file, digest in manifest.files:
        assert sha256_bytes((out_dir / file).read_bytes()) == digest
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(
        [MANIFEST_FILENAME, *(file for file, _ in manifest.files)]
    )


def test_validation_is_the_latest_fifth_by_event_time(
    trained: tuple[Manifest, Path, list[str]], data: Dataset
) -> None:
    manifest, _, _ = trained
    in_validation = validation_rows(data, manifest)

    assert manifest.training_window.to < manifest.validation_window.from_
    assert manifest.validation_rows == in_validation.sum() == pytest.approx(0.2 * ROWS, abs=2)
    assert manifest.training_rows + manifest.validation_rows == ROWS
    assert manifest.validation_frauds == data.labels[in_validation].sum()
    assert manifest.training_frauds == data.labels[~in_validation].sum()
    assert manifest.feature_names == data.feature_names


def test_weights_are_grid_points_summing_to_one(
    trained: tuple[Manifest, Path, list[str]],
) -> None:
    weights = [m.weight for m in trained[0].members]
    assert sum(weights) == pytest.approx(1.0)
    assert all(abs(w * 10 - round(w * 10)) < 1e-9 for w in weights)


def test_thresholds_hit_the_precision_target_on_validation_data(
    trained: tuple[Manifest, Path, list[str]], data: Dataset
) -> None:
    manifest, out_dir, _ = trained
    in_validation = validation_rows(data, manifest)
    scores = EnsembleScorer.load(out_dir).score(data.features[in_validation]).scores
    labels = data.labels[in_validation]
    thresholds = manifest.thresholds

    assert thresholds.basis.startswith("block: precision"), thresholds.basis
    assert labels[scores >= thresholds.block].mean() >= thresholds.target_precision
    assert thresholds.review <= thresholds.block
    assert np.mean(scores >= thresholds.review) >= thresholds.review_share


def test_metrics_describe_the_served_ensemble(
    trained: tuple[Manifest, Path, list[str]], data: Dataset
) -> None:
    manifest, out_dir, _ = trained
    in_validation = validation_rows(data, manifest)
    scores = EnsembleScorer.load(out_dir).score(data.features[in_validation]).scores

    assert manifest.metrics.ap == pytest.approx(
        average_precision_score(data.labels[in_validation], scores), abs=1e-9
    )
    assert manifest.metrics.auc is not None
    assert manifest.metrics.auc > 0.8
    assert set(manifest.metrics.members) == {"xgboost", "logreg"}


def test_provenance_is_recorded(trained: tuple[Manifest, Path, list[str]]) -> None:
    manifest, _, stages = trained

    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", manifest.version)
    assert manifest.parent_version is None
    assert manifest.code_revision == "unknown" or re.fullmatch(
        r"[0-9a-f]{40}", manifest.code_revision
    )
    assert stages[0] == "split by event time"
    assert stages[-1].startswith("write model")
    assert any(stage.startswith("fit xgboost") for stage in stages)


def test_a_published_model_is_not_overwritten(
    trained: tuple[Manifest, Path, list[str]], data: Dataset
) -> None:
    _manifest, out_dir, _ = trained
    before = (out_dir / MANIFEST_FILENAME).read_text()

    with pytest.raises(TrainingError, match="already holds"):
        train_ensemble(data.features, data.labels, data.event_times, data.feature_names, out_dir)
    assert (out_dir / MANIFEST_FILENAME).read_text() == before


def small(rows: int = 3000) -> Dataset:
    return make_dataset(rows, seed=11)


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"feature_names": ("a", "b")}, "feature names"),
        ({"labels": np.full(3000, 2)}, "labels"),
        ({"event_times": np.linspace(0.0, 1.0, 3000)}, "event_times"),
        (
            {"event_times": np.full(3000, np.datetime64("NaT"), dtype="datetime64[ms]")},
            "non-missing",
        ),
        ({"members": ["forest"]}, "unknown members"),
        ({"members": ["logreg", LogisticMember()]}, "distinct"),
        ({"validation_share": 1.0}, "validation_share"),
        ({"version": "../escape"}, "plain name"),
        ({"labels": np.zeros(3000, dtype=np.int8)}, "both fraud and legit"),
    ],
)
def test_bad_input_is_refused_before_writing(
    tmp_path: Path, change: dict[str, object], complaint: str
) -> None:
    data = small()
    arguments: dict[str, object] = {
        "features": data.features,
        "labels": data.labels,
        "event_times": data.event_times,
        "feature_names": data.feature_names,
        "out_dir": tmp_path / "model",
        **change,
    }

    with pytest.raises(TrainingError, match=complaint):
        train_ensemble(**arguments)  # type: ignore[arg-type]
    assert not (tmp_path / "model").exists()


def test_an_export_that_drifts_from_its_model_is_not_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = small()
    monkeypatch.setattr(train_module, "PARITY_TOLERANCE", -1.0)

    with pytest.raises(TrainingError, match="not publishing"):
        train_ensemble(
            data.features,
            data.labels,
            data.event_times,
            data.feature_names,
            tmp_path,
            members=["logreg"],
        )
    assert not (tmp_path / MANIFEST_FILENAME).exists()


def test_epoch_milliseconds_split_like_datetimes(tmp_path: Path) -> None:
    data = small()
    millis = data.event_times.astype(np.int64)

    manifest = train_ensemble(
        data.features,
        data.labels,
        millis,
        data.feature_names,
        tmp_path,
        version="v-epoch",
        members=["logreg"],
        parent_version="v0",
    )

    in_validation = data.event_times >= np.datetime64(
        manifest.validation_window.from_.replace(tzinfo=None), "ms"
    )
    assert manifest.version == "v-epoch"
    assert manifest.parent_version == "v0"
    assert manifest.validation_rows == in_validation.sum()
    assert [m.weight for m in manifest.members] == [1.0]
