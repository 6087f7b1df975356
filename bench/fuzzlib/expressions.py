"""Condition-language inputs as hypothesis strategies.

`grammar_expressions()` follows the rules of src/rollouts/analysis/expr/expr.lark one for one (ternary, pipe,
or, and, compare, range, sum, product, power, coalesce, prefix operators, postfix chains, atoms), with the
built-in functions at, around and beyond their arity, so most inputs parse and reach the evaluator; some
are deliberately off the grammar (a bad escape, an unknown pointer, a stray token) to reach the error paths.
`expression_sources()` adds random unicode and random bytes decoded as text. `results()` are the values a
metric provider can return (JSON-like, with NaN, infinities, huge integers and deep nesting).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from rollouts.analysis.expr.functions import FUNCTIONS, PREDICATE_BUILTINS

from .choices import Choices

# Binary operator levels, loosest first, as expr.lark spells them (both spellings of the word operators).
OR_OPS = ["||", "or"]
AND_OPS = ["&&", "and"]
CMP_OPS = ["==", "!=", "<", "<=", ">", ">=", "in", "matches", "contains", "startsWith", "endsWith",
           "not in", "not matches", "not contains", "not startsWith", "not  endsWith"]
ADD_OPS = ["+", "-"]
MUL_OPS = ["*", "/", "%"]
POW_OPS = ["**", "^"]
NAMES = ["result", "result", "result", "$env", "x", "true", "false", "nil", "let", "in", "_a1"]
MEMBERS = ["a", "b", "status", "value", "count", "decided", "in", "not", "length", "0", "x_y"]
POINTERS = ["#", "#index", "#acc", "#", "#bogus"]
SPACES = [" ", " ", " ", "", "\n", "\t", " /* c */ ", " // c\n"]

_ESCAPES = ["\\n", "\\t", "\\\\", "\\'", '\\"', "\\x41", "\\u00e9", "\\U0001F600", "\\101", "\\q", "\\u12",
            "\\U00110000", "\\777", "\\a", "\\v", "\\`"]
_INT_FORMS = ["{d}", "{d}", "{big}", "0x{h}", "0X{h}", "0o{o}", "0b{b}", "1_{d}", "0x_{h}", "9223372036854775807",
              "9223372036854775808", "0b", "0x", "00"]
_FLOAT_FORMS = ["{d}.{d}", ".{d}", "{d}e{d}", "{d}.{d}e-{d}", "1e309", "1e-400", "2E+2", "1_0.5", "1e", "1.e5",
                "3.14_15"]
_REGEXES = ["'(a|a)+$'", "'^[a-z]+$'", "'['", "'(?P<x>a)'", "'\\\\d+'", "'a{1000}{1000}'", "'(?i)ok'", "'\\\\'"]
_TEXT = "ab zé\u202e\x00🙂_-.:/%" + "\x7f\x1b"
SPACES = [" ", " ", " ", "", "\n", "\t", " /* c */ ", " // c\n"]


def _text(c: Choices) -> str:
    return "".join(_TEXT[c.below(len(_TEXT))] if c.below(3) else c.pick(_ESCAPES) for _ in range(c.below(6)))


def _literal(c: Choices) -> str:
    kind = c.below(12)
    if kind <= 2:
        return c.pick(NAMES)
    if kind <= 4:
        return c.pick(_INT_FORMS).format(d=c.digits(), big=c.digits() * 6, h=c.digits("0123456789abcdefABCDEF_"),
                                         o=c.digits("01234567"), b=c.digits("01"))
    if kind == 5:
        return c.pick(_FLOAT_FORMS).format(d=c.digits())
    if kind <= 7:
        quote = c.pick(["'", '"', "`"])
        body = _text(c)
        body = body.replace("`", "") if quote == "`" else body.replace(quote, "\\" + quote).replace("\n", "")
        return quote + body + quote
    if kind == 8:
        return c.pick(_REGEXES)
    if kind == 9:
        return c.pick(POINTERS)
    if kind == 10:
        return "." + c.pick(MEMBERS)
    return c.pick(["true", "false", "nil"])


BINARY_OPS = OR_OPS + AND_OPS + CMP_OPS + ADD_OPS + MUL_OPS + POW_OPS + ["??", "..", "|"]
PREFIXES = ["", "", "", "", "not ", "!", "-", "+", "not not ", "- "]
CLOSURES = ["{# > 0}", "{#.a == 1}", "{# * 2}", "{#index < 2}", "{#acc + #}", "{len(#) > 0}", ".a > 1", "{.b}",
            "{# in [1, 2]}", "{#?.value ?? 0}"]
# (name, fewest args, most args or -1, index of the predicate or -1): every built-in the parser knows.
CALLS = sorted([(name, shape.min_args, shape.max_args, shape.predicate_at) for name, shape in PREDICATE_BUILTINS.items()]
               + [(name, f.min_args, f.max_args, -1) for name, f in FUNCTIONS.items()]) + [("unknownFunc", 0, 2, -1)]


def _ternary(c: Choices, depth: int) -> str:
    """ternary: pipe ("?" ternary ":" ternary)? -- where `pipe` to `coalesce` are one operator chain here:
    any mix of the levels' operators is in the grammar, which only decides how they group."""
    if depth <= 0:
        return _literal(c)
    choice = c.below(12)
    if choice == 10:
        return f"{_chain(c, depth)} ? {_ternary(c, depth - 1)} : {_ternary(c, depth - 1)}"
    if choice == 11:
        return f"{_chain(c, depth)} | {_call(c, depth - 1, piped=True)}"
    return _chain(c, depth)


