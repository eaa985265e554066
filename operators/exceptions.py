"""Errors of the domain operators (features, rules, scoring, decision policy).

The dataflow catches :class:`OperatorError` subclasses around each stage and degrades
(e.g. rules-only decisions when scoring fails) instead of stopping the pipeline.
"""

from __future__ import annotations

from schemas.exceptions import FraudstreamError

__all__ = [
    "BatchError",
    "FeatureInputError",
    "OperatorError",
    "PolicyError",
    "RuleError",
    "ScoringError",
]


class OperatorError(FraudstreamError):
    """Root of every deliberate error raised by the ``operators`` package."""


class ScoringError(OperatorError):
    """A batch could not be scored (bad shape or dtype, ONNX Runtime failure).

    The caller falls back to rules-only decisions for that batch and flags them degraded;
    the message says which member failed and on what batch shape.
    """


class RuleError(OperatorError):
    """A rules file or a rule expression was refused; the live rules stay as they were.

    The message names the rule (``rule_id``, None for file-level problems) and what is
    wrong with it, so whoever edited the file can fix it without reading engine code.
    """

    def __init__(self, message: str, *, rule_id: str | None = None) -> None:
        super().__init__(message)
        self.rule_id = rule_id


class BatchError(OperatorError):
    """A batch handed to the rule engine or the policy does not match what they need.

    This is a wiring bug (a missing column, arrays of different lengths, a wrong dtype),
    not bad input data: missing values are NaN/None and never raise.
    """


class PolicyError(OperatorError):
    """The decision policy was configured with invalid thresholds or inconsistent inputs."""


class FeatureInputError(OperatorError):
    """Input the velocity features cannot be computed from, refused with what is wrong.

    A frame without a required column, a naive timestamp, a non-finite amount, a negative
    lateness: wiring or data bugs to fix at the source. Missing *optional* fields
    (country, coordinates) are never an error; their features are NaN.
    """


class RecoveryStateError(OperatorError):
    """A recovery snapshot cannot be restored by this version of the code."""
