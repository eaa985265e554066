"""The scoring dataflow end to end: ``fraudstream score`` on the real Kafka broker and Redis.

Each test produces simulated live traffic (event time now) to a fresh input topic, runs
the scorer as a child process exactly as an operator would, and reads ``decisions`` and
the DLQ back. Waiting is always polling with a finite timeout, never a bare sleep.
"""

from __future__ import annotations

import itertools
import random
import socket
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from models.manifest import read_manifest
from operators.engine import DECISION_FEATURES
from schemas import Decision, DlqRecord, contains_pan
from schemas._pan import data_holds_pan
from streams.scorer import cluster_addresses
from streams.settings import Settings
from tests.doubles import MALFORMED_KINDS, TEST_PAN, malformed_record
from tests.integration._decisions import (
    WAIT_S,
    assert_user_counts_are_exact,
    decisions_by_tx,
    first_decisions,
    run_tag,
    wait_for_records,
)
from tests.integration._scorer import (
    PacedProducer,
    Scorer,
    ScoreTopics,
    create_topics,
    delete_topics,
    isolated_events,
    keyed,
    port_is_free,
    produce,
    read_all,
    topic_size,
    wait_until,
)

pytestmark = pytest.mark.integration


# -- 1. exactly one decision or one dead letter per record ------------------------------


