"""Condition language: Argo's documented conditions, operators, built-ins and error behaviour."""

from __future__ import annotations

import math
from typing import Any

import pytest

from rollouts.analysis.expr import (
    NO_DATA_MESSAGE,
    CompiledExpr,
    ExprError,
    compile_expr,
    evaluate_condition,
)

NAN = float("nan")
INF = float("inf")
APDEX = {"service_apdex": {"values": {"values": [{"id": "a", "value": "9950"}, {"id": "b", "value": "9900"}]}}}
APDEX_LOW = {"service_apdex": {"values": {"values": [{"id": "a", "value": "9950"}, {"id": "b", "value": "98"}]}}}

# (id, condition, result, expected) — every condition quoted in reference section 2.7, each with a
# result that makes it true and one that makes it false.
ARGO_CONDITIONS: list[tuple[str, str, Any, bool]] = [
    ("1-true", "result[0] >= 0.95", [0.97], True),
    ("1-false", "result[0] >= 0.95", [0.5], False),
    ("1-int-vs-float", "result[0] >= 0.95", [1], True),
    ("2-true", "result[0] <= 0.95", [0.01], True),
    ("2-false", "result[0] <= 0.95", [0.99], False),
    ("3-fail-true", "result[0] >= 10", [12.0], True),
    ("3-fail-false", "result[0] >= 10", [3.0], False),
    ("4a-empty", "len(result) == 0 || result[0] >= 0.95", [], True),
    ("4a-high", "len(result) == 0 || result[0] >= 0.95", [0.96], True),
    ("4a-low", "len(result) == 0 || result[0] >= 0.95", [0.2], False),
    ("4b-empty", "len(result) > 0 && result[0] >= 0.95", [], False),
    ("4b-high", "len(result) > 0 && result[0] >= 0.95", [0.99], True),
    ("4b-low", "len(result) > 0 && result[0] >= 0.95", [0.1], False),
    ("5-nan", "isNaN(result) || result >= 0.95", NAN, True),
    ("5-high", "isNaN(result) || result >= 0.95", 0.97, True),
    ("5-low", "isNaN(result) || result >= 0.95", 0.5, False),
    ("5-inf-true", "isInf(result)", INF, True),
    ("5-neg-inf-true", "isInf(result)", -INF, True),
    ("5-inf-false", "isInf(result)", 0.3, False),
    ("6-nil", "default(result, 0) < 0.05", None, True),
    ("6-low", "default(result, 0) < 0.05", 0.01, True),
    ("6-high", "default(result, 0) < 0.05", 0.5, False),
    ("7-true", "max(result) < 0.05", [0.01, 0.04, 0.02], True),
    ("7-false", "max(result) < 0.05", [0.01, 0.07], False),
    ("8-true", "all(result, # < 1000)", [10.0, 999.0], True),
    ("8-false", "all(result, # < 1000)", [10.0, 1000.0], False),
    ("9-true", "len(result[0].Values) >= 5 and all(result[0].Values, {# <= 0.01})",
     [{"Values": [0.0, 0.01, 0.002, 0.0, 0.005]}], True),
    ("9-false-short", "len(result[0].Values) >= 5 and all(result[0].Values, {# <= 0.01})",
     [{"Values": [0.0, 0.01]}], False),
    ("9-false-value", "len(result[0].Values) >= 5 and all(result[0].Values, {# <= 0.01})",
     [{"Values": [0.0, 0.01, 0.5, 0.0, 0.0]}], False),
    ("10-true", "all(result.service_apdex.values.values, {asFloat(.value) >= 9900})", APDEX, True),
    ("10-false", "all(result.service_apdex.values.values, {asFloat(.value) >= 9900})", APDEX_LOW, False),
    ("11a-true", "result.ok && result.successPercent >= 0.90", {"ok": True, "successPercent": 0.95}, True),
    ("11a-false-ok", "result.ok && result.successPercent >= 0.90", {"ok": False, "successPercent": 0.95},
     False),
    ("11a-false-pct", "result.ok && result.successPercent >= 0.90", {"ok": True, "successPercent": 0.5},
     False),
    ("11b-true", "result == true", True, True),
    ("11b-false", "result == true", False, False),
    ("11b-string", "result == true", "true", False),
    ("11c-true", 'result == "I am OK"', "I am OK", True),
    ("11c-false", 'result == "I am OK"', "I am not OK", False),
    ("12-true", "result.major == '1'", {"major": "1", "minor": "27"}, True),
    ("12-false", "result.major == '1'", {"major": "2"}, False),
    ("13-success-true", "result.Status == 999", {"Status": 999}, True),
    ("13-success-false", "result.Status == 999", {"Status": 200}, False),
    ("13-failure-true", "result.Status == -1", {"Status": -1}, True),
    ("13-failure-false", "result.Status == -1", {"Status": 999}, False),
    ("14a-true", "result == 'true'", "true", True),
    ("14a-false", "result == 'true'", "false", False),
    ("14b-true", "result.successRate >= 0.95", {"successRate": 0.99}, True),
    ("14b-false", "result.successRate >= 0.95", {"successRate": 0.9}, False),
    ("14c-true", "result[0] >= 0.99", [0.995], True),
    ("14c-false", "result[0] >= 0.99", [0.98], False),
    ("15-success-true", "result[0] >= 0.90", [0.91], True),
    ("15-success-false", "result[0] >= 0.90", [0.7], False),
    ("15-failure-true", "result[0] < 0.50", [0.4], True),
    ("15-failure-false", "result[0] < 0.50", [0.7], False),
]


