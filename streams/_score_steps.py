"""The functions behind the "score" dataflow's steps, with their per-worker resources.

Every step turns a failure about one record into data (an :class:`Undecodable` bound for
the DLQ) instead of an exception: one bad record never stops the pipeline.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import structlog
from bytewax.connectors.kafka import KafkaError, KafkaSinkMessage, KafkaSourceMessage

from operators.engine import BatchOutcome, DecisionEngine, FeaturedTx, ModelSource
from operators.rules import DEFAULT_RULES_PATH, ReloadingRules
from operators.stateful import DecidedTx
from schemas import DlqRecord, RecordError, SchemaValidationError, decode_transaction, encode
from schemas._types import epoch_ms
from streams import metrics
from streams._scoring import future_event_error, scoring_engine, scoring_store
from streams.drift import ScorerDrift
from streams.lag import Positions
from streams.logs import FailureLog
from streams.model_holder import ModelHolder, ServingModels
from streams.model_updates import ModelUpdateFollower
from streams.redis_store import RedisStore
from streams.settings import Settings

__all__ = ["ScoreSteps", "Undecodable"]

_log = structlog.get_logger("score")
_CREATE_TIME_TYPES = (1, 2)  # librdkafka: CreateTime, LogAppendTime
#: How long the first batch waits for the models published on ``model-updates``.
_MODEL_STARTUP_WAIT_S = 30.0


@dataclass(slots=True)
class Undecodable:
    """A record that cannot be decided, with where it came from and why."""

    error: Exception
    stage: str
    key: bytes | None
    value: bytes
    topic: str
    partition: int
    offset: int


class _WorkerResources(threading.local):
    """One engine, Redis client, model and rule set per worker thread."""

    engine: DecisionEngine
    store: RedisStore
    rules: ReloadingRules
    reload_failures_seen: int
    last_shadow_error: str | None
    online_failures: FailureLog


class ScoreSteps:
    """Step functions bound to settings; resources are created lazily in each worker."""

    def __init__(self, settings: Settings) -> None:
        """Without FRAUD_MODEL_DIR, start following ``model-updates`` now (once per process).

        Starting here, before any traffic, has the models loaded by the first batch and
        ``fraud_model_info`` showing what will serve as soon as the process is up.
        """
        self._settings = settings
        self._local = _WorkerResources()
        self._follower: ModelUpdateFollower | None = None
        if settings.model_dir is None:
            self._follower = ModelUpdateFollower(settings, ServingModels()).start()
        #: Process-wide, shared by the workers: offsets read (for consumer lag) and drift.
        self.positions = Positions()
        self.drift = ScorerDrift(settings)
        self._drift_failures = FailureLog(_log, "drift_not_measured", step="score")

    def wait_ready(self, timeout_s: float) -> bool:
        """True once the models to serve are in place (or known to be absent)."""
        return self._follower is None or self._follower.wait_caught_up(timeout_s)

    def _model_source(self) -> ModelSource:
        """FRAUD_MODEL_DIR pins a folder (per worker); else the process-wide followed models."""
        follower = self._follower
        if follower is None:
            return ModelHolder(self._settings.resolved_model_dir)
        if not follower.wait_caught_up(_MODEL_STARTUP_WAIT_S):
            _log.warning("model_updates_slow", step="score", waited_s=_MODEL_STARTUP_WAIT_S)
        return follower.models

    def _resources(self) -> _WorkerResources:
        local = self._local
        if not hasattr(local, "engine"):
            settings = self._settings
            local.rules = ReloadingRules(settings.rules_file or DEFAULT_RULES_PATH)
            local.engine = scoring_engine(settings, local.rules, self._model_source())
            local.store = scoring_store(settings)
            local.reload_failures_seen = 0
            local.last_shadow_error = None
            local.online_failures = FailureLog(_log, "online_model_failed", step="score")
        return local

    # -- decode ------------------------------------------------------------------------
    def decode(self, message: Any) -> FeaturedTx | Undecodable:
        """KafkaSourceMessage -> FeaturedTx, or Undecodable with the reason."""
        if isinstance(message, KafkaError):
            source: KafkaSourceMessage[bytes | None, bytes | None] = message.msg
            return self._undecodable(
                source, RecordError(f"Kafka error: {message.err}", reason="kafka_error")
            )
        if message.partition is not None and message.offset is not None:
            self.positions.record(message.topic, message.partition, message.offset)
        value = message.value
        if value is None:
            return self._undecodable(
                message, SchemaValidationError("message has no value", reason="empty")
            )
        try:
            tx = decode_transaction(value)
        except RecordError as exc:
            return self._undecodable(message, exc)
        except Exception as exc:
            return self._undecodable(message, exc)
        event_ms = epoch_ms(tx.event_time)
        error = future_event_error(event_ms, self._settings.future_tolerance_ms)
        if error is not None:
            return self._undecodable(message, error)
        kind, stamp = message.timestamp
        produced_ms = stamp if kind in _CREATE_TIME_TYPES else time.time_ns() // 1_000_000
        return FeaturedTx(tx=tx, features={}, produced_ms=produced_ms, event_ms=event_ms)

    @staticmethod
    def _undecodable(message: Any, error: Exception, stage: str = "decode") -> Undecodable:
        return Undecodable(
            error=error,
            stage=stage,
            key=message.key,
            value=message.value or b"",
            topic=message.topic or "",
            partition=message.partition if message.partition is not None else -1,
            offset=message.offset if message.offset is not None else -1,
        )

    def dead_letter(self, item: Undecodable) -> DlqRecord:
        """Undecodable -> DlqRecord (card numbers redacted), counted by reason."""
        record = DlqRecord.from_error(
            item.error,
            key=item.key,
            value=item.value,
            stage=item.stage,
            topic=item.topic,
            partition=item.partition,
            offset=item.offset,
        )
        metrics.DLQ_MESSAGES.labels(reason=record.error_reason).inc()
        _log.warning(
            "dead_letter",
            step="dlq_record",
            reason=record.error_reason,
            stage=item.stage,
            partition=item.partition,
            offset=item.offset,
            error=record.error_message,
        )
        return record

    # -- score -------------------------------------------------------------------------
    def score(self, batch: list[FeaturedTx]) -> list[DecidedTx | Undecodable]:
        """A batch of featured transactions -> one DecidedTx each (DLQ if it cannot be)."""
        if not batch:
            return []
        local = self._resources()
        replayed, batch = self._replay_cached(local, batch)
        if not batch:
            return list(replayed)
        started = time.perf_counter()
        enrichment = local.store.enrich(
            [item.tx for item in batch], [item.event_ms for item in batch]
        )
        metrics.STAGE_DURATION.labels(stage="enrich").observe(time.perf_counter() - started)
        try:
            outcome = local.engine.decide(batch, enrichment)
        except Exception as exc:
            _log.exception("score_failed", step="score", size=len(batch))
            return [self._unscored(item, exc) for item in batch]
        for stage, seconds in outcome.stage_seconds.items():
            metrics.STAGE_DURATION.labels(stage=stage).observe(seconds)
        for rule, hits in outcome.rule_counts.items():
            if hits:
                metrics.RULE_HITS.labels(rule=rule).inc(hits)
        for member, values in outcome.member_scores.items():
            metrics.observe_many(metrics.MODEL_SCORE.labels(member=member), values)
        self._shadow_metrics(local, outcome)
        self._online_failures(local, outcome)
        self._observe_drift(outcome)
        failures = local.rules.failed_reloads
        if failures > local.reload_failures_seen:
            metrics.RULE_RELOAD_FAILURES.inc(failures - local.reload_failures_seen)
            local.reload_failures_seen = failures
        late = sum(1 for item in batch if item.late)
        if late:
            metrics.LATE_EVENTS.inc(late)
        decided: list[DecidedTx | Undecodable] = list(replayed)
        for item, decision in zip(batch, outcome.decisions, strict=True):
            decided.append(
                DecidedTx(
                    tx_id=item.tx.tx_id,
                    user_id=item.tx.user_id,
                    # A right-sized copy: orjson's own buffer keeps ~32 KB alive per
                    # result, and the dedupe step holds payloads for minutes.
                    payload=bytes(memoryview(orjson.dumps(decision))),
                    event_ms=item.event_ms,
                    produced_ms=item.produced_ms,
                    decision=decision["decision"],
                    degraded_cause=decision["degraded_cause"],
                )
            )
        return decided

    @staticmethod
    def _replay_cached(
        local: _WorkerResources, batch: list[FeaturedTx]
    ) -> tuple[list[DecidedTx], list[FeaturedTx]]:
        """Repeats whose first decision is in Redis are re-emitted, not decided again.

        The velocity step remembers ids for 24 h and the dedupe step keeps first decisions
        for minutes; Redis keeps them for days. One MGET per batch, and only for repeats.
        """
        repeats = [item for item in batch if item.duplicate]
        if not repeats:
            return [], batch
        cached = local.store.cached_decisions([item.tx.tx_id for item in repeats])
        replayed: list[DecidedTx] = []
        found: set[int] = set()
        for item, payload in zip(repeats, cached, strict=True):
            if payload is None:
                continue
            first = orjson.loads(payload)
            found.add(id(item))
            replayed.append(
                DecidedTx(
                    tx_id=item.tx.tx_id,
                    user_id=item.tx.user_id,
                    payload=payload,
                    event_ms=item.event_ms,
                    produced_ms=item.produced_ms,
                    decision=first["decision"],
                    degraded_cause=first.get("degraded_cause"),
                    replayed=True,
                )
            )
        return replayed, [item for item in batch if id(item) not in found]

    @staticmethod
    def _shadow_metrics(local: _WorkerResources, outcome: BatchOutcome) -> None:
        """The challenger's ensemble score histogram; its failures counted, logged on change."""
        shadow = outcome.shadow_scores.get("challenger")
        if shadow is not None:
            metrics.observe_many(metrics.MODEL_SCORE.labels(member="challenger"), shadow)
        error = outcome.shadow_error
        if error is not None:
            metrics.SHADOW_ERRORS.labels(cause=error).inc()
            if error != local.last_shadow_error:
                _log.warning(
                    "shadow_failed", step="score", cause=error, error=outcome.shadow_error_detail
                )
        local.last_shadow_error = error

    def _observe_drift(self, outcome: BatchOutcome) -> None:
        """Feed the drift monitor; a failure there is logged (on change), never a decision's."""
        try:
            self.drift.observe(outcome)
        except Exception as exc:
            self._drift_failures.failed(exc)
        else:
            self._drift_failures.succeeded()

    @staticmethod
    def _online_failures(local: _WorkerResources, outcome: BatchOutcome) -> None:
        """An online model failure (the batch kept the champion's scores), logged on change."""
        error = outcome.online_error
        if error is None:
            local.online_failures.succeeded()
            return
        metrics.ONLINE_ERRORS.inc()
        local.online_failures.failed(error)

    @staticmethod
    def _unscored(item: FeaturedTx, error: Exception) -> Undecodable:
        return Undecodable(
            error=error,
            stage="score",
            key=item.tx.user_id.encode(),
            value=encode(item.tx),
            topic="",
            partition=-1,
            offset=-1,
        )

    # -- emit --------------------------------------------------------------------------
    def emit(self, batch: list[DecidedTx]) -> list[KafkaSinkMessage[bytes | None, bytes | None]]:
        """DecidedTx -> KafkaSinkMessage; first decisions are cached in Redis by tx_id."""
        if not batch:
            return []
        local = self._resources()
        local.store.cache_decisions((d.tx_id, d.payload) for d in batch if not d.replayed)
        now_ms = time.time() * 1000
        produced = np.fromiter((item.produced_ms for item in batch), np.float64, len(batch))
        metrics.observe_many(metrics.DECISION_LATENCY, np.maximum(now_ms - produced, 0.0) / 1000)
        for decision, count in Counter(item.decision for item in batch).items():
            metrics.DECISIONS.labels(decision=decision).inc(count)
        for cause, count in Counter(i.degraded_cause for i in batch if i.degraded_cause).items():
            metrics.DEGRADED.labels(cause=cause).inc(count)
        return [KafkaSinkMessage(item.user_id.encode(), item.payload) for item in batch]