def test_each_valid_transaction_is_decided_once_and_each_malformed_one_dead_lettered(
    servers: Settings, score_topics: ScoreTopics, model_dir: Path, tmp_path: Path
) -> None:
    total, share = 20_000, 100  # 1 % malformed, 1 % of the valid ones sent twice
    rng = random.Random(20)
    events = isolated_events(total, seed=11, tag=run_tag())
    malformed_at = set(rng.sample(range(total), total // share))
    valid = [event for i, event in enumerate(events) if i not in malformed_at]
    sent_twice = {event["tx_id"] for event in rng.sample(valid, total // share)}

    records: list[tuple[bytes, bytes]] = []
    expected_dlq: dict[bytes, str] = {}  # produced value -> the reason the DLQ must give
    copies_due: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
    kinds = itertools.cycle(MALFORMED_KINDS)
    for i, event in enumerate(events):
        records.extend(copies_due.pop(i, []))
        if i in malformed_at:
            key, value, reason = malformed_record(event, next(kinds))
            records.append((key, value))
            expected_dlq[value] = reason
            continue
        sent = (event["user_id"].encode(), orjson.dumps(event))
        records.append(sent)
        if event["tx_id"] in sent_twice:  # a producer retry, the same bytes, a bit later
            copies_due[i + rng.randint(1, 2_000)].append(sent)
    records.extend(itertools.chain.from_iterable(copies_due.values()))
    assert len(records) == total + len(sent_twice)

    with Scorer(score_topics, tmp_path / "scorer.log", model_dir=model_dir) as scorer:
        produce(servers, score_topics.transactions, records)
        wait_for_records(
            scorer, servers, {score_topics.decisions: len(valid) + len(sent_twice),
                              score_topics.dlq: len(expected_dlq)},
        )  # fmt: skip
        decided_metric = scorer.metric("fraud_transactions_total")
        dead_metric = scorer.metric("fraud_dlq_messages_total")
    assert scorer.returncode == 130, scorer.log_tail()  # Ctrl-C is a clean stop
    decisions = read_all(servers, score_topics.decisions)
    dead = read_all(servers, score_topics.dlq)

    # Decisions: exactly one per record, i.e. one per valid tx_id and a second, identical
    # one for each repeat; nothing for the malformed ones.
    assert len(decisions) == len(valid) + len(sent_twice)
    by_tx = decisions_by_tx(decisions)
    assert set(by_tx) == {event["tx_id"] for event in valid}
    assert {tx for tx, copies in by_tx.items() if len(copies) > 1} == sent_twice
    assert all(len({c.value for c in by_tx[tx]}) == 1 for tx in sent_twice)
    first = first_decisions(decisions)
    version = read_manifest(model_dir).version
    for event in valid:
        decision = first[event["tx_id"]]
        assert decision.user_id == event["user_id"]
        assert (decision.score is not None, decision.model_version) == (True, version)
        assert not decision.degraded, decision.degraded_cause
        assert list(decision.features) == list(DECISION_FEATURES)
        assert decision.features["amount"] == float(event["amount"])
    assert all(r.key == first[tx].user_id.encode() for tx, rs in by_tx.items() for r in rs)
    assert_user_counts_are_exact(valid, first)

    # Dead letters: exactly one per malformed record, with its reason, and no card number.
    # The DLQ keeps a record's bytes as produced; only one holding a card number is
    # stored redacted, and is recognised by its tx_id.
    assert len(dead) == len(expected_dlq)
    with_pan = {
        orjson.loads(value)["tx_id"]: value
        for value, reason in expected_dlq.items()
        if reason == "pan_detected"
    }
    got = {
        (r.value if r.value in expected_dlq else with_pan[orjson.loads(r.value)["tx_id"]]): (
            r.headers["error_reason"]
        )
        for r in dead
    }
    assert got == expected_dlq
    for record in dead:
        headers = [(name, value.encode()) for name, value in record.headers.items()]
        letter = DlqRecord.from_kafka(record.key, record.value, headers)
        assert (letter.stage, letter.source_topic) == ("decode", score_topics.transactions)
        assert letter.error_class and letter.error_message
        texts = [(record.key or b"").decode(), *record.headers.values()]
        assert not any(contains_pan(text) for text in texts)
        assert TEST_PAN.encode() not in record.value
        try:
            value = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            assert not contains_pan(record.value.decode("utf-8", "replace"))
        else:  # field by field: a 13-digit epoch-ms event_time is not a card number
            assert not data_holds_pan(value)
    reasons = Counter(r.headers["error_reason"] for r in dead)
    assert set(reasons) == {"invalid_json", "schema", "pan_detected"}

    # The metrics tell the same story as the topics, label by label.
    verdicts = Counter(orjson.loads(r.value)["decision"] for r in decisions)
    assert {dict(k)["decision"]: v for k, v in decided_metric.items()} == verdicts
    assert {dict(k)["reason"]: v for k, v in dead_metric.items()} == reasons


# -- 2. one process or two: the same decisions ------------------------------------------


@pytest.fixture
def second_outputs(servers: Settings, score_topics: ScoreTopics) -> Iterator[ScoreTopics]:
    """Other decisions/DLQ topics over the same input topic."""
    other = score_topics.with_decisions("second")
    create_topics(servers, other.names[1:])
    yield other
    delete_topics(servers, other.names[1:])


def comparable(decision: Decision) -> dict[str, Any]:
    return decision.model_dump(
        include={"decision", "score", "member_scores", "features", "rules_fired", "reasons"}
    )


def test_two_processes_decide_exactly_like_one(
    servers: Settings,
    score_topics: ScoreTopics,
    second_outputs: ScoreTopics,
    model_dir: Path,
    tmp_path: Path,
) -> None:
    count = 3_000
    tag = run_tag()
    events = isolated_events(count, seed=12, tag=tag)
    for event in events:
        # Merchant windows count what each merchant has seen so far, and two Kafka
        # partitions interleave differently from run to run. Giving every user their own
        # merchants keeps each merchant's events in one partition's order, so any
        # difference left is the scorer's, not the interleaving's.
        event["merchant_id"] = f"{event['merchant_id']}.{event['user_id'][len(tag) + 1 :]}"
    produce(servers, score_topics.transactions, keyed(events))

    def decide(processes: int, topics: ScoreTopics) -> dict[str, Decision]:
        log = tmp_path / f"scorer-{processes}.log"
        with Scorer(topics, log, model_dir=model_dir, processes=processes) as scorer:
            wait_for_records(scorer, servers, {topics.decisions: count})
            per_process = [
                sum(scorer.metric("fraud_transactions_total", process=i).values())
                for i in range(processes)
            ]
        assert scorer.returncode == 130, scorer.log_tail()
        # Every process took its share of the partitions and decided some of the traffic.
        assert all(per_process) and sum(per_process) == count, per_process
        records = read_all(servers, topics.decisions)
        assert len(records) == count, f"{processes} process(es): {len(records)} decisions"
        assert topic_size(servers, topics.dlq) == 0
        return first_decisions(records)

    one = decide(1, score_topics)
    # The cluster's ports are fixed (streams.scorer): wait for another run's to be freed.
    ports = [int(address.rsplit(":", 1)[1]) for address in cluster_addresses(2)]
    wait_until(
        lambda: all(port_is_free(port) for port in ports),
        timeout_s=60,
        what=f"the scorer cluster ports {ports} to be free",
    )
    two = decide(2, second_outputs)

    assert set(one) == set(two) == {event["tx_id"] for event in events}
    differing = [tx for tx in one if comparable(one[tx]) != comparable(two[tx])]
    assert not differing, (
        f"{len(differing)} decisions differ, e.g. {differing[0]}:\n"
        f"1 process:   {comparable(one[differing[0]])}\n"
        f"2 processes: {comparable(two[differing[0]])}"
    )
    assert all(d.score is not None for d in one.values())
    assert_user_counts_are_exact(events, one)


# -- 3. Redis down: degraded, not down ---------------------------------------------------


@pytest.fixture
def silent_redis() -> Iterator[int]:
    """A port that accepts connections and never answers: a hung Redis."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        yield listener.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("redis_port_fixture", "cause"),
    [("closed_port", "redis_unavailable"), ("silent_redis", "redis_timeout")],
    ids=["refused", "hung"],
)
def test_without_redis_decisions_keep_flowing_flagged_degraded(
    servers: Settings,
    score_topics: ScoreTopics,
    model_dir: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    redis_port_fixture: str,
    cause: str,
) -> None:
    port = request.getfixturevalue(redis_port_fixture)
    events = isolated_events(500, seed=13, tag=run_tag())
    env = {"FRAUD_REDIS_URL": f"redis://127.0.0.1:{port}/0", "FRAUD_REDIS_TIMEOUT_MS": "50"}

    with Scorer(score_topics, tmp_path / "scorer.log", model_dir=model_dir, env=env) as scorer:
        produce(servers, score_topics.transactions, keyed(events))
        wait_for_records(scorer, servers, {score_topics.decisions: len(events)})
    decisions = first_decisions(read_all(servers, score_topics.decisions))

    assert set(decisions) == {event["tx_id"] for event in events}
    causes = Counter(d.degraded_cause for d in decisions.values())
    assert causes == {cause: len(events)}
    assert all(d.degraded for d in decisions.values())
    # Only the enrichment is missing: the model still scores every transaction.
    assert all(d.score is not None for d in decisions.values())
    assert all(d.features["merchant_risk"] is None for d in decisions.values())


# -- 4. kill -9 and restart: no transaction lost -----------------------------------------


def test_a_scorer_killed_mid_stream_resumes_from_its_recovery_dir_losing_nothing(
    servers: Settings, score_topics: ScoreTopics, model_dir: Path, tmp_path: Path
) -> None:
    settled, live = 2_000, 4_000
    events = isolated_events(settled + live, seed=14, tag=run_tag())
    scorer = Scorer(
        score_topics,
        tmp_path / "scorer.log",
        model_dir=model_dir,
        recovery_dir=tmp_path / "recovery",
        env={"FRAUD_SNAPSHOT_INTERVAL_S": "0.2"},
    )
    wanted = {event["tx_id"] for event in events}

    def all_decided() -> bool:
        scorer.assert_running()
        return wanted <= decisions_by_tx(read_all(servers, score_topics.decisions)).keys()

    with scorer:
        # Traffic decided well before the crash: its snapshot is long committed.
        produce(servers, score_topics.transactions, keyed(events[:settled]))
        wait_for_records(scorer, servers, {score_topics.decisions: settled})
        # Then live traffic, during which the scorer is killed and restarted.
        traffic = PacedProducer(
            servers, score_topics.transactions, keyed(events[settled:]), rate=1_500
        )
        with traffic:
            wait_for_records(scorer, servers, {score_topics.decisions: settled + live // 2})
            scorer.kill()
            decided_before_kill = topic_size(servers, score_topics.decisions)
            scorer.start()
        assert decided_before_kill < len(events), "the kill came after the stream was done"
        wait_for_records(scorer, servers, {score_topics.decisions: len(events)})
        wait_until(all_decided, timeout_s=WAIT_S, poll_s=0.5, what="every tx_id decided",
                   diagnose=scorer.log_tail)  # fmt: skip
    records = read_all(servers, score_topics.decisions)
    by_tx = decisions_by_tx(records)

    assert set(by_tx) == wanted
    # At-least-once: what was decided after the last snapshot is decided again; but the
    # restart resumed from the snapshot, not from the start of the topic.
    assert all(len(by_tx[event["tx_id"]]) == 1 for event in events[:settled])
    assert len(records) - len(wanted) < decided_before_kill - settled
    every_copy = [Decision.model_validate_json(r.value) for rs in by_tx.values() for r in rs]
    assert all(d.score is not None and not d.degraded for d in every_copy)
    # Window state came back with the snapshot: a re-decided event counts exactly as the
    # first time, and the events after the restart continue the counts from before it.
    for copies in by_tx.values():
        counts = {Decision.model_validate_json(r.value).features["user_count_24h"] for r in copies}
        assert len(counts) == 1
    assert_user_counts_are_exact(events, first_decisions(records))
