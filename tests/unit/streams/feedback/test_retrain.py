from __future__ import annotations

from pathlib import Path

import pytest

from models.registry import ModelRegistry
from streams.feedback import _retrain, run_retrain
from streams.feedback._metrics import RETRAINS
from streams.settings import Settings


def test_a_retrain_with_nothing_to_learn_fails_reports_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(state_dir=tmp_path)
    registry = ModelRegistry(tmp_path / "registry")
    # No broker in unit tests: the registry is opened without a publisher.
    monkeypatch.setattr(_retrain, "open_publishing_registry", lambda _s: (registry, "no Kafka"))
    failed = RETRAINS.labels(outcome="failed")._value.get()
    assert run_retrain(settings, "test") is None  # an empty store and no history
    assert RETRAINS.labels(outcome="failed")._value.get() == failed + 1
    assert registry.aliases().champion is None
    assert not any(path.name.startswith("2") for path in registry.root.glob("*"))
