"""Bytes of state per active user: the scorer's real stateful steps, measured in a fresh process.

The issue's target is "at most 1 KB of state per active user". What a user costs is what
the process holds for them, allocator and Bytewax bookkeeping included, so the figure is
an RSS difference, not a sum of ``sys.getsizeof``: a child process (nothing allocated
before pollutes it) runs the real scoring dataflow (``build_score_flow``: the real
``user_velocity``, ``merchant_velocity`` and ``dedupe_decisions`` steps and builders) on
``users`` distinct users with a few transactions each, and once the last decision is out,
every state still held, reads its RSS. Only the score step is a stand-in (no Redis, no
ONNX): it writes a decision payload shaped and sized like the engine's, which is what the
dedupe step keeps. See :data:`ACTIVE_USER` for what "active" means here.

The result: ``bytes_per_user`` (RSS delta / users) and ``breakdown_bytes_per_user``, whose
parts sum to it (sizes of sampled states scaled to all; ``bytewax_and_allocator`` is the
rest: Bytewax's per-key maps, interned-id tables, free lists); the run's shape (``users``,
``events_per_user``, ``events``, ``merchants``, ``lateness_ms``, ``dedupe_horizon_ms``,
``batch_size``, ``active_user``); ``rss_before_mb``, ``rss_after_mb``, ``rss_delta_mb``;
``python_state_bytes_per_user``; ``decision_payload_bytes``; ``gc_collected``;
``target_bytes_per_user``, ``meets_target``; ``cpu_seconds`` (child), ``seconds`` (wall).
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import sys
import time
import tracemalloc
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from multiprocessing.connection import Connection
from typing import Any, cast

import numpy as np
import orjson
import psutil
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import TestingSource, run_main
from rich.console import Console
from rich.progress import Progress as Bar

from models.simulator import merchants_for_users
from operators import stateful
from operators.engine import DECISION_FEATURES, FeaturedTx
from operators.velocity._size import deep_size
from schemas import Transaction
from schemas._types import format_timestamp
from streams.dataflow import FlowIO, build_score_flow, epoch_interval
from streams.exceptions import InfraError
from streams.settings import Settings

__all__ = ["ACTIVE_USER", "TARGET_BYTES_PER_USER", "main", "measure_bytes_per_user"]

Progress = Callable[[str, int, int], None]  # phase name, done, total

TARGET_BYTES_PER_USER = 1024
DEFAULT_EVENTS_PER_USER = 3
ACTIVE_USER = (
    "a user with events_per_user transactions at random times within the last hour of "
    "event time, streamed in time order, whose states every per-user step holds: the "
    "velocity state (kept 31 days after the user's last event) and the dedupe state (kept for "
    "the dedupe horizon after the user's last decision; the probe runs well within it)."
)
#: Largest input batch. Bytewax 0.21 scans every key's notification time at each activation
#: of a stateful step: the scorer's 500 would make a million users' run quadratic.
DEFAULT_BATCH = 50_000
_HOUR_MS, _CHUNK, _MB = 3_600_000, 20_000, 1024 * 1024
_SAMPLE = 20_000  # states per step walked for the breakdown
_PAUSE, _MAX_PAUSES = timedelta(milliseconds=20), 3000  # a minute for the last to drain
_STEPS = ((stateful.UserLogic, "user"), (stateful.MerchantLogic, "merchant"),
          (stateful.DedupeLogic, "dedupe"))  # fmt: skip
_CARD_PRESENT: dict[str, Any] = {"mcc": "5411", "currency": "EUR", "channel": "pos"}
_CITIES = (("DE", 52.52, 13.405), ("FR", 48.857, 2.352), ("ES", 40.417, -3.704),
           ("IT", 41.903, 12.496), ("GB", 51.507, -0.128), ("US", 40.713, -74.006))  # fmt: skip


def measure_bytes_per_user(
    users: int,
    *,
    events_per_user: int = DEFAULT_EVENTS_PER_USER,
    seed: int = 7,
    batch_size: int = DEFAULT_BATCH,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """RSS before/after and bytes per active user, from a fresh child process (keys: above)."""
    if min(users, events_per_user, batch_size) < 1:
        raise InfraError(
            f"users, events_per_user, batch_size must be >= 1: {users, events_per_user, batch_size}"
        )
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    args = (sender, users, events_per_user, seed, batch_size)
    child = context.Process(target=_child, args=args, name="memory-probe")
    started = time.perf_counter()
    child.start()
    sender.close()
    try:
        while True:
            try:
                message = receiver.recv()
            except EOFError:
                child.join()
                raise InfraError(f"the memory probe died (exit code {child.exitcode})") from None
            if message[0] == "progress" and progress is not None:
                progress(*message[1:])
            elif message[0] == "error":
                raise InfraError(f"the memory probe failed: {message[1]}")
            elif message[0] == "result":
                result = cast(dict[str, Any], message[1])
                result["seconds"] = round(time.perf_counter() - started, 1)
                return result
    finally:
        receiver.close()
        child.join(timeout=30)
        if child.is_alive():
            child.kill()
            child.join()


def _rss() -> int:  # bytes
    return int(psutil.Process().memory_info().rss)


def _child(conn: Connection, users: int, per_user: int, seed: int, batch: int) -> None:
    """The measurement itself, in a process that has allocated nothing else."""
    try:
        conn.send(("result", _measure(conn, users, per_user, seed, batch)))
    except Exception as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _measure(conn: Connection, users: int, per_user: int, seed: int, batch: int) -> dict[str, Any]:
    def report(phase: str, done: int, total: int) -> None:
        conn.send(("progress", phase, done, total))

    settings = Settings()
    merchants = merchants_for_users(users)
    events = users * per_user
    # At most a minute of event time a batch: the keyed steps regroup a batch by key, so a
    # wider batch would reorder a merchant's or a user's events beyond any real stream's.
    batch = max(1, min(batch, events // 60))
    finish = _Finish(events)
    steps = _StandInSteps()
    source = _transactions(users, per_user, merchants, seed, report, finish.measured)
    io = FlowIO(TestingSource(source, batch_size=batch), finish, _Finish(0))
    flow = build_score_flow(settings, io, cast(Any, steps))
    # Automatic collection only costs time: no cycles here (``gc_collected`` shows it).
    gc.collect()
    gc.disable()
    rss_before = _rss()
    run_main(flow, epoch_interval=epoch_interval(settings, recovery=False))  # type: ignore[no-untyped-call]
    if finish.rss_after is None:
        raise RuntimeError(f"only {finish.seen} of {events} decisions came out")
    report("breakdown", 0, 1)
    delta = finish.rss_after - rss_before
    parts = _breakdown(finish.states, settings, users, merchants)
    parts["bytewax_and_allocator"] = delta - sum(parts.values())
    per_user_parts = {name: round(value / users, 1) for name, value in parts.items()}
    report("breakdown", 1, 1)
    return {
        "users": users,
        "events_per_user": per_user,
        "events": events,
        "merchants": merchants,
        "active_user": ACTIVE_USER,
        "lateness_ms": settings.lateness_ms,
        "dedupe_horizon_ms": settings.dedupe_horizon_ms,
        "batch_size": batch,
        "rss_before_mb": round(rss_before / _MB, 1),
        "rss_after_mb": round(finish.rss_after / _MB, 1),
        "rss_delta_mb": round(delta / _MB, 1),
        "bytes_per_user": round(delta / users, 1),
        "breakdown_bytes_per_user": per_user_parts,
        "python_state_bytes_per_user": round((delta - parts["bytewax_and_allocator"]) / users, 1),
        "decision_payload_bytes": round(steps.payload_bytes / max(1, steps.payloads), 1),
        "gc_collected": finish.collected,
        "target_bytes_per_user": TARGET_BYTES_PER_USER,
        "meets_target": delta / users <= TARGET_BYTES_PER_USER,
        "cpu_seconds": round(time.process_time(), 1),
    }


def _transactions(
    users: int, per_user: int, merchants: int, seed: int, report: Progress, done: Callable[[], bool]
) -> Iterator[Any]:
    """``users * per_user`` featured transactions in event-time order, within the last hour.

    Handed over one by one (popped) and the columns freed before the last chunk, so that
    nothing here holds a transaction once the last decision is out.
    """
    rng = np.random.default_rng(seed)
    total = users * per_user
    anchor = int(time.time() * 1000)
    ago = rng.integers(0, _HOUR_MS, size=total)
    order = np.argsort(-ago, kind="stable")  # oldest first, as a live stream arrives
    columns: dict[str, Any] = {
        "time": anchor - ago[order],
        "user": order // per_user,
        "merchant": rng.integers(0, merchants, size=total),
        "cents": np.maximum(1, np.round(rng.lognormal(3.3, 1.0, size=total) * 100)).astype(int),
        "jitter": rng.normal(0.0, 0.05, size=(total, 2)),
    }
    del ago, order
    homes = rng.integers(0, len(_CITIES), size=users).tolist()
    user_width, merchant_width = len(str(users - 1)), len(str(merchants - 1))
    prefix = f"tx-{seed}-r{anchor:x}-n"
    for start in range(0, total, _CHUNK):
        stop = min(total, start + _CHUNK)
        rows = zip(*(columns[name][start:stop].tolist() for name in columns), strict=True)
        chunk: deque[Any] = deque()
        for n, (t, user, merchant, cents, (dlat, dlon)) in enumerate(rows, start):
            country, lat, lon = _CITIES[homes[user]]
            tx = Transaction.model_construct(
                tx_id=f"{prefix}{n}", user_id=f"u{user:0{user_width}d}",
                card_id=f"card-{user:08x}", device_id=f"dev-{user:08x}",
                merchant_id=f"m{merchant:0{merchant_width}d}", amount=Decimal(cents) / 100,
                country=country, lat=round(lat + dlat, 4), lon=round(lon + dlon, 4),
                event_time=datetime.fromtimestamp(t / 1000, UTC), **_CARD_PRESENT,
            )  # fmt: skip
            chunk.append(FeaturedTx(tx=tx, features={}, produced_ms=t, event_ms=t))
        if stop == total:
            columns.clear()
        report("stream", stop, total)
        while chunk:
            yield chunk.popleft()
    # Let the last items reach the sink, then stop: the final epoch's snapshots of every
    # key would only cost time (they come after the measurement).
    for _ in range(_MAX_PAUSES):
        if done():
            break
        yield TestingSource.PAUSE(_PAUSE)
    yield TestingSource.ABORT()


class _StandInSteps:
    """``ScoreSteps`` without Redis or ONNX: a decision payload shaped like the engine's."""

    def __init__(self) -> None:
        #: Every decision feature; those the flow did not compute (enrichment, labels) 0.0.
        self._features = dict.fromkeys(DECISION_FEATURES, 0.0)
        self.payloads = 0
        self.payload_bytes = 0

    def decode(self, item: Any) -> Any:
        return item  # the source hands over featured transactions already

    def score(self, batch: list[Any]) -> list[Any]:
        decided_at = format_timestamp(datetime.now(UTC))
        out = []
        for item in batch:
            tx = item.tx
            score = (item.event_ms % 997) / 997
            decision = {  # the engine's keys, in its order
                "schema_version": 1, "tx_id": tx.tx_id, "user_id": tx.user_id,
                "merchant_id": tx.merchant_id, "amount": format(tx.amount, "f"),
                "decision": "APPROVE", "score": score,
                "member_scores": {"xgboost": score, "logreg": score}, "shadow_scores": {},
                "model_version": "fraud-ensemble-20250101T000000Z", "rules_fired": [],
                "reasons": [], "features": {**self._features, **item.features},  # NaN: null
                "degraded": False, "degraded_cause": None,
                "event_time": format_timestamp(tx.event_time), "decided_at": decided_at,
                "latency_ms": 3.25,
            }  # fmt: skip
            payload = bytes(memoryview(orjson.dumps(decision)))  # as ScoreSteps.score does
            self.payloads += 1
            self.payload_bytes += len(payload)
            made = (tx.tx_id, tx.user_id, payload, item.event_ms, item.produced_ms, "APPROVE")
            out.append(stateful.DecidedTx(*made))
        return out

    def emit(self, batch: list[Any]) -> list[Any]:
        return [KafkaSinkMessage(item.user_id.encode(), item.payload) for item in batch]

    def dead_letter(self, item: Any) -> Any:
        raise RuntimeError(f"a dead letter in the memory probe: {item.error!r}")