def _chain(c: Choices, depth: int) -> str:
    space = c.pick(SPACES)
    out = _operand(c, depth)
    for _ in range(c.below(4)):
        op = c.pick(BINARY_OPS)
        if op == "|":
            out += f" | {_call(c, depth - 1, piped=True)}"
        else:
            out += f"{space}{op}{space}{_operand(c, depth)}"
    return out


def _operand(c: Choices, depth: int) -> str:
    """operand: postfix | NOT product | SIGN power; postfix: atom postfix_op*."""
    out = c.pick(PREFIXES) + _atom(c, depth)
    for _ in range(c.below(3)):
        kind = c.below(6)
        member = c.pick(MEMBERS)
        if kind == 0:
            out += "." + member
        elif kind == 1:
            out += "?." + member
        elif kind == 2:
            out += f"[{c.below(7) - 3}]"
        elif kind == 3:
            out += f"[{_ternary(c, depth - 1)}]"
        elif kind == 4:
            out += f"?.[{_ternary(c, depth - 1)}]"
        else:
            low = _ternary(c, depth - 1) if c.below(2) else ""
            high = _ternary(c, depth - 1) if c.below(2) else ""
            out += f"[{low}:{high}]"
    return out


def _atom(c: Choices, depth: int) -> str:
    choice = c.below(10) if depth > 0 else 0
    if choice <= 3:
        return _literal(c)
    if choice == 4:
        return f"({_ternary(c, depth - 1)})"
    if choice == 5:
        items = [_ternary(c, depth - 1) for _ in range(c.below(5))]
        return "[" + ", ".join(items) + ("," if items and c.below(2) else "") + "]"
    if choice == 6:
        pairs = []
        for _ in range(c.below(4)):
            key = c.pick(MEMBERS) if c.below(2) else _literal(c)
            if c.below(5) == 0:
                key = f"({_ternary(c, depth - 1)})"
            pairs.append(f"{key}: {_ternary(c, depth - 1)}")
        return "{" + ", ".join(pairs) + "}"
    return _call(c, depth - 1)


