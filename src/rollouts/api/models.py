"""The JSON shapes of the dashboard API (besides RolloutInfo, which the views own), and the conversions
from stored objects into them: revisions, analysis runs with their gate thresholds, events."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from rollouts.analysis.expr import ExprError, compile_expr, nodes
from rollouts.views.history import HistoryEntry
from rollouts.views.info import POD_HASH_LABEL, ROLLOUT_TYPE_LABEL


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class Problem(ApiModel):
    detail: str


class NamespaceList(ApiModel):
    namespaces: list[str]


class RevisionView(ApiModel):
    revision: int
    pod_hash: str
    images: dict[str, str]
    created_at: str
    updated_at: str
    outcome: str = Field(description="current, promoted, aborted, rolled back or superseded")
    cause: str
    live: bool = Field(description="the rollout's current pod template")


class History(ApiModel):
    items: list[RevisionView]


class Threshold(ApiModel):
    """A bound read from a condition, such as `result >= 0.995` or the `result[0] <= 0.5` of
    `len(result) > 0 && result[0] <= 0.5`."""

    kind: Literal["success", "failure"]
    operator: Literal[">=", ">", "<=", "<", "=="]
    value: float
    index: int | None = Field(None, description="the element of a vector result the bound applies to")


class MeasurementView(ApiModel):
    phase: str
    value: str | None = None
    numbers: list[float | None] = Field(default_factory=list,
                                        description="the value as numbers (one per element of a vector)")
    message: str | None = None
    started_at: str | None = None
    finished_at: str | None = None


class MetricView(ApiModel):
    name: str
    phase: str
    success_condition: str | None = None
    failure_condition: str | None = None
    thresholds: list[Threshold]
    count: int
    successful: int
    failed: int
    inconclusive: int
    error: int
    message: str | None = None
    measurements: list[MeasurementView]


class AnalysisRunView(ApiModel):
    name: str
    phase: str
    message: str | None = None
    created_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    pod_hash: str | None = Field(None, description="the pod-template hash of the release the run gates")
    kind: str | None = Field(None, description="Step, Background, ... (Argo's analysis-type label)")
    metrics: list[MetricView]


class AnalysisRunList(ApiModel):
    items: list[AnalysisRunView]


class EventView(ApiModel):
    type: str
    reason: str
    message: str
    count: int
    first_timestamp: str | None = None
    last_timestamp: str | None = None


class EventList(ApiModel):
    items: list[EventView]


class SetImageRequest(ApiModel):
    container: str = Field(min_length=1, max_length=253, description="container name, or '*' for every one")
    image: str = Field(min_length=1, max_length=1024)


class ActionOutcome(ApiModel):
    message: str
    changed: bool


# ---- conversions ---------------------------------------------------------------------------------

_FLIP = {">=": "<=", "<=": ">=", ">": "<", "<": ">", "==": "=="}
_CASTS = frozenset({"asFloat", "asInt", "float", "int"})
Operator = Literal[">=", ">", "<=", "<", "=="]


def parse_thresholds(condition: str | None, kind: Literal["success", "failure"]) -> list[Threshold]:
    """The bounds a condition puts on the result: every `result OP number` (also `result[i]`,
    `asFloat(result)`, `number OP result`) joined by `&&` at the top, as in
    `len(result) > 0 && !isNaN(result[0]) && result[0] >= 0.995`. Comparisons under `||` or `!` are no
    bound of the whole condition, so they are left out; a condition that does not parse gives none."""
    if not condition:
        return []
    try:
        tree = compile_expr(condition).tree
    except ExprError:
        return []
    found: list[Threshold] = []
    for node in _conjuncts(tree):
        if not isinstance(node, nodes.Compare) or len(node.rest) != 1:
            continue
        (operator, right), left = node.rest[0], node.first
        if operator not in _FLIP:
            continue
        index, value = _result_operand(left), _number(right)
        if index is None or value is None:
            index, value, operator = _result_operand(right), _number(left), _FLIP[operator]
        if index is None or value is None:
            continue
        op: Operator = operator  # type: ignore[assignment]  # checked against _FLIP above
        found.append(Threshold(kind=kind, operator=op, value=value, index=None if index < 0 else index))
    return found


def parse_threshold(condition: str | None, kind: Literal["success", "failure"]) -> Threshold | None:
    """The condition's bound when it has exactly one (see parse_thresholds), else None."""
    found = parse_thresholds(condition, kind)
    return found[0] if len(found) == 1 else None


