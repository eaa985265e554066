"""One benchmark run: servers, topics and scorer set up, load sent, decisions timed, cleanup.

Everything the run starts (servers, scorer, topics) it also stops or deletes, and every
wait is bounded: a scorer that falls behind or dies yields a report with the missing
decisions counted, not a hung terminal.
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psutil

from streams.bench._collector import Collector
from streams.bench._generator import GeneratorHandle, GeneratorPlan, start_generator
from streams.bench._report import summarise, warmup_for
from streams.bench._scorer import (
    ResourceSampler,
    ScorerProcess,
    find_running_scorer,
    start_scorer,
)
from streams.exceptions import InfraError
from streams.settings import Settings

__all__ = ["BenchConfig", "run_bench"]

Progress = Callable[[str], None]
_PROBE_EVERY_S = 0.25
_PROBE_TIMEOUT_S = 120.0
_TOPIC_TIMEOUT_S = 30.0
#: librdkafka's informational lines (e.g. purged queues at close) would litter the table.
_QUIET = {"log_level": 4}
#: Exit codes of a scorer that stopped as asked (Ctrl-C handled, or killed by SIGINT).
_CLEAN_EXITS = (0, 130, -2)


def _quiet(_message: str) -> None:
    return


@dataclass(frozen=True)
class BenchConfig:
    """What to run: an offered ``rate`` for ``duration_s`` and how to set the stage."""

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


def _machine() -> dict[str, Any]:
    """Where the figures come from: they mean little without the cores behind them."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


@contextlib.contextmanager
def _servers(settings: Settings, keep: bool, progress: Progress) -> Iterator[dict[str, int]]:
    """Start the local servers that are not running; stop those (only) at the end."""
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


def _probe_until_decided(settings: Settings, topic: str, collector: Collector) -> int:
    """Send probe transactions until the scorer decides one; returns how many were sent.

    Proves the scorer reads the run's topics, and gets its lazy start-up (model load,
    Redis connection, first fetch) out of the way before the clock starts.
    """
    from confluent_kafka import Producer

    prefix = f"bench-probe-{uuid.uuid4().hex[:12]}-"
    collector.expect_probes(prefix)
    producer = Producer(settings.producer_config(**_QUIET))
    deadline = time.monotonic() + _PROBE_TIMEOUT_S
    sent = 0
    while collector.probes_decided == 0:
        if time.monotonic() > deadline:
            raise InfraError(
                f"the scorer decided none of {sent} probe transactions on {topic!r} "
                f"within {_PROBE_TIMEOUT_S:.0f}s: is it reading that topic?"
            )
        payload = {
            "tx_id": f"{prefix}{sent}",
            "user_id": "bench-probe",
            "merchant_id": "bench-probe",
            "amount": "1.00",
            "currency": "EUR",
            "event_time": time.time_ns() // 1_000_000,
            "schema_version": 1,
        }
        producer.produce(topic, orjson.dumps(payload), b"bench-probe")
        producer.flush(5)
        sent += 1
        until = time.monotonic() + _PROBE_EVERY_S
        while time.monotonic() < until and collector.probes_decided == 0:
            collector.pump(0.05)
    return sent


def _stop_scorer(scorer: ScorerProcess, progress: Progress) -> None:
    """Stop the scorer started here; keep its log only if it did not stop cleanly."""
    started = time.monotonic()
    code = scorer.stop()
    if code in _CLEAN_EXITS and scorer.log_path is not None:
        scorer.log_path.unlink(missing_ok=True)
        progress(f"scorer stopped in {time.monotonic() - started:.1f}s")
    else:
        progress(f"scorer exited with code {code}; its log is {scorer.log_path}")


def _drive(
    settings: Settings,
    generator: GeneratorHandle,
    collector: Collector,
    sampler: ResourceSampler,
    scorer: ScorerProcess,
    plan: GeneratorPlan,
    drain_timeout_s: float,
) -> tuple[Any, float]:
    """Collect until every delivered record is accounted for or the drain time is up."""
    hard_stop = time.monotonic() + plan.deadline_s + drain_timeout_s + 60.0
    drain_until: float | None = None
    drain_started = 0.0
    while True:
        collector.pump(0.05)
        sampler.sample()
        report = generator.poll_done()
        now = time.monotonic()
        if report is not None:
            if drain_until is None:
                drain_until = now + drain_timeout_s
                drain_started = now
            if collector.accounted >= report.delivered or now > drain_until:
                return report, now - drain_started
        scorer.check_alive(settings.metrics_host)
        if now > hard_stop:
            raise InfraError("the generator did not finish; aborting the run")


