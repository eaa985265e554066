"""The Faust app "feedback": labels joined with decision snapshots, and what follows.

Both input topics are keyed by ``user_id``, with the same partition count and the same
(murmur2) partitioner, so a transaction's decision and its labels sit on the same
partition number. One agent reads both topics; the two tables it keeps (decision
snapshots and parked labels, keyed by ``tx_id``) are sharded by the partition of the
event that writes them, so the worker that reads a label's partition also holds the
snapshot it joins with: a co-partitioned stream-table join. Tables live in RocksDB with
changelog topics, so a restarted or moved worker gets them back.

Per batch (``take_events``): decode, store snapshots, join or park labels, apply the
joined verdicts (:class:`FeedbackCore`), append them to the offline store, then write
the merchant label records to Redis. Faust commits a batch's offsets only after the
loop moves on, so a verdict is in the store before its label counts as consumed.
A one-second timer publishes the online model (every N labels or T seconds),
refreshes merchant records as their windows slide, and fires the retrain schedule.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import faust
import orjson
import structlog
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from faust.types import EventT, StreamT
from redis.exceptions import RedisError
from tenacity import retry, stop_after_attempt, wait_exponential

from models._fs import private_dir
from models.offline_store import JoinedLabel, OfflineStoreWriter
from models.online import ONLINE_ROLE, online_version, write_online_model
from schemas import (
    Decision,
    FraudstreamError,
    Label,
    ModelUpdate,
    SchemaValidationError,
    contains_pan,
    decode,
)
from streams._kafka_security import faust_credentials
from streams.console import review_store
from streams.exceptions import FeedbackError
from streams.feedback import _metrics as metrics
from streams.feedback._core import FeedbackCore
from streams.feedback._drift import DriftTrigger
from streams.feedback._retrain import run_retrain
from streams.feedback._review import ReviewFeed, serve_console
from streams.feedback._schedule import RetrainSchedule, ServiceClock
from streams.feedback._snapshot import Snapshot, join
from streams.lag import LagMonitor, committed_positions
from streams.metrics import STAGE_DURATION, Health, serve_metrics
from streams.model_publisher import KafkaModelPublisher
from streams.redis_store import RedisStore
from streams.settings import Settings
from streams.topics import TopicSpec, ensure_topics

__all__ = ["FeedbackService", "co_partitioned_count"]

_log = structlog.get_logger("feedback")
_KEEP_ONLINE_VERSIONS = 5
#: The Faust tables (decision snapshots, parked labels); Faust names their changelog
#: topics ``<app id>-<table>-changelog``.
_TABLES = ("decision-snapshots", "parked-labels")
_COMPACT = {"cleanup.policy": "compact"}


def co_partitioned_count(settings: Settings, timeout_s: float = 10.0) -> int:
    """The shared partition count of ``decisions`` and ``labels``; refuses a mismatch.

    A join is only correct when a key maps to the same partition number in both topics.
    """
    admin = AdminClient(settings.kafka_config())
    try:
        topics = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise FeedbackError(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}") from exc
    counts: dict[str, int] = {}
    for name in (settings.topic_decisions, settings.topic_labels):
        if name not in topics:
            raise FeedbackError(f"topic {name!r} does not exist (run `fraudstream topics create`)")
        counts[name] = len(topics[name].partitions)
    if len(set(counts.values())) != 1:
        raise FeedbackError(
            f"decisions and labels must have the same partition count to be joined: {counts}"
        )
    return next(iter(counts.values()))


def _broker_url(bootstrap: str) -> str:
    return "kafka://" + ";".join(host.strip() for host in bootstrap.split(","))


class FeedbackService:
    """The feedback app, its state and its outputs; :meth:`run` blocks until stopped."""

    def __init__(self, settings: Settings, *, partitions: int | None = None) -> None:
        self._settings = settings
        self._partitions = partitions or co_partitioned_count(settings)
        # The tables' changelog topics exist before Faust starts: left to Faust, a busy
        # broker's metadata can miss a fresh changelog, and the first table write fails
        # (PartitionsMismatch, "has 0 partitions").
        ensure_topics(
            settings,
            [
                TopicSpec(
                    f"{settings.feedback_app_id}-{table}-changelog", self._partitions, _COMPACT
                )
                for table in _TABLES
            ],
        )
        private_dir(settings.feedback_dir)
        private_dir(settings.feedback_dir / "faust")
        self._store_dir = settings.resolved_offline_store_dir
        self._checkpoint = settings.feedback_dir / "checkpoint.json"
        self._online_dir = settings.resolved_registry_dir / "online"
        if contains_pan(str(self._online_dir.resolve())):
            raise FeedbackError(
                f"{self._online_dir.resolve()} holds a digit run that passes the card-number "
                "check: online models published from it would be refused; move the registry"
            )
        self.core, replayed = FeedbackCore.restore(self._store_dir, self._checkpoint)
        _log.info(
            "state restored",
            step="restore",
            labels=len(self.core.verdicts),
            replayed_rows=replayed,
            online_labels=self.core.learner.n_learned,
        )
        self._writer = OfflineStoreWriter(self._store_dir)
        self._redis = RedisStore(settings.redis_dsn, timeout_s=2.0, backoff_s=1.0)
        self._clock = ServiceClock(settings.feedback_clock_start)
        self._schedule = RetrainSchedule(settings.retrain_cron, self._clock.now)
        self._last_publish = time.monotonic()
        self._last_refresh = 0.0
        self._retraining: asyncio.Future[Any] | None = None
        self._drift = DriftTrigger(
            settings.drift_retrain_psi,
            settings.drift_retrain_after_s,
            settings.drift_retrain_cooldown_s,
        )
        self._next_drift_check = 0.0
        self._health = Health()
        self._review = ReviewFeed(review_store(settings), settings)
        self.app = self._build_app()

    # --- wiring ------------------------------------------------------------------------

    def _build_app(self) -> faust.App:
        settings = self._settings
        app = faust.App(
            settings.feedback_app_id,
            broker=_broker_url(settings.bootstrap_servers),
            broker_credentials=faust_credentials(settings),
            store="rocksdb://",
            datadir=str(settings.feedback_dir / "faust"),
            key_serializer="raw",
            value_serializer="raw",
            topic_partitions=self._partitions,
            topic_replication_factor=settings.replication_factor,
            producer_acks=-1,
            consumer_auto_offset_reset="earliest",
            web_enabled=False,
        )
        snapshots, parked = _TABLES
        self._snapshots = app.Table(
            snapshots, partitions=self._partitions, key_type=bytes, value_type=bytes
        )
        self._parked = app.Table(
            parked, partitions=self._partitions, key_type=bytes, value_type=bytes
        )
        source = app.topic(
            settings.topic_decisions, settings.topic_labels, key_type=bytes, value_type=bytes
        )
        app.agent(source, name="feedback")(self._consume)
        app.timer(1.0, name="feedback-tick")(self._tick)
        app.task(self._started)
        return app

    async def _started(self) -> None:
        serve_metrics(
            self._settings.metrics_host, self._settings.feedback_metrics_port, self._health
        )
        self._refresh_merchants(force=True)
        settings = self._settings
        admin = AdminClient(settings.kafka_config())
        topics = (settings.topic_decisions, settings.topic_labels)
        committed = committed_positions(admin, settings.feedback_app_id, topics)
        LagMonitor(settings, "feedback", committed, admin=admin).start()
        if self._settings.console_enabled:
            serve_console(self._settings)
        self._health.ready.set()
        _log.info(
            "feedback service started", step="start", next_retrain=str(self._schedule.next_run)
        )

    def run(self) -> None:
        """Run the Faust worker in this process until SIGINT/SIGTERM."""
        worker = faust.Worker(self.app, loglevel="WARNING", quiet=True)
        worker.execute_from_commandline()

    # --- the stream ----------------------------------------------------------------------

    async def _consume(self, source: StreamT[bytes]) -> None:
        stream = cast("faust.Stream[bytes]", source)  # the concrete class has take_events
        within = self._settings.feedback_batch_within_s
        async for events in stream.take_events(self._settings.feedback_batch_size, within):
            try:
                self._handle(stream, events)
            except Exception as exc:  # crash-only, see below
                # take_events acks a batch even when its handler raises. A batch that
                # failed half-way must not be committed: stop the process here, and the
                # restart rebuilds the state from the store and reads the batch again.
                _log.critical("feedback batch failed", step="apply", error=repr(exc))
                os._exit(70)

    def _handle(self, stream: faust.Stream[bytes], events: Sequence[EventT[bytes]]) -> None:
        """One batch, synchronously: no timer runs in the middle of it."""
        started = time.perf_counter()
        joined: list[JoinedLabel] = []
        decisions_topic = self._settings.topic_decisions
        for event in events:
            # A batch holds events of many partitions; each table write must go to the
            # changelog partition of *its* event, which Faust takes from the current one.
            stream._set_current_event(event)
            raw = event.value if isinstance(event.value, bytes) else b""
            topic = event.message.topic
            try:
                if topic == decisions_topic:
                    self._on_decision(raw, joined)
                else:
                    self._on_label(raw, joined)
            except (FraudstreamError, ValueError, KeyError, TypeError) as exc:
                # One bad record (a snapshot or parked value that cannot be read) must not
                # stop the loop: it is counted and logged, never its content.
                metrics.REJECTED.labels(topic=topic, reason="unreadable").inc()
                _log.error("record skipped", step="join", topic=topic, error=type(exc).__name__)
        STAGE_DURATION.labels(stage="join").observe(time.perf_counter() - started)
        if joined:
            self._apply(joined)
        self._review.flush()

    def _on_decision(self, raw: bytes, joined: list[JoinedLabel]) -> None:
        try:
            decision = decode(raw, Decision)
        except SchemaValidationError as exc:
            self._reject("decisions", exc)
            return
        key = decision.tx_id.encode()
        waiting = self._parked.get(key)
        labelled = waiting is not None or decision.tx_id in self.core.verdicts
        self._review.decision(decision, labelled=labelled)
        stored = self._snapshots.get(key)
        if stored is None:
            snapshot = Snapshot.of(decision)
            # The first decision of a transaction is the one that stands (at-least-once).
            self._snapshots[key] = snapshot.to_bytes()
        else:
            snapshot = Snapshot.from_bytes(stored)
        if waiting is None:
            return
        for text in orjson.loads(waiting):
            joined.append(join(decode(text.encode(), Label), snapshot))
        del self._parked[key]

    def _on_label(self, raw: bytes, joined: list[JoinedLabel]) -> None:
        try:
            label = decode(raw, Label)
        except SchemaValidationError as exc:
            self._reject("labels", exc)
            return
        metrics.LABELS.labels(label=label.label).inc()
        self._review.label(label)
        key = label.tx_id.encode()
        stored = self._snapshots.get(key)
        if stored is not None:
            joined.append(join(label, Snapshot.from_bytes(stored)))
            return
        # The decision has not arrived (yet): park the label until it does.
        waiting = self._parked.get(key)
        parked: list[str] = [] if waiting is None else orjson.loads(waiting)
        text = raw.decode()
        if text not in parked:
            parked.append(text)
            self._parked[key] = orjson.dumps(parked)
        _log.info("label parked", step="park", decision_pending=True)

    def _reject(self, topic: str, exc: SchemaValidationError) -> None:
        reason = getattr(exc, "reason", "schema")
        metrics.REJECTED.labels(topic=topic, reason=reason).inc()
        _log.warning("record refused", step="decode", topic=topic, reason=reason, error=str(exc))

    def _apply(self, rows: list[JoinedLabel]) -> None:
        started = time.perf_counter()
        fresh: list[JoinedLabel] = []
        for row in rows:
            outcome = self.core.apply(row)
            metrics.LABELS_APPLIED.labels(outcome=outcome).inc()
            if outcome != "duplicate":
                fresh.append(row)
        STAGE_DURATION.labels(stage="apply").observe(time.perf_counter() - started)
        if not fresh:
            return
        started = time.perf_counter()
        try:
            files = self._append(fresh)
        except OSError as exc:
            # The verdicts are in memory but not in the store: the only safe move is to
            # drop the memory. The restart rebuilds from the store, and the offsets of
            # this batch were never committed, so its labels come again.
            _log.critical("offline store write failed", step="store", error=str(exc))
            os._exit(70)
        self.core.mark_applied(files)
        STAGE_DURATION.labels(stage="store").observe(time.perf_counter() - started)
        for name, value in self.core.learner.quality().items():
            metrics.ONLINE_QUALITY.labels(metric=name).set(value)
        self._write_dirty_merchants()

    @retry(stop=stop_after_attempt(3), wait=wait_exponential(multiplier=0.1, max=1.0), reraise=True)
    def _append(self, rows: list[JoinedLabel]) -> list[Path]:
        return self._writer.append(rows)

    # --- Redis ---------------------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self._clock.now().timestamp() * 1000)

    def _write_dirty_merchants(self) -> None:
        dirty = self.core.dirty_merchants
        if not dirty:
            return
        started = time.perf_counter()
        records = self.core.book.records(self._now_ms(), sorted(dirty))
        try:
            self._redis.write_merchant_records(records)
        except (RedisError, OSError) as exc:  # Redis down: keep them dirty, retry next tick
            _log.warning("merchant records not written", step="redis", error=str(exc))
            return
        dirty.clear()
        STAGE_DURATION.labels(stage="redis").observe(time.perf_counter() - started)

    def _refresh_merchants(self, *, force: bool = False) -> None:
        """Rewrite every merchant's record: the windows slide even without new labels."""
        interval = self._settings.merchant_refresh_interval_s
        if not force and time.monotonic() - self._last_refresh < interval:
            return
        self._last_refresh = time.monotonic()
        now_ms = self._now_ms()
        self.core.book.evict(now_ms)
        records = self.core.book.records(now_ms)
        try:
            self._redis.write_merchant_records(records)
        except (RedisError, OSError) as exc:  # Redis down: the next refresh writes them
            self._last_refresh = 0.0
            _log.warning("merchant records not refreshed", step="refresh", error=str(exc))
            return
        self.core.dirty_merchants.difference_update(records)

    # --- the timer -------------------------------------------------------------------------

    async def _tick(self) -> None:
        self._review.tick(self.core.learner.quality())
        self._write_dirty_merchants()
        self._refresh_merchants()
        metrics.PARKED.set(len(self._parked))
        await self._maybe_publish()
        if self._schedule.due():
            self._start_retrain("schedule")
        if self._settings.retrain_on_drift and time.monotonic() >= self._next_drift_check:
            self._next_drift_check = time.monotonic() + self._settings.drift_report_interval_s
            self._check_drift()

    def _check_drift(self) -> None:
        """Retrain on sustained prediction drift, as the scorers report it in Redis."""
        if self._drift.due(self._redis):
            metrics.DRIFT_RETRAINS.inc()
            self._start_retrain("drift")

    async def _maybe_publish(self) -> None:
        pending = self.core.labels_since_publish
        if pending == 0:
            return
        elapsed = time.monotonic() - self._last_publish
        if pending < self._settings.online_publish_every and (
            elapsed < self._settings.online_publish_interval_s
        ):
            return
        self._last_publish = time.monotonic()
        self.core.labels_since_publish = 0
        started = time.perf_counter()
        try:
            update = self._export_online_model()
            publisher = KafkaModelPublisher(self._settings)
            await asyncio.get_running_loop().run_in_executor(None, publisher, ONLINE_ROLE, update)
        except (FraudstreamError, KafkaException, OSError, ValueError) as exc:
            # The timer must outlive a failed publish: the next one carries the learning.
            metrics.ONLINE_PUBLISHES.labels(outcome="failed").inc()
            _log.warning("online model not published", step="publish", error=str(exc))
            return
        metrics.ONLINE_PUBLISHES.labels(outcome="published").inc()
        STAGE_DURATION.labels(stage="publish").observe(time.perf_counter() - started)
        _log.info("online model published", step="publish", version=update.version)
        self._prune_online_models()

    def _export_online_model(self) -> ModelUpdate:
        """Write the learner as ONNX, checkpoint the state it came from, and describe it."""
        learner = self.core.learner
        version = online_version(learner.n_learned, datetime.now(UTC))
        path, sha256 = write_online_model(learner, self._online_dir, version)
        self.core.save(self._checkpoint)
        return ModelUpdate(
            version=version,
            role=ONLINE_ROLE,
            uri=str(path.resolve()),
            sha256=sha256,
            # NaN (an undefined metric, e.g. precision before any positive) is not JSON.
            metrics={k: v for k, v in learner.quality().items() if math.isfinite(v)},
            published_at=datetime.now(UTC),
        )

    def _prune_online_models(self) -> None:
        models = sorted(self._online_dir.glob("online-*.onnx"))
        for old in models[:-_KEEP_ONLINE_VERSIONS]:
            old.unlink(missing_ok=True)
            old.with_suffix(".json").unlink(missing_ok=True)

    def _start_retrain(self, trigger: str) -> None:
        if self._retraining is not None and not self._retraining.done():
            _log.warning("retrain still running; this fire time is skipped", step="retrain")
            return
        loop = asyncio.get_running_loop()
        self._retraining = loop.run_in_executor(None, run_retrain, self._settings, trigger)
