"""Batched enrichment and the decision cache against the real Redis."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pytest
import redis

from schemas import Transaction
from streams.redis_store import RedisStore, keys
from streams.settings import Settings

pytestmark = pytest.mark.integration


def _tx(user: str, merchant: str, card: str | None = None) -> Transaction:
    return Transaction(
        tx_id=f"t-{uuid.uuid4().hex[:8]}", user_id=user, merchant_id=merchant, card_id=card,
        amount=Decimal("10.00"), event_time=datetime.now(UTC),
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
