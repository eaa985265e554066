"""Repeats older than the in-process dedupe horizon still re-emit their first decision,
from the Redis decision cache (the second tier), on the real Redis."""

from __future__ import annotations

import uuid

import orjson
import pytest

from operators.engine import FeaturedTx
from operators.stateful import DecidedTx
from schemas import decode_transaction
from streams._score_steps import ScoreSteps
from streams.redis_store import RedisStore
from streams.settings import Settings
from tests.doubles import transaction_payload

pytestmark = pytest.mark.integration


def _featured(tx_id: str, *, duplicate: bool) -> FeaturedTx:
    tx = decode_transaction(orjson.dumps(transaction_payload(tx_id=tx_id)))
    return FeaturedTx(tx=tx, features={}, produced_ms=0, duplicate=duplicate)


def test_a_repeat_is_answered_from_the_redis_cache(servers: Settings, tmp_path):
    settings = servers.model_copy(update={"model_dir": tmp_path / "no-model"})
    first_id, unknown_id, fresh_id = (f"tx-tier-{uuid.uuid4().hex[:8]}" for _ in range(3))
    first = {"tx_id": first_id, "decision": "BLOCK", "degraded_cause": None, "marker": 1}
    RedisStore(settings.redis_dsn).cache_decisions([(first_id, orjson.dumps(first))])

    out = ScoreSteps(settings).score(
        [
            _featured(first_id, duplicate=True),
            _featured(unknown_id, duplicate=True),
            _featured(fresh_id, duplicate=False),
        ]
    )

    decided = {item.tx_id: item for item in out if isinstance(item, DecidedTx)}
    assert set(decided) == {first_id, unknown_id, fresh_id}
    replay = decided[first_id]
    assert replay.replayed
    assert orjson.loads(replay.payload) == first  # byte-for-byte the cached first decision
    assert replay.decision == "BLOCK"
    # A repeat the cache does not know is decided (the dedupe step may still know it).
    assert not decided[unknown_id].replayed
    assert not decided[fresh_id].replayed
