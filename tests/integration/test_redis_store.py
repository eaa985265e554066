"""Batched enrichment and the decision cache against the real Redis."""

from __future__ import annotations

import math
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
import redis

from operators.merchant_labels import (
    MERCHANT_LABEL_FEATURES,
    MerchantLabelBook,
    merchant_label_values,
    merchant_risk_from,
)
from schemas import Transaction
from schemas._types import epoch_ms
from streams.redis_store import RedisStore, keys
from streams.settings import Settings

pytestmark = pytest.mark.integration


def _tx(
    user: str, merchant: str, card: str | None = None, at: datetime | None = None
) -> Transaction:
    return Transaction(
        tx_id=f"t-{uuid.uuid4().hex[:8]}", user_id=user, merchant_id=merchant, card_id=card,
        amount=Decimal("10.00"), event_time=at or datetime.now(UTC),
    )  # fmt: skip


NO_LABELS = merchant_label_values(None, 0)
WIDTH = len(MERCHANT_LABEL_FEATURES)


def _same(actual: Any, expected: Any) -> None:
    np.testing.assert_allclose(
        np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64),
        rtol=0, atol=1e-9, equal_nan=True,
    )  # fmt: skip


@pytest.fixture
def prefix(redis_client: redis.Redis) -> Iterator[str]:
    """A unique namespace per test so tests never see each other's keys."""
    old = keys.prefix
    keys.prefix = f"test-{uuid.uuid4().hex[:8]}"
    yield keys.prefix
    for key in redis_client.scan_iter(f"{keys.prefix}:*"):
        redis_client.delete(key)
    keys.prefix = old


def test_enrichment_reads_risk_and_lists_in_one_round_trip(servers: Settings, prefix: str):
    store = RedisStore(servers.redis_dsn)
    store.set_merchant_risk({"m-risky": 0.9})
    store.set_listing("deny", "card", ["card-stolen"])
    store.set_listing("allow", "user", ["u-vip"])
    batch = [_tx("u1", "m-risky"), _tx("u2", "m-plain", "card-stolen"), _tx("u-vip", "m-plain")]
    enrichment = store.enrich(batch)
    assert enrichment.degraded_cause is None
    assert enrichment.merchant_risk[0] == pytest.approx(0.9)
    assert np.isnan(enrichment.merchant_risk[1])
    assert enrichment.deny.tolist() == [False, True, False]
    assert enrichment.allow.tolist() == [False, False, True]
    assert enrichment.merchant_labels.shape == (3, WIDTH)
    _same(enrichment.merchant_labels[1:], [NO_LABELS, NO_LABELS])


def test_decision_cache_keeps_the_first_decision(servers: Settings, prefix: str):
    store = RedisStore(servers.redis_dsn, decision_ttl_s=60)
    assert store.cache_decisions([("t1", b'{"decision":"BLOCK"}')]) is None
    assert store.cache_decisions([("t1", b'{"decision":"APPROVE"}')]) is None
    assert store.cached_decision("t1") == b'{"decision":"BLOCK"}'
    assert 0 < store.client.ttl(keys.decision("t1")) <= 60


def test_unreachable_redis_degrades_the_batch_and_backs_off(servers: Settings):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    now = [0.0]
    store = RedisStore(f"redis://127.0.0.1:{port}/0", backoff_s=1.0, clock=lambda: now[0])
    first = store.enrich([_tx("u1", "m1"), _tx("u2", "m2")])
    assert first.degraded_cause == "redis_unavailable"
    assert first.deny.tolist() == [False, False]
    assert np.isnan(first.merchant_risk).all()
    _same(first.merchant_labels, [NO_LABELS, NO_LABELS])
    now[0] = 0.5  # within the back-off: not asked again, same cause
    assert store.enrich([_tx("u1", "m1")]).degraded_cause == "redis_unavailable"
    assert store.cache_decisions([("t1", b"{}")]) == "redis_unavailable"


def test_cached_decisions_are_fetched_in_one_call(servers: Settings, prefix: str):
    store = RedisStore(servers.redis_dsn)
    store.cache_decisions([("t1", b'{"decision":"BLOCK"}'), ("t3", b'{"decision":"REVIEW"}')])
    assert store.cached_decisions(["t1", "t2", "t3"]) == [
        b'{"decision":"BLOCK"}',
        None,
        b'{"decision":"REVIEW"}',
    ]


