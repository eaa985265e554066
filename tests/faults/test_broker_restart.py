"""Fault 2: the broker is ``kill -9``-ed mid-stream and restarted.

Producers use the idempotent ``acks=all`` producer of ``streams.producing``; a record the
broker acknowledged is owed a decision (or a dead letter), one whose delivery failed was
reported to its producer, which owns the retry.

Why nothing acknowledged can be lost on this single-node KRaft broker: with ``acks=all``
and one replica, "acknowledged" means appended to the log in the page cache (Kafka does
not fsync per record). ``kill -9`` kills the process, not the machine: the page cache
survives it and the restarted broker recovers its logs (and the producers' idempotence
state) from the files. A power loss could lose the unflushed tail; that needs
replication (``replication_factor`` 3, ``min.insync.replicas`` 2), which a one-node
broker cannot show.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException, Message

from streams.producing import DeliveryStats, RecordProducer
from streams.settings import Settings
from tests.faults._private_broker import PrivateBroker, private_broker
from tests.integration._decisions import WAIT_S, decisions_by_tx, run_tag
from tests.integration._scorer import (
    Scorer,
    ScoreTopics,
    create_topics,
    isolated_events,
    keyed,
    read_all,
    topic_size,
    wait_until,
)
from tests.integration._traffic import Traffic

pytestmark = pytest.mark.integration

EVENTS, RATE = 24_000, 400  # 60 s of traffic; the broker dies about 5 s into it
DOWN_S = 8.0  # how long the broker stays dead before it is started again


@dataclass
class AckLedger(DeliveryStats):
    """Delivery stats that also remember which tx_ids were acknowledged, or failed."""

    acknowledged: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)

    def on_delivery(self, error: KafkaError | None, message: Message) -> None:
        super().on_delivery(error, message)
        tx_id = orjson.loads(message.value() or b"{}")["tx_id"]
        (self.refused if error is not None else self.acknowledged).add(tx_id)


class AckedTraffic(Traffic):
    """Paced traffic that keeps sending through broker outages and records every ack."""

    def __init__(
        self, settings: Settings, topic: str, records: list[tuple[bytes, bytes]], rate: float
    ) -> None:
        super().__init__("acked-traffic", join_timeout_s=WAIT_S + 30)
        self.ledger = AckLedger()
        self._settings = settings
        self._topic = topic
        self._records = records
        self._rate = rate
        self.sent = 0
        self.undelivered = 0

    def send_all(self) -> None:
        producer = RecordProducer(self._settings, self._topic)  # gone with the thread
        producer.stats = self.ledger  # the producer reports every delivery to it
        for key, value in self.paced(self._records, self._rate):
            producer.send(key, value)
            self.sent += 1
        # librdkafka retries (idempotently) until message.timeout.ms: wait for it all
        self.undelivered = producer.flush(WAIT_S)


def _size(broker: PrivateBroker, topic: str) -> int:
    """Records in ``topic``, or -1 while the (restarted) broker cannot tell yet."""
    try:
        return topic_size(broker.settings, topic)
    except KafkaException:
        return -1


def _decided_or_dead(broker: PrivateBroker, topics: ScoreTopics) -> set[str]:
    """tx_ids with a decision or a dead letter; empty while the broker cannot tell yet."""
    try:
        decided = read_all(broker.settings, topics.decisions)
        dead = read_all(broker.settings, topics.dlq)
    except KafkaException:
        return set()
    return set(decisions_by_tx(decided)) | {orjson.loads(r.value).get("tx_id") for r in dead}


def test_a_broker_killed_mid_stream_leaves_no_acknowledged_transaction_undecided(
    servers: Settings, model_dir: Path, tmp_path: Path
) -> None:
    """0 acknowledged transactions without a decision after a broker ``kill -9``.

    A private broker (never the session's), the scorer with a recovery dir, 400 tx/s of
    valid traffic for 60 s. Once 2,000 decisions are out, the broker's java process gets
    SIGKILL, stays dead for 8 s and is started again on the same data dir; the producer
    keeps sending throughout (librdkafka queues and retries, idempotently, within
    ``message.timeout.ms``). Checked, exactly: ``acknowledged - decided`` is empty (0
    acknowledged transactions without a decision; none is dead-lettered either), every
    sent record got one delivery report, no decision names a tx_id never sent, and the
    scorer rode the outage out without exiting. Were it to exit, the test restarts it
    from its recovery dir (what a supervisor does) so the loss figure is still measured.
    """
    events = isolated_events(EVENTS, seed=21, tag=run_tag())
    sent_ids = {event["tx_id"] for event in events}
    topics = ScoreTopics.fresh()
    with private_broker(tmp_path / "broker", servers) as broker:
        create_topics(broker.settings, topics.names)
        scorer = Scorer(
            topics,
            tmp_path / "scorer.log",
            model_dir=model_dir,
            recovery_dir=tmp_path / "recovery",
            env=broker.env,
        )
        exits: list[tuple[float, int | None]] = []  # (s after the kill, exit code)
        killed_at = math.inf

        def supervise() -> None:
            """What a supervisor does: start the scorer again (same recovery dir) if it exited."""
            if not scorer.running:
                exits.append((time.monotonic() - killed_at, scorer.stop()))
                scorer.start()

        with scorer:
            with AckedTraffic(
                broker.settings, topics.transactions, list(keyed(events)), RATE
            ) as traffic:

                def deciding() -> bool:
                    scorer.assert_running()
                    return _size(broker, topics.decisions) >= RATE * 5

                wait_until(
                    deciding, timeout_s=WAIT_S, what="live decisions", diagnose=scorer.log_tail
                )
                decided_before = _size(broker, topics.decisions)
                killed_at = time.monotonic()
                broker.kill()
                while time.monotonic() < killed_at + DOWN_S:  # the fault: the broker is dead
                    supervise()
                    time.sleep(0.1)
                restart_s = broker.start()
                downtime_s = time.monotonic() - killed_at
                sent_at_restart = traffic.sent
                supervise()
            ledger = traffic.ledger
            assert decided_before < len(events), "the broker died after the stream was done"

            def all_owed_decided() -> bool:
                supervise()
                return ledger.acknowledged <= _decided_or_dead(broker, topics)

            wait_until(
                all_owed_decided,
                timeout_s=WAIT_S,
                poll_s=1.0,
                what="every acknowledged transaction decided",
                diagnose=scorer.log_tail,
            )
        assert scorer.returncode == 130, scorer.log_tail()  # still a clean stop at the end
        records = read_all(broker.settings, topics.decisions)
        dead = topic_size(broker.settings, topics.dlq)
    by_tx = decisions_by_tx(records)
    missing = ledger.acknowledged - set(by_tx)
    duplicates = len(records) - len(by_tx)
    print(
        f"\nbroker kill -9: events={len(events)} sent={traffic.sent} "
        f"acknowledged={len(ledger.acknowledged)} failed={len(ledger.refused)} "
        f"undelivered={traffic.undelivered} decided={len(by_tx)} dlq={dead} "
        f"duplicates={duplicates} missing={len(missing)} downtime_s={downtime_s:.1f} "
        f"decided_before_kill={decided_before} sent_at_restart={sent_at_restart} "
        f"broker_restart_s={restart_s:.1f} scorer_exits={exits}"
    )
    assert not missing, f"{len(missing)} acknowledged transactions undecided: {sorted(missing)[:5]}"
    assert set(by_tx) <= sent_ids
    # Every sent record got exactly one delivery report: acknowledged or failed.
    assert traffic.undelivered == 0
    assert ledger.acknowledged | ledger.refused == sent_ids
    assert not ledger.acknowledged & ledger.refused
    assert dead == 0
    assert not exits, f"the scorer exited while the broker was away: {exits}"
