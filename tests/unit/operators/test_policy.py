"""The decision policy: precedence, shadow and TAG rules, degraded mode, threshold edges."""

from __future__ import annotations

import numpy as np
import pytest

from operators.exceptions import PolicyError
from operators.policy import BatchDecisions, Thresholds, decide_batch
from operators.rules import FiredRule, RuleHits

NaN = float("nan")
THRESHOLDS = Thresholds(block=0.9, review=0.5)

BLOCK_RULE = FiredRule("card_testing", "CARD_TESTING", "BLOCK", False)
ALLOW_RULE = FiredRule("vip", "VIP", "ALLOW", False)
REVIEW_RULE = FiredRule("travel", "IMPOSSIBLE_TRAVEL", "REVIEW", False)
TAG_RULE = FiredRule("spike", "AMOUNT_SPIKE", "TAG", False)
SHADOW_BLOCK = FiredRule("try_block", "TRY_BLOCK", "BLOCK", True)
SHADOW_ALLOW = FiredRule("try_allow", "TRY_ALLOW", "ALLOW", True)
SHADOW_REVIEW = FiredRule("try_review", "TRY_REVIEW", "REVIEW", True)
ALL_RULES = (
    BLOCK_RULE,
    ALLOW_RULE,
    REVIEW_RULE,
    TAG_RULE,
    SHADOW_BLOCK,
    SHADOW_ALLOW,
    SHADOW_REVIEW,
)


def _hits(rows: list[tuple[FiredRule, ...]]) -> RuleHits:
    matrix = np.array([[rule in row for row in rows] for rule in ALL_RULES], dtype=bool)
    return RuleHits(ALL_RULES, matrix.reshape(len(ALL_RULES), len(rows)))


def _decide(
    scores: list[float],
    fired: list[tuple[FiredRule, ...]] | None = None,
    *,
    allow: list[bool] | None = None,
    deny: list[bool] | None = None,
    top: list[list[str]] | None = None,
    thresholds: Thresholds = THRESHOLDS,
) -> BatchDecisions:
    n = len(scores)
    return decide_batch(
        np.array(scores, dtype=np.float64),
        _hits(fired or [()] * n),
        None if allow is None else np.array(allow),
        None if deny is None else np.array(deny),
        thresholds,
        top,
    )


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (0.0, "APPROVE"),
        (0.4999, "APPROVE"),
        (0.5, "REVIEW"),  # == review threshold
        (0.8999, "REVIEW"),
        (0.9, "BLOCK"),  # == block threshold
        (1.0, "BLOCK"),
    ],
)
def test_score_thresholds_and_their_edges(score: float, expected: str) -> None:
    assert _decide([score]).decisions == [expected]


def test_equal_thresholds_skip_review() -> None:
    result = _decide([0.69, 0.7], thresholds=Thresholds(block=0.7, review=0.7))
    assert result.decisions == ["APPROVE", "BLOCK"]


def test_precedence_deny_then_block_rule_then_allow_then_score() -> None:
    result = _decide(
        [0.0, 0.0, 0.99, 0.99, 0.99, 0.0],
        [(), (BLOCK_RULE, ALLOW_RULE), (ALLOW_RULE,), (), (REVIEW_RULE, ALLOW_RULE), ()],
        allow=[True, True, False, True, False, False],
        deny=[True, False, False, False, False, False],
    )
    assert result.decisions == ["BLOCK", "BLOCK", "APPROVE", "APPROVE", "APPROVE", "APPROVE"]
    assert result.reasons == [
        ["DENY_LIST", "ALLOW_LIST"],
        ["ALLOW_LIST", "CARD_TESTING", "VIP"],
        ["VIP"],
        ["ALLOW_LIST"],
        ["VIP", "IMPOSSIBLE_TRAVEL"],
        [],
    ]


def test_deny_list_blocks_whatever_else_says_approve() -> None:
    result = _decide([0.0, NaN], [(ALLOW_RULE,), ()], allow=[True, True], deny=[True, True])
    assert result.decisions == ["BLOCK", "BLOCK"]
    assert result.reasons == [["DENY_LIST", "ALLOW_LIST", "VIP"], ["DENY_LIST", "ALLOW_LIST"]]


def test_block_rule_wins_over_allow_list_and_low_score() -> None:
    result = _decide([0.01], [(BLOCK_RULE, ALLOW_RULE)], allow=[True])
    assert result[0] == ("BLOCK", ["ALLOW_LIST", "CARD_TESTING", "VIP"])


