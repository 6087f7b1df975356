"""Condition language invariants: arithmetic agrees with Go int64/float semantics, parsing never
fails with anything but ExprError, and printing-then-parsing literals round-trips."""

from __future__ import annotations

import contextlib
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from rollouts.analysis.expr import ExprError, compile_expr, evaluate_condition

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
SMALL = st.integers(min_value=-(10**6), max_value=10**6)


def _wrap(v: int) -> int:
    return (v + 2**63) % 2**64 - 2**63


@given(a=INT64, b=INT64, op=st.sampled_from(["+", "-", "*"]))
def test_int_arithmetic_wraps_like_int64(a: int, b: int, op: str) -> None:
    expected = _wrap({"+": a + b, "-": a - b, "*": a * b}[op])
    assert compile_expr(f"a {op} b").evaluate({"a": a, "b": b}) == expected


@given(a=SMALL, b=SMALL.filter(lambda v: v != 0))
def test_division_is_float_and_modulo_truncates(a: int, b: int) -> None:
    env = {"a": a, "b": b}
    assert compile_expr("a / b").evaluate(env) == a / b
    assert compile_expr("a % b").evaluate(env) == int(math.fmod(a, b))


@given(a=SMALL, b=SMALL, c=SMALL)
def test_precedence_matches_python_for_add_and_mul(a: int, b: int, c: int) -> None:
    env = {"a": a, "b": b, "c": c}
    assert compile_expr("a + b * c - a").evaluate(env) == a + b * c - a
    assert compile_expr("(a + b) * c").evaluate(env) == (a + b) * c
    assert compile_expr("-a * b + c").evaluate(env) == -a * b + c


@given(a=st.floats(allow_nan=False), b=st.integers(min_value=-(2**53), max_value=2**53))
def test_mixed_comparisons_agree_with_python(a: float, b: int) -> None:
    env = {"a": a, "b": b}
    assert evaluate_condition("result.a < result.b", env) is (a < b)
    assert evaluate_condition("result.a >= result.b", env) is (a >= b)
    assert evaluate_condition("result.a == result.b", env) is (a == b)


@settings(max_examples=300)
@given(st.text(alphabet=st.sampled_from(list("result[]0.,:?#{}()!&|<>=+-*/%^'\" \\abn1eE_x")), max_size=40))
def test_parse_only_ever_raises_expr_error(source: str) -> None:
    try:
        compiled = compile_expr(source)
    except ExprError:
        return
    with contextlib.suppress(ExprError):
        compiled.evaluate({"result": [1.0, {"a": 2}], "a": 1, "b": "x"})


@given(st.text(max_size=30))
def test_string_literals_round_trip(text: str) -> None:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    assert compile_expr(f'"{escaped}"').evaluate({}) == text
