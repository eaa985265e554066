"""How the scorer builds its engine and Redis store and checks event times, in one place.

Kept free of Bytewax so that a process doing the same work without the dataflow (the
bench's Quix Streams peer, in its own virtual environment) builds them the same way.
"""

from __future__ import annotations

import time

from operators.engine import DecisionEngine, ModelSource, RuleSource
from schemas import SchemaValidationError
from streams.redis_store import RedisStore
from streams.settings import Settings

__all__ = ["future_event_error", "scoring_engine", "scoring_store"]


def scoring_engine(settings: Settings, rules: RuleSource, models: ModelSource) -> DecisionEngine:
    """The decision engine as ``settings`` configure it (the scorer's; the bench's peer's)."""
    return DecisionEngine(
        rules,
        models,
        model_budget_s=settings.model_budget_ms / 1000,
        challenger_share=settings.challenger_traffic_share,
        online_weight=settings.online_weight,
    )


def scoring_store(settings: Settings) -> RedisStore:
    """Redis as the hot path uses it: the short timeout and the decision cache's TTL."""
    return RedisStore(
        settings.redis_dsn,
        timeout_s=settings.redis_timeout_ms / 1000,
        decision_ttl_s=settings.decision_ttl_s,
    )


def future_event_error(event_ms: int, tolerance_ms: int) -> SchemaValidationError | None:
    """The DLQ error of an event time beyond ``tolerance_ms`` from now, or None."""
    if event_ms <= time.time() * 1000 + tolerance_ms:
        return None
    return SchemaValidationError(
        f"event_time: more than {tolerance_ms // 60_000} minutes in the future",
        reason="future_event_time",
    )
