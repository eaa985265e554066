"""Vectorised evaluation: every operator, the missing-value rules, and a reference check."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.exceptions import BatchError
from operators.rules import compile_expression
from tests.unit.operators.rules._reference import reference_eval
from tests.unit.operators.rules._support import SMALL, NaN, numbers, run, texts

INF = math.inf


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("a > 1", [False, False, True, False]),
        ("a >= 1", [False, True, True, False]),
        ("a < 1", [True, False, False, False]),
        ("a <= 1", [True, True, False, False]),
        ("a == 1", [False, True, False, False]),
        ("a != 1", [True, False, True, False]),  # NaN != 1 is False: missing never fires
        ("0 <= a < 2", [True, True, False, False]),
        ("a in [0, 2]", [True, False, True, False]),
        ("a not in [0, 2]", [False, True, False, False]),
        ("not a > 1", [True, True, False, True]),  # plain negation: NaN row becomes True
        ("-a < -1", [False, False, True, False]),
    ],
)
def test_numeric_operators_with_nan(expression: str, expected: list[bool]) -> None:
    assert run(expression, a=numbers(0, 1, 2, NaN)) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("a + b == 3", [True, False, False]),
        ("a - b == -1", [True, False, False]),
        ("a * b == 2", [True, False, False]),
        ("a / b == 0.5", [True, False, False]),
        ("a + b * 2 == 5", [True, True, False]),  # precedence: 1 + 2 * 2, 5 + 0 * 2
        ("(a + b) * 2 == 6", [True, False, False]),
        ("a / 0 > 1e300", [True, True, False]),  # 5 / 0 is inf, no error
        ("b / a > 0", [True, False, False]),
    ],
)
def test_arithmetic(expression: str, expected: list[bool]) -> None:
    assert run(expression, a=numbers(1, 5, NaN), b=numbers(2, 0, 1)) == expected


def test_zero_divided_by_zero_is_missing_and_never_fires() -> None:
    assert run("a / b != 1", a=numbers(0.0), b=numbers(0.0)) == [False]
    assert run("a / b == a / b", a=numbers(0.0), b=numbers(0.0)) == [False]


def test_infinity_compares_like_a_number() -> None:
    assert run("a > 1e300", a=numbers(INF, -INF)) == [True, False]
    assert run("a != b", a=numbers(INF, INF), b=numbers(INF, 1)) == [False, True]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('s == "x"', [True, False, False, False]),
        ('s != "x"', [False, True, False, False]),  # None != "x" is False
        ('"x" == s', [True, False, False, False]),
        ('s in ["x", "y"]', [True, True, False, False]),
        ('s not in ["x"]', [False, True, False, False]),
        ('s in ["x", "y", "q", "r", "w"]', [True, True, False, False]),  # the hash path
        ('s not in ["x", "q", "r", "w", "v"]', [False, True, False, False]),
        ("s == t", [True, False, False, False]),  # None == None is not a match
        ("s != t", [False, True, False, False]),
        ('not s == "x"', [False, True, True, True]),
        ("s in []", [False, False, False, False]),
        ("s not in []", [True, True, False, False]),
    ],
)
def test_string_operators_with_missing(expression: str, expected: list[bool]) -> None:
    s = texts("x", "y", None, NaN)  # NaN as pandas writes a missing string
    t = texts("x", "x", None, None)
    assert run(expression, s=s, t=t) == expected


def test_unicode_string_arrays_are_accepted() -> None:
    assert run('s == "x"', s=np.array(["x", "y"])) == [True, False]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("a > 0 and b > 0", [True, False, False, False]),
        ("a > 0 or b > 0", [True, True, True, False]),
        ("a > 0 and b > 0 and c > 0", [True, False, False, False]),
        ("a > 0 or b > 0 and c > 0", [True, True, False, False]),  # and binds tighter
        ("(a > 0 or b > 0) and c > 0", [True, False, False, False]),
        ("not (a > 0 or b > 0)", [False, False, False, True]),
    ],
)
def test_boolean_logic(expression: str, expected: list[bool]) -> None:
    a, b, c = numbers(1, 1, 0, 0), numbers(1, 0, 1, 0), numbers(1, 0, 0, 0)
    assert run(expression, a=a, b=b, c=c) == expected


def test_constant_expression_is_broadcast_to_the_batch() -> None:
    assert run("1 < 2", a=numbers(1, 2, 3)) == [True, True, True]
    assert run('"x" == "y"', a=numbers(1, 2)) == [False, False]


def test_integer_columns_are_converted() -> None:
    assert run("a > 1", a=np.array([1, 2])) == [False, True]


def test_evaluation_does_not_modify_the_batch() -> None:
    a = numbers(1, NaN)
    s = texts("x", None)
    run("-a < 0 and s not in ['y'] and a + 1 > 0", a=a, s=s)
    assert a[0] == 1
    assert math.isnan(a[1])
    assert s.tolist() == ["x", None]


def test_missing_column_is_a_batch_error() -> None:
    with pytest.raises(BatchError, match=r"\['b'\]"):
        run("a > b", a=numbers(1))


def test_columns_of_different_lengths_are_a_batch_error() -> None:
    with pytest.raises(BatchError, match="shape"):
        run("a > b", a=numbers(1, 2), b=numbers(1))


def test_non_numeric_values_in_a_numeric_column_are_a_batch_error() -> None:
    with pytest.raises(BatchError, match="numeric"):
        run("a > 1", a=texts("x"))


def test_empty_batch_gives_an_empty_result() -> None:
    assert run("a > 1 and s == 'x'", a=numbers(), s=texts()) == []


def test_constant_expression_on_an_empty_mapping_needs_n_rows() -> None:
    compiled = compile_expression("1 < 2", SMALL, rule_id="c")
    assert compiled.evaluate({}, n_rows=2).tolist() == [True, True]
    with pytest.raises(BatchError, match="n_rows"):
        compiled.evaluate({})


# --- random expressions against the row-by-row reference --------------------------------

_NUMBER_VALUES = [NaN, 0.0, -0.0, 1.0, 2.5, -3.0, 1000.0, 0.5, INF, -INF]
_STRING_VALUES = ["x", "y", "z", None, NaN]

_number_leaf = st.sampled_from(["a", "b", "c", "0", "1", "2.5", "-3", "1e3"])
_number = st.recursive(
    _number_leaf,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        inner.map(lambda e: f"(-{e})"),
    ),
    max_leaves=4,
)
_text = st.sampled_from(["s", "t", '"x"', '"y"'])
_cmp = st.sampled_from(["<", "<=", ">", ">=", "==", "!="])
_number_lists = st.lists(st.sampled_from(["0", "1", "-3", "2.5", "1000"]), max_size=4)
_text_lists = st.lists(st.sampled_from(['"x"', '"y"', '"w"', '"v"', '"u"']), max_size=6)

_atom = st.one_of(
    st.tuples(_number, _cmp, _number).map(" ".join),
    st.tuples(_number, _cmp, _number, _cmp, _number).map(" ".join),
    st.tuples(_text, st.sampled_from(["==", "!="]), _text).map(" ".join),
    st.tuples(_number, st.sampled_from(["in", "not in"]), _number_lists).map(
        lambda t: f"{t[0]} {t[1]} [{', '.join(t[2])}]"
    ),
    st.tuples(_text, st.sampled_from(["in", "not in"]), _text_lists).map(
        lambda t: f"{t[0]} {t[1]} [{', '.join(t[2])}]"
    ),
)
_condition = st.recursive(
    _atom.map(lambda e: f"({e})"),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        inner.map(lambda e: f"(not {e})"),
    ),
    max_leaves=5,
)


@st.composite
def _batches(draw: st.DrawFn) -> dict[str, np.ndarray]:
    n = draw(st.integers(min_value=1, max_value=12))
    batch: dict[str, np.ndarray] = {}
    for name in ("a", "b", "c"):
        batch[name] = numbers(
            *draw(st.lists(st.sampled_from(_NUMBER_VALUES), min_size=n, max_size=n))
        )
    for name in ("s", "t"):
        batch[name] = texts(
            *draw(st.lists(st.sampled_from(_STRING_VALUES), min_size=n, max_size=n))
        )
    return batch


@settings(max_examples=300, deadline=None)
@given(expression=_condition, batch=_batches())
def test_vectorised_matches_row_by_row_reference(
    expression: str, batch: dict[str, np.ndarray]
) -> None:
    compiled = compile_expression(expression, SMALL, rule_id="random")
    vectorised = compiled.evaluate(batch).tolist()
    n = len(batch["a"])
    rows = [{name: column[i] for name, column in batch.items()} for i in range(n)]
    expected = [reference_eval(expression, row, {"a", "b", "c"}) for row in rows]
    assert vectorised == expected, expression
