"""The memory probe: one small run of the real stateful steps, read through its CLI."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import orjson
import pytest

from streams.bench._memory import ACTIVE_USER, TARGET_BYTES_PER_USER, main, measure_bytes_per_user
from streams.exceptions import InfraError

USERS = 2_000
PARTS = {
    "user_velocity",
    "recent_ids",
    "dedupe_payloads",
    "dedupe_index",
    "tx_id_strings",
    "merchant_velocity",
    "logic_objects",
    "user_and_merchant_ids",
    "bytewax_and_allocator",
}
KEYS = {
    "users",
    "events_per_user",
    "events",
    "merchants",
    "active_user",
    "lateness_ms",
    "dedupe_horizon_ms",
    "batch_size",
    "rss_before_mb",
    "rss_after_mb",
    "rss_delta_mb",
    "bytes_per_user",
    "breakdown_bytes_per_user",
    "python_state_bytes_per_user",
    "decision_payload_bytes",
    "gc_collected",
    "target_bytes_per_user",
    "meets_target",
    "cpu_seconds",
    "seconds",
}


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    """One run through ``python -m streams.bench._memory`` (its ``main``), JSON parsed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["--users", str(USERS), "--events-per-user", "3"]) == 0
    parsed: dict[str, Any] = orjson.loads(out.getvalue())
    return parsed


def test_the_result_has_the_documented_keys(result: dict[str, Any]) -> None:
    assert set(result) == KEYS
    assert set(result["breakdown_bytes_per_user"]) == PARTS
    assert result["users"] == USERS
    assert result["events"] == USERS * result["events_per_user"] == USERS * 3
    assert result["active_user"] == ACTIVE_USER
    assert result["target_bytes_per_user"] == TARGET_BYTES_PER_USER


def test_bytes_per_user_is_the_rss_delta_and_the_sum_of_its_parts(result: dict[str, Any]) -> None:
    per_user = result["bytes_per_user"]
    assert per_user > 0
    delta_mb = result["rss_after_mb"] - result["rss_before_mb"]
    assert per_user * USERS / 2**20 == pytest.approx(delta_mb, abs=0.2)
    parts = result["breakdown_bytes_per_user"]
    assert sum(parts.values()) == pytest.approx(per_user, abs=1.0)
    assert result["python_state_bytes_per_user"] == pytest.approx(
        per_user - parts["bytewax_and_allocator"], abs=1.0
    )
    assert result["meets_target"] == (per_user <= TARGET_BYTES_PER_USER)


def test_every_measured_part_is_held(result: dict[str, Any]) -> None:
    parts = result["breakdown_bytes_per_user"]
    for name in PARTS - {"bytewax_and_allocator"}:
        assert parts[name] > 0, name
    # Every user holds at least their newest decision, a real-sized payload.
    assert 1_000 < result["decision_payload_bytes"] < 4_000
    assert parts["dedupe_payloads"] >= result["decision_payload_bytes"]
    # No reference cycles: turning automatic collection off cost no memory.
    assert result["gc_collected"] == 0


@pytest.mark.parametrize("users", [0, -5])
def test_a_run_without_users_is_refused(users: int) -> None:
    with pytest.raises(InfraError, match="must be >= 1"):
        measure_bytes_per_user(users)
