"""The load generators: separate processes sending transactions on one fixed schedule.

They run in their own processes so that neither the bench's consumer nor a slow system
can slow them down (open loop, no coordinated omission): each works out how many records
the schedule wants sent by now, and a late send makes the next burst larger rather than
shifting the schedule. Every record's Kafka timestamp (CreateTime) is set explicitly to
the send time recorded here, so the bench knows it exactly without reading the topic back.

At tens of thousands of records a second one Python process cannot afford to simulate
and JSON-encode each record as it sends it, so every payload is rendered and encoded
before the clock starts, with ``event_time`` last; at send time only its digits are
appended. Several generators share one schedule: generator ``g`` of ``G`` sends the
schedule's slots ``g, g + G, g + 2G, ...`` and numbers its own transactions
``<its prefix>0, 1, 2, ...``, so transaction ``j`` of generator ``g`` is slot ``g + j*G``.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
import time
from array import array
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from streams.exceptions import InfraError

__all__ = [
    "GeneratorGroup",
    "GeneratorPlan",
    "GeneratorReport",
    "Sent",
    "due_slots",
    "encode_template",
    "merge_reports",
    "start_generators",
    "with_event_time",
]

_NOT_SENT = frozenset({"label", "pattern", "event_time"})
_NS_PER_MS = 1_000_000
_FLUSH_TIMEOUT_S = 30.0
_PLACEHOLDER_END = b"0}"
_MAX_SLEEP_S = 0.05
#: Time given to every generator between "go" and the first slot, so all start together.
_GO_LEAD_NS = 200_000_000
_PRODUCER = {"delivery.report.only.error": True, "log_level": 3}


@dataclass(frozen=True)
class GeneratorPlan:
    """Generator ``index`` of ``generators`` sharing ``round(rate * duration_s)`` slots."""

    topic: str
    rate: float
    duration_s: float
    seed: int = 7
    users: int = 10_000
    merchants: int = 1_000
    generators: int = 1
    index: int = 0
    run_id: str = "bench"

    @property
    def events(self) -> int:
        """How many transactions the whole schedule holds (all generators)."""
        return round(self.rate * self.duration_s)

    @property
    def share(self) -> int:
        """How many of them this generator sends."""
        return len(range(self.index, self.events, self.generators))

    @property
    def prefix(self) -> str:
        """This generator's tx_id prefix: its transaction ``j`` is ``prefix + str(j)``."""
        return f"tx-{self.seed}-{self.run_id}-g{self.index}-n"

    @property
    def deadline_s(self) -> float:
        """Sending stops here even if behind schedule, so a starved generator still ends."""
        return self.duration_s * 1.5 + 5.0

    def split(self) -> list[GeneratorPlan]:
        """One plan per generator."""
        return [replace(self, index=index) for index in range(self.generators)]


def due_slots(elapsed_s: float, rate: float, index: int, generators: int) -> int:
    """How many of generator ``index``'s slots are due ``elapsed_s`` after the start.

    Slot ``k`` of the schedule is due at ``(k + 1) / rate``; generator ``index`` owns the
    slots ``index + j * generators``.
    """
    passed = math.floor(elapsed_s * rate)  # slots 0 .. passed-1 are due
    if passed <= index:
        return 0
    return (passed - index - 1) // generators + 1


def encode_template(event: dict[str, object], tx_id: str) -> tuple[bytes, bytes]:
    """The key and the payload head of a simulator row, to be finished at send time.

    The payload is the row as ``fraudstream produce`` sends it (without the simulator's
    ``label`` and ``pattern``, or null fields), with ``tx_id`` replaced and ``event_time``
    last and left open: :func:`with_event_time` appends its digits.
    """
    payload = {k: v for k, v in event.items() if v is not None and k not in _NOT_SENT}
    payload["tx_id"] = tx_id
    payload["event_time"] = 0
    encoded = orjson.dumps(payload)
    if not encoded.endswith(b'"event_time":' + _PLACEHOLDER_END):
        raise InfraError("event_time is not the last field of the encoded payload")
    return str(payload["user_id"]).encode(), encoded[: -len(_PLACEHOLDER_END)]


def _tail(event_ms: int) -> bytes:
    return b"%d}" % event_ms


def with_event_time(head: bytes, event_ms: int) -> bytes:
    """A finished payload: ``head`` from :func:`encode_template` stamped ``event_ms``.

    ``event_time`` is the send time. The simulator's own timeline follows a population's
    natural rate (a few payments per user a day); a benchmark offers thousands a second
    from a population that fits in memory, which would run its event times hours ahead
    of the clock and into the DLQ (future event time). Re-stamping keeps every event
    "now", as live traffic is.
    """
    return head + _tail(event_ms)


