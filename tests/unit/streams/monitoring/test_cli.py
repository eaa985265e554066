"""``fraudstream metrics tail`` against local prometheus_client servers on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
from typer.testing import CliRunner

from streams.cli import app
from streams.settings import get_settings
from tests.unit.streams.monitoring._registries import FakeFeedback, FakeScorer, Servers

_WIDE = {"COLUMNS": "160"}


@pytest.fixture
def targets(serve: Servers) -> list[str]:
    """Two scorer processes and the feedback service, as --target options."""
    first, second, feedback = FakeScorer(), FakeScorer(), FakeFeedback()
    first.decisions.labels("APPROVE").inc(30)
    second.decisions.labels("APPROVE").inc(10)
    second.decisions.labels("BLOCK").inc(2)
    first.model_info.labels("v3", "champion").set(1)
    second.model_info.labels("v3", "champion").set(1)
    feedback.labels.labels("fraud").inc(2)
    ports = [serve(first.registry), serve(second.registry), serve(feedback.registry)]
    return [arg for port in ports for arg in ("--target", f"127.0.0.1:{port}")]


def test_once_json_prints_one_document_summed_over_processes(targets: list[str]) -> None:
    result = CliRunner().invoke(
        app, ["metrics", "tail", "--once", "--json", "--interval", "0.05", *targets]
    )

    assert result.exit_code == 0, result.output
    document = orjson.loads(result.stdout)
    assert [e["service"] for e in document["endpoints"]] == ["scorer", "scorer", "feedback"]
    assert all(e["up"] for e in document["endpoints"])
    assert document["totals"]["decisions"] == {"APPROVE": 40, "BLOCK": 2}
    assert document["throughput"]["decisions_per_s"] == 0.0
    assert document["models"] == {"champion": "v3"}
    assert document["feedback"]["labels"] == {"fraud": 2}
    assert document["interval_s"] >= 0.05


def test_once_renders_every_panel(targets: list[str]) -> None:
    result = CliRunner().invoke(
        app, ["metrics", "tail", "--once", "--interval", "0.05", *targets], env=_WIDE
    )

    assert result.exit_code == 0, result.output
    for title in ("Throughput", "Latency", "Decision mix", "Rule hits", "DLQ & degraded"):
        assert title in result.stdout
    for title in ("Drift", "Models", "Consumer lag", "Feedback"):
        assert title in result.stdout
    assert "3/3 up" in result.stdout


def test_live_view_stops_after_its_duration(targets: list[str]) -> None:
    result = CliRunner().invoke(
        app,
        ["metrics", "tail", "--json", "--interval", "0.05", "--duration", "0.12", *targets],
    )

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) >= 2
    assert all(orjson.loads(line)["totals"]["decided"] == 42 for line in lines)


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    """Settings read again from the environment the runner sets (get_settings is cached)."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("fresh_settings")
def test_no_endpoint_is_a_clear_error_with_exit_code_1(closed_port: int) -> None:
    env = {
        "FRAUD_METRICS_HOST": "127.0.0.1",
        "FRAUD_METRICS_PORT": str(closed_port),
        "FRAUD_FEEDBACK_METRICS_PORT": str(closed_port),
        **_WIDE,
    }
    discovered = CliRunner().invoke(app, ["metrics", "tail", "--once", "--json"], env=env)
    targeted = CliRunner().invoke(
        app, ["metrics", "tail", "--once", "--target", f"127.0.0.1:{closed_port}"], env=_WIDE
    )

    for result in (discovered, targeted):
        assert result.exit_code == 1
        assert "no fraudstream metrics endpoint answered on" in result.stderr
        assert "pass --target" in result.stderr
        assert result.stdout == ""
    assert f"ports {closed_port}-{closed_port + 15} (scorer)" in discovered.stderr


def test_a_malformed_target_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["metrics", "tail", "--once", "--target", "nope"])
    assert result.exit_code == 2
    assert "HOST:PORT" in result.stderr
