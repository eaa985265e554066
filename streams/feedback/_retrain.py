"""One retrain run as the feedback loop does it: store plus history, gate, promote, publish.

Shared by the service's weekly schedule and ``fraudstream retrain``, so both report the
same outcomes: ``champion`` or ``challenger`` (the gate's verdict) or ``failed``. A
failed run changes nothing: the candidate is built in the registry's staging folder and
only a finished, gated model is ever registered.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from models.feedback_training import retrain_from_feedback
from models.registry import ModelRegistry
from models.retrain import RetrainOutcome
from streams.feedback import _metrics as metrics
from streams.model_publisher import KafkaModelPublisher
from streams.settings import Settings

__all__ = ["open_publishing_registry", "run_retrain"]

_log = structlog.get_logger("feedback")


def open_publishing_registry(settings: Settings) -> tuple[ModelRegistry, str | None]:
    """The registry, publishing to ``model-updates`` when Kafka is there (else why not)."""
    publisher = KafkaModelPublisher(settings)
    reason = publisher.unreachable_reason()
    root = settings.resolved_registry_dir
    if reason is None:
        return ModelRegistry(root, publish=publisher), None
    return ModelRegistry(root), reason


def run_retrain(
    settings: Settings, trigger: str, on_stage: Callable[[str], None] | None = None
) -> RetrainOutcome | None:
    """Retrain now; returns the outcome, or None when the run failed (reported, not raised)."""
    started = time.monotonic()
    _log.info("retrain started", step="retrain", trigger=trigger)
    try:
        registry, unpublished = open_publishing_registry(settings)
        outcome = retrain_from_feedback(
            settings.retrain_history,
            settings.resolved_offline_store_dir,
            registry,
            label_delay=settings.retrain_label_delay,
            on_stage=on_stage,
        )
    except Exception as exc:  # any failure (data, XGBoost, disk): reported, nothing changed
        metrics.RETRAINS.labels(outcome="failed").inc()
        _log.error(
            "retrain failed; nothing changed", step="retrain", trigger=trigger, error=str(exc)
        )
        return None
    verdict = outcome.gate.verdict
    metrics.RETRAINS.labels(outcome=verdict).inc()
    _log.info(
        "retrain finished",
        step="retrain",
        trigger=trigger,
        version=outcome.manifest.version,
        verdict=verdict,
        reason=outcome.gate.reason,
        publish_error=outcome.publish_error or unpublished,
        seconds=round(time.monotonic() - started, 1),
    )
    return outcome
