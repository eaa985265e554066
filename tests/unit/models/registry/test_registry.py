"""The registry: atomic version folders, aliases, verified promotion, rollback, publishing."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest

from models.exceptions import ModelIntegrityError, RegistryError
from models.manifest import MANIFEST_FILENAME, sha256_bytes
from models.registry import (
    ALIASES_FILENAME,
    ModelRegistry,
    Role,
    UnpublishedChangeError,
)
from schemas import ModelUpdate
from tests.unit.models._versions import write_version

Published = list[tuple[Role, ModelUpdate | None]]


@pytest.fixture
def published() -> Published:
    return []


@pytest.fixture
def registry(tmp_path: Path, published: Published) -> ModelRegistry:
    def publish(role: Role, update: ModelUpdate | None) -> None:
        published.append((role, update))

    return ModelRegistry(tmp_path / "registry", publish=publish)


def register(registry: ModelRegistry, version: str, minutes: int = 0) -> Path:
    with registry.staging() as staged:
        write_version(staged, version, minutes=minutes)
        return registry.add(staged).path


def test_a_registered_version_is_one_read_only_folder_and_staging_is_gone(
    registry: ModelRegistry,
) -> None:
    folder = register(registry, "v1")

    assert folder == registry.root / "v1"
    assert sorted(p.name for p in folder.iterdir()) == [
        "logreg.onnx",
        MANIFEST_FILENAME,
        "xgboost.onnx",
    ]
    assert all(not p.stat().st_mode & stat.S_IWUSR for p in folder.iterdir())
    assert not [p for p in registry.root.iterdir() if p.name.startswith(".staging")]
    assert [entry.version for entry in registry.entries()] == ["v1"]
    assert registry.aliases().champion is None


def test_a_version_is_never_replaced(registry: ModelRegistry) -> None:
    register(registry, "v1")
    before = (registry.root / "v1" / MANIFEST_FILENAME).read_bytes()

    with pytest.raises(RegistryError, match="already registered"):
        register(registry, "v1", minutes=5)
    assert (registry.root / "v1" / MANIFEST_FILENAME).read_bytes() == before


def test_a_failed_build_leaves_nothing_behind(registry: ModelRegistry) -> None:
    def build_and_fail() -> None:
        with registry.staging() as staged:
            write_version(staged, "v1")
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        build_and_fail()

    assert registry.entries() == []
    assert sorted(p.name for p in registry.root.iterdir()) == []


def test_an_incomplete_staging_folder_is_not_registered(registry: ModelRegistry) -> None:
    with registry.staging() as staged:
        write_version(staged, "v1")
        (staged / "logreg.onnx").unlink()
        with pytest.raises(ModelIntegrityError, match=r"logreg\.onnx"):
            registry.add(staged)
    assert registry.entries() == []


def test_promote_records_history_and_publishes_a_verified_update(
    registry: ModelRegistry, published: Published
) -> None:
    register(registry, "v1")
    register(registry, "v2", minutes=1)

    first = registry.promote("v1")
    second = registry.promote("v2")

    aliases = registry.aliases()
    assert (aliases.champion, aliases.challenger) == ("v2", None)
    assert [(e.action, e.role, e.version, e.previous) for e in aliases.history] == [
        ("promote", "champion", "v1", None),
        ("promote", "champion", "v2", "v1"),
    ]
    assert (first.version, second.previous) == ("v1", "v1")
    role, update = published[-1]
    assert role == "champion" and update is not None
    manifest_bytes = (registry.root / "v2" / MANIFEST_FILENAME).read_bytes()
    assert update.sha256 == sha256_bytes(manifest_bytes)
    assert update.uri == str(registry.root / "v2") and Path(update.uri).is_absolute()
    assert (update.version, update.role) == ("v2", "champion")
    assert update.metrics == {"auc": 0.9, "ap": 0.5, "cp_at_100": 0.2, "block_precision": 1.0,
                              "block_recall": 0.5}  # fmt: skip


def test_aliases_json_follows_the_contract(registry: ModelRegistry) -> None:
    register(registry, "v1")
    registry.promote("v1")

    document = json.loads((registry.root / ALIASES_FILENAME).read_text())

    assert set(document) == {"champion", "challenger", "history"}
    assert document["champion"] == "v1" and document["challenger"] is None
    event = document["history"][0]
    assert set(event) == {"at", "role", "version", "previous", "action"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", event["at"])
    assert not [p for p in registry.root.iterdir() if p.name.endswith(".tmp")]


def test_a_challenger_promoted_to_champion_is_retired_as_challenger(
    registry: ModelRegistry, published: Published
) -> None:
    register(registry, "v1")
    register(registry, "v2", minutes=1)
    registry.promote("v1")
    registry.promote("v2", "challenger")
    assert published[-1][0] == "challenger"

    registry.promote("v2")

    assert (registry.aliases().champion, registry.aliases().challenger) == ("v2", None)
    assert [(role, None if u is None else u.version) for role, u in published[-2:]] == [
        ("champion", "v2"),
        ("challenger", None),  # tombstone
    ]


def test_refused_promotions_change_nothing(registry: ModelRegistry) -> None:
    register(registry, "v1")
    registry.promote("v1")
    before = (registry.root / ALIASES_FILENAME).read_bytes()

    with pytest.raises(RegistryError, match="already the champion"):
        registry.promote("v1")
    with pytest.raises(RegistryError, match="cannot be challenger"):
        registry.promote("v1", "challenger")
    with pytest.raises(RegistryError, match="not in the registry"):
        registry.promote("v9")
    with pytest.raises(RegistryError, match="not a version name"):
        registry.promote("../v1")
    assert (registry.root / ALIASES_FILENAME).read_bytes() == before


def test_a_champion_changed_meanwhile_refuses_the_promotion(registry: ModelRegistry) -> None:
    register(registry, "v1")
    register(registry, "v2", minutes=1)
    registry.promote("v1")

    with pytest.raises(RegistryError, match="champion changed"):
        registry.promote("v2", expected_champion="v0")
    with pytest.raises(RegistryError, match="champion changed"):
        registry.promote("v2", expected_champion=None)  # "no champion yet" no longer holds
    assert registry.aliases().champion == "v1"
    assert registry.promote("v2", expected_champion="v1").version == "v2"


def test_rollback_walks_back_through_the_champions(
    registry: ModelRegistry, published: Published
) -> None:
    for minutes, version in enumerate(("a", "b", "c")):
        register(registry, version, minutes)
        registry.promote(version)

    assert registry.rollback().version == "b"
    assert registry.rollback().version == "a"
    with pytest.raises(RegistryError, match="no previous champion"):
        registry.rollback()

    aliases = registry.aliases()
    assert aliases.champion == "a"
    assert [(e.action, e.version, e.previous) for e in aliases.history[-2:]] == [
        ("rollback", "b", "c"),
        ("rollback", "a", "b"),
    ]
    assert published[-1][1] is not None and published[-1][1].version == "a"


def test_rollback_after_a_new_promotion_returns_to_the_champion_before_it(
    registry: ModelRegistry,
) -> None:
    for minutes, version in enumerate(("a", "b", "c")):
        register(registry, version, minutes)
    registry.promote("a")
    registry.promote("b")
    registry.rollback()  # -> a
    registry.promote("c")

    assert registry.rollback().version == "a"


@pytest.mark.parametrize("victim", ["xgboost.onnx", "logreg.onnx"])
def test_a_tampered_file_is_never_promoted_or_rolled_back_to(
    registry: ModelRegistry, published: Published, victim: str
) -> None:
    register(registry, "a")
    register(registry, "b", minutes=1)
    registry.promote("a")
    registry.promote("b")
    published.clear()
    path = registry.root / "a" / victim
    path.chmod(0o644)
    path.write_bytes(path.read_bytes() + b"\x00")
    before = (registry.root / ALIASES_FILENAME).read_bytes()

    with pytest.raises(ModelIntegrityError, match=re.escape(str(path))):
        registry.verify("a")
    with pytest.raises(ModelIntegrityError, match=re.escape(victim)):
        registry.rollback()
    with pytest.raises(ModelIntegrityError, match=re.escape(victim)):
        registry.promote("a", "challenger")
    assert (registry.root / ALIASES_FILENAME).read_bytes() == before
    assert published == []


def test_a_failed_publish_keeps_the_change_and_says_so(tmp_path: Path) -> None:
    def broken(role: Role, update: ModelUpdate | None) -> None:
        raise ConnectionError("broker down")

    registry = ModelRegistry(tmp_path, publish=broken)
    register(registry, "v1")

    with pytest.raises(UnpublishedChangeError, match=r"broker down.*models publish") as caught:
        registry.promote("v1")
    assert caught.value.event.version == "v1"
    assert registry.aliases().champion == "v1"


def test_republish_announces_the_current_aliases(
    registry: ModelRegistry, published: Published
) -> None:
    register(registry, "v1")
    registry.promote("v1")
    published.clear()

    registry.republish("champion")
    registry.republish("challenger")

    assert [(role, None if u is None else u.version) for role, u in published] == [
        ("champion", "v1"),
        ("challenger", None),
    ]
    assert [e.action for e in registry.aliases().history] == ["promote", "publish", "publish"]
    assert registry.aliases().champion == "v1"


def test_entries_list_unreadable_versions_with_the_reason(registry: ModelRegistry) -> None:
    register(registry, "v1")
    broken = registry.root / "v2"
    broken.mkdir()
    (broken / MANIFEST_FILENAME).write_text("{")

    entries = registry.entries()

    assert [(e.version, e.manifest is None) for e in entries] == [("v2", True), ("v1", False)]
    assert entries[0].problem is not None and "invalid manifest" in entries[0].problem


def test_rolling_back_to_the_challenger_retires_it_as_challenger(
    registry: ModelRegistry, published: Published
) -> None:
    register(registry, "a")
    register(registry, "b", minutes=1)
    registry.promote("a")
    registry.promote("b")
    registry.promote("a", "challenger")

    registry.rollback()

    assert (registry.aliases().champion, registry.aliases().challenger) == ("a", None)
    assert [(role, None if u is None else u.version) for role, u in published[-2:]] == [
        ("champion", "a"),
        ("challenger", None),
    ]


def test_a_root_whose_path_looks_like_a_card_number_is_refused(tmp_path: Path) -> None:
    # Found by the demo: run-20261124-105648 passes the Luhn check as one 14-digit run,
    # so every ModelUpdate naming a version under it would be refused as holding a PAN.
    with pytest.raises(RegistryError, match="card-number check"):
        ModelRegistry(tmp_path / "run-20261124-105648" / "registry")
    ModelRegistry(tmp_path / "run-20261124T105648" / "registry")  # letters break the run
