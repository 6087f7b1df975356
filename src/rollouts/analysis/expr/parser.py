"""Parsing of condition source text into a validated syntax tree (lark, LALR, built during the parse).

Owns the source limits (length, nesting), literal decoding (numbers, Go-style string escapes),
the shape of built-in calls (predicate arguments, arity) and the syntax error messages.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from . import nodes as n
from .errors import ExprError
from .functions import FUNCTIONS, PREDICATE_BUILTINS, wrap_int

MAX_SOURCE_LENGTH = 4096
MAX_DEPTH = 64

_POINTERS = {"": "#", "index": "#index", "acc": "#acc"}
_ESCAPE = re.compile(
    r"\\(?:([abfnrtv\\'\"`])|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|([0-7]{3})|(.))", re.S
)
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _at(token: Token) -> str:
    return f"{token.line}:{token.column}"


def _unescape(token: Token) -> str:
    raw = str(token)
    body = raw[1:-1]
    if raw[0] == "`":
        return body

    def one(m: re.Match[str]) -> str:
        simple, hex2, hex4, hex8, octal, bad = m.groups()
        if simple is not None:
            return _SIMPLE_ESCAPES.get(simple, simple)
        if bad is not None:
            raise ExprError(f"syntax error at {_at(token)}: invalid escape sequence \\{bad} in string")
        code = int(hex2 or hex4 or hex8 or "0", 16) if octal is None else int(octal, 8)
        if code > 0x10FFFF:
            raise ExprError(f"syntax error at {_at(token)}: invalid unicode escape in string")
        return chr(code)

    return _ESCAPE.sub(one, body)


def _int_literal(token: Token) -> int:
    text = str(token).replace("_", "").lower()
    base = {"0x": 16, "0o": 8, "0b": 2}.get(text[:2], 10)
    try:
        value = int(text[2:] if base != 10 else text, base)
    except ValueError:
        raise ExprError(f"syntax error at {_at(token)}: invalid integer literal {token}") from None
    if wrap_int(value) != value:
        raise ExprError(f"syntax error at {_at(token)}: integer literal {token} is too large")
    return value


def _make_call(name_token: Token, args: tuple[n.Node, ...]) -> n.Node:
    name = str(name_token)
    shape = PREDICATE_BUILTINS.get(name)
    if shape is not None:
        low, high = shape.min_args, shape.max_args
        if len(args) > shape.predicate_at:
            body = args[shape.predicate_at]
            body = body.body if isinstance(body, n.Closure) else body
            args = (*args[: shape.predicate_at], n.Predicate(body), *args[shape.predicate_at + 1:])
    elif name in FUNCTIONS:
        low, high = FUNCTIONS[name].min_args, FUNCTIONS[name].max_args
    else:
        raise ExprError(f"unknown func {name} at {_at(name_token)}")
    if len(args) < low:
        raise ExprError(f"not enough arguments to call {name} at {_at(name_token)}")
    if high >= 0 and len(args) > high:
        raise ExprError(f"too many arguments to call {name} at {_at(name_token)}")
    return n.Call(name, args)


def _binary_rest(children: list[Any]) -> tuple[tuple[str, n.Node], ...]:
    return tuple((" ".join(str(op).split()), node) for op, node in zip(children[1::2], children[2::2],
                                                                         strict=True))


class _Builder(Transformer[Token, n.Node]):
    """Reduces parse tree rules straight into nodes; runs inside the LALR parser (no recursion)."""

    def ternary(self, c: list[Any]) -> n.Node:
        return n.Ternary(c[0], c[1], c[2])

    def pipe_call(self, c: list[Any]) -> n.Node:
        return _make_call(c[1], (c[0], *(c[2] or ())))

    def logic(self, c: list[Any]) -> n.Node:
        if len(c) == 1:
            return c[0]  # type: ignore[no-any-return]
        op = "or" if str(c[1]) in ("||", "or") else "and"
        return n.Logic(op, tuple(c[0::2]))

    def compare(self, c: list[Any]) -> n.Node:
        return c[0] if len(c) == 1 else n.Compare(c[0], _binary_rest(c))

    def arith(self, c: list[Any]) -> n.Node:
        return c[0] if len(c) == 1 else n.Arith(c[0], _binary_rest(c))

    def range_expr(self, c: list[Any]) -> n.Node:
        return c[0] if len(c) == 1 else n.Range(c[0], c[1])

    def power(self, c: list[Any]) -> n.Node:
        return c[0] if len(c) == 1 else n.Power(c[0], c[2])

    def coalesce(self, c: list[Any]) -> n.Node:
        return c[0] if len(c) == 1 else n.Coalesce(tuple(c))

    def not_op(self, c: list[Any]) -> n.Node:
        return n.Unary("not", c[1])

    def neg(self, c: list[Any]) -> n.Node:
        operand = c[1]
        value = operand.value if isinstance(operand, n.Literal) else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return n.Literal(value if c[0] == "+" else wrap_int(-value) if isinstance(value, int) else -value)
        return n.Unary(str(c[0]), operand)

    def chain(self, c: list[Any]) -> n.Node:
        return c[0] if len(c) == 1 else n.Chain(c[0], tuple(c[1:]))

    def member(self, c: list[Any]) -> n.Node:
        return n.Member(n.Literal(c[0]), False)

    def opt_member(self, c: list[Any]) -> n.Node:
        return n.Member(n.Literal(c[0]), True)

    def index(self, c: list[Any]) -> n.Node:
        return n.Member(c[0], False)

    def opt_index(self, c: list[Any]) -> n.Node:
        return n.Member(c[0], True)

    def slice(self, c: list[Any]) -> n.Node:
        return n.Slice(c[0], c[1])

    def member_name(self, c: list[Any]) -> str:
        return str(c[0])

    def int_lit(self, c: list[Any]) -> n.Node:
        return n.Literal(_int_literal(c[0]))

    def float_lit(self, c: list[Any]) -> n.Node:
        return n.Literal(float(str(c[0]).replace("_", "")))

    def string_lit(self, c: list[Any]) -> n.Node:
        return n.Literal(_unescape(c[0]))

    def name(self, c: list[Any]) -> n.Node:
        word = str(c[0])
        if word in ("true", "false", "nil"):
            return n.Literal({"true": True, "false": False, "nil": None}[word])
        return n.Name(word)

    def call(self, c: list[Any]) -> n.Node:
        return _make_call(c[0], c[1] or ())

    def pointer(self, c: list[Any]) -> n.Node:
        name = str(c[0])[1:]
        if name not in _POINTERS:
            raise ExprError(f"syntax error at {_at(c[0])}: unknown pointer #{name} (valid: #, #index, #acc)")
        return n.Pointer(name)

    def pointer_member(self, c: list[Any]) -> n.Node:
        return n.Chain(n.Pointer(""), (n.Member(n.Literal(c[0]), False),))

    def array(self, c: list[Any]) -> n.Node:
        return n.ArrayLit(c[0] or ())

    def map_lit(self, c: list[Any]) -> n.Node:
        return n.MapLit(c[0] or ())

    def closure(self, c: list[Any]) -> n.Node:
        return n.Closure(c[0])

    def args(self, c: list[Any]) -> tuple[n.Node, ...]:
        return tuple(c)

    def pairs(self, c: list[Any]) -> tuple[tuple[n.Node, n.Node], ...]:
        return tuple(c)

    def pair(self, c: list[Any]) -> tuple[n.Node, n.Node]:
        return (c[0], c[1])

    def key_name(self, c: list[Any]) -> n.Node:
        return n.Literal(str(c[0]))

    def key_string(self, c: list[Any]) -> n.Node:
        return n.Literal(_unescape(c[0]))

    def key_expr(self, c: list[Any]) -> n.Node:
        return c[0]  # type: ignore[no-any-return]


@cache
def _parser() -> Lark:
    grammar = resources.files(__package__).joinpath("expr.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="contextual", transformer=_Builder(), maybe_placeholders=True)


def _children(node: n.Node) -> list[n.Node]:
    out: list[n.Node] = []
    slots: tuple[str, ...] = getattr(node, "__slots__", ())
    for slot in slots:
        value = getattr(node, slot)
        pending = [value]
        while pending:
            v = pending.pop()
            if isinstance(v, n.Node):
                out.append(v)
            elif isinstance(v, tuple):
                pending.extend(v)
    return out


def _validate(root: n.Node) -> None:
    """Enforce the nesting limit and where closures and ``#`` may appear (iteratively)."""
    stack: list[tuple[n.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, in_predicate = stack.pop()
        if depth > MAX_DEPTH:
            raise ExprError(f"expression nests too deeply (limit is {MAX_DEPTH} levels)")
        if isinstance(node, n.Closure):
            raise ExprError("a closure {...} is only allowed as the predicate argument of a built-in "
                            "like all(), any(), filter() or map()")
        if isinstance(node, n.Pointer) and not in_predicate:
            raise ExprError(f"cannot use pointer accessor {_POINTERS[node.name]} outside a predicate")
        inner = in_predicate or isinstance(node, n.Predicate)
        stack.extend((child, depth + 1, inner) for child in _children(node))


def _describe(exc: UnexpectedInput, source: str) -> str:
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        end = f"{source.count(chr(10)) + 1}:{len(source) - source.rfind(chr(10))}"
        return f"syntax error at {end}: unexpected end of expression"
    where = f"{exc.line}:{exc.column}"
    if isinstance(exc, UnexpectedToken):
        return f"syntax error at {where}: unexpected token {str(exc.token)!r}"
    if isinstance(exc, UnexpectedCharacters):
        return f"syntax error at {where}: unexpected character {exc.char!r}"
    return f"syntax error at {where}"


def parse(source: str) -> n.Node:
    """Parse and validate ``source``; every failure is an ExprError with a one-line message."""
    if not isinstance(source, str):
        raise ExprError(f"expression must be a string, got {type(source).__name__}")
    if len(source) > MAX_SOURCE_LENGTH:
        raise ExprError(f"expression is too long: {len(source)} characters (limit is {MAX_SOURCE_LENGTH})")
    if not source.strip():
        raise ExprError("expression is empty")
    try:
        tree = _parser().parse(source)
    except UnexpectedInput as exc:
        raise ExprError(_describe(exc, source)) from None
    except RecursionError:
        raise ExprError(f"expression nests too deeply (limit is {MAX_DEPTH} levels)") from None
    assert isinstance(tree, n.Node)
    _validate(tree)
    return tree
