"""``rule_report``: hit rate, precision and recall checked against a hand-computed case."""

from __future__ import annotations

import numpy as np
import pytest

from operators.exceptions import BatchError
from operators.rules import RuleSet, RuleStats, rule_report
from tests.unit.operators.rules._support import SMALL, numbers, rule, texts

RULES = RuleSet.from_specs(
    [
        rule("big", "a >= 10", "BLOCK"),
        rule("atm", 's == "atm"', "REVIEW", mode="shadow"),
        rule("never", "a > 1000", "TAG"),
    ],
    SMALL,
)
#        row:      0      1      2      3      4      5      6      7
BATCH = {
    "a": numbers(1, 5, 10, 20, 50, 3, 12, 2),
    "s": texts("pos", "atm", "atm", "pos", "ecom", "atm", None, "pos"),
}
LABELS = np.array([0, 1, 1, 0, 1, 0, 1, 0])  # fraud rows: 1, 2, 4, 6


def test_report_by_hand() -> None:
    big, atm, never = rule_report(RULES, BATCH, LABELS)
    # big fires on rows 2, 3, 4, 6: 4 of 8 rows; fraud among them: 2, 4, 6.
    assert big == RuleStats(
        rule_id="big", reason="BIG", action="BLOCK", shadow=False, rows=8, hits=4,
        fraud_hits=3, hit_rate=0.5, precision=0.75, recall=0.75,
    )  # fmt: skip
    # atm (shadow rules are reported too) fires on rows 1, 2, 5; fraud: 1, 2.
    assert (atm.hits, atm.fraud_hits, atm.shadow) == (3, 2, True)
    assert atm.hit_rate == pytest.approx(3 / 8)
    assert atm.precision == pytest.approx(2 / 3)
    assert atm.recall == pytest.approx(2 / 4)
    # never fires: precision is undefined, not zero.
    assert (never.hits, never.hit_rate, never.precision, never.recall) == (0, 0.0, None, 0.0)


def test_boolean_labels_and_no_fraud_at_all() -> None:
    stats = rule_report(RULES, BATCH, np.zeros(8, dtype=bool))
    assert stats[0].precision == 0.0
    assert stats[0].recall is None


def test_labels_must_be_binary_and_row_aligned() -> None:
    with pytest.raises(BatchError, match="0/1"):
        rule_report(RULES, BATCH, np.array([0, 1, 2, 0, 0, 0, 0, 0]))
    with pytest.raises(BatchError, match="shape"):
        rule_report(RULES, BATCH, np.zeros(3, dtype=bool))
