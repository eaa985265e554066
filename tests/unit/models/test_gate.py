"""The validation gate: same window for both models, AP must improve, AUC may not drop much."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from models.candidate import train_candidate
from models.exceptions import ModelIntegrityError
from models.gate import GatePolicy, decide, gate_window, run_gate
from models.manifest import MANIFEST_FILENAME, EvaluationMetrics, Manifest, read_manifest
from models.pit import PointInTimeSet
from tests.unit.models.conftest import Members


@pytest.fixture(scope="module")
def good(
    pit_dataset: PointInTimeSet, small_members: Members, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    folder = tmp_path_factory.mktemp("good")
    train_candidate(pit_dataset, folder, members=small_members(), version="good")
    return folder


@pytest.fixture(scope="module")
def bad(
    shuffled_dataset: PointInTimeSet,
    small_members: Members,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    folder = tmp_path_factory.mktemp("bad")
    train_candidate(shuffled_dataset, folder, members=small_members(), version="bad")
    return folder


def metrics(auc: float | None, ap: float | None) -> EvaluationMetrics:
    return EvaluationMetrics(auc=auc, ap=ap)


@pytest.mark.parametrize(
    ("candidate", "champion", "verdict", "why"),
    [
        (metrics(0.90, 0.60), None, "champion", "first model"),
        (metrics(0.90, 0.60), metrics(0.90, 0.50), "champion", "beats"),
        (metrics(0.891, 0.60), metrics(0.90, 0.50), "champion", "within"),  # AUC -0.009
        (metrics(0.95, 0.50), metrics(0.90, 0.50), "challenger", "does not beat"),  # tie on AP
        (metrics(0.88, 0.60), metrics(0.90, 0.50), "challenger", "AUC drops"),  # AUC -0.02
        (metrics(None, None), metrics(0.90, 0.50), "challenger", "no comparison"),
    ],
)
def test_the_rule(
    candidate: EvaluationMetrics, champion: EvaluationMetrics | None, verdict: str, why: str
) -> None:
    decided, reason = decide(candidate, champion, max_auc_loss=0.01)

    assert decided == verdict
    assert why in reason


def test_a_better_model_replaces_a_worse_champion(
    pit_dataset: PointInTimeSet, good: Path, bad: Path
) -> None:
    record = run_gate(pit_dataset, good, bad)

    assert record.verdict == "champion", record.reason
    assert record.champion_version == "bad"
    assert record.champion is not None and record.champion.ap is not None
    assert record.candidate.ap is not None and record.candidate.ap > record.champion.ap
    assert record.candidate.cp_at_100 is not None and record.candidate.block is not None


def test_a_worse_model_becomes_challenger(
    pit_dataset: PointInTimeSet, good: Path, bad: Path
) -> None:
    record = run_gate(pit_dataset, bad, good)

    assert record.verdict == "challenger"
    assert "does not beat" in record.reason or "AUC drops" in record.reason


def test_both_models_are_scored_on_the_same_recent_validation_rows(
    pit_dataset: PointInTimeSet, good: Path, bad: Path
) -> None:
    manifest = read_manifest(good)
    policy = GatePolicy(window=pit_dataset.label_delay)  # 3 days: shorter than validation

    record = run_gate(pit_dataset, good, bad, policy)

    rows = gate_window(pit_dataset, manifest.validation_window.from_, policy.window)
    times = pit_dataset.training.event_times[rows]
    newest = pit_dataset.training.event_times.max()
    assert record.rows == rows.sum() > 0
    assert record.frauds == pit_dataset.training.labels[rows].sum()
    assert times.min() >= newest - np.timedelta64(3, "D")
    assert record.window.from_ >= manifest.validation_window.from_
    wide = run_gate(pit_dataset, good, bad, GatePolicy(window=pit_dataset.label_delay * 100))
    assert wide.rows == manifest.validation_rows  # never earlier than validation


def test_the_first_model_is_promoted_directly(pit_dataset: PointInTimeSet, good: Path) -> None:
    record = run_gate(pit_dataset, good, None)

    assert (record.verdict, record.champion, record.champion_version) == ("champion", None, None)


def test_a_tampered_champion_is_refused_not_compared(
    pit_dataset: PointInTimeSet, good: Path, bad: Path, tmp_path: Path
) -> None:
    champion = tmp_path / "champion"
    shutil.copytree(bad, champion)
    (champion / "xgboost.onnx").write_bytes(b"not the model")

    with pytest.raises(ModelIntegrityError, match=re.escape(str(champion / "xgboost.onnx"))):
        run_gate(pit_dataset, good, champion)


def test_a_champion_for_another_feature_vector_is_replaced(
    pit_dataset: PointInTimeSet, good: Path, bad: Path, tmp_path: Path
) -> None:
    champion = tmp_path / "champion"
    shutil.copytree(bad, champion)
    document = json.loads((champion / MANIFEST_FILENAME).read_text())
    document["feature_names"][0] = "renamed_feature"
    (champion / MANIFEST_FILENAME).write_text(json.dumps(document))
    Manifest.model_validate(document)

    record = run_gate(pit_dataset, good, champion)

    assert record.verdict == "champion"
    assert "another feature vector" in record.reason
