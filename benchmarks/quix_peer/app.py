"""The Quix Streams peer of ``fraudstream score``: the same work, written as a Quix user would.

Same input, same output: transactions (keyed by ``user_id``) in; the Decision JSON, byte for
byte the shape the scorer writes, keyed by ``user_id``, out; undecodable records to the DLQ
as the same ``DlqRecord``. Same work on every event: the scorer's decoder, its velocity
operators (``UserVelocity``, ``MerchantVelocity``, ``RecentIds``), its Redis enrichment and
decision cache (``RedisStore``), its rules and ONNX ensemble (``DecisionEngine``) with the
same models. Only the stream processor differs, and it is used the Quix way:

- one message at a time through a ``StreamingDataFrame`` of ``apply`` steps, with branches
  (``filter``) for the dead letters;
- per-user and per-merchant state in Quix ``State`` (RocksDB). The operators' state objects
  are stored whole, with the pickle serialisation the Quix documentation shows for
  non-JSON values (``RocksDBOptions(dumps=pickle.dumps, loads=pickle.loads)``);
- merchant features after ``group_by`` on the merchant, Quix's repartition through an
  internal topic, as Quix users key state by something other than the message key;
- Quix's documented knobs for latency: the commit interval, ``consumer_extra_config`` /
  ``producer_extra_config`` with the scorer's own Kafka settings (``fetch.wait.max.ms`` 5,
  ``linger.ms`` 1, idempotent ``acks=all`` lz4 producer).

Run it with the Quix environment's Python and the repository on ``PYTHONPATH`` (see
``streams.bench.peers``). Environment, besides the scorer's ``FRAUD_*`` variables:
``QUIX_PEER_COMMIT_INTERVAL_S`` (default 1) and ``QUIX_PEER_CHANGELOG`` (``1`` to back the
state with changelog topics; default off, as the benchmarked scorer runs without recovery).
It reads from the end of the topic under a fresh consumer group, and at exit deletes that
group's internal topics and its local state.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import shutil
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import orjson
import structlog
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from quixstreams import Application, State, message_context
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.kafka.configuration import ConnectionConfig
from quixstreams.models import Topic
from quixstreams.models.serializers import SerializationContext, Serializer
from quixstreams.state.rocksdb import RocksDBOptions

from operators.engine import FeaturedTx, ModelSource
from operators.rules import DEFAULT_RULES_PATH, ReloadingRules
from operators.velocity import MerchantVelocity, RecentIds, UserVelocity
from operators.velocity._constants import DAY_MS
from schemas import (
    DlqRecord,
    SchemaValidationError,
    Transaction,
    decode_transaction,
    encode,
)
from schemas._types import epoch_ms
from streams._scoring import future_event_error, scoring_engine, scoring_store
from streams.logs import configure_logging
from streams.model_holder import ModelHolder, ServingModels
from streams.model_updates import ModelUpdateFollower
from streams.settings import Settings

__all__ = ["Decided", "QuixPeer", "build_app", "main"]

_log = structlog.get_logger("quix_peer")
_MODEL_STARTUP_WAIT_S = 30.0  # as the scorer waits for the models on model-updates
_USER, _MERCHANT = "user", "merchant"


@dataclass
class UserState:
    """What the peer keeps per user: the scorer's ``UserState``, as one State value."""

    velocity: UserVelocity
    recent: RecentIds = field(default_factory=lambda: RecentIds(ttl_ms=DAY_MS, max_size=2048))


@dataclass(frozen=True, slots=True)
class Decided:
    """A decision on its way to ``decisions``: the user key and the Decision JSON."""

    key: bytes
    payload: bytes


class _DecisionBytes(Serializer):
    """Writes the Decision JSON encoded once, by the scoring step (it is cached in Redis too)."""

    def __call__(self, value: Decided, ctx: SerializationContext) -> bytes:
        return value.payload


class _DlqBytes(Serializer):
    """Writes a dead letter's (redacted) original bytes; its headers say what went wrong."""

    def __call__(self, value: DlqRecord, ctx: SerializationContext) -> bytes:
        return value.value


def _is_dead(value: object) -> bool:
    return isinstance(value, DlqRecord)


def _is_alive(value: object) -> bool:
    return not isinstance(value, DlqRecord)


def _merchant_of(value: dict[str, Any]) -> str:
    merchant: str = value["tx"]["merchant_id"]
    return merchant


def _now_ms(_value: object, _key: object, _timestamp: int, _headers: object) -> int:
    """Decisions are stamped when produced (Quix would keep the transaction's timestamp)."""
    return time.time_ns() // 1_000_000


