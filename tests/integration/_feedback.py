"""Helpers for the feedback-loop integration tests: topics, a ``fraudstream feedback`` child.

The service runs as an operator runs it (the installed command, FRAUD_* settings, its own
state directory); decisions and labels are produced straight to its topics, so each test
states exactly which records exist and in which order they arrive.
"""

from __future__ import annotations

import os
import urllib.request
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from streams.producing import RecordProducer
from streams.settings import Settings
from tests.integration._children import ChildService
from tests.integration._scorer import FRAUDSTREAM, free_port

__all__ = ["FeedbackProcess", "FeedbackTopics", "send"]


@dataclass(frozen=True)
class FeedbackTopics:
    """Fresh decisions, labels and model-updates topics for one test."""

    decisions: str
    labels: str
    model_updates: str

    @classmethod
    def fresh(cls) -> FeedbackTopics:
        tag = uuid.uuid4().hex
        return cls(f"test-decisions-{tag}", f"test-labels-{tag}", f"test-model-updates-{tag}")

    @property
    def names(self) -> list[str]:
        return [self.decisions, self.labels, self.model_updates]


class FeedbackProcess(ChildService):
    """``fraudstream feedback`` on ``topics`` with all its state under ``state_dir``."""

    name = "feedback"

    def __init__(
        self,
        topics: FeedbackTopics,
        state_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        port = free_port()
        settings_env = {
            **os.environ,
            "FRAUD_TOPIC_DECISIONS": topics.decisions,
            "FRAUD_TOPIC_LABELS": topics.labels,
            "FRAUD_TOPIC_MODEL_UPDATES": topics.model_updates,
            "FRAUD_STATE_DIR": str(state_dir),
            "FRAUD_FEEDBACK_APP_ID": f"test-feedback-{uuid.uuid4().hex[:12]}",
            "FRAUD_FEEDBACK_METRICS_PORT": str(port),
            # its own review console port and queue: tests run side by side on one Redis
            "FRAUD_CONSOLE_PORT": str(free_port()),
            "FRAUD_CONSOLE_QUEUE_NAME": f"test-{uuid.uuid4().hex[:12]}",
            "FRAUD_FEEDBACK_BATCH_WITHIN_S": "0.2",
            "FRAUD_ONLINE_PUBLISH_INTERVAL_S": "2",
            **(env or {}),
        }
        state_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(
            [FRAUDSTREAM, "feedback"], settings_env, state_dir / "feedback.log", metrics_port=port
        )
        self.state_dir = state_dir

    @property
    def store_dir(self) -> Path:
        return self.state_dir / "offline-store"

    def ready(self) -> bool:
        """True once /readyz answers 200 (state restored, consuming)."""
        self.assert_running()
        url = f"http://127.0.0.1:{self.metrics_port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def value(self, name: str, **labels: str) -> float:
        """One sample of a metric (0 when absent)."""
        wanted = tuple(sorted(labels.items()))
        try:
            return self.metric(name).get(wanted, 0.0)
        except OSError:
            return 0.0


def send(settings: Settings, topic: str, records: Iterable[Mapping[str, Any]]) -> int:
    """Produce JSON records keyed by their ``user_id`` and wait for all acknowledgements."""
    producer = RecordProducer(settings, topic)
    for record in records:
        producer.send(str(record["user_id"]).encode(), orjson.dumps(record))
    assert producer.flush(30) == 0
    assert producer.stats.failed == 0, producer.stats.errors
    return producer.stats.delivered
