"""Fault 1: ``kill -9`` of the scorer five times during a live stream, restarted each time.

The scorer runs with a recovery directory: Bytewax snapshots every key's state with the
input offsets each epoch (FRAUD_SNAPSHOT_INTERVAL_S), and a restart resumes from the last
complete snapshot. Delivery is at-least-once: what was decided after that snapshot and
before the kill is decided again, with the same features, and nothing else is.

The reference is an uninterrupted run of the very same dataflow (``build_score_flow``)
in this process, fed the records Kafka stored, in partition/offset order, through
Bytewax's testing source. Users share merchants only within their partition
(``_oracle.kafka_partition``), so every key's events have one order, the partition's,
and two runs must agree on every feature exactly.

Kill points: kill i comes once the producer has sent i/6 of the stream, so all five fall
while it is still going, and only when the scorer's consumer lag is under ``LAG_GATE``
(measured every 0.5 s, FRAUD_LAG_INTERVAL_S). The gate is there because a restarted
Bytewax reads its whole backlog into its first epoch and commits that epoch only once all
of it is decided (bytewax/bytewax#353): a scorer killed while still catching up has
snapshotted nothing since its restart, and would re-decide the same backlog over and over.
Killed in steady traffic, each run re-decides only what followed its last snapshot.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import defaultdict
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
from bytewax.connectors.kafka import KafkaSinkMessage, KafkaSourceMessage
from bytewax.testing import TestingSink, TestingSource, run_main
from confluent_kafka import Consumer, TopicPartition

from streams.dataflow import FlowIO, build_score_flow
from streams.settings import Settings
from tests.doubles import live_transactions, now_ms
from tests.faults._oracle import kafka_partition
from tests.integration._decisions import run_tag, wait_for_records
from tests.integration._scorer import (
    PacedProducer,
    Record,
    Scorer,
    ScoreTopics,
    keyed,
    read_all,
    topic_size,
    wait_until,
)

pytestmark = pytest.mark.integration

#: FAULTS_SCALE=0.1 runs 20,000 events instead of 200,000 (for development).
SCALE = float(os.environ.get("FAULTS_SCALE", "1.0"))
PARTITIONS = 6  # the score_topics fixture's
KILLS = 5
RATE = 1_000  # events/s: what the scorer sustains on a busy 2-core machine
#: A smaller run keeps a stream of at least this long at a lower rate, so that five
#: kill/restart/catch-up cycles (a few seconds each) fit inside it.
MIN_STREAM_S = 60
LAG_GATE = 1_000  # records: kill only a scorer whose consumer lag is under this
HOUR_MS = 3_600_000
Out = KafkaSinkMessage[bytes | None, bytes | None]


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """Each partition's end offset now."""
    consumer = Consumer(settings.kafka_config(**{"group.id": f"test-marks-{uuid.uuid4().hex}"}))
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
            for p in range(PARTITIONS)
        }
    finally:
        consumer.close()


def has_sent(traffic: PacedProducer, count: int) -> bool:
    """True once the producer has sent ``count`` events; fails if it died."""
    assert traffic.error is None, repr(traffic.error)
    return traffic.sent >= count


def caught_up(scorer: Scorer) -> bool:
    """True when the scorer's consumer lag is under ``LAG_GATE`` records."""
    scorer.assert_running()
    try:
        lag = scorer.metric("fraud_consumer_lag_messages")
    except OSError:
        return False
    return bool(lag) and sum(lag.values()) < LAG_GATE


