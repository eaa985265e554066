"""manifest.json: round trip, validation and the sha256 gate in front of every load."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from models.exceptions import ManifestError, ModelIntegrityError
from models.manifest import (
    MANIFEST_FILENAME,
    Manifest,
    read_manifest,
    read_verified_files,
    sha256_bytes,
    write_manifest,
)

FILES = {"xgboost.onnx": b"trees" * 100, "logreg.onnx": b"linear" * 50, "explainer.onnx": b"why"}


def manifest_fields(**overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "version": "20250301T000000Z-abcdef12",
        "created_at": datetime(2025, 3, 1, 12, 30, tzinfo=UTC),
        "feature_names": ["amount", "user_count_1h"],
        "members": [
            {
                "name": "xgboost",
                "file": "xgboost.onnx",
                "sha256": sha256_bytes(FILES["xgboost.onnx"]),
                "weight": 0.7,
            },
            {
                "name": "logreg",
                "file": "logreg.onnx",
                "sha256": sha256_bytes(FILES["logreg.onnx"]),
                "weight": 0.3,
            },
        ],
        "thresholds": {
            "block": 0.91,
            "review": 0.42,
            "target_precision": 0.8,
            "review_share": 0.01,
            "basis": "test",
        },
        "metrics": {"auc": 0.95, "ap": 0.6, "members": {"xgboost": {"auc": 0.94, "ap": 0.55}}},
        "training_window": {"from": "2025-01-01T00:00:00Z", "to": "2025-02-20T00:00:00Z"},
        "training_rows": 1000,
        "training_frauds": 30,
        "validation_window": {"from": "2025-02-20T00:00:00Z", "to": "2025-03-01T00:00:00Z"},
        "validation_rows": 250,
        "validation_frauds": 8,
        "parent_version": None,
        "code_revision": "unknown",
        "explainer": {
            "member": "logreg",
            "file": "explainer.onnx",
            "sha256": sha256_bytes(FILES["explainer.onnx"]),
        },
    }
    fields.update(overrides)
    return fields


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    for name, data in FILES.items():
        (tmp_path / name).write_bytes(data)
    write_manifest(Manifest.model_validate(manifest_fields()), tmp_path)
    return tmp_path


def test_round_trip_preserves_every_field(model_dir: Path) -> None:
    original = Manifest.model_validate(manifest_fields())

    loaded = read_manifest(model_dir)

    assert loaded == original
    assert loaded.to_json() == (model_dir / MANIFEST_FILENAME).read_text()


def test_json_uses_the_documented_names(model_dir: Path) -> None:
    document = json.loads((model_dir / MANIFEST_FILENAME).read_text())

    assert document["training_window"] == {
        "from": "2025-01-01T00:00:00Z",
        "to": "2025-02-20T00:00:00Z",
    }
    assert document["created_at"] == "2025-03-01T12:30:00Z"
    assert document["parent_version"] is None
    assert [m["weight"] for m in document["members"]] == [0.7, 0.3]


def test_verified_files_are_returned_when_hashes_match(model_dir: Path) -> None:
    assert read_verified_files(read_manifest(model_dir), model_dir) == FILES


@pytest.mark.parametrize("victim", sorted(FILES))
def test_a_flipped_byte_is_refused_naming_the_file(model_dir: Path, victim: str) -> None:
    data = bytearray(FILES[victim])
    data[len(data) // 2] ^= 0x01
    (model_dir / victim).write_bytes(bytes(data))

    with pytest.raises(ModelIntegrityError, match=re.escape(victim)) as caught:
        read_verified_files(read_manifest(model_dir), model_dir)
    assert "nothing loaded" in str(caught.value)
    assert all(other not in str(caught.value) for other in FILES if other != victim)


def test_a_missing_file_is_refused_naming_it(model_dir: Path) -> None:
    (model_dir / "logreg.onnx").unlink()

    with pytest.raises(ModelIntegrityError, match=r"logreg\.onnx"):
        read_verified_files(read_manifest(model_dir), model_dir)


def test_missing_manifest_is_a_manifest_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=MANIFEST_FILENAME):
        read_manifest(tmp_path)


def test_corrupt_json_is_a_manifest_error(model_dir: Path) -> None:
    (model_dir / MANIFEST_FILENAME).write_text("{not json")

    with pytest.raises(ManifestError, match="invalid manifest"):
        read_manifest(model_dir)


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        ({"format_version": 99}, "format_version"),
        ({"feature_names": ["amount", "amount"]}, "unique"),
        ({"created_at": "2025-03-01T12:30:00"}, "timezone"),
        (
            {
                "thresholds": {
                    "block": 0.4,
                    "review": 0.5,
                    "target_precision": 0.8,
                    "review_share": 0.01,
                    "basis": "",
                }
            },
            "above block",
        ),
        (
            {"explainer": {"member": "forest", "file": "explainer.onnx", "sha256": "0" * 64}},
            "unknown member",
        ),
        ({"code_revision": "unknown", "surprise": 1}, "surprise"),
    ],
)
def test_invalid_manifests_are_refused(
    tmp_path: Path, override: dict[str, Any], complaint: str
) -> None:
    (tmp_path / MANIFEST_FILENAME).write_text(json.dumps(manifest_fields(**override), default=str))

    with pytest.raises(ManifestError, match=complaint):
        read_manifest(tmp_path)


@pytest.mark.parametrize("file", ["../xgboost.onnx", "/etc/passwd", "sub/xgboost.onnx", ".hidden"])
def test_files_outside_the_directory_are_refused(tmp_path: Path, file: str) -> None:
    fields = manifest_fields()
    fields["members"][0]["file"] = file
    (tmp_path / MANIFEST_FILENAME).write_text(json.dumps(fields, default=str))

    with pytest.raises(ManifestError, match="file"):
        read_manifest(tmp_path)


def test_duplicate_member_files_are_refused(tmp_path: Path) -> None:
    fields = manifest_fields()
    fields["members"][1]["file"] = "xgboost.onnx"
    (tmp_path / MANIFEST_FILENAME).write_text(json.dumps(fields, default=str))

    with pytest.raises(ManifestError, match="distinct"):
        read_manifest(tmp_path)
