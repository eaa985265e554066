"""Helpers for the scoring-flow integration tests: topics, traffic, a ``fraudstream score`` child.

The scorer runs exactly as an operator runs it: the installed ``fraudstream score``
command in its own process (group), configured only through ``FRAUD_*`` variables, and
stopped with Ctrl-C (SIGINT) or, for crash tests, ``kill -9``. Reading a topic back
assigns every partition from the beginning (no consumer group, so no rebalance wait) and
stops at the end offsets taken when reading starts.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pandas as pd
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from models.simulator import SimulatorConfig, simulate_history
from schemas.history import transaction_payloads
from streams.producing import RecordProducer
from streams.settings import Settings
from tests.integration._children import ChildService
from tests.integration._traffic import Traffic

__all__ = [
    "FRAUDSTREAM",
    "PacedProducer",
    "Record",
    "ScoreTopics",
    "Scorer",
    "create_topics",
    "delete_topics",
    "following_scorer",
    "free_port",
    "isolated_events",
    "keyed",
    "model_info",
    "port_is_free",
    "produce",
    "read_all",
    "topic_size",
    "wait_serving",
    "wait_until",
]

FRAUDSTREAM = str(Path(sys.executable).with_name("fraudstream"))
T = TypeVar("T")


@dataclass(frozen=True)
class ScoreTopics:
    """A fresh trio of topics for one scorer: its input, its decisions, its dead letters."""

    transactions: str
    decisions: str
    dlq: str

    @classmethod
    def fresh(cls) -> ScoreTopics:
        tag = uuid.uuid4().hex
        return cls(f"test-tx-{tag}", f"test-decisions-{tag}", f"test-dlq-{tag}")

    def with_decisions(self, suffix: str) -> ScoreTopics:
        """The same input, other outputs: for two scorer runs over one input topic."""
        return ScoreTopics(self.transactions, f"{self.decisions}-{suffix}", f"{self.dlq}-{suffix}")

    @property
    def names(self) -> list[str]:
        return [self.transactions, self.decisions, self.dlq]


def wait_until(
    check: Callable[[], T],
    *,
    timeout_s: float,
    what: str,
    poll_s: float = 0.2,
    diagnose: Callable[[], str] = lambda: "",
) -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout_s:.0f}s waiting for {what}\n{diagnose()}"
            )
        time.sleep(poll_s)


def create_topics(settings: Settings, names: Iterable[str], partitions: int = 6) -> None:
    """Create topics and return once every partition of each has a leader."""
    admin = AdminClient(settings.kafka_config())
    wanted = list(names)
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=settings.replication_factor)
         for n in wanted]
    )  # fmt: skip
    for future in futures.values():
        future.result(timeout=30)

    def leaders_known() -> bool:
        try:
            topics = admin.list_topics(timeout=5).topics
        except KafkaException:
            return False
        for name in wanted:
            meta = topics.get(name)
            if meta is None or len(meta.partitions) != partitions:
                return False
            if any(p.leader < 0 for p in meta.partitions.values()):
                return False
        return True

    wait_until(leaders_known, timeout_s=30, poll_s=0.1, what=f"leaders of {wanted}")


def delete_topics(settings: Settings, names: Iterable[str]) -> None:
    """Delete topics, ignoring those already gone."""
    admin = AdminClient(settings.kafka_config())
    for future in admin.delete_topics(list(names)).values():
        with contextlib.suppress(KafkaException):
            future.result(timeout=30)


def free_port(count: int = 1) -> int:
    """A loopback port ``p`` with ``p .. p + count - 1`` all free right now."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base: int = probe.getsockname()[1]
        if base + count <= 65535 and all(port_is_free(base + i) for i in range(1, count)):
            return base
    raise AssertionError(f"no run of {count} free ports found")


def port_is_free(port: int) -> bool:
    """True when nothing is bound to the loopback ``port``."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _history(count: int, *, seed: int, users: int, merchants: int) -> pd.DataFrame:
    """At least ``count`` simulated rows: enough days for the population's activity."""
    days = max(1, math.ceil(count / (users * 3)))  # a user makes ~4 transactions a day
    while True:
        config = SimulatorConfig(users=users, merchants=merchants, days=days, seed=seed)
        frame = simulate_history(config)
        if len(frame) >= count:
            return frame
        days *= 2


