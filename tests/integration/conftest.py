"""Real servers for the integration tests: the local Kafka broker and Redis, started once.

``servers`` brings them up through the same code as ``fraudstream infra up`` and stops, at
the end of the session, only those it started itself (a developer's running servers are
left running). With FRAUD_KAFKA_BOOTSTRAP / FRAUD_REDIS_URL set, the tests use those
external servers instead and nothing local is started.

For the scoring flow: ``score_topics`` gives each test its own transactions, decisions and
DLQ topics, and ``model_dir`` a tiny trained ensemble, trained once per session.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from streams._redis_client import redis_client as connect_redis
from streams.infra import LocalKafka, LocalRedis, infra_up
from streams.settings import Settings
from tests.integration._feedback import FeedbackTopics
from tests.integration._scorer import ScoreTopics, create_topics, delete_topics


class TopicNotReadyError(Exception):
    """Metadata does not show every partition with a leader yet."""


@pytest.fixture(scope="session")
def servers() -> Iterator[Settings]:
    settings = Settings()
    local: list[LocalKafka | LocalRedis] = []
    if settings.kafka_is_local:
        local.append(LocalKafka(settings))
    if settings.redis_is_local:
        local.append(LocalRedis(settings))
    started_here = [server for server in local if server.process.pid() is None]
    statuses = infra_up(settings)
    not_running = [status for status in statuses if not status.running]
    if not_running:
        pytest.fail(f"servers not reachable: {[s.as_dict() for s in not_running]}")
    yield settings
    for server in started_here:
        server.stop()


@pytest.fixture
def topic(servers: Settings) -> Iterator[str]:
    """A fresh 6-partition topic, deleted afterwards; its leaders are known when it is yielded."""
    admin = AdminClient(servers.kafka_config())
    name = f"test-{uuid.uuid4().hex}"
    new = NewTopic(name, num_partitions=6, replication_factor=servers.replication_factor)
    admin.create_topics([new])[name].result(timeout=30)

    def leaders_known() -> None:
        partitions = admin.list_topics(topic=name, timeout=5).topics[name].partitions
        if len(partitions) != 6 or any(p.leader < 0 for p in partitions.values()):
            raise TopicNotReadyError(name)

    Retrying(
        stop=stop_after_delay(30),
        wait=wait_fixed(0.1),
        retry=retry_if_exception_type((TopicNotReadyError, KeyError, KafkaException)),
    )(leaders_known)
    yield name
    with contextlib.suppress(KafkaException):
        admin.delete_topics([name])[name].result(timeout=30)


@pytest.fixture
def redis_client(servers: Settings) -> Iterator[redis.Redis]:
    client = connect_redis(servers.redis_dsn)
    yield client
    client.close()


@pytest.fixture
def score_topics(servers: Settings) -> Iterator[ScoreTopics]:
    """A fresh transactions/decisions/dlq trio (6 partitions each), deleted afterwards."""
    topics = ScoreTopics.fresh()
    create_topics(servers, topics.names)
    yield topics
    delete_topics(servers, topics.names)


@pytest.fixture
def feedback_topics(servers: Settings) -> Iterator[FeedbackTopics]:
    """Fresh decisions and labels (3 partitions each, co-partitioned) and model-updates."""
    topics = FeedbackTopics.fresh()
    create_topics(servers, [topics.decisions, topics.labels], partitions=3)
    create_topics(servers, [topics.model_updates], partitions=1)
    yield topics
    delete_topics(servers, topics.names)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained ensemble (xgboost + logreg, ONNX), trained once per session."""
    from models.ensemble import XGBoostMember, train_ensemble
    from models.simulator import SimulatorConfig, simulate_history
    from models.training_set import build_training_set
    from operators.features import FEATURE_NAMES

    frame = simulate_history(SimulatorConfig(users=300, merchants=100, days=10, seed=1))
    training = build_training_set(frame)
    out = tmp_path_factory.mktemp("model")
    train_ensemble(
        training.features,
        training.labels,
        training.event_times,
        FEATURE_NAMES,
        out,
        members=[XGBoostMember(n_jobs=1), "logreg"],
    )
    return out
