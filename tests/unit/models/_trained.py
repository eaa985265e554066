"""Tiny real ensembles in the registry layout, and the ModelUpdate messages that announce them.

Models are trained for real (xgboost + logreg, exported to ONNX, hash-pinned manifest) on
the synthetic dataset, small enough to train in about a second, so the scorer's loading,
verification and hot swap run exactly as in production.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import orjson

from models.ensemble import XGBoostMember, train_ensemble
from models.manifest import MANIFEST_FILENAME, read_manifest, sha256_bytes, write_manifest
from operators.features import FEATURE_NAMES
from schemas import ModelUpdate
from tests.unit.models._synthetic import make_dataset

__all__ = ["model_update", "publish_copy", "train_tiny", "with_features", "write_aliases"]


def train_tiny(root: Path, version: str, seed: int, rows: int = 5_000) -> Path:
    """Train a tiny ensemble into ``<root>/<version>/`` (the registry's version folder)."""
    data = make_dataset(rows, seed=seed)
    folder = root / version
    train_ensemble(
        data.features, data.labels, data.event_times, FEATURE_NAMES, folder, version,
        members=[XGBoostMember(n_jobs=1, n_estimators=20), "logreg"], seed=seed,
    )  # fmt: skip
    return folder


def model_update(folder: Path, role: str = "champion", sha256: str | None = None) -> ModelUpdate:
    """The update the registry publishes for ``folder`` (``sha256`` overrides the real hash)."""
    raw = (folder / MANIFEST_FILENAME).read_bytes()
    return ModelUpdate(
        version=read_manifest(folder).version,
        role=role,  # type: ignore[arg-type]
        uri=str(folder.resolve()),
        sha256=sha256 or sha256_bytes(raw),
        metrics={"auc": 0.9},
        published_at=datetime.now(UTC),
    )


def publish_copy(source: Path, root: Path, version: str) -> Path:
    """A copy of ``source`` as another version (its manifest says ``version``)."""
    target = root / version
    shutil.copytree(source, target)
    manifest = read_manifest(target).model_copy(update={"version": version})
    write_manifest(manifest, target)
    return target


def with_features(folder: Path, names: tuple[str, ...]) -> None:
    """Rewrite the manifest to claim another feature order (files and hashes untouched)."""
    manifest = read_manifest(folder).model_copy(update={"feature_names": names})
    write_manifest(manifest, folder)


def write_aliases(root: Path, champion: str | None, challenger: str | None = None) -> None:
    """``<root>/aliases.json`` as the registry writes it."""
    aliases: dict[str, object] = {"champion": champion, "challenger": challenger, "history": []}
    (root / "aliases.json").write_bytes(orjson.dumps(aliases))