def isolated_events(
    count: int,
    *,
    seed: int,
    tag: str,
    users: int = 300,
    merchants: int = 100,
    spacing: timedelta = timedelta(milliseconds=50),
) -> list[dict[str, Any]]:
    """The first ``count`` simulated transactions, as producers send them, ending now.

    Rows come from ``simulate_history`` in event-time order, re-stamped ``spacing`` apart
    with the last one now: traffic of the last minutes, inside every window, the dedupe
    horizon and the one-hour future limit. Every id that Redis could hold state for
    (user, card, device, merchant) and the tx_id are prefixed with ``tag``, so allow/deny
    lists or merchant risks written by other tests on the shared Redis cannot change
    these decisions.
    """
    frame = _history(count, seed=seed, users=users, merchants=merchants)
    start_ms = time.time_ns() // 1_000_000 - count * (spacing // timedelta(milliseconds=1))
    step_ms = spacing // timedelta(milliseconds=1)
    events = []
    for i, (_key, value) in enumerate(transaction_payloads(frame.head(count))):
        payload = orjson.loads(value)
        payload["event_time"] = start_ms + i * step_ms  # epoch ms, as `produce` sends it
        for field in ("tx_id", "user_id", "card_id", "device_id", "merchant_id"):
            if field in payload:
                payload[field] = f"{tag}-{payload[field]}"
        events.append(payload)
    return events


def produce(settings: Settings, topic: str, records: Iterable[tuple[bytes | None, bytes]]) -> int:
    """Send ``(key, value)`` records (acks=all, murmur2_random); all must be acknowledged."""
    producer = RecordProducer(settings, topic)
    sent = 0
    for key, value in records:
        producer.send(key, value)
        sent += 1
    undelivered = producer.flush(60)
    stats = producer.stats
    assert (undelivered, stats.failed, stats.delivered) == (0, 0, sent), stats.errors
    return sent


class PacedProducer(Traffic):
    """Live traffic: sends records at ``rate`` per second in a background thread.

    Use as a context manager; leaving it waits for the last record to be acknowledged
    and fails if any was not (a test's traffic must be acknowledged to be owed a decision).
    """

    def __init__(
        self, settings: Settings, topic: str, records: Iterable[tuple[bytes, bytes]], rate: float
    ) -> None:
        super().__init__("paced-producer")
        self._producer = RecordProducer(settings, topic)
        self._records = list(records)
        self._rate = rate
        self._finish_early = threading.Event()
        self.sent = 0

    def finish(self) -> None:
        """Stop sending now (records sent so far are still flushed and checked)."""
        self._finish_early.set()

    def send_all(self) -> None:
        for key, value in self.paced(self._records, self._rate):
            if self._finish_early.is_set():
                break
            self._producer.send(key, value)
            self.sent += 1
        self._producer.flush(60)

    def check(self) -> None:
        stats = self._producer.stats
        expected = self.sent if self._finish_early.is_set() else len(self._records)
        assert (stats.delivered, stats.failed) == (expected, 0), stats.errors


def keyed(events: Iterable[dict[str, Any]]) -> Iterator[tuple[bytes, bytes]]:
    """Valid events as Kafka records keyed by user_id."""
    for event in events:
        yield event["user_id"].encode(), orjson.dumps(event)


@dataclass(frozen=True)
class Record:
    """One consumed record."""

    key: bytes | None
    value: bytes
    headers: dict[str, str]
    partition: int
    offset: int


def _watermarks(consumer: Consumer, topic: str) -> dict[int, tuple[int, int]]:
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    return {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
        for p in partitions
    }


def topic_size(settings: Settings, topic: str) -> int:
    """Records in ``topic`` (its topics are fresh, so the sum of the high watermarks)."""
    consumer = Consumer(settings.kafka_config(**{"group.id": f"test-size-{uuid.uuid4().hex}"}))
    try:
        return sum(high for _low, high in _watermarks(consumer, topic).values())
    finally:
        consumer.close()


