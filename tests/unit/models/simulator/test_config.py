from __future__ import annotations

from datetime import UTC, datetime

import pytest

from models.exceptions import ModelsError, SimulatorError
from models.simulator import DEFAULT_START, SimulatorConfig
from schemas.exceptions import FraudstreamError


def test_defaults_match_the_issue() -> None:
    config = SimulatorConfig()
    assert (config.users, config.merchants, config.days, config.seed) == (2000, 500, 30, 7)
    assert 0.005 <= config.fraud_rate <= 0.01
    assert config.start == DEFAULT_START == datetime(2026, 1, 1, tzinfo=UTC)
    assert config.start_ms == 1_767_225_600_000


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("users", 3),
        ("merchants", 0),
        ("days", 0),
        ("seed", -1),
        ("seed", 2**40),
        ("fraud_rate", 0.0),
        ("fraud_rate", 0.5),
        ("fraud_rate", float("nan")),
        ("start", datetime(2026, 1, 1)),  # naive: ambiguous, refused
    ],
)
def test_bad_config_is_refused_with_a_simulator_error(field: str, value: object) -> None:
    with pytest.raises(SimulatorError, match=field.split("_")[0]):
        SimulatorConfig(**{field: value})  # type: ignore[arg-type]


def test_simulator_error_sits_under_the_project_root() -> None:
    assert issubclass(SimulatorError, ModelsError)
    assert issubclass(ModelsError, FraudstreamError)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SimulatorError) as caught:
        SimulatorConfig(users=1, days=0)
    assert "users" in str(caught.value)
    assert "days" in str(caught.value)
