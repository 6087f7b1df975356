"""Condition language of analysis metrics: an expr-lang (github.com/expr-lang/expr v1.17)
compatible evaluator, as used by Argo Rollouts for ``successCondition``/``failureCondition``.

Public API: ``compile_expr`` (cached parse), ``CompiledExpr.evaluate``, ``evaluate_condition``
(Argo's rules: env ``{"result": ...}``, bool required, nil/empty result message) and ``ExprError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from . import nodes
from .errors import ExprError
from .evaluator import Evaluator
from .functions import type_name
from .parser import MAX_DEPTH, MAX_SOURCE_LENGTH, parse

__all__ = [
    "MAX_DEPTH",
    "MAX_SOURCE_LENGTH",
    "NO_DATA_MESSAGE",
    "CompiledExpr",
    "ExprError",
    "compile_expr",
    "evaluate_condition",
]

NO_DATA_MESSAGE = "metric result is nil or empty: no data returned from the metric provider"


@dataclass(frozen=True, slots=True)
class CompiledExpr:
    """A parsed, validated expression; safe to share and evaluate concurrently."""

    source: str
    tree: nodes.Node = field(repr=False, compare=False)

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        """Evaluate against ``env`` (names to values); raises ExprError on any failure."""
        try:
            return Evaluator(env).eval(self.tree)
        except RecursionError:
            raise ExprError("expression nests too deeply to evaluate") from None


@lru_cache(maxsize=1024)
def compile_expr(source: str) -> CompiledExpr:
    """Parse ``source``; raises ExprError (with line:column for syntax errors)."""
    return CompiledExpr(source, parse(source))


def _no_data(result: Any) -> bool:
    return result is None or (isinstance(result, list | tuple) and len(result) == 0)


def evaluate_condition(source: str, result: Any) -> bool:
    """Evaluate a success/failure condition over a measurement ``result`` the way Argo does.

    The value must be a bool. When ``result`` is nil or an empty list, any failure is reported
    as ``NO_DATA_MESSAGE`` (the original error is kept as ``__cause__``).
    """
    try:
        value = compile_expr(source).evaluate({"result": result})
        if type(value) is not bool:
            raise ExprError(f"expected bool, but got {type_name(value)}")
        return value
    except ExprError as exc:
        if _no_data(result):
            raise ExprError(NO_DATA_MESSAGE) from exc
        raise
