"""Redis as the scorer sees it: batched enrichment reads and decision-cache writes.

One round trip per batch (a pipeline), never one per event, with a short socket timeout.
A failed or slow Redis must not stall decisions: the batch goes on without enrichment,
flagged degraded with the cause, and a circuit breaker (:mod:`streams._redis_circuit`)
stops the hot path from asking Redis again until a background probe finds it answering
fast, so a dead or slow server costs one timeout per outage, not one per batch or back-off.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import numpy as np
import redis
from numpy.typing import NDArray
from redis.exceptions import RedisError

from operators.enrichment import Enrichment
from operators.merchant_labels import (
    MERCHANT_LABEL_FEATURES,
    MERCHANT_RISK_FEATURE,
    merchant_label_matrix,
)
from schemas import Transaction
from schemas._types import epoch_ms
from streams._redis_circuit import RedisCircuit
from streams._redis_client import redis_client
from streams._redis_scripts import CACHE_DECISIONS, ENRICH, SEPARATOR

__all__ = ["Enrichment", "ListField", "RedisStore", "keys"]

ListField = Literal["user", "card", "device", "merchant"]
_LIST_FIELDS: tuple[ListField, ...] = ("user", "card", "device", "merchant")
_RISK_COLUMN = MERCHANT_LABEL_FEATURES.index(MERCHANT_RISK_FEATURE)
#: SETs per pipeline round trip when writing merchant records.
_WRITE_CHUNK = 1000


class keys:  # noqa: N801 - a namespace of key builders
    """Every Redis key fraudstream uses, in one place."""

    prefix = "fraudstream"

    @staticmethod
    def merchant_risk(merchant_id: str) -> str:
        """A merchant's label record (``operators.merchant_labels``), or a bare risk."""
        return f"{keys.prefix}:risk:merchant:{merchant_id}"

    @staticmethod
    def listing(kind: Literal["allow", "deny"], field: ListField) -> str:
        """The set of ids on an allow or deny list."""
        return f"{keys.prefix}:{kind}:{field}"

    @staticmethod
    def decision(tx_id: str) -> str:
        """The decision cache entry of one transaction (idempotency by tx_id)."""
        return f"{keys.prefix}:decision:{tx_id}"

    @staticmethod
    def drift(reporter: str) -> str:
        """One scorer process's latest drift summary (read by the feedback service)."""
        return f"{keys.prefix}:drift:{reporter}"

    @staticmethod
    def review(part: str) -> str:
        """The review console's keys (``streams.console``): queue, cases, history, stats."""
        return f"{keys.prefix}:review:{part}"


_FIELD_ATTRIBUTE: dict[ListField, str] = {
    "user": "user_id", "card": "card_id", "device": "device_id", "merchant": "merchant_id",
}  # fmt: skip
_LIST_ATTRIBUTES = tuple(_FIELD_ATTRIBUTE[field] for field in _LIST_FIELDS)
#: The order of each field's two list keys in the enrichment script's KEYS.
_KINDS: tuple[Literal["deny", "allow"], ...] = ("deny", "allow")


def _flags(row_flags: bytes) -> NDArray[np.bool_]:
    """The script's '0'/'1' string, one character per row, as booleans."""
    flags: NDArray[np.bool_] = np.frombuffer(row_flags, dtype=np.uint8) == ord("1")
    return flags


