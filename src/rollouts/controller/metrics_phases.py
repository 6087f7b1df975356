"""How the controller's metrics classify a rollout: Argo's metrics phase vocabulary, the runbook's phase
(status.phase, with an abort told apart from other degradation), the strategy and traffic-router labels,
which analysis runs still speak for their rollout (not superseded), and the two clocks the loop feeds:
seconds spent per phase, and the length of each release attempt.

Everything here reads raw manifest dicts (camelCase), the form the store and `Model.to_dict()` give."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Argo's metrics phases (rollout_info / rollout_phase), derived from the Progressing condition's reason.
METRICS_PHASES = ("Completed", "Progressing", "Paused", "Timeout", "Error", "Abort")
# The phases of rollout_phase_duration_seconds and argo_rollouts_rollout_phase: status.phase plus "Aborted"
# split out of Degraded.
RUNBOOK_PHASES = ("Progressing", "Paused", "Healthy", "Degraded", "Aborted")
# AnalysisRun phases Argo exports one 0/1 series for ("" counts as Pending).
RUN_PHASES = ("Pending", "Running", "Successful", "Failed", "Error", "Inconclusive")

_PROGRESSING_REASON_PHASE = {
    "NewReplicaSetAvailable": "Completed",
    "RolloutPaused": "Paused",
    "ProgressDeadlineExceeded": "Timeout",
    "RolloutAborted": "Abort",
}
_ROUTERS = {"alb": "ALB", "ambassador": "Ambassador", "istio": "Istio", "nginx": "Nginx", "smi": "SMI",
            "appMesh": "AppMesh"}
_PROVIDER_TYPES = {"prometheus": "Prometheus", "web": "Web", "job": "Job", "datadog": "Datadog",
                   "newRelic": "NewRelic", "wavefront": "Wavefront", "kayenta": "Kayenta",
                   "cloudWatch": "CloudWatch", "graphite": "Graphite", "influxdb": "Influxdb",
                   "skywalking": "skywalking", "plugin": "RPCPlugin"}

JSON = Mapping[str, Any]
# The label Argo puts on the runs it starts, naming the revision (pod template hash) they judge.
POD_TEMPLATE_HASH_LABEL = "rollouts-pod-template-hash"


def _conditions(status: JSON) -> dict[str, JSON]:
    return {c.get("type", ""): c for c in status.get("conditions") or [] if isinstance(c, Mapping)}


def metrics_phase(status: JSON) -> str:
    """Argo's phase label for rollout_info: InvalidSpec and replica failures win over the Progressing reason."""
    conditions = _conditions(status)
    if "InvalidSpec" in conditions:
        return "InvalidSpec"
    failure = conditions.get("ReplicaFailure")
    if failure is not None and failure.get("status") == "True":
        return "Error"
    progressing = conditions.get("Progressing")
    reason = progressing.get("reason", "") if progressing is not None else ""
    return _PROGRESSING_REASON_PHASE.get(reason, "Progressing")


def is_aborted(status: JSON) -> bool:
    """An abort that took effect: the Progressing condition says so, or abort is set on an unfinished update
    (aborting a fully promoted rollout changes nothing, so it does not count). A Healthy rollout is never
    aborted, whatever a stale flag or condition left behind says: the RolloutFailed alert reads this."""
    if status.get("phase") == "Healthy":
        return False
    progressing = _conditions(status).get("Progressing")
    if progressing is not None and progressing.get("reason") == "RolloutAborted":
        return True
    return bool(status.get("abort")) and status.get("phase") != "Healthy"


def runbook_phase(status: JSON) -> str:
    if is_aborted(status):
        return "Aborted"
    phase = status.get("phase")
    return phase if phase in RUNBOOK_PHASES else "Progressing"


def strategy_label(spec: JSON) -> str:
    strategy = spec.get("strategy") or {}
    if strategy.get("canary") is not None:
        return "canary"
    if strategy.get("blueGreen") is not None:
        return "blueGreen"
    return "none"


def traffic_router_label(spec: JSON) -> str:
    routing = ((spec.get("strategy") or {}).get("canary") or {}).get("trafficRouting") or {}
    for key, label in _ROUTERS.items():
        if routing.get(key) is not None:
            return label
    return ""


def provider_type(metric: JSON) -> str:
    provider = metric.get("provider") or {}
    for key, label in _PROVIDER_TYPES.items():
        if provider.get(key) is not None:
            return label
    return ""


def run_phase(status: JSON | None) -> str:
    phase = (status or {}).get("phase") or "Pending"
    return str(phase)


def owner_rollout(run: JSON) -> str:
    meta = run.get("metadata") or {}
    for owner in meta.get("ownerReferences") or []:
        if owner.get("kind") == "Rollout":
            return str(owner.get("name", ""))
    return str((meta.get("labels") or {}).get("rollout", ""))


