"""Applying ``model-updates`` records: verified swaps, clear refusals, registry fallback.

The Kafka consumer loop runs against a real broker in tests/integration/test_hot_swap.py;
here the records it hands over are applied directly, with real tiny models on disk.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import orjson
import pytest
from structlog.testing import capture_logs

from models.manifest import sha256_bytes
from operators.features import FEATURE_NAMES
from schemas import ModelUpdate, encode
from streams.model_holder import ServingModels
from streams.model_updates import ModelUpdateFollower
from streams.settings import Settings
from tests.unit.models._trained import (
    model_update,
    publish_copy,
    train_tiny,
    with_features,
    write_aliases,
)
from tests.unit.streams._online_models import online_update, train_online


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    train_tiny(root, "update-a", seed=3)
    train_tiny(root, "update-b", seed=7)
    train_online(root / "online", "online-a", seed=1)
    train_online(root / "online", "online-b", seed=2)
    return root


@pytest.fixture
def registry(trained: Path, tmp_path: Path) -> Path:
    """A registry root of this test's own (tests alter version folders)."""
    root = tmp_path / "registry"
    shutil.copytree(trained, root)
    return root


def follower(registry: Path) -> ModelUpdateFollower:
    return ModelUpdateFollower(Settings(), ServingModels(), registry_dir=registry)


def send(target: ModelUpdateFollower, update: object, key: bytes | None = None) -> bool:
    role = getattr(update, "role", "champion")
    return target.apply(key or role.encode(), encode(update))  # type: ignore[arg-type]


def refusals(logs: list[dict[str, object]]) -> list[dict[str, object]]:
    return [entry for entry in logs if entry["event"] == "model_update_refused"]


def test_a_verified_update_is_served_and_replaced_by_the_next(registry: Path):
    feed = follower(registry)
    assert send(feed, model_update(registry / "update-a"))
    first = feed.models.current()
    assert first is not None and first.version == "update-a"
    assert send(feed, model_update(registry / "update-b"))
    second = feed.models.current()
    assert second is not None and second.version == "update-b"
    assert feed.models.challenger() is None


def test_the_same_update_again_is_not_reloaded(registry: Path):
    feed = follower(registry)
    update = model_update(registry / "update-a")
    assert send(feed, update)
    serving = feed.models.current()
    assert not send(feed, update)
    assert feed.models.current() is serving


def test_a_promoted_challenger_is_reused_not_reloaded(registry: Path):
    feed = follower(registry)
    assert send(feed, model_update(registry / "update-b", role="challenger"))
    on_trial = feed.models.challenger()
    assert send(feed, model_update(registry / "update-b", role="champion"))
    assert feed.models.current() is on_trial


def _tamper(registry: Path, kind: str) -> tuple[Path, str | None]:
    """A bad version folder (copy of update-b) and the sha256 its update claims."""
    folder = publish_copy(registry / "update-b", registry, f"bad-{kind}")
    claimed = None
    if kind == "hash_mismatch":
        claimed = "0" * 64
    elif kind == "missing_file":
        (folder / "logreg.onnx").unlink()
    elif kind == "altered_file":
        (folder / "xgboost.onnx").write_bytes(b"not the trained model")
    elif kind == "feature_order":
        with_features(folder, tuple(reversed(FEATURE_NAMES)))
    return folder, claimed


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("hash_mismatch", "manifest_hash_mismatch"),
        ("missing_file", "file_integrity"),
        ("altered_file", "file_integrity"),
        ("feature_order", "feature_order"),
    ],
)
def test_a_bad_update_is_refused_and_the_previous_model_keeps_serving(
    registry: Path, kind: str, reason: str
):
    feed = follower(registry)
    assert send(feed, model_update(registry / "update-a"))
    folder, claimed = _tamper(registry, kind)
    with capture_logs() as logs:
        assert not send(feed, model_update(folder, sha256=claimed))
    serving = feed.models.current()
    assert serving is not None and serving.version == "update-a"
    [refusal] = refusals(logs)
    assert refusal["version"] == f"bad-{kind}"
    assert refusal["reason"] == reason
    assert refusal["role"] == "champion" and refusal["log_level"] == "error"


def test_an_update_for_a_folder_holding_another_version_is_refused(registry: Path):
    feed = follower(registry)
    update = model_update(registry / "update-a").model_copy(update={"version": "update-z"})
    with capture_logs() as logs:
        assert not send(feed, update)
    assert feed.models.current() is None
    assert refusals(logs)[0]["reason"] == "version_mismatch"


def test_records_that_are_not_updates_are_refused_without_harm(registry: Path):
    feed = follower(registry)
    update = model_update(registry / "update-a")
    with capture_logs() as logs:
        assert not feed.apply(b"champion", b"{not json")
        assert not feed.apply(b"challenger", encode(update))  # key says challenger
        assert not feed.apply(
            b"champion", encode(update.model_copy(update={"uri": "s3://bucket/models/a"}))
        )
    assert feed.models.current() is None and feed.models.challenger() is None
    assert [r["reason"] for r in refusals(logs)] == [
        "undecodable",
        "key_mismatch",
        "unsupported_uri",
    ]
    assert refusals(logs)[0]["version"] is None


