"""Model sources of the scorer: a pinned folder, and the process-wide slots of every role.

Real tiny models throughout: the swap, the refusal and the metrics are those of production.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from prometheus_client import REGISTRY

from models.manifest import sha256_bytes
from operators._blend import OnlineBlend
from operators.engine import DECISION_FEATURES, DecisionEngine, FeaturedTx
from operators.enrichment import Enrichment
from operators.features import FEATURE_NAMES
from operators.rules import RuleSet
from operators.scoring import EnsembleScorer, OnlineScorer
from schemas import Transaction
from streams.model_holder import ModelHolder, Served, ServingModels
from tests.unit.models._trained import train_tiny
from tests.unit.streams._online_models import train_online

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("registry")
    train_tiny(root, "holder-a", seed=3)
    train_tiny(root, "holder-b", seed=7)
    train_online(root / "online", "holder-online-a", seed=1)
    train_online(root / "online", "holder-online-b", seed=2)
    return root


def load_online(registry: Path, version: str) -> OnlineScorer:
    path = registry / "online" / f"{version}.onnx"
    return OnlineScorer.load(path, sha256_bytes(path.read_bytes()))


def info(version: str, role: str = "champion") -> float | None:
    return REGISTRY.get_sample_value("fraud_model_info", {"version": version, "role": role})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FixedRules:
    def get(self) -> RuleSet:
        return RuleSet.default()


def _items(count: int) -> list[FeaturedTx]:
    return [
        FeaturedTx(
            tx=Transaction(
                tx_id=f"t{i}",
                user_id=f"u{i}",
                merchant_id="m1",
                amount=Decimal("12.50"),
                event_time=NOW,
            ),
            features=dict.fromkeys(FEATURE_NAMES, 1.0),
            produced_ms=int(NOW.timestamp() * 1000),
        )
        for i in range(count)
    ]


# -- the pinned folder -------------------------------------------------------------------
def test_a_pinned_folder_is_served_and_swapped_when_it_changes(registry: Path, tmp_path: Path):
    folder = tmp_path / "model"
    shutil.copytree(registry / "holder-a", folder)
    clock = Clock()
    holder = ModelHolder(folder, role="pinned-test", check_interval_s=1.0, clock=clock)
    first = holder.current()
    assert first is not None and first.version == "holder-a"
    assert holder.challenger() is None
    assert info("holder-a", "pinned-test") == 1

    shutil.rmtree(folder)
    shutil.copytree(registry / "holder-b", folder)
    assert holder.current() is first  # not checked again before the interval is over
    clock.now = 1.0
    second = holder.current()
    assert second is not None and second.version == "holder-b"
    assert (info("holder-a", "pinned-test"), info("holder-b", "pinned-test")) == (0, 1)


def test_a_pinned_folder_with_an_altered_file_keeps_the_previous_model(
    registry: Path, tmp_path: Path
):
    folder = tmp_path / "model"
    shutil.copytree(registry / "holder-a", folder)
    clock = Clock()
    holder = ModelHolder(folder, check_interval_s=1.0, clock=clock)
    shutil.rmtree(folder)
    shutil.copytree(registry / "holder-b", folder)
    (folder / "xgboost.onnx").write_bytes(b"tampered")
    clock.now = 1.0
    model = holder.current()
    assert model is not None and model.version == "holder-a"
    assert holder.last_error is not None and "xgboost.onnx" in holder.last_error


def test_an_empty_pinned_folder_means_no_model(tmp_path: Path):
    holder = ModelHolder(tmp_path / "nothing-here")
    assert holder.current() is None and holder.challenger() is None
    assert holder.online() is None


# -- process-wide slots ------------------------------------------------------------------
def test_installing_a_version_moves_the_model_info_gauge(registry: Path):
    models = ServingModels()
    a = EnsembleScorer.load(registry / "holder-a")
    b = EnsembleScorer.load(registry / "holder-b")
    models.install("challenger", Served(a, None, "registry"))
    assert models.challenger() is a and models.current() is None
    assert info("holder-a", "challenger") == 1
    models.install("challenger", Served(b, None, "registry"))
    assert (info("holder-a", "challenger"), info("holder-b", "challenger")) == (0, 1)
    models.install("challenger", None)
    assert models.challenger() is None and info("holder-b", "challenger") == 0


class SwapWhileScoring:
    """A champion whose scoring installs another champion midway through the batch."""

    def __init__(self, model: EnsembleScorer, slots: ServingModels, then: Served) -> None:
        self.model, self.slots, self.then = model, slots, then

    def __getattr__(self, name: str) -> object:
        return getattr(self.model, name)

    def score(self, matrix: object) -> object:
        self.slots.install("champion", self.then)
        return self.model.score(matrix)


def test_a_batch_never_sees_two_models_and_the_next_batch_gets_the_new_one(registry: Path):
    a = EnsembleScorer.load(registry / "holder-a")
    b = EnsembleScorer.load(registry / "holder-b")
    slots = ServingModels()
    racing = SwapWhileScoring(a, slots, Served(b, None, "model-updates"))
    slots.install("champion", Served(racing, None, "model-updates"))  # type: ignore[arg-type]
    engine = DecisionEngine(FixedRules(), slots, model_budget_s=5.0)  # type: ignore[arg-type]

    during = engine.decide(_items(50), Enrichment.empty(50))
    after = engine.decide(_items(50), Enrichment.empty(50))

    assert {d["model_version"] for d in during.decisions} == {"holder-a"}
    assert set(during.member_scores) == {"xgboost", "logreg"}
    assert {d["model_version"] for d in after.decisions} == {"holder-b"}
    expected_b = b.score(engine_matrix(50)).scores.tolist()
    assert [d["score"] for d in after.decisions] == pytest.approx(expected_b, abs=1e-12)


def engine_matrix(rows: int) -> NDArray[np.float64]:
    """What the engine scores for ``_items``: all ones, merchant_risk from empty enrichment."""
    matrix = np.ones((rows, len(FEATURE_NAMES)))
    matrix[:, FEATURE_NAMES.index("merchant_risk")] = np.nan
    return matrix


# -- the online role ---------------------------------------------------------------------
def test_installing_an_online_model_moves_its_gauge_and_leaves_the_champion(registry: Path):
    models = ServingModels()
    champion = EnsembleScorer.load(registry / "holder-a")
    a = load_online(registry, "holder-online-a")
    b = load_online(registry, "holder-online-b")
    models.install("champion", Served(champion, None, "registry"))
    models.install("online", Served(a, a.sha256, "model-updates"))
    assert models.online() is a and models.current() is champion
    assert models.challenger() is None
    assert info("holder-online-a", "online") == 1
    models.install("online", Served(b, b.sha256, "model-updates"))
    assert models.online() is b
    assert (info("holder-online-a", "online"), info("holder-online-b", "online")) == (0, 1)
    assert info("holder-a", "champion") == 1
    models.install("online", None)
    assert models.online() is None and info("holder-online-b", "online") == 0


def test_an_online_swap_reaches_the_next_batch(registry: Path):
    champion = EnsembleScorer.load(registry / "holder-a")
    a = load_online(registry, "holder-online-a")
    b = load_online(registry, "holder-online-b")
    slots = ServingModels()
    slots.install("champion", Served(champion, None, "registry"))
    engine = DecisionEngine(FixedRules(), slots, model_budget_s=5.0, online_weight=0.25)
    alone = engine.decide(_items(20), Enrichment.empty(20))
    slots.install("online", Served(a, a.sha256, "model-updates"))
    with_a = engine.decide(_items(20), Enrichment.empty(20))
    slots.install("online", Served(b, b.sha256, "model-updates"))
    with_b = engine.decide(_items(20), Enrichment.empty(20))

    assert all("online" not in d["member_scores"] for d in alone.decisions)
    for outcome, model in ((with_a, a), (with_b, b)):
        expected = model.score(online_input(model, 20))
        online_scores = [d["member_scores"]["online"] for d in outcome.decisions]
        assert online_scores == pytest.approx(expected.tolist(), abs=1e-6)
        blended = [
            0.75 * d["score"] + 0.25 * p
            for d, p in zip(alone.decisions, expected.tolist(), strict=True)
        ]
        assert [d["score"] for d in outcome.decisions] == pytest.approx(blended, abs=1e-12)
    assert with_a.member_scores["online"].tolist() != with_b.member_scores["online"].tolist()


def online_input(model: OnlineScorer, rows: int) -> NDArray[np.float64]:
    """What the engine gives ``model`` for ``_items``: its columns of the decision matrix."""
    full = np.hstack((engine_matrix(rows), Enrichment.empty(rows).merchant_labels))
    return OnlineBlend(0.25, DECISION_FEATURES).columns(model, full)
