"""The controller's Prometheus metrics: Argo Rollouts' series with Argo's names, types and labels, plus the
series the alert rules in deploy/prometheus read, which Argo itself does not export:

- `argo_rollouts_rollout_phase{namespace, rollout, phase}`: 1 for the runbook phase a rollout is in now
  (Aborted split out of Degraded), 0 for the others (RolloutFailed);
- `argo_rollouts_analysis_run_phase{namespace, analysisrun, rollout, phase}` (the runbook's series) and
  `argo_rollouts_analysis_run_current{namespace, analysisrun, rollout}`: 1 while a run's outcome still
  describes its rollout, 0 once a later run of its kind or another revision superseded it
  (CanaryAnalysisFailed);
- `rollout_phase_duration_seconds`, the runbook's seconds-per-phase counter (for dashboards: a counter
  restarts with the controller, so no alert reads it).

These gauges, like every object-state series (rollout_info, analysis_run_phase, ...), are read from the store
at scrape time: they are right on the first scrape after a controller restart, and a deleted object's series
vanish with it. Counters and histograms (reconcile time, errors, events, phase seconds, release durations,
notifications) are fed by the loop through the DecisionObserver protocol and by the notifier through
`record_notification`; their series for a deleted rollout are dropped FORGET_AFTER seconds after it
disappears, long enough for a last scrape to see the final increments.

Counters are rendered without a `_total` suffix unless the name has one (`rollout_reconcile_error`,
`notification_send_success`, as Argo's Go client exports them), which prometheus-client's own renderer
would append; hence the small text renderer at the bottom."""

from __future__ import annotations

import bisect
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from rollouts import __version__
from rollouts.controller.metrics_phases import (
    METRICS_PHASES,
    RUN_PHASES,
    RUNBOOK_PHASES,
    PhaseClock,
    ReleaseTimer,
    current_runs,
    metrics_phase,
    owner_rollout,
    provider_type,
    run_phase,
    runbook_phase,
    strategy_label,
    traffic_router_label,
)
from rollouts.engine.types import Decision
from rollouts.spec.rollout import Rollout
from rollouts.store.protocol import ObjectStore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
RECONCILE_BUCKETS = (0.01, 0.15, 0.25, 0.5, 1.0)
DURATION_BUCKETS = (30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0)
PROGRESSION_BUCKETS = (30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)
FORGET_AFTER = 65.0

Labels = tuple[str, ...]
RolloutKey = tuple[str, str]


class _Counter:
    def __init__(self, name: str, doc: str, labelnames: Labels) -> None:
        self.name, self.doc, self.labelnames = name, doc, labelnames
        self.values: dict[Labels, float] = {}

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def family(self) -> Metric:
        metric = Metric(self.name, self.doc, "counter")
        for labels, value in sorted(self.values.items()):
            metric.add_sample(self.name, dict(zip(self.labelnames, labels, strict=True)), value)
        return metric

    def forget(self, gone: Callable[[Labels], bool]) -> None:
        for labels in [k for k in self.values if gone(k)]:
            del self.values[labels]


class _Histogram:
    def __init__(self, name: str, doc: str, labelnames: Labels, buckets: tuple[float, ...]) -> None:
        self.name, self.doc, self.labelnames, self.buckets = name, doc, labelnames, buckets
        self.counts: dict[Labels, list[int]] = {}
        self.sums: dict[Labels, float] = {}

    def observe(self, labels: Labels, value: float) -> None:
        counts = self.counts.setdefault(labels, [0] * (len(self.buckets) + 1))
        counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sums[labels] = self.sums.get(labels, 0.0) + value

    def family(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.doc, labels=self.labelnames)
        for labels, counts in sorted(self.counts.items()):
            bounds = [floatToGoString(b) for b in self.buckets] + ["+Inf"]
            cumulative = [float(sum(counts[: i + 1])) for i in range(len(counts))]
            family.add_metric(list(labels), list(zip(bounds, cumulative, strict=True)), self.sums[labels])
        return family

    def forget(self, gone: Callable[[Labels], bool]) -> None:
        for labels in [k for k in self.counts if gone(k)]:
            del self.counts[labels]
            del self.sums[labels]


