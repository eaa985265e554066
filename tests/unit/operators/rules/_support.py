"""Small builders shared by the rule engine tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from operators.rules import ColumnSchema, compile_expression

NaN = float("nan")

#: A tiny schema for expression tests: numbers a, b, c and strings s, t.
SMALL = ColumnSchema.of(numeric=["a", "b", "c"], strings=["s", "t"])


def numbers(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float64)


def texts(*values: Any) -> np.ndarray:
    return np.array(values, dtype=object)


def run(expression: str, schema: ColumnSchema = SMALL, **columns: Any) -> list[bool]:
    """Compile and evaluate an expression on the given columns; plain bools for asserts."""
    result = compile_expression(expression, schema, rule_id="t").evaluate(columns)
    assert result.dtype == np.bool_
    values: list[bool] = result.tolist()
    return values


def rule(rule_id: str, expression: str, action: str = "REVIEW", **extra: str) -> dict[str, str]:
    """A rule spec as it appears in a rules file."""
    return {
        "id": rule_id,
        "description": f"test rule {rule_id}",
        "expression": expression,
        "action": action,
        "reason": rule_id.upper(),
        **extra,
    }
