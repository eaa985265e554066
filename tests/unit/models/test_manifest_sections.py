"""Formats 2 and 3 of manifest.json: new optional sections; older manifests still load."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from models.exceptions import ManifestError
from models.manifest import FORMAT_VERSION, MANIFEST_FILENAME, Distribution, read_manifest
from tests.unit.models._versions import old_manifest_fields, write_version


def test_a_format_1_manifest_without_the_new_fields_still_loads(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_FILENAME).write_text(json.dumps(old_manifest_fields()))

    manifest = read_manifest(tmp_path)

    assert manifest.format_version == 1
    assert manifest.training_cutoff is None
    assert manifest.label_delay is None
    assert manifest.reference is None
    assert manifest.gate is None
    assert manifest.metrics.cp_at_100 is None
    assert manifest.metrics.block is None
    assert manifest.metrics.members["xgboost"].ap == 0.5


def test_new_sections_round_trip_through_json(tmp_path: Path) -> None:
    gate = {
        "window": {"from": "2025-12-20T00:00:00Z", "to": "2025-12-25T00:00:00Z"},
        "rows": 20,
        "frauds": 2,
        "champion_version": "v0",
        "champion": {"auc": 0.8, "ap": 0.4},
        "candidate": {"auc": 0.9, "ap": 0.5, "cp_at_100": 0.02},
        "max_auc_loss": 0.01,
        "verdict": "champion",
        "reason": "better",
        "decided_at": "2026-01-01T00:00:00Z",
    }
    reference = {
        "rows": 20,
        "features": {
            "amount": {
                "edges": [1.0, 2.0],
                "shares": [0.5, 0.25, 0.25],
                "null_share": 0,
                "low": 0.5,
                "high": 9.0,
            },
            "count": {"edges": [1.0], "shares": [0.5, 0.5], "null_share": 0},
        },
        "score": {"edges": [], "shares": [1.0], "null_share": 0.0},
    }
    written = write_version(
        tmp_path,
        "v1",
        training_cutoff=datetime(2026, 1, 1, tzinfo=UTC),
        label_delay=timedelta(days=7),
        gate=gate,
        reference=reference,
    )

    document = json.loads((tmp_path / MANIFEST_FILENAME).read_text())
    loaded = read_manifest(tmp_path)

    assert loaded == written
    assert loaded.format_version == FORMAT_VERSION == 3
    assert document["label_delay"] == "P7D"
    assert document["training_cutoff"] == "2026-01-01T00:00:00Z"
    assert document["gate"]["window"]["from"] == "2025-12-20T00:00:00Z"
    assert loaded.gate is not None and loaded.gate.verdict == "champion"
    assert loaded.reference is not None and loaded.reference.features["amount"].edges == (1.0, 2.0)
    assert (loaded.reference.features["amount"].low, loaded.reference.features["amount"].high) == (
        0.5,
        9.0,
    )
    assert loaded.reference.features["count"].low is None  # a format-2 reference: no range
    assert loaded.metrics.block is not None and loaded.metrics.block.recall == 0.5


def test_a_negative_label_delay_and_a_newer_format_are_refused(tmp_path: Path) -> None:
    fields = old_manifest_fields()
    (tmp_path / MANIFEST_FILENAME).write_text(json.dumps({**fields, "label_delay": "-P1D"}))
    with pytest.raises(ManifestError, match="label_delay"):
        read_manifest(tmp_path)

    (tmp_path / MANIFEST_FILENAME).write_text(
        json.dumps({**fields, "format_version": FORMAT_VERSION + 1})
    )
    with pytest.raises(ManifestError, match="format_version"):
        read_manifest(tmp_path)


@pytest.mark.parametrize(
    ("low", "high"), [(1.0, None), (None, 1.0), (2.0, 1.0), (float("nan"), 1.0)]
)
def test_a_reference_range_must_be_whole_finite_and_ordered(
    low: float | None, high: float | None
) -> None:
    with pytest.raises(ValueError, match="low"):
        Distribution(edges=(), shares=(1.0,), null_share=0.0, low=low, high=high)
