"""The edge of the windows: converting a Transaction, refusing unusable input."""

from __future__ import annotations

import math
import sys

import pytest

from operators.exceptions import FeatureInputError
from operators.velocity import MerchantVelocity, UserVelocity, VelocityEvent
from schemas import Transaction


def test_from_transaction_keeps_exact_milliseconds_and_optional_fields() -> None:
    tx = Transaction.model_validate(
        {
            "tx_id": "t-1",
            "user_id": "user-1",
            "merchant_id": "shop-1",
            "amount": "12.3456",
            "event_time": "2026-03-07T10:15:30.123+01:00",
            "country": "FR",
            "lat": 48.85,
            "lon": 2.35,
        }
    )
    event = VelocityEvent.from_transaction(tx)
    assert event.event_ms == 1_772_874_930_123  # 09:15:30.123 UTC
    assert event.amount == 12.3456
    assert (event.country, event.lat, event.lon) == ("FR", 48.85, 2.35)
    assert event.merchant_id is sys.intern("shop-1")  # shared by every state


def test_from_transaction_without_optional_fields() -> None:
    tx = Transaction.model_validate(
        {
            "tx_id": "t-2",
            "user_id": "u",
            "merchant_id": "m",
            "amount": "1",
            "event_time": 1_700_000_000_000,
        }
    )
    event = VelocityEvent.from_transaction(tx)
    assert (event.event_ms, event.country, event.lat, event.lon) == (
        1_700_000_000_000,
        None,
        None,
        None,
    )
    features = UserVelocity().update(event).features
    assert math.isnan(features["user_travel_kmh"])


@pytest.mark.parametrize("amount", [math.nan, math.inf])
def test_a_non_finite_amount_is_refused(amount: float) -> None:
    with pytest.raises(FeatureInputError, match="amount"):
        VelocityEvent("t", 0, amount, "m", "u")


@pytest.mark.parametrize("event_ms", [-(10**15), 10**15])
def test_a_time_outside_the_datetime_range_is_refused(event_ms: int) -> None:
    with pytest.raises(FeatureInputError, match="event_ms"):
        VelocityEvent("t", event_ms, 1.0, "m", "u")


@pytest.mark.parametrize("state", [UserVelocity, MerchantVelocity])
def test_a_negative_lateness_is_refused(state: type[UserVelocity | MerchantVelocity]) -> None:
    with pytest.raises(FeatureInputError, match="lateness"):
        state(-1)
