"""Which rules fired on which rows of a batch, in the shapes the dataflow and policy need.

One boolean matrix (rules x rows) is the single record; per-row lists, per-rule counts and
the policy's "any active BLOCK rule" masks are views computed from it, so nothing is
allocated for the (usual) rows on which no rule fired.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from operators.exceptions import BatchError

__all__ = ["ACTIONS", "Action", "FiredRule", "RuleHits"]

#: What a rule asks for when it fires (the same values as ``schemas.RuleHit.action``).
Action = Literal["BLOCK", "REVIEW", "ALLOW", "TAG"]
ACTIONS: tuple[Action, ...] = ("BLOCK", "REVIEW", "ALLOW", "TAG")

_NO_HITS: tuple[FiredRule, ...] = ()


@dataclass(frozen=True, slots=True)
class FiredRule:
    """A rule as reported when it fires; the fields match ``schemas.RuleHit``.

    One instance per rule is shared by every row it fires on, so reporting a hit costs
    no allocation; ``schemas.RuleHit(**dataclasses.asdict(hit))`` makes the message.
    """

    id: str
    reason: str
    action: Action
    shadow: bool


class RuleHits:
    """The outcome of one rule set on one batch: ``matrix[rule, row]`` is True if it fired."""

    __slots__ = ("_active", "matrix", "rules")

    def __init__(self, rules: tuple[FiredRule, ...], matrix: NDArray[np.bool_]) -> None:
        if matrix.ndim != 2 or matrix.shape[0] != len(rules):
            raise BatchError(f"hit matrix shape {matrix.shape} does not match {len(rules)} rules")
        self.rules = rules
        self.matrix = matrix
        self._active = np.array([not rule.shadow for rule in rules], dtype=np.bool_)

    @classmethod
    def empty(cls, n_rows: int) -> RuleHits:
        """No rules at all, e.g. when the rule stage is switched off."""
        return cls((), np.zeros((0, n_rows), dtype=np.bool_))

    @property
    def n_rows(self) -> int:
        """Rows in the batch."""
        return int(self.matrix.shape[1])

    def __len__(self) -> int:
        return self.n_rows

    def fired(self, row: int) -> tuple[FiredRule, ...]:
        """Return the rules that fired on one row, in file order (shadow rules included)."""
        return tuple(self.rules[index] for index in np.flatnonzero(self.matrix[:, row]))

    def per_row(self) -> list[tuple[FiredRule, ...]]:
        """For every row, the rules that fired on it, in rule-file order."""
        result: list[tuple[FiredRule, ...]] = [_NO_HITS] * self.n_rows
        rows, indices = np.nonzero(self.matrix.T)  # sorted by row, then by rule
        if rows.size == 0:
            return result
        starts = np.flatnonzero(np.diff(rows, prepend=-1))
        for start, stop in zip(starts.tolist(), [*starts[1:].tolist(), rows.size], strict=True):
            result[int(rows[start])] = tuple(self.rules[i] for i in indices[start:stop].tolist())
        return result

    def counts(self) -> dict[str, int]:
        """Hits per rule id in this batch (shadow rules included), for rule-hit metrics."""
        totals = self.matrix.sum(axis=1).tolist()
        return {rule.id: int(total) for rule, total in zip(self.rules, totals, strict=True)}

    def rule(self, rule_id: str) -> NDArray[np.bool_]:
        """Return the rows one rule fired on."""
        for index, rule in enumerate(self.rules):
            if rule.id == rule_id:
                fired: NDArray[np.bool_] = self.matrix[index]
                return fired
        raise KeyError(rule_id)

    def any_active(self, action: Action) -> NDArray[np.bool_]:
        """Rows on which at least one active (non-shadow) rule with this action fired."""
        selected = self._active & np.array(
            [rule.action == action for rule in self.rules], dtype=np.bool_
        )
        if not selected.any():
            return np.zeros(self.n_rows, dtype=np.bool_)
        return np.asarray(self.matrix[selected].any(axis=0), dtype=np.bool_)

    def active_reasons(self) -> list[list[str]]:
        """Per row, the reason codes of the active rules that fired, deduplicated, in order.

        Shadow rules are left out: they are evaluated and reported, never explained to the
        customer or the analyst as a reason for the decision.
        """
        result: list[list[str]] = [[] for _ in range(self.n_rows)]
        active = self.matrix[self._active]
        reasons = [rule.reason for rule in self.rules if not rule.shadow]
        rows, indices = np.nonzero(active.T)
        for row, index in zip(rows.tolist(), indices.tolist(), strict=True):
            codes = result[row]
            reason = reasons[index]
            if reason not in codes:
                codes.append(reason)
        return result
