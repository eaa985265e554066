"""Rules files: format validation, evaluation of a whole set, and the hit views."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from operators.exceptions import BatchError, RuleError
from operators.rules import FiredRule, RuleHits, RuleSet
from schemas import RuleHit
from tests.unit.operators.rules._support import SMALL, NaN, numbers, rule, texts


def _ruleset(*specs: dict[str, Any]) -> RuleSet:
    return RuleSet.from_specs(list(specs), SMALL)


def _yaml(*specs: dict[str, Any]) -> str:
    return yaml.safe_dump({"version": 1, "rules": list(specs)})


def test_yaml_document_loads_with_defaults() -> None:
    rules = RuleSet.from_yaml(_yaml(rule("big", "a > 10", "BLOCK")), SMALL, source="f.yaml")
    (only,) = rules.rules
    assert (only.id, only.action, only.reason, only.mode, only.shadow) == (
        "big",
        "BLOCK",
        "BIG",
        "active",
        False,
    )
    assert only.description == "test rule big"
    assert only.expression.source == "a > 10"
    assert rules.source == "f.yaml"
    assert len(rules.fingerprint) == 64
    assert rules["big"] is only


def test_fingerprint_follows_the_text() -> None:
    first = RuleSet.from_yaml(_yaml(rule("r", "a > 1")), SMALL)
    same = RuleSet.from_yaml(_yaml(rule("r", "a > 1")), SMALL)
    other = RuleSet.from_yaml(_yaml(rule("r", "a > 2")), SMALL)
    assert first.fingerprint == same.fingerprint != other.fingerprint


@pytest.mark.parametrize(
    ("specs", "problem", "rule_id"),
    [
        ([rule("r1", "a > 1"), rule("r1", "b > 1")], "rule 'r1': duplicate id", "r1"),
        ([rule("r1", "a > 1", "DENY")], "rule 'r1': unknown action 'DENY'", "r1"),
        ([rule("r1", "a > 1", "block")], "unknown action 'block'", "r1"),
        ([rule("r1", "a > 1", mode="dry-run")], "rule 'r1': unknown mode 'dry-run'", "r1"),
        ([rule("r1", "a >")], "rule 'r1': syntax error", "r1"),
        ([rule("r1", "x > 1")], "rule 'r1': unknown name 'x'", "r1"),
        ([rule("r1", "s > 1")], "rule 'r1': cannot compare", "r1"),
        ([rule("r1", "open('x')")], "rule 'r1': function calls", "r1"),
        ([{**rule("r1", "a > 1"), "mdoe": "shadow"}], "rule 'r1': unknown keys ['mdoe']", "r1"),
        ([{**rule("r1", "a > 1"), "reason": "card testing"}], "rule 'r1': reason must", "r1"),
        ([{**rule("r1", "a > 1"), "expression": 5}], "'expression' must be a string", "r1"),
        ([rule("bad id!", "a > 1")], "rule 'bad id!': id must be", "bad id!"),
        ([{"id": "r1", "expression": "a > 1"}], "rule 'r1': missing description", "r1"),
        ([{"expression": "a > 1"}], "rule #1: missing id", None),
        ([rule("ok", "a > 1"), "just text"], "rule #2: must be a mapping", None),
    ],
)
def test_bad_rules_are_refused_naming_the_rule(
    specs: list[Any], problem: str, rule_id: str | None
) -> None:
    with pytest.raises(RuleError) as caught:
        RuleSet.from_yaml(_yaml(*specs), SMALL, source="rules.yaml")
    assert str(caught.value).startswith("rules.yaml: ")
    assert problem in str(caught.value)
    assert caught.value.rule_id == rule_id


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("rules: [", "not valid YAML at line"),
        ("- id: r1", "expected a mapping with a 'rules:' list"),
        ("rules: {}", "expected a mapping with a 'rules:' list"),
        ("version: 2\nrules: []", "unsupported version 2"),
        ("rules: []\nextra: 1", "unknown top-level keys ['extra']"),
        ("", "expected a mapping"),
        ("rules: !!python/object/apply:os.system ['true']", "not valid YAML"),
    ],
)
def test_bad_documents_are_refused(text: str, problem: str) -> None:
    with pytest.raises(RuleError) as caught:
        RuleSet.from_yaml(text, SMALL, source="rules.yaml")
    assert str(caught.value).startswith("rules.yaml: ")
    assert problem in str(caught.value)


def test_missing_file_is_a_rule_error(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="cannot read the rules file"):
        RuleSet.from_file(tmp_path / "absent.yaml", SMALL)


def test_empty_rule_list_is_allowed_and_fires_nothing() -> None:
    rules = RuleSet.from_yaml("rules: []", SMALL)
    hits = rules.evaluate({"a": numbers(1, 2)})
    assert len(rules) == 0
    assert hits.n_rows == 2
    assert hits.per_row() == [(), ()]


def _three_rule_hits() -> tuple[RuleSet, RuleHits]:
    rules = _ruleset(
        rule("big", "a > 10", "BLOCK"),
        rule("foreign", 's not in ["FR"]', "TAG"),
        rule("probe", "a > 5", "REVIEW", mode="shadow"),
    )
    batch = {"a": numbers(1, 20, 7, NaN), "s": texts("FR", "DE", "FR", None)}
    return rules, rules.evaluate(batch)


def test_evaluate_reports_each_rule_per_row_in_file_order() -> None:
    rules, hits = _three_rule_hits()
    big = FiredRule("big", "BIG", "BLOCK", False)
    foreign = FiredRule("foreign", "FOREIGN", "TAG", False)
    probe = FiredRule("probe", "PROBE", "REVIEW", True)
    assert hits.per_row() == [(), (big, foreign, probe), (probe,), ()]
    assert [hits.fired(row) for row in range(4)] == hits.per_row()
    assert hits.rule("foreign").tolist() == [False, True, False, False]
    assert rules.columns == {"a", "s"}


def test_hit_counts_include_shadow_rules() -> None:
    _, hits = _three_rule_hits()
    assert hits.counts() == {"big": 1, "foreign": 1, "probe": 2}


def test_any_active_ignores_shadow_rules() -> None:
    _, hits = _three_rule_hits()
    assert hits.any_active("BLOCK").tolist() == [False, True, False, False]
    assert hits.any_active("REVIEW").tolist() == [False, False, False, False]  # probe is shadow
    assert hits.any_active("ALLOW").tolist() == [False, False, False, False]


def test_active_reasons_are_deduplicated_in_rule_order() -> None:
    rules = _ruleset(
        {**rule("one", "a > 1"), "reason": "SAME"},
        rule("two", "a > 2", "TAG"),
        {**rule("three", "a > 3", "BLOCK"), "reason": "SAME"},
        rule("shadowed", "a > 0", mode="shadow"),
    )
    hits = rules.evaluate({"a": numbers(5, 2.5, 0)})
    assert hits.active_reasons() == [["SAME", "TWO"], ["SAME", "TWO"], []]


def test_fired_rule_converts_to_the_rule_hit_message() -> None:
    _, hits = _three_rule_hits()
    messages = [RuleHit(**dataclasses.asdict(hit)) for hit in hits.per_row()[1]]
    assert [(m.id, m.reason, m.action, m.shadow) for m in messages] == [
        ("big", "BIG", "BLOCK", False),
        ("foreign", "FOREIGN", "TAG", False),
        ("probe", "PROBE", "REVIEW", True),
    ]


def test_batch_must_hold_every_column_the_rules_read() -> None:
    rules, _ = _three_rule_hits()
    with pytest.raises(BatchError, match=r"\['s'\]"):
        rules.evaluate({"a": numbers(1)})


def test_extra_columns_are_ignored() -> None:
    rules, _ = _three_rule_hits()
    hits = rules.evaluate({"a": numbers(1), "s": texts("FR"), "other": texts(object())})
    assert hits.per_row() == [()]
