"""CPU per transaction of the scoring dataflow alone, without Kafka's noise.

The real ``build_score_flow`` with the real steps, the local Redis and the model of
``FRAUD_MODEL_DIR``, fed pre-encoded Kafka messages from a testing source in batches like
the Kafka source's, written to a testing sink. CPU time of the run divided by the
transactions; the scorer's GC tuning applies unless ``--python-gc``. Needs the local
Redis (``fraudstream infra up``) and a model; decisions are cached in Redis for 15 min.

    FRAUD_MODEL_DIR=.fraudstream/demo/model .venv/bin/python benchmarks/scorer_cpu.py
    FRAUD_MODEL_DIR=... py-spy record --format raw -o cpu.txt -- .venv/bin/python \\
        benchmarks/scorer_cpu.py --events 60000        # the profile behind the README
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import time
from datetime import UTC, datetime, timedelta

import orjson
from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.testing import TestingSink, TestingSource, run_main

from models.simulator import SimulatorConfig, live_events
from streams._score_steps import ScoreSteps
from streams.dataflow import FlowIO, build_score_flow
from streams.scorer import tune_gc
from streams.settings import Settings

_NOT_SENT = ("label", "pattern")


def _messages(events: int, users: int, partitions: int) -> list[KafkaSourceMessage[bytes, bytes]]:
    """Simulated transactions, encoded as ``fraudstream produce`` does, over the last minutes."""
    now_ms = time.time_ns() // 1_000_000
    config = SimulatorConfig(users=users, merchants=max(users // 10, 100), seed=7)
    rows = live_events(config, clock=lambda: datetime.now(tz=UTC))
    out = []
    for offset, row in enumerate(itertools.islice(rows, events)):
        payload = {k: v for k, v in row.items() if v is not None and k not in _NOT_SENT}
        payload["event_time"] = now_ms - (events - offset) // 10
        out.append(
            KafkaSourceMessage(
                key=str(payload["user_id"]).encode(),
                value=orjson.dumps(payload),
                topic="transactions",
                partition=offset % partitions,
                offset=offset,
                timestamp=(1, now_ms),
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500, help="source batch size")
    parser.add_argument("--python-gc", action="store_true", help="keep Python's GC defaults")
    args = parser.parse_args()
    if "FRAUD_MODEL_DIR" not in os.environ:
        parser.error("set FRAUD_MODEL_DIR to a trained model (e.g. .fraudstream/demo/model)")
    settings = Settings(decision_ttl_s=900)
    messages = _messages(args.events, args.users, partitions=6)
    decisions: list[object] = []
    dead: list[object] = []
    io = FlowIO(TestingSource(messages, batch_size=args.batch), TestingSink(decisions),
                TestingSink(dead))  # fmt: skip
    flow = build_score_flow(settings, io, ScoreSteps(settings))
    if not args.python_gc:
        tune_gc(settings.gc_gen0_threshold, settings.gc_freeze_interval_s)
    started, cpu = time.perf_counter(), time.process_time()
    run_main(flow, epoch_interval=timedelta(seconds=600))  # as the scorer without recovery
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{args.events:,} transactions ({args.users:,} users): {len(decisions):,} decisions, "
        f"{len(dead):,} dead letters; {cpu / args.events * 1e6:.0f} µs CPU per transaction, "
        f"{args.events / wall:,.0f} tx/s wall; peak RSS {peak_mib:,.0f} MiB"
    )


if __name__ == "__main__":
    main()