@dataclass
class GeneratorReport:
    """What one generator sent: ``sent_ns[j]`` is the send time of its transaction ``j``."""

    index: int
    prefix: str
    start_ns: int
    sent_ns: NDArray[np.int64]
    delivered: int
    failed: int
    undelivered: int
    errors: list[str]
    encode_s: float


@dataclass
class Sent:
    """What all generators sent, on the schedule's numbering (slot ``k``: ``sent_ns[k]``).

    ``sent_ns`` stops at the first slot that was not sent (a generator past its deadline);
    ``beyond`` counts records sent after that hole, left out of every figure.
    """

    start_ns: int
    sent_ns: NDArray[np.int64]
    delivered: int
    failed: int
    undelivered: int
    errors: list[str]
    beyond: int
    each: list[dict[str, Any]]


def merge_reports(reports: list[GeneratorReport], events: int) -> Sent:
    """Interleave the generators' send times back onto the schedule's slots."""
    generators = len(reports)
    sent_ns = np.zeros(events, dtype=np.int64)
    done = np.zeros(events, dtype=bool)
    each = []
    for report in sorted(reports, key=lambda r: r.index):
        slots = np.arange(report.index, events, generators)[: report.sent_ns.size]
        sent_ns[slots] = report.sent_ns
        done[slots] = True
        span = float(report.sent_ns[-1] - report.sent_ns[0]) if report.sent_ns.size > 1 else 0
        each.append(
            {
                "sent": int(report.sent_ns.size),
                "send_rate_eps": round((report.sent_ns.size - 1) / span * 1e9, 1) if span else 0.0,
                "encode_s": report.encode_s,
            }
        )
    holes = np.flatnonzero(~done)
    contiguous = int(holes[0]) if holes.size else events
    return Sent(
        start_ns=min((r.start_ns for r in reports), default=0),
        sent_ns=sent_ns[:contiguous],
        delivered=sum(r.delivered for r in reports),
        failed=sum(r.failed for r in reports),
        undelivered=sum(r.undelivered for r in reports),
        errors=[error for r in reports for error in r.errors][:5],
        beyond=int(done[contiguous:].sum()),
        each=each,
    )


def _templates(plan: GeneratorPlan) -> tuple[list[bytes], list[bytes]]:
    """Keys and payload heads of this generator's share of the simulated stream.

    Every generator renders the same seeded stream and keeps its own slots, so the
    union of what they send is exactly the stream one generator would send.
    """
    from models.simulator import SimulatorConfig, live_events

    config = SimulatorConfig(users=plan.users, merchants=plan.merchants, seed=plan.seed)
    events = live_events(config, clock=lambda: datetime.now(tz=UTC))
    keys: list[bytes] = []
    heads: list[bytes] = []
    prefix = plan.prefix
    for j, event in enumerate(itertools.islice(events, plan.index, None, plan.generators)):
        if j == plan.share:
            break
        key, head = encode_template(event, f"{prefix}{j}")
        keys.append(key)
        heads.append(head)
    return keys, heads


def _send_on_schedule(plan: GeneratorPlan, conn: Connection) -> None:
    from confluent_kafka import Producer

    from streams.producing import DeliveryStats
    from streams.settings import Settings

    began = time.perf_counter()
    keys, heads = _templates(plan)
    # Delivery reports only for failures: a Python callback per record would cost more
    # than the send itself. Once flushed, every record not reported failed was delivered.
    producer = Producer(Settings().producer_config(**_PRODUCER))
    producer.list_topics(plan.topic, timeout=10)  # connect and learn leaders before the clock
    encode_s = time.perf_counter() - began
    stats = DeliveryStats()
    produce, poll, on_delivery = producer.produce, producer.poll, stats.on_delivery
    topic, rate, index, generators = plan.topic, plan.rate, plan.index, plan.generators
    total = plan.share
    sent_ns = array("q", bytes(8 * total))
    conn.send(("ready", plan.prefix))
    kind, start_ns = conn.recv()
    if kind != "go":
        raise InfraError(f"expected 'go', got {kind!r}")
    start = time.perf_counter() + (start_ns - time.time_ns()) / 1e9
    deadline = start + plan.deadline_s
    sent = 0
    stamp_ms, tail = -1, b""
    while sent < total:
        clock = time.perf_counter()
        if clock > deadline:
            break
        due = min(due_slots(clock - start, rate, index, generators), total)
        if due <= sent:
            next_at = start + (index + sent * generators + 1) / rate
            time.sleep(min(max(next_at - clock, 0.0), _MAX_SLEEP_S))
            continue
        for j in range(sent, due):
            now = time.time_ns()
            now_ms = now // _NS_PER_MS
            if now_ms != stamp_ms:
                stamp_ms, tail = now_ms, _tail(now_ms)
            while True:
                try:
                    produce(topic, heads[j] + tail, keys[j], timestamp=now_ms,
                            on_delivery=on_delivery)  # fmt: skip
                    break
                except BufferError:  # local queue full: the broker is the bottleneck
                    poll(0.01)
            sent_ns[j] = now
        sent = due
        poll(0)
    undelivered = producer.flush(_FLUSH_TIMEOUT_S)
    report = GeneratorReport(
        index=index,
        prefix=plan.prefix,
        start_ns=start_ns,
        sent_ns=np.frombuffer(sent_ns, dtype=np.int64)[:sent].copy(),
        delivered=sent - stats.failed - undelivered,
        failed=stats.failed,
        undelivered=undelivered,
        errors=stats.errors,
        encode_s=round(encode_s, 2),
    )
    conn.send(("done", report))


