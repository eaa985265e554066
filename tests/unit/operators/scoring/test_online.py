"""OnlineScorer: hash-verified loading of the online learner's graph and batch scoring."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import orjson
import pytest

from models.exceptions import ManifestError, ModelFormatError, ModelIntegrityError
from models.manifest import sha256_bytes
from models.online import OnlineLearner, write_online_model
from operators.exceptions import ScoringError
from operators.features import FEATURE_NAMES
from operators.scoring import OnlineScorer
from tests.unit.models._synthetic import Dataset

VERSION = "online-0007"


@pytest.fixture(scope="module")
def learner(dataset: Dataset) -> OnlineLearner:
    learner = OnlineLearner(dataset.feature_names)
    rows = dataset.features[:3000].tolist()
    for row, label in zip(rows, dataset.labels[:3000].tolist(), strict=True):
        learner.learn_one(dict(zip(dataset.feature_names, row, strict=True)), bool(label))
    return learner


@pytest.fixture
def published(learner: OnlineLearner, tmp_path: Path) -> tuple[Path, str]:
    return write_online_model(learner, tmp_path, VERSION)


def sidecar_of(path: Path) -> Path:
    return path.with_suffix(".json")


def rewrite_sidecar(path: Path, **changes: object) -> None:
    sidecar = orjson.loads(sidecar_of(path).read_bytes())
    sidecar.update(changes)
    sidecar_of(path).write_bytes(orjson.dumps(sidecar))


def test_load_reads_version_features_and_hash(published: tuple[Path, str]) -> None:
    path, digest = published

    scorer = OnlineScorer.load(path, digest)

    assert scorer.version == VERSION
    assert scorer.feature_names == FEATURE_NAMES
    assert scorer.sha256 == digest


def test_score_matches_the_learner_with_missing_values(
    published: tuple[Path, str], learner: OnlineLearner, dataset: Dataset
) -> None:
    scorer = OnlineScorer.load(*published)
    matrix = dataset.features[5000:6000].copy()
    matrix[::7, 3] = np.nan
    assert np.isnan(matrix).any()

    scores = scorer.score(matrix)

    assert scores.dtype == np.float64
    assert scores.shape == (1000,)
    np.testing.assert_allclose(scores, learner.predict_many(matrix), atol=1e-5, rtol=0)
    row = matrix[0].tolist()
    expected = learner.predict_one(
        {n: None if math.isnan(v) else v for n, v in zip(FEATURE_NAMES, row, strict=True)}
    )
    assert scores[0] == pytest.approx(expected, abs=1e-5)


def test_empty_batch_scores_empty(published: tuple[Path, str]) -> None:
    scorer = OnlineScorer.load(*published)
    assert scorer.score(np.zeros((0, len(FEATURE_NAMES)))).shape == (0,)


def test_wrong_width_is_a_scoring_error(published: tuple[Path, str]) -> None:
    scorer = OnlineScorer.load(*published)
    with pytest.raises(ScoringError, match=rf"\[n, {len(FEATURE_NAMES)}\]"):
        scorer.score(np.zeros((3, len(FEATURE_NAMES) - 1)))


def test_wrong_sha256_is_refused(published: tuple[Path, str]) -> None:
    path, digest = published
    with pytest.raises(ModelIntegrityError, match="does not match"):
        OnlineScorer.load(path, sha256_bytes(b"another model"))
    assert OnlineScorer.load(path, digest.upper()).sha256 == digest


def test_tampered_graph_is_refused(published: tuple[Path, str]) -> None:
    path, digest = published
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    with pytest.raises(ModelIntegrityError, match="does not match"):
        OnlineScorer.load(path, digest)


def test_missing_graph_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelIntegrityError, match="cannot be read"):
        OnlineScorer.load(tmp_path / "gone.onnx", "0" * 64)


def test_missing_sidecar_is_refused(published: tuple[Path, str]) -> None:
    path, digest = published
    sidecar_of(path).unlink()

    with pytest.raises(ManifestError, match="sidecar"):
        OnlineScorer.load(path, digest)


@pytest.mark.parametrize(
    "changes",
    [
        {"feature_names": []},
        {"feature_names": ["a", "a"]},
        {"version": "../x"},
        {"sha256": "not-a-hash"},
    ],
)
def test_malformed_sidecar_is_refused(
    published: tuple[Path, str], changes: dict[str, object]
) -> None:
    path, digest = published
    rewrite_sidecar(path, **changes)

    with pytest.raises(ManifestError, match="sidecar"):
        OnlineScorer.load(path, digest)


def test_sidecar_that_is_not_json_is_refused(published: tuple[Path, str]) -> None:
    path, digest = published
    sidecar_of(path).write_bytes(b"{not json")

    with pytest.raises(ManifestError, match="not JSON"):
        OnlineScorer.load(path, digest)


def test_sidecar_of_another_graph_is_refused(published: tuple[Path, str]) -> None:
    path, digest = published
    rewrite_sidecar(path, sha256=sha256_bytes(b"another model"))

    with pytest.raises(ModelIntegrityError, match="sidecar records"):
        OnlineScorer.load(path, digest)


def test_sidecar_of_another_version_is_refused(published: tuple[Path, str]) -> None:
    path, digest = published
    rewrite_sidecar(path, version="online-0006")

    with pytest.raises(ModelIntegrityError, match="online-0006"):
        OnlineScorer.load(path, digest)


def test_feature_count_mismatch_with_the_graph_is_refused(published: tuple[Path, str]) -> None:
    path, digest = published
    rewrite_sidecar(path, feature_names=["a", "b"])

    with pytest.raises(ModelFormatError):
        OnlineScorer.load(path, digest)


def test_unexpected_feature_order_is_refused(published: tuple[Path, str]) -> None:
    path, digest = published
    with pytest.raises(ManifestError, match="expects features"):
        OnlineScorer.load(path, digest, expected_feature_names=tuple(reversed(FEATURE_NAMES)))
    assert OnlineScorer.load(path, digest, expected_feature_names=FEATURE_NAMES)


def test_bytes_that_are_not_a_graph_are_refused(published: tuple[Path, str]) -> None:
    path, _ = published
    path.write_bytes(b"not an onnx graph")
    digest = sha256_bytes(b"not an onnx graph")
    rewrite_sidecar(path, sha256=digest)

    with pytest.raises(ModelFormatError):
        OnlineScorer.load(path, digest)
