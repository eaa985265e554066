"""Sending records to Kafka: an idempotent producer that counts what was delivered.

Shared by ``produce``, ``label``, ``replay`` and the benchmark, so delivery accounting
and pacing are written once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from streams.settings import Settings

__all__ = ["DeliveryStats", "Pacer", "RecordProducer"]


@dataclass
class DeliveryStats:
    """What the broker acknowledged, and what it refused (with the first errors seen)."""

    delivered: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def on_delivery(self, error: KafkaError | None, _message: Message) -> None:
        """Librdkafka delivery callback."""
        if error is None:
            self.delivered += 1
            return
        self.failed += 1
        if len(self.errors) < 5:
            self.errors.append(str(error))


class RecordProducer:
    """An idempotent ``acks=all`` producer (``murmur2_random``) with delivery counting."""

    def __init__(self, settings: Settings, topic: str, **overrides: Any) -> None:
        self.topic = topic
        self.stats = DeliveryStats()
        self._producer = Producer(settings.producer_config(**overrides))

    def send(
        self,
        key: bytes | None,
        value: bytes,
        headers: list[tuple[str, str | bytes | None]] | None = None,
    ) -> None:
        """Queue one record; waits for room when the local queue is full, never drops."""
        while True:
            try:
                self._producer.produce(
                    self.topic, value, key, headers=headers, on_delivery=self.stats.on_delivery
                )
                break
            except BufferError:
                self._producer.poll(0.05)
        self._producer.poll(0)

    def flush(self, timeout_s: float = 60.0) -> int:
        """Wait for outstanding deliveries; returns how many are still undelivered."""
        remaining: int = self._producer.flush(timeout_s)
        return remaining

    @property
    def in_flight(self) -> int:
        """Records queued locally or awaiting acknowledgement."""
        return len(self._producer)


class Pacer:
    """Open-loop pacing at a fixed rate: sends fall behind the schedule, never slow it.

    ``due()`` says how many records the schedule wants sent by now, so a slow send makes
    the next batch larger instead of shifting every later send (no coordinated omission).
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.perf_counter) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._clock = clock
        self._start = clock()
        self.sent = 0

    def due(self) -> int:
        """Records that should have been sent by now and were not yet."""
        return max(0, int((self._clock() - self._start) * self.rate) - self.sent)

    def wait(self) -> None:
        """Sleep until the next record is due (at most 50 ms, to stay responsive)."""
        next_at = self._start + (self.sent + 1) / self.rate
        delay = next_at - self._clock()
        if delay > 0:
            time.sleep(min(delay, 0.05))
