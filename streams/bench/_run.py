"""One benchmark run: servers, topics and system set up, load sent, decisions timed, cleanup.

Everything the run starts (servers, system under test, topics, generators) it also stops
or deletes, and every wait is bounded: a system that falls behind or dies yields a report
with the missing decisions counted, not a hung terminal. A sweep runs many points inside
one :func:`bench_servers` block, each a fresh system on fresh topics.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from streams.bench._collector import Collector
from streams.bench._generator import (
    GeneratorGroup,
    GeneratorPlan,
    Sent,
    merge_reports,
    start_generators,
)
from streams.bench._report import summarise, warmup_for
from streams.bench._resources import ResourceSampler, machine
from streams.bench._systems import SYSTEMS, SystemProcess, find_running_scorer, start_system
from streams.exceptions import InfraError
from streams.settings import Settings

__all__ = ["BenchConfig", "bench_servers", "generators_for", "run_bench", "run_point"]

Progress = Callable[[str], None]
_PROBE_EVERY_S = 0.25
_PROBE_TIMEOUT_S = 120.0
_TOPIC_TIMEOUT_S = 30.0
#: librdkafka's informational lines (e.g. purged queues at close) would litter the table.
_QUIET = {"log_level": 4}
#: Exit codes of a system that stopped as asked (Ctrl-C handled, or killed by SIGINT).
_CLEAN_EXITS = (0, 130, -2)
#: Rate per generator process: a quarter of what one reached alone here (see the README).
_EPS_PER_GENERATOR = 50_000


def _quiet(_message: str) -> None:
    return


@dataclass(frozen=True)
class BenchConfig:
    """What to run: an offered ``rate`` for ``duration_s`` and how to set the stage.

    ``system`` is one of :data:`~streams.bench._systems.SYSTEMS`; ``processes`` is the
    scorer's ``--processes``; ``generators`` ``None`` means one per 50,000 tx/s;
    ``reuse_running`` lets a fraudstream run use a scorer already serving ``/readyz``
    on ``FRAUD_METRICS_PORT`` (a sweep never does).
    """

    rate: float
    duration_s: float
    warmup_s: float | None = None
    drain_timeout_s: float = 30.0
    partitions: int = 6
    seed: int = 7
    users: int = 10_000
    merchants: int = 1_000
    keep_servers: bool = False
    keep_topics: bool = False
    system: str = "fraudstream"
    processes: int = 1
    generators: int | None = None
    reuse_running: bool = True


def generators_for(rate: float, requested: int | None = None) -> int:
    """Generator processes for ``rate``: as asked, else one per 50,000 tx/s."""
    if requested is not None:
        return max(1, requested)
    return max(1, math.ceil(rate / _EPS_PER_GENERATOR))


@contextlib.contextmanager
def bench_servers(settings: Settings, keep: bool, progress: Progress) -> Iterator[dict[str, int]]:
    """Start the local servers that are not running; stop those (only) at the end.

    Yields the pids of the local servers by name (for CPU accounting).
    """
    from streams.infra import LocalKafka, LocalRedis, infra_up

    local: list[LocalKafka | LocalRedis] = []
    if settings.kafka_is_local:
        local.append(LocalKafka(settings))
    if settings.redis_is_local:
        local.append(LocalRedis(settings))
    started_here = [server for server in local if server.process.pid() is None]
    for status in infra_up(settings, on_progress=progress):
        if not status.running:
            raise InfraError(f"{status.name} is not reachable at {status.address}")
    pids = {server.name: server.process.pid() for server in local}
    try:
        yield {name: pid for name, pid in pids.items() if pid is not None}
    finally:
        if not keep:
            for server in started_here:
                progress(f"stopping {server.name} (started by the bench)")
                server.stop()


@contextlib.contextmanager
def _fresh_topics(
    settings: Settings, partitions: int, keep: bool, progress: Progress
) -> Iterator[dict[str, str]]:
    """Three uuid-named topics for this run only, deleted afterwards unless ``keep``."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    run = uuid.uuid4().hex[:12]
    names = {role: f"bench-{run}-{role}" for role in ("transactions", "decisions", "dlq")}
    admin = AdminClient(settings.kafka_config(**_QUIET))
    futures = admin.create_topics(
        [
            NewTopic(
                name, num_partitions=partitions, replication_factor=settings.replication_factor
            )
            for name in names.values()
        ]
    )
    for future in futures.values():
        future.result(timeout=_TOPIC_TIMEOUT_S)
    deadline = time.monotonic() + _TOPIC_TIMEOUT_S
    while not _leaders_known(admin, list(names.values()), partitions):
        if time.monotonic() > deadline:
            raise InfraError(f"topics {sorted(names.values())} have no leaders")
        time.sleep(0.1)
    progress(f"created topics {', '.join(names.values())} ({partitions} partitions)")
    try:
        yield names
    finally:
        if not keep:
            with contextlib.suppress(KafkaException):
                for future in admin.delete_topics(list(names.values())).values():
                    future.result(timeout=_TOPIC_TIMEOUT_S)


