"""The Bytewax dataflow "score": transactions in, decisions and dead letters out.

Thin wiring over plain operators (``operators/``): every step is named, and the step
names double as metric and log labels. The shape of the data at each stage is written
next to the step that makes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeGuard, cast

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSink, KafkaSinkMessage, KafkaSource, KafkaSourceMessage
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.outputs import Sink

from operators.engine import FeaturedTx
from operators.stateful import DecidedTx, build_dedupe, build_merchant, build_user
from schemas import DlqRecord
from streams._score_steps import ScoreSteps, Undecodable
from streams.settings import Settings

__all__ = ["FlowIO", "build_score_flow"]

RawMessage = KafkaSourceMessage[bytes | None, bytes | None]
OutMessage = KafkaSinkMessage[bytes | None, bytes | None]


@dataclass
class FlowIO:
    """Where the flow reads and writes; Kafka by default, test doubles in tests."""

    source: Source[Any]
    decisions: Sink[OutMessage]
    dead_letters: Sink[OutMessage]


def kafka_io(settings: Settings) -> FlowIO:
    """The production wiring: ``transactions`` in; ``decisions`` and the DLQ out."""
    brokers = settings.bootstrap_servers.split(",")
    consumer = {k: str(v) for k, v in settings.kafka_config().items() if k != "bootstrap.servers"}
    consumer["fetch.wait.max.ms"] = "5"  # latency over batching: the budget is 50 ms
    # Bytewax's KafkaSink produces without a delivery callback: a record librdkafka gives
    # up on (after message.timeout.ms, 5 min by default) would vanish silently while the
    # recovery snapshot moves past its input. No timeout: a broker outage of any length
    # holds the flow back (backpressure) instead of dropping decisions or dead letters.
    producer = {
        k: str(v)
        for k, v in settings.producer_config(**{"linger.ms": 1, "message.timeout.ms": 0}).items()
        if k != "bootstrap.servers"
    }
    return FlowIO(
        source=KafkaSource(
            brokers,
            [settings.topic_transactions],
            tail=True,
            add_config=consumer,
            batch_size=settings.input_batch_size,
        ),
        decisions=KafkaSink(brokers, settings.topic_decisions, add_config=producer),
        dead_letters=KafkaSink(brokers, settings.topic_dlq, add_config=producer),
    )


def _is_undecodable(item: object) -> TypeGuard[Undecodable]:
    return isinstance(item, Undecodable)


def _dlq_message(record: DlqRecord) -> OutMessage:
    return KafkaSinkMessage(record.key, record.value, headers=record.kafka_headers())


def build_score_flow(
    settings: Settings, io: FlowIO | None = None, steps: ScoreSteps | None = None
) -> Dataflow:
    """The scoring dataflow; ``io`` defaults to the Kafka topics of ``settings``.

    Pass ``steps`` to keep a handle on the process-wide parts (readiness, offsets read).
    """
    io = io or kafka_io(settings)
    steps = steps or ScoreSteps(settings)
    flow = Dataflow("score")

    # KafkaSourceMessage | KafkaError (bytes key, bytes value, partition, offset, timestamp)
    raw = op.input("ingest", flow, io.source)
    # FeaturedTx | DlqRecord
    decoded = op.map("decode", raw, steps.decode)
    invalid = op.branch("split_invalid", decoded, _is_undecodable)
    valid = cast(Stream[FeaturedTx], invalid.falses)

    # (user_id, FeaturedTx) -> user window features; repeats marked duplicate
    by_user = op.key_on("key_by_user", valid, lambda item: item.tx.user_id)
    user_featured = op.stateful_batch("user_velocity", by_user, build_user(settings.lateness_ms))
    # (merchant_id, FeaturedTx) -> + merchant window features
    by_merchant = op.key_on(
        "key_by_merchant", op.key_rm("drop_user_key", user_featured), lambda i: i.tx.merchant_id
    )
    featured = op.stateful_batch(
        "merchant_velocity", by_merchant, build_merchant(settings.lateness_ms)
    )
    # FeaturedTx -> DecidedTx | Undecodable (enrich from Redis, rules, ONNX, policy), per batch
    scored = op.flat_map_batch("score", op.key_rm("drop_merchant_key", featured), steps.score)
    unscored = op.branch("split_unscored", scored, _is_undecodable)
    decided = cast(Stream[DecidedTx], unscored.falses)
    # (user_id, DecidedTx) -> the first decision re-emitted for a repeated tx_id
    by_user_again = op.key_on("key_decisions_by_user", decided, lambda d: d.user_id)
    deduped = op.stateful_batch(
        "dedupe_decisions", by_user_again, build_dedupe(settings.dedupe_horizon_ms)
    )
    # DecidedTx -> KafkaSinkMessage(user_id, Decision JSON); cached in Redis by tx_id
    out = op.flat_map_batch("emit", op.key_rm("drop_dedupe_key", deduped), steps.emit)
    op.output("emit_decisions", out, io.decisions)

    # Undecodable (from decode or score) -> DlqRecord -> KafkaSinkMessage(original key,
    # redacted original bytes, error headers)
    failed = op.merge("failed", invalid.trues, unscored.trues)
    dead = op.map("dlq_record", failed, steps.dead_letter)
    op.output("emit_dlq", op.map("encode_dlq", dead, _dlq_message), io.dead_letters)
    return flow


def epoch_interval(settings: Settings, *, recovery: bool) -> timedelta:
    """How often Bytewax closes an epoch, which is when it snapshots every touched key.

    Snapshots are only worth their cost when a recovery store keeps them; without one, a
    long epoch keeps them off the hot path (outputs never wait for an epoch to close).
    """
    return timedelta(seconds=settings.snapshot_interval_s if recovery else 600)
