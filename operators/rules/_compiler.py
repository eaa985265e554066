"""Compile a rule expression into a closure tree over numpy arrays, refusing anything unsafe.

Rules are edited by analysts and hot-reloaded into the scoring path, so an expression is
data, never code: it is parsed with ``ast.parse`` (which only builds a tree and runs
nothing) and every node is checked against a short whitelist, type-checked against the
column schema, and turned into a closure. ``eval``/``exec``/``compile`` are never used.

Missing values: a comparison, ``in`` or ``not in`` that involves a missing value (NaN, or
a string column holding None) is False, ``!=`` included. ``not (...)`` is plain negation,
so ``not (country in ["FR"])`` is True for an unknown country while
``country not in ["FR"]`` is False.
"""

from __future__ import annotations

import ast
import difflib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any

import numpy as np
from numpy.typing import NDArray

from operators.exceptions import RuleError
from operators.rules._frame import Batch, Frame
from operators.rules._operations import (
    BoolFn,
    NumFn,
    PresentFn,
    TextFn,
    compare_numbers,
    compare_text,
    number_membership,
    text_membership,
)
from operators.rules._schema import ColumnSchema

__all__ = ["MAX_DEPTH", "MAX_EXPRESSION_CHARS", "CompiledExpression", "compile_expression"]

#: Longest expression accepted, in characters; longer ones are refused before parsing.
MAX_EXPRESSION_CHARS = 2000
#: Deepest nesting accepted (operators inside operators).
MAX_DEPTH = 32
_MAX_NODES = 400
_MAX_LIST_ITEMS = 1000

_ARITHMETIC: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.divide,
}
_SYMBOLS: dict[type[ast.AST], str] = {
    ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
    ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not",
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
    ast.Pow: "**", ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|",
    ast.BitAnd: "&", ast.BitXor: "^", ast.UAdd: "unary +", ast.Invert: "~",
}  # fmt: skip
_REFUSED: dict[type[ast.AST], str] = {
    ast.Call: "function calls are not allowed",
    ast.Attribute: "attribute access is not allowed",
    ast.Subscript: "subscripts (indexing) are not allowed",
    ast.Lambda: "lambdas are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "generator expressions are not allowed",
    ast.NamedExpr: "assignment expressions (:=) are not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.IfExp: "conditional expressions (x if c else y) are not allowed",
    ast.Dict: "dict literals are not allowed",
    ast.Set: "set literals are not allowed; use a list: x in [...]",
    ast.Starred: "starred expressions are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
    ast.Slice: "slices are not allowed",
}


@dataclass(frozen=True, slots=True)
class _Num:
    fn: NumFn
    what: str


@dataclass(frozen=True, slots=True)
class _Text:
    fn: TextFn
    present: PresentFn | None  # None: a literal, always present
    what: str


@dataclass(frozen=True, slots=True)
class _Cond:
    fn: BoolFn
    what: str


_Typed = _Num | _Text | _Cond


@dataclass(frozen=True, slots=True)
class CompiledExpression:
    """A checked expression, ready to evaluate on any batch that has its columns.

    Built once per rule at load time; evaluating it only runs numpy operations.
    """

    source: str
    numeric_columns: frozenset[str]
    string_columns: frozenset[str]
    _fn: BoolFn

    @property
    def columns(self) -> frozenset[str]:
        """Every column the expression reads."""
        return self.numeric_columns | self.string_columns

    def evaluate_frame(self, frame: Frame) -> NDArray[np.bool_]:
        """Evaluate on an already checked frame (the rule set shares one across rules)."""
        result = self._fn(frame)
        if isinstance(result, np.ndarray) and result.ndim == 1:
            return result
        return np.full(frame.n_rows, bool(result), dtype=np.bool_)

    def evaluate(self, batch: Batch, n_rows: int | None = None) -> NDArray[np.bool_]:
        """Evaluate on a batch (column name -> array), one boolean per row."""
        frame = Frame.from_batch(batch, self.numeric_columns, self.string_columns, n_rows)
        with np.errstate(all="ignore"):
            return self.evaluate_frame(frame)