def _leaders_known(admin: Any, names: list[str], partitions: int) -> bool:
    topics = admin.list_topics(timeout=5).topics
    for name in names:
        parts = topics[name].partitions if name in topics else {}
        if len(parts) != partitions or any(part.leader < 0 for part in parts.values()):
            return False
    return True


def _partitions(producer: Any, topic: str) -> int:
    found = producer.list_topics(topic, timeout=10).topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise InfraError(f"topic {topic!r} does not exist")
    return len(found.partitions)


def _probe_until_decided(settings: Settings, topic: str, collector: Collector) -> int:
    """Send probe transactions until one from every partition is decided; returns how many.

    Proves the system reads every partition of the run's topic (with several scorer
    processes, each its own share), and gets its lazy start-up (model load, Redis
    connection, first fetch, group assignment) out of the way before the clock starts.
    Probe ``n`` goes to partition ``n % partitions``.
    """
    from confluent_kafka import Producer

    producer = Producer(settings.producer_config(**_QUIET))
    partitions = _partitions(producer, topic)
    prefix = f"bench-probe-{uuid.uuid4().hex[:12]}-"
    collector.expect_probes(prefix)
    deadline = time.monotonic() + _PROBE_TIMEOUT_S
    sent = 0

    def answered() -> bool:
        return len({number % partitions for number in collector.probes}) == partitions

    while not answered():
        if time.monotonic() > deadline:
            raise InfraError(
                f"the system decided {collector.probes_decided} of {sent} probe transactions "
                f"on {topic!r} within {_PROBE_TIMEOUT_S:.0f}s, not one from each of its "
                f"{partitions} partitions: is it reading that topic?"
            )
        for partition in range(partitions):
            payload = {
                "tx_id": f"{prefix}{sent}",
                "user_id": "bench-probe",
                "merchant_id": "bench-probe",
                "amount": "1.00",
                "currency": "EUR",
                "event_time": time.time_ns() // 1_000_000,
                "schema_version": 1,
            }
            producer.produce(topic, orjson.dumps(payload), b"bench-probe", partition=partition)
            sent += 1
        producer.flush(5)
        until = time.monotonic() + _PROBE_EVERY_S
        while time.monotonic() < until and not answered():
            collector.pump(0.05)
    return sent


def _stop_system(system: SystemProcess, progress: Progress) -> None:
    """Stop the system started here; keep its log only if it did not stop cleanly."""
    started = time.monotonic()
    code = system.stop()
    if code in _CLEAN_EXITS and system.log_path is not None:
        system.log_path.unlink(missing_ok=True)
        progress(f"{system.name} stopped in {time.monotonic() - started:.1f}s")
    else:
        progress(f"{system.name} exited with code {code}; its log is {system.log_path}")


def _drive(
    settings: Settings,
    generators: GeneratorGroup,
    collector: Collector,
    sampler: ResourceSampler,
    system: SystemProcess,
    plan: GeneratorPlan,
    drain_timeout_s: float,
) -> tuple[Sent, float]:
    """Collect until every delivered record is accounted for or the drain time is up."""
    hard_stop = time.monotonic() + plan.deadline_s + drain_timeout_s + 60.0
    drain_until: float | None = None
    drain_started = 0.0
    sent: Sent | None = None
    while True:
        collector.pump(0.05)
        sampler.sample()
        if sent is None and (reports := generators.poll_done()) is not None:
            sent = merge_reports(reports, plan.events)
        now = time.monotonic()
        if sent is not None:
            if drain_until is None:
                drain_until = now + drain_timeout_s
                drain_started = now
            if collector.accounted >= sent.delivered or now > drain_until:
                return sent, now - drain_started
        system.check_alive(settings.metrics_host)
        if now > hard_stop:
            raise InfraError("the generators did not finish; aborting the run")


def _system_section(
    system: SystemProcess, sampler: ResourceSampler, handled: int
) -> dict[str, Any]:
    """The system's identity and footprint; CPU per decision is the figure that scales."""
    usage = sampler.summary().get(system.name, {})
    cpu_seconds = usage.get("cpu_seconds")
    return {
        "name": system.name,
        "started_here": system.started_here,
        "pid": system.pid,
        "processes": system.processes,
        "metrics_ports": list(system.metrics_ports),
        **usage,
        "cpu_us_per_decision": (
            round(cpu_seconds / handled * 1e6, 1) if cpu_seconds and handled else None
        ),
    }


