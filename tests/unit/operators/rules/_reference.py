"""A deliberately naive row-by-row evaluator: the specification the vectorised one must match.

It walks the same Python AST but with plain Python values per row, implementing the
documented semantics directly: a comparison, ``in`` or ``not in`` with a missing value
(NaN, or a non-string in a string column) is False; ``not`` is plain negation.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Any, cast

import numpy as np

_MISSING = object()
_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_ARITH = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def reference_eval(expression: str, row: dict[str, Any], numeric: set[str]) -> bool:
    tree = ast.parse(expression, mode="eval")
    return bool(_eval(tree.body, row, numeric))


def _missing(value: Any) -> bool:
    return value is _MISSING or (isinstance(value, float) and math.isnan(value))


def _eval(node: ast.expr, row: dict[str, Any], numeric: set[str]) -> Any:
    if isinstance(node, ast.Name):
        value = row[node.id]
        if node.id in numeric:
            return np.float64(value)
        return value if isinstance(value, str) else _MISSING
    if isinstance(node, ast.Constant):
        value = node.value
        return value if isinstance(value, str) else np.float64(cast(float, value))
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, row, numeric)
        return (not operand) if isinstance(node.op, ast.Not) else -operand
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, row, numeric), _eval(node.right, row, numeric)
        with np.errstate(all="ignore"):
            return _ARITH[type(node.op)](left, right)
    if isinstance(node, ast.BoolOp):
        values = [bool(_eval(value, row, numeric)) for value in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.In | ast.NotIn):
        left = _eval(node.left, row, numeric)
        listed = node.comparators[0]
        assert isinstance(listed, ast.List | ast.Tuple)
        items = [_eval(item, row, numeric) for item in listed.elts]
        if _missing(left):
            return False
        found = any(type(left) is type(item) and left == item for item in items)
        return found if isinstance(node.ops[0], ast.In) else not found
    if isinstance(node, ast.Compare):
        values = [_eval(part, row, numeric) for part in (node.left, *node.comparators)]
        for index, op in enumerate(node.ops):
            left, right = values[index], values[index + 1]
            if _missing(left) or _missing(right):
                return False
            if not _COMPARE[type(op)](left, right):
                return False
        return True
    raise AssertionError(f"unexpected node {type(node).__name__}")