def _generator_main(plan: GeneratorPlan, conn: Connection) -> None:
    """Process entry point: any failure goes back to the bench as text, not a traceback."""
    try:
        _send_on_schedule(plan, conn)
    except KeyboardInterrupt:
        conn.send(("error", "interrupted"))
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


class _Generator:
    """The bench's side of one generator process."""

    def __init__(self, process: Any, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.report: GeneratorReport | None = None

    def receive(self, timeout_s: float) -> tuple[str, Any] | None:
        if not self.conn.poll(timeout_s):
            if not self.process.is_alive():
                raise InfraError(f"a generator exited with code {self.process.exitcode}")
            return None
        try:
            kind, body = self.conn.recv()
        except EOFError:
            raise InfraError("a generator exited without a report") from None
        if kind == "error":
            raise InfraError(f"a generator failed: {body}")
        return kind, body


class GeneratorGroup:
    """The bench's side of the generator processes: readiness, the common start, reports."""

    def __init__(self, generators: list[_Generator]) -> None:
        self._generators = generators

    @property
    def pids(self) -> list[int | None]:
        """The generators' process ids, for CPU accounting."""
        return [generator.process.pid for generator in self._generators]

    def wait_ready(self, timeout_s: float = 300.0) -> list[str]:
        """Block until every generator has encoded its share; returns their prefixes."""
        deadline = time.monotonic() + timeout_s
        prefixes = []
        for generator in self._generators:
            message = generator.receive(max(0.0, deadline - time.monotonic()))
            if message is None or message[0] != "ready":
                raise InfraError(f"the generators were not ready within {timeout_s:.0f}s")
            prefixes.append(str(message[1]))
        return prefixes

    def go(self) -> int:
        """Start the schedule shortly from now on every generator; returns its start (ns)."""
        start_ns = time.time_ns() + _GO_LEAD_NS
        for generator in self._generators:
            generator.conn.send(("go", start_ns))
        return start_ns

    def poll_done(self) -> list[GeneratorReport] | None:
        """Every generator's report once all have sent and flushed; ``None`` before that."""
        for generator in self._generators:
            if generator.report is None:
                message = generator.receive(0)
                if message is not None and message[0] == "done":
                    generator.report = message[1]
        reports = [generator.report for generator in self._generators]
        if any(report is None for report in reports):
            return None
        return [report for report in reports if report is not None]

    def stop(self, timeout_s: float = 10.0) -> None:
        """Wait for the processes to end; terminate those that do not (they are ours).

        Closing the pipe first ends a generator still waiting for "go" (a run that failed
        before the clock started) at once.
        """
        for generator in self._generators:
            generator.conn.close()
        for generator in self._generators:
            generator.process.join(timeout_s)
            if generator.process.is_alive():
                generator.process.terminate()
                generator.process.join(timeout_s)


def start_generators(plan: GeneratorPlan) -> GeneratorGroup:
    """Start ``plan.generators`` fresh (spawned) interpreters; they encode, then wait for go.

    Spawn, not fork: the bench already runs librdkafka threads, which a fork would copy
    in an undefined state.
    """
    context = multiprocessing.get_context("spawn")
    generators = []
    for part in plan.split():
        mine, theirs = context.Pipe(duplex=True)
        process = context.Process(
            target=_generator_main,
            args=(part, theirs),
            name=f"fraudstream-bench-generator-{part.index}",
        )
        process.start()
        theirs.close()
        generators.append(_Generator(process, mine))
    return GeneratorGroup(generators)
