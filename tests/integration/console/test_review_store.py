"""ReviewStore on the real Redis: idempotent writes, the queue's scan and filters, the header."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from schemas import Decision, Label, encode
from schemas._types import epoch_ms
from streams.console import QueueFilter, ReviewStore
from streams.redis_store import keys
from tests.doubles import label_payload, rfc3339
from tests.integration.console._http import GEO, NOON, VELOCITY, case_at

pytestmark = pytest.mark.integration


def _case(n: int, **overrides: Any) -> Decision:
    """Case ``n``, decided ``n`` minutes after noon, scored ``n / 1000``."""
    fields = {"tx_id": f"tx-{n:04d}", "user_id": f"u-{n % 3}", "score": n / 1000}
    return case_at(n, **(fields | overrides))


def _label(
    case: Decision, verdict: str = "fraud", at: datetime | None = None, **extra: Any
) -> Label:
    moment = at or datetime.now(UTC)
    payload = label_payload(
        case.tx_id, case.user_id, verdict, labeled_at=rfc3339(epoch_ms(moment)), **extra
    )
    return Label.model_validate(payload)


def _ids(cases: list[Decision]) -> list[str]:
    return [case.tx_id for case in cases]


def test_recording_decisions_twice_changes_nothing(store: ReviewStore) -> None:
    cases = [_case(n) for n in range(5)]
    store.record_decisions(cases, cases, user_history=5)
    first = (_ids(store.open_cases(QueueFilter())), store.summary().queue_size)
    # A redelivered copy with another score does not move the case in the score order.
    store.record_decisions([_case(n, score=0.99) for n in range(5)], [], user_history=5)

    assert first == (["tx-0004", "tx-0003", "tx-0002", "tx-0001", "tx-0000"], 5)
    assert _ids(store.open_cases(QueueFilter())) == first[0]
    assert store.summary().queue_size == 5
    assert _ids(store.open_cases(QueueFilter(order="score"))) == first[0]


def test_the_orders_newest_and_highest_score(store: ReviewStore) -> None:
    cases = [_case(1, score=0.9), _case(2, score=0.2), _case(3, score=None), _case(4, score=0.5)]
    store.record_decisions(cases, [], user_history=0)

    assert _ids(store.open_cases(QueueFilter())) == ["tx-0004", "tx-0003", "tx-0002", "tx-0001"]
    # A rules-only case (no score) sorts below every scored one.
    assert _ids(store.open_cases(QueueFilter(order="score"))) == [
        "tx-0001",
        "tx-0004",
        "tx-0002",
        "tx-0003",
    ]
    assert _ids(store.open_cases(QueueFilter(), limit=2)) == ["tx-0004", "tx-0003"]


def test_filters_on_real_queues(store: ReviewStore) -> None:
    cases = [
        _case(1, rules_fired=[GEO], decision="BLOCK", score=0.95),
        _case(2, score=0.40),
        _case(3, rules_fired=[VELOCITY, GEO], score=0.70),
        _case(4, score=None, rules_fired=[GEO]),
    ]
    store.record_decisions(cases, [], user_history=0)

    def ids(**wanted: Any) -> list[str]:
        return _ids(store.open_cases(QueueFilter(**wanted)))

    assert ids(rule="geo_jump") == ["tx-0004", "tx-0003", "tx-0001"]
    assert ids(decision="BLOCK") == ["tx-0001"]
    assert ids(min_score=0.5) == ["tx-0003", "tx-0001"]
    assert ids(order="score", min_score=0.4, max_score=0.7) == ["tx-0003", "tx-0002"]
    assert ids(since=NOON + timedelta(minutes=2), until=NOON + timedelta(minutes=3)) == [
        "tx-0003",
        "tx-0002",
    ]
    assert ids(order="score", rule="geo_jump", since=NOON + timedelta(minutes=2)) == [
        "tx-0003",
        "tx-0004",
    ]
    assert ids(rule="no_such_rule") == []


def test_a_filter_scans_past_the_first_chunk_and_forgets_expired_cases(
    store: ReviewStore, redis_client: redis.Redis
) -> None:
    """450 cases; the 150 newest expired (deleted, as their TTL would); only the 3 oldest match."""
    cases = [_case(n, rules_fired=[GEO] if n < 3 else [VELOCITY]) for n in range(450)]
    store.record_decisions(cases, [], user_history=0)
    redis_client.delete(*[store._key(f"case:tx-{n:04d}") for n in range(300, 450)])

    found = store.open_cases(QueueFilter(rule="geo_jump"))

    assert _ids(found) == ["tx-0002", "tx-0001", "tx-0000"]
    # The expired cases left both orders; the live ones stayed.
    assert store.summary().queue_size == 300
    assert redis_client.zcard(store._key("queue:score")) == 300
    assert not store.is_open("tx-0449")
    assert store.is_open("tx-0299")


def test_a_case_that_does_not_decode_is_skipped_not_fatal(
    store: ReviewStore, redis_client: redis.Redis
) -> None:
    store.record_decisions([_case(1), _case(2)], [], user_history=0)
    redis_client.set(store._key("case:tx-0002"), b'{"not": "a decision"}')

    assert _ids(store.open_cases(QueueFilter())) == ["tx-0001"]
    assert store.case("tx-0002") is None


def test_trim_drops_the_oldest_cases(store: ReviewStore) -> None:
    store.record_decisions([_case(n) for n in (5, 1, 4, 2, 3)], [], user_history=0)
    version = store.version()

    assert store.trim(3) == 2
    assert store.trim(3) == 0
    assert _ids(store.open_cases(QueueFilter())) == ["tx-0005", "tx-0004", "tx-0003"]
    assert _ids(store.open_cases(QueueFilter(order="score"))) == ["tx-0005", "tx-0004", "tx-0003"]
    assert store.version() > version


def test_a_label_resolves_its_case_and_recording_it_twice_changes_nothing(
    store: ReviewStore,
) -> None:
    cases = [_case(1), _case(2)]
    store.record_decisions(cases, [], user_history=0)
    label = _label(cases[0], analyst_id="alice")

    store.record_labels([label])
    store.record_labels([label])

    assert _ids(store.open_cases(QueueFilter())) == ["tx-0002"]
    assert not store.is_open("tx-0001")
    assert store.history("tx-0001") == [label]
    assert store.recently_labelled() == ["tx-0001"]
    assert store.summary().labels_today == 1
    assert store.summary().queue_size == 1
    assert store.case("tx-0001") == cases[0]  # still viewable once labelled


def test_the_history_keeps_every_verdict_oldest_first(store: ReviewStore) -> None:
    case = _case(1)
    store.record_decisions([case], [], user_history=0)
    now = datetime.now(UTC)
    second = _label(case, "legit", now, analyst_id="bob", note="customer confirmed")
    first = _label(case, "fraud", now - timedelta(minutes=5), analyst_id="alice")

    store.record_labels([second, first])

    assert store.history(case.tx_id) == [first, second]


def test_labels_today_counts_transactions_labelled_today(store: ReviewStore) -> None:
    cases = [_case(n) for n in range(4)]
    store.record_decisions(cases, [], user_history=0)
    now = datetime.now(UTC)
    yesterday = now - timedelta(days=1)

    store.record_labels(
        [
            _label(cases[0], "fraud", now, analyst_id="alice"),
            _label(cases[0], "legit", now, analyst_id="bob"),  # same tx, relabelled
            _label(cases[1], "legit", now),
            _label(cases[2], "fraud", yesterday),
        ]
    )

    assert store.summary(now).labels_today == 2
    assert store.summary(yesterday).labels_today == 1
    assert store.summary(now).queue_size == 1
    assert set(store.recently_labelled(2)) == {"tx-0000", "tx-0001"}
    assert store.recently_labelled()[-1] == "tx-0002"  # labelled yesterday: the oldest


def test_user_events_newest_first_each_transaction_once(store: ReviewStore) -> None:
    mine = [_case(n, user_id="u-me", amount="12.50", merchant_id="m-7") for n in range(4)]
    other = _case(9, user_id="u-other")
    # The second delivery of tx-0001 and tx-0002 (a replayed batch) must not show twice.
    store.record_decisions([], [*mine, other, mine[1], mine[2]], user_history=10)

    events = store.user_events("u-me", limit=10)

    assert [event.tx_id for event in events] == ["tx-0003", "tx-0002", "tx-0001", "tx-0000"]
    assert events[0].amount == "12.50"
    assert events[0].merchant_id == "m-7"
    assert events[0].decision == "REVIEW"
    assert [event.tx_id for event in store.user_events("u-me", limit=2)] == ["tx-0003", "tx-0002"]
    assert store.user_events("u-nobody", limit=5) == []
    assert store.summary().queue_size == 0  # history alone opens no case


def test_user_history_is_capped(store: ReviewStore, redis_client: redis.Redis) -> None:
    store.record_decisions([], [_case(n, user_id="u-me") for n in range(30)], user_history=5)

    assert redis_client.llen(store._key("user:u-me")) == 10  # room for redelivered copies
    assert store.user_events("u-me", 5)[0].tx_id == "tx-0029"


def test_online_quality_drops_what_is_not_known_yet(store: ReviewStore) -> None:
    assert store.summary().online_precision is None

    store.publish_online_quality({"recent_precision": math.nan, "labels": 3.0, "auc": math.inf})
    unknown = store.summary()
    store.publish_online_quality({"recent_precision": 0.8, "labels": 40.0})
    known = store.summary()

    assert (unknown.online_precision, unknown.online_labels) == (None, 3)
    assert (known.online_precision, known.online_labels) == (0.8, 40)
    assert known.to_json()["online_precision"] == 0.8


def test_a_decision_that_was_never_queued_is_read_from_the_decision_cache(
    store: ReviewStore, redis_client: redis.Redis
) -> None:
    approved = _case(1, tx_id=f"tx-{uuid.uuid4().hex[:12]}", decision="APPROVE")
    redis_client.set(keys.decision(approved.tx_id), encode(approved), ex=60)
    try:
        assert store.case(approved.tx_id) == approved
        assert not store.is_open(approved.tx_id)
    finally:
        redis_client.delete(keys.decision(approved.tx_id))
    assert store.case("tx-never-seen") is None


def test_queues_with_other_names_do_not_see_each_other(
    store: ReviewStore, redis_client: redis.Redis
) -> None:
    other = ReviewStore(redis_client, queue=uuid.uuid4().hex)
    store.record_decisions([_case(1)], [], user_history=0)

    assert other.open_cases(QueueFilter()) == []
    assert other.summary().queue_size == 0