def _dead_letter(
    error: Exception, key: bytes | None, value: bytes, *, stage: str = "decode"
) -> DlqRecord:
    if stage == "decode":
        context = message_context()
        topic, partition, offset = context.topic, context.partition, context.offset
    else:  # as the scorer: a record that fails scoring is re-encoded, without its origin
        topic, partition, offset = "", -1, -1
    record = DlqRecord.from_error(
        error, key=key, value=value, stage=stage, topic=topic, partition=partition, offset=offset
    )
    _log.warning(
        "dead_letter",
        step="dlq_record",
        reason=record.error_reason,
        stage=stage,
        partition=partition,
        offset=offset,
        error=record.error_message,
    )
    return record


class QuixPeer:
    """The step functions, with the resources the scorer's steps use (one of each)."""

    def __init__(self, settings: Settings) -> None:
        """Load the rules and the models as the scorer does; Redis connects lazily."""
        self._settings = settings
        self._rules = ReloadingRules(settings.rules_file or DEFAULT_RULES_PATH)
        self.engine = scoring_engine(settings, self._rules, self._model_source())
        self.store = scoring_store(settings)

    def _model_source(self) -> ModelSource:
        """FRAUD_MODEL_DIR pins a folder; else the models published on model-updates."""
        settings = self._settings
        if settings.model_dir is not None:
            return ModelHolder(settings.model_dir)
        follower = ModelUpdateFollower(settings, ServingModels()).start()
        if not follower.wait_caught_up(_MODEL_STARTUP_WAIT_S):
            _log.warning("model_updates_slow", step="score", waited_s=_MODEL_STARTUP_WAIT_S)
        return follower.models

    # -- per user (the message key): decode, then velocity features ----------------------
    def user_step(
        self,
        value: bytes | None,
        key: bytes | None,
        timestamp: int,
        _headers: object,
        state: State[str, UserState],
    ) -> dict[str, Any] | DlqRecord:
        """The scorer's decode checks, then the user's window features (repeats marked).

        The result is JSON (the transaction as it arrived, with the features): what the
        repartition by merchant writes, and cheap for Quix to copy at the dead-letter
        branch that follows.
        """
        decoded = self._decode(value, key)
        if isinstance(decoded, DlqRecord):
            return decoded
        tx, payload = decoded
        user: UserState | None = state.get(_USER)
        if user is None:
            user = UserState(UserVelocity(self._settings.lateness_ms))
        event_ms = epoch_ms(tx.event_time)
        duplicate = user.recent.seen(tx.tx_id, event_ms)
        features: dict[str, float] = {}
        late = False
        if not duplicate:
            result = user.velocity.update_transaction(tx, event_ms)
            features, late = result.features, result.late
        state.set(_USER, user)
        return {
            "tx": payload,
            "features": features,  # NaN travels as JSON null
            "produced_ms": timestamp,
            "late": late,
            "duplicate": duplicate,
        }

    def _decode(
        self, value: bytes | None, key: bytes | None
    ) -> tuple[Transaction, dict[str, Any]] | DlqRecord:
        """The scorer's decode step: schema, size, PAN and future-time checks."""
        if value is None:
            error = SchemaValidationError("message has no value", reason="empty")
            return _dead_letter(error, key, b"")
        try:
            tx = decode_transaction(value)
        except Exception as exc:  # RecordError, or anything else: never stop the stream
            return _dead_letter(exc, key, value)
        error = future_event_error(epoch_ms(tx.event_time), self._settings.future_tolerance_ms)
        if error is not None:
            return _dead_letter(error, key, value)
        return tx, orjson.loads(value)

    # -- per merchant (after group_by): merchant features --------------------------------
    def merchant_features(
        self, value: dict[str, Any], state: State[str, MerchantVelocity]
    ) -> FeaturedTx:
        """Merchant window features added to the user's; a repeat is not counted again."""
        tx = Transaction.model_validate(value["tx"])
        features = {k: math.nan if v is None else v for k, v in value["features"].items()}
        item = FeaturedTx(
            tx=tx,
            features=features,
            produced_ms=value["produced_ms"],
            late=value["late"],
            duplicate=value["duplicate"],
        )
        if not item.duplicate:
            merchant: MerchantVelocity | None = state.get(_MERCHANT)
            if merchant is None:
                merchant = MerchantVelocity(self._settings.lateness_ms)
            item.features.update(merchant.update_transaction(tx, item.event_ms).features)
            state.set(_MERCHANT, merchant)
        return item

    # -- score: enrichment, rules, ONNX, policy; the decision cached in Redis ------------
    def score(self, item: FeaturedTx) -> Decided | DlqRecord:
        """One decision; a repeat gets its first decision back from the Redis cache."""
        tx = item.tx
        key = tx.user_id.encode()
        if item.duplicate:
            cached = self.store.cached_decisions([tx.tx_id])[0]
            if cached is not None:
                return Decided(key, cached)
        enrichment = self.store.enrich([tx])
        try:
            outcome = self.engine.decide([item], enrichment)
        except Exception as exc:
            _log.exception("score_failed", step="score", size=1)
            return _dead_letter(exc, key, encode(tx), stage="score")
        payload = orjson.dumps(outcome.decisions[0])
        self.store.cache_decisions([(tx.tx_id, payload)])
        return Decided(key, payload)

    def close(self) -> None:
        """Stop the engine's scoring threads."""
        self.engine.close()