class _Finish(DynamicSink[Any]):
    """A sink counting what it gets: at the ``expected``-th item, reads RSS, finds the states.

    Decisions go to one expecting every transaction; dead letters to one expecting none
    (the probe's transactions are all valid, so one would be a bug).
    """

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.seen = 0
        self.collected = 0
        self.rss_after: int | None = None
        self.states: dict[str, list[Any]] = {}

    def measured(self) -> bool:
        return self.rss_after is not None

    def build(self, step_id: str, worker_index: int, worker_count: int) -> Any:
        """One partition that counts what it is given."""
        finish = self

        class _Count(StatelessSinkPartition[Any]):
            def write_batch(self, items: list[Any]) -> None:
                finish.count(len(items))

        return _Count()

    def count(self, items: int) -> None:
        self.seen += items
        if self.seen > self.expected:
            raise RuntimeError(f"{self.seen} items in a probe sink expecting {self.expected}")
        if self.seen == self.expected:  # every state is still held: measure now
            self.collected = gc.collect()
            self.rss_after = _rss()
            # The logic objects Bytewax holds, by step (after the reading: free to allocate).
            kinds: dict[type, str] = dict(_STEPS)
            self.states = {kind: [] for kind in kinds.values()}
            for obj in gc.get_objects():
                kind = kinds.get(type(obj))
                if kind is not None:
                    self.states[kind].append(obj)


