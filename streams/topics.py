"""The topics of the architecture page, created idempotently with confluent_kafka.admin."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from streams.exceptions import TopicError
from streams.settings import Settings

__all__ = ["TopicSpec", "create_topics", "ensure_topics", "topic_specs"]

_DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    """What a topic should look like: name, partitions and its configuration."""

    name: str
    partitions: int
    config: dict[str, str]


def topic_specs(settings: Settings, partitions: int | None = None) -> list[TopicSpec]:
    """All five topics. Keyed topics share one partition count so joins stay co-partitioned."""
    count = partitions or settings.partitions
    retention = {"retention.ms": str(settings.retention_ms)}
    return [
        TopicSpec(settings.topic_transactions, count, retention),
        TopicSpec(settings.topic_decisions, count, retention),
        # Labels are the training data of tomorrow: keep them longer than the traffic.
        TopicSpec(settings.topic_labels, count, {"retention.ms": str(365 * _DAY_MS)}),
        TopicSpec(settings.topic_dlq, count, {"retention.ms": str(30 * _DAY_MS)}),
        # One live record per model role: compaction keeps the latest forever.
        TopicSpec(
            settings.topic_model_updates,
            1,
            {"cleanup.policy": "compact", "min.compaction.lag.ms": "0"},
        ),
    ]


def create_topics(
    settings: Settings, partitions: int | None = None, timeout_s: float = 30.0
) -> dict[str, str]:
    """Create missing topics; return ``{name: "created" | "exists"}``.

    An existing topic with a different partition count is reported, not changed: shrinking
    is impossible and growing would move keys to other partitions.
    """
    return ensure_topics(settings, topic_specs(settings, partitions), timeout_s)


def ensure_topics(
    settings: Settings, specs: list[TopicSpec], timeout_s: float = 30.0
) -> dict[str, str]:
    """Create those of ``specs`` that are missing; as :func:`create_topics` reports."""
    refusals: list[KafkaError] = []
    admin = AdminClient(settings.kafka_config(error_cb=_keep_refusals(refusals)))
    existing = _list_topics(admin, settings, refusals, timeout_s)
    outcome: dict[str, str] = {}
    missing = [spec for spec in specs if spec.name not in existing]
    for spec in specs:
        if spec.name in existing:
            actual = len(existing[spec.name].partitions)
            outcome[spec.name] = (
                "exists" if actual == spec.partitions else f"exists ({actual} partitions)"
            )
    if missing:
        futures = admin.create_topics(
            [
                NewTopic(
                    spec.name,
                    num_partitions=spec.partitions,
                    replication_factor=settings.replication_factor,
                    config=spec.config,
                )
                for spec in missing
            ],
            operation_timeout=timeout_s,
        )
        for name, future in futures.items():
            try:
                future.result(timeout=timeout_s)
                outcome[name] = "created"
            except KafkaException as exc:
                if exc.args and exc.args[0].name() == "TOPIC_ALREADY_EXISTS":
                    outcome[name] = "exists"
                else:
                    raise TopicError(f"cannot create topic {name}: {exc}") from exc
    return outcome


_REFUSALS = {KafkaError._AUTHENTICATION, KafkaError._SSL}


def _keep_refusals(refusals: list[KafkaError]) -> Any:
    """An ``error_cb`` that keeps the errors meaning "refused", not "not there yet"."""

    def keep(error: KafkaError) -> None:
        if error.code() in _REFUSALS:
            refusals.append(error)

    return keep


def _list_topics(
    admin: AdminClient, settings: Settings, refusals: list[KafkaError], timeout_s: float
) -> dict[str, Any]:
    """Topic metadata; a refused login or TLS handshake fails at once, with its own words.

    librdkafka keeps retrying a refused connection until the timeout and then reports a
    transport failure; polling in short steps lets the refusal surface in about a second.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return dict(admin.list_topics(timeout=min(1.0, timeout_s)).topics)
        except KafkaException as exc:
            admin.poll(0)  # serves error_cb: a refused login is reported there, not raised
            if refusals:
                what = (
                    "authentication" if refusals[0].code() == KafkaError._AUTHENTICATION else "TLS"
                )
                raise TopicError(
                    f"Kafka at {settings.bootstrap_servers} refused the connection "
                    f"({what} failed): {refusals[0].str()}; check FRAUD_KAFKA_SASL_* and "
                    "FRAUD_KAFKA_SSL_*"
                ) from exc
            if time.monotonic() >= deadline:
                raise TopicError(
                    f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}"
                ) from exc