def test_a_tombstone_retires_the_challenger_but_never_the_champion(registry: Path):
    feed = follower(registry)
    send(feed, model_update(registry / "update-a"))
    send(feed, model_update(registry / "update-b", role="challenger"))
    assert feed.apply(b"challenger", None)
    assert feed.models.challenger() is None
    assert not feed.apply(b"champion", None)
    champion = feed.models.current()
    assert champion is not None and champion.version == "update-a"


def test_without_updates_the_registry_champion_serves(registry: Path):
    write_aliases(registry, champion="update-b", challenger="update-a")
    feed = follower(registry)
    feed.fall_back_to_registry()
    champion = feed.models.current()
    assert champion is not None and champion.version == "update-b"
    assert feed.models.challenger() is None  # a challenger is only taken from the topic
    served = feed.models.served("champion")
    assert served is not None and served.source == "registry"


def test_the_registry_does_not_override_a_published_champion(registry: Path):
    write_aliases(registry, champion="update-b")
    feed = follower(registry)
    send(feed, model_update(registry / "update-a"))
    feed.fall_back_to_registry()
    champion = feed.models.current()
    assert champion is not None and champion.version == "update-a"


@pytest.mark.parametrize("aliases", [None, {"champion": None}, {"champion": "../../etc"}])
def test_without_a_usable_registry_champion_the_scorer_runs_rules_only(
    registry: Path, aliases: dict[str, object] | None
):
    if aliases is not None:
        (registry / "aliases.json").write_bytes(orjson.dumps(aliases))
    feed = follower(registry)
    feed.fall_back_to_registry()
    assert feed.models.current() is None


def test_the_follower_has_not_caught_up_before_it_starts(registry: Path):
    assert not follower(registry).wait_caught_up(0)


# -- the online role ---------------------------------------------------------------------
def online(registry: Path, version: str, sha256: str | None = None) -> ModelUpdate:
    path = registry / "online" / f"{version}.onnx"
    return online_update(path, sha256 or sha256_bytes(path.read_bytes()))


def test_a_verified_online_update_is_served_beside_the_champion(registry: Path):
    feed = follower(registry)
    assert send(feed, model_update(registry / "update-a"))
    assert send(feed, online(registry, "online-a"))
    served = feed.models.served("online")
    assert served is not None and served.source == "model-updates"
    model = feed.models.online()
    assert model is not None and model.version == "online-a"
    assert served.sha256 == sha256_bytes((registry / "online" / "online-a.onnx").read_bytes())
    assert model.score(np.full((2, len(model.feature_names)), np.nan)).shape == (2,)
    champion = feed.models.current()
    assert champion is not None and champion.version == "update-a"

    assert not send(feed, online(registry, "online-a"))  # the same again: not reloaded
    assert feed.models.online() is model
    assert send(feed, online(registry, "online-b"))
    swapped = feed.models.online()
    assert swapped is not None and swapped.version == "online-b"


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("hash_mismatch", "file_hash_mismatch"),
        ("missing_file", "model_missing"),
        ("altered_file", "file_hash_mismatch"),
        ("version_mismatch", "version_mismatch"),
    ],
)
def test_a_bad_online_update_is_refused_and_the_previous_one_keeps_serving(
    registry: Path, kind: str, reason: str
):
    feed = follower(registry)
    assert send(feed, online(registry, "online-a"))
    path = registry / "online" / "online-b.onnx"
    update = online(registry, "online-b")
    if kind == "hash_mismatch":
        update = online(registry, "online-b", sha256="0" * 64)
    elif kind == "missing_file":
        path.unlink()
    elif kind == "altered_file":
        path.write_bytes(path.read_bytes() + b"tampered")
    elif kind == "version_mismatch":
        update = update.model_copy(update={"version": "online-z"})
    with capture_logs() as logs:
        assert not send(feed, update)
    serving = feed.models.online()
    assert serving is not None and serving.version == "online-a"
    [refusal] = refusals(logs)
    assert (refusal["role"], refusal["reason"], refusal["log_level"]) == ("online", reason, "error")


def test_a_tombstone_retires_the_online_model(registry: Path):
    feed = follower(registry)
    assert send(feed, online(registry, "online-a"))
    assert feed.apply(b"online", None)
    assert feed.models.online() is None
    assert not feed.apply(b"online", None)  # nothing left to retire


def test_the_registry_fallback_serves_no_online_model(registry: Path):
    write_aliases(registry, champion="update-b")
    feed = follower(registry)
    feed.fall_back_to_registry()
    assert feed.models.current() is not None
    assert feed.models.online() is None
