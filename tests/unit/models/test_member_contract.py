"""The contract every ensemble member honours once exported to ONNX and loaded for serving.

Parametrized over the member registry: a new member gets the whole suite for free.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import pytest
from sklearn.metrics import roc_auc_score

from models.ensemble import MEMBERS, EnsembleMember, LogisticMember, XGBoostMember
from models.manifest import MEMBER_INPUT, MEMBER_OUTPUT
from operators.exceptions import ScoringError
from operators.scoring import OnnxMember
from operators.scoring._session import new_session
from tests.unit.models._synthetic import Dataset, make_dataset

PARITY = 1e-5


def build(name: str) -> EnsembleMember:
    # n_jobs=1: a busy 2-core CI box makes OpenMP spin-waiting far slower than one thread
    return XGBoostMember(n_jobs=1) if name == XGBoostMember.name else MEMBERS[name](0)


@dataclass(frozen=True)
class Exported:
    member: EnsembleMember
    model: onnx.ModelProto
    onnx: OnnxMember


@pytest.fixture(scope="module")
def train_set() -> Dataset:
    return make_dataset(12_000, seed=1)


@pytest.fixture(scope="module")
def parity_set() -> Dataset:
    return make_dataset(10_000, seed=2, nan_share=0.1)


@pytest.fixture(scope="module", params=sorted(MEMBERS))
def exported(request: pytest.FixtureRequest, train_set: Dataset) -> Exported:
    member = build(request.param)
    member.fit(train_set.features.astype(np.float32), train_set.labels)
    model = member.to_onnx()
    width = len(train_set.feature_names)
    return Exported(member, model, OnnxMember(member.name, model.SerializeToString(), width))


def test_graph_has_exactly_the_contract_signature(exported: Exported) -> None:
    graph = exported.model.graph
    assert [i.name for i in graph.input] == [MEMBER_INPUT]
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [o.name for o in graph.output] == [MEMBER_OUTPUT]
    assert len(graph.output[0].type.tensor_type.shape.dim) == 1


def test_float32_batch_gives_one_probability_per_row(
    exported: Exported, parity_set: Dataset
) -> None:
    batch = parity_set.features[:257].astype(np.float32)

    scores = exported.onnx.predict(batch)

    assert scores.shape == (257,)
    assert scores.dtype == np.float32
    assert np.all((scores >= 0.0) & (scores <= 1.0))


def test_float64_input_is_scored_as_float32(exported: Exported, parity_set: Dataset) -> None:
    rows = parity_set.features[:500]
    np.testing.assert_array_equal(
        exported.onnx.predict(rows), exported.onnx.predict(rows.astype(np.float32))
    )


@pytest.mark.parametrize("width_change", [-1, 1])
def test_wrong_width_is_refused(exported: Exported, parity_set: Dataset, width_change: int) -> None:
    width = parity_set.features.shape[1] + width_change
    with pytest.raises(ScoringError, match=rf"\[n, {parity_set.features.shape[1]}\]"):
        exported.onnx.predict(np.zeros((4, width), dtype=np.float32))


@pytest.mark.parametrize(
    "bad", [np.zeros(34, dtype=np.float32), np.array([["a"] * 34]), [[0.0] * 34]]
)
def test_non_matrix_input_is_refused(exported: Exported, bad: object) -> None:
    with pytest.raises(ScoringError):
        exported.onnx.predict(bad)


def test_same_input_same_output(exported: Exported, parity_set: Dataset) -> None:
    batch = parity_set.features[:1000]
    np.testing.assert_array_equal(exported.onnx.predict(batch), exported.onnx.predict(batch))


def test_onnx_matches_native_model_on_10000_rows(exported: Exported, parity_set: Dataset) -> None:
    batch = parity_set.features.astype(np.float32)
    assert np.isnan(batch).any(), "the parity rows must exercise missing values"

    difference = np.abs(exported.onnx.predict(batch) - exported.member.predict_native(batch))

    assert difference.max() <= PARITY


def test_missing_values_give_valid_scores_matching_native(exported: Exported) -> None:
    width = exported.onnx.n_features
    batch = np.full((width + 1, width), np.nan, dtype=np.float32)
    batch[np.arange(width), np.arange(width)] = 1.0  # one known value per row, last row empty

    scores = exported.onnx.predict(batch)

    assert np.all(np.isfinite(scores))
    assert np.all((scores >= 0) & (scores <= 1))
    assert np.abs(scores - exported.member.predict_native(batch)).max() <= PARITY


def test_member_learned_the_signal(exported: Exported, parity_set: Dataset) -> None:
    scores = exported.onnx.predict(parity_set.features)
    assert roc_auc_score(parity_set.labels, scores) > 0.8


def test_empty_batch_gives_empty_scores(exported: Exported) -> None:
    empty = np.zeros((0, exported.onnx.n_features), dtype=np.float32)
    assert exported.onnx.predict(empty).shape == (0,)


def test_logistic_explainer_matches_native_contributions(
    train_set: Dataset, parity_set: Dataset
) -> None:
    member = LogisticMember()
    member.fit(train_set.features.astype(np.float32), train_set.labels)
    explainer = member.explainer_onnx()
    assert explainer is not None
    session = new_session(explainer.SerializeToString(), what="explainer")
    batch = parity_set.features[:2000].astype(np.float32)

    contributions, _standardized = session.run(None, {MEMBER_INPUT: batch})

    expected = member.native_contributions(batch)
    np.testing.assert_allclose(contributions, expected, atol=1e-4, rtol=1e-4)
    assert np.all(contributions[np.isnan(batch)] == 0.0)
