"""RecentIds: repeats, expiry by event time, the size bound."""

from __future__ import annotations

import pickle
import sys
from collections import OrderedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.exceptions import FeatureInputError
from operators.velocity import RecentIds
from operators.velocity._recent_ids import tx_digest
from operators.velocity._size import deep_size

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR


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


class _Reference:
    """The documented semantics, written plainly: ids (not digests) in recording order."""

    def __init__(self, ttl_ms: int, max_size: int) -> None:
        self.ttl, self.max_size = ttl_ms, max_size
        self.ids: OrderedDict[str, int] = OrderedDict()
        self.newest: int | None = None

    def seen(self, tx_id: str, event_ms: int) -> bool:
        recorded = self.ids.get(tx_id)
        if recorded is not None:
            if self.newest is not None and recorded >= self.newest - self.ttl:
                return True
            del self.ids[tx_id]
        self.ids[tx_id] = event_ms
        self.newest = event_ms if self.newest is None else max(self.newest, event_ms)
        while self.ids and (
            len(self.ids) > self.max_size or next(iter(self.ids.values())) < self.newest - self.ttl
        ):
            self.ids.popitem(last=False)
        return False


@st.composite
def _calls(draw: st.DrawFn) -> list[tuple[str, int]]:
    """Ids (many repeated) at times that mostly advance, some jumping back."""
    size = draw(st.integers(1, 400))
    distinct = draw(st.sampled_from([5, 120, 300]))
    names = draw(st.lists(st.integers(0, distinct), min_size=size, max_size=size))
    steps = draw(st.lists(st.integers(-5 * MINUTE, MINUTE), min_size=size, max_size=size))
    t, calls = 0, []
    for name, step in zip(names, steps, strict=True):
        t = max(0, t + step)
        calls.append((f"tx-{name}", t))
    return calls


@settings(max_examples=80, deadline=None)
@given(
    ttl=st.sampled_from([0, MINUTE, 30 * MINUTE, DAY]),
    max_size=st.sampled_from([1, 3, 40, 100, 1000]),
    calls=_calls(),
    split=st.integers(0, 400),
)
def test_answers_like_the_plain_definition_across_the_index_threshold(
    ttl: int, max_size: int, calls: list[tuple[str, int]], split: int
) -> None:
    ids, reference = RecentIds(ttl_ms=ttl, max_size=max_size), _Reference(ttl, max_size)
    for k, (tx_id, event_ms) in enumerate(calls):
        if k == split:
            ids = pickle.loads(pickle.dumps(ids))  # a snapshot restored mid-stream
        assert ids.seen(tx_id, event_ms) == reference.seen(tx_id, event_ms)
        assert len(ids) == len(reference.ids)


@pytest.mark.parametrize(("ttl", "max_size"), [(DAY, 100), (100, 1000)])
def test_ids_forgotten_from_a_large_set_are_new_again(ttl: int, max_size: int) -> None:
    ids, reference = RecentIds(ttl_ms=ttl, max_size=max_size), _Reference(ttl, max_size)
    for k in range(600):  # 150 ids in turn: the size bound or the ttl keeps forgetting them
        tx_id = f"tx-{k % 150}"
        assert ids.seen(tx_id, k) == reference.seen(tx_id, k)
    assert len(ids) == len(reference.ids) > 64


def test_a_snapshot_written_before_digests_restores() -> None:
    # What pickle kept of the former class: its slots, ids in an OrderedDict.
    former = {
        "_ids": OrderedDict([("a", 0), ("b", 5 * MINUTE)]),
        "_max_size": 100,
        "_newest": 5 * MINUTE,
        "_ttl": 10 * MINUTE,
    }
    ids = RecentIds.__new__(RecentIds)
    ids.__setstate__((None, former))
    assert len(ids) == 2
    assert ids.seen("a", 0) and ids.seen("b", 0)
    assert not ids.seen("c", 6 * MINUTE)
    ids.seen("d", 10 * MINUTE + 1)
    assert not ids.seen("a", 0)  # expired by the ttl carried over


def test_the_ids_themselves_are_not_kept_alive() -> None:
    ids = RecentIds(ttl_ms=DAY, max_size=2048)
    tx_id = "".join(["tx-", "unique-", "42"])  # built at run time: only this test holds it
    before = sys.getrefcount(tx_id)
    assert not ids.seen(tx_id, 0)
    assert sys.getrefcount(tx_id) == before
    assert ids.seen("tx-unique-42", 0)  # an equal id, another object: still a repeat


def test_a_users_day_of_ids_is_small() -> None:
    ids = RecentIds(ttl_ms=DAY, max_size=2048)
    for k in range(6):  # a busy user's day
        ids.seen(f"tx-7-r19b5f3c2a11-n{k}", k * HOUR)
    # The former OrderedDict of strings took ~1,300 bytes plus the strings (~70 each).
    assert deep_size(ids) <= 400


def test_the_digest_does_not_depend_on_the_process() -> None:
    # Snapshots carry digests to another process: they must not use the salted ``hash``.
    assert tx_digest("tx-1").hex() == "b0f554e92c90b7350372cd6b54d490c7"
    assert tx_digest("tx-1") != tx_digest("tx-2")


def test_memory_stays_bounded_by_the_size_bound() -> None:
    ids = RecentIds(ttl_ms=DAY, max_size=100)
    for k in range(200):
        ids.seen(f"tx-{k}", k)
    full = deep_size(ids)
    for k in range(200, 10_000):  # every id seen once: each pushes the earliest out
        ids.seen(f"tx-{k}", k)
    assert len(ids) == 100
    assert deep_size(ids) <= full + 1024


def test_a_digest_is_only_found_where_a_digest_starts() -> None:
    ids = RecentIds(ttl_ms=DAY, max_size=100)
    ids.seen("tx-a", 5 * MINUTE)
    # The bytes straddling the digest's second half and the event time: not an id.
    straddling = tx_digest("tx-a")[8:] + (5 * MINUTE).to_bytes(8, "little", signed=True)
    assert ids._position(straddling) == -1
    assert ids._position(tx_digest("tx-a")) == 0
