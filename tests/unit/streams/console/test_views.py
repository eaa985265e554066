"""What a case page shows: the model's reason-named features first, and who gave which verdict."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas import Decision, Label
from streams.console._views import FeatureRow, feature_rows, jinja_filters, verdict_changes
from tests.doubles import decision_payload


def _case(**overrides: Any) -> Decision:
    return Decision.model_validate(decision_payload(decision="REVIEW", **overrides))


def test_reason_named_features_come_first_in_reason_order_with_their_direction() -> None:
    case = _case(
        features={"a_first": 1.0, "amount_zscore": 4.2, "hour": 3.0, "distance_km": 0.0, "z": None},
        reasons=["velocity_burst", "HIGH:amount_zscore", "LOW:distance_km", "HIGH:not_scored"],
    )

    rows = feature_rows(case)

    assert rows == [
        FeatureRow("amount_zscore", 4.2, "HIGH"),
        FeatureRow("distance_km", 0.0, "LOW"),
        FeatureRow("a_first", 1.0, None),
        FeatureRow("hour", 3.0, None),
        FeatureRow("z", None, None),
    ]


def test_a_feature_named_twice_keeps_its_first_direction() -> None:
    case = _case(features={"f": 1.0, "g": 2.0}, reasons=["LOW:f", "HIGH:f", "HIGH:g"])

    assert [(row.name, row.push) for row in feature_rows(case)] == [("f", "LOW"), ("g", "HIGH")]


def test_reasons_that_are_not_directions_highlight_nothing() -> None:
    case = _case(features={"amount": 1.0}, reasons=["amount", "MID:amount", "high:amount"])

    assert all(row.push is None for row in feature_rows(case))


def _label(minute: int, verdict: str, analyst: str | None) -> Label:
    return Label(
        tx_id="tx-1",
        user_id="u-1",
        label=verdict,  # type: ignore[arg-type]
        source="analyst" if analyst else "chargeback",
        labeled_at=datetime(2026, 11, 24, 9, tzinfo=UTC) + timedelta(minutes=minute),
        analyst_id=analyst,
    )


def test_each_verdict_knows_the_one_it_replaced() -> None:
    history = [
        _label(0, "legit", "alice"),
        _label(1, "legit", "carol"),
        _label(2, "fraud", "bob"),
        _label(3, "fraud", None),
    ]

    changes = verdict_changes(history)

    assert [change.label for change in changes] == history
    assert [change.previous for change in changes] == [None, "legit", "legit", "fraud"]
    assert verdict_changes([]) == []


def test_the_filters_show_missing_values_as_such() -> None:
    filters = jinja_filters()
    score, when, number = filters["score"], filters["when"], filters["number"]

    assert score(None) == score(math.nan) == "—"
    assert score(0.91234) == "0.912"
    assert when(None) == "—"
    assert when(datetime(2026, 11, 24, 9, 30, tzinfo=UTC)).startswith("2026-11-24 09:30")
    assert when("2026-11-24T09:30:00Z") == "2026-11-24 09:30:00Z"
    assert number(None) == number(math.inf) == "missing"
    assert number(1234.5) == "1,234"
    assert number(2_500_000.0) == "2,500,000"
