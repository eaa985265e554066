"""``fraudstream models`` and ``fraudstream train --registry-dir``, without Kafka."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from models.registry import ALIASES_FILENAME, ModelRegistry
from models.simulator import SimulatorConfig, simulate_history
from streams.cli import app
from tests.unit.models._versions import write_version


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    registry = ModelRegistry(tmp_path / "registry")
    for minutes, version in enumerate(("v1", "v2")):
        with registry.staging() as staged:
            write_version(staged, version, minutes=minutes)
            registry.add(staged)
    registry.promote("v1")
    return registry


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def tamper(registry: ModelRegistry, version: str, file: str) -> Path:
    path = registry.root / version / file
    path.chmod(0o644)
    path.write_bytes(b"tampered")
    return path


def test_list_marks_the_champion(registry: ModelRegistry) -> None:
    code, output = run("models", "list", "--registry-dir", str(registry.root))

    assert code == 0, output
    (v1_line,) = [line for line in output.splitlines() if "v1" in line and "★" in line]
    assert "champion" in v1_line
    assert "2 model version(s)" in output


def test_show_verifies_the_files_before_printing(registry: ModelRegistry) -> None:
    code, output = run("models", "show", "v1", "--registry-dir", str(registry.root))
    assert code == 0, output
    assert "sha256 ok" in output

    path = tamper(registry, "v1", "logreg.onnx")
    code, output = run("models", "show", "v1", "--registry-dir", str(registry.root))

    assert code == 1
    assert "error:" in output and str(path) in output and "does not match" in output


def test_promote_refuses_a_tampered_model_and_changes_nothing(registry: ModelRegistry) -> None:
    path = tamper(registry, "v2", "xgboost.onnx")
    before = (registry.root / ALIASES_FILENAME).read_bytes()

    code, output = run(
        "models", "promote", "v2", "--no-publish", "--registry-dir", str(registry.root)
    )

    assert code == 1
    assert str(path) in output
    assert (registry.root / ALIASES_FILENAME).read_bytes() == before


def test_promote_and_rollback_without_kafka(registry: ModelRegistry) -> None:
    root = str(registry.root)

    code, output = run("models", "promote", "v2", "--no-publish", "--registry-dir", root)
    assert code == 0, output
    assert "champion v1 -> v2 (not published)" in output
    assert "--no-publish" in output

    code, output = run("models", "rollback", "--no-publish", "--registry-dir", root)
    assert code == 0, output
    assert json.loads((registry.root / ALIASES_FILENAME).read_text())["champion"] == "v1"

    code, output = run("models", "rollback", "--no-publish", "--registry-dir", root)
    assert code == 1
    assert "no previous champion" in output


def test_train_registers_gates_and_promotes_the_first_model(tmp_path: Path) -> None:
    history = tmp_path / "history.parquet"
    simulate_history(SimulatorConfig(users=80, merchants=30, days=12, seed=4)).to_parquet(history)
    root = tmp_path / "registry"

    code, output = run(
        "train", "--data", str(history), "--label-delay", "2d", "--until", "2026-01-12",
        "--registry-dir", str(root), "--no-publish",
    )  # fmt: skip

    assert code == 0, output
    assert "2026-01-12 00:00:00 UTC" in output
    assert "first model" in output
    aliases = json.loads((root / ALIASES_FILENAME).read_text())
    manifest = json.loads((root / aliases["champion"] / "manifest.json").read_text())
    assert manifest["training_cutoff"] == "2026-01-12T00:00:00Z"
    assert manifest["label_delay"] == "P2D"
    assert manifest["training_window"]["to"] <= "2026-01-10T00:00:00Z"
    assert manifest["gate"]["verdict"] == "champion"
