"""The expression language: what it accepts, and everything it must refuse."""

from __future__ import annotations

import pytest

from operators.exceptions import OperatorError, RuleError
from operators.rules import (
    DEFAULT_SCHEMA,
    MAX_DEPTH,
    MAX_EXPRESSION_CHARS,
    ColumnSchema,
    compile_expression,
)
from tests.unit.operators.rules._support import SMALL

VALID = [
    "a > 1",
    "a >= 1",
    "a < 1",
    "a <= 1",
    "a == 1",
    "a != 1",
    "0 <= a < 10",
    "a < b <= c",
    "a > 1 and b > 2",
    "a > 1 or b > 2",
    "not a > 1",
    "not (a > 1 and (b < 2 or c == 3))",
    "a + b * c - 1 / 2 > 0",
    "-a > -1",
    "-(a + b) < 3",
    "(a) > (b)",
    "a > 1.5e3",
    "s == 'x'",
    's != "x"',
    "s == t",
    "'x' == s",
    's in ["x", "y"]',
    's not in ["x"]',
    "s in ('x', 'y')",
    "a in [1, -2, 3.5]",
    "a not in [0]",
    "s in []",
    "1 < 2",
    "a > 1 and\n b > 2",
]


@pytest.mark.parametrize("expression", VALID)
def test_valid_expressions_compile(expression: str) -> None:
    compiled = compile_expression(expression, SMALL, rule_id="ok")
    assert compiled.columns <= SMALL.names


def test_compiled_expression_lists_the_columns_it_reads() -> None:
    compiled = compile_expression("a > b and s in ['x']", SMALL, rule_id="r")
    assert compiled.numeric_columns == {"a", "b"}
    assert compiled.string_columns == {"s"}


REFUSED = [
    # malicious
    ('__import__("os").system("x")', "function calls"),
    ("().__class__", "attribute access"),
    ("a.real > 1", "attribute access"),
    ("[x for x in y]", "comprehensions"),
    ("{x for x in y}", "comprehensions"),
    ("(x for x in y)", "generator expressions"),
    ("lambda: 1", "lambdas"),
    ("len(s) > 1", "function calls"),
    ("f'{a}' == s", "f-strings"),
    ("(a := 1) > 0", "assignment expressions"),
    ("s[0] == 'x'", "subscripts"),
    ("a if a > 1 else b", "conditional expressions"),
    ("{'a': 1}", "dict literals"),
    ("{1, 2}", "set literals"),
    ("a ** 2 > 1", "'**' is not allowed"),
    ("a // 2 > 1", "'//' is not allowed"),
    ("a % 2 > 1", "'%' is not allowed"),
    ("~a > 1", "'~' is not allowed"),
    ("+a > 1", "'unary +' is not allowed"),
    ("a is None", "'is'"),
    ("a > None", "literal None is not allowed"),
    ("True", "literal True is not allowed"),
    ("b'x' == s", "is not allowed"),
    ("a > 1j", "is not allowed"),
    ("a > 1e999", "out of range"),
    ("a in [1, 1e999]", "out of range"),
    # malformed
    ("a >", "syntax error"),
    ("a > > 1", "syntax error"),
    ("and a", "syntax error"),
    ("a > 1; import os", "syntax error"),
    ("", "empty"),
    ("   ", "empty"),
    # unknown names
    ("x > 1", "unknown name 'x'"),
    ("__builtins__ == s", "unknown name '__builtins__'"),
    # type errors
    ("s > 1", "cannot compare the string column s with the number 1"),
    ("s == 1", "cannot compare"),
    ("a == 'x'", "cannot compare"),
    ("s < t", "strings can only be compared with == and !="),
    ("s + t == 'xy'", "'+' needs numbers"),
    ("-s == 'x'", "unary - needs numbers"),
    ("a", "must be a condition"),
    ("s", "must be a condition"),
    ("a + 1", "must be a condition"),
    ("a and b > 1", "needs conditions"),
    ("not a", "needs conditions"),
    ("(a > 1) == (b > 1)", "on conditions"),
    ("(a > 1) in [1]", "not a condition"),
    ("s in [1, 2]", "list of strings"),
    ("a in ['x']", "list of numbers"),
    ("a in [b]", "list items must be number or string literals"),
    ("a in b", "must be a list literal"),
    ("[1, 2] == a", "lists are only allowed"),
    ("a in [1] == b", "cannot be chained"),
]


