"""``infra up / down / status`` over both servers, honouring external ones from settings.

A server given by ``FRAUD_KAFKA_BOOTSTRAP`` or ``FRAUD_REDIS_URL`` belongs to someone else:
nothing is started or stopped for it, only its reachability is reported.
"""

from __future__ import annotations

from streams.infra._kafka import LocalKafka, external_kafka_status
from streams.infra._redis import LocalRedis, external_redis_status
from streams.infra._status import Progress, ServerStatus, quiet
from streams.settings import Settings

__all__ = ["infra_down", "infra_status", "infra_up"]


def _external(status: ServerStatus, action: str) -> ServerStatus:
    note = f"external, {action}"
    message = f"{note}; {status.message}" if status.message else note
    return ServerStatus(
        status.name,
        status.address,
        status.mode,
        status.running,
        status.pid,
        status.version,
        message,
    )


def infra_up(settings: Settings, on_progress: Progress = quiet) -> list[ServerStatus]:
    """Start whichever local servers are not running yet (idempotent) and wait for them.

    Raises :class:`~streams.exceptions.InfraError` when a local server cannot be fetched
    or does not answer in time; an unreachable external server is reported, not raised.
    """
    results: list[ServerStatus] = []
    if settings.kafka_is_local:
        results.append(LocalKafka(settings).start(on_progress))
    else:
        on_progress(f"Checking external Kafka at {settings.bootstrap_servers}")
        results.append(_external(external_kafka_status(settings), "not started here"))
    if settings.redis_is_local:
        results.append(LocalRedis(settings).start(on_progress))
    else:
        on_progress("Checking external Redis")
        results.append(_external(external_redis_status(settings), "not started here"))
    return results


def infra_down(settings: Settings, on_progress: Progress = quiet) -> list[ServerStatus]:
    """Stop the local servers this state dir started; never touches external ones."""
    results: list[ServerStatus] = []
    if settings.kafka_is_local:
        on_progress("Stopping Kafka")
        results.append(LocalKafka(settings).stop())
    else:
        results.append(_external(external_kafka_status(settings), "left alone"))
    if settings.redis_is_local:
        on_progress("Stopping Redis")
        results.append(LocalRedis(settings).stop())
    else:
        results.append(_external(external_redis_status(settings), "left alone"))
    return results


def infra_status(settings: Settings) -> list[ServerStatus]:
    """Report both servers: address, whether they answer, pid (local ones) and version."""
    return [
        LocalKafka(settings).status()
        if settings.kafka_is_local
        else external_kafka_status(settings),
        LocalRedis(settings).status()
        if settings.redis_is_local
        else external_redis_status(settings),
    ]