def current_runs(runs: Iterable[JSON], rollouts: Iterable[JSON]) -> set[tuple[str, str]]:
    """(namespace, name) of the analysis runs whose outcome still describes their rollout.

    A run is superseded, and so left out, when a later run of the same kind (rollout-type and step-index
    labels) exists for the same rollout (a retry started it again), or when its rollout no longer rolls out
    the revision it judged: the rollout is Healthy (promoted, or rolled back), or its current pod hash is
    another one. Runs of no rollout in the store (a standalone `analyze`) are never superseded."""
    by_rollout: dict[tuple[str, str], JSON] = {}
    for obj in rollouts:
        meta = obj.get("metadata") or {}
        by_rollout[(meta.get("namespace") or "default", str(meta.get("name", "")))] = obj
    latest: dict[tuple[str, ...], tuple[str, str]] = {}
    keyed: list[tuple[str, str, str, tuple[str, ...], tuple[str, str]]] = []
    for run in runs:
        meta = run.get("metadata") or {}
        labels = meta.get("labels") or {}
        namespace, name = meta.get("namespace") or "default", str(meta.get("name", ""))
        kind: tuple[str, ...] = (namespace, owner_rollout(run), str(labels.get("rollout-type", "")),
                                 str(labels.get("step-index", "")))
        # Creation time orders runs; the name breaks ties within one timestamp (a retry appends ".N").
        order = (str(meta.get("creationTimestamp") or ""), name)
        keyed.append((namespace, name, str(labels.get(POD_TEMPLATE_HASH_LABEL, "")), kind, order))
        if kind not in latest or order > latest[kind]:
            latest[kind] = order
    current: set[tuple[str, str]] = set()
    for namespace, name, pod_hash, kind, order in keyed:
        rollout = by_rollout.get((namespace, kind[1])) if kind[1] else None
        if rollout is not None:
            status = rollout.get("status") or {}
            if latest[kind] != order or status.get("phase") == "Healthy":
                continue
            if pod_hash and status.get("currentPodHash") and status["currentPodHash"] != pod_hash:
                continue
        current.add((namespace, name))
    return current


def manually_paused(spec: JSON, status: JSON) -> bool:
    """Paused by a person or waiting for one: spec.paused, an indefinite pause step, an inconclusive analysis,
    or a blue-green preview without auto-promotion (the time Argo leaves out of progression duration)."""
    if spec.get("paused"):
        return True
    reasons = {c.get("reason") for c in status.get("pauseConditions") or [] if isinstance(c, Mapping)}
    if "InconclusiveAnalysisRun" in reasons:
        return True
    strategy = spec.get("strategy") or {}
    if "BlueGreenPause" in reasons:
        blue_green = strategy.get("blueGreen") or {}
        return blue_green.get("autoPromotionEnabled") is False and not blue_green.get("autoPromotionSeconds")
    if "CanaryPauseStep" in reasons:
        steps = (strategy.get("canary") or {}).get("steps") or []
        index = status.get("currentStepIndex")
        if isinstance(index, int) and 0 <= index < len(steps):
            pause = steps[index].get("pause")
            return isinstance(pause, Mapping) and pause.get("duration") is None
    return False


@dataclass
class PhaseClock:
    """Seconds one rollout has spent in each runbook phase since this controller first saw it."""

    phase: str
    since: float
    totals: dict[str, float] = field(default_factory=dict)

    def observe(self, phase: str, now: float) -> None:
        if phase != self.phase:
            self.totals[self.phase] = self.totals.get(self.phase, 0.0) + max(0.0, now - self.since)
            self.phase, self.since = phase, now

    def seconds(self, now: float) -> dict[str, float]:
        values = {p: self.totals.get(p, 0.0) for p in RUNBOOK_PHASES}
        values[self.phase] = values.get(self.phase, 0.0) + max(0.0, now - self.since)
        return values


@dataclass(frozen=True)
class FinishedAttempt:
    status: str  # Promoted, FastPromoted, Aborted, Superseded or RolledBack
    seconds: float
    progression_seconds: float


@dataclass
class ReleaseTimer:
    """The update attempt in flight for one rollout (a pod hash that is not yet stable)."""

    pod_hash: str | None = None
    started: float = 0.0
    manual_pause: float = 0.0
    last_seen: float = 0.0
    was_manually_paused: bool = False
    promote_full: bool = False

    def observe(self, spec: JSON, status: JSON, now: float) -> FinishedAttempt | None:
        current, stable = status.get("currentPodHash"), status.get("stableRS")
        aborted = is_aborted(status)
        finished: FinishedAttempt | None = None
        if self.pod_hash is not None:
            if self.was_manually_paused:
                self.manual_pause += max(0.0, now - self.last_seen)
            if current != self.pod_hash:
                finished = self._finish("RolledBack" if current == stable else "Superseded", now)
            elif stable == current:
                finished = self._finish("FastPromoted" if self.promote_full else "Promoted", now)
            elif aborted:
                finished = self._finish("Aborted", now)
        if self.pod_hash is None and current and stable and current != stable and not aborted:
            self.pod_hash, self.started, self.manual_pause, self.promote_full = current, now, 0.0, False
        if self.pod_hash is not None:
            self.promote_full = self.promote_full or bool(status.get("promoteFull"))
            self.was_manually_paused = manually_paused(spec, status)
            self.last_seen = now
        return finished

    def _finish(self, outcome: str, now: float) -> FinishedAttempt:
        total = max(0.0, now - self.started)
        result = FinishedAttempt(outcome, total, max(0.0, total - self.manual_pause))
        self.pod_hash = None
        self.was_manually_paused = False
        return result
