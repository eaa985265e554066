"""RecentIds: repeats, expiry by event time, the size bound."""

from __future__ import annotations

import pickle

import pytest

from operators.exceptions import FeatureInputError
from operators.velocity import RecentIds

MINUTE = 60_000


def test_a_repeat_is_detected_and_a_new_id_is_not() -> None:
    ids = RecentIds(ttl_ms=10 * MINUTE, max_size=100)
    assert not ids.seen("a", 0)
    assert ids.seen("a", 0)
    assert ids.seen("a", 5 * MINUTE)  # a re-delivery may carry any time
    assert not ids.seen("b", 0)
    assert len(ids) == 2


def test_an_id_expires_once_the_newest_time_is_more_than_ttl_past_it() -> None:
    ids = RecentIds(ttl_ms=10 * MINUTE, max_size=100)
    ids.seen("old", 0)
    ids.seen("newer", 10 * MINUTE)  # exactly ttl later: "old" is still remembered
    assert ids.seen("old", 0)
    ids.seen("newest", 10 * MINUTE + 1)
    assert not ids.seen("old", 0)  # forgotten: too old to be remembered at all now
    assert not ids.seen("old", 0)
    assert ids.seen("newest", 10 * MINUTE + 1)


def test_an_out_of_order_id_is_expired_by_its_own_time() -> None:
    ids = RecentIds(ttl_ms=10 * MINUTE, max_size=100)
    ids.seen("late", 30 * MINUTE)
    ids.seen("early", 0)  # recorded after "late" but 30 min older: already expired
    assert not ids.seen("early", 0)
    assert ids.seen("late", 30 * MINUTE)


def test_the_size_bound_forgets_the_earliest_recorded() -> None:
    ids = RecentIds(ttl_ms=10 * MINUTE, max_size=3)
    for tx_id in ("a", "b", "c", "d"):
        ids.seen(tx_id, 0)
    assert len(ids) == 3
    assert ids.seen("d", 0) and ids.seen("b", 0)
    assert not ids.seen("a", 0)  # pushed out by "d"
    assert len(ids) == 3


def test_idle_once_everything_expired() -> None:
    ids = RecentIds(ttl_ms=10 * MINUTE)
    assert ids.is_idle(0)
    ids.seen("a", 0)
    assert not ids.is_idle(10 * MINUTE)
    assert ids.is_idle(10 * MINUTE + 1)


def test_pickle_round_trip_keeps_the_ids() -> None:
    ids = RecentIds(ttl_ms=10 * MINUTE, max_size=5)
    ids.seen("a", 0)
    restored = pickle.loads(pickle.dumps(ids))
    assert restored.seen("a", 0)
    assert not restored.seen("b", 0)


@pytest.mark.parametrize(("ttl", "size"), [(-1, 10), (10, 0)])
def test_bad_bounds_are_refused(ttl: int, size: int) -> None:
    with pytest.raises(FeatureInputError):
        RecentIds(ttl_ms=ttl, max_size=size)
