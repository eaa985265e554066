"""The review queue in Redis: written by the feedback service, read by the console.

The feedback service sees every decision and every label, so it keeps the queue: a
REVIEW/BLOCK decision becomes a case, a label on ``labels`` resolves it. Redis (not the
Faust tables, which are sharded by partition) is where they meet, because any console
must see the whole queue whichever worker consumed which partition. Every write is
idempotent (ZADD NX, HSET of a fixed field, SADD), so a batch that the feedback service
reads again after a crash, or a label that the console records before the feedback
service sees it, changes nothing the second time.

Keys (under ``fraudstream:review:<queue name>:``, one queue per team or environment
sharing a Redis): ``queue:newest`` and ``queue:score`` (sorted sets of
tx_ids by decision time and by score), ``case:<tx_id>`` (the decision as decided, with a
TTL), ``history:<tx_id>`` (a hash of every label given, one field per label),
``user:<user_id>`` (the user's recent decisions, newest first), ``labelled`` (recently
labelled tx_ids), ``labelled:<UTC day>`` (the day's labelled tx_ids), ``online`` (the
online model's progressive quality) and ``version`` (bumped on every change, so a page
knows when to refresh).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, Literal

import orjson
import redis

from schemas import Decision, Label, SchemaValidationError, decode, encode
from schemas._types import epoch_ms, format_timestamp
from streams._redis_scripts import SEPARATOR, USER_HISTORY
from streams.redis_store import keys

__all__ = ["QueueFilter", "ReviewStore", "Summary", "UserEvent"]

Order = Literal["newest", "score"]

#: Members fetched per round trip while filtering the queue.
_SCAN_CHUNK = 200
#: Recently labelled transactions kept for the queue page's "recently labelled" list.
_RECENT_LABELLED = 200
#: Days a day's labelled set is kept (today's count needs only today's).
_DAY_TTL = timedelta(days=2)
#: A score-less (rules-only) decision sorts below every scored one.
_NO_SCORE = -1.0


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).date().isoformat()


@dataclass(frozen=True)
class QueueFilter:
    """Which open cases a page shows, and in what order (every bound inclusive)."""

    order: Order = "newest"
    rule: str | None = None
    decision: Literal["REVIEW", "BLOCK"] | None = None
    min_score: float | None = None
    max_score: float | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, case: Decision) -> bool:
        """Whether ``case`` passes every filter set."""
        if self.decision is not None and case.decision != self.decision:
            return False
        if self.rule is not None and all(hit.id != self.rule for hit in case.rules_fired):
            return False
        if self.min_score is not None or self.max_score is not None:
            if case.score is None:
                return False
            if self.min_score is not None and case.score < self.min_score:
                return False
            if self.max_score is not None and case.score > self.max_score:
                return False
        if self.since is not None and case.decided_at < self.since:
            return False
        return self.until is None or case.decided_at <= self.until

    def _range(self) -> tuple[float, float]:
        """The sorted-set range that pre-selects candidates, in the order's own scores."""
        if self.order == "score":
            low = -math.inf if self.min_score is None else self.min_score
            high = math.inf if self.max_score is None else self.max_score
        else:
            low = -math.inf if self.since is None else epoch_ms(self.since)
            high = math.inf if self.until is None else epoch_ms(self.until)
        return low, high


@dataclass(frozen=True)
class Summary:
    """The console header: queue size, labels today, the online model's recent precision."""

    queue_size: int
    labels_today: int
    online_precision: float | None
    online_labels: int
    version: int

    def to_json(self) -> dict[str, Any]:
        """The summary as the page's live updates carry it."""
        return asdict(self)


@dataclass(frozen=True)
class UserEvent:
    """One of a user's recent decisions, as the case view lists them."""

    tx_id: str
    decision: str
    score: float | None
    amount: str | None
    merchant_id: str | None
    event_time: str
    reasons: list[str]


def _user_event(decision: Decision) -> bytes:
    return orjson.dumps(
        {
            "tx_id": decision.tx_id,
            "decision": decision.decision,
            "score": decision.score,
            "amount": None if decision.amount is None else format(decision.amount, "f"),
            "merchant_id": decision.merchant_id,
            "event_time": format_timestamp(decision.event_time),
            "reasons": decision.reasons[:3],
        }
    )


