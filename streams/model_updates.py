"""Following the compacted ``model-updates`` topic: new model versions reach the scorer live.

One background thread per scorer process (shared by its worker threads) reads the topic
from the beginning with a throwaway consumer group and no commits: compaction keeps the
latest update per role (the key), so reading it all is how a starting scorer learns what
to serve. While catching up only the last update per role is kept; once the offsets seen
at start-up are reached they are loaded, and from then on every update is loaded as it
arrives. Loading (hash checks, ONNX sessions, a warm-up run) happens on this thread, off
the hot path; the engine picks the new model up at its next batch.

The ``online`` role is the model the feedback service learns from labels: one ONNX file,
blended into the champion's scores. It only ever comes from this topic (the registry has
no online model), and compaction keeps its latest version for a restarting scorer.

A bad update (manifest or file hash mismatch, missing or altered files, another feature
order) is refused with a ``model_update_refused`` log carrying role, version and reason,
and the previous model keeps serving. When the topic holds no usable champion (or cannot
be read), the registry's ``aliases.json`` champion is served; without that, rules only.

A tombstone (null value) retires the challenger or the online model; a champion is only
ever replaced.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import uuid
from pathlib import Path
from typing import Any, Literal

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from operators.scoring import EnsembleScorer
from schemas import ModelUpdate, RecordError, decode
from streams._model_loading import load_alias, load_online_update, load_update
from streams.exceptions import ModelUpdateRefusedError
from streams.model_holder import EnsembleRole, Role, Served, ServingModels
from streams.settings import Settings

__all__ = ["ModelUpdateFollower"]

_log = structlog.get_logger("model_updates")
_STEP = "model_updates"
_ROLES: tuple[EnsembleRole, ...] = ("champion", "challenger")
#: Roles a tombstone retires (a scorer always keeps a champion once it has one).
_RETIRABLE: dict[bytes, Literal["challenger", "online"]] = {
    b"challenger": "challenger",
    b"online": "online",
}
_POLL_S = 0.5
_RETRY_S = 5.0


class ModelUpdateFollower:
    """Feeds a :class:`~streams.model_holder.ServingModels` from ``model-updates``."""

    def __init__(
        self, settings: Settings, models: ServingModels, *, registry_dir: Path | None = None
    ) -> None:
        self.models = models
        self._settings = settings
        self._topic = settings.topic_model_updates
        self._registry = registry_dir or settings.resolved_registry_dir
        self._stop = threading.Event()
        self._caught_up = threading.Event()
        self._unavailable = False  # logged once per outage, not every retry
        self._thread = threading.Thread(target=self._run, name="model-updates", daemon=True)

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> ModelUpdateFollower:
        """Start following; the thread is stopped at interpreter exit."""
        self._thread.start()
        atexit.register(self.stop)
        return self

    def wait_caught_up(self, timeout_s: float) -> bool:
        """Block until start-up models are in place (or found absent); False on timeout."""
        return self._caught_up.wait(timeout_s)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop following (idempotent); the models in place keep serving."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    # -- applying updates (also the unit-testable core) --------------------------------
    def apply(self, key: bytes | None, value: bytes | None) -> bool:
        """Verify, load and install one record of the topic; True if something changed."""
        if value is None:
            return self._retire(key)
        try:
            update = decode(value, ModelUpdate)
        except RecordError as exc:
            self._refused(key, None, "undecodable", str(exc))
            return False
        if key is not None and key != update.role.encode():
            self._refused(
                key, update, "key_mismatch", f"keyed {key!r} but for role {update.role!r}"
            )
            return False
        role: Role = update.role
        if self._already_serving(role, update):
            return False
        try:
            served = self._load(update)
        except ModelUpdateRefusedError as exc:
            self._refused(key, update, exc.reason, str(exc))
            return False
        except Exception as exc:  # the follower must outlive any surprise from a file
            self._refused(key, update, "load_failed", f"{type(exc).__name__}: {exc}")
            return False
        previous = self.models.served(role)
        self.models.install(role, served)
        self._swapped(role, update, previous)
        return True

    def _load(self, update: ModelUpdate) -> Served[Any]:
        """The model an update names: one ONNX file (online) or an ensemble folder."""
        if update.role == "online":
            return Served(load_online_update(update), update.sha256, "model-updates")
        model = self._reusable(update) or load_update(update)
        return Served(model, update.sha256, "model-updates")

    @staticmethod
    def _swapped(role: Role, update: ModelUpdate, previous: Served[Any] | None) -> None:
        _log.info(
            "model_swapped",
            step=_STEP,
            role=role,
            version=update.version,
            previous=None if previous is None else previous.version,
            uri=update.uri,
        )

    def fall_back_to_registry(self) -> None:
        """Serve the registry's champion when nothing else serves (see the module doc)."""
        if self.models.served("champion") is not None:
            return
        try:
            model = load_alias(self._registry, "champion")
        except ModelUpdateRefusedError as exc:
            _log.error(
                "model_update_refused",
                step=_STEP,
                role="champion",
                version=None,
                reason=exc.reason,
                source="registry",
                error=str(exc),
            )
            return
        if model is None:
            _log.warning(
                "no_model", step=_STEP, registry=str(self._registry), decisions="rules only"
            )
            return
        self.models.install("champion", Served(model, None, "registry"))
        _log.info(
            "model_swapped",
            step=_STEP,
            role="champion",
            version=model.version,
            previous=None,
            source="registry",
        )

    def _already_serving(self, role: Role, update: ModelUpdate) -> bool:
        served = self.models.served(role)
        return (
            served is not None
            and served.version == update.version
            and served.sha256 == update.sha256
        )

    def _reusable(self, update: ModelUpdate) -> EnsembleScorer | None:
        """The loaded model of the other role when it is this very version (a promotion)."""
        for role in _ROLES:
            served = self.models.served(role)
            if served is not None and (served.version, served.sha256) == (
                update.version,
                update.sha256,
            ):
                return served.model
        return None

    def _retire(self, key: bytes | None) -> bool:
        role = _RETIRABLE.get(key or b"")
        retired = None if role is None else self.models.served(role)
        if role is not None and retired is not None:
            self.models.install(role, None)
            _log.info("model_retired", step=_STEP, role=role, version=retired.version)
            return True
        if key == b"champion":
            _log.warning(
                "model_update_refused",
                step=_STEP,
                role="champion",
                version=None,
                reason="champion_tombstone",
                error="a champion is replaced, not removed",
            )
        return False

    @staticmethod
    def _refused(key: bytes | None, update: ModelUpdate | None, reason: str, error: str) -> None:
        _log.error(
            "model_update_refused",
            step=_STEP,
            role=update.role if update is not None else (key or b"").decode(errors="replace"),
            version=None if update is None else update.version,
            reason=reason,
            error=error,
        )

    # -- the consumer loop -------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                consumer, ends = self._connect()
            except KafkaException as exc:
                if not self._unavailable:
                    _log.warning(
                        "model_updates_unavailable",
                        step=_STEP,
                        topic=self._topic,
                        error=str(exc),
                        retry_s=_RETRY_S,
                    )
                self._unavailable = True
                self._finish_catch_up({})
                self._stop.wait(_RETRY_S)
                continue
            if self._unavailable:
                _log.info("model_updates_available", step=_STEP, topic=self._topic)
                self._unavailable = False
            try:
                self._follow(consumer, ends)
            except Exception:  # never let the follower die: the scorer would stop learning
                _log.exception("model_updates_failed", step=_STEP, retry_s=_RETRY_S)
                self._stop.wait(_RETRY_S)
            finally:
                with contextlib.suppress(KafkaException, RuntimeError):
                    consumer.close()

    def _connect(self) -> tuple[Consumer, dict[int, int]]:
        consumer = Consumer(
            self._settings.kafka_config(
                **{
                    "group.id": f"fraudstream-model-updates-{uuid.uuid4().hex[:12]}",
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "enable.partition.eof": False,
                }
            )
        )
        try:
            meta = consumer.list_topics(self._topic, timeout=10).topics.get(self._topic)
            if meta is None or meta.error is not None:
                raise KafkaException(
                    KafkaError(
                        KafkaError.UNKNOWN_TOPIC_OR_PART, f"topic {self._topic!r} does not exist"
                    )
                )
            partitions = [TopicPartition(self._topic, p, OFFSET_BEGINNING) for p in meta.partitions]
            ends: dict[int, int] = {}
            for tp in partitions:
                low, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
                if high > low:
                    ends[tp.partition] = high
            consumer.assign(partitions)
        except BaseException:
            consumer.close()
            raise
        return consumer, ends

    def _follow(self, consumer: Consumer, ends: dict[int, int]) -> None:
        """Catch up to ``ends`` (keeping the latest record per key), then follow."""
        latest: dict[bytes | None, bytes | None] = {}
        catching_up = True
        if not ends:
            self._finish_catch_up(latest)
            catching_up = False
        while not self._stop.is_set():
            message = consumer.poll(_POLL_S)
            if message is None:
                if catching_up:
                    self._drop_reached(consumer, ends)
                    if not ends:
                        self._finish_catch_up(latest)
                        catching_up = False
                continue
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                _log.warning("model_updates_error", step=_STEP, error=str(error))
                continue
            key, value = message.key(), message.value()
            if not catching_up:
                self.apply(key, value)
                continue
            latest[key] = value
            partition, offset = message.partition(), message.offset()
            if partition in ends and offset is not None and offset + 1 >= ends[partition]:
                del ends[partition]
            if not ends:
                self._finish_catch_up(latest)
                catching_up = False

    def _drop_reached(self, consumer: Consumer, ends: dict[int, int]) -> None:
        """Forget partitions read up to their start-up end (compaction leaves offset gaps)."""
        positions = consumer.position([TopicPartition(self._topic, p) for p in ends])
        for tp in positions:
            if tp.offset >= 0 and tp.offset >= ends.get(tp.partition, 0):
                ends.pop(tp.partition, None)

    def _finish_catch_up(self, latest: dict[bytes | None, bytes | None]) -> None:
        """Apply the latest record per role (champion first); the first time, fall back."""
        for key in sorted(latest, key=lambda k: k != b"champion"):
            self.apply(key, latest[key])
        if self._caught_up.is_set():
            return
        self.fall_back_to_registry()
        self._caught_up.set()
        champion = self.models.served("champion")
        _log.info(
            "model_updates_caught_up",
            step=_STEP,
            topic=self._topic,
            champion=None if champion is None else champion.version,
        )
