"""Hash-consistent model folders without real ONNX: enough for the registry, fast to build.

The registry checks sha256s and manifests, never runs a model, so these byte blobs stand
in for ONNX files. Every fake version has distinct bytes (the version is mixed in).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from models.manifest import FORMAT_VERSION, Manifest, sha256_bytes, write_manifest

CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def old_manifest_fields(
    version: str = "v1", files: dict[str, bytes] | None = None
) -> dict[str, Any]:
    """A format-1 manifest as the trainer wrote it before the registry existed."""
    blobs = files or fake_files(version)
    return {
        "format_version": 1,
        "version": version,
        "created_at": "2026-01-01T00:00:00Z",
        "feature_names": ["amount", "user_count_1h"],
        "combination": "weighted_mean",
        "members": [
            {
                "name": "xgboost",
                "file": "xgboost.onnx",
                "sha256": sha256_bytes(blobs["xgboost.onnx"]),
                "weight": 0.6,
            },
            {
                "name": "logreg",
                "file": "logreg.onnx",
                "sha256": sha256_bytes(blobs["logreg.onnx"]),
                "weight": 0.4,
            },
        ],
        "thresholds": {
            "block": 0.9,
            "review": 0.5,
            "target_precision": 0.8,
            "review_share": 0.01,
            "basis": "test",
        },
        "metrics": {"auc": 0.9, "ap": 0.5, "members": {"xgboost": {"auc": 0.9, "ap": 0.5}}},
        "training_window": {"from": "2025-12-01T00:00:00Z", "to": "2025-12-20T00:00:00Z"},
        "training_rows": 100,
        "training_frauds": 5,
        "validation_window": {"from": "2025-12-20T00:00:00Z", "to": "2025-12-25T00:00:00Z"},
        "validation_rows": 20,
        "validation_frauds": 2,
        "parent_version": None,
        "code_revision": "unknown",
        "explainer": None,
    }


def fake_files(version: str) -> dict[str, bytes]:
    return {
        "xgboost.onnx": b"trees:" + version.encode() * 50,
        "logreg.onnx": b"line:" + version.encode(),
    }


def write_version(folder: Path, version: str, *, minutes: int = 0, **fields: Any) -> Manifest:
    """Write a complete fake version into ``folder`` (created), manifest last."""
    folder.mkdir(parents=True, exist_ok=True)
    files = fake_files(version)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    document = old_manifest_fields(version, files)
    document["format_version"] = FORMAT_VERSION
    document["created_at"] = CREATED + timedelta(minutes=minutes)
    block = {"threshold": 0.9, "flagged": 3, "precision": 1.0, "recall": 0.5}
    document["metrics"] = {**document["metrics"], "cp_at_100": 0.2, "block": block}
    document.update(fields)
    manifest = Manifest.model_validate(document)
    write_manifest(manifest, folder)
    return manifest