def uninterrupted_features(
    settings: Settings, inputs: list[Record], topic: str, model_dir: Path
) -> dict[str, dict[str, Any]]:
    """Features by tx_id from one uninterrupted in-process run of the scoring dataflow."""
    stamp = (1, now_ms())  # CreateTime; only the latency depends on it
    messages = [
        KafkaSourceMessage(r.key, r.value, topic=topic, partition=r.partition, offset=r.offset,
                           timestamp=stamp)
        for r in inputs
    ]  # fmt: skip
    decisions: list[Out] = []
    dead: list[Out] = []
    io = FlowIO(
        source=TestingSource(messages, batch_size=settings.input_batch_size),
        decisions=TestingSink(decisions),
        dead_letters=TestingSink(dead),
    )
    same = settings.model_copy(
        update={"model_dir": model_dir, "model_budget_ms": 10_000, "redis_timeout_ms": 2_000}
    )
    run_main(build_score_flow(same, io), epoch_interval=timedelta(seconds=600))  # type: ignore[no-untyped-call]
    assert (len(decisions), len(dead)) == (len(inputs), 0)
    features = {}
    for message in decisions:
        decision = orjson.loads(message.value or b"")
        assert not decision["degraded"], decision["degraded_cause"]
        features[decision["tx_id"]] = decision["features"]
    return features