def _breakdown(
    states: dict[str, list[Any]], settings: Settings, users: int, merchants: int
) -> dict[str, int]:
    """Bytes by kind of state: the mean over a sample of each step's states, times their count.

    Strings are counted once: the tx_ids the dedupe step keys by (nothing else keeps them),
    the user and merchant ids once each (interned, shared by every state naming them).
    """

    def total(kind: str, size: Callable[[Any], int]) -> int:
        found = states[kind]
        chosen = np.random.default_rng(0).permutation(len(found))[:_SAMPLE].tolist()
        return round(sum(size(found[j]) for j in chosen) * len(found) / max(1, len(chosen)))

    def payloads(logic: stateful.DedupeLogic) -> int:
        return sum(sys.getsizeof(payload) for _, payload in logic.state.first.values())

    def index(logic: stateful.DedupeLogic) -> int:
        return deep_size(logic.state.first) - payloads(logic)

    lateness, horizon = settings.lateness_ms, settings.dedupe_horizon_ms
    shells = (  # (step, builder, the content a fresh logic holds, counted by its own part)
        ("user", stateful.build_user(lateness), _user_content),
        ("dedupe", stateful.build_dedupe(horizon), lambda s: deep_size(s.state.first)),
        ("merchant", stateful.build_merchant(lateness), lambda s: deep_size(s.state)),
    )  # fmt: skip
    return {
        "user_velocity": total("user", lambda logic: logic.state.velocity.approx_bytes()),
        "recent_ids": total("user", lambda logic: deep_size(logic.state.recent)),
        "dedupe_payloads": total("dedupe", payloads),
        "dedupe_index": total("dedupe", index),
        "tx_id_strings": total("dedupe", lambda logic: sum(map(sys.getsizeof, logic.state.first))),
        "merchant_velocity": total("merchant", lambda logic: logic.state.approx_bytes()),
        "logic_objects": round(sum(_shell(b, inner) * len(states[k]) for k, b, inner in shells)),
        "user_and_merchant_ids": users * sys.getsizeof(f"u{users - 1}")
        + merchants * sys.getsizeof(f"m{merchants - 1}"),
    }


def _user_content(logic: stateful.UserLogic) -> int:
    return deep_size(logic.state.velocity) + deep_size(logic.state.recent)


def _shell(builder: Callable[[None], Any], inner: Callable[[Any], int], n: int = 1000) -> float:
    """Traced bytes of a fresh logic object beyond its content (which its own part counts)."""
    tracemalloc.start()
    made = [builder(None) for _ in range(n)]
    traced = tracemalloc.get_traced_memory()[0] - sys.getsizeof(made)
    tracemalloc.stop()
    return (traced - sum(inner(logic) for logic in made)) / n


def main(argv: list[str] | None = None) -> int:
    """``python -m streams.bench._memory --users N``: the JSON on stdout, progress on stderr."""
    parser = argparse.ArgumentParser("python -m streams.bench._memory", description=main.__doc__)
    parser.add_argument("--users", type=int, default=100_000, help="active users")
    parser.add_argument("--events-per-user", type=int, default=DEFAULT_EVENTS_PER_USER)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    args = parser.parse_args(argv)
    with Bar(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("starting", total=None)

        def shown(phase: str, done: int, total: int) -> None:
            bar.update(task, description=phase, completed=done, total=total)

        result = measure_bytes_per_user(**vars(args), progress=shown)
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