def _conjuncts(node: nodes.Node) -> list[nodes.Node]:
    if isinstance(node, nodes.Logic) and node.op == "and":
        return [part for operand in node.operands for part in _conjuncts(operand)]
    return [node]


def _result_operand(node: nodes.Node) -> int | None:
    """-1 for `result` (or a cast of it), i for `result[i]`; None for anything else."""
    if isinstance(node, nodes.Call) and node.name in _CASTS and len(node.args) == 1:
        node = node.args[0]
    if isinstance(node, nodes.Name) and node.name == "result":
        return -1
    if (isinstance(node, nodes.Chain) and isinstance(node.base, nodes.Name) and node.base.name == "result"
            and len(node.steps) == 1 and isinstance(node.steps[0], nodes.Member)
            and isinstance(node.steps[0].key, nodes.Literal) and type(node.steps[0].key.value) is int
            and node.steps[0].key.value >= 0):
        return int(node.steps[0].key.value)
    return None


def _number(node: nodes.Node) -> float | None:
    sign = 1.0
    if isinstance(node, nodes.Unary) and node.op in ("-", "+"):
        sign, node = (-1.0 if node.op == "-" else 1.0), node.operand
    if not isinstance(node, nodes.Literal) or isinstance(node.value, bool) or not isinstance(node.value, int | float):
        return None
    value = sign * float(node.value)
    return value if math.isfinite(value) else None


def _numbers(value: str | None) -> list[float | None]:
    if value is None:
        return []
    try:
        parsed: Any = json.loads(value)
    except ValueError:
        return []
    items = parsed if isinstance(parsed, list) else [parsed]
    out: list[float | None] = []
    for item in items:
        ok = isinstance(item, int | float) and not isinstance(item, bool) and math.isfinite(item)
        out.append(float(item) if ok else None)
    return out if any(v is not None for v in out) else []


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def revision_view(entry: HistoryEntry) -> RevisionView:
    return RevisionView(
        revision=entry.revision, pod_hash=entry.pod_hash, images=dict(entry.images), created_at=entry.created,
        updated_at=entry.updated, outcome=entry.outcome, cause=entry.cause, live=entry.live,
    )


def analysis_run_view(run: Mapping[str, Any]) -> AnalysisRunView:
    """From the stored AnalysisRun object (its dict form: kept loose so that any stored run renders)."""
    meta = run.get("metadata") or {}
    spec = run.get("spec") or {}
    status = run.get("status") or {}
    specs = {m.get("name"): m for m in spec.get("metrics") or [] if isinstance(m, Mapping)}
    results = {r.get("name"): r for r in status.get("metricResults") or [] if isinstance(r, Mapping)}
    metrics = []
    for name in list(specs) + [n for n in results if n not in specs]:
        metric, result = specs.get(name) or {}, results.get(name) or {}
        success, failure = metric.get("successCondition"), metric.get("failureCondition")
        thresholds = parse_thresholds(success, "success") + parse_thresholds(failure, "failure")
        measurements = [
            MeasurementView(phase=str(m.get("phase") or ""), value=_text(m.get("value")),
                            numbers=_numbers(_text(m.get("value"))), message=m.get("message"),
                            started_at=_text(m.get("startedAt")), finished_at=_text(m.get("finishedAt")))
            for m in result.get("measurements") or [] if isinstance(m, Mapping)
        ]
        metrics.append(MetricView(
            name=str(name), phase=str(result.get("phase") or ""), success_condition=success,
            failure_condition=failure, thresholds=thresholds, count=int(result.get("count") or 0),
            successful=int(result.get("successful") or 0), failed=int(result.get("failed") or 0),
            inconclusive=int(result.get("inconclusive") or 0), error=int(result.get("error") or 0),
            message=result.get("message"), measurements=measurements,
        ))
    labels = meta.get("labels") or {}
    return AnalysisRunView(
        name=str(meta.get("name") or ""), phase=str(status.get("phase") or "Pending"),
        message=status.get("message"), created_at=_text(meta.get("creationTimestamp")),
        started_at=_text(status.get("startedAt")), completed_at=_text(status.get("completedAt")),
        pod_hash=labels.get(POD_HASH_LABEL), kind=labels.get(ROLLOUT_TYPE_LABEL), metrics=metrics,
    )


def event_view(event: Mapping[str, Any]) -> EventView:
    return EventView(
        type=str(event.get("type") or ""), reason=str(event.get("reason") or ""),
        message=str(event.get("message") or ""), count=int(event.get("count") or 1),
        first_timestamp=_text(event.get("firstTimestamp")), last_timestamp=_text(event.get("lastTimestamp")),
    )
