"""A pure in-memory world for tests, benchmarks and `simulate`: it holds one rollout's ReplicaSets, pods,
analysis runs, Services and traffic weight, applies a Decision's actions, and moves virtual time.

Pods become ready `ready_after` seconds after they are created. Analysis runs are judged by a pluggable
pure callback `(run, seconds since it started) -> phase | (phase, message) | None` (None = still
running). Nothing here reads a clock or does I/O, so an hour of rollout takes milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rollouts.engine import intents
from rollouts.engine.reconcile import reconcile
from rollouts.engine.types import (
    CreateAnalysisRun,
    CreateReplicaSet,
    Decision,
    DeleteAnalysisRun,
    DeleteReplicaSet,
    EmitEvent,
    EvictPod,
    Observed,
    PodObservation,
    RemoveHeaderRoute,
    ReplicaSetObservation,
    ScaleReplicaSet,
    SetCanaryWeight,
    SetHeaderRoute,
    SetReplicaSetRevision,
    SetScaleDownDeadline,
    SetServiceSelector,
    TerminateAnalysisRun,
)
from rollouts.spec.analysis import AnalysisRun, AnalysisRunStatus, AnalysisTemplate, ClusterAnalysisTemplate
from rollouts.spec.pod import PodTemplateSpec
from rollouts.spec.rollout import HeaderRoutingMatch, Rollout

Outcome = str | tuple[str, str] | None
AnalysisOutcome = Callable[[AnalysisRun, float], Outcome]

_COMPLETED = frozenset({"Successful", "Failed", "Error", "Inconclusive"})


def always_successful(run: AnalysisRun, elapsed: float) -> Outcome:
    return "Successful"


def successful_after(seconds: float) -> AnalysisOutcome:
    def outcome(run: AnalysisRun, elapsed: float) -> Outcome:
        return "Successful" if elapsed >= seconds else None

    return outcome


def failed_after(seconds: float, metric: str = "success-rate") -> AnalysisOutcome:
    def outcome(run: AnalysisRun, elapsed: float) -> Outcome:
        if elapsed < seconds:
            return None
        return "Failed", f'Metric "{metric}" assessed Failed due to failed (1) > failureLimit (0)'

    return outcome


@dataclass
class _Pod:
    name: str
    created_at: datetime
    ready_at: datetime


@dataclass
class _ReplicaSet:
    name: str
    pod_hash: str
    revision: int
    template: PodTemplateSpec
    replicas: int
    created_at: datetime
    deadline: datetime | None = None
    pods: list[_Pod] = field(default_factory=list)


class World:
    """One rollout and everything it owns, in virtual time."""

    def __init__(
        self,
        rollout: Rollout,
        *,
        now: datetime,
        templates: Iterable[AnalysisTemplate] = (),
        cluster_templates: Iterable[ClusterAnalysisTemplate] = (),
        template_map: Mapping[str, AnalysisTemplate] | None = None,
        cluster_template_map: Mapping[str, ClusterAnalysisTemplate] | None = None,
        ready_after: float = 5.0,
        analysis_outcome: AnalysisOutcome = always_successful,
        analysis_interval: float = 10.0,
        keep_events: bool = True,
    ) -> None:
        self.rollout = rollout
        self.now = now
        self.templates: Mapping[str, AnalysisTemplate] = (
            template_map if template_map is not None else {t.metadata.name or "": t for t in templates}
        )
        self.cluster_templates: Mapping[str, ClusterAnalysisTemplate] = (
            cluster_template_map
            if cluster_template_map is not None
            else {t.metadata.name or "": t for t in cluster_templates}
        )
        self.ready_after = timedelta(seconds=ready_after)
        self.analysis_outcome = analysis_outcome
        self.analysis_interval = analysis_interval
        self.keep_events = keep_events
        self.replica_sets: dict[str, _ReplicaSet] = {}
        self.runs: dict[str, AnalysisRun] = {}
        self.canary_weight = 0
        self.header_routes: dict[str, tuple[HeaderRoutingMatch, ...]] = {}
        self.selectors: dict[str, str | None] = {}
        self.events: list[EmitEvent] = []
        self.decisions = 0
        self.last: Decision | None = None
        self.requeue_at: datetime | None = None
        self._pod_seq = 0
        self._observed: Observed | None = None

    # --- observing ---------------------------------------------------------------------------------

    def observe(self) -> Observed:
        if self._observed is not None:
            return self._observed
        now = self.now
        sets = []
        pods = []
        for rs in self.replica_sets.values():
            ready = 0
            for pod in rs.pods:
                is_ready = pod.ready_at <= now
                ready += is_ready
                pods.append(
                    PodObservation(name=pod.name, pod_hash=rs.pod_hash, created_at=pod.created_at, ready=is_ready)
                )
            sets.append(
                ReplicaSetObservation(
                    name=rs.name,
                    pod_hash=rs.pod_hash,
                    revision=rs.revision,
                    template=rs.template,
                    replicas=rs.replicas,
                    ready=ready,
                    available=ready,
                    created=len(rs.pods),
                    created_at=rs.created_at,
                    scale_down_deadline=rs.deadline,
                )
            )
        self._observed = Observed(
            replica_sets=tuple(sets),
            pods=tuple(pods),
            analysis_runs=tuple(self.runs.values()),
            analysis_templates=self.templates,
            cluster_analysis_templates=self.cluster_templates,
            canary_weight=self.canary_weight,
            header_routes=dict(self.header_routes),
            service_selectors=dict(self.selectors),
        )
        return self._observed

    def replica_set(self, revision: int) -> _ReplicaSet | None:
        for rs in self.replica_sets.values():
            if rs.revision == revision:
                return rs
        return None

    def counts(self) -> dict[int, tuple[int, int]]:
        """revision -> (desired replicas, available pods)."""
        now = self.now
        return {
            rs.revision: (rs.replicas, sum(1 for p in rs.pods if p.ready_at <= now))
            for rs in self.replica_sets.values()
        }

    # --- reconciling -------------------------------------------------------------------------------

    def reconcile(self) -> Decision:
        decision = reconcile(self.rollout, self.observe(), self.now)
        self.apply(decision)
        return decision

    def apply(self, decision: Decision) -> None:
        self.decisions += 1
        self.last = decision
        if decision.status is not (self.rollout.status):
            self.rollout = self.rollout.model_copy(update={"status": decision.status})
        self.requeue_at = (
            self.now + timedelta(seconds=decision.requeue_after) if decision.requeue_after is not None else None
        )
        if not decision.actions:
            return
        self._observed = None
        for action in decision.actions:
            self._apply(action)
        self._judge_runs()

    def _apply(self, action: object) -> None:
        now = self.now
        if isinstance(action, EmitEvent):
            if self.keep_events:
                self.events.append(action)
        elif isinstance(action, CreateReplicaSet):
            rs = _ReplicaSet(
                name=action.name,
                pod_hash=action.pod_hash,
                revision=action.revision,
                template=action.template,
                replicas=action.replicas,
                created_at=now,
            )
            self.replica_sets[action.name] = rs
            self._sync_pods(rs)
        elif isinstance(action, ScaleReplicaSet):
            rs = self.replica_sets[action.name]
            rs.replicas = action.replicas
            self._sync_pods(rs)
        elif isinstance(action, SetReplicaSetRevision):
            self.replica_sets[action.name].revision = action.revision
        elif isinstance(action, SetScaleDownDeadline):
            self.replica_sets[action.name].deadline = action.deadline
        elif isinstance(action, DeleteReplicaSet):
            self.replica_sets.pop(action.name, None)
        elif isinstance(action, SetServiceSelector):
            self.selectors[action.service] = action.pod_hash
        elif isinstance(action, SetCanaryWeight):
            self.canary_weight = action.weight
        elif isinstance(action, SetHeaderRoute):
            self.header_routes[action.name] = action.match
        elif isinstance(action, RemoveHeaderRoute):
            self.header_routes.pop(action.name, None)
        elif isinstance(action, CreateAnalysisRun):
            run = action.run
            if run.status is None or not run.status.phase:
                run = run.model_copy(update={"status": AnalysisRunStatus(phase="Running", started_at=now)})
            self.runs[run.metadata.name or ""] = run
        elif isinstance(action, TerminateAnalysisRun):
            target = self.runs.get(action.name)
            if target is not None:
                status = target.status or AnalysisRunStatus()
                if status.phase not in _COMPLETED:
                    status = status.model_copy(
                        update={"phase": "Successful", "message": "Run Terminated", "completed_at": now}
                    )
                self.runs[action.name] = target.model_copy(
                    update={"spec": target.spec.model_copy(update={"terminate": True}), "status": status}
                )
        elif isinstance(action, DeleteAnalysisRun):
            self.runs.pop(action.name, None)
        elif isinstance(action, EvictPod):
            for rs in self.replica_sets.values():
                kept = [p for p in rs.pods if p.name != action.name]
                if len(kept) != len(rs.pods):
                    rs.pods = kept
                    self._sync_pods(rs)
                    break

    def _sync_pods(self, rs: _ReplicaSet) -> None:
        now = self.now
        while len(rs.pods) < rs.replicas:
            self._pod_seq += 1
            rs.pods.append(_Pod(name=f"{rs.name}-{self._pod_seq}", created_at=now, ready_at=now + self.ready_after))
        excess = len(rs.pods) - rs.replicas
        if excess > 0:
            # Not-ready pods go first, then the newest ready ones.
            order = sorted(rs.pods, key=lambda p: (p.ready_at <= now, -p.created_at.timestamp()))
            gone = {id(p) for p in order[:excess]}
            rs.pods = [p for p in rs.pods if id(p) not in gone]

    def _judge_runs(self) -> None:
        now = self.now
        for name, current in list(self.runs.items()):
            run = current
            status = run.status
            if status is None or status.phase in _COMPLETED or run.spec.terminate:
                continue
            started = status.started_at or now
            verdict = self.analysis_outcome(run, (now - started).total_seconds())
            if verdict is None:
                continue
            phase, message = (verdict, "") if isinstance(verdict, str) else verdict
            self.runs[name] = run.model_copy(
                update={
                    "status": status.model_copy(
                        update={"phase": phase, "message": message or None, "completed_at": now}
                    )
                }
            )
            self._observed = None

    def settle(self, max_passes: int = 200) -> Decision:
        """Reconcile until a pass changes nothing: no actions and the same status (a fixed point)."""
        for _ in range(max_passes):
            before = self.rollout.status
            decision = self.reconcile()
            if not decision.actions and decision.status == before:
                return decision
        raise RuntimeError(f"rollout {self.rollout.name} did not settle after {max_passes} passes")

    # --- time --------------------------------------------------------------------------------------

    def next_wakeup(self) -> datetime | None:
        """The next moment something can change by itself: a pod turning ready, an analysis run being
        judged, or the engine's requested requeue."""
        now = self.now
        candidates = []
        if self.requeue_at is not None and self.requeue_at > now:
            candidates.append(self.requeue_at)
        for rs in self.replica_sets.values():
            for pod in rs.pods:
                if pod.ready_at > now:
                    candidates.append(pod.ready_at)
        if any(
            r.status is not None and r.status.phase not in _COMPLETED and not r.spec.terminate
            for r in self.runs.values()
        ):
            candidates.append(now + timedelta(seconds=self.analysis_interval))
        return min(candidates) if candidates else None

    def advance(self, seconds: float) -> None:
        self.advance_to(self.now + timedelta(seconds=seconds))

    def advance_to(self, when: datetime) -> None:
        if when <= self.now:
            return
        self.now = when
        self._observed = None
        self._judge_runs()

    def run(self, *, until: Callable[[World], bool] | None = None, max_seconds: float = 3600.0) -> bool:
        """Settle, then jump from wake-up to wake-up until `until` holds (True) or time runs out/nothing
        is left to happen (False)."""
        end = self.now + timedelta(seconds=max_seconds)
        while True:
            self.settle()
            if until is not None and until(self):
                return True
            wake = self.next_wakeup()
            if wake is None or wake > end:
                return until is None
            self.advance_to(wake)

    # --- operator ----------------------------------------------------------------------------------

    def patch(self, patch: intents.Patch) -> None:
        self.rollout = intents.apply_patch(self.rollout, patch)

    def edit(self, change: Callable[[Rollout], Rollout]) -> None:
        """Replace the rollout (e.g. a new template); bumps metadata.generation like the API server."""
        updated = change(self.rollout)
        generation = (self.rollout.metadata.generation or 1) + 1
        # A replacement manifest carries no status: the stored one stays, as with `kubectl apply`.
        self.rollout = updated.model_copy(
            update={
                "metadata": updated.metadata.model_copy(update={"generation": generation}),
                "status": updated.status if updated.status is not None else self.rollout.status,
            }
        )

    @property
    def phase(self) -> str | None:
        return self.rollout.status.phase if self.rollout.status is not None else None

    def event_reasons(self) -> list[str]:
        return [e.reason for e in self.events]
