"""promote -> ModelUpdate on the real broker, readable by a scorer, pinned to the manifest."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.manifest import MANIFEST_FILENAME, sha256_bytes
from models.registry import ModelRegistry
from schemas import ModelUpdate, decode
from streams.consuming import read_topic
from streams.model_publisher import KafkaModelPublisher
from streams.settings import Settings
from tests.unit.models._versions import write_version

pytestmark = pytest.mark.integration


def test_promote_publishes_a_model_update_with_the_manifest_sha256(
    servers: Settings, topic: str, tmp_path: Path
) -> None:
    settings = servers.model_copy(update={"topic_model_updates": topic})
    publisher = KafkaModelPublisher(settings)
    assert publisher.unreachable_reason() is None
    registry = ModelRegistry(tmp_path / "registry", publish=publisher)
    folders = {}
    for minutes, version in enumerate(("v1", "v2")):
        with registry.staging() as staged:
            write_version(staged, version, minutes=minutes)
            folders[version] = registry.add(staged).path

    registry.promote("v1")
    registry.promote("v2", "challenger")
    registry.promote("v2")  # the challenger wins: champion v2, challenger retired

    records = list(read_topic(settings, topic, from_beginning=True, max_messages=4,
                              idle_timeout_s=30))  # fmt: skip
    assert len(records) == 4
    by_key: dict[bytes, list[ModelUpdate | None]] = {}
    for record in records:  # one key is one partition: per-key order is the publish order
        value = record.value()
        by_key.setdefault(record.key(), []).append(
            None if value is None else decode(value, ModelUpdate)
        )
    first, last = by_key[b"champion"]
    assert first is not None and last is not None
    assert (first.version, first.role, last.version) == ("v1", "champion", "v2")
    assert first.sha256 == sha256_bytes((folders["v1"] / MANIFEST_FILENAME).read_bytes())
    assert last.sha256 == sha256_bytes((folders["v2"] / MANIFEST_FILENAME).read_bytes())
    assert Path(first.uri) == folders["v1"].absolute()
    assert first.metrics["ap"] == 0.5
    challenger, tombstone = by_key[b"challenger"]
    assert challenger is not None and (challenger.version, challenger.role) == ("v2", "challenger")
    assert tombstone is None
