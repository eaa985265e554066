"""A simulated fraud team for the demo: analysts work the queue, customers charge back.

Real labels arrive in two ways, and the feedback loop must learn from both: an analyst
reviews a share of what the system flagged (REVIEW and BLOCK) within minutes, and fraud
the system let through comes back later as a chargeback from the customer. The truth
comes from the simulator (``fraudstream produce --truth FILE``), which the analyst only
"discovers" when a decision is worked or a chargeback falls due.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from schemas import Decision, SchemaValidationError, decode, encode
from streams.consuming import read_topic
from streams.labelling import make_label
from streams.producing import RecordProducer
from streams.settings import Settings

__all__ = ["AnalystPolicy", "SimulatedAnalyst"]


@dataclass(frozen=True)
class AnalystPolicy:
    """How much of the queue gets worked, and how long verdicts take to arrive."""

    review_share: float = 0.8
    block_share: float = 0.5
    analyst_delay_s: float = 3.0
    chargeback_delay_s: float = 20.0
    seed: int = 11


@dataclass(order=True)
class _Due:
    at: float
    tx_id: str = field(compare=False)
    user_id: str = field(compare=False)
    verdict: str = field(compare=False)
    source: str = field(compare=False)


class _Truth:
    """The simulator's truth file, read incrementally as it grows."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0
        self._facts: dict[str, str] = {}

    def verdict(self, tx_id: str) -> str | None:
        if tx_id not in self._facts:
            self._read_more()
        return self._facts.pop(tx_id, None)

    def _read_more(self) -> None:
        if not self._path.exists():
            return
        with self._path.open("rb") as handle:
            handle.seek(self._offset)
            chunk = handle.read()
        complete = chunk.rfind(b"\n") + 1
        self._offset += complete
        for line in chunk[:complete].splitlines():
            fact = orjson.loads(line)
            self._facts[str(fact["tx_id"])] = "fraud" if int(fact["label"]) else "legit"


class SimulatedAnalyst:
    """Labels decisions from ``decisions`` onto ``labels`` on a thread until stopped."""

    def __init__(
        self,
        settings: Settings,
        truth: Path,
        policy: AnalystPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._truth = _Truth(truth)
        self._policy = policy or AnalystPolicy()
        self._clock = clock
        self._rng = random.Random(self._policy.seed)  # noqa: S311 - a simulation, not security
        self._due: list[_Due] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="analyst", daemon=True)
        self.sent: Counter[str] = Counter()

    def start(self) -> None:
        """Start working the queue."""
        self._thread.start()

    def stop(self) -> None:
        """Stop; labels not yet due are not sent (the analyst went home)."""
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        producer = RecordProducer(self._settings, self._settings.topic_labels)
        for message in read_topic(
            self._settings,
            self._settings.topic_decisions,
            from_beginning=True,
            stop=self._stop.is_set,
        ):
            self._consider(message.value())
            self._send_due(producer)
        self._send_due(producer)
        producer.flush(30)

    def _consider(self, raw: bytes | None) -> None:
        try:
            decision = decode(raw or b"", Decision)
        except SchemaValidationError:
            return
        truth = self._truth.verdict(decision.tx_id)
        if truth is None:
            return
        policy = self._policy
        now = self._clock()
        share = {"REVIEW": policy.review_share, "BLOCK": policy.block_share}.get(
            decision.decision, 0.0
        )
        if share and self._rng.random() < share:
            jitter = self._rng.uniform(0.5, 1.5)
            due = _Due(now + policy.analyst_delay_s * jitter, decision.tx_id, decision.user_id,
                       truth, "analyst")  # fmt: skip
            heapq.heappush(self._due, due)
        elif decision.decision == "APPROVE" and truth == "fraud":
            due = _Due(now + policy.chargeback_delay_s, decision.tx_id, decision.user_id,
                       "fraud", "chargeback")  # fmt: skip
            heapq.heappush(self._due, due)

    def _send_due(self, producer: RecordProducer) -> None:
        now = self._clock()
        while self._due and self._due[0].at <= now:
            item = heapq.heappop(self._due)
            label = make_label(
                item.tx_id,
                item.user_id,
                item.verdict,
                source=item.source,
                analyst_id="sim-analyst" if item.source == "analyst" else None,
            )
            producer.send(label.user_id.encode(), encode(label))
            self.sent[f"{item.source}:{item.verdict}"] += 1