def read_all(settings: Settings, topic: str, timeout_s: float = 60) -> list[Record]:
    """Every record of ``topic`` up to its end offsets now, in partition/offset order."""
    consumer = Consumer(
        settings.kafka_config(
            **{
                "group.id": f"test-read-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
            }
        )
    )
    try:
        marks = _watermarks(consumer, topic)
        remaining = {p: high for p, (low, high) in marks.items() if high > low}
        consumer.assign([TopicPartition(topic, p, low) for p, (low, _high) in marks.items()])
        records: list[Record] = []
        deadline = time.monotonic() + timeout_s
        while remaining:
            assert time.monotonic() < deadline, f"reading {topic}: {remaining} not reached"
            for message in consumer.consume(1000, 0.5):
                error = message.error()
                assert error is None, f"reading {topic}: {error}"
                partition, offset = message.partition(), message.offset()
                assert partition is not None and offset is not None
                if partition not in remaining or offset >= remaining[partition]:
                    continue
                headers = {
                    name: raw.decode() if isinstance(raw, bytes) else str(raw or "")
                    for name, raw in message.headers() or []
                }
                records.append(
                    Record(message.key(), message.value() or b"", headers, partition, offset)
                )
                if offset + 1 >= remaining[partition]:
                    del remaining[partition]
        records.sort(key=lambda r: (r.partition, r.offset))
        return records
    finally:
        consumer.close()


class Scorer(ChildService):
    """``fraudstream score`` as a child process group, pointed at ``topics`` through FRAUD_*.

    Use as a context manager: leaving it stops the scorer (SIGINT, then SIGKILL of the
    whole group after ``stop_timeout_s``), also when the test failed. Its output goes to
    ``log_path``; :meth:`log_tail` shows the end of it in failure messages.
    """

    name = "scorer"

    def __init__(
        self,
        topics: ScoreTopics,
        log_path: Path,
        *,
        model_dir: Path | None,
        processes: int = 1,
        workers: int = 1,
        recovery_dir: Path | None = None,
        env: dict[str, str] | None = None,
        stop_timeout_s: float = 30,
    ) -> None:
        self.topics = topics
        self.processes = processes
        metrics_port = free_port(processes)
        settings_env = {
            **os.environ,
            "FRAUD_TOPIC_TRANSACTIONS": topics.transactions,
            "FRAUD_TOPIC_DECISIONS": topics.decisions,
            "FRAUD_TOPIC_DLQ": topics.dlq,
            "FRAUD_METRICS_PORT": str(metrics_port),
            "FRAUD_SNAPSHOT_INTERVAL_S": "1",
            # A busy 2-core test machine must not turn into degraded decisions: the tests
            # compare scores, so the model and Redis get generous time budgets.
            "FRAUD_MODEL_BUDGET_MS": "10000",
            "FRAUD_REDIS_TIMEOUT_MS": "2000",
            **(env or {}),
        }
        if model_dir is not None:
            settings_env["FRAUD_MODEL_DIR"] = str(model_dir)
        args = [
            FRAUDSTREAM, "score", "--processes", str(processes), "--workers", str(workers),
        ]  # fmt: skip
        if recovery_dir is not None:
            args += ["--recovery-dir", str(recovery_dir)]
        super().__init__(
            args, settings_env, log_path, metrics_port=metrics_port, stop_timeout_s=stop_timeout_s
        )


def following_scorer(
    topics: ScoreTopics, log: Path, updates_topic: str, registry: Path, **env: str
) -> Scorer:
    """A scorer without FRAUD_MODEL_DIR: its models come from ``updates_topic``/``registry``."""
    return Scorer(
        topics,
        log,
        model_dir=None,
        env={
            "FRAUD_TOPIC_MODEL_UPDATES": updates_topic,
            "FRAUD_REGISTRY_DIR": str(registry),
            **env,
        },
    )


def model_info(scorer: Scorer) -> dict[tuple[str, str], float]:
    """``fraud_model_info`` samples served by the scorer: (version, role) -> value."""
    try:
        samples = scorer.metric("fraud_model_info")
    except OSError:
        return {}
    return {
        (dict(labels)["version"], dict(labels)["role"]): value for labels, value in samples.items()
    }


def wait_serving(
    scorer: Scorer, version: str, previous: str | None = None, role: str = "champion"
) -> None:
    """Until the scorer's metrics say ``version`` serves ``role`` (and ``previous`` does not)."""

    def serving() -> bool:
        scorer.assert_running()
        info = model_info(scorer)
        swapped = previous is None or info.get((previous, role)) == 0
        return info.get((version, role)) == 1 and swapped

    wait_until(
        serving,
        timeout_s=120,
        what=f"{role} {version}",
        diagnose=lambda: f"{model_info(scorer)}\n{scorer.log_tail()}",
    )
