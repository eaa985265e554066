"""Announcing registry alias changes to the scorers on the compacted ``model-updates`` topic.

The registry (:mod:`models.registry`) decides *what* to announce; this module is the
Kafka side, plugged into :class:`~models.registry.ModelRegistry` as its ``publish``
callback. Records are keyed by role (``champion`` / ``challenger``) so compaction keeps
the latest per role; a null value (tombstone) retires the challenger. Each publish
waits for the broker's acknowledgement: an alias change is reported as announced only
once a scorer could read it.
"""

from __future__ import annotations

from typing import cast

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from schemas import ModelUpdate, encode
from streams.exceptions import PublishError
from streams.producing import RecordProducer
from streams.settings import Settings

__all__ = ["KafkaModelPublisher"]


class KafkaModelPublisher:
    """A ``ModelRegistry`` publisher writing ``ModelUpdate`` records with ``RecordProducer``."""

    def __init__(self, settings: Settings, *, timeout_s: float = 15.0) -> None:
        self._settings = settings
        self._topic = settings.topic_model_updates
        self._timeout_s = timeout_s
        self.published: list[tuple[str, ModelUpdate | None]] = []

    @property
    def topic(self) -> str:
        """The topic records go to (``settings.topic_model_updates``)."""
        return self._topic

    def unreachable_reason(self, timeout_s: float = 5.0) -> str | None:
        """Why publishing cannot work right now (broker down, topic missing), or None.

        Asked before training so a run without Kafka skips publishing with a note
        instead of failing after the work is done.
        """
        admin = AdminClient(self._settings.kafka_config())
        try:
            topics = admin.list_topics(timeout=timeout_s).topics
        except KafkaException as exc:
            return f"Kafka at {self._settings.bootstrap_servers} is unreachable ({exc})"
        if self._topic not in topics:
            return f"topic {self._topic!r} does not exist (run `fraudstream topics create`)"
        return None

    def __call__(self, role: str, update: ModelUpdate | None) -> None:
        """Send one update (or a tombstone) and wait until the broker acknowledged it."""
        timeout_ms = int(self._timeout_s * 1000)
        producer = RecordProducer(
            self._settings,
            self._topic,
            **{"message.timeout.ms": timeout_ms, "linger.ms": 0},
        )
        # RecordProducer types values as bytes; confluent-kafka sends None as a tombstone.
        value = cast("bytes", None) if update is None else encode(update)
        producer.send(role.encode(), value)
        undelivered = producer.flush(self._timeout_s + 5.0)
        if undelivered or producer.stats.failed:
            errors = "; ".join(producer.stats.errors) or f"{undelivered} record(s) unacknowledged"
            raise PublishError(f"ModelUpdate for {role} not delivered to {self._topic}: {errors}")
        self.published.append((role, update))
