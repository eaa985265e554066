"""Reading a topic from the command line: a throwaway consumer that never commits.

Tail-style readers must not steal partitions from, or move the offsets of, the services'
consumer groups, so each one gets a unique group and no commits.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from streams.exceptions import InfraError
from streams.settings import Settings

__all__ = ["end_offsets", "read_topic"]


def read_topic(
    settings: Settings,
    topic: str,
    *,
    from_beginning: bool = False,
    max_messages: int | None = None,
    idle_timeout_s: float | None = None,
    stop: Callable[[], bool] | None = None,
    **overrides: Any,
) -> Iterator[Message]:
    """Yield messages of ``topic`` until a limit, a silence or ``stop()`` ends it.

    The limits are ``max_messages``, ``idle_timeout_s`` of silence, and ``stop()``
    (checked between polls).
    """
    consumer = Consumer(
        settings.kafka_config(
            **{
                "group.id": f"fraudstream-tail-{uuid.uuid4().hex[:12]}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest" if from_beginning else "latest",
                "enable.partition.eof": False,
                **overrides,
            }
        )
    )
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = metadata.topics.get(topic)
    if partitions is None or partitions.error is not None:
        consumer.close()
        raise InfraError(f"topic {topic!r} does not exist; run `fraudstream topics create`")
    consumer.subscribe([topic])
    seen = 0
    last_message_at = time.monotonic()
    try:
        while max_messages is None or seen < max_messages:
            message = consumer.poll(0.2)
            if stop is not None and stop():
                return
            if message is None:
                if (
                    idle_timeout_s is not None
                    and time.monotonic() - last_message_at > idle_timeout_s
                ):
                    return
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise InfraError(f"consuming {topic}: {error}")
            last_message_at = time.monotonic()
            seen += 1
            yield message
    finally:
        consumer.close()


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """High watermark per partition, to know how many records a topic holds."""
    consumer = Consumer(settings.kafka_config(**{"group.id": "fraudstream-offsets"}))
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        marks = {}
        for partition in metadata.partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            marks[partition] = high
        return marks
    finally:
        consumer.close()