class ControllerMetrics(Collector):
    """A DecisionObserver for the loop and the collector of a private registry (`registry`, `render()`)."""

    def __init__(self, store: ObjectStore | None, *, version: str = __version__,
                 monotonic: Callable[[], float] = time.monotonic, forget_after: float = FORGET_AFTER) -> None:
        self.store = store
        self.version = version
        self._monotonic = monotonic
        self._forget_after = forget_after
        self._lock = threading.Lock()
        self._phase_clocks: dict[RolloutKey, PhaseClock] = {}
        self._timers: dict[RolloutKey, ReleaseTimer] = {}
        self._missing_since: dict[RolloutKey, float] = {}
        nn = ("namespace", "name")
        self._reconcile = _Histogram("rollout_reconcile", "Seconds one reconciliation of a rollout took.", nn,
                                     RECONCILE_BUCKETS)
        self._reconcile_error = _Counter("rollout_reconcile_error", "Reconciliations of a rollout that failed.", nn)
        self._events = _Counter("rollout_events_total", "Kubernetes events emitted for a rollout, by type and reason.",
                                ("namespace", "name", "type", "reason"))
        self._notify_ok = _Counter("notification_send_success", "Notifications delivered for a rollout.",
                                   ("namespace", "name", "type", "reason"))
        self._notify_error = _Counter("notification_send_error", "Notifications for a rollout that could not be delivered.",
                                      ("namespace", "name", "type", "reason"))
        self._duration = _Histogram("rollout_duration_seconds",
                                    "Wall-clock seconds of a finished update attempt, by outcome.",
                                    ("status",), DURATION_BUCKETS)
        self._progression = _Histogram("rollout_progression_duration_seconds",
                                       "Seconds of a finished update attempt without manual pauses, by outcome.",
                                       ("status",), PROGRESSION_BUCKETS)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    # -- fed by the loop -----------------------------------------------------------------------------------

    def observe_decision(self, rollout: Rollout, decision: Decision, seconds: float) -> None:
        key = (rollout.namespace, rollout.name)
        status = decision.status.to_dict()
        spec = rollout.spec.to_dict()
        now = self._monotonic()
        with self._lock:
            self._reconcile.observe(key, seconds)
            for event in decision.events:
                self._events.inc((*key, event.type, event.reason))
            self._observe_phase(key, status, now)
            finished = self._timers.setdefault(key, ReleaseTimer()).observe(spec, status, now)
            if finished is not None:
                self._duration.observe((finished.status,), finished.seconds)
                self._progression.observe((finished.status,), finished.progression_seconds)

    def observe_error(self, rollout: Rollout) -> None:
        with self._lock:
            self._reconcile_error.inc((rollout.namespace, rollout.name))

    def record_notification(self, namespace: str, name: str, type: str, reason: str, ok: bool) -> None:
        with self._lock:
            (self._notify_ok if ok else self._notify_error).inc((namespace, name, type, reason))

    def _observe_phase(self, key: RolloutKey, status: Mapping[str, Any], now: float) -> None:
        phase = runbook_phase(status)
        clock = self._phase_clocks.get(key)
        if clock is None:
            self._phase_clocks[key] = PhaseClock(phase, now)
        else:
            clock.observe(phase, now)

    # -- read at scrape time -------------------------------------------------------------------------------

    def render(self) -> bytes:
        return render(self.registry.collect())

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("argo_rollouts_controller_info", "Always 1; the version label names the running controller.",
                                 labels=("version",))
        info.add_metric([self.version], 1.0)
        yield info
        if self.store is not None:
            rollouts = self.store.list("Rollout")
            yield from _rollout_families(rollouts)
            yield from _analysis_families(self.store.list("AnalysisRun"), rollouts)
            templates = GaugeMetricFamily("analysis_template_info", "Always 1 for each AnalysisTemplate and ClusterAnalysisTemplate (namespace \"\").",
                                          labels=("namespace", "name"))
            for kind in ("AnalysisTemplate", "ClusterAnalysisTemplate"):
                for obj in self.store.list(kind):
                    meta = obj.get("metadata") or {}
                    templates.add_metric([meta.get("namespace") or "", meta.get("name", "")], 1.0)
            yield templates
            present = {_key(obj) for obj in rollouts}
        else:
            rollouts, present = [], None
        with self._lock:
            now = self._monotonic()
            for obj in rollouts:
                self._observe_phase(_key(obj), obj.get("status") or {}, now)
            if present is not None:
                self._forget_missing(present, now)
            yield self._phase_seconds(now)
            for series in (self._reconcile, self._reconcile_error, self._events, self._duration,
                           self._progression, self._notify_ok, self._notify_error):
                yield series.family()

    def _phase_seconds(self, now: float) -> Metric:
        metric = Metric("rollout_phase_duration_seconds",
                        "Seconds a rollout has spent in each phase (Aborted: degraded by an abort).", "counter")
        for (namespace, name), clock in sorted(self._phase_clocks.items()):
            for phase, seconds in clock.seconds(now).items():
                metric.add_sample("rollout_phase_duration_seconds",
                                  {"namespace": namespace, "rollout": name, "phase": phase}, seconds)
        return metric

    def _forget_missing(self, present: set[RolloutKey], now: float) -> None:
        known: set[RolloutKey] = set(self._phase_clocks) | set(self._timers)
        known |= {(k[0], k[1]) for k in self._reconcile.counts}
        known |= {(k[0], k[1]) for c in (self._reconcile_error, self._events, self._notify_ok, self._notify_error)
                  for k in c.values}
        for key in known - present:
            self._missing_since.setdefault(key, now)
        for key in present:
            self._missing_since.pop(key, None)
        gone = {k for k, since in self._missing_since.items() if now - since >= self._forget_after}
        if not gone:
            return
        for key in gone:
            self._phase_clocks.pop(key, None)
            self._timers.pop(key, None)
            del self._missing_since[key]
        for series in (self._reconcile, self._reconcile_error, self._events, self._notify_ok, self._notify_error):
            series.forget(lambda labels: labels[:2] in gone)