def compile_expression(
    expression: str, schema: ColumnSchema, *, rule_id: str = "<expression>"
) -> CompiledExpression:
    """Check an expression against the whitelist and the schema, and compile it.

    Raises RuleError naming ``rule_id`` and the problem (syntax, a refused construct, an
    unknown name, a type mismatch, or an expression that is too long or too deep).
    """
    compiler = _Compiler(schema, rule_id)
    if not isinstance(expression, str) or not expression.strip():
        raise compiler.error(None, "the expression is empty")
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise compiler.error(
            None, f"the expression is longer than {MAX_EXPRESSION_CHARS} characters"
        )
    # YAML block scalars keep line breaks; inside one expression they mean a space.
    source = expression.replace("\r", " ").replace("\n", " ").strip()
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        where = f" at position {exc.offset}" if exc.offset else ""
        raise compiler.error(None, f"syntax error{where}: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise compiler.error(None, f"cannot parse it: {type(exc).__name__}") from None
    if sum(1 for _ in ast.walk(tree)) > _MAX_NODES:
        raise compiler.error(None, f"the expression has more than {_MAX_NODES} elements")
    root = compiler.compile(tree.body, 1)
    if not isinstance(root, _Cond):
        raise compiler.error(
            tree.body, f"the expression must be a condition, but it is {root.what}"
        )
    return CompiledExpression(
        source=source,
        numeric_columns=frozenset(compiler.numeric_used),
        string_columns=frozenset(compiler.strings_used),
        _fn=root.fn,
    )


class _Compiler:
    def __init__(self, schema: ColumnSchema, rule_id: str) -> None:
        self.schema = schema
        self.rule_id = rule_id
        self.numeric_used: set[str] = set()
        self.strings_used: set[str] = set()

    def error(self, node: ast.AST | None, problem: str) -> RuleError:
        where = ""
        if isinstance(node, ast.expr):
            where = f" (at position {node.col_offset + 1})"
        return RuleError(f"rule {self.rule_id!r}: {problem}{where}", rule_id=self.rule_id)

    def compile(self, node: ast.expr, depth: int) -> _Typed:
        if depth > MAX_DEPTH:
            raise self.error(node, f"the expression is nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, ast.BoolOp):
            return self._bool_op(node, depth)
        if isinstance(node, ast.UnaryOp):
            return self._unary(node, depth)
        if isinstance(node, ast.BinOp):
            return self._arithmetic(node, depth)
        if isinstance(node, ast.Compare):
            return self._compare(node, depth)
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.List | ast.Tuple):
            raise self.error(node, "lists are only allowed on the right of 'in' / 'not in'")
        raise self.error(node, _REFUSED.get(type(node), f"{type(node).__name__} is not allowed"))

    def _bool_op(self, node: ast.BoolOp, depth: int) -> _Cond:
        word = "and" if isinstance(node.op, ast.And) else "or"
        parts = [self._condition(value, depth + 1, f"'{word}'") for value in node.values]
        combine = np.logical_and if word == "and" else np.logical_or
        fns = tuple(part.fn for part in parts)
        return _Cond(lambda frame: reduce(combine, (fn(frame) for fn in fns)), "a condition")

    def _condition(self, node: ast.expr, depth: int, context: str) -> _Cond:
        typed = self.compile(node, depth)
        if not isinstance(typed, _Cond):
            hint = f"; compare it, e.g. {node.id} == 1" if isinstance(node, ast.Name) else ""
            raise self.error(node, f"{context} needs conditions, but got {typed.what}{hint}")
        return typed

    def _number(self, node: ast.expr, depth: int, context: str) -> _Num:
        typed = self.compile(node, depth)
        if not isinstance(typed, _Num):
            raise self.error(node, f"{context} needs numbers, but got {typed.what}")
        return typed

    def _unary(self, node: ast.UnaryOp, depth: int) -> _Typed:
        if isinstance(node.op, ast.Not):
            fn = self._condition(node.operand, depth + 1, "'not'").fn
            return _Cond(lambda frame: np.logical_not(fn(frame)), "a condition")
        if isinstance(node.op, ast.USub):
            literal = _negative_literal(node)
            if literal is not None:
                return self._literal_number(node, literal)
            operand = self._number(node.operand, depth + 1, "unary -").fn
            return _Num(lambda frame: np.negative(operand(frame)), "a number")
        raise self.error(node, f"operator {_SYMBOLS.get(type(node.op), '?')!r} is not allowed")

    def _arithmetic(self, node: ast.BinOp, depth: int) -> _Num:
        operation = _ARITHMETIC.get(type(node.op))
        symbol = _SYMBOLS.get(type(node.op), "?")
        if operation is None:
            raise self.error(node, f"operator {symbol!r} is not allowed (allowed: + - * /)")
        left = self._number(node.left, depth + 1, f"{symbol!r}").fn
        right = self._number(node.right, depth + 1, f"{symbol!r}").fn
        return _Num(lambda frame: operation(left(frame), right(frame)), "a number")

    def _name(self, node: ast.Name) -> _Num | _Text:
        name = node.id
        if name in self.schema.numeric:
            self.numeric_used.add(name)
            return _Num(lambda frame: frame.num(name), f"the number column {name}")
        if name in self.schema.strings:
            self.strings_used.add(name)
            return _Text(
                lambda frame: frame.text(name),
                lambda frame: frame.present(name),
                f"the string column {name}",
            )
        close = difflib.get_close_matches(name, sorted(self.schema.names), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise self.error(node, f"unknown name {name!r}{hint}")

    def _constant(self, node: ast.Constant) -> _Num | _Text:
        value = node.value
        if isinstance(value, str):
            return _Text(lambda frame: value, None, f"the string {value!r}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(
                node, f"the literal {value!r} is not allowed (only numbers and strings)"
            )
        return self._literal_number(node, value)

    def _literal_number(self, node: ast.expr, value: float) -> _Num:
        number = self._finite(node, value)
        return _Num(lambda frame: number, f"the number {number:g}")

    def _finite(self, node: ast.expr, value: float) -> float:
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise self.error(node, "the number is out of range")
        return number

    def _compare(self, node: ast.Compare, depth: int) -> _Cond:
        if any(isinstance(op, ast.In | ast.NotIn) for op in node.ops):
            if len(node.ops) != 1:
                raise self.error(node, "'in' / 'not in' cannot be chained with other comparisons")
            return self._membership(node, depth)
        if any(isinstance(op, ast.Is | ast.IsNot) for op in node.ops):
            raise self.error(node, "'is' / 'is not' are not allowed; use == or !=")
        nodes = [node.left, *node.comparators]
        operands = [self.compile(operand, depth + 1) for operand in nodes]
        checks = []
        for index, op in enumerate(node.ops):
            symbol = _SYMBOLS.get(type(op), "?")
            left, right = operands[index], operands[index + 1]
            if isinstance(left, _Cond) or isinstance(right, _Cond):
                raise self.error(
                    node, f"cannot use {symbol!r} on conditions; combine them with and/or"
                )
            if isinstance(left, _Num) and isinstance(right, _Num):
                checks.append(compare_numbers(symbol, left.fn, right.fn))
            elif isinstance(left, _Text) and isinstance(right, _Text):
                if symbol not in ("==", "!="):
                    raise self.error(
                        node, f"strings can only be compared with == and !=, not {symbol!r}"
                    )
                checks.append(compare_text(symbol, left.fn, left.present, right.fn, right.present))
            else:
                raise self.error(
                    node, f"cannot compare {left.what} with {right.what} using {symbol!r}"
                )
        if len(checks) == 1:
            return _Cond(checks[0], "a condition")
        fns = tuple(checks)
        return _Cond(lambda frame: reduce(np.logical_and, (fn(frame) for fn in fns)), "a condition")

    def _membership(self, node: ast.Compare, depth: int) -> _Cond:
        negate = isinstance(node.ops[0], ast.NotIn)
        word = "not in" if negate else "in"
        left = self.compile(node.left, depth + 1)
        items = self._list_literal(node.comparators[0], word)
        if isinstance(left, _Cond):
            raise self.error(
                node, f"'{word}' needs a number or a string on its left, not a condition"
            )
        if isinstance(left, _Num):
            if any(not isinstance(item, float) for item in items):
                raise self.error(node, f"{left.what} can only be tested '{word}' a list of numbers")
            numbers = [item for item in items if isinstance(item, float)]
            return _Cond(number_membership(left.fn, numbers, negate=negate), "a condition")
        if any(not isinstance(item, str) for item in items):
            raise self.error(node, f"{left.what} can only be tested '{word}' a list of strings")
        texts = [item for item in items if isinstance(item, str)]
        return _Cond(text_membership(left.fn, left.present, texts, negate=negate), "a condition")

    def _list_literal(self, node: ast.expr, word: str) -> Sequence[float | str]:
        if not isinstance(node, ast.List | ast.Tuple):
            raise self.error(
                node, f'the right of \'{word}\' must be a list literal such as ["FR", "DE"]'
            )
        if len(node.elts) > _MAX_LIST_ITEMS:
            raise self.error(node, f"the list has more than {_MAX_LIST_ITEMS} items")
        items: list[float | str] = []
        for element in node.elts:
            if isinstance(element, ast.Constant) and isinstance(element.value, str):
                items.append(element.value)
            elif (
                isinstance(element, ast.Constant)
                and isinstance(element.value, int | float)
                and not isinstance(element.value, bool)
            ):
                items.append(self._finite(element, element.value))
            elif (negative := _negative_literal(element)) is not None:
                items.append(self._finite(element, negative))
            else:
                raise self.error(element, "list items must be number or string literals")
        return items


def _negative_literal(node: ast.expr) -> float | None:
    """``-5`` parses as minus applied to 5; fold it so lists and constants can hold it."""
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and isinstance(node.operand.value, int | float)
        and not isinstance(node.operand.value, bool)
    ):
        try:
            return -float(node.operand.value)
        except OverflowError:
            return -math.inf
    return None
