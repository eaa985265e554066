"""Sending an analyst's verdict: the same Label on the same topic as ``fraudstream label``.

The console waits for the broker's acknowledgement before it reports a label as given,
so a verdict the page confirmed is on ``labels`` (acks=all, idempotent producer).
"""

from __future__ import annotations

import threading
from typing import Protocol

from schemas import Label, encode
from streams.exceptions import PublishError
from streams.producing import RecordProducer
from streams.settings import Settings

__all__ = ["KafkaLabelSender", "LabelSender"]


class LabelSender(Protocol):
    """Delivers one label, or raises :class:`~streams.exceptions.PublishError`."""

    def send(self, label: Label) -> None:
        """Deliver ``label`` and return once it is acknowledged."""


class KafkaLabelSender:
    """One producer for the console's labels (keyed by user_id, like every label)."""

    def __init__(self, settings: Settings, timeout_s: float = 10.0) -> None:
        self._producer = RecordProducer(settings, settings.topic_labels)
        self._timeout_s = timeout_s
        self._lock = threading.Lock()  # delivery counts are per label: one at a time

    def send(self, label: Label) -> None:
        """Send ``label`` and wait for its acknowledgement."""
        with self._lock:
            before = self._producer.stats.delivered
            self._producer.send(label.user_id.encode(), encode(label))
            self._producer.flush(self._timeout_s)
            if self._producer.stats.delivered == before:
                errors = "; ".join(self._producer.stats.errors[-1:]) or "no acknowledgement"
                raise PublishError(f"the label was not acknowledged by Kafka ({errors}); try again")