def _call(c: Choices, depth: int, piped: bool = False) -> str:
    """A built-in call with as many arguments as it takes, one fewer or one more; the predicate argument
    of all()/map()/... a closure, a bare expression or one using # and its members."""
    name, low, high, predicate_at = CALLS[c.below(len(CALLS))]
    skip = 1 if piped else 0  # the piped value is the first argument
    most = high if high >= 0 else low + 3
    fewest = max(0, low - 1 - skip)
    count = fewest + c.below(max(0, most + 1 - skip) - fewest + 1)
    args = []
    for index in range(count):
        if index + skip == predicate_at:
            args.append(c.pick(CLOSURES) if c.below(2)
                        else "{" + _ternary(c, depth) + "}")
        else:
            args.append(_ternary(c, depth))
    return f"{name}(" + ", ".join(args) + ")"


def _grammar(data: bytes, max_depth: int) -> str:
    c = Choices(data)
    source = _ternary(c, 1 + c.below(max_depth))
    if c.below(3) == 0:  # most conditions compare something: give the evaluator a bool to return
        source = f"{source} {c.pick(CMP_OPS[:6])} {_ternary(c, 1)}"
    return source


def grammar_expressions(max_depth: int = 4) -> st.SearchStrategy[str]:
    """Sources following expr.lark's rules, nested up to `max_depth` levels."""
    return st.binary(max_size=512).map(lambda data: _grammar(data, max_depth))


def _off_grammar(source: str, noise: str, at: int) -> str:
    at = at % (len(source) + 1)
    return source[:at] + noise + source[at:]


def expression_sources() -> st.SearchStrategy[str]:
    """Grammar-driven sources (mostly), some with a token off the grammar, random unicode and random bytes."""
    grammar = grammar_expressions()
    noise = st.sampled_from([")", "(", "]", "[", "}", "{", ",", ":", "?", "|", "..", "#x", "'", '"', "`", "\\",
                             "\x00", "\u202e", "\ud800", "/*", "//", "not", "=", "&", "!=="])
    # (share in percent, strategy): hypothesis' one_of does not weigh its branches, so pick by a drawn number
    branches: list[tuple[int, st.SearchStrategy[str]]] = [
        (70, grammar),
        (10, st.builds(_off_grammar, grammar, noise, st.integers(0, 200))),
        (6, st.text(max_size=60)),
        (6, st.text(st.sampled_from(list("()[]{}.,:?|!#'\"`+-*/%^<>=&$ \n0123456789abcdefinorstuxyz_")),
                    max_size=80)),
        (4, st.binary(max_size=80).map(lambda b: b.decode("utf-8", "surrogateescape"))),
        (4, st.binary(max_size=80).map(lambda b: b.decode("latin-1"))),
    ]
    table = [strategy for share, strategy in branches for _ in range(share)]
    return st.integers(0, len(table) - 1).flatmap(lambda index: table[index])


_SCALARS: list[Any] = [0.99, None, True, False, 0, 1, -1, 3, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63), 0.99, 1.0, 0.5, -0.0,
                       float("nan"), float("inf"), float("-inf"), 1e308, 5e-324, "", "ok", "It worked!", "0.5",
                       "é\u202e\x00", "a" * 300, "true"]


def _value(c: Choices, depth: int) -> Any:
    kind = c.below(8) if depth > 0 else 0
    if kind <= 3:
        return _SCALARS[c.below(len(_SCALARS))]
    if kind <= 5:
        return [_value(c, depth - 1) for _ in range(c.below(5))]
    if kind == 6:
        return {c.pick(MEMBERS + ["", "é"]): _value(c, depth - 1) for _ in range(c.below(4))}
    return _deep(1 + c.below(120))


def results() -> st.SearchStrategy[Any]:
    """What a provider can hand the condition as `result` (decoded JSON, Prometheus vectors, scalars,
    deep nesting), read from one drawn byte string like the sources."""
    return st.binary(max_size=64).map(lambda data: _value(Choices(data), 4))


def _deep(depth: int) -> Any:
    value: Any = [1]
    for _ in range(depth):
        value = [value]
    return value
