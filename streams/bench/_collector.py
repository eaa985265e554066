"""The bench's reader of ``decisions`` and the DLQ: which transaction, when, how.

It starts at the current end of both topics, so that with an already-running scorer (and
its long-lived topics) nothing older than the run is counted, and keeps only records
whose ``tx_id`` carries the run's prefix. The tx_id is sliced out of the JSON bytes
rather than parsed: at tens of thousands of decisions a second, a full parse of each
1-2 KB decision would make the bench, not the scorer, the bottleneck.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import numpy as np
from confluent_kafka import Consumer, KafkaError, TopicPartition

from streams.bench._report import Observations
from streams.exceptions import InfraError
from streams.settings import Settings

__all__ = ["Collector", "degraded_cause", "tx_number"]

_TX_ID = b'"tx_id":"'
_DEGRADED = b'"degraded":true'
_CAUSE = b'"degraded_cause":"'
_BATCH = 5_000


def degraded_cause(value: bytes) -> str:
    """Why a decision was made degraded ("" if it was not; "unknown" if it does not say)."""
    if _DEGRADED not in value:
        return ""
    start = value.find(_CAUSE)
    if start < 0:
        return "unknown"
    start += len(_CAUSE)
    return value[start : value.find(b'"', start)].decode("utf-8", errors="replace")


def tx_number(value: bytes, prefix: bytes) -> int | None:
    """The number ``i`` of a record whose tx_id is ``prefix + str(i)``; else ``None``."""
    start = value.find(_TX_ID)
    if start < 0:
        return None
    start += len(_TX_ID)
    if not value.startswith(prefix, start):
        return None
    end = value.find(b'"', start)
    digits = value[start + len(prefix) : end]
    return int(digits) if digits.isdigit() else None


class Collector:
    """Consumes decisions and dead letters of one run and keeps their timings."""

    def __init__(self, settings: Settings, decisions_topic: str, dlq_topic: str) -> None:
        self._decisions_topic = decisions_topic
        self._consumer = Consumer(
            settings.kafka_config(
                **{
                    "group.id": f"fraudstream-bench-{uuid.uuid4().hex[:12]}",
                    "enable.auto.commit": False,
                    "enable.partition.eof": False,
                    "fetch.wait.max.ms": 5,
                    "log_level": 4,
                }
            )
        )
        decisions = self._at_end(decisions_topic)
        self.partitions = len(decisions)
        self._consumer.assign([*decisions, *self._at_end(dlq_topic)])
        self._prefix = b"\x00"  # matches nothing until the generator announces its prefix
        self._probe_prefix = b"\x00"
        self._seen = bytearray()
        self.accounted = 0
        self.probes_decided = 0
        self.foreign = 0
        self._index: list[int] = []
        self._stamp_ms: list[int] = []
        self._received_ns: list[int] = []
        self._cause: list[str] = []
        self._dlq: list[int] = []

    def _at_end(self, topic: str) -> list[TopicPartition]:
        metadata = self._consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise InfraError(f"topic {topic!r} does not exist")
        assignment = []
        for partition in metadata.partitions:
            _, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=10
            )
            assignment.append(TopicPartition(topic, partition, high))
        return assignment

    def expect(self, prefix: str, events: int) -> None:
        """Count records of transactions ``prefix + 0`` .. ``prefix + (events - 1)``."""
        self._prefix = prefix.encode()
        self._seen = bytearray(events)

    def expect_probes(self, prefix: str) -> None:
        """Also count decisions on warm-up probes whose tx_id starts with ``prefix``."""
        self._probe_prefix = prefix.encode()

    def pump(self, timeout_s: float = 0.05) -> int:
        """Read what has arrived (waiting at most ``timeout_s``); returns records read."""
        # consume(n, timeout) waits for n records or the timeout, which would add up to
        # timeout_s to every end-to-end time: wait for one record, then take what is there.
        first = self._consumer.poll(timeout_s)
        if first is None:
            return 0
        received_ns = time.time_ns()
        messages = [first, *self._consumer.consume(_BATCH, 0)]
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise InfraError(f"reading decisions: {error}")
            self._record(message, received_ns)
        return len(messages)

    def _record(self, message: Any, received_ns: int) -> None:
        value: bytes = message.value() or b""
        number = tx_number(value, self._prefix)
        if number is None or number >= len(self._seen):
            if tx_number(value, self._probe_prefix) is not None:
                self.probes_decided += 1
            else:
                self.foreign += 1
            return
        if not self._seen[number]:
            self._seen[number] = 1
            self.accounted += 1
        if message.topic() == self._decisions_topic:
            self._index.append(number)
            self._stamp_ms.append(message.timestamp()[1])
            self._received_ns.append(received_ns)
            self._cause.append(degraded_cause(value))
        else:
            self._dlq.append(number)

    def observations(self, **run: Any) -> Observations:
        """What was collected, as arrays, with the run's parameters from ``run``."""
        return Observations(
            decision_index=np.asarray(self._index, dtype=np.int64),
            decision_ms=np.asarray(self._stamp_ms, dtype=np.int64),
            received_ns=np.asarray(self._received_ns, dtype=np.int64),
            decision_cause=np.asarray(self._cause, dtype=np.str_),
            dlq_index=np.asarray(self._dlq, dtype=np.int64),
            **run,
        )

    def close(self) -> None:
        """Leave without committing anything (the group is throwaway)."""
        self._consumer.close()
