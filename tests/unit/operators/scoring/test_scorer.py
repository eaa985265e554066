"""EnsembleScorer: verified loading, batch scoring, the weighted mean and reason codes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from models.exceptions import ManifestError, ModelFormatError, ModelIntegrityError
from models.manifest import MANIFEST_FILENAME, read_manifest, sha256_bytes
from operators.exceptions import ScoringError
from operators.features import FEATURE_NAMES
from operators.scoring import EnsembleScorer, OnnxMember, ScoreBatch
from tests.unit.models._synthetic import Dataset, column


@pytest.fixture(scope="module")
def scorer(model_dir: Path) -> EnsembleScorer:
    return EnsembleScorer.load(model_dir)


@pytest.fixture
def model_copy(model_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(model_dir, tmp_path / "copy"))


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_load_exposes_the_manifest(scorer: EnsembleScorer, model_dir: Path) -> None:
    manifest = read_manifest(model_dir)

    assert scorer.version == manifest.version
    assert scorer.feature_names == FEATURE_NAMES
    assert scorer.thresholds == manifest.thresholds
    assert scorer.weights == pytest.approx({m.name: m.weight for m in manifest.members})


def test_score_returns_combined_and_member_scores(scorer: EnsembleScorer, dataset: Dataset) -> None:
    batch = scorer.score(dataset.features[:500])

    assert isinstance(batch, ScoreBatch)
    assert len(batch) == 500
    assert batch.scores.dtype == np.float64
    assert batch.model_version == scorer.version
    assert set(batch.member_scores) == {"xgboost", "logreg"}
    assert all(s.shape == (500,) for s in batch.member_scores.values())
    assert np.all((batch.scores >= 0.0) & (batch.scores <= 1.0))


def test_combined_score_is_the_documented_weighted_mean(
    scorer: EnsembleScorer, dataset: Dataset, model_dir: Path
) -> None:
    manifest = read_manifest(model_dir)
    batch = scorer.score(dataset.features[:2000])

    total = sum(m.weight for m in manifest.members)
    expected = sum(
        m.weight / total * batch.member_scores[m.name].astype(np.float64) for m in manifest.members
    )
    np.testing.assert_allclose(batch.scores, expected, rtol=0, atol=1e-12)


def test_member_scores_are_each_members_own_output(
    scorer: EnsembleScorer, dataset: Dataset, model_dir: Path
) -> None:
    rows = dataset.features[:300]
    batch = scorer.score(rows)
    for entry in read_manifest(model_dir).members:
        member = OnnxMember(entry.name, (model_dir / entry.file).read_bytes(), rows.shape[1])
        np.testing.assert_array_equal(batch.member_scores[entry.name], member.predict(rows))


def test_float32_and_float64_inputs_score_identically(
    scorer: EnsembleScorer, dataset: Dataset
) -> None:
    rows = dataset.features[:100]
    np.testing.assert_array_equal(
        scorer.score(rows).scores, scorer.score(rows.astype(np.float32)).scores
    )


def test_a_batch_of_one_matches_the_same_row_in_a_batch(
    scorer: EnsembleScorer, dataset: Dataset
) -> None:
    many = scorer.score(dataset.features[:64]).scores
    one = scorer.score(dataset.features[17:18]).scores
    assert one[0] == pytest.approx(many[17], abs=1e-6)


def test_empty_batch(scorer: EnsembleScorer) -> None:
    batch = scorer.score(np.empty((0, len(FEATURE_NAMES))))
    assert len(batch) == 0
    assert all(len(s) == 0 for s in batch.member_scores.values())


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((3, len(FEATURE_NAMES) - 1)),
        np.zeros(len(FEATURE_NAMES)),
        np.zeros((2, len(FEATURE_NAMES), 1)),
        np.full((2, len(FEATURE_NAMES)), "x"),
        "not an array",
    ],
)
def test_bad_input_raises_scoring_error(scorer: EnsembleScorer, bad: object) -> None:
    with pytest.raises(ScoringError):
        scorer.score(bad)
    with pytest.raises(ScoringError):
        scorer.top_features(bad)


def test_a_runtime_failure_becomes_a_scoring_error(model_dir: Path, dataset: Dataset) -> None:
    scorer = EnsembleScorer.load(model_dir)

    class BrokenSession:
        def run(self, *_args: object) -> list[np.ndarray]:
            raise RuntimeError("onnxruntime exploded")

    scorer._members[1]._session = BrokenSession()

    with pytest.raises(ScoringError, match=r"'logreg'.*onnxruntime exploded"):
        scorer.score(dataset.features[:10])


@pytest.mark.parametrize("victim", ["xgboost.onnx", "logreg.onnx", "explainer.onnx"])
def test_a_tampered_file_is_refused_naming_it(model_copy: Path, victim: str) -> None:
    flip_a_byte(model_copy / victim)

    with pytest.raises(ModelIntegrityError, match=re.escape(victim)):
        EnsembleScorer.load(model_copy)


def test_a_missing_file_is_refused(model_copy: Path) -> None:
    (model_copy / "xgboost.onnx").unlink()
    with pytest.raises(ModelIntegrityError, match=r"xgboost\.onnx"):
        EnsembleScorer.load(model_copy)


def test_a_model_for_other_features_is_refused(model_dir: Path) -> None:
    with pytest.raises(ManifestError, match="expects features"):
        EnsembleScorer.load(model_dir, expected_feature_names=list(reversed(FEATURE_NAMES)))
    assert EnsembleScorer.load(model_dir, expected_feature_names=FEATURE_NAMES)


def test_a_hash_valid_file_that_is_not_onnx_is_refused(model_copy: Path) -> None:
    junk = b"definitely not onnx"
    (model_copy / "logreg.onnx").write_bytes(junk)
    manifest = json.loads((model_copy / MANIFEST_FILENAME).read_text())
    manifest["members"][1]["sha256"] = sha256_bytes(junk)
    (model_copy / MANIFEST_FILENAME).write_text(json.dumps(manifest))

    with pytest.raises(ModelFormatError, match="logreg"):
        EnsembleScorer.load(model_copy)


def test_a_member_built_for_another_width_is_refused(model_copy: Path) -> None:
    manifest = json.loads((model_copy / MANIFEST_FILENAME).read_text())
    manifest["feature_names"] = manifest["feature_names"][:-1]
    (model_copy / MANIFEST_FILENAME).write_text(json.dumps(manifest))

    with pytest.raises(ModelFormatError, match="33 features"):
        EnsembleScorer.load(model_copy)


def test_top_features_are_k_real_features_that_pushed_the_score_up(
    scorer: EnsembleScorer, dataset: Dataset
) -> None:
    rows = dataset.features[:1000]
    scores = scorer.score(rows).scores
    reasons = scorer.top_features(rows, k=3)

    assert len(reasons) == len(rows)
    for codes in reasons:
        assert len(codes) <= 3
        for code in codes:
            direction, _, name = code.partition(":")
            assert direction in {"HIGH", "LOW"}
            assert name in FEATURE_NAMES
        assert len(set(codes)) == len(codes)
    risky = np.argsort(-scores)[:50]
    assert all(len(reasons[i]) == 3 for i in risky)


def test_an_extreme_value_is_the_first_reason(scorer: EnsembleScorer, dataset: Dataset) -> None:
    row = np.nanmedian(dataset.features, axis=0, keepdims=True)
    row[0, column("user_amount_zscore_30d")] = 12.0

    assert scorer.top_features(row, k=2)[0][0] == "HIGH:user_amount_zscore_30d"


def test_missing_values_are_never_reasons(scorer: EnsembleScorer) -> None:
    empty = np.full((2, len(FEATURE_NAMES)), np.nan)
    assert scorer.top_features(empty, k=3) == [[], []]


def test_k_is_bounded_by_the_feature_count(scorer: EnsembleScorer, dataset: Dataset) -> None:
    rows = dataset.features[:20]
    assert scorer.top_features(rows, k=0) == [[] for _ in range(20)]
    everything = scorer.top_features(rows, k=1000)
    assert max(len(codes) for codes in everything) <= len(FEATURE_NAMES)
    first = scorer.top_features(rows, k=1)
    assert [codes[:1] for codes in everything] == first
