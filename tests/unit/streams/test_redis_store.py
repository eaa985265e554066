"""RedisStore's hot path behind its circuit: one failure, then no call until Redis is back.

No server: the store points at a loopback port nobody listens on (refused at once) and the
scripts are replaced by counting doubles, so what is asked of Redis is counted exactly.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from schemas import Transaction
from streams._redis_scripts import CACHE_DECISIONS, ENRICH
from streams.redis_store import RedisStore
from tests.doubles import FakeClock


class CountingScript:
    """Stands for a registered Lua script: raises ``error`` or returns ``result``."""

    def __init__(self, result: Any = None) -> None:
        self.calls = 0
        self.error: Exception | None = None
        self.result = result

    def __call__(self, **_: Any) -> Any:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.result


class FakeProbeClient:
    """The probe's own connection: PING, and the scripts loaded before the circuit closes."""

    def __init__(self) -> None:
        self.error: Exception | None = RedisConnectionError("refused")
        self.loaded: list[str] = []

    def ping(self) -> bool:
        if self.error is not None:
            raise self.error
        return True

    def script_load(self, script: str) -> str:
        self.loaded.append(script)
        return "sha"


def _tx(n: int) -> Transaction:
    return Transaction(
        tx_id=f"t{n}",
        user_id=f"u{n}",
        card_id=f"c{n}",
        merchant_id=f"m{n}",
        amount=Decimal("10.00"),
        currency="EUR",
        country="FR",
        mcc="5411",
        channel="pos",
        event_time=datetime(2024, 1, 1, tzinfo=UTC),
    )


@pytest.fixture
def store() -> RedisStore:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = RedisStore(f"redis://127.0.0.1:{port}/0", clock=FakeClock(), probe_in_background=False)
    store._enrich_script = CountingScript()  # type: ignore[assignment]
    store._cache_script = CountingScript()  # type: ignore[assignment]
    probe_client = FakeProbeClient()
    store._probe_client = probe_client  # type: ignore[assignment]
    store.circuit._probe = probe_client.ping
    return store


def test_one_timeout_opens_the_circuit_and_no_batch_calls_redis_again(store: RedisStore) -> None:
    enrich: Any = store._enrich_script
    cache: Any = store._cache_script
    enrich.error = RedisTimeoutError("Timeout reading from socket")

    first = store.enrich([_tx(1), _tx(2)])
    later = [store.enrich([_tx(3)]) for _ in range(50)]
    cached = [store.cache_decisions([("t1", b"{}")]) for _ in range(50)]

    assert first.degraded_cause == "redis_timeout"
    assert np.isnan(first.merchant_risk).all()
    assert {e.degraded_cause for e in later} == {"redis_timeout"}
    assert set(cached) == {"redis_timeout"}
    assert (enrich.calls, cache.calls) == (1, 0)
    assert store.cached_decisions(["t1", "t2"]) == [None, None]


def test_redis_is_called_again_once_the_probe_closes_the_circuit(store: RedisStore) -> None:
    enrich: Any = store._enrich_script
    cache: Any = store._cache_script
    probe: Any = store._probe_client
    cache.error = RedisConnectionError("Connection refused")
    assert store.cache_decisions([("t1", b"{}")]) == "redis_unavailable"
    cache.error = None

    assert store.circuit.probe_once() is False  # still refused
    probe.error = None
    assert [store.circuit.probe_once() for _ in range(3)] == [False, False, True]
    assert probe.loaded == [CACHE_DECISIONS, ENRICH]  # a restarted Redis has no scripts

    assert store.cache_decisions([("t1", b"{}")]) is None
    assert cache.calls == 2
    enrich.result = [[None], b"0", b"0"]  # no merchant record, on no list
    assert store.enrich([_tx(1)]).degraded_cause is None
    assert enrich.calls == 1
