"""The bench's comparison systems on the real broker and Redis, started as the bench starts them.

- The passthrough (the limit) copies every record once, key and value unchanged.
- The Quix Streams peer does the scorer's work: one decision or one dead letter per record,
  and the same decisions as ``fraudstream score`` on the same events (the scorer is run
  afterwards over the same input topic into topics of its own).

The Quix environment is built once per session (pip, about a minute the first time; kept
under the state directory, so later sessions reuse it).
"""

from __future__ import annotations

import itertools
import os
import re
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka.admin import AdminClient

from operators.engine import DECISION_FEATURES
from schemas import Decision
from streams.bench.peers import ensure_quix_python, peer_command
from streams.settings import Settings
from tests.doubles import MALFORMED_KINDS, malformed_record, now_ms
from tests.integration._children import ChildService
from tests.integration._scorer import (
    Record,
    Scorer,
    ScoreTopics,
    create_topics,
    delete_topics,
    isolated_events,
    keyed,
    produce,
    read_all,
    topic_size,
    wait_until,
)

pytestmark = pytest.mark.integration

WAIT_S = 60
#: As the scorer tests: a busy 2-core machine must not turn decisions degraded.
GENEROUS = {"FRAUD_MODEL_BUDGET_MS": "10000", "FRAUD_REDIS_TIMEOUT_MS": "2000"}


@pytest.fixture(scope="session")
def quix_python(servers: Settings) -> Path:
    """The Quix Streams environment, as ``fraudstream bench`` builds it."""
    return ensure_quix_python(servers.state_dir, lambda _message: None)


class Peer(ChildService):
    """A comparison system started with ``peer_command`` and the run's ``FRAUD_TOPIC_*``."""

    def __init__(
        self, system: str, settings: Settings, topics: ScoreTopics, log_path: Path, **env: str
    ) -> None:
        argv, extra = peer_command(system, settings, lambda _message: None)
        full_env = {
            **os.environ,
            "FRAUD_TOPIC_TRANSACTIONS": topics.transactions,
            "FRAUD_TOPIC_DECISIONS": topics.decisions,
            "FRAUD_TOPIC_DLQ": topics.dlq,
            **extra,
            **env,
        }
        super().__init__(argv, full_env, log_path, metrics_port=0, stop_timeout_s=30)
        self.name = system


def probe_until_answered(
    settings: Settings, topics: ScoreTopics, peer: Peer, records: Iterator[tuple[bytes, bytes]]
) -> int:
    """Send one probe every half second until one comes back (the bench's readiness)."""
    sent = 0

    def answered() -> bool:
        nonlocal sent
        peer.assert_running()
        produce(settings, topics.transactions, [next(records)])
        sent += 1
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            if topic_size(settings, topics.decisions):
                return True
            time.sleep(0.05)
        return False

    wait_until(answered, timeout_s=WAIT_S, poll_s=0, what=f"{peer.name} to answer a probe",
               diagnose=peer.log_tail)  # fmt: skip
    return sent


def run_tag() -> str:
    return f"p{uuid.uuid4().hex[:8]}"


# -- the passthrough ---------------------------------------------------------------------


def test_the_passthrough_copies_every_record_once_with_its_key_and_value(
    servers: Settings, score_topics: ScoreTopics, tmp_path: Path
) -> None:
    tag = run_tag().encode()
    records: list[tuple[bytes | None, bytes]] = [
        (b"user-%d" % (i % 37), tag + b" record %d " % i + b"x" * (i % 300)) for i in range(3_000)
    ]
    records += [(None, tag + b" without a key"), (b"user-1", tag + b""), (tag, b'{"tx_id":"1"}')]
    probes = ((b"probe", b"probe %d" % i) for i in itertools.count())

    def ours(copied: list[Record]) -> list[tuple[bytes | None, bytes]]:
        return [(r.key, r.value) for r in copied if not r.value.startswith(b"probe")]

    with Peer("passthrough", servers, score_topics, tmp_path / "passthrough.log") as peer:
        probe_until_answered(servers, score_topics, peer, probes)
        produce(servers, score_topics.transactions, records)
        wait_until(
            lambda: len(ours(read_all(servers, score_topics.decisions))) >= len(records),
            timeout_s=WAIT_S,
            what="every record copied",
            diagnose=peer.log_tail,
        )
    assert peer.returncode == 0, peer.log_tail()

    copied = read_all(servers, score_topics.decisions)  # after the stop: nothing more came
    assert Counter(ours(copied)) == Counter(records)
    assert all(r.value.startswith(b"probe") for r in copied if (r.key, r.value) not in records)
    assert topic_size(servers, score_topics.dlq) == 0


# -- the Quix Streams peer ---------------------------------------------------------------


@pytest.fixture
def scorer_outputs(servers: Settings, score_topics: ScoreTopics) -> Iterator[ScoreTopics]:
    """The scorer's own decisions/DLQ topics over the peer's input topic."""
    other = score_topics.with_decisions("scorer")
    create_topics(servers, other.names[1:])
    yield other
    delete_topics(servers, other.names[1:])


def comparable(decision: Decision) -> dict[str, Any]:
    return decision.model_dump(include={"decision", "features", "rules_fired", "reasons"})


def scores(decision: Decision) -> dict[str, float | None]:
    return {"score": decision.score, **decision.member_scores}


def same_decision(ours: Decision, theirs: Decision) -> bool:
    """Equal, the scores to float32 precision: ONNX Runtime's linear kernels may round the
    last bits of one row (the peer) differently from a batch (the scorer)."""
    return comparable(ours) == comparable(theirs) and scores(ours) == pytest.approx(
        scores(theirs), rel=1e-5, abs=1e-7
    )