def _to_dlq(dead: StreamingDataFrame, topic: Topic) -> None:
    dead = dead.set_headers(lambda record, _key, _ts, _headers: record.kafka_headers())
    dead = dead.set_timestamp(_now_ms)
    dead.to_topic(topic, key=lambda record: record.key)


def build_app(settings: Settings, peer: QuixPeer, app: Application) -> None:
    """Transactions -> decode + user features -> group_by merchant -> merchant -> score."""
    transactions = app.topic(
        settings.topic_transactions, key_deserializer="bytes", value_deserializer="bytes"
    )
    decisions = app.topic(
        settings.topic_decisions, key_serializer="bytes", value_serializer=_DecisionBytes()
    )
    dlq = app.topic(settings.topic_dlq, key_serializer="bytes", value_serializer=_DlqBytes())

    sdf = app.dataframe(transactions)
    # JSON (the transaction, its user features) | DlqRecord
    sdf = sdf.apply(peer.user_step, stateful=True, metadata=True)
    _to_dlq(sdf.filter(_is_dead), dlq)
    sdf = sdf.filter(_is_alive)
    sdf = sdf.group_by(_merchant_of, name="merchant")  # repartitioned, keyed by merchant
    sdf = sdf.apply(peer.merchant_features, stateful=True)  # FeaturedTx, every feature
    sdf = sdf.apply(peer.score)  # Decided | DlqRecord
    _to_dlq(sdf.filter(_is_dead), dlq)
    sdf = sdf.filter(_is_alive).set_timestamp(_now_ms)
    sdf.to_topic(decisions, key=lambda decided: decided.key)


def _application(settings: Settings, group: str, state_dir: Path) -> Application:
    connection = settings.kafka_config()
    producer = {
        name: value
        for name, value in settings.producer_config(**{"linger.ms": 1}).items()
        if name not in connection
    }
    return Application(
        broker_address=ConnectionConfig.from_librdkafka_dict(connection),
        consumer_group=group,
        auto_offset_reset="latest",
        commit_interval=float(os.environ.get("QUIX_PEER_COMMIT_INTERVAL_S", "1")),
        consumer_extra_config={"fetch.wait.max.ms": 5},
        producer_extra_config=producer,
        state_dir=state_dir,
        rocksdb_options=RocksDBOptions(dumps=pickle.dumps, loads=pickle.loads),
        use_changelog_topics=os.environ.get("QUIX_PEER_CHANGELOG", "0") == "1",
        loglevel="WARNING",
    )


def _delete_internal_topics(settings: Settings, group: str) -> None:
    """Quix's repartition and changelog topics of this run's (throwaway) consumer group."""
    admin = AdminClient(settings.kafka_config())
    with contextlib.suppress(KafkaException):
        names = [n for n in admin.list_topics(timeout=10).topics if f"__{group}--" in n]
        if names:
            for future in admin.delete_topics(names).values():
                with contextlib.suppress(KafkaException):
                    future.result(timeout=30)


def _exit_on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    """Run until Ctrl-C or SIGTERM (Quix stops cleanly on both), then clean up."""
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # until Quix installs its own handler
    settings = Settings()
    configure_logging(settings.log_level, system="quix")
    group = f"fraudstream-quix-peer-{uuid.uuid4().hex[:12]}"
    peer = QuixPeer(settings)
    state_dir = Path(tempfile.mkdtemp(prefix="fraudstream-quix-state-"))
    try:
        app = _application(settings, group, state_dir)
        build_app(settings, peer, app)
        _log.info("quix_peer_started", step="ingest", group=group)
        app.run()
    finally:
        peer.close()
        _delete_internal_topics(settings, group)
        shutil.rmtree(state_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