@pytest.mark.parametrize(("condition", "result", "expected"),
                         [c[1:] for c in ARGO_CONDITIONS], ids=[c[0] for c in ARGO_CONDITIONS])
def test_argo_documented_conditions(condition: str, result: Any, expected: bool) -> None:
    assert evaluate_condition(condition, result) is expected


ENV: dict[str, Any] = {
    "a": 1,
    "b": 2.5,
    "s": "hello world",
    "xs": [1, 2, 3, 4, 5],
    "m": {"k": "v", "n": None, "inner": {"x": 10}},
    "items": [{"name": "a", "v": 1}, {"name": "b", "v": 5}, {"name": "c", "v": 9}],
    "t": True,
    "f": False,
    "nothing": None,
}

# (id, expression, expected value) evaluated against ENV.
VALUES: list[tuple[str, str, Any]] = [
    # literals
    ("int", "42", 42),
    ("hex", "0x2A", 42),
    ("octal", "0o52", 42),
    ("binary", "0b101010", 42),
    ("underscore", "1_000", 1000),
    ("float", "0.5", 0.5),
    ("float-leading-dot", ".5", 0.5),
    ("float-exp", "1e3", 1000.0),
    ("double-quoted", '"a\\"b\\n"', 'a"b\n'),
    ("single-quoted", "'it\\'s'", "it's"),
    ("unicode-escape", '"\\u00e9"', "\u00e9"),
    ("raw-string", "`a\\nb`", "a\\nb"),
    ("nil", "nil", None),
    ("array", "[1, 'x', true,]", [1, "x", True]),
    ("map", "{a: 1, 'b c': 2, 3: 4}", {"a": 1, "b c": 2, "3": 4}),
    ("map-expr-key", "{('k' + 'ey'): 1}", {"key": 1}),
    ("empty-map", "{}", {}),
    ("comment", "1 /* two */ + 2 // three", 3),
    # arithmetic
    ("add-int", "a + 2", 3),
    ("add-mixed", "a + b", 3.5),
    ("sub", "10 - 4 - 3", 3),
    ("mul", "3 * 4", 12),
    ("div-is-float", "7 / 2", 3.5),
    ("div-exact-float", "4 / 2", 2.0),
    ("div-by-zero-inf", "1 / 0", INF),
    ("mod", "7 % 3", 1),
    ("mod-negative-go", "-7 % 3", -1),
    ("pow-float", "2 ** 10", 1024.0),
    ("pow-caret", "2 ^ 3", 8.0),
    ("pow-overflow", "10 ** 400", INF),
    ("int-wraps", "9223372036854775807 + 1", -9223372036854775808),
    ("concat", "'a' + 'b'", "ab"),
    ("unary-minus-var", "-a", -1),
    ("unary-plus", "+b", 2.5),
    # precedence
    ("prec-mul-over-add", "1 + 2 * 3", 7),
    ("prec-parens", "(1 + 2) * 3", 9),
    ("prec-left-assoc-sub", "10 - 2 - 3", 5),
    ("prec-left-assoc-div", "8 / 4 / 2", 1.0),
    ("prec-pow-right-assoc", "2 ** 3 ** 2", 512.0),
    ("prec-neg-pow", "-2 ** 2", -4.0),
    ("prec-neg-mul", "-2 * 3", -6),
    ("prec-not-eq", "not true == false", True),
    ("prec-bang-and", "!f && t", True),
    ("prec-not-grabs-mul", "not t ?? f", False),
    ("prec-and-over-or", "true || false && false", True),
    ("prec-and-over-or-2", "false && true || true", True),
    ("prec-cmp-over-and", "1 < 2 && 3 > 2", True),
    ("prec-arith-in-cmp", "a + 1 == 2", True),
    ("prec-ternary-low", "a == 1 ? 'one' : 'other'", "one"),
    ("prec-ternary-nested", "a == 2 ? 'two' : a == 1 ? 'one' : 'none'", "one"),
    ("prec-coalesce-high", "nothing ?? 3", 3),
    ("prec-range", "1..3", [1, 2, 3]),
    ("prec-range-arith", "1..1+2", [1, 2, 3]),
    ("chained-cmp-true", "1 < a + 1 < 3", True),
    ("chained-cmp-false", "1 < 2 < 2", False),
    ("keywords", "t and not f or f", True),
    # comparison and membership
    ("eq-int-float", "1 == 1.0", True),
    ("eq-mismatch-false", "'1' == 1", False),
    ("eq-bool-int-false", "true == 1", False),
    ("eq-nil", "nothing == nil", True),
    ("eq-array", "[1, 2] == [1, 2]", True),
    ("ne", "a != 2", True),
    ("string-order", "'abc' < 'abd'", True),
    ("in-array", "3 in xs", True),
    ("in-array-float", "3.0 in xs", True),
    ("not-in-array", "7 not in xs", True),
    ("in-map", "'k' in m", True),
    ("in-nil", "1 in nothing", False),
    ("matches", "s matches '^h.*d$'", True),
    ("matches-unanchored", "s matches 'o w'", True),
    ("not-matches", "s not matches '^x'", True),
    ("contains", "s contains 'lo w'", True),
    ("not-contains", "s not contains 'xyz'", True),
    ("startsWith", "s startsWith 'hell'", True),
    ("endsWith", "s endsWith 'world'", True),
    # member, index, slice
    ("member", "m.k", "v"),
    ("member-missing-is-nil", "m.missing", None),
    ("member-nested", "m.inner.x", 10),
    ("member-bracket", "m['inner']['x']", 10),
    ("member-keyword-name", "{in: 1}.in", 1),
    ("optional-nil", "nothing?.x", None),
    ("optional-chain-short-circuit", "nothing?.x.y.z", None),
    ("optional-present", "m?.inner?.x", 10),
    ("optional-index", "nothing?.[0]", None),
    ("index", "xs[0]", 1),
    ("index-negative", "xs[-1]", 5),
    ("index-string", "s[0]", "h"),
    ("slice", "xs[1:3]", [2, 3]),
    ("slice-open-end", "xs[3:]", [4, 5]),
    ("slice-open-start", "xs[:2]", [1, 2]),
    ("slice-negative", "xs[1:-1]", [2, 3, 4]),
    ("slice-clamped", "xs[2:100]", [3, 4, 5]),
    ("slice-all", "xs[:]", [1, 2, 3, 4, 5]),
    ("slice-string", "s[0:5]", "hello"),
    ("coalesce-missing-key", "m.n ?? 'fallback'", "fallback"),
    ("coalesce-present", "m.k ?? 'fallback'", "v"),
    ("env-var", "$env['a']", 1),
    # predicates
    ("all-closure", "all(xs, {# > 0})", True),
    ("all-bare", "all(xs, # > 1)", False),
    ("all-empty", "all([], # > 1)", True),
    ("any", "any(xs, # == 3)", True),
    ("none", "none(xs, # > 5)", True),
    ("one-true", "one(xs, # == 2)", True),
    ("one-false", "one(xs, # > 2)", False),
    ("filter", "filter(xs, # % 2 == 0)", [2, 4]),
    ("map", "map(xs, # * 2)", [2, 4, 6, 8, 10]),
    ("map-field-shorthand", "map(items, .name)", ["a", "b", "c"]),
    ("filter-field", "map(filter(items, .v > 3), .name)", ["b", "c"]),
    ("count", "count(items, .v >= 5)", 2),
    ("count-no-predicate", "count([true, false, true])", 2),
    ("find", "find(xs, # > 2)", 3),
    ("find-none", "find(xs, # > 20)", None),
    ("findIndex", "findIndex(xs, # > 2)", 2),
    ("findLast", "findLast(xs, # < 4)", 3),
    ("findLastIndex", "findLastIndex(xs, # < 4)", 2),
    ("index-pointer", "map(xs, #index)", [0, 1, 2, 3, 4]),
    ("reduce", "reduce(xs, #acc + #)", 15),
    ("reduce-initial", "reduce(xs, #acc + #, 10)", 25),
    ("nested-predicates", "all(items, {any(xs, {# == 1})})", True),
    ("groupBy", "groupBy(xs, # % 2 == 0)", {False: [1, 3, 5], True: [2, 4]}),
    ("sum-predicate", "sum(items, .v)", 15),
    ("pipe", "xs | filter(# > 3) | map(# * 10)", [40, 50]),
    # plain built-ins
    ("len-array", "len(xs)", 5),
    ("len-map", "len(m)", 3),
    ("len-string", "len('héllo')", 5),
    ("max-args", "max(1, 7, 3)", 7),
    ("max-array", "max(xs)", 5),
    ("min-array", "min([3.5, 1, 2])", 1),
    ("max-empty-nil", "max([])", None),
    ("sum-ints", "sum(xs)", 15),
    ("sum-floats", "sum([0.5, 1])", 1.5),
    ("sum-empty", "sum([])", 0),
    ("mean", "mean([1, 2, 3, 4])", 2.5),
    ("median", "median([3, 1, 2])", 2.0),
    ("abs-int", "abs(-3)", 3),
    ("abs-float", "abs(-2.5)", 2.5),
    ("ceil", "ceil(1.2)", 2.0),
    ("floor", "floor(-1.2)", -2.0),
    ("round-half-away", "round(2.5)", 3.0),
    ("round-negative-half", "round(-2.5)", -3.0),
    ("int-from-float", "int(2.9)", 2),
    ("int-from-string", "int('42')", 42),
    ("float-from-string", "float('1.5')", 1.5),
    ("string-int", "string(123)", "123"),
    ("string-float", "string(0.5)", "0.5"),
    ("string-float-whole", "string(2.0)", "2"),
    ("string-float-big", "string(1e21)", "1e+21"),
    ("string-float-small", "string(0.00001)", "1e-05"),
    ("string-array", "string([1, 'a', true])", "[1 a true]"),
    ("string-nil", "string(nil)", "<nil>"),
    ("upper", "upper('abc')", "ABC"),
    ("lower", "lower('ABC')", "abc"),
    ("trim", "trim('  x  ')", "x"),
    ("trim-chars", "trim('__x__', '_')", "x"),
    ("split", "split('a,b,c', ',')", ["a", "b", "c"]),
    ("split-n", "split('a,b,c', ',', 2)", ["a", "b,c"]),
    ("join", "join(['a', 'b'], '-')", "a-b"),
    ("replace", "replace('aXbX', 'X', '_')", "a_b_"),
    ("first-last", "[first(xs), last(xs)]", [1, 5]),
    ("keys", "keys({a: 1})", ["a"]),
    ("type", "type(b)", "float"),
    ("get-missing", "get(xs, 10)", None),
    # Argo helpers
    ("asInt-string", "asInt('12')", 12),
    ("asInt-float", "asInt(3.9)", 3),
    ("asFloat-string", "asFloat('0.25')", 0.25),
    ("asFloat-int", "asFloat(2)", 2.0),
    ("isNil-true", "isNil(nothing)", True),
    ("isNil-false", "isNil(a)", False),
    ("isNaN-int", "isNaN(1)", False),
    ("default-present", "default(a, 9)", 1),
    ("default-nil", "default(nothing, 9)", 9),
]


