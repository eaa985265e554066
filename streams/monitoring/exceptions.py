"""Errors of the metrics tail: nothing to watch, or a target that cannot be understood."""

from __future__ import annotations

from schemas.exceptions import FraudstreamError

__all__ = ["MonitoringError", "NoEndpointError"]


class MonitoringError(FraudstreamError):
    """The metrics tail cannot run: a malformed ``--target`` or a bad setting."""


class NoEndpointError(MonitoringError):
    """No scorer or feedback ``/metrics`` endpoint answered, so there is nothing to show."""