class RedisStore:
    """Batched, time-bounded access to the enrichment data and the decision cache."""

    def __init__(
        self,
        dsn: str,
        *,
        timeout_s: float = 0.05,
        backoff_s: float = 0.25,
        decision_ttl_s: int = 3600,
        clock: Callable[[], float] = time.monotonic,
        probe_in_background: bool = True,
    ) -> None:
        """``backoff_s``: how often the circuit's probe PINGs a failing Redis.

        ``probe_in_background=False`` leaves probing to the caller
        (``store.circuit.probe_once()``), for tests with a fake ``clock``.
        """
        options: dict[str, Any] = {
            "socket_timeout": timeout_s,
            "socket_connect_timeout": timeout_s,
            "retry_on_timeout": False,
            "health_check_interval": 0,
        }
        self._client = redis_client(dsn, **options)
        # The recovery probe's own connection: a PING never queues behind the hot path's.
        self._probe_client = redis_client(dsn, **options)
        self._decision_ttl_s = decision_ttl_s
        self.circuit = RedisCircuit(
            self._probe_client.ping,
            fast_s=timeout_s,
            probe_interval_s=backoff_s,
            clock=clock,
            background=probe_in_background,
            on_close=self._before_closing,
        )
        self._cache_script = self._client.register_script(CACHE_DECISIONS)
        self._enrich_script = self._client.register_script(ENRICH)

    @property
    def client(self) -> redis.Redis:
        """The underlying client, for the feedback loop and admin commands."""
        return self._client

    def _failed(self, exc: Exception) -> str:
        return self.circuit.failed(exc)

    def _before_closing(self) -> None:
        """On the probe's thread, before traffic resumes: a clean, ready connection.

        Connections to the server that failed are dropped, and the scripts are loaded (a
        restarted Redis has none), so the first batch is not the one that pays for it.
        """
        self._client.connection_pool.disconnect(inuse_connections=False)
        for script in (CACHE_DECISIONS, ENRICH):
            self._probe_client.script_load(script)

    def _backing_off(self) -> bool:
        return self.circuit.is_open

    def enrich(
        self, transactions: Sequence[Transaction], event_ms: Sequence[int] | None = None
    ) -> Enrichment:
        """Merchant label features, risk and allow/deny membership, in one round trip.

        Each transaction's merchant record is read at its own event time (the "seconds
        since" features are exact there; window counts are as of the record's time):
        ``event_ms`` when the caller has it, else from each ``event_time``. One script
        call with the ids joined (``streams._redis_scripts``).
        """
        size = len(transactions)
        if size == 0:
            return Enrichment.empty(0, None)
        skipped = self.circuit.cause  # read once: the prober may close it meanwhile
        if skipped is not None:
            return Enrichment.empty(size, skipped)
        lists = [keys.listing(kind, field) for field in _LIST_FIELDS for kind in _KINDS]
        ids = [
            SEPARATOR.join([getattr(tx, attribute) or "" for tx in transactions])
            for attribute in _LIST_ATTRIBUTES
        ]
        try:
            records, allow, deny = self._enrich_script(
                keys=lists, args=[keys.merchant_risk(""), ids[-1], *ids]
            )
        except (RedisError, OSError) as exc:
            return Enrichment.empty(size, self._failed(exc))
        at_ms = [epoch_ms(tx.event_time) for tx in transactions] if event_ms is None else event_ms
        labels = merchant_label_matrix(records, at_ms)
        risk = np.ascontiguousarray(labels[:, _RISK_COLUMN])
        return Enrichment(risk, _flags(allow), _flags(deny), merchant_labels=labels)

    def cache_decisions(self, decisions: Iterable[tuple[str, bytes]]) -> str | None:
        """Write ``(tx_id, decision JSON)`` pairs with a TTL; returns a degraded cause or None.

        One script call per batch (``streams._redis_scripts``); a first decision is never
        replaced.
        """
        skipped = self.circuit.cause
        if skipped is not None:
            return skipped
        pairs = list(decisions)
        if not pairs:
            return None
        tx_ids = SEPARATOR.join([tx_id for tx_id, _ in pairs])
        payloads = b"\n".join([payload for _, payload in pairs])
        try:
            self._cache_script(args=[self._decision_ttl_s, keys.decision(""), tx_ids, payloads])
        except (RedisError, OSError) as exc:
            return self._failed(exc)
        return None

    def cached_decisions(self, tx_ids: list[str]) -> list[bytes | None]:
        """First decisions of repeated transactions, one MGET; all None if Redis fails."""
        if not tx_ids or self._backing_off():
            return [None] * len(tx_ids)
        try:
            found = self._client.mget([keys.decision(t) for t in tx_ids])
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return [None] * len(tx_ids)
        return [value if isinstance(value, bytes) else None for value in found]

    def cached_decision(self, tx_id: str) -> bytes | None:
        """The cached decision of a transaction, if any."""
        value: bytes | None = self._client.get(keys.decision(tx_id))  # type: ignore[assignment]
        return value

    def write_drift_status(self, reporter: str, status: bytes, ttl_s: int) -> None:
        """Publish a drift summary that expires with its reporter; skipped while Redis is down."""
        if self._backing_off():
            return
        try:
            self._client.set(keys.drift(reporter), status, ex=ttl_s)
        except (RedisError, OSError) as exc:
            self._failed(exc)

    def drift_statuses(self) -> list[bytes]:
        """Every live scorer process's drift summary (errors are raised to the caller)."""
        names = list(self._client.scan_iter(match=keys.drift("*"), count=100))
        if not names:
            return []
        found = self._client.mget(names)
        return [value for value in found if isinstance(value, bytes)]

    def set_listing(
        self, kind: Literal["allow", "deny"], field: ListField, values: Iterable[str]
    ) -> int:
        """Add ids to an allow or deny list (for operators and tests)."""
        members = list(values)
        if not members:
            return 0
        added: int = self._client.sadd(keys.listing(kind, field), *members)
        return added

    def set_merchant_risk(self, risks: dict[str, float]) -> None:
        """Store bare merchant risks in [0, 1] (read as the 28-day fraud share, no labels).

        For operators and tests; the feedback service writes full label records with
        :meth:`write_merchant_records`. Older scorers read this format too.
        """
        if risks:
            self._client.mset({keys.merchant_risk(m): repr(float(r)) for m, r in risks.items()})

    def write_merchant_records(self, records: dict[str, bytes]) -> None:
        """Store merchant label records (``MerchantLabelBook.records``), replacing old ones.

        Pipelined SETs; a Redis error is raised (the feedback service retries the write).
        """
        items = list(records.items())
        for begin in range(0, len(items), _WRITE_CHUNK):
            pipe = self._client.pipeline(transaction=False)
            for merchant_id, record in items[begin : begin + _WRITE_CHUNK]:
                pipe.set(keys.merchant_risk(merchant_id), record)
            pipe.execute()