class _CountingRoundTrips:
    """Wraps a client to count its round trips: commands, pipelines and script calls."""

    def __init__(self, client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        command, pipeline = client.execute_command, client.pipeline

        def execute_command(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return command(*args, **kwargs)

        def make_pipeline(*args: Any, **kwargs: Any) -> Any:
            pipe = pipeline(*args, **kwargs)
            run = pipe.execute

            def execute(*a: Any, **k: Any) -> Any:
                self.count += 1
                return run(*a, **k)

            pipe.execute = execute  # type: ignore[method-assign]
            return pipe

        monkeypatch.setattr(client, "execute_command", execute_command)
        monkeypatch.setattr(client, "pipeline", make_pipeline)


def test_merchant_records_are_read_at_each_transactions_event_time(
    servers: Settings, prefix: str, monkeypatch: pytest.MonkeyPatch
):
    now = datetime(2024, 3, 1, tzinfo=UTC)
    now_ms = epoch_ms(now)
    day = 86_400_000
    book = MerchantLabelBook()
    book.apply("f1", "m-hit", now_ms - 10 * day, True, now_ms - 3 * day)
    book.apply("l1", "m-hit", now_ms - 9 * day, False, now_ms - 2 * day)
    book.apply("l2", "m-calm", now_ms - 9 * day, False, now_ms - 2 * day)
    store = RedisStore(servers.redis_dsn)
    records = book.records(now_ms)
    store.write_merchant_records(records)
    store.client.set(keys.merchant_risk("m-garbage"), b"\x00{not a record")
    batch = [
        _tx("u1", "m-hit", at=now),
        _tx("u2", "m-hit", at=now + timedelta(minutes=5)),
        _tx("u3", "m-calm", at=now),
        _tx("u4", "m-unknown", at=now),
        _tx("u5", "m-garbage", at=now),
    ]
    store.enrich(batch)  # loads the script once (SCRIPT LOAD on the first NOSCRIPT)
    round_trips = _CountingRoundTrips(store.client, monkeypatch)
    enrichment = store.enrich(batch)
    assert round_trips.count == 1
    assert enrichment.degraded_cause is None
    assert enrichment.merchant_labels.shape == (5, WIDTH)
    for row, tx in enumerate(batch[:3]):
        expected = merchant_label_values(records[tx.merchant_id], epoch_ms(tx.event_time))
        _same(enrichment.merchant_labels[row], expected)
    _same(enrichment.merchant_labels[3:], [NO_LABELS, NO_LABELS])
    hit = dict(zip(MERCHANT_LABEL_FEATURES, enrichment.merchant_labels[1], strict=True))
    assert hit["merchant_known_labels_28d"] == 2
    assert hit["merchant_seconds_since_known_fraud"] == 10 * 86_400 + 300
    assert enrichment.merchant_risk[:3].tolist() == [0.5, 0.5, 0.0]
    assert np.isnan(enrichment.merchant_risk[3:]).all()


def test_bare_risks_still_read_as_the_merchant_risk(servers: Settings, prefix: str):
    store = RedisStore(servers.redis_dsn)
    store.set_merchant_risk({"m-a": 0.123456789, "m-b": 1.0})
    store.write_merchant_records({"m-c": MerchantLabelBook().records(0, ["m-c"])["m-c"]})
    enrichment = store.enrich([_tx("u1", "m-a"), _tx("u2", "m-b"), _tx("u3", "m-c")])
    assert enrichment.merchant_risk[:2].tolist() == [0.123456789, 1.0]
    assert math.isnan(enrichment.merchant_risk[2])
    assert (
        enrichment.merchant_labels[0, MERCHANT_LABEL_FEATURES.index("merchant_known_labels_28d")]
        == 0
    )


def test_writing_merchant_records_replaces_them_in_chunks(servers: Settings, prefix: str):
    store = RedisStore(servers.redis_dsn)
    book = MerchantLabelBook()
    for number in range(2_500):
        book.apply(f"t{number}", f"m{number}", 0, number % 2 == 0, 1_000)
    store.write_merchant_records(book.records(2_000))
    book.apply("t1", "m1", 0, True, 1_500)  # a correction: legit -> fraud
    store.write_merchant_records(book.records(2_000, ["m1"]))
    stored = store.client.mget([keys.merchant_risk(f"m{n}") for n in range(2_500)])
    values = [merchant_label_values(raw, 2_000) for raw in stored]  # type: ignore[arg-type]
    risks = [merchant_risk_from(row) for row in values]
    assert risks[:4] == [1.0, 1.0, 1.0, 0.0]  # m1 corrected to fraud
    assert sum(risks) == 1_251
