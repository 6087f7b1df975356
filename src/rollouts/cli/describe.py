"""`rollouts describe KIND NAME`: kubectl-like sections (metadata, spec summary, status, conditions), the
metrics with their measurements for an AnalysisRun, the metrics and providers of a template, and the
object's Events at the end."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

from rollouts.cli.common import (
    CONTEXT_OPTION,
    HOME_OPTION,
    KUBECONFIG_OPTION,
    NAMESPACE_OPTION,
    fail,
    namespace_or_default,
    open_store,
)
from rollouts.cli.main import app

if TYPE_CHECKING:
    from rollouts.store.protocol import ObjectStore

Obj = dict[str, Any]
W = 22


def _kv(label: str, value: object, indent: int = 0) -> str:
    pad = " " * indent
    return f"{pad}{label + ':':<{W - indent}}{'' if value is None else value}".rstrip()


def _mapping(label: str, values: dict[str, Any] | None) -> list[str]:
    items = sorted((values or {}).items())
    if not items:
        return [_kv(label, "<none>")]
    first, *rest = [f"{k}={v}" for k, v in items]
    return [_kv(label, first), *(" " * W + line for line in rest)]


def _block(obj: Any, indent: int) -> list[str]:
    import yaml

    text = yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, allow_unicode=True).rstrip()
    return [" " * indent + line for line in text.splitlines()]


def _conditions(conditions: list[Obj]) -> list[str]:
    from rollouts.views.tree import align

    if not conditions:
        return []
    rows = [("  Type", "Status", "Reason", "Message")]
    rows += [(f"  {c.get('type', '')}", str(c.get("status", "")), str(c.get("reason", "")), str(c.get("message", "")))
             for c in conditions]
    return ["Conditions:", *align(rows)]


def _measured_address(result: Obj | None) -> str | None:
    """The Prometheus address of the metric's latest measurement: what the controller really queried (its
    --prometheus-address override, or the environment when the template has none)."""
    from rollouts.analysis.providers.prometheus import ADDRESS_METADATA_KEY

    for measurement in reversed((result or {}).get("measurements") or []):
        address = (measurement.get("metadata") or {}).get(ADDRESS_METADATA_KEY)
        if address:
            return str(address)
    return None


def _metric_spec(metric: Obj, result: Obj | None = None) -> list[str]:
    provider = metric.get("provider") or {}
    kind = next(iter(provider), "<none>")
    lines = [f"  {metric.get('name')}:", _kv("Provider", kind, 4)]
    for key in ("interval", "initialDelay", "count", "successCondition", "failureCondition", "failureLimit",
                "inconclusiveLimit", "consecutiveErrorLimit"):
        if key in metric:
            lines.append(_kv(key[:1].upper() + key[1:], metric[key], 4))
    details = provider.get(kind) if isinstance(provider.get(kind), dict) else None
    if details:
        if "query" in details:
            lines.append(_kv("Query", " ".join(str(details["query"]).split()), 4))
        used = _measured_address(result) if kind == "prometheus" else None
        written = details.get("address")
        if used and (not written or used != str(written).rstrip("/")):
            note = f"the template says {written}" if written else "the template gives none"
            lines.append(_kv("Address", f"{used} (queried; {note})", 4))
        elif "address" in details:
            lines.append(_kv("Address", written, 4))
        if "url" in details:
            lines.append(_kv("URL", details["url"], 4))
    return lines


def _analysis_run(obj: Obj, now: datetime) -> list[str]:
    from rollouts.views.info import analysis_run_info
    from rollouts.views.tree import align

    info = analysis_run_info(obj, 0, now)
    spec = obj.get("spec") or {}
    lines = ["Status:", _kv("Phase", f"{info.icon} {info.phase}", 2)]
    if info.message:
        lines.append(_kv("Message", info.message, 2))
    lines.append(_kv("Counts", f"successful {info.successful}, failed {info.failed}, "
                     f"inconclusive {info.inconclusive}, error {info.error}", 2))
    if spec.get("args"):
        lines.append("Args:")
        lines += [_kv(a.get("name", ""), a.get("value", "<from>"), 2) for a in spec["args"]]
    lines.append("Metrics:")
    specs = {m.get("name"): m for m in spec.get("metrics") or []}
    results = {r.get("name"): r for r in (obj.get("status") or {}).get("metricResults") or []}
    for metric in info.metrics:
        lines += _metric_spec(specs.get(metric.name, {"name": metric.name}), results.get(metric.name))
        lines.append(_kv("Phase", f"{metric.icon} {metric.phase}", 4))
        if metric.message:
            lines.append(_kv("Message", metric.message, 4))
        lines.append(_kv("Counts", f"successful {metric.successful}, failed {metric.failed}, "
                         f"inconclusive {metric.inconclusive}, error {metric.error}", 4))
        if metric.measurements:
            lines.append("    Measurements:")
            rows = [("      Phase", "Value", "Started", "Finished", "Message")]
            rows += [(f"      {m.phase}", m.value or "", m.started_at or "", m.finished_at or "", m.message or "")
                     for m in metric.measurements]
            lines += align(rows)
    for name, metric in specs.items():
        if name not in {m.name for m in info.metrics}:
            lines += _metric_spec(metric) + [_kv("Phase", "◷ Pending", 4)]
    return lines


def _template(obj: Obj) -> list[str]:
    spec = obj.get("spec") or {}
    lines = []
    if spec.get("args"):
        lines.append("Args:")
        lines += [_kv(a.get("name", ""), a.get("value", "<required>" if "valueFrom" not in a else "<valueFrom>"), 2)
                  for a in spec["args"]]
    lines.append("Metrics:")
    for metric in spec.get("metrics") or []:
        lines += _metric_spec(metric)
    return lines


def _rollout(store: ObjectStore, obj: Obj, now: datetime) -> list[str]:
    from rollouts.views.info import rollout_info

    meta = obj["metadata"]
    info = rollout_info(store, meta.get("namespace") or "default", meta["name"], now, events=False)
    spec = obj.get("spec") or {}
    lines = ["Spec:", _kv("Replicas", spec.get("replicas", 1), 2), _kv("Strategy", info.strategy, 2)]
    if info.containers:
        lines.append("  Containers:")
        lines += [_kv(c["name"], c["image"], 4) for c in info.containers]
    if info.steps:
        lines.append("  Steps:")
        marks = {"done": "✔", "current": "►", "pending": " "}
        lines += [f"    {marks[s.state]} {s.index}: {s.description}" for s in info.steps]
    strategy = spec.get("strategy") or {}
    details = {k: v for k, v in (strategy.get("canary") or strategy.get("blueGreen") or {}).items() if k != "steps"}
    if details:
        lines += _block(details, 4)
    status = obj.get("status") or {}
    lines += ["Status:", _kv("Phase", f"{info.icon} {info.status}", 2)]
    if info.message:
        lines.append(_kv("Message", info.message, 2))
    if info.step:
        lines.append(_kv("Step", info.step, 2))
    if info.set_weight is not None:
        lines += [_kv("SetWeight", info.set_weight, 2), _kv("ActualWeight", info.actual_weight, 2)]
    for label, key in (("Stable RS", "stableRS"), ("Current Pod Hash", "currentPodHash")):
        lines.append(_kv(label, status.get(key) or "<none>", 2))
    lines.append(_kv("Replicas", f"{info.desired} desired | {info.current} current | {info.updated} updated | "
                     f"{info.ready} ready | {info.available} available", 2))
    return lines + _conditions(status.get("conditions") or [])


def _events(store: ObjectStore, kind: str, namespace: str, name: str, now: datetime) -> list[str]:
    from rollouts.views.ages import age
    from rollouts.views.tree import align

    events = [e for e in store.list("Event", namespace or "default", field_selector=f"involvedObject.name={name}")
              if (e.get("involvedObject") or {}).get("kind") == kind]
    if not events:
        return ["Events:                <none>"]
    events.sort(key=lambda e: str(e.get("lastTimestamp") or ""))
    rows = [("  Type", "Reason", "Age", "From", "Message"), ("  ----", "------", "----", "----", "-------")]
    for ev in events:
        count = int(ev.get("count", 1))
        when = age(ev.get("lastTimestamp"), now) + (f" (x{count})" if count > 1 else "")
        rows.append((f"  {ev.get('type', '')}", str(ev.get("reason", "")), when,
                     str((ev.get("source") or {}).get("component", "")), str(ev.get("message", ""))))
    return ["Events:", *align(rows)]


def describe_text(store: ObjectStore, kind: str, obj: Obj, now: datetime) -> str:
    meta = obj.get("metadata") or {}
    lines = [_kv("Name", meta.get("name"))]
    if meta.get("namespace"):
        lines.append(_kv("Namespace", meta.get("namespace")))
    lines += _mapping("Labels", meta.get("labels"))
    lines += _mapping("Annotations", meta.get("annotations"))
    lines += [_kv("API Version", obj.get("apiVersion")), _kv("Kind", kind),
              _kv("Creation Timestamp", meta.get("creationTimestamp"))]
    if kind == "Rollout":
        lines += _rollout(store, obj, now)
    elif kind == "AnalysisRun":
        lines += _analysis_run(obj, now)
    elif kind in ("AnalysisTemplate", "ClusterAnalysisTemplate"):
        lines += _template(obj)
    elif kind == "Secret":
        lines.append("Data:")
        lines += [f"  {key}:  {len(str(value))} bytes" for key, value in sorted((obj.get("data") or {}).items())]
    else:
        for section in ("spec", "data", "subsets", "status"):
            if obj.get(section):
                lines.append(section[:1].upper() + section[1:] + ":")
                lines += _block(obj[section], 2)
        lines += _conditions((obj.get("status") or {}).get("conditions") or [])
    lines += _events(store, kind, str(meta.get("namespace") or ""), str(meta.get("name")), now)
    return "\n".join(lines) + "\n"


@app.command()
def describe(
    kind: str = typer.Argument(..., help="Kind (rollout, analysisrun, analysistemplate, ...) or KIND/NAME."),
    name: str | None = typer.Argument(None, help="Object name."),
    namespace: str | None = NAMESPACE_OPTION,
    home: str | None = HOME_OPTION,
    kubeconfig: str | None = KUBECONFIG_OPTION,
    kube_context: str | None = CONTEXT_OPTION,
) -> None:
    """Show an object in detail, with its events."""
    from rollouts.cli.get import _kind_and_name
    from rollouts.cli.show import fetch

    kind_name, obj_name = _kind_and_name(kind, name)
    if obj_name is None:
        fail(f"describe {kind}: a name is required (describe KIND NAME or KIND/NAME)")
    store = open_store(home)
    try:
        (obj,) = fetch(store, kind_name, namespace_or_default(namespace), obj_name)
    except LookupError as exc:
        fail(str(exc.args[0]))
    typer.echo(describe_text(store, kind_name, obj, datetime.now(UTC)), nl=False)
