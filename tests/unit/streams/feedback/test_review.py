"""ReviewFeed: what the feedback service queues for review, and how it rides out a Redis failure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from schemas import Decision, Label
from streams.feedback import _review
from streams.feedback._review import ReviewFeed
from streams.settings import Settings
from tests.doubles import FakeClock, decision_payload, label_payload


class _FakeStore:
    """Records the ReviewStore calls; ``failures`` makes the next calls raise like a dead Redis.

    Like the real store, a call with nothing to write is not a write (and is not recorded).
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.failures: dict[str, int] = {}

    def _call(self, name: str, payload: Any) -> None:
        if self.failures.get(name, 0) > 0:
            self.failures[name] -= 1
            raise RedisConnectionError("Redis is down")
        self.calls.append((name, payload))

    def record_decisions(
        self, queued: Sequence[Decision], recent: Sequence[Decision], user_history: int
    ) -> None:
        if queued or (recent and user_history):
            tx = [d.tx_id for d in queued], [d.tx_id for d in recent], user_history
            self._call("record_decisions", tx)

    def record_labels(self, labels: Sequence[Label]) -> None:
        if labels:
            self._call("record_labels", [label.tx_id for label in labels])

    def publish_online_quality(self, quality: Mapping[str, float]) -> None:
        self._call("publish_online_quality", dict(quality))

    def trim(self, max_cases: int) -> int:
        self._call("trim", max_cases)
        return 0

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(_review, "time", SimpleNamespace(monotonic=fake))
    return fake


def _feed(store: _FakeStore, **settings: Any) -> ReviewFeed:
    options: dict[str, Any] = {
        "console_queue_decisions": ["REVIEW"],
        "console_user_history": 5,
        "console_queue_max": 100,
    }
    options.update(settings)
    return ReviewFeed(store, Settings(**options))  # type: ignore[arg-type]


def _decision(kind: str, tx_id: str) -> Decision:
    return Decision.model_validate(decision_payload(decision=kind, tx_id=tx_id))


def _label(tx_id: str) -> Label:
    return Label.model_validate(label_payload(tx_id, "u-double-1"))


def test_only_unlabelled_decisions_of_the_configured_kinds_are_queued(clock: FakeClock) -> None:
    store = _FakeStore()
    feed = _feed(store)
    feed.decision(_decision("REVIEW", "tx-review"), labelled=False)
    feed.decision(_decision("REVIEW", "tx-known"), labelled=True)
    feed.decision(_decision("BLOCK", "tx-block"), labelled=False)  # not in the settings' kinds
    feed.decision(_decision("APPROVE", "tx-approve"), labelled=False)

    feed.flush()

    recent = ["tx-review", "tx-known", "tx-block", "tx-approve"]
    assert store.calls[0] == ("record_decisions", (["tx-review"], recent, 5))


def test_block_is_queued_when_configured(clock: FakeClock) -> None:
    store = _FakeStore()
    feed = _feed(store, console_queue_decisions=["REVIEW", "BLOCK"], console_user_history=0)
    feed.decision(_decision("BLOCK", "tx-block"), labelled=False)

    feed.flush()

    assert store.calls[0] == ("record_decisions", (["tx-block"], [], 0))  # no user history kept


def test_cases_are_written_before_labels_and_only_once(clock: FakeClock) -> None:
    store = _FakeStore()
    feed = _feed(store)
    feed.decision(_decision("REVIEW", "tx-1"), labelled=False)
    feed.label(_label("tx-1"))

    feed.flush()
    feed.flush()  # nothing new: no write at all

    assert store.calls == [
        ("record_decisions", (["tx-1"], ["tx-1"], 5)),
        ("record_labels", ["tx-1"]),
    ]


def test_a_redis_failure_keeps_the_batch_and_backs_off(clock: FakeClock) -> None:
    store = _FakeStore()
    feed = _feed(store)
    feed.decision(_decision("REVIEW", "tx-1"), labelled=False)
    feed.label(_label("tx-0"))
    store.failures["record_decisions"] = 1

    feed.flush()
    assert store.calls == []

    feed.decision(_decision("REVIEW", "tx-2"), labelled=False)
    clock.advance(_review._BACKOFF_S - 0.1)
    feed.flush()
    feed.tick({"recent_precision": 0.5})
    assert store.calls == []  # still backing off: no call, not even the upkeep

    clock.advance(0.2)
    feed.flush()

    assert store.calls == [
        ("record_decisions", (["tx-1", "tx-2"], ["tx-1", "tx-2"], 5)),
        ("record_labels", ["tx-0"]),
    ]


def test_a_failure_on_labels_retries_only_the_labels(clock: FakeClock) -> None:
    store = _FakeStore()
    feed = _feed(store)
    feed.decision(_decision("REVIEW", "tx-1"), labelled=False)
    feed.label(_label("tx-1"))
    store.failures["record_labels"] = 1

    feed.flush()
    clock.advance(_review._BACKOFF_S)
    feed.flush()

    assert store.calls == [
        ("record_decisions", (["tx-1"], ["tx-1"], 5)),
        ("record_labels", ["tx-1"]),
    ]


def test_the_buffer_is_bounded_and_keeps_the_newest(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_review, "_MAX_PENDING", 2)
    store = _FakeStore()
    feed = _feed(store)
    store.failures["record_decisions"] = 1
    for n in range(4):
        feed.decision(_decision("REVIEW", f"tx-{n}"), labelled=False)

    feed.flush()
    clock.advance(_review._BACKOFF_S)
    feed.flush()

    assert store.calls == [("record_decisions", (["tx-2", "tx-3"], ["tx-2", "tx-3"], 5))]


def test_tick_publishes_changed_quality_and_trims(clock: FakeClock) -> None:
    store = _FakeStore()
    feed = _feed(store, console_queue_max=7)

    feed.tick({"recent_precision": 0.5})
    feed.tick({"recent_precision": 0.5})  # unchanged: not published again
    feed.tick({"recent_precision": 0.75})

    assert store.calls == [
        ("publish_online_quality", {"recent_precision": 0.5}),
        ("trim", 7),
        ("trim", 7),
        ("publish_online_quality", {"recent_precision": 0.75}),
        ("trim", 7),
    ]


def test_a_failed_upkeep_backs_off_and_publishes_later(clock: FakeClock) -> None:
    store = _FakeStore()
    feed = _feed(store)
    store.failures["publish_online_quality"] = 1

    feed.tick({"labels": 3.0})
    feed.tick({"labels": 3.0})  # backing off
    assert store.calls == []

    clock.advance(_review._BACKOFF_S)
    feed.tick({"labels": 3.0})  # the failed publication is retried, not forgotten

    assert store.calls == [("publish_online_quality", {"labels": 3.0}), ("trim", 100)]