def _history_field(label: Label) -> str:
    who = label.analyst_id or ""
    return f"{epoch_ms(label.labeled_at)}:{label.source}:{who}:{label.label}"


class ReviewStore:
    """Reads and idempotent writes of the review queue; see the module docstring."""

    def __init__(
        self, client: redis.Redis, *, queue: str = "default", case_ttl_s: int = 7 * 86400
    ) -> None:
        # redis-py types every reply as a union of all its shapes: Any at this boundary.
        self._redis: Any = client
        self._queue = queue
        self._case_ttl_s = case_ttl_s
        self._user_history_script = client.register_script(USER_HISTORY)

    def _key(self, part: str) -> str:
        return keys.review(f"{self._queue}:{part}")

    # --- writes (the feedback service; the console records its own labels too) ------------

    def record_decisions(
        self, queued: Sequence[Decision], recent: Sequence[Decision], user_history: int
    ) -> None:
        """Open a case for each of ``queued``; add ``recent`` to their users' histories."""
        if not queued and not (recent and user_history):
            return
        pipe = self._redis.pipeline(transaction=False)
        for case in queued:
            pipe.set(self._key(f"case:{case.tx_id}"), encode(case), ex=self._case_ttl_s)
            pipe.zadd(self._key("queue:newest"), {case.tx_id: epoch_ms(case.decided_at)}, nx=True)
            score = _NO_SCORE if case.score is None else case.score
            pipe.zadd(self._key("queue:score"), {case.tx_id: score}, nx=True)
        if user_history and recent:
            # One script call for the batch (see streams._redis_scripts); the list keeps
            # room for redelivered copies, which user_events drops.
            self._user_history_script(
                args=[
                    self._key("user:"),
                    user_history * 2,
                    self._case_ttl_s,
                    SEPARATOR.join(decision.user_id for decision in recent),
                    SEPARATOR.join(_user_event(decision).decode() for decision in recent),
                ],
                client=pipe,
            )
        if queued:
            pipe.incr(self._key("version"))
        pipe.execute()

    def record_labels(self, labels: Sequence[Label]) -> None:
        """Resolve each label's case: out of the queue, into its history and today's count."""
        if not labels:
            return
        pipe = self._redis.pipeline(transaction=False)
        for label in labels:
            pipe.zrem(self._key("queue:newest"), label.tx_id)
            pipe.zrem(self._key("queue:score"), label.tx_id)
            history = self._key(f"history:{label.tx_id}")
            pipe.hset(history, _history_field(label), encode(label))
            pipe.expire(history, self._case_ttl_s)
            pipe.zadd(self._key("labelled"), {label.tx_id: epoch_ms(label.labeled_at)})
            day = self._key(f"labelled:{_day(label.labeled_at)}")
            pipe.sadd(day, label.tx_id)
            pipe.expire(day, _DAY_TTL)
        pipe.zremrangebyrank(self._key("labelled"), 0, -_RECENT_LABELLED - 1)
        pipe.incr(self._key("version"))
        pipe.execute()

    def publish_online_quality(self, quality: Mapping[str, float]) -> None:
        """The online learner's progressive figures, for the header (NaN: not known yet)."""
        known = {name: value for name, value in quality.items() if math.isfinite(value)}
        self._redis.set(self._key("online"), orjson.dumps(known))

    def trim(self, max_cases: int) -> int:
        """Drop the oldest open cases beyond ``max_cases``; return how many left."""
        excess = int(self._redis.zcard(self._key("queue:newest"))) - max_cases
        if excess <= 0:
            return 0
        oldest = self._redis.zrange(self._key("queue:newest"), 0, excess - 1)
        self._forget(oldest)
        return len(oldest)

    def _forget(self, tx_ids: Sequence[bytes | str]) -> None:
        if tx_ids:
            pipe = self._redis.pipeline(transaction=False)
            pipe.zrem(self._key("queue:newest"), *tx_ids)
            pipe.zrem(self._key("queue:score"), *tx_ids)
            pipe.incr(self._key("version"))
            pipe.execute()

    # --- reads (the console) -------------------------------------------------------------

    def open_cases(
        self, wanted: QueueFilter, limit: int = 50, scan_max: int = 5000
    ) -> list[Decision]:
        """Up to ``limit`` open cases passing ``wanted``, in its order."""
        return list(islice(self._matching(wanted, scan_max), limit))

    def next_open(self, wanted: QueueFilter, after: str, scan_max: int = 5000) -> str | None:
        """The open case after ``after`` in ``wanted``'s order; None if ``after`` is the last.

        When ``after`` is not among the open cases (already gone), the first one.
        """
        first: str | None = None
        passed = False
        for case in self._matching(wanted, scan_max):
            if passed:
                return case.tx_id
            if case.tx_id == after:
                passed = True
            elif first is None:
                first = case.tx_id
        return None if passed else first

    def _matching(self, wanted: QueueFilter, scan_max: int) -> Iterator[Decision]:
        """The open cases passing ``wanted``, in its order, read a chunk at a time.

        The order's sorted set narrows the candidates by range (time or score); the other
        filters are checked on the cases themselves, at most ``scan_max`` of them, so a
        filter that matches nothing still answers quickly on a full queue. Cases whose
        decision expired are dropped from the queue on the way.
        """
        queue = self._key("queue:score" if wanted.order == "score" else "queue:newest")
        low, high = wanted._range()
        offset = 0
        while offset < scan_max:
            tx_ids = self._redis.zrevrangebyscore(queue, high, low, start=offset, num=_SCAN_CHUNK)
            if not tx_ids:
                return
            offset += len(tx_ids)
            raws = self._redis.mget([self._key(f"case:{tx.decode()}") for tx in tx_ids])
            expired = [tx for tx, raw in zip(tx_ids, raws, strict=True) if raw is None]
            self._forget(expired)
            offset -= len(expired)
            for raw in raws:
                case = _decision(raw)
                if case is not None and wanted.matches(case):
                    yield case

    def is_open(self, tx_id: str) -> bool:
        """Whether ``tx_id`` is still waiting in the queue."""
        return self._redis.zscore(self._key("queue:newest"), tx_id) is not None

    def case(self, tx_id: str) -> Decision | None:
        """The decision of a case, open or labelled (None once it expired)."""
        raw = self._redis.get(self._key(f"case:{tx_id}"))
        if raw is None:  # not queued (e.g. an APPROVE charged back): the decision cache
            raw = self._redis.get(keys.decision(tx_id))
        return _decision(raw)

    def history(self, tx_id: str) -> list[Label]:
        """Every label given to ``tx_id``, oldest first."""
        labels: list[Label] = []
        for raw in self._redis.hvals(self._key(f"history:{tx_id}")):
            try:
                labels.append(decode(raw, Label))
            except SchemaValidationError:
                continue
        return sorted(labels, key=lambda label: label.labeled_at)

    def user_events(self, user_id: str, limit: int) -> list[UserEvent]:
        """The user's recent decisions, newest first, each transaction once."""
        seen: set[str] = set()
        events: list[UserEvent] = []
        for raw in self._redis.lrange(self._key(f"user:{user_id}"), 0, -1):
            event = UserEvent(**orjson.loads(raw))
            if event.tx_id not in seen:
                seen.add(event.tx_id)
                events.append(event)
        events.sort(key=lambda event: event.event_time, reverse=True)
        return events[:limit]

    def recently_labelled(self, limit: int = 20) -> list[str]:
        """The last ``limit`` labelled tx_ids, newest first."""
        return [tx.decode() for tx in self._redis.zrevrange(self._key("labelled"), 0, limit - 1)]

    def version(self) -> int:
        """A counter that moves whenever the queue changes."""
        return int(self._redis.get(self._key("version")) or 0)

    def summary(self, now: datetime | None = None) -> Summary:
        """Queue size, labels today (UTC), the online model's recent precision."""
        today = _day(now or datetime.now(UTC))
        pipe = self._redis.pipeline(transaction=False)
        pipe.zcard(self._key("queue:newest"))
        pipe.scard(self._key(f"labelled:{today}"))
        pipe.get(self._key("online"))
        pipe.get(self._key("version"))
        size, labelled, online_raw, version = pipe.execute()
        online: dict[str, float] = orjson.loads(online_raw) if online_raw else {}
        precision = online.get("recent_precision")
        return Summary(
            queue_size=int(size),
            labels_today=int(labelled),
            online_precision=None if precision is None else float(precision),
            online_labels=int(online.get("labels", 0)),
            version=int(version or 0),
        )


def _decision(raw: bytes | None) -> Decision | None:
    if raw is None:
        return None
    try:
        return decode(raw, Decision)
    except SchemaValidationError:
        return None
