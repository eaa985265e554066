"""Errors of the wiring layer: servers, topics, settings."""

from __future__ import annotations

from schemas.exceptions import FraudstreamError

__all__ = [
    "ConsoleError",
    "FeedbackError",
    "InfraError",
    "ModelUpdateRefusedError",
    "PublishError",
    "ReplayError",
    "TopicError",
]


class InfraError(FraudstreamError):
    """A local server could not be fetched, started, reached or stopped."""


class TopicError(FraudstreamError):
    """A topic could not be created or does not have the expected configuration."""


class ModelUpdateRefusedError(FraudstreamError):
    """A published model version the scorer will not serve; the previous model stays.

    ``reason`` is a short stable code for logs and alerts (``manifest_hash_mismatch``,
    ``file_integrity``, ``feature_order``, ...); the message says what exactly is wrong.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class PublishError(FraudstreamError):
    """A record could not be delivered to Kafka (broker unreachable, topic missing, refused)."""


class FeedbackError(FraudstreamError):
    """The feedback service cannot run: bad topics, an unreadable checkpoint, a failed write."""


class ReplayError(FraudstreamError):
    """A replay cannot start: a bad speed or date, nothing left to send."""


class ConsoleError(FraudstreamError):
    """The review console cannot start (port taken) or refuses a request (bad filter)."""
