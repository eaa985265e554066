"""Consumer lag per partition: how far each consumer is behind the end of its topics.

Lag is the first thing that moves when a service falls behind, well before latency
alerts fire on decisions that eventually get made. It is measured on a side thread with
the admin API (one ``ListOffsets`` request per round for every partition), against
positions the consumer reports:

- the scorer reads through Bytewax's Kafka source, which keeps its offsets in the
  recovery store rather than in Kafka, so the ``decode`` step records the next offset of
  every partition it reads (:class:`Positions`); a process reports only the partitions
  it has read from;
- the feedback service is a Kafka consumer group (Faust commits), so its positions are
  the group's committed offsets.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

import structlog
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from streams import metrics
from streams.logs import FailureLog
from streams.settings import Settings

__all__ = ["LagMonitor", "Positions", "committed_positions"]

_log = structlog.get_logger("lag")
_TIMEOUT_S = 5.0

#: (topic, partition) -> the offset of the next message the consumer will read.
PositionMap = dict[tuple[str, int], int]


class Positions:
    """Next offsets read by this process, written per message on the hot path.

    A plain dict write per message (atomic under the GIL); the lag thread takes a copy.
    """

    def __init__(self) -> None:
        self._next: PositionMap = {}

    def record(self, topic: str, partition: int, offset: int) -> None:
        """The message at ``offset`` was read: the next one is ``offset + 1``."""
        self._next[(topic, partition)] = offset + 1

    def snapshot(self) -> PositionMap:
        """A copy, safe to read while workers keep recording."""
        return dict(self._next)


def committed_positions(
    admin: AdminClient, group: str, topics: Iterable[str]
) -> Callable[[], PositionMap]:
    """A positions source for a consumer group: its committed offsets on ``topics``."""
    wanted = set(topics)

    def positions() -> PositionMap:
        request = [ConsumerGroupTopicPartitions(group)]
        future = admin.list_consumer_group_offsets(request, request_timeout=_TIMEOUT_S)[group]
        result = future.result(timeout=_TIMEOUT_S)
        return {
            (tp.topic, tp.partition): tp.offset
            for tp in result.topic_partitions
            if tp.topic in wanted and tp.offset >= 0  # negative: nothing committed yet
        }

    return positions


class LagMonitor:
    """Measures and exports ``fraud_consumer_lag_messages`` every ``interval_s``."""

    def __init__(
        self,
        settings: Settings,
        consumer: str,
        positions: Callable[[], PositionMap],
        *,
        admin: AdminClient | None = None,
    ) -> None:
        """``consumer`` is the metric's label (scorer, feedback); ``positions`` its offsets."""
        self._admin = admin or AdminClient(settings.kafka_config())
        self._consumer = consumer
        self._positions = positions
        self._interval_s = settings.lag_interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lag-{consumer}", daemon=True)
        self._failures = FailureLog(_log, "lag_not_measured", step="lag")

    def start(self) -> LagMonitor:
        """Measure on a daemon thread until :meth:`stop`."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop measuring (idempotent)."""
        self._stop.set()

    def measure(self) -> PositionMap:
        """One round: the lag of every known partition, also set on the gauge."""
        positions = self._positions()
        if not positions:
            return {}
        request: dict[Any, Any] = {
            TopicPartition(topic, partition): OffsetSpec.latest()  # type: ignore[no-untyped-call]
            for topic, partition in positions
        }
        futures = self._admin.list_offsets(request, request_timeout=_TIMEOUT_S)
        lags: PositionMap = {}
        for tp, future in futures.items():
            end = future.result(timeout=_TIMEOUT_S).offset
            lag = max(0, end - positions[(tp.topic, tp.partition)])
            lags[(tp.topic, tp.partition)] = lag
            metrics.CONSUMER_LAG.labels(
                consumer=self._consumer, topic=tp.topic, partition=str(tp.partition)
            ).set(lag)
        return lags

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.measure()
            except (KafkaException, OSError, TimeoutError, KeyError) as exc:
                # The broker being away is what lag is for: keep trying, log on change.
                self._failures.failed(exc)
            else:
                self._failures.succeeded()