def by_tx(records: list[Record], prefix: str) -> dict[str, list[Record]]:
    found: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        tx_id = orjson.loads(record.value)["tx_id"]
        if tx_id.startswith(prefix):
            found[tx_id].append(record)
    return found


def dead_letters(records: list[Record]) -> Counter[tuple[Any, ...]]:
    """What a dead letter says about its record (all but when it was written)."""
    return Counter(
        (r.key, r.value, *(r.headers[h] for h in ("error_class", "error_reason", "stage",
                                                  "source_topic", "source_partition",
                                                  "source_offset")))
        for r in records
    )  # fmt: skip


def test_the_quix_peer_decides_every_event_exactly_as_the_scorer_does(
    servers: Settings,
    score_topics: ScoreTopics,
    scorer_outputs: ScoreTopics,
    model_dir: Path,
    quix_python: Path,
    tmp_path: Path,
) -> None:
    tag = run_tag()
    events = isolated_events(300, seed=21, tag=tag, users=40, merchants=15)
    for event in events:
        # Merchant windows count what each merchant has seen so far, and partitions
        # interleave differently in two systems. Merchants of their own per user keep each
        # merchant's events in one partition's order, so any difference is the systems'.
        event["merchant_id"] = f"{event['merchant_id']}.{event['user_id'][len(tag) + 1 :]}"
    valid = list(keyed(events))
    repeat = valid[40]  # a producer retry: the same bytes again, later
    malformed = [malformed_record(events[i], kind)[:2] for i, kind in enumerate(MALFORMED_KINDS)]
    future = {**events[7], "tx_id": f"{tag}-future", "event_time": now_ms() + 3 * 3_600_000}
    malformed.append((future["user_id"].encode(), orjson.dumps(future)))
    records = valid[:100] + malformed[:2] + valid[100:200] + [repeat] + malformed[2:] + valid[200:]
    probes = (
        next(keyed(isolated_events(1, seed=i, tag=f"{tag}probe{i}"))) for i in itertools.count()
    )

    log = tmp_path / "quix.log"
    with Peer(
        "quix", servers, score_topics, log, FRAUD_MODEL_DIR=str(model_dir), **GENEROUS
    ) as peer:
        probes_sent = probe_until_answered(servers, score_topics, peer, probes)
        produce(servers, score_topics.transactions, records)

        def all_out() -> bool:
            peer.assert_running()
            decided = by_tx(read_all(servers, score_topics.decisions), f"{tag}-")
            outputs = sum(map(len, decided.values())) + topic_size(servers, score_topics.dlq)
            return outputs >= len(records)

        wait_until(all_out, timeout_s=WAIT_S, what="an output per record", diagnose=peer.log_tail)
    assert peer.returncode == 0, peer.log_tail()
    group = re.search(r'"group": "([^"]+)"', log.read_text())
    assert group is not None, peer.log_tail()
    existing = AdminClient(servers.kafka_config()).list_topics(timeout=10).topics
    assert not [name for name in existing if group[1] in name]  # its internal topics: gone

    # Exactly one output per record: a decision per valid one (the repeat re-emits its
    # first decision, byte for byte), a dead letter per malformed one.
    quix = by_tx(read_all(servers, score_topics.decisions), f"{tag}-")
    quix_dead = read_all(servers, score_topics.dlq)
    assert set(quix) == {event["tx_id"] for event in events}
    assert Counter(len(copies) for copies in quix.values()) == {1: len(events) - 1, 2: 1}
    assert len({r.value for r in quix[orjson.loads(repeat[1])["tx_id"]]}) == 1
    assert len(quix_dead) == len(malformed)
    assert all(r.key == orjson.loads(r.value)["user_id"].encode() for c in quix.values() for r in c)

    # The scorer on the same input (from its beginning: the probes too), into its own topics.
    with Scorer(scorer_outputs, tmp_path / "scorer.log", model_dir=model_dir) as scorer:
        wanted = {scorer_outputs.decisions: probes_sent + len(valid) + 1,
                  scorer_outputs.dlq: len(malformed)}  # fmt: skip

        def scorer_done() -> bool:
            scorer.assert_running()
            return all(topic_size(servers, t) >= n for t, n in wanted.items())

        wait_until(scorer_done, timeout_s=WAIT_S, what=f"{wanted}", diagnose=scorer.log_tail)
    fraudstream = by_tx(read_all(servers, scorer_outputs.decisions), f"{tag}-")
    fraudstream_dead = read_all(servers, scorer_outputs.dlq)

    assert dead_letters(quix_dead) == dead_letters(fraudstream_dead)
    reasons = Counter(r.headers["error_reason"] for r in quix_dead)
    assert reasons == {"invalid_json": 1, "schema": 2, "pan_detected": 1, "future_event_time": 1}
    assert set(fraudstream) == set(quix)
    first = {tx: Decision.model_validate_json(c[0].value) for tx, c in quix.items()}
    theirs = {tx: Decision.model_validate_json(c[0].value) for tx, c in fraudstream.items()}
    differing = [tx for tx in first if not same_decision(first[tx], theirs[tx])]
    assert not differing, (
        f"{len(differing)} decisions differ, e.g. {differing[0]}:\n"
        f"quix:        {comparable(first[differing[0]])} {scores(first[differing[0]])}\n"
        f"fraudstream: {comparable(theirs[differing[0]])} {scores(theirs[differing[0]])}"
    )
    for decision in first.values():  # the same JSON shape, scored by the model
        assert list(decision.features) == list(DECISION_FEATURES)
        assert decision.score is not None and not decision.degraded, decision.degraded_cause
        assert decision.model_version == theirs[decision.tx_id].model_version
    assert len({d.decision for d in first.values()}) > 1  # not a trivially equal verdict
