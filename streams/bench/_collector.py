"""The bench's reader of ``decisions`` and the DLQ: which transaction, when, how.

It starts at the current end of both topics, so that with an already-running scorer (and
its long-lived topics) nothing older than the run is counted, and keeps only records
whose ``tx_id`` carries one of the run's prefixes (one per generator). The tx_id is
sliced out of the JSON bytes rather than parsed: at tens of thousands of decisions a
second, a full parse of each 1-2 KB decision would make the bench, not the system under
test, the bottleneck.
"""

from __future__ import annotations

import time
import uuid
from array import array
from typing import Any

import numpy as np
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from numpy.typing import NDArray

from streams.bench._report import Observations
from streams.exceptions import InfraError
from streams.settings import Settings

__all__ = ["Collector", "degraded_cause", "split_tx_id"]

_TX_ID = b'"tx_id":"'
_DEGRADED = b'"degraded":true'
_CAUSE = b'"degraded_cause":"'
_BATCH = 5_000
_DIGITS = b"0123456789"
_END_TIMEOUT_S = 30.0


def degraded_cause(value: bytes) -> str:
    """Why a decision was made degraded ("" if it was not; "unknown" if it does not say)."""
    if _DEGRADED not in value:
        return ""
    start = value.find(_CAUSE)
    if start < 0:
        return "unknown"
    start += len(_CAUSE)
    return value[start : value.find(b'"', start)].decode("utf-8", errors="replace")


def split_tx_id(value: bytes) -> tuple[bytes, int] | None:
    """A record's tx_id as ``(prefix, number)`` when it ends in digits; else ``None``."""
    start = value.find(_TX_ID)
    if start < 0:
        return None
    start += len(_TX_ID)
    end = value.find(b'"', start)
    if end < 0:
        return None
    tx_id = value[start:end]
    prefix = tx_id.rstrip(_DIGITS)
    if len(prefix) == len(tx_id):
        return None
    return prefix, int(tx_id[len(prefix) :])


def _int64(values: array[int]) -> NDArray[np.int64]:
    return np.frombuffer(values, dtype=np.int64).copy() if values else np.zeros(0, np.int64)


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
        self._generator_of: dict[bytes, int] = {}  # prefix -> generator, set by expect()
        self._generators = 1
        self._probe_prefix = b"\x00"
        self._seen = bytearray()
        self.accounted = 0
        self.probes: set[int] = set()
        self.foreign = 0
        # machine integers, not Python ints: a sweep point may collect millions
        self._index = array("q")
        self._stamp_ms = array("q")
        self._received_ns = array("q")
        self._cause: list[str] = []
        self._dlq = array("q")
        self._dlq_received_ns = array("q")

    def _at_end(self, topic: str) -> list[TopicPartition]:
        metadata = self._consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise InfraError(f"topic {topic!r} does not exist")
        return [
            TopicPartition(topic, partition, self._high(topic, partition))
            for partition in metadata.partitions
        ]

    def _high(self, topic: str, partition: int) -> int:
        """The partition's end; a topic created a moment ago may not have a leader yet."""
        deadline = time.monotonic() + _END_TIMEOUT_S
        while True:
            try:
                _, high = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10
                )
                return int(high)
            except KafkaException as exc:
                if time.monotonic() > deadline:
                    raise InfraError(f"no end offset for {topic}[{partition}]: {exc}") from exc
                time.sleep(0.1)

    def expect(self, prefixes: list[str], events: int) -> None:
        """Count records of the schedule's ``events`` slots, sent by ``len(prefixes)``.

        Generator ``g`` (tx_ids ``prefixes[g] + str(j)``) sent slot ``g + j * G``.
        """
        self._generator_of = {prefix.encode(): g for g, prefix in enumerate(prefixes)}
        self._generators = len(prefixes)
        self._seen = bytearray(events)

    def expect_probes(self, prefix: str) -> None:
        """Also note decided warm-up probes ``prefix + str(n)`` (their ``n`` in ``probes``)."""
        self._probe_prefix = prefix.encode()

    @property
    def probes_decided(self) -> int:
        """How many distinct probes have a decision (or a dead letter)."""
        return len(self.probes)

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
        parts = split_tx_id(value)
        generator = None if parts is None else self._generator_of.get(parts[0])
        if parts is None or generator is None:
            if parts is not None and parts[0] == self._probe_prefix:
                self.probes.add(parts[1])
            else:
                self.foreign += 1
            return
        number = generator + parts[1] * self._generators
        if number >= len(self._seen):
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
            self._dlq_received_ns.append(received_ns)

    def observations(self, **run: Any) -> Observations:
        """What was collected, as arrays, with the run's parameters from ``run``.

        Records of slots at or past ``len(run["sent_ns"])`` (sent after a generator
        missed its deadline, see :class:`~streams.bench._generator.Sent`) are left out.
        """
        slots = len(run["sent_ns"])
        index, dlq = _int64(self._index), _int64(self._dlq)
        keep, keep_dlq = index < slots, dlq < slots
        return Observations(
            decision_index=index[keep],
            decision_ms=_int64(self._stamp_ms)[keep],
            received_ns=_int64(self._received_ns)[keep],
            decision_cause=np.asarray(self._cause, dtype=np.str_)[keep],
            dlq_index=dlq[keep_dlq],
            dlq_received_ns=_int64(self._dlq_received_ns)[keep_dlq],
            **run,
        )

    def close(self) -> None:
        """Leave without committing anything (the group is throwaway)."""
        self._consumer.close()
