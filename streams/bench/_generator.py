"""The load generator: a separate process sending transactions on a fixed schedule.

It runs in its own process so that neither the bench's consumer nor a slow scorer can
slow it down (open loop, no coordinated omission): the :class:`~streams.producing.Pacer`
says how many records are due and a late send makes the next burst larger rather than
shifting the schedule. Every record's Kafka timestamp (CreateTime) is set explicitly to
the send time recorded here, so the bench knows it exactly without reading the topic back.
"""

from __future__ import annotations

import itertools
import multiprocessing
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from streams.exceptions import InfraError

__all__ = ["GeneratorHandle", "GeneratorPlan", "GeneratorReport", "start_generator"]

_NOT_SENT = frozenset({"label", "pattern"})
_NS_PER_MS = 1_000_000
_FLUSH_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class GeneratorPlan:
    """What to send: ``round(rate * duration_s)`` simulated transactions to ``topic``."""

    topic: str
    rate: float
    duration_s: float
    seed: int = 7
    users: int = 10_000
    merchants: int = 1_000

    @property
    def events(self) -> int:
        """How many transactions the schedule holds."""
        return round(self.rate * self.duration_s)

    @property
    def deadline_s(self) -> float:
        """Sending stops here even if behind schedule, so a starved generator still ends."""
        return self.duration_s * 1.5 + 5.0


@dataclass
class GeneratorReport:
    """What was sent: ``sent_ns[i]`` is the send time of the transaction numbered ``i``."""

    prefix: str
    start_ns: int
    sent_ns: NDArray[np.int64]
    delivered: int
    failed: int
    undelivered: int
    errors: list[str]


def _encode(event: dict[str, object], sent_ms: int) -> tuple[bytes, bytes]:
    """A simulator row as ``fraudstream produce`` sends it, its event time the send time.

    The simulator's own timeline follows a population's natural rate (a few payments per
    user a day); a benchmark offers thousands a second from a population that fits in
    memory, which would run its event times hours ahead of the clock and into the DLQ
    (future event time). Re-stamping keeps every event "now", as live traffic is.
    """
    payload = {k: v for k, v in event.items() if v is not None and k not in _NOT_SENT}
    payload["event_time"] = sent_ms
    return str(payload["user_id"]).encode(), orjson.dumps(payload)


def _events(plan: GeneratorPlan) -> tuple[str, Iterator[dict[str, object]]]:
    """The live stream and its tx_id prefix; transaction ``i`` has tx_id ``prefix + str(i)``."""
    from models.simulator import SimulatorConfig, live_events

    config = SimulatorConfig(users=plan.users, merchants=plan.merchants, seed=plan.seed)
    events = live_events(config, clock=lambda: datetime.now(tz=UTC))
    first = next(events)
    tx_id = str(first["tx_id"])
    if not tx_id.endswith("-n0"):
        raise InfraError(f"unexpected first tx_id {tx_id!r}: the bench numbers from -n0")
    return tx_id[:-1], itertools.chain([first], events)


def _send_on_schedule(plan: GeneratorPlan, conn: Connection) -> None:
    from confluent_kafka import Producer

    from streams.producing import DeliveryStats, Pacer
    from streams.settings import Settings

    prefix, events = _events(plan)
    producer = Producer(Settings().producer_config())
    producer.list_topics(plan.topic, timeout=10)  # connect and learn leaders before the clock
    stats = DeliveryStats()
    produce, poll, on_delivery = producer.produce, producer.poll, stats.on_delivery
    topic = plan.topic
    total = plan.events
    sent_ns = np.zeros(total, dtype=np.int64)
    conn.send(("ready", prefix))
    pacer = Pacer(plan.rate)
    start_ns = time.time_ns()
    deadline = time.perf_counter() + plan.deadline_s
    sent = 0
    while sent < total and time.perf_counter() < deadline:
        due = min(pacer.due(), total - sent)
        if due == 0:
            pacer.wait()
            continue
        for event in itertools.islice(events, due):
            now = time.time_ns()
            now_ms = now // _NS_PER_MS
            key, value = _encode(event, now_ms)
            while True:
                try:
                    produce(topic, value, key, timestamp=now_ms, on_delivery=on_delivery)
                    break
                except BufferError:  # local queue full: the broker is the bottleneck
                    poll(0.01)
            sent_ns[sent] = now
            sent += 1
        pacer.sent += due
        poll(0)
    undelivered = producer.flush(_FLUSH_TIMEOUT_S)
    report = GeneratorReport(
        prefix=prefix,
        start_ns=start_ns,
        sent_ns=sent_ns[:sent],
        delivered=stats.delivered,
        failed=stats.failed,
        undelivered=undelivered,
        errors=stats.errors,
    )
    conn.send(("done", report))


def _generator_main(plan: GeneratorPlan, conn: Connection) -> None:
    """Process entry point: any failure goes back to the bench as text, not a traceback."""
    try:
        _send_on_schedule(plan, conn)
    except KeyboardInterrupt:
        conn.send(("error", "interrupted"))
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


class GeneratorHandle:
    """The bench's side of the generator process: its announcements and its report."""

    def __init__(self, process: Any, conn: Connection) -> None:
        self._process = process
        self._conn = conn
        self.report: GeneratorReport | None = None

    @property
    def pid(self) -> int | None:
        """The generator's process id, for CPU accounting."""
        pid: int | None = self._process.pid
        return pid

    def _receive(self, timeout_s: float) -> tuple[str, Any] | None:
        if not self._conn.poll(timeout_s):
            if not self._process.is_alive():
                raise InfraError(f"the generator exited with code {self._process.exitcode}")
            return None
        try:
            kind, body = self._conn.recv()
        except EOFError:
            raise InfraError("the generator exited without a report") from None
        if kind == "error":
            raise InfraError(f"the generator failed: {body}")
        return kind, body

    def wait_ready(self, timeout_s: float = 120.0) -> str:
        """Block until the generator is about to send; returns the run's tx_id prefix."""
        message = self._receive(timeout_s)
        if message is None or message[0] != "ready":
            raise InfraError(f"the generator did not start within {timeout_s:.0f}s")
        return str(message[1])

    def poll_done(self) -> GeneratorReport | None:
        """The final report once sending and flushing are over; ``None`` before that."""
        if self.report is None:
            message = self._receive(0)
            if message is not None and message[0] == "done":
                self.report = message[1]
        return self.report

    def stop(self, timeout_s: float = 10.0) -> None:
        """Wait for the process to end; terminate it if it does not (it is ours)."""
        self._process.join(timeout_s)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout_s)
        self._conn.close()


def start_generator(plan: GeneratorPlan) -> GeneratorHandle:
    """Start the generator in a fresh (spawned) interpreter; it starts sending when ready.

    Spawn, not fork: the bench already runs librdkafka threads, which a fork would copy
    in an undefined state.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_generator_main, args=(plan, sender), name="fraudstream-bench-generator"
    )
    process.start()
    sender.close()
    return GeneratorHandle(process, receiver)