def _system(
    settings: Settings, config: BenchConfig, stack: contextlib.ExitStack, progress: Progress
) -> tuple[SystemProcess, dict[str, str]]:
    """The system under test and its topics: a running scorer's, or fresh ones."""
    if config.system not in SYSTEMS:
        raise InfraError(f"unknown system {config.system!r}: choose from {', '.join(SYSTEMS)}")
    if config.system == "fraudstream" and config.reuse_running:
        running = find_running_scorer(settings)
        if running is not None:
            progress(f"using the scorer already running (metrics port {running.metrics_ports[0]})")
            return running, {
                "transactions": settings.topic_transactions,
                "decisions": settings.topic_decisions,
                "dlq": settings.topic_dlq,
            }
    topics = stack.enter_context(
        _fresh_topics(settings, config.partitions, config.keep_topics, progress)
    )
    log_path = settings.state_dir / "bench" / f"{config.system}-{topics['transactions']}.log"
    processes = f" with {config.processes} processes" if config.processes > 1 else ""
    progress(f"starting {config.system}{processes} (log: {log_path})")
    system = start_system(
        config.system,
        settings,
        topics,
        log_path,
        processes=config.processes,
        on_progress=progress,
    )
    stack.callback(_stop_system, system, progress)
    return system, topics


def run_bench(
    settings: Settings, config: BenchConfig, on_progress: Progress = _quiet
) -> dict[str, Any]:
    """Run one benchmark and return its JSON document (see benchmarks/README.md)."""
    with bench_servers(settings, config.keep_servers, on_progress) as server_pids:
        return run_point(settings, config, server_pids, on_progress)


def run_point(
    settings: Settings,
    config: BenchConfig,
    server_pids: dict[str, int],
    on_progress: Progress = _quiet,
) -> dict[str, Any]:
    """One run with the servers already up (``server_pids`` from :func:`bench_servers`)."""
    warmup_s = warmup_for(config.duration_s, config.warmup_s)
    started_at = datetime.now(tz=UTC).isoformat(timespec="seconds")
    with contextlib.ExitStack() as stack:
        system, topics = _system(settings, config, stack, on_progress)
        plan = GeneratorPlan(
            topic=topics["transactions"],
            rate=config.rate,
            duration_s=config.duration_s,
            seed=config.seed,
            users=config.users,
            merchants=config.merchants,
            generators=generators_for(config.rate, config.generators),
            run_id=uuid.uuid4().hex[:12],
        )
        generators = start_generators(plan)  # they encode while the system starts up
        stack.callback(generators.stop)
        collector = Collector(settings, topics["decisions"], topics["dlq"])
        stack.callback(collector.close)
        probes = _probe_until_decided(settings, topics["transactions"], collector)
        prefixes = generators.wait_ready()
        on_progress(f"{system.name} is deciding (after {probes} probes); sending for "
                    f"{config.duration_s:g}s at {config.rate:,.0f} tx/s from "
                    f"{plan.generators} generator(s)")  # fmt: skip
        sampler = ResourceSampler()
        sampler.watch(system.name, system.pid, children=True)
        for name, pid in server_pids.items():
            sampler.watch(name, pid)
        sampler.watch("generator", generators.pids)
        sampler.watch("bench", os.getpid())
        collector.expect(prefixes, plan.events)
        sampler.start_window()
        generators.go()
        sent, drained_in = _drive(
            settings, generators, collector, sampler, system, plan, config.drain_timeout_s
        )
        sampler.end_window()
        sampler.sample(force=True)
        observations = collector.observations(
            rate=config.rate,
            duration_s=config.duration_s,
            warmup_s=warmup_s,
            start_ns=sent.start_ns,
            sent_ns=sent.sent_ns,
            delivered=sent.delivered,
            failed=sent.failed,
        )
        result = summarise(observations)
        result["generator"] |= {
            "processes": plan.generators,
            "each": sent.each,
            "undelivered": sent.undelivered,
            "sent_after_a_missed_slot": sent.beyond,
            "errors": sent.errors,
        }
        result |= {
            "drain_s": round(drained_in, 2),
            "drain_timeout_s": config.drain_timeout_s,
            "system": _system_section(system, sampler, result["decisions"] + result["dlq"]),
            "processes": sampler.summary(),
            "busy_cores": sampler.busy_cores(),
            "topics": topics,
            "partitions": collector.partitions,
            "foreign_records": collector.foreign,
            "started_at": started_at,
            "machine": machine(),
        }
    return result
