"""The topics of the architecture page, created idempotently with confluent_kafka.admin."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from streams.exceptions import TopicError
from streams.settings import Settings

__all__ = ["TopicSpec", "create_topics", "topic_specs"]

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
    admin = AdminClient(settings.kafka_config())
    specs = topic_specs(settings, partitions)
    try:
        existing = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise TopicError(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}") from exc
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
