"""The Redis circuit breaker, driven by hand with a fake clock (no thread, no server)."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from streams._redis_circuit import REDIS_TIMEOUT, REDIS_UNAVAILABLE, RedisCircuit, failure_cause
from tests.doubles import FakeClock


class FakeRedis:
    """A PING that answers after ``latency_s`` of fake time, or raises ``error``."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.latency_s = 0.001
        self.error: Exception | None = None
        self.pings = 0

    def ping(self) -> bool:
        self.pings += 1
        self.clock.advance(self.latency_s)
        if self.error is not None:
            raise self.error
        return True


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(clock: FakeClock) -> FakeRedis:
    return FakeRedis(clock)


@pytest.fixture
def circuit(clock: FakeClock, server: FakeRedis) -> RedisCircuit:
    return RedisCircuit(server.ping, fast_s=0.05, closes_after=3, clock=clock, background=False)


def test_failures_are_named_by_cause() -> None:
    assert failure_cause(RedisTimeoutError("slow")) == REDIS_TIMEOUT
    assert failure_cause(RedisConnectionError("refused")) == REDIS_UNAVAILABLE
    assert failure_cause(ConnectionRefusedError()) == REDIS_UNAVAILABLE


def test_a_new_circuit_is_closed_and_probing_it_changes_nothing(
    circuit: RedisCircuit, server: FakeRedis
) -> None:
    assert not circuit.is_open
    assert circuit.cause is None
    assert circuit.probe_once() is True
    assert server.pings == 0  # a closed circuit is not probed


def test_the_first_failure_opens_it_with_its_cause(circuit: RedisCircuit) -> None:
    assert circuit.failed(RedisTimeoutError("Timeout reading from socket")) == REDIS_TIMEOUT
    assert circuit.is_open
    assert circuit.cause == REDIS_TIMEOUT


def test_it_stays_open_while_redis_is_down_and_the_cause_follows_the_probe(
    circuit: RedisCircuit, server: FakeRedis, clock: FakeClock
) -> None:
    circuit.failed(RedisTimeoutError("slow"))
    server.error = RedisConnectionError("Connection refused")
    for _ in range(10):
        clock.advance(0.25)
        assert circuit.probe_once() is False
    assert circuit.cause == REDIS_UNAVAILABLE  # it was slow, now it is gone
    assert server.pings == 10


def test_it_closes_only_after_three_fast_pings_in_a_row(
    circuit: RedisCircuit, server: FakeRedis
) -> None:
    circuit.failed(RedisConnectionError("refused"))
    assert [circuit.probe_once() for _ in range(3)] == [False, False, True]
    assert not circuit.is_open
    assert circuit.cause is None


def test_a_slow_answer_keeps_it_open_as_a_timeout_and_restarts_the_count(
    circuit: RedisCircuit, server: FakeRedis
) -> None:
    circuit.failed(RedisConnectionError("refused"))
    assert circuit.probe_once() is False  # fast 1
    assert circuit.probe_once() is False  # fast 2
    server.latency_s = 0.2  # answers, but in 200 ms: too slow for the hot path
    assert circuit.probe_once() is False
    assert circuit.cause == REDIS_TIMEOUT
    server.latency_s = 0.001
    assert [circuit.probe_once() for _ in range(3)] == [False, False, True]


def test_a_failing_probe_restarts_the_count(circuit: RedisCircuit, server: FakeRedis) -> None:
    circuit.failed(RedisTimeoutError("slow"))
    circuit.probe_once()
    circuit.probe_once()
    server.error = RedisTimeoutError("slow")
    assert circuit.probe_once() is False
    server.error = None
    assert [circuit.probe_once() for _ in range(3)] == [False, False, True]


def test_a_hot_path_failure_while_probing_restarts_the_count(
    circuit: RedisCircuit, server: FakeRedis
) -> None:
    circuit.failed(RedisConnectionError("refused"))
    circuit.probe_once()
    circuit.probe_once()
    circuit.failed(RedisTimeoutError("slow"))
    assert circuit.probe_once() is False
    assert circuit.cause == REDIS_TIMEOUT


def test_closing_runs_the_hook_first_and_a_second_outage_opens_again(
    clock: FakeClock, server: FakeRedis
) -> None:
    seen: list[bool] = []
    circuit: RedisCircuit

    def hook() -> None:
        seen.append(circuit.is_open)

    circuit = RedisCircuit(
        server.ping, fast_s=0.05, closes_after=1, clock=clock, background=False, on_close=hook
    )
    circuit.failed(RedisConnectionError("refused"))
    assert circuit.probe_once() is True
    assert seen == [True]  # the hook ran while the hot path still kept away
    assert circuit.failed(RedisConnectionError("refused again")) == REDIS_UNAVAILABLE
    assert circuit.is_open


@given(st.lists(st.sampled_from(["fast", "slow", "down"]), max_size=40))
def test_it_closes_exactly_after_the_first_run_of_three_fast_pings(answers: list[str]) -> None:
    clock = FakeClock()
    server = FakeRedis(clock)
    circuit = RedisCircuit(server.ping, fast_s=0.05, closes_after=3, clock=clock, background=False)
    circuit.failed(RedisConnectionError("refused"))
    in_a_row, expected_close = 0, None
    for i, answer in enumerate(answers):
        in_a_row = in_a_row + 1 if answer == "fast" else 0
        if in_a_row == 3:
            expected_close = i
            break
    closed_at = None
    for i, answer in enumerate(answers):
        server.latency_s = 0.2 if answer == "slow" else 0.001
        server.error = RedisConnectionError("refused") if answer == "down" else None
        if circuit.probe_once():
            closed_at = i
            break
    assert closed_at == expected_close
    assert circuit.is_open is (expected_close is None)


def test_the_background_prober_closes_the_circuit_and_stops() -> None:
    healthy = threading.Event()

    def ping() -> bool:
        if not healthy.is_set():
            raise RedisConnectionError("refused")
        return True

    circuit = RedisCircuit(ping, fast_s=1.0, probe_interval_s=0.01, closes_after=2)
    try:
        circuit.failed(RedisConnectionError("refused"))
        time.sleep(0.05)
        assert circuit.is_open
        healthy.set()
        deadline = time.monotonic() + 5
        while circuit.is_open and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not circuit.is_open
    finally:
        circuit.close()


def test_a_failing_close_hook_keeps_it_open(clock: FakeClock, server: FakeRedis) -> None:
    def hook() -> None:
        raise RedisTimeoutError("SCRIPT LOAD timed out")

    circuit = RedisCircuit(
        server.ping, fast_s=0.05, closes_after=1, clock=clock, background=False, on_close=hook
    )
    circuit.failed(RedisConnectionError("refused"))
    assert circuit.probe_once() is False
    assert circuit.cause == REDIS_TIMEOUT


def test_closes_after_must_be_positive(server: FakeRedis) -> None:
    with pytest.raises(ValueError, match="closes_after"):
        RedisCircuit(server.ping, fast_s=0.05, closes_after=0)