def _scorer_section(
    scorer: ScorerProcess, sampler: ResourceSampler, handled: int
) -> dict[str, Any]:
    """The scorer's identity and footprint; CPU per decision is the figure that scales."""
    usage = sampler.summary().get("scorer", {})
    cpu_seconds = usage.get("cpu_seconds")
    return {
        "started_here": scorer.started_here,
        "pid": scorer.pid,
        "metrics_port": scorer.metrics_port,
        **usage,
        "cpu_us_per_decision": (
            round(cpu_seconds / handled * 1e6, 1) if cpu_seconds and handled else None
        ),
    }


def run_bench(
    settings: Settings, config: BenchConfig, on_progress: Progress = _quiet
) -> dict[str, Any]:
    """Run one benchmark and return its JSON document (see benchmarks/README.md)."""
    warmup_s = warmup_for(config.duration_s, config.warmup_s)
    started_at = datetime.now(tz=UTC).isoformat(timespec="seconds")
    with contextlib.ExitStack() as stack:
        server_pids = stack.enter_context(_servers(settings, config.keep_servers, on_progress))
        scorer = find_running_scorer(settings)
        if scorer is not None:
            on_progress(f"using the scorer already running (metrics port {scorer.metrics_port})")
            topics = {
                "transactions": settings.topic_transactions,
                "decisions": settings.topic_decisions,
                "dlq": settings.topic_dlq,
            }
        else:
            topics = stack.enter_context(
                _fresh_topics(settings, config.partitions, config.keep_topics, on_progress)
            )
            log_path = settings.state_dir / "bench" / f"scorer-{topics['transactions']}.log"
            on_progress(f"starting a scorer (log: {log_path})")
            scorer = start_scorer(settings, topics, log_path)
            stack.callback(_stop_scorer, scorer, on_progress)
        collector = Collector(settings, topics["decisions"], topics["dlq"])
        stack.callback(collector.close)
        probes = _probe_until_decided(settings, topics["transactions"], collector)
        on_progress(f"scorer is deciding (after {probes} probe(s)); sending for "
                    f"{config.duration_s:g}s at {config.rate:,.0f} tx/s")  # fmt: skip
        plan = GeneratorPlan(
            topic=topics["transactions"],
            rate=config.rate,
            duration_s=config.duration_s,
            seed=config.seed,
            users=config.users,
            merchants=config.merchants,
        )
        generator = start_generator(plan)
        stack.callback(generator.stop)
        sampler = ResourceSampler()
        sampler.watch("scorer", scorer.pid, children=True)
        for name, pid in server_pids.items():
            sampler.watch(name, pid)
        sampler.watch("generator", generator.pid)
        sampler.watch("bench", os.getpid())
        prefix = generator.wait_ready()
        collector.expect(prefix, plan.events)
        sampler.start_window()
        report, drained_in = _drive(
            settings, generator, collector, sampler, scorer, plan, config.drain_timeout_s
        )
        sampler.end_window()
        sampler.sample(force=True)
        observations = collector.observations(
            rate=config.rate,
            duration_s=config.duration_s,
            warmup_s=warmup_s,
            start_ns=report.start_ns,
            sent_ns=report.sent_ns,
            delivered=report.delivered,
            failed=report.failed,
        )
        result = summarise(observations)
        result["generator"] |= {"undelivered": report.undelivered, "errors": report.errors}
        result |= {
            "drain_s": round(drained_in, 2),
            "drain_timeout_s": config.drain_timeout_s,
            "scorer": _scorer_section(scorer, sampler, result["decisions"] + result["dlq"]),
            "processes": sampler.summary(),
            "busy_cores": sampler.busy_cores(),
            "topics": topics,
            "partitions": collector.partitions,
            "foreign_records": collector.foreign,
            "started_at": started_at,
            "machine": _machine(),
        }
    return result
