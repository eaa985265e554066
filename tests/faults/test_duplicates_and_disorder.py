"""Fault 6: repeated tx_ids and out-of-order or late events, on the real broker and Redis.

The velocity windows are defined at arrival: an event counts the events of its key that
arrived before it with an event time inside its window, so an out-of-order event within
the allowed lateness (``lateness_ms``, 5 minutes) gets exactly the features it would have
had in order, and one later than that is still counted where its time falls in the
retained state (30 h of a user's raw events, 24 h of a merchant's) and flagged late
(``fraud_late_events_total``). A repeated tx_id is one event: it is not counted again,
and its decision is the first one re-emitted byte for byte (from the dedupe step's
memory, or from the Redis decision cache beyond its horizon).
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from schemas import Decision
from streams.settings import Settings
from tests.doubles import live_transactions
from tests.faults._oracle import (
    feature_mismatches,
    kafka_partition,
    oracle_event,
    velocity_features,
)
from tests.integration._decisions import decisions_by_tx, run_tag, wait_for_records
from tests.integration._scorer import Scorer, ScoreTopics, produce, read_all, topic_size

pytestmark = pytest.mark.integration

PARTITIONS = 6  # the score_topics fixture's
MINUTE_MS = 60_000


def test_duplicates_and_disordered_events_keep_velocity_exact_and_repeat_first_decisions(
    servers: Settings, score_topics: ScoreTopics, model_dir: Path, tmp_path: Path
) -> None:
    """Proves: mismatches = 0 between every velocity feature of every first decision and a
    brute-force oracle, with 10 % of the tx_ids sent twice, ~20 % of the events out of
    order within the lateness and ~3 % later than it; every repeat's decision is
    byte-identical to its first (same decision, score, features); the scorer's late count
    equals the oracle's; decisions = records and DLQ = 0 exactly.
    """
    started = time.monotonic()
    distinct, lateness = 3_000, servers.lateness_ms
    rng = random.Random(60)
    # Users share merchants only within their partition: each key then has one arrival
    # order, the partition's, which the oracle replays (see _oracle.kafka_partition).
    events = live_transactions(
        distinct, tag=run_tag(), seed=61, users=120, merchants=8, span_ms=120 * MINUTE_MS,
        merchant_group=lambda user: kafka_partition(user.encode(), PARTITIONS),
    )  # fmt: skip
    for event in events:  # shifted back from an in-order time: never into the future
        draw = rng.random()
        if draw < 0.03:  # later than the lateness: by 1 to 30 minutes more
            event["event_time"] -= lateness + rng.randint(1, 30) * MINUTE_MS
        elif draw < 0.23:  # out of order, within the lateness
            event["event_time"] -= rng.randint(1_000, lateness - 1_000)

    # 10 % of the tx_ids are sent again, 1 to 1,500 records later: a producer retry (the
    # same bytes) or, for a quarter of them, a buggy upstream that changed the amount.
    # Far repeats come after the dedupe step's horizon and are answered from Redis.
    records: list[tuple[bytes, bytes]] = []
    repeats_due: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
    repeated = set(rng.sample(range(distinct), distinct // 10))
    altered = 0
    for i, event in enumerate(events):
        records.extend(repeats_due.pop(i, []))
        key = event["user_id"].encode()
        records.append((key, orjson.dumps(event)))
        if i in repeated:
            copy = event
            if rng.random() < 0.25:
                copy, altered = {**event, "amount": f"{rng.uniform(1, 5_000):.2f}"}, altered + 1
            repeats_due[i + rng.randint(1, 1_500)].append((key, orjson.dumps(copy)))
    for later in repeats_due.values():
        records.extend(later)
    assert len(records) == distinct + len(repeated)

    # One record per input batch: the merchant step then sees each merchant's events in
    # their partition's order, the order the oracle replays. (With larger batches it
    # counts a batch's events of a merchant in event-time order, which for a disordered
    # stream depends on where batches happen to split it.)
    env = {"FRAUD_INPUT_BATCH_SIZE": "1"}
    log = tmp_path / "scorer.log"
    with Scorer(score_topics, log, model_dir=model_dir, env=env) as scorer:
        produce(servers, score_topics.transactions, records)
        wait_for_records(scorer, servers, {score_topics.decisions: len(records)})
        late_metric = sum(scorer.metric("fraud_late_events_total").values())
    assert scorer.returncode == 130, scorer.log_tail()
    inputs = read_all(servers, score_topics.transactions)
    decisions = read_all(servers, score_topics.decisions)
    dead_letters = topic_size(servers, score_topics.dlq)

    # Every key's arrival order is its partition's offset order, the order read back.
    assert all(r.partition == kafka_partition(r.key or b"", PARTITIONS) for r in inputs)
    arrivals = [oracle_event(orjson.loads(r.value)) for r in inputs]
    want = velocity_features(arrivals)
    newest: dict[str, int] = {}
    disordered = late = 0
    seen: set[str] = set()
    for e in arrivals:
        if e.tx_id in seen:
            continue
        seen.add(e.tx_id)
        top = newest.get(e.user_id, e.event_ms)
        disordered += e.event_ms < top
        late += e.event_ms < top - lateness
        newest[e.user_id] = max(top, e.event_ms)

    # One decision per record, nothing dead-lettered.
    assert (len(decisions), dead_letters) == (len(records), 0)
    by_tx = decisions_by_tx(decisions)
    assert set(by_tx) == set(want)
    # A repeat re-emits the first decision: the same bytes (decision, score, features...).
    copies = {tx: [r.value for r in rs] for tx, rs in by_tx.items()}
    assert sum(len(values) - 1 for values in copies.values()) == len(repeated)
    not_first = [tx for tx, values in copies.items() if len(set(values)) != 1]
    assert not not_first, f"{len(not_first)} repeats decided afresh, e.g. {not_first[:3]}"
    # Every velocity feature of every first decision is the oracle's.
    mismatched = {}
    for tx, values in copies.items():
        decision = Decision.model_validate_json(values[0])
        assert not decision.degraded, decision.degraded_cause
        bad = feature_mismatches(decision.features, want[tx])
        if bad:
            mismatched[tx] = bad
    # The scorer flags as late exactly the events the oracle finds later than the lateness.
    assert late_metric == late
    print(
        f"\nfault 6: events={len(records)} distinct={distinct} duplicates={len(repeated)} "
        f"(altered={altered}) out_of_order={disordered} late={late} "
        f"scorer_late={late_metric:.0f} decisions={len(decisions)} dlq={dead_letters} "
        f"mismatches={len(mismatched)} seconds={time.monotonic() - started:.0f}"
    )
    assert not mismatched, (
        f"{len(mismatched)} decisions differ from the oracle, e.g. "
        f"{dict(list(mismatched.items())[:3])}"
    )