@pytest.mark.parametrize(("source", "expected"), [v[1:] for v in VALUES], ids=[v[0] for v in VALUES])
def test_expression_values(source: str, expected: Any) -> None:
    value = compile_expr(source).evaluate(ENV)
    assert value == expected
    assert type(value) is type(expected)


def test_nan_result_propagates() -> None:
    assert math.isnan(compile_expr("0 / 0").evaluate({}))


# (id, expression, env, fragment of the error message)
ERRORS: list[tuple[str, str, dict[str, Any], str]] = [
    ("lt-string-number", "'a' < 1", {}, "mismatched types string and int"),
    ("add-string-number", "'a' + 1", {}, "mismatched types string and int"),
    ("mul-string", "'ab' * 3", {}, "mismatched types string and int"),
    ("mod-float", "5.5 % 2", {}, "mismatched types float64 and int"),
    ("mod-zero", "5 % 0", {}, "integer divide by zero"),
    ("index-out-of-range", "result[3]", {"result": [1.0]}, "index out of range: 3 (array length is 1)"),
    ("index-out-of-range-negative", "result[-2]", {"result": [1.0]}, "index out of range"),
    ("member-on-nil", "result.a", {"result": None}, "cannot fetch a from <nil>"),
    ("member-on-nil-deep", "m.n.x", ENV, "cannot fetch x from <nil>"),
    ("member-on-array", "result.values", {"result": [1]}, "cannot fetch values from []interface {}"),
    ("index-map-with-int", "result[0]", {"result": {"a": 1}}, "cannot fetch 0 from map"),
    ("unknown-name", "results[0] >= 90.0", {"result": [95.0]}, "unknown name results"),
    ("and-non-bool", "1 && true", {}, "expects bool, got int"),
    ("and-nil", "result.ok && true", {"result": {}}, "expects bool, got <nil>"),
    ("not-non-bool", "!1", {}, "expects bool, got int"),
    ("ternary-non-bool", "1 ? 2 : 3", {}, "expects bool"),
    ("neg-string", "-'a'", {}, "invalid operation"),
    ("predicate-non-bool", "all([1, 2], # + 1)", {}, "predicate of all must return bool"),
    ("all-on-nil", "all(result, # > 1)", {"result": None}, "builtin all takes only array (got <nil>)"),
    ("len-of-number", "len(5)", {}, "invalid argument for len (type int)"),
    ("len-of-nil", "len(result)", {"result": None}, "invalid argument for len (type <nil>)"),
    ("asInt-bad-string", "asInt('1.5')", {}, "invalid syntax"),
    ("asFloat-bad-string", "asFloat('abc')", {}, "invalid syntax"),
    ("asFloat-bool", "asFloat(true)", {}, "asFloat() not supported on bool"),
    ("isNaN-array", "isNaN(result)", {"result": [1.0]}, "cannot use []interface {} as argument"),
    ("in-string", "'a' in 'abc'", {}, 'operator "in" not defined on string'),
    ("contains-number", "1 contains 'a'", {}, "mismatched types int and string"),
    ("regex-invalid", "'a' matches '('", {}, "invalid regular expression"),
    ("regex-backref", "'aa' matches '(a)\\\\1'", {}, "backreferences"),
    ("regex-lookahead", "'ab' matches 'a(?=b)'", {}, "lookarounds are not supported"),
    ("range-too-long", "len(1..100000000)", {}, "range 1..100000000 is longer"),
    ("repeat-too-long", "repeat('ab', 10000000)", {}, "longer than"),
    ("reduce-empty", "reduce([], #acc + #)", {}, "needs an initial value"),
    ("int-of-nan", "int(0/0)", {}, "cannot convert NaN"),
]


