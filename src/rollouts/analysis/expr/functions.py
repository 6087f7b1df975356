"""Value semantics and built-in functions of the condition language, mirroring expr-lang v1.17.

Owns: Go-style type names and formatting, equality/ordering rules, arithmetic (int64 wrapping,
``/`` always float, ``**`` via float power), member/index/slice access, the string and regex
operators, the plain built-ins (``len``, ``max``, ``upper`` ...) and Argo's helpers (``asInt``,
``asFloat``, ``isNaN``, ``isInf``, ``isNil``, ``default``). Predicate built-ins (``all``,
``filter`` ...) need the evaluator and live there; only their call shapes are declared here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from rollouts.linear_regex import LinearPattern, RegexError, compile_linear

from .errors import ExprError

MAX_STRING_LENGTH = 1_000_000
MAX_RANGE_LENGTH = 100_000
_INT64_MIN = -(2**63)
_INT64_SPAN = 2**64


# ---------------------------------------------------------------- value classification


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or isinstance(v, float)


def is_array(v: Any) -> bool:
    return isinstance(v, list | tuple)


def is_map(v: Any) -> bool:
    return isinstance(v, Mapping)


def type_name(v: Any) -> str:
    """The Go type name Argo would print for a decoded provider value (``%T``)."""
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if is_array(v):
        return "[]interface {}"
    if is_map(v):
        return "map[string]interface {}"
    return type(v).__name__


def wrap_int(v: int) -> int:
    """Go int64 arithmetic wraps around; this also keeps integers small."""
    if _INT64_MIN <= v < -_INT64_MIN:
        return v
    return (v - _INT64_MIN) % _INT64_SPAN + _INT64_MIN


def _as_index(v: Any) -> int | None:
    if is_int(v):
        return int(v)
    if isinstance(v, float) and math.isfinite(v):
        return int(v)
    return None


# ---------------------------------------------------------------- formatting (Go's %v)


def go_float(f: float) -> str:
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    sign, digit_tuple, exp = Decimal(repr(f)).normalize().as_tuple()
    assert isinstance(exp, int)
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + exp  # value = 0.<digits> * 10**point
    prefix = "-" if sign else ""
    sci = point - 1
    if sci < -4 or sci >= 21:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if sci < 0 else '+'}{abs(sci):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return prefix + digits + "0" * (point - len(digits))
    return f"{prefix}{digits[:point]}.{digits[point:]}"


def go_format(v: Any) -> str:
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, str):
        return v
    if is_array(v):
        return "[" + " ".join(go_format(x) for x in v) + "]"
    if is_map(v):
        return "map[" + " ".join(f"{k}:{go_format(v[k])}" for k in sorted(v, key=str)) + "]"
    return str(v)


def _mismatch(op: str, a: Any, b: Any) -> ExprError:
    return ExprError(f"invalid operation: {op} (mismatched types {type_name(a)} and {type_name(b)})")


# ---------------------------------------------------------------- equality and ordering


def equal(a: Any, b: Any) -> bool:
    if is_number(a) and is_number(b):
        return bool(a == b)
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if is_array(a) and is_array(b):
        return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))
    if is_map(a) and is_map(b):
        return a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    return False


def _ordered(op: str, a: Any, b: Any) -> tuple[Any, Any]:
    if (is_number(a) and is_number(b)) or (isinstance(a, str) and isinstance(b, str)):
        return a, b
    raise _mismatch(op, a, b)


def _in(needle: Any, haystack: Any) -> bool:
    if haystack is None:
        return False
    if is_array(haystack):
        return any(equal(needle, x) for x in haystack)
    if is_map(haystack):
        if isinstance(needle, str):
            return needle in haystack
        raise ExprError(f"cannot use {type_name(needle)} as a key of {type_name(haystack)}")
    raise ExprError(f'operator "in" not defined on {type_name(haystack)}')


def _strings(op: str, a: Any, b: Any) -> tuple[str, str]:
    if isinstance(a, str) and isinstance(b, str):
        return a, b
    raise _mismatch(op, a, b)


def matches(subject: Any, pattern: Any) -> bool:
    s, p = _strings("matches", subject, pattern)
    return _compile_regex(p).search(s, limit=MAX_STRING_LENGTH)


def _lt(a: Any, b: Any) -> bool:
    x, y = _ordered("<", a, b)
    return bool(x < y)


def _le(a: Any, b: Any) -> bool:
    x, y = _ordered("<=", a, b)
    return bool(x <= y)


def _gt(a: Any, b: Any) -> bool:
    x, y = _ordered(">", a, b)
    return bool(x > y)


def _ge(a: Any, b: Any) -> bool:
    x, y = _ordered(">=", a, b)
    return bool(x >= y)


def _contains(a: Any, b: Any) -> bool:
    x, y = _strings("contains", a, b)
    return y in x


def _starts(a: Any, b: Any) -> bool:
    x, y = _strings("startsWith", a, b)
    return x.startswith(y)


def _ends(a: Any, b: Any) -> bool:
    x, y = _strings("endsWith", a, b)
    return x.endswith(y)


_POSITIVE_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "==": equal,
    "!=": lambda a, b: not equal(a, b),
    "<": _lt,
    "<=": _le,
    ">": _gt,
    ">=": _ge,
    "in": _in,
    "matches": matches,
    "contains": _contains,
    "startsWith": _starts,
    "endsWith": _ends,
}


def _negated(fn: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    return lambda a, b: not fn(a, b)


COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    **_POSITIVE_COMPARISONS,
    **{f"not {op}": _negated(_POSITIVE_COMPARISONS[op])
       for op in ("in", "matches", "contains", "startsWith", "endsWith")},
}


# ---------------------------------------------------------------- regular expressions

@lru_cache(maxsize=256)
def _compile_regex(pattern: str) -> LinearPattern:
    # RE2, as Go's regexp (Argo's expr): linear in the subject, so `(a|a)+$` or `(a+)+$` cannot hang an
    # evaluation; backreferences and lookarounds are refused, as Go refuses them.
    try:
        return compile_linear(pattern)
    except RegexError as exc:
        raise ExprError(f"invalid regular expression {pattern!r}: {exc}") from None


# ---------------------------------------------------------------- arithmetic


def _cap_string(s: str) -> str:
    if len(s) > MAX_STRING_LENGTH:
        raise ExprError(f"string result longer than {MAX_STRING_LENGTH} characters is refused")
    return s


def add(a: Any, b: Any) -> Any:
    if is_int(a) and is_int(b):
        return wrap_int(a + b)
    if is_number(a) and is_number(b):
        return float(a) + float(b)
    if isinstance(a, str) and isinstance(b, str):
        if len(a) + len(b) > MAX_STRING_LENGTH:
            raise ExprError(f"string result longer than {MAX_STRING_LENGTH} characters is refused")
        return a + b
    raise _mismatch("+", a, b)


def subtract(a: Any, b: Any) -> Any:
    if is_int(a) and is_int(b):
        return wrap_int(a - b)
    if is_number(a) and is_number(b):
        return float(a) - float(b)
    raise _mismatch("-", a, b)


def multiply(a: Any, b: Any) -> Any:
    if is_int(a) and is_int(b):
        return wrap_int(a * b)
    if is_number(a) and is_number(b):
        return float(a) * float(b)
    raise _mismatch("*", a, b)


def divide(a: Any, b: Any) -> float:
    if not (is_number(a) and is_number(b)):
        raise _mismatch("/", a, b)
    x, y = float(a), float(b)
    if y == 0:  # IEEE semantics like Go: no error, ±Inf or NaN
        if x == 0 or math.isnan(x):
            return math.nan
        return math.copysign(math.inf, x) * math.copysign(1.0, y)
    return x / y


def modulo(a: Any, b: Any) -> int:
    if not (is_int(a) and is_int(b)):
        raise _mismatch("%", a, b)
    if b == 0:
        raise ExprError("integer divide by zero")
    r = abs(a) % abs(b)  # Go truncates toward zero: the sign follows the dividend
    return wrap_int(-r if a < 0 else r)


def power(a: Any, b: Any) -> float:
    if not (is_number(a) and is_number(b)):
        raise _mismatch("**", a, b)
    x, y = float(a), float(b)
    odd = y.is_integer() and abs(y) < 2**53 and int(y) % 2 == 1
    try:
        return math.pow(x, y)
    except OverflowError:
        return -math.inf if (x < 0 and odd) else math.inf
    except ValueError:
        if x == 0 and y < 0:
            return math.copysign(math.inf, x) if odd else math.inf
        return math.nan


ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": add,
    "-": subtract,
    "*": multiply,
    "/": divide,
    "%": modulo,
}


def negate(v: Any) -> Any:
    if is_int(v):
        return wrap_int(-v)
    if isinstance(v, float):
        return -v
    raise ExprError(f"invalid operation: - ({type_name(v)})")


def make_range(low: Any, high: Any) -> list[int]:
    if not (is_int(low) and is_int(high)):
        raise _mismatch("..", low, high)
    if high - low + 1 > MAX_RANGE_LENGTH:
        raise ExprError(f"range {low}..{high} is longer than {MAX_RANGE_LENGTH} elements")
    return list(range(low, high + 1))


# ---------------------------------------------------------------- member, index and slice


def fetch(obj: Any, key: Any) -> Any:
    if is_map(obj):
        if isinstance(key, str):
            return obj.get(key)
    elif is_array(obj) or isinstance(obj, str):
        i = _as_index(key)
        if i is not None:
            n = len(obj)
            j = i + n if i < 0 else i
            if not 0 <= j < n:
                raise ExprError(f"index out of range: {i} (array length is {n})")
            return obj[j]
    raise ExprError(f"cannot fetch {go_format(key)} from {type_name(obj)}")


def slice_value(obj: Any, low: Any, high: Any) -> Any:
    if not (is_array(obj) or isinstance(obj, str)):
        raise ExprError(f"cannot slice {type_name(obj)}")
    n = len(obj)
    bounds = []
    for v, default in ((low, 0), (high, n)):
        i = default if v is None else _as_index(v)
        if i is None:
            raise ExprError(f"invalid slice index {go_format(v)} ({type_name(v)})")
        if i < 0:
            i = max(i + n, 0)
        bounds.append(min(i, n))
    lo, hi = bounds
    return obj[min(lo, hi):hi] if isinstance(obj, str) else list(obj[min(lo, hi):hi])


# ---------------------------------------------------------------- built-in functions


def _bad_arg(name: str, v: Any) -> ExprError:
    return ExprError(f"invalid argument for {name} (type {type_name(v)})")


def _len(v: Any) -> int:
    if isinstance(v, str) or is_array(v) or is_map(v):
        return len(v)
    raise _bad_arg("len", v)


def _abs(v: Any) -> Any:
    if is_int(v):
        return wrap_int(abs(v))
    if isinstance(v, float):
        return abs(v)
    raise _bad_arg("abs", v)


def _float_of(name: str, v: Any) -> float:
    if is_number(v):
        return float(v)
    raise _bad_arg(name, v)


def _round(v: Any) -> float:
    x = _float_of("round", v)
    if not math.isfinite(x):
        return x
    t = float(math.trunc(x))
    if abs(x - t) >= 0.5:  # half away from zero, like Go's math.Round
        t += math.copysign(1.0, x)
    return t


def _ceil(v: Any) -> float:
    x = _float_of("ceil", v)
    return x if not math.isfinite(x) else float(math.ceil(x))


def _floor(v: Any) -> float:
    x = _float_of("floor", v)
    return x if not math.isfinite(x) else float(math.floor(x))


_GO_INT = re.compile(r"[+-]?[0-9]+")
_GO_FLOAT = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)", re.IGNORECASE
)


def parse_go_int(s: str) -> int:
    """``strconv.ParseInt(s, 10, 64)``: no spaces, no underscores, int64 range."""
    if not _GO_INT.fullmatch(s):
        raise ExprError(f'strconv.ParseInt: parsing "{s}": invalid syntax')
    value = int(s)
    if wrap_int(value) != value:
        raise ExprError(f'strconv.ParseInt: parsing "{s}": value out of range')
    return value


def parse_go_float(s: str) -> float:
    """``strconv.ParseFloat(s, 64)`` for decimal input (hex floats are not accepted)."""
    if not _GO_FLOAT.fullmatch(s):
        raise ExprError(f'strconv.ParseFloat: parsing "{s}": invalid syntax')
    return float(s)


def _trunc_int(name: str, x: float) -> int:
    if not math.isfinite(x) or abs(x) >= 2**63:
        raise ExprError(f"{name}: cannot convert {go_float(x)} to an integer")
    return int(x)


def _int(v: Any) -> int:
    if is_int(v):
        return int(v)
    if isinstance(v, float):
        return _trunc_int("int", v)
    if isinstance(v, str):
        return parse_go_int(v)
    raise ExprError(f"invalid operation: int({type_name(v)})")


def _float(v: Any) -> float:
    if is_number(v):
        return float(v)
    if isinstance(v, str):
        return parse_go_float(v)
    raise ExprError(f"invalid operation: float({type_name(v)})")


def _str_arg(name: str, v: Any) -> str:
    if isinstance(v, str):
        return v
    raise _bad_arg(name, v)


def _trim(s: Any, chars: Any = None) -> str:
    text = _str_arg("trim", s)
    return text.strip() if chars is None else text.strip(_str_arg("trim", chars))


def _split(s: Any, sep: Any, n: Any = -1) -> list[str]:
    text, delim = _str_arg("split", s), _str_arg("split", sep)
    if not is_int(n):
        raise _bad_arg("split", n)
    if n == 0:
        return []
    if delim == "":
        parts = list(text)
        return parts if n < 0 or n >= len(parts) else [*parts[: n - 1], "".join(parts[n - 1:])]
    return text.split(delim) if n < 0 else text.split(delim, n - 1)


def _replace(s: Any, old: Any, new: Any) -> str:
    text, o, r = _str_arg("replace", s), _str_arg("replace", old), _str_arg("replace", new)
    if len(text) + text.count(o) * (len(r) - len(o)) > MAX_STRING_LENGTH:
        raise ExprError(f"string result longer than {MAX_STRING_LENGTH} characters is refused")
    return text.replace(o, r)


def _repeat(s: Any, n: Any) -> str:
    text = _str_arg("repeat", s)
    if not is_int(n) or n < 0:
        raise ExprError(f"invalid argument for repeat (count {go_format(n)})")
    if len(text) * n > MAX_STRING_LENGTH:
        raise ExprError(f"string result longer than {MAX_STRING_LENGTH} characters is refused")
    return text * n


def _join(arr: Any, sep: Any = "") -> str:
    if not is_array(arr) or not all(isinstance(x, str) for x in arr):
        raise _bad_arg("join", arr)
    return _cap_string(_str_arg("join", sep).join(arr))


def _numbers(name: str, v: Any) -> list[Any]:
    if not is_array(v):
        raise _bad_arg(name, v)
    for x in v:
        if not is_number(x):
            raise _bad_arg(name, x)
    return list(v)


def min_max(name: str, args: tuple[Any, ...]) -> Any:
    """v1.17 ``max``/``min``: numbers and (nested) arrays of numbers; no numbers at all gives nil."""
    if not args:
        raise ExprError(f"not enough arguments to call {name}")
    best: Any = None
    pending = list(reversed(args))
    while pending:
        v = pending.pop()
        if is_array(v):
            pending.extend(reversed(v))
        elif is_number(v):
            if best is None or (v > best if name == "max" else v < best):
                best = v
        elif len(args) == 1 and v is args[0]:
            return v
        else:
            raise _bad_arg(name, v)
    return best


def sum_values(v: Any) -> Any:
    total: Any = 0
    for x in _numbers("sum", v):
        total = add(total, x)
    return total


def _mean(v: Any) -> float:
    xs = _numbers("mean", v)
    return math.fsum(float(x) for x in xs) / len(xs) if xs else 0.0


def _median(v: Any) -> float:
    xs = sorted(float(x) for x in _numbers("median", v))
    if not xs:
        return 0.0
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def _array_arg(name: str, v: Any) -> list[Any] | tuple[Any, ...]:
    if is_array(v):
        return v  # type: ignore[no-any-return]
    raise _bad_arg(name, v)


def _take(arr: Any, n: Any) -> list[Any]:
    items = _array_arg("take", arr)
    if not is_int(n):
        raise _bad_arg("take", n)
    return list(items[: max(n, 0)])


def _sort(arr: Any, order: Any = "asc") -> list[Any]:
    items = list(_array_arg("sort", arr))
    if order not in ("asc", "desc"):
        raise ExprError(f'sort order must be "asc" or "desc", got {go_format(order)}')
    if not (all(is_number(x) for x in items) or all(isinstance(x, str) for x in items)):
        raise ExprError("sort needs an array of only numbers or only strings")
    return sorted(items, reverse=order == "desc")


def _map_arg(name: str, v: Any) -> Mapping[str, Any]:
    if is_map(v):
        return v  # type: ignore[no-any-return]
    raise _bad_arg(name, v)


def _get(obj: Any, key: Any) -> Any:
    try:
        return None if obj is None else fetch(obj, key)
    except ExprError:
        return None


def _type(v: Any) -> str:
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "bool"
    if is_int(v):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if is_array(v):
        return "array"
    if is_map(v):
        return "map"
    return type(v).__name__


# Argo's helpers (argo-rollouts utils/evaluate).


def as_int(v: Any) -> int:
    if is_int(v):
        return int(v)
    if isinstance(v, float):
        return _trunc_int("asInt()", v)
    if isinstance(v, str):
        return parse_go_int(v)
    raise ExprError(f"asInt() not supported on {type_name(v)} {go_format(v)}")


def as_float(v: Any) -> float:
    if is_number(v):
        return float(v)
    if isinstance(v, str):
        return parse_go_float(v)
    raise ExprError(f"asFloat() not supported on {type_name(v)} {go_format(v)}")


def _float_helper(name: str, test: Callable[[float], bool]) -> Callable[[Any], bool]:
    def helper(v: Any) -> bool:
        if not is_number(v):
            raise ExprError(f"cannot use {type_name(v)} as argument (type float64) to call {name}")
        return test(float(v))

    return helper


@dataclass(frozen=True, slots=True)
class Function:
    fn: Callable[..., Any]
    min_args: int
    max_args: int  # -1: any number


FUNCTIONS: dict[str, Function] = {
    "len": Function(_len, 1, 1),
    "abs": Function(_abs, 1, 1),
    "ceil": Function(_ceil, 1, 1),
    "floor": Function(_floor, 1, 1),
    "round": Function(_round, 1, 1),
    "int": Function(_int, 1, 1),
    "float": Function(_float, 1, 1),
    "string": Function(lambda v: _cap_string(go_format(v)), 1, 1),
    "type": Function(_type, 1, 1),
    "upper": Function(lambda s: _str_arg("upper", s).upper(), 1, 1),
    "lower": Function(lambda s: _str_arg("lower", s).lower(), 1, 1),
    "trim": Function(_trim, 1, 2),
    "trimPrefix": Function(lambda s, p: _str_arg("trimPrefix", s).removeprefix(_str_arg("trimPrefix", p)),
                           2, 2),
    "trimSuffix": Function(lambda s, p: _str_arg("trimSuffix", s).removesuffix(_str_arg("trimSuffix", p)),
                           2, 2),
    "hasPrefix": Function(_starts, 2, 2),
    "hasSuffix": Function(_ends, 2, 2),
    "indexOf": Function(lambda s, sub: _str_arg("indexOf", s).find(_str_arg("indexOf", sub)), 2, 2),
    "lastIndexOf": Function(lambda s, sub: _str_arg("lastIndexOf", s).rfind(_str_arg("lastIndexOf", sub)),
                            2, 2),
    "split": Function(_split, 2, 3),
    "replace": Function(_replace, 3, 3),
    "repeat": Function(_repeat, 2, 2),
    "join": Function(_join, 1, 2),
    "max": Function(lambda *a: min_max("max", a), 1, -1),
    "min": Function(lambda *a: min_max("min", a), 1, -1),
    "mean": Function(_mean, 1, 1),
    "median": Function(_median, 1, 1),
    "first": Function(lambda a: (_array_arg("first", a) or [None])[0], 1, 1),
    "last": Function(lambda a: (_array_arg("last", a) or [None])[-1], 1, 1),
    "take": Function(_take, 2, 2),
    "reverse": Function(lambda a: list(reversed(_array_arg("reverse", a))), 1, 1),
    "sort": Function(_sort, 1, 2),
    "keys": Function(lambda m: list(_map_arg("keys", m).keys()), 1, 1),
    "values": Function(lambda m: list(_map_arg("values", m).values()), 1, 1),
    "get": Function(_get, 2, 2),
    # Argo's environment helpers. Argo's isNil/default look at `result` whatever the argument;
    # here they look at their argument, which is the same for the documented `isNil(result)` and
    # `default(result, x)` forms.
    "asInt": Function(as_int, 1, 1),
    "asFloat": Function(as_float, 1, 1),
    "isNaN": Function(_float_helper("isNaN", math.isnan), 1, 1),
    "isInf": Function(_float_helper("isInf", math.isinf), 1, 1),
    "isNil": Function(lambda v: v is None, 1, 1),
    "default": Function(lambda v, fallback: fallback if v is None else v, 2, 2),
}


@dataclass(frozen=True, slots=True)
class PredicateShape:
    """Call shape of a predicate built-in: argument count and which argument is the predicate."""

    min_args: int
    max_args: int
    predicate_at: int = 1


PREDICATE_BUILTINS: dict[str, PredicateShape] = {
    "all": PredicateShape(2, 2),
    "any": PredicateShape(2, 2),
    "none": PredicateShape(2, 2),
    "one": PredicateShape(2, 2),
    "filter": PredicateShape(2, 2),
    "map": PredicateShape(2, 2),
    "count": PredicateShape(1, 2),
    "sum": PredicateShape(1, 2),
    "find": PredicateShape(2, 2),
    "findIndex": PredicateShape(2, 2),
    "findLast": PredicateShape(2, 2),
    "findLastIndex": PredicateShape(2, 2),
    "groupBy": PredicateShape(2, 2),
    "reduce": PredicateShape(2, 3),
}