def _key(obj: Mapping[str, Any]) -> RolloutKey:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "default", meta.get("name", ""))


def _rollout_families(rollouts: list[dict[str, Any]]) -> Iterator[Metric]:
    nn = ("namespace", "name")
    info = GaugeMetricFamily("rollout_info", "Always 1 per rollout; labels carry its strategy, traffic router and metrics phase.",
                             labels=("namespace", "name", "strategy", "traffic_router", "phase"))
    replicas = {part: GaugeMetricFamily(f"rollout_info_replicas_{part}", f"Replicas of a rollout that are {part}.", labels=nn)
                for part in ("available", "unavailable", "desired", "updated")}
    phases = GaugeMetricFamily("rollout_phase", "1 for the metrics phase a rollout is in, 0 for the others (deprecated: read rollout_info).", labels=("namespace", "name", "strategy", "phase"))
    runbook = GaugeMetricFamily("argo_rollouts_rollout_phase",
                                "1 for the phase a rollout is in now (status.phase, Aborted split out of Degraded), 0 for the others.",
                                labels=("namespace", "rollout", "phase"))
    for obj in rollouts:
        namespace, name = _key(obj)
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        strategy, phase = strategy_label(spec), metrics_phase(status)
        info.add_metric([namespace, name, strategy, traffic_router_label(spec), phase], 1.0)
        available = int(status.get("availableReplicas") or 0)
        values = {"available": available,
                  "unavailable": max(0, int(status.get("replicas") or 0) - available),
                  "desired": int(spec["replicas"]) if spec.get("replicas") is not None else 1,
                  "updated": int(status.get("updatedReplicas") or 0)}
        for part, family in replicas.items():
            family.add_metric([namespace, name], float(values[part]))
        for candidate in METRICS_PHASES:
            phases.add_metric([namespace, name, strategy, candidate], 1.0 if candidate == phase else 0.0)
        now = runbook_phase(status)
        for candidate in RUNBOOK_PHASES:
            runbook.add_metric([namespace, name, candidate], 1.0 if candidate == now else 0.0)
    yield info
    yield from replicas.values()
    yield phases
    yield runbook


