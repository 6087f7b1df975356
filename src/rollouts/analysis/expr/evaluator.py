"""Tree-walking evaluation of a parsed condition against an environment (no eval/exec).

Owns the dispatch from node type to behaviour, short-circuiting, the ``?.`` chain rule, the
predicate built-ins (``all``, ``filter``, ``reduce`` ...) with their ``#`` scopes, and the step
budget that keeps any evaluation finite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from . import nodes as n
from .errors import ExprError
from .functions import (
    ARITHMETIC,
    COMPARISONS,
    FUNCTIONS,
    fetch,
    is_array,
    is_number,
    make_range,
    negate,
    power,
    slice_value,
    sum_values,
    type_name,
)

MAX_STEPS = 500_000


class Evaluator:
    __slots__ = ("env", "frames", "steps")

    def __init__(self, env: Mapping[str, Any]) -> None:
        self.env = env
        self.frames: list[dict[str, Any]] = []
        self.steps = 0

    def eval(self, node: n.Node) -> Any:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise ExprError(f"evaluation exceeded {MAX_STEPS} steps")
        return _DISPATCH[type(node)](self, node)

    def boolean(self, node: n.Node, what: str) -> bool:
        value = self.eval(node)
        if type(value) is not bool:
            raise ExprError(f"invalid operation: {what} expects bool, got {type_name(value)}")
        return value


# ---------------------------------------------------------------- node behaviour


def _literal(ev: Evaluator, node: n.Literal) -> Any:
    return node.value


def _name(ev: Evaluator, node: n.Name) -> Any:
    try:
        return ev.env[node.name]
    except KeyError:
        if node.name == "$env":
            return dict(ev.env)
        raise ExprError(f"unknown name {node.name}") from None


def _pointer(ev: Evaluator, node: n.Pointer) -> Any:
    frame = ev.frames[-1]
    if node.name not in frame:
        raise ExprError(f"#{node.name} is only defined inside reduce()")
    return frame[node.name]


def _array(ev: Evaluator, node: n.ArrayLit) -> list[Any]:
    return [ev.eval(item) for item in node.items]


def _map(ev: Evaluator, node: n.MapLit) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key_node, value_node in node.pairs:
        key = ev.eval(key_node)
        if not isinstance(key, str):
            raise ExprError(f"map key must be a string, got {type_name(key)}")
        out[key] = ev.eval(value_node)
    return out


def _chain(ev: Evaluator, node: n.Chain) -> Any:
    value = ev.eval(node.base)
    for step in node.steps:
        if isinstance(step, n.Member):
            if value is None and step.optional:
                return None
            value = fetch(value, ev.eval(step.key))
        else:
            assert isinstance(step, n.Slice)
            low = None if step.low is None else ev.eval(step.low)
            high = None if step.high is None else ev.eval(step.high)
            value = slice_value(value, low, high)
    return value


def _unary(ev: Evaluator, node: n.Unary) -> Any:
    if node.op == "not":
        return not ev.boolean(node.operand, "not")
    value = ev.eval(node.operand)
    if node.op == "-":
        return negate(value)
    if not is_number(value):
        raise ExprError(f"invalid operation: + ({type_name(value)})")
    return value


def _logic(ev: Evaluator, node: n.Logic) -> bool:
    stop = node.op == "or"  # the value that decides the result early
    for operand in node.operands:
        if ev.boolean(operand, node.op) is stop:
            return stop
    return not stop


def _arith(ev: Evaluator, node: n.Arith) -> Any:
    value = ev.eval(node.first)
    for op, operand in node.rest:
        value = ARITHMETIC[op](value, ev.eval(operand))
    return value


def _compare(ev: Evaluator, node: n.Compare) -> bool:
    left = ev.eval(node.first)
    for op, operand in node.rest:
        right = ev.eval(operand)
        if not COMPARISONS[op](left, right):
            return False
        left = right
    return True


def _power(ev: Evaluator, node: n.Power) -> float:
    return power(ev.eval(node.base), ev.eval(node.exponent))


def _coalesce(ev: Evaluator, node: n.Coalesce) -> Any:
    for operand in node.operands[:-1]:
        value = ev.eval(operand)
        if value is not None:
            return value
    return ev.eval(node.operands[-1])


def _range(ev: Evaluator, node: n.Range) -> list[int]:
    return make_range(ev.eval(node.low), ev.eval(node.high))


def _ternary(ev: Evaluator, node: n.Ternary) -> Any:
    return ev.eval(node.then if ev.boolean(node.cond, "?:") else node.otherwise)


def _call(ev: Evaluator, node: n.Call) -> Any:
    special = _PREDICATE_IMPLS.get(node.name)
    if special is not None:
        return special(ev, node)
    return FUNCTIONS[node.name].fn(*[ev.eval(arg) for arg in node.args])


# ---------------------------------------------------------------- predicate built-ins


def _items(ev: Evaluator, node: n.Call) -> list[Any] | tuple[Any, ...]:
    value = ev.eval(node.args[0])
    if not is_array(value):
        raise ExprError(f"builtin {node.name} takes only array (got {type_name(value)})")
    return value  # type: ignore[no-any-return]


def _run(ev: Evaluator, predicate: n.Node, item: Any, index: int, **extra: Any) -> Any:
    assert isinstance(predicate, n.Predicate)
    ev.frames.append({"": item, "index": index, **extra})
    try:
        return ev.eval(predicate.body)
    finally:
        ev.frames.pop()


def _matches(ev: Evaluator, node: n.Call) -> Iterator[tuple[int, Any, bool]]:
    """Yield (index, item, predicate result) per element, lazily, so all/any can stop early."""
    items = _items(ev, node)
    for i, item in enumerate(items):
        result = _run(ev, node.args[1], item, i)
        if type(result) is not bool:
            raise ExprError(f"predicate of {node.name} must return bool, got {type_name(result)}")
        yield i, item, result


def _all(ev: Evaluator, node: n.Call) -> bool:
    return all(ok for _, _, ok in _matches(ev, node))


def _any(ev: Evaluator, node: n.Call) -> bool:
    return any(ok for _, _, ok in _matches(ev, node))


def _none(ev: Evaluator, node: n.Call) -> bool:
    return not any(ok for _, _, ok in _matches(ev, node))


def _one(ev: Evaluator, node: n.Call) -> bool:
    hits = 0
    for _, _, ok in _matches(ev, node):
        hits += ok
        if hits > 1:
            return False
    return hits == 1


def _filter(ev: Evaluator, node: n.Call) -> list[Any]:
    return [item for _, item, ok in _matches(ev, node) if ok]


def _count(ev: Evaluator, node: n.Call) -> int:
    if len(node.args) == 2:
        return sum(1 for _, _, ok in _matches(ev, node) if ok)
    items = _items(ev, node)
    if not all(type(x) is bool for x in items):
        raise ExprError("count without a predicate needs an array of bool")
    return sum(1 for x in items if x)


def _find(ev: Evaluator, node: n.Call) -> Any:
    last = node.name.startswith("findLast")
    hits = [(i, item) for i, item, ok in _matches(ev, node) if ok]
    if not hits:
        return -1 if node.name.endswith("Index") else None
    i, item = hits[-1] if last else hits[0]
    return i if node.name.endswith("Index") else item


def _find_first(ev: Evaluator, node: n.Call) -> Any:
    for i, item, ok in _matches(ev, node):
        if ok:
            return i if node.name == "findIndex" else item
    return -1 if node.name == "findIndex" else None


def _map_each(ev: Evaluator, node: n.Call) -> list[Any]:
    return [_run(ev, node.args[1], item, i) for i, item in enumerate(_items(ev, node))]


def _sum(ev: Evaluator, node: n.Call) -> Any:
    return sum_values(_map_each(ev, node) if len(node.args) == 2 else ev.eval(node.args[0]))


def _group_by(ev: Evaluator, node: n.Call) -> dict[Any, list[Any]]:
    groups: dict[Any, list[Any]] = {}
    for i, item in enumerate(_items(ev, node)):
        key = _run(ev, node.args[1], item, i)
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise ExprError(f"groupBy key must be a scalar, got {type_name(key)}")
        groups.setdefault(key, []).append(item)
    return groups


def _reduce(ev: Evaluator, node: n.Call) -> Any:
    items = list(_items(ev, node))
    start = 0
    if len(node.args) == 3:
        acc = ev.eval(node.args[2])
    elif items:
        acc, start = items[0], 1
    else:
        raise ExprError("reduce of an empty array needs an initial value")
    for i in range(start, len(items)):
        acc = _run(ev, node.args[1], items[i], i, acc=acc)
    return acc


_PREDICATE_IMPLS: dict[str, Callable[[Evaluator, n.Call], Any]] = {
    "all": _all,
    "any": _any,
    "none": _none,
    "one": _one,
    "filter": _filter,
    "map": _map_each,
    "count": _count,
    "sum": _sum,
    "find": _find_first,
    "findIndex": _find_first,
    "findLast": _find,
    "findLastIndex": _find,
    "groupBy": _group_by,
    "reduce": _reduce,
}

_DISPATCH: dict[type, Callable[[Evaluator, Any], Any]] = {
    n.Literal: _literal,
    n.Name: _name,
    n.Pointer: _pointer,
    n.ArrayLit: _array,
    n.MapLit: _map,
    n.Chain: _chain,
    n.Unary: _unary,
    n.Logic: _logic,
    n.Arith: _arith,
    n.Compare: _compare,
    n.Power: _power,
    n.Coalesce: _coalesce,
    n.Range: _range,
    n.Ternary: _ternary,
    n.Call: _call,
}
