"""State lifecycle: pruning, eviction, size, snapshots, missing optional fields."""

from __future__ import annotations

import math
import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from operators.velocity import MerchantVelocity, UserVelocity, VelocityEvent
from tests.unit.operators.velocity import _oracle
from tests.unit.operators.velocity._streams import DAY, HOUR, LATENESS, MINUTE, START, arrivals

LATENESS_MS = 5 * MINUTE
#: Memory budget per typical user (5 tx/day for 30 days); the later target is 1 KB.
USER_BYTES_BUDGET = 4096
#: A new user (a few events within the hour) holds no archive and no month cache yet.
NEW_USER_BYTES_BUDGET = 1700


def typical_user_month(user: str = "u1") -> list[VelocityEvent]:
    """5 transactions a day for 30 days at a dozen merchants, with country and location."""
    events = []
    for day in range(30):
        for k in range(5):
            at = START + day * DAY + (8 + 3 * k) * HOUR + 7 * MINUTE * k
            events.append(
                VelocityEvent(
                    tx_id=f"{user}-{day}-{k}",
                    event_ms=at,
                    amount=round(5 + 17.3 * ((day * 5 + k) % 11), 2),
                    merchant_id=f"merchant-{(day * 3 + k) % 12}",
                    user_id=user,
                    country="FR",
                    lat=48.85 + 0.01 * k,
                    lon=2.35,
                )
            )
    return events


def test_a_typical_user_fits_the_memory_budget() -> None:
    state = UserVelocity(LATENESS_MS)
    for event in typical_user_month():
        state.update(event)
    in_memory, pickled = state.approx_bytes(), len(pickle.dumps(state, protocol=5))
    print(f"typical user: {in_memory} B in memory, {pickled} B pickled")  # for the report
    assert in_memory <= USER_BYTES_BUDGET
    assert pickled <= in_memory


def test_a_new_user_holds_only_what_their_few_events_need() -> None:
    state = UserVelocity(LATENESS_MS)
    for k in range(3):
        at = START + 20 * k * MINUTE
        state.update(VelocityEvent(f"n{k}", at, 12.5 + k, "m1", "u1", "FR", 48.0, 2.0))
    in_memory = state.approx_bytes()
    print(f"new user: {in_memory} B in memory")  # for the report
    assert in_memory <= NEW_USER_BYTES_BUDGET


def test_a_long_gap_prunes_the_state_and_makes_it_idle() -> None:
    user, merchant = UserVelocity(LATENESS_MS), MerchantVelocity(LATENESS_MS)
    events = typical_user_month()
    for event in events:
        user.update(event)
        merchant.update(event)
    full_user = user.approx_bytes()
    newest = events[-1].event_ms

    assert not user.is_idle(newest + 30 * DAY + LATENESS_MS)
    assert user.is_idle(newest + 30 * DAY + LATENESS_MS + 1)
    assert not merchant.is_idle(newest + DAY + LATENESS_MS)
    assert merchant.is_idle(newest + DAY + LATENESS_MS + 1)

    comeback = VelocityEvent("back", newest + 31 * DAY, 10.0, "merchant-0", "u1")
    user_result, merchant_result = user.update(comeback), merchant.update(comeback)
    fresh_user, fresh_merchant = UserVelocity(LATENESS_MS), MerchantVelocity(LATENESS_MS)
    # Nothing of the past month survives: same features as a brand-new state...
    assert not _oracle.mismatches(user_result.features, fresh_user.update(comeback).features)
    assert merchant_result.features == fresh_merchant.update(comeback).features
    # ...and (nearly) the same size: at most the emptied containers' spare capacity.
    assert user.approx_bytes() <= fresh_user.approx_bytes() + 512 < full_user
    assert merchant.approx_bytes() <= fresh_merchant.approx_bytes() + 256


def test_evicting_an_idle_state_changes_no_feature() -> None:
    kept = UserVelocity(LATENESS_MS)
    events = typical_user_month()
    for event in events:
        kept.update(event)
    later = events[-1].event_ms + 30 * DAY + LATENESS_MS + 1
    assert kept.is_idle(later)
    after = VelocityEvent("after", later, 42.0, "merchant-3", "u1", "FR", 48.0, 2.0)
    evicted = UserVelocity(LATENESS_MS)
    assert not _oracle.mismatches(kept.update(after).features, evicted.update(after).features)


@st.composite
def _split_stream(draw: st.DrawFn) -> tuple[int, list[VelocityEvent], int]:
    lateness = draw(LATENESS)
    events = draw(arrivals(lateness))
    late = draw(st.lists(st.integers(0, len(events) - 1), max_size=4))
    # Re-deliver a few events as new ones far in the past: late events after the split.
    extra = [
        VelocityEvent(f"late{k}", events[k].event_ms - 3 * DAY, 1.0, "m9", events[k].user_id)
        for k in late
    ]
    stream = events + extra
    return lateness, stream, draw(st.integers(0, len(stream)))


@settings(max_examples=60, deadline=None)
@given(_split_stream())
def test_a_pickled_state_continues_exactly_like_the_original(
    case: tuple[int, list[VelocityEvent], int],
) -> None:
    lateness, events, split = case
    users: dict[str, UserVelocity] = {}
    merchants: dict[str, MerchantVelocity] = {}
    for event in events[:split]:
        users.setdefault(event.user_id, UserVelocity(lateness)).update(event)
        merchants.setdefault(event.merchant_id, MerchantVelocity(lateness)).update(event)
    # Our own bytes, round-tripped as Bytewax recovery would.
    restored_users = pickle.loads(pickle.dumps(users))
    restored_merchants = pickle.loads(pickle.dumps(merchants))
    for event in events[split:]:
        for live, restored, key in (
            (users, restored_users, event.user_id),
            (merchants, restored_merchants, event.merchant_id),
        ):
            if key not in live:
                assert key not in restored
                continue
            want = live[key].update(event)
            got = restored[key].update(event)
            assert got.late == want.late
            assert _same_bits(got.features, want.features), event


def _same_bits(got: dict[str, float], want: dict[str, float]) -> bool:
    return all(
        (math.isnan(a) and math.isnan(b)) or a == b
        for a, b in zip(got.values(), want.values(), strict=True)
    ) and list(got) == list(want)


def test_missing_optional_fields_give_nan_or_zero_not_errors() -> None:
    state = UserVelocity(LATENESS_MS)
    bare = [VelocityEvent(f"b{k}", START + k * MINUTE, 5.0, "m1", "u1") for k in range(3)]
    for event in bare:
        features = state.update(event).features
        assert math.isnan(features["user_travel_kmh"])
        assert features["user_distinct_countries_24h"] == 0.0
    half = VelocityEvent("half", START + 4 * MINUTE, 5.0, "m1", "u1", lat=48.0)
    assert math.isnan(state.update(half).features["user_travel_kmh"])
    located = VelocityEvent("loc", START + 5 * MINUTE, 5.0, "m1", "u1", "FR", 48.0, 2.0)
    features = state.update(located).features
    assert math.isnan(features["user_travel_kmh"])  # no earlier located transaction
    assert features["user_distinct_countries_24h"] == 1.0
    moved = VelocityEvent("moved", START + 65 * MINUTE, 5.0, "m2", "u1", None, 49.0, 2.0)
    features = state.update(moved).features
    assert math.isclose(features["user_travel_kmh"], 111.2, rel_tol=1e-3)  # 1 degree in 1 h
    assert features["user_distinct_countries_24h"] == 1.0