@pytest.mark.parametrize(("expression", "problem"), REFUSED)
def test_refused_expressions_name_the_rule_and_the_problem(expression: str, problem: str) -> None:
    with pytest.raises(RuleError) as caught:
        compile_expression(expression, SMALL, rule_id="my_rule")
    message = str(caught.value)
    assert message.startswith("rule 'my_rule': ")
    assert problem in message
    assert caught.value.rule_id == "my_rule"
    assert isinstance(caught.value, OperatorError)


def test_unknown_name_suggests_the_closest_feature() -> None:
    with pytest.raises(RuleError, match="did you mean 'user_count_10m'"):
        compile_expression("user_cnt_10m > 3", DEFAULT_SCHEMA, rule_id="r")


def test_numeric_column_used_as_condition_gets_a_hint() -> None:
    with pytest.raises(RuleError, match=r"is_night == 1"):
        compile_expression("is_night and amount > 1", DEFAULT_SCHEMA, rule_id="r")


def test_error_points_at_the_offending_position() -> None:
    with pytest.raises(RuleError, match=r"at position 11"):
        compile_expression("a > 1 and s.upper() == 'X'", SMALL, rule_id="r")


def test_overly_long_expression_is_refused_before_parsing() -> None:
    expression = " or ".join(["a > 1"] * (MAX_EXPRESSION_CHARS // 9 + 1))
    assert len(expression) > MAX_EXPRESSION_CHARS
    with pytest.raises(RuleError, match="longer than"):
        compile_expression(expression, SMALL, rule_id="long")


def test_overly_deep_expression_is_refused() -> None:
    expression = "-" * (MAX_DEPTH + 1) + "a > 0"
    with pytest.raises(RuleError, match="nested deeper"):
        compile_expression(expression, SMALL, rule_id="deep")


def test_deep_but_allowed_nesting_compiles() -> None:
    compile_expression("-" * (MAX_DEPTH - 3) + "a > 0", SMALL, rule_id="ok")


def test_too_many_elements_are_refused() -> None:
    expression = " or ".join(f"a > {i}" for i in range(150))
    assert len(expression) <= MAX_EXPRESSION_CHARS
    with pytest.raises(RuleError, match="more than"):
        compile_expression(expression, SMALL, rule_id="wide")


def test_deeply_nested_parentheses_are_refused_cleanly() -> None:
    expression = "(" * 300 + "a" + ")" * 300 + " > 0"
    with pytest.raises(RuleError, match="rule 'parens'"):
        compile_expression(expression, SMALL, rule_id="parens")


def test_null_byte_is_refused_cleanly() -> None:
    with pytest.raises(RuleError, match="rule 'nul'"):
        compile_expression("a > 1\x00", SMALL, rule_id="nul")


@pytest.mark.parametrize(
    ("numeric", "strings"),
    [(["a"], ["a"]), (["not an identifier"], []), (["class"], []), (["__x__"], [])],
)
def test_schema_refuses_bad_column_names(numeric: list[str], strings: list[str]) -> None:
    with pytest.raises(RuleError, match="schema"):
        ColumnSchema.of(numeric=numeric, strings=strings)


def test_default_schema_has_the_agreed_features_and_fields() -> None:
    for name in (
        "user_count_1m",
        "user_amount_mean_30d",
        "user_amount_zscore_30d",
        "user_travel_kmh",
        "merchant_risk",
        "merchant_amount_mean_24h",
        "amount",
    ):
        assert name in DEFAULT_SCHEMA.numeric
    assert {"country", "channel", "mcc", "currency", "merchant_id"} <= DEFAULT_SCHEMA.strings
    assert "tx_id" not in DEFAULT_SCHEMA.names