def test_allow_overrides_high_score_and_review_rules() -> None:
    result = _decide(
        [0.99, 0.99, 0.2],
        [(ALLOW_RULE,), (), (ALLOW_RULE, REVIEW_RULE)],
        allow=[False, True, False],
    )
    assert result.decisions == ["APPROVE", "APPROVE", "APPROVE"]


def test_review_rule_raises_approve_to_review_but_never_lowers_block() -> None:
    result = _decide([0.1, 0.6, 0.95], [(REVIEW_RULE,)] * 3)
    assert result.decisions == ["REVIEW", "REVIEW", "BLOCK"]
    assert result.reasons == [["IMPOSSIBLE_TRAVEL"]] * 3


@pytest.mark.parametrize("score", [0.1, 0.6, 0.95, NaN])
def test_shadow_rules_never_change_the_decision(score: float) -> None:
    plain = _decide([score])
    shadowed = _decide([score], [(SHADOW_BLOCK, SHADOW_ALLOW, SHADOW_REVIEW)])
    assert shadowed.decisions == plain.decisions
    assert shadowed.reasons == plain.reasons == [[]]


def test_tag_rule_only_adds_its_reason() -> None:
    scores = [0.1, 0.6, 0.95, NaN]
    plain = _decide(scores)
    tagged = _decide(scores, [(TAG_RULE,)] * 4)
    assert tagged.decisions == plain.decisions == ["APPROVE", "REVIEW", "BLOCK", "APPROVE"]
    assert tagged.reasons == [["AMOUNT_SPIKE"]] * 4


def test_missing_score_decides_from_rules_only() -> None:
    result = _decide(
        [NaN, NaN, NaN, NaN, 0.95], [(), (REVIEW_RULE,), (BLOCK_RULE,), (ALLOW_RULE,), ()]
    )
    assert result.decisions == ["APPROVE", "REVIEW", "BLOCK", "APPROVE", "BLOCK"]
    assert result.rules_only.tolist() == [True, True, True, True, False]


def test_reasons_are_rule_codes_in_order_then_top_features() -> None:
    same_reason = FiredRule("travel_2", "IMPOSSIBLE_TRAVEL", "REVIEW", False)
    rules = (REVIEW_RULE, TAG_RULE, same_reason)
    hits = RuleHits(rules, np.array([[True, False], [True, False], [True, False]]))
    result = decide_batch(
        np.array([0.95, 0.2]),
        hits,
        None,
        None,
        THRESHOLDS,
        [["HIGH:user_amount_zscore_30d", "HIGH:merchant_risk"], ["LOW:amount"]],
    )
    assert result.reasons == [
        ["IMPOSSIBLE_TRAVEL", "AMOUNT_SPIKE", "HIGH:user_amount_zscore_30d", "HIGH:merchant_risk"],
        ["LOW:amount"],
    ]


def test_top_feature_lists_are_copied_not_shared() -> None:
    top = [["HIGH:amount"]]
    result = _decide([0.2], top=top)
    result.reasons[0].append("X")
    assert top == [["HIGH:amount"]]


def test_result_views() -> None:
    result = _decide([0.1, 0.6, 0.95, 0.97])
    assert len(result) == 4
    assert list(result) == [("APPROVE", []), ("REVIEW", []), ("BLOCK", []), ("BLOCK", [])]
    assert result.counts() == {"APPROVE": 1, "REVIEW": 1, "BLOCK": 2}
    assert result.codes.dtype == np.int8


def test_empty_batch() -> None:
    result = decide_batch(np.array([]), RuleHits.empty(0), None, None, THRESHOLDS)
    assert len(result) == 0
    assert result.counts() == {"APPROVE": 0, "REVIEW": 0, "BLOCK": 0}


@pytest.mark.parametrize(
    ("block", "review"),
    [(0.5, 0.6), (1.1, 0.5), (0.5, -0.1), (NaN, 0.5), (0.9, float("inf"))],
)
def test_thresholds_are_validated(block: float, review: float) -> None:
    with pytest.raises(PolicyError, match="thresholds"):
        Thresholds(block=block, review=review)


def test_inputs_must_be_row_aligned() -> None:
    with pytest.raises(PolicyError, match="rule_hits"):
        decide_batch(np.array([0.1, 0.2]), RuleHits.empty(3), None, None, THRESHOLDS)
    with pytest.raises(PolicyError, match="deny"):
        decide_batch(np.array([0.1]), RuleHits.empty(1), None, np.array([True, False]), THRESHOLDS)
    with pytest.raises(PolicyError, match="top_features"):
        decide_batch(np.array([0.1]), RuleHits.empty(1), None, None, THRESHOLDS, [])
