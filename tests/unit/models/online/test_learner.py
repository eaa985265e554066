"""OnlineLearner: learning from verdicts, progressive validation, checkpoints, ONNX export."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from models.exceptions import ModelFormatError, TrainingError
from models.manifest import MEMBER_INPUT, MEMBER_OUTPUT, sha256_bytes
from models.online import ONLINE_ROLE, OnlineLearner, OnlineMember, write_online_model
from operators.scoring import OnnxMember

NAMES = ("amount_z", "velocity", "distance", "night")
Row = dict[str, float | None]


def normal_rows(rng: np.random.Generator, n: int) -> Iterator[Row]:
    for values in rng.normal(0.0, 1.0, (n, len(NAMES))).tolist():
        yield dict(zip(NAMES, values, strict=True))


def pattern_row(rng: np.random.Generator) -> Row:
    """A new fraud pattern: a large amount at high velocity."""
    row = next(normal_rows(rng, 1))
    row["amount_z"] = 3.0 + rng.normal(0.0, 0.3)
    row["velocity"] = 3.0 + rng.normal(0.0, 0.3)
    return row


def warmed_up(seed: int = 0, rows: int = 300) -> OnlineLearner:
    """A learner that has seen ordinary traffic, ~5% fraud driven by distance (the old pattern)."""
    rng = np.random.default_rng(seed)
    learner = OnlineLearner(NAMES)
    for row in normal_rows(rng, rows):
        assert row["distance"] is not None
        risk = 2.0 * row["distance"] - 3.5
        learner.learn_one(row, bool(rng.random() < 1.0 / (1.0 + math.exp(-risk))))
    return learner


def as_matrix(rows: list[Row]) -> np.ndarray:
    return np.array(
        [[math.nan if r.get(n) is None else r[n] for n in NAMES] for r in rows], dtype=np.float64
    )


def onnx_scores(learner: OnlineLearner, matrix: np.ndarray) -> np.ndarray:
    member = OnnxMember("online", learner.to_onnx().SerializeToString(), len(NAMES))
    return member.predict(matrix.astype(np.float32)).astype(np.float64)


def test_learning_a_fraud_pattern_raises_similar_scores_only() -> None:
    learner = warmed_up()
    rng = np.random.default_rng(1)
    similar = pattern_row(rng)
    dissimilar: Row = {"amount_z": -1.0, "velocity": -1.0, "distance": 0.0, "night": 0.0}
    before_similar = learner.predict_one(similar)
    before_dissimilar = learner.predict_one(dissimilar)

    for _ in range(40):
        learner.learn_one(pattern_row(rng), True)
        for row in normal_rows(rng, 2):
            learner.learn_one(row, False)

    assert learner.predict_one(similar) > before_similar + 0.2
    assert learner.predict_one(dissimilar) <= before_dissimilar + 0.01


def test_learn_one_returns_the_prediction_made_before_learning() -> None:
    learner = warmed_up()
    row = pattern_row(np.random.default_rng(2))
    expected = learner.predict_one(row)

    assert learner.learn_one(row, True) == expected
    assert learner.predict_one(row) > expected


def test_quality_is_undefined_before_any_label() -> None:
    quality = OnlineLearner(NAMES).quality()

    assert quality["labels"] == 0.0
    assert all(math.isnan(quality[k]) for k in ("auc", "logloss", "precision", "recall"))


def test_progressive_validation_counts_labels_but_not_corrections() -> None:
    learner = warmed_up(rows=50)
    rng = np.random.default_rng(3)
    for row in normal_rows(rng, 25):
        learner.learn_one(row, False)
    learner.correct(pattern_row(rng), True)

    assert learner.n_learned == 75
    assert learner.n_corrected == 1
    assert learner.quality()["labels"] == 75.0


def test_metrics_match_the_predictions_exactly_from_a_fresh_learner() -> None:
    rng = np.random.default_rng(4)
    learner = OnlineLearner(NAMES)
    predictions: list[float] = []
    labels: list[bool] = []
    for i in range(300):
        fraud = i % 4 == 0
        row = pattern_row(rng) if fraud else next(normal_rows(rng, 1))
        predictions.append(learner.learn_one(row, fraud))
        labels.append(fraud)
    p = np.array(predictions)
    y = np.array(labels)
    flagged = p >= 0.5
    tp, fp, fn = (flagged & y).sum(), (flagged & ~y).sum(), (~flagged & y).sum()
    clipped = np.clip(p, 1e-15, 1 - 1e-15)

    quality = learner.quality()

    assert quality["labels"] == 300.0
    assert quality["precision"] == pytest.approx(tp / (tp + fp))
    assert quality["recall"] == pytest.approx(tp / (tp + fn))
    assert quality["logloss"] == pytest.approx(
        -np.mean(np.where(y, np.log(clipped), np.log(1 - clipped)))
    )
    assert quality["auc"] == pytest.approx(roc_auc_score(y, p), abs=0.03)


def test_checkpoint_round_trip_predicts_and_learns_identically() -> None:
    learner = warmed_up()
    learner.correct(pattern_row(np.random.default_rng(5)), True)
    restored = OnlineLearner.from_state(orjson.loads(orjson.dumps(learner.state())))
    rows: list[Row] = [*normal_rows(np.random.default_rng(6), 50), {"amount_z": None}, {}]

    assert [restored.predict_one(r) for r in rows] == [learner.predict_one(r) for r in rows]
    assert restored.quality() == learner.quality()
    assert (restored.n_learned, restored.n_corrected) == (learner.n_learned, learner.n_corrected)

    rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
    for row_a, row_b in zip(normal_rows(rng_a, 30), normal_rows(rng_b, 30), strict=True):
        assert restored.learn_one(row_b, False) == learner.learn_one(row_a, False)
    assert restored.learn_one(pattern_row(rng_b), True) == learner.learn_one(
        pattern_row(rng_a), True
    )
    assert restored.state() == learner.state()


def test_state_holds_only_plain_json_values() -> None:
    def plain(value: Any) -> bool:
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return type(value) in (int, float, str)

    assert plain(warmed_up().state())


def _set(path: tuple[str, ...], value: object) -> Any:
    def mutate(state: dict[str, Any]) -> None:
        target = state
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _drop(path: tuple[str, ...]) -> Any:
    def mutate(state: dict[str, Any]) -> None:
        target = state
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_set(("format",), 99), "format"),
        (_drop(("weights",)), "weights"),
        (_set(("weights", "velocity"), "1.0"), "weights.velocity"),
        (_drop(("weights", "night")), "weights"),
        (_set(("intercept",), None), "intercept"),
        (_set(("scaler", "vars", "distance"), -1.0), "scaler.vars"),
        (_set(("impute", "night", "n"), -3), "impute.night.n"),
        (_set(("n_learned",), 1.5), "n_learned"),
        (_set(("feature_names",), []), "feature_names"),
        (_set(("learning_rate",), 0.0), "learning_rate"),
        (_set(("quality", "auc"), []), "quality.auc"),
        (_set(("quality", "confusion", "tp"), -1), "quality.confusion.tp"),
    ],
)
def test_bad_state_is_refused_with_the_field_named(mutate: Any, message: str) -> None:
    state = orjson.loads(orjson.dumps(warmed_up(rows=20).state()))
    mutate(state)

    with pytest.raises(ModelFormatError, match=message.replace(".", r"\.")):
        OnlineLearner.from_state(state)


def test_missing_none_nan_and_inf_are_all_imputed_alike() -> None:
    learner = warmed_up()
    base: Row = {"amount_z": 1.0, "velocity": 0.5, "distance": -0.2}

    expected = learner.predict_one(base)  # "night" absent

    for missing in (None, math.nan, math.inf, -math.inf):
        assert learner.predict_one({**base, "night": missing}) == expected


def test_non_finite_values_never_enter_the_statistics() -> None:
    learner = warmed_up()
    before = learner.parameters()
    learner.learn_one({"amount_z": math.inf, "velocity": math.nan, "distance": None}, True)

    after = learner.parameters()

    assert all(np.all(np.isfinite(a)) for a in after[:4]) and math.isfinite(after.intercept)
    np.testing.assert_array_equal(after.impute[:3], before.impute[:3])


def test_correct_moves_the_prediction_toward_the_new_verdict() -> None:
    learner = warmed_up()
    row = pattern_row(np.random.default_rng(8))
    learner.learn_one(row, False)
    quality, learned = learner.quality(), learner.n_learned
    as_legit = learner.predict_one(row)

    learner.correct(row, True)
    as_fraud = learner.predict_one(row)
    learner.correct(row, False)

    assert as_fraud > as_legit
    assert learner.predict_one(row) < as_fraud
    assert learner.quality() == quality
    assert (learner.n_learned, learner.n_corrected) == (learned, 2)


def test_onnx_graph_has_the_member_contract_signature() -> None:
    graph = warmed_up().to_onnx().graph

    assert [i.name for i in graph.input] == [MEMBER_INPUT]
    assert [o.name for o in graph.output] == [MEMBER_OUTPUT]


def test_onnx_matches_predict_one_including_missing_values() -> None:
    learner = warmed_up()
    rows: list[Row] = list(normal_rows(np.random.default_rng(9), 200))
    rows += [{"amount_z": None, "velocity": 40.0}, {}, {"night": -1e6, "distance": 1e6}]
    matrix = as_matrix(rows)
    matrix[:50, 1] = np.nan
    matrix[50:60, 2] = np.inf

    expected = np.array(
        [learner.predict_one(dict(zip(NAMES, r, strict=True))) for r in matrix.tolist()]
    )

    np.testing.assert_allclose(onnx_scores(learner, matrix), expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(learner.predict_many(matrix), expected, atol=1e-12, rtol=0)


_PARITY_LEARNER = warmed_up(seed=10)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), min_size=4, max_size=4),
        min_size=1,
        max_size=20,
    )
)
def test_onnx_parity_on_any_float32_rows(rows: list[list[float]]) -> None:
    learner = _PARITY_LEARNER
    matrix = np.array(rows, dtype=np.float64)
    expected = np.array([learner.predict_one(dict(zip(NAMES, r, strict=True))) for r in rows])

    scores = onnx_scores(learner, matrix)

    assert np.all((scores >= 0) & (scores <= 1))
    np.testing.assert_allclose(scores, expected, atol=1e-5, rtol=0)


def test_empty_learner_exports_a_valid_graph() -> None:
    learner = OnlineLearner(NAMES)

    scores = onnx_scores(learner, np.array([[1.0, math.nan, 3.0, 4.0]]))

    assert scores == pytest.approx([0.5])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"feature_names": ()},
        {"feature_names": ("a", "a")},
        {"feature_names": ("a", "")},
        {"feature_names": NAMES, "learning_rate": 0.0},
        {"feature_names": NAMES, "l2": -1.0},
        {"feature_names": NAMES, "fraud_weight": math.nan},
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, Any]) -> None:
    names = kwargs.pop("feature_names")
    with pytest.raises(TrainingError):
        OnlineLearner(names, **kwargs)


def test_write_online_model_writes_graph_and_sidecar(tmp_path: Path) -> None:
    learner = warmed_up()

    path, digest = write_online_model(learner, tmp_path / "online", "online-0001")

    assert path == tmp_path / "online" / "online-0001.onnx"
    assert sha256_bytes(path.read_bytes()) == digest
    sidecar = orjson.loads((tmp_path / "online" / "online-0001.json").read_bytes())
    assert sidecar["role"] == ONLINE_ROLE
    assert sidecar["version"] == "online-0001"
    assert sidecar["file"] == "online-0001.onnx"
    assert sidecar["feature_names"] == list(NAMES)
    assert sidecar["n_learned"] == learner.n_learned
    assert sidecar["sha256"] == digest
    assert sidecar["quality"]["labels"] == learner.n_learned
    assert sorted(p.name for p in (tmp_path / "online").iterdir()) == [
        "online-0001.json",
        "online-0001.onnx",
    ]


@pytest.mark.parametrize("version", ["", "../escape", ".hidden", "a/b"])
def test_write_online_model_refuses_unsafe_versions(tmp_path: Path, version: str) -> None:
    with pytest.raises(TrainingError):
        write_online_model(warmed_up(rows=10), tmp_path, version)
    assert list(tmp_path.iterdir()) == []


def test_member_keeps_given_feature_names_and_refuses_use_before_fit() -> None:
    member = OnlineMember(feature_names=NAMES)
    with pytest.raises(TrainingError, match="not fitted"):
        member.predict_native(np.zeros((1, 4), dtype=np.float32))

    rng = np.random.default_rng(11)
    features = rng.normal(0.0, 1.0, (200, 4)).astype(np.float32)
    labels = (features[:, 0] > 1.0).astype(np.int8)
    member.fit(features, labels)

    assert member.learner.feature_names == NAMES
    assert member.learner.n_learned == 200
    assert member.explainer_onnx() is None