def _analysis_families(runs: list[dict[str, Any]], rollouts: list[dict[str, Any]]) -> Iterator[Metric]:
    nn = ("namespace", "name")
    info = GaugeMetricFamily("analysis_run_info", "Always 1 per analysis run; the phase label is its phase.",
                             labels=("namespace", "name", "phase"))
    phases = GaugeMetricFamily("analysis_run_phase", "1 for the phase an analysis run is in, 0 for the others (deprecated: read analysis_run_info).", labels=(*nn, "phase"))
    runbook = GaugeMetricFamily("argo_rollouts_analysis_run_phase",
                                "1 for the phase an analysis run is in, 0 for the others.",
                                labels=("namespace", "analysisrun", "rollout", "phase"))
    still_current = GaugeMetricFamily(
        "argo_rollouts_analysis_run_current",
        "1 while an analysis run's outcome still describes its rollout; 0 once a later run of its kind, "
        "a promotion or another revision superseded it.",
        labels=("namespace", "analysisrun", "rollout"))
    speaking = current_runs(runs, rollouts)
    metric_types = GaugeMetricFamily("analysis_run_metric_type", "Always 1 per metric of an analysis run; the type label names its provider.", labels=(*nn, "metric", "type"))
    metric_phases = GaugeMetricFamily("analysis_run_metric_phase", "1 for the phase a metric of an analysis run is in, 0 for the others.",
                                      labels=(*nn, "metric", "type", "dry_run", "phase"))
    for run in runs:
        namespace, name = _key(run)
        status = run.get("status") or {}
        phase = run_phase(status)
        info.add_metric([namespace, name, phase], 1.0)
        owner = owner_rollout(run)
        still_current.add_metric([namespace, name, owner], 1.0 if (namespace, name) in speaking else 0.0)
        for candidate in RUN_PHASES:
            value = 1.0 if candidate == phase else 0.0
            phases.add_metric([namespace, name, candidate], value)
            runbook.add_metric([namespace, name, owner, candidate], value)
        results = {r.get("name"): r for r in status.get("metricResults") or []}
        dry_run = _dry_run_names(run)
        for metric in (run.get("spec") or {}).get("metrics") or []:
            metric_name, kind = metric.get("name", ""), provider_type(metric)
            metric_types.add_metric([namespace, name, metric_name, kind], 1.0)
            result = results.get(metric_name) or {}
            current = result.get("phase") or "Pending"
            flag = "true" if result.get("dryRun", metric_name in dry_run) else "false"
            for candidate in RUN_PHASES:
                metric_phases.add_metric([namespace, name, metric_name, kind, flag, candidate],
                                         1.0 if candidate == current else 0.0)
    yield from (info, phases, runbook, still_current, metric_types, metric_phases)


def _dry_run_names(run: Mapping[str, Any]) -> set[str]:
    patterns = [d.get("metricName", "") for d in (run.get("spec") or {}).get("dryRun") or []]
    names = {m.get("name", "") for m in (run.get("spec") or {}).get("metrics") or []}
    return {n for n in names for p in patterns if p in ("*", n) or _full_match(p, n)}


def _full_match(pattern: str, name: str) -> bool:
    try:
        return re.fullmatch(pattern, name) is not None
    except re.error:
        return False


# -- the one active instance, for code that has no handle on it (the notifier) -----------------------------

_active: ControllerMetrics | None = None


def activate(metrics: ControllerMetrics | None) -> None:
    """Make `metrics` the instance `record_notification` counts into (None: count nowhere)."""
    global _active
    _active = metrics


def active() -> ControllerMetrics | None:
    return _active


def record_notification(namespace: str, name: str, type: str, reason: str, ok: bool) -> None:
    """Count one notification attempt for a rollout; a no-op when no controller metrics are active."""
    if _active is not None:
        _active.record_notification(namespace, name, type, reason, ok)


# -- text exposition ---------------------------------------------------------------------------------------


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def render(families: Iterable[Metric]) -> bytes:
    """Prometheus text format 0.0.4, counters named as their samples are (no forced `_total`)."""
    lines: list[str] = []
    for family in families:
        samples = [s for s in family.samples if not s.name.endswith("_created")]
        if not samples:
            continue
        name = family.name
        if family.type == "counter" and all(s.name == f"{name}_total" for s in samples):
            name = f"{name}_total"
        kind = {"unknown": "untyped", "info": "gauge"}.get(family.type, family.type)
        doc = family.documentation.replace("\\", r"\\").replace("\n", r"\n")
        lines.append(f"# HELP {name} {doc}")
        lines.append(f"# TYPE {name} {kind}")
        for sample in samples:
            labels = ",".join(f'{k}="{_escape(str(v))}"' for k, v in sample.labels.items())
            shown = floatToGoString(sample.value)
            lines.append(f"{sample.name}{{{labels}}} {shown}" if labels else f"{sample.name} {shown}")
    return ("\n".join(lines) + "\n").encode() if lines else b""
