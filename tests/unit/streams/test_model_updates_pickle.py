"""A ``model-updates`` record pointing at a pickle is refused, and the pickle never runs.

Each pickle here, if anything unpickled it, would create a marker file (its
``__reduce__`` calls ``Path.touch``): the marker's absence proves nothing unpickled it,
beyond the refusal itself.
"""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import orjson
import pytest
from structlog.testing import capture_logs

from models.manifest import MANIFEST_FILENAME, sha256_bytes
from schemas import ModelUpdate, encode
from streams.model_holder import ServingModels
from streams.model_updates import ModelUpdateFollower
from streams.settings import Settings
from tests.unit.models._trained import model_update, train_tiny
from tests.unit.streams._online_models import online_update, train_online


class _Tripwire:
    """Unpickling this touches ``marker``: the side effect a malicious pickle would have."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (Path.touch, (self.marker,))


def _pickle(marker: Path) -> bytes:
    return pickle.dumps(_Tripwire(marker))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    train_tiny(root, "pickle-a", seed=3)
    train_online(root / "online", "online-a", seed=1)
    return root


@pytest.fixture
def registry(trained: Path, tmp_path: Path) -> Path:
    root = tmp_path / "registry"
    shutil.copytree(trained, root)
    return root


def _apply(update: ModelUpdate) -> tuple[bool, list[dict[str, object]], ModelUpdateFollower]:
    feed = ModelUpdateFollower(Settings(), ServingModels(), registry_dir=Path("/nonexistent"))
    with capture_logs() as logs:
        changed = feed.apply(update.role.encode(), encode(update))
    return changed, [e for e in logs if e["event"] == "model_update_refused"], feed


@pytest.mark.parametrize("name", ["online-a.pkl", "online-a.joblib", "online-a"])
def test_an_online_update_naming_a_pickle_file_is_refused_by_name(
    registry: Path, tmp_path: Path, name: str
):
    marker = tmp_path / "unpickled"
    path = registry / "online" / name
    path.write_bytes(_pickle(marker))
    changed, refused, feed = _apply(online_update(path, sha256_bytes(path.read_bytes())))
    assert not changed
    assert feed.models.online() is None
    assert [(e["reason"], "only ONNX graphs" in str(e["error"])) for e in refused] == [
        ("not_onnx", True)
    ]
    assert not marker.exists()


def test_an_online_update_whose_onnx_file_holds_a_pickle_is_refused(registry: Path, tmp_path: Path):
    """Right name, right hash, pickle bytes: ONNX Runtime refuses them; nothing unpickles."""
    marker = tmp_path / "unpickled"
    path = registry / "online" / "online-a.onnx"
    path.write_bytes(_pickle(marker))
    changed, refused, feed = _apply(online_update(path, sha256_bytes(path.read_bytes())))
    assert not changed
    assert feed.models.online() is None
    assert len(refused) == 1
    assert not marker.exists()


def test_an_ensemble_member_replaced_by_a_pickle_with_matching_hashes_is_refused(
    registry: Path, tmp_path: Path
):
    """The manifest and the update are re-pinned to the pickle: hashes alone cannot stop
    it, so this shows the loader only ever hands bytes to ONNX Runtime."""
    marker = tmp_path / "unpickled"
    folder = registry / "pickle-a"
    manifest = orjson.loads((folder / MANIFEST_FILENAME).read_bytes())
    member = manifest["members"][0]
    (folder / member["file"]).unlink()
    member["file"] = "model.pkl"
    payload = _pickle(marker)
    (folder / "model.pkl").write_bytes(payload)
    member["sha256"] = sha256_bytes(payload)
    (folder / MANIFEST_FILENAME).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    changed, refused, feed = _apply(model_update(folder))
    assert not changed
    assert feed.models.current() is None
    assert len(refused) == 1
    assert refused[0]["reason"] in {"load_failed", "manifest_invalid", "file_integrity"}
    assert not marker.exists()
