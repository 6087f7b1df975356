"""Syntax tree of the condition language: small immutable nodes built by the parser.

Left-associative operator runs (``a + b - c``, ``x && y && z``, ``a < b < c``) are kept flat, so
long but simple conditions stay shallow and the nesting limit only counts real nesting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Node:
    """Base class of every syntax tree node."""


@dataclass(frozen=True, slots=True)
class Literal(Node):
    value: Any


@dataclass(frozen=True, slots=True)
class Name(Node):
    name: str


@dataclass(frozen=True, slots=True)
class Pointer(Node):
    """``#`` (current element), ``#index`` or ``#acc`` inside a predicate."""

    name: str


@dataclass(frozen=True, slots=True)
class ArrayLit(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class MapLit(Node):
    pairs: tuple[tuple[Node, Node], ...]


@dataclass(frozen=True, slots=True)
class Member(Node):
    """Postfix ``.name`` / ``[key]``; ``optional`` marks ``?.``."""

    key: Node
    optional: bool


@dataclass(frozen=True, slots=True)
class Slice(Node):
    low: Node | None
    high: Node | None


@dataclass(frozen=True, slots=True)
class Chain(Node):
    """A base followed by member, index and slice steps; ``?.`` on nil ends the whole chain as nil."""

    base: Node
    steps: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Unary(Node):
    op: str  # "not" or "-" or "+"
    operand: Node


@dataclass(frozen=True, slots=True)
class Logic(Node):
    op: str  # "and" or "or"
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Arith(Node):
    first: Node
    rest: tuple[tuple[str, Node], ...]


@dataclass(frozen=True, slots=True)
class Compare(Node):
    """``a < b <= c`` means ``a < b && b <= c`` (each operand evaluated once)."""

    first: Node
    rest: tuple[tuple[str, Node], ...]


@dataclass(frozen=True, slots=True)
class Power(Node):
    base: Node
    exponent: Node


@dataclass(frozen=True, slots=True)
class Coalesce(Node):
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Range(Node):
    low: Node
    high: Node


@dataclass(frozen=True, slots=True)
class Ternary(Node):
    cond: Node
    then: Node
    otherwise: Node


@dataclass(frozen=True, slots=True)
class Closure(Node):
    """``{ body }`` as written; only valid as a predicate argument (becomes a Predicate)."""

    body: Node


@dataclass(frozen=True, slots=True)
class Predicate(Node):
    body: Node


@dataclass(frozen=True, slots=True)
class Call(Node):
    name: str
    args: tuple[Node, ...]
