"""Errors of the wiring layer: servers, topics, settings."""

from __future__ import annotations

from schemas.exceptions import FraudstreamError

__all__ = ["InfraError", "TopicError"]


class InfraError(FraudstreamError):
    """A local server could not be fetched, started, reached or stopped."""


class TopicError(FraudstreamError):
    """A topic could not be created or does not have the expected configuration."""