def test_five_kill_9s_lose_nothing_and_re_decide_only_since_the_last_snapshot(
    servers: Settings, score_topics: ScoreTopics, model_dir: Path, tmp_path: Path
) -> None:
    """Proves, over 200,000 events (x FAULTS_SCALE) at 1,000/s with five ``kill -9``:

    - lost = 0: the decided tx_ids are exactly the produced ones, and first decisions +
      DLQ = inputs (DLQ = 0);
    - duplicates only around the resume points: every repeated decision is of an event
      first decided in the run the kill ended, re-decided by the next run; and per kill
      and partition the re-decided events are exactly a tail of what the killed run
      decided (all from the resume offset on, none before it), shorter than all of it;
      one decision per tx_id after dedupe;
    - feature mismatches = 0: every decision, every copy of a repeat included, has the
      features of an uninterrupted run over the same records.

    A smaller FAULTS_SCALE streams for ``MIN_STREAM_S`` at a lower rate, so that the five
    kills still fall inside the stream (each is asserted to).
    """
    started = time.monotonic()
    total = round(200_000 * SCALE)
    rate = min(RATE, total / MIN_STREAM_S)
    events = live_transactions(
        total, tag=run_tag(), seed=10, users=max(600, total // 10), merchants=50,
        span_ms=3 * HOUR_MS,
        merchant_group=lambda user: kafka_partition(user.encode(), PARTITIONS),
    )  # fmt: skip
    produced = {event["tx_id"] for event in events}
    scorer = Scorer(
        score_topics,
        tmp_path / "scorer.log",
        model_dir=model_dir,
        recovery_dir=tmp_path / "recovery",
        env={"FRAUD_SNAPSHOT_INTERVAL_S": "0.5", "FRAUD_LAG_INTERVAL_S": "0.5"},
    )
    marks: list[dict[int, int]] = []  # decisions' end offsets right after each kill
    sent_at_kill: list[int] = []  # events the producer had sent at each kill
    decisions_topic = score_topics.decisions

    with scorer:
        traffic = PacedProducer(servers, score_topics.transactions, keyed(events), rate=rate)
        with traffic:
            for kill in range(1, KILLS + 1):
                # Kill i once i/6 of the stream is sent (the decisions topic counts the
                # re-decided copies too, so its size says nothing of the stream's progress).
                wanted = kill * total // (KILLS + 1)
                wait_until(partial(has_sent, traffic, wanted), timeout_s=600, poll_s=0.05,
                           what=f"{wanted} events sent")  # fmt: skip
                # The lag gate (module docstring): kill only a run that has caught up.
                wait_until(lambda: caught_up(scorer), timeout_s=600, what="the scorer caught up",
                           diagnose=scorer.log_tail)  # fmt: skip
                sent = traffic.sent
                assert sent < total, f"kill {kill}: the stream had ended ({sent} sent)"
                scorer.kill()
                sent_at_kill.append(sent)
                marks.append(end_offsets(servers, decisions_topic))
                scorer.start()
        wait_for_records(scorer, servers, {decisions_topic: total}, timeout_s=600)

        def all_decided() -> bool:
            scorer.assert_running()
            if topic_size(servers, decisions_topic) < total:
                return False
            decided = {orjson.loads(r.value)["tx_id"] for r in read_all(servers, decisions_topic)}
            return produced <= decided

        wait_until(all_decided, timeout_s=600, poll_s=2, what="every tx_id decided",
                   diagnose=scorer.log_tail)  # fmt: skip
    live_seconds = time.monotonic() - started
    inputs = read_all(servers, score_topics.transactions, timeout_s=300)
    records = read_all(servers, decisions_topic, timeout_s=300)
    dead_letters = topic_size(servers, score_topics.dlq)

    # 0 lost: every produced transaction decided, nothing dead-lettered.
    position = {orjson.loads(r.value)["tx_id"]: (r.partition, r.offset) for r in inputs}
    assert len(inputs) == len(position) == total
    assert all(r.partition == kafka_partition(r.key or b"", PARTITIONS) for r in inputs)
    # Each copy with the run that emitted it: run k ended with kill k (run KILLS: the last).
    copies: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    for r in records:
        run = next((k for k, mark in enumerate(marks) if r.offset < mark[r.partition]), KILLS)
        copies[orjson.loads(r.value)["tx_id"]].append((run, orjson.loads(r.value)))
    assert set(copies) == produced
    assert len(copies) + dead_letters == len(inputs) and dead_letters == 0

    # Duplicates only around the resume points.
    first_run: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    again: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for tx, decided in copies.items():
        runs = [run for run, _ in decided]
        assert runs in ([runs[0]], [runs[0], runs[0] + 1]), f"{tx} decided in runs {runs}"
        partition, offset = position[tx]
        first_run[runs[0]][partition].append(offset)
        if len(runs) == 2:
            again[runs[0]][partition].append(offset)
    per_kill = []
    for kill in range(KILLS):
        for partition, offsets in again[kill].items():
            in_run = sorted(first_run[kill][partition])
            tail = in_run[len(in_run) - len(offsets) :]
            assert sorted(offsets) == tail, f"kill {kill + 1}, partition {partition}: not a tail"
        repeated = sum(len(offsets) for offsets in again[kill].values())
        decided_in_run = sum(len(offsets) for offsets in first_run[kill].values())
        # (a run killed before its first decision re-decides nothing)
        assert repeated < decided_in_run or repeated == 0, f"kill {kill + 1}: whole run redone"
        per_kill.append(repeated)
    duplicates = len(records) - len(copies)
    assert sum(per_kill) == duplicates

    # The features of every decision, every copy, are the uninterrupted run's.
    reference_started = time.monotonic()
    want = uninterrupted_features(servers, inputs, score_topics.transactions, model_dir)
    reference_seconds = time.monotonic() - reference_started
    mismatched = [
        tx
        for tx, decided in copies.items()
        for _, decision in decided
        if decision["features"] != want[tx]
    ]
    degraded = sum(d["degraded"] for decided in copies.values() for _, d in decided)
    print(
        f"\nfault 1: events={total} rate={rate:.0f}/s sent_at_kill={sent_at_kill} "
        f"decisions={len(records)} duplicates={duplicates} "
        f"per_kill={per_kill} lost={len(produced - set(copies))} dlq={dead_letters} "
        f"degraded={degraded} feature_mismatches={len(mismatched)} "
        f"live_seconds={live_seconds:.0f} reference_seconds={reference_seconds:.0f} "
        f"total_seconds={time.monotonic() - started:.0f}"
    )
    assert not mismatched, (
        f"{len(mismatched)} decisions differ from the uninterrupted run, e.g. {mismatched[0]}: "
        f"{copies[mismatched[0]]} vs {want[mismatched[0]]}"
    )
    assert degraded == 0