@pytest.mark.parametrize(("source", "env", "fragment"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_evaluation_errors(source: str, env: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ExprError) as info:
        compile_expr(source).evaluate(env)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


# (id, source, fragment of the message)
SYNTAX_ERRORS: list[tuple[str, str, str]] = [
    ("dangling-operator", "result[0] >=", "syntax error at 1:13: unexpected end of expression"),
    ("unexpected-token", "result[0] >= )", "syntax error at 1:14: unexpected token ')'"),
    ("bad-character", "result @ 1", "syntax error at 1:8: unexpected character '@'"),
    ("second-line", "true &&\n  && false", "syntax error at 2:3"),
    ("unclosed-paren", "(1 + 2", "unexpected end of expression"),
    ("unclosed-string", "'abc", "syntax error at 1:1"),
    ("bad-escape", '"\\q"', "invalid escape sequence \\q"),
    ("int-too-large", "99999999999999999999", "integer literal 99999999999999999999 is too large"),
    ("unknown-func", "foo(1)", "unknown func foo at 1:1"),
    ("too-few-args", "all(result)", "not enough arguments to call all"),
    ("too-many-args", "len(1, 2)", "too many arguments to call len"),
    ("pointer-outside", "# > 1", "cannot use pointer accessor # outside a predicate"),
    ("field-pointer-outside", ".value > 1", "outside a predicate"),
    ("closure-outside", "{# > 1}", "only allowed as the predicate argument"),
    ("unknown-pointer", "all(result, #foo)", "unknown pointer #foo"),
    ("empty", "   ", "expression is empty"),
    ("govaluate-style", "result >= 0.9 AND result < 1", "syntax error"),
]


@pytest.mark.parametrize(("source", "fragment"), [e[1:] for e in SYNTAX_ERRORS],
                         ids=[e[0] for e in SYNTAX_ERRORS])
def test_syntax_errors(source: str, fragment: str) -> None:
    with pytest.raises(ExprError) as info:
        compile_expr(source)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_too_long_is_refused() -> None:
    source = "true || " * 600 + "true"
    assert len(source) > 4096
    with pytest.raises(ExprError, match=r"expression is too long: \d+ characters \(limit is 4096\)"):
        compile_expr(source)


def test_long_flat_chains_are_not_deep() -> None:
    source = " && ".join(["result[0] > 0"] * 200)
    assert len(source) < 4096
    assert evaluate_condition(source, [1.0]) is True


@pytest.mark.parametrize("source", ["(" * 70 + "1" + ")" * 70 + " == 1"], ids=["parens-are-free"])
def test_redundant_parentheses_do_not_count(source: str) -> None:
    assert evaluate_condition(source, None) is True


@pytest.mark.parametrize(
    "source",
    ["-" * 70 + "result == 1", "len(" * 65 + "'x'" + ")" * 65, "[" * 65 + "]" * 65, "!" * 100 + "true"],
    ids=["unary-chain", "nested-calls", "nested-arrays", "bang-chain"],
)
def test_too_deep_is_refused(source: str) -> None:
    with pytest.raises(ExprError, match="nests too deeply"):
        compile_expr(source)


def test_step_budget_stops_runaway_evaluation() -> None:
    source = "len(map(1..100000, map(1..100000, #))) > 0"
    with pytest.raises(ExprError, match="exceeded"):
        compile_expr(source).evaluate({})


# Argo's rules on top of plain evaluation.


@pytest.mark.parametrize(
    ("condition", "result", "got"),
    [("result", 0.5, "float64"), ("result[0]", [1], "int"), ("result.name", {"name": "x"}, "string"),
     ("result", {"a": 1}, "map[string]interface {}"), ("result", [1.0], "[]interface {}"),
     ("result.missing", {"a": 1}, "<nil>")],
    ids=["float", "int", "string", "map", "array", "nil"],
)
def test_non_bool_result_is_an_error(condition: str, result: Any, got: str) -> None:
    with pytest.raises(ExprError) as info:
        evaluate_condition(condition, result)
    assert str(info.value) == f"expected bool, but got {got}"


@pytest.mark.parametrize(
    ("condition", "result"),
    [("result[0] >= 0.95", []), ("result[0] >= 0.95", None), ("result < 0.05", None),
     ("max(result) < 0.05", []), ("all(result, # < 1000)", None), ("result", [])],
    ids=["index-empty", "index-nil", "compare-nil", "max-empty", "all-nil", "non-bool-empty"],
)
def test_nil_or_empty_result_message(condition: str, result: Any) -> None:
    with pytest.raises(ExprError) as info:
        evaluate_condition(condition, result)
    assert str(info.value) == NO_DATA_MESSAGE
    assert isinstance(info.value.__cause__, ExprError)


def test_empty_result_still_evaluates_when_guarded() -> None:
    assert evaluate_condition("len(result) == 0 || result[0] >= 0.95", []) is True
    assert evaluate_condition("default(result, 0) < 0.05", None) is True


def test_non_empty_result_keeps_original_message() -> None:
    with pytest.raises(ExprError, match="index out of range: 1"):
        evaluate_condition("result[1] > 0", [0.5])


def test_compile_is_cached_and_reusable() -> None:
    first = compile_expr("result.ok == true")
    assert compile_expr("result.ok == true") is first
    assert isinstance(first, CompiledExpr)
    assert first.source == "result.ok == true"
    assert first.evaluate({"result": {"ok": True}}) is True
    assert first.evaluate({"result": {"ok": False}}) is False


def test_tuple_results_behave_like_lists() -> None:
    assert evaluate_condition("result[-1] > 1 && len(result) == 2", (0.5, 2.0)) is True


# (id, condition, subject, expected): patterns a backtracking engine takes seconds to minutes on; RE2 is
# linear, so they are answered at once and correctly (Go's regexp accepts them too).
HOSTILE_REGEXES: list[tuple[str, str, str, bool]] = [
    ("overlapping-alternation", "result matches '(a|a)+$'", "a" * 40 + "b", False),
    ("nested-quantifier", "result matches '^(a+)+$'", "a" * 40 + "b", False),
    ("nested-quantifier-match", "result matches '^(a+)+$'", "a" * 40, True),
    ("overlapping-classes", "result matches '^([0-9a-z]|[0-9])*x$'", "1" * 40 + "!", False),
    ("long-subject", "result matches '(a|aa)+c$'", "a" * 200_000, False),
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("condition", "subject", "expected"), [h[1:] for h in HOSTILE_REGEXES],
                         ids=[h[0] for h in HOSTILE_REGEXES])
def test_matches_with_hostile_pattern_finishes(condition: str, subject: str, expected: bool) -> None:
    assert compile_expr(condition).evaluate({"result": subject}) is expected
