"""QueueFilter on its own: which cases pass, and the sorted-set range that pre-selects them."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import Decision
from schemas._types import epoch_ms
from streams.console import QueueFilter
from tests.doubles import decision_payload

NOON = datetime(2026, 11, 24, 12, tzinfo=UTC)
VELOCITY = {"id": "velocity_burst", "reason": "5 tx in 1 min", "action": "REVIEW"}
GEO = {"id": "geo_jump", "reason": "800 km in 10 min", "action": "BLOCK"}


def _case(**overrides: Any) -> Decision:
    fields: dict[str, Any] = {
        "decision": "REVIEW",
        "score": 0.6,
        "decided_at": epoch_ms(NOON),
        "rules_fired": [VELOCITY],
    }
    fields.update(overrides)
    return Decision.model_validate(decision_payload(**fields))


def test_the_empty_filter_passes_everything() -> None:
    assert QueueFilter().matches(_case())
    assert QueueFilter().matches(_case(score=None, rules_fired=[], decision="BLOCK"))


def test_decision_filter() -> None:
    assert QueueFilter(decision="REVIEW").matches(_case())
    assert not QueueFilter(decision="BLOCK").matches(_case())
    assert QueueFilter(decision="BLOCK").matches(_case(decision="BLOCK"))


def test_rule_filter_matches_any_fired_rule_by_id() -> None:
    both = _case(rules_fired=[VELOCITY, GEO])

    assert QueueFilter(rule="geo_jump").matches(both)
    assert QueueFilter(rule="velocity_burst").matches(both)
    assert not QueueFilter(rule="geo_jump").matches(_case())
    assert not QueueFilter(rule="velocity_burst").matches(_case(rules_fired=[]))
    assert not QueueFilter(rule="5 tx in 1 min").matches(both)  # ids, not reasons


@pytest.mark.parametrize(
    ("low", "high", "score", "passes"),
    [
        (0.6, None, 0.6, True),  # bounds are inclusive
        (None, 0.6, 0.6, True),
        (0.6, 0.6, 0.6, True),
        (0.61, None, 0.6, False),
        (None, 0.59, 0.6, False),
        (0.0, 1.0, None, False),  # a rules-only case has no score to be in range
        (None, 1.0, None, False),
    ],
)
def test_score_range(
    low: float | None, high: float | None, score: float | None, passes: bool
) -> None:
    assert QueueFilter(min_score=low, max_score=high).matches(_case(score=score)) is passes


def test_time_range_is_inclusive_on_both_ends() -> None:
    second = timedelta(milliseconds=1)

    assert QueueFilter(since=NOON, until=NOON).matches(_case())
    assert not QueueFilter(since=NOON + second).matches(_case())
    assert not QueueFilter(until=NOON - second).matches(_case())


def test_every_filter_must_pass() -> None:
    wanted = QueueFilter(decision="REVIEW", rule="velocity_burst", min_score=0.5, since=NOON)

    assert wanted.matches(_case())
    assert not wanted.matches(_case(decision="BLOCK"))
    assert not wanted.matches(_case(rules_fired=[GEO]))
    assert not wanted.matches(_case(score=0.4))
    assert not wanted.matches(_case(decided_at=epoch_ms(NOON) - 1))


def test_the_range_follows_the_order() -> None:
    wanted = QueueFilter(min_score=0.2, max_score=0.8, since=NOON, until=NOON + timedelta(hours=1))

    assert wanted._range() == (epoch_ms(NOON), epoch_ms(NOON) + 3_600_000)
    assert QueueFilter(order="score", min_score=0.2, max_score=0.8, since=NOON)._range() == (
        0.2,
        0.8,
    )
    assert QueueFilter()._range() == (-math.inf, math.inf)
    assert QueueFilter(order="score")._range() == (-math.inf, math.inf)
    assert QueueFilter(order="score", min_score=0.3)._range() == (0.3, math.inf)
    assert QueueFilter(until=NOON)._range() == (-math.inf, epoch_ms(NOON))


@given(
    score=st.floats(0, 1),
    low=st.none() | st.floats(0, 1),
    high=st.none() | st.floats(0, 1),
    shift_ms=st.integers(-10_000, 10_000),
)
def test_the_range_never_drops_a_matching_case(
    score: float, low: float | None, high: float | None, shift_ms: int
) -> None:
    """Whatever passes ``matches`` lies inside ``_range`` of either order: no case is lost."""
    case = _case(score=score, decided_at=epoch_ms(NOON) + shift_ms)
    for order in ("newest", "score"):
        wanted = QueueFilter(
            order=order,
            min_score=low,
            max_score=high,
            since=NOON - timedelta(seconds=5),
            until=NOON + timedelta(seconds=5),
        )
        if not wanted.matches(case):
            continue
        lowest, highest = wanted._range()
        key = score if order == "score" else epoch_ms(case.decided_at)
        assert lowest <= key <= highest
