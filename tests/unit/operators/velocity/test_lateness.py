"""Out-of-order events within the lateness, and events later than it."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from operators.velocity import (
    MERCHANT_FEATURES,
    USER_FEATURES,
    MerchantVelocity,
    UserVelocity,
    VelocityEvent,
)
from tests.unit.operators.velocity import _oracle
from tests.unit.operators.velocity._streams import DAY, HOUR, LATENESS, MINUTE, START, arrivals

Features = dict[str, float]


def _feed_users(events: list[VelocityEvent], lateness: int) -> dict[str, Features]:
    states: dict[str, UserVelocity] = {}
    return {
        e.tx_id: states.setdefault(e.user_id, UserVelocity(lateness)).update(e).features
        for e in events
    }


def _feed_merchants(events: list[VelocityEvent], lateness: int) -> dict[str, Features]:
    states: dict[str, MerchantVelocity] = {}
    return {
        e.tx_id: states.setdefault(e.merchant_id, MerchantVelocity(lateness)).update(e).features
        for e in events
    }


def _event(tx_id: str, at_ms: int, amount: float = 10.0, **fields: object) -> VelocityEvent:
    defaults: dict[str, object] = {"merchant_id": "m1", "user_id": "u1"}
    defaults.update(fields)
    return VelocityEvent(tx_id, at_ms, amount, **defaults)  # type: ignore[arg-type]


def test_an_event_overtaken_by_a_later_one_gets_its_in_order_features() -> None:
    first = _event("a", START, 10.0)
    second = _event("b", START + 3 * MINUTE, 99.0, merchant_id="m2")
    in_order = _feed_users([first, second], 5 * MINUTE)
    swapped = _feed_users([second, first], 5 * MINUTE)
    assert swapped["a"] == in_order["a"]
    assert swapped["a"]["user_count_1h"] == 1.0  # b's later time does not count for a
    assert swapped["a"]["user_amount_sum_30d"] == 10.0
    assert swapped["a"]["user_distinct_merchants_1h"] == 1.0
    assert math.isnan(swapped["a"]["user_seconds_since_prev"])
    # b arrived first, so it did not see a: the price of computing at arrival.
    assert swapped["b"]["user_count_1h"] == 1.0


def test_a_seen_event_at_the_same_time_is_previous_with_delta_zero() -> None:
    features = _feed_users([_event("a", START), _event("b", START)], 0)
    assert features["b"]["user_seconds_since_prev"] == 0.0
    assert features["b"]["user_count_1m"] == 2.0
    assert features["b"]["user_first_time_merchant"] == 0.0


@st.composite
def _shuffled(draw: st.DrawFn) -> tuple[int, list[VelocityEvent]]:
    lateness = draw(LATENESS)
    return lateness, draw(arrivals(lateness))


@settings(max_examples=60, deadline=None)
@given(_shuffled())
def test_out_of_order_within_lateness_equals_in_order(
    stream: tuple[int, list[VelocityEvent]],
) -> None:
    lateness, arrived = stream
    position = {e.tx_id: k for k, e in enumerate(arrived)}
    # The in-order feed: by time, ties in arrival order.
    in_order = sorted(arrived, key=lambda e: (e.event_ms, position[e.tx_id]))
    for feed, key in ((_feed_users, "user_id"), (_feed_merchants, "merchant_id")):
        shuffled_features = feed(arrived, lateness)
        ordered_features = feed(in_order, lateness)
        for k, event in enumerate(arrived):
            # Comparable when nothing earlier in time (same key) arrived after it.
            overtaken = any(
                getattr(other, key) == getattr(event, key) and other.event_ms < event.event_ms
                for other in arrived[k + 1 :]
            )
            if not overtaken:
                got, want = shuffled_features[event.tx_id], ordered_features[event.tx_id]
                assert not _oracle.mismatches(got, want), event


def test_a_very_late_event_is_flagged_and_still_gets_a_full_vector() -> None:
    user, merchant = UserVelocity(5 * MINUTE), MerchantVelocity(5 * MINUTE)
    events = [_event(f"t{k}", START + k * HOUR, 10.0 + k) for k in range(30)]
    for event in events:
        assert not user.update(event).late
        assert not merchant.update(event).late
    newest = events[-1].event_ms
    for delay in (6 * MINUTE, 3 * HOUR, 2 * DAY, 45 * DAY):
        late_event = _event(f"late{delay}", newest - delay, 50.0, country="FR", lat=1.0, lon=2.0)
        user_result, merchant_result = user.update(late_event), merchant.update(late_event)
        assert user_result.late and merchant_result.late
        assert list(user_result.features) == list(USER_FEATURES)
        assert list(merchant_result.features) == list(MERCHANT_FEATURES)
        assert user_result.features["user_count_1m"] >= 1.0  # it counts itself
        assert user_result.features["amount"] == 50.0
        assert merchant_result.features["merchant_count_24h"] >= 1.0
    # Still counted where its time falls inside the retained state: 3 h late is in the
    # newest event's 24 h window.
    after = user.update(_event("after", newest + 1, 1.0))
    assert not after.late
    hourly_in_window, late_in_window = 24, 2  # the 6 min and 3 h late ones
    assert after.features["user_count_24h"] == hourly_in_window + late_in_window + 1
