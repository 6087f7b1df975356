"""The scratchpad of one reconcile: the inputs, the ReplicaSet roles (new, stable, others), the status
fields being rewritten, and the actions/events collected so far.

It is created and thrown away inside `reconcile`; nothing outside the engine sees it. Keeping the
mutable state here lets the strategy modules read like Argo's flat list of `reconcile*` steps while the
public function stays pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rollouts.engine import conditions as c
from rollouts.engine.replicas import surge_and_unavailable
from rollouts.engine.types import (
    Action,
    CreateReplicaSet,
    EmitEvent,
    EventType,
    Observed,
    ReplicaSetObservation,
    ScaleReplicaSet,
    SetScaleDownDeadline,
    SetServiceSelector,
)
from rollouts.spec.analysis import AnalysisRun
from rollouts.spec.rollout import (
    DEFAULT_MAX_TRAFFIC_WEIGHT,
    BlueGreenStrategy,
    CanaryStep,
    CanaryStrategy,
    PauseCondition,
    Rollout,
    RolloutAnalysisRunStatus,
    RolloutCondition,
    RolloutStatus,
    TrafficWeights,
)


@dataclass
class Context:
    rollout: Rollout
    observed: Observed
    now: datetime
    prev: RolloutStatus
    replicas: int
    canary: CanaryStrategy | None
    blue_green: BlueGreenStrategy | None
    steps: tuple[CanaryStep, ...]
    max_weight: int

    # ReplicaSet roles, filled by the update detection.
    pod_hash: str = ""
    new_rs: ReplicaSetObservation | None = None
    stable_rs: ReplicaSetObservation | None = None
    others: list[ReplicaSetObservation] = field(default_factory=list)
    by_name: dict[str, ReplicaSetObservation] = field(default_factory=dict)
    desired: dict[str, int] = field(default_factory=dict)
    deadlines: dict[str, datetime | None] = field(default_factory=dict)
    revisions: dict[str, int] = field(default_factory=dict)
    created: CreateReplicaSet | None = None

    # Status being rewritten.
    abort: bool = False
    aborted_at: datetime | None = None
    abort_cause: str | None = None
    aborted_now: bool = False
    pause_conditions: list[PauseCondition] = field(default_factory=list)
    controller_pause: bool = False
    current_step_index: int | None = None
    promote_full: bool = False
    stable_hash: str | None = None
    step_run: RolloutAnalysisRunStatus | None = None
    background_run: RolloutAnalysisRunStatus | None = None
    pre_run: RolloutAnalysisRunStatus | None = None
    post_run: RolloutAnalysisRunStatus | None = None
    active_selector: str | None = None
    preview_selector: str | None = None
    check_point: bool = False
    weights: TrafficWeights | None = None
    conditions: list[RolloutCondition] = field(default_factory=list)
    restarted_at: datetime | None = None
    step_hash: str | None = None

    # Flags the later steps read.
    updated: bool = False
    resumed: bool = False
    retried: bool = False
    fast_track: bool = False
    fast_track_reason: str = ""
    promoted_now: bool = False
    step_changed: bool = False
    target_new: int = 0
    target_stable: int = 0
    # While set (progress halted), scale and scale-down-deadline changes are not made.
    frozen: bool = False

    actions: list[Action] = field(default_factory=list)
    status_events: list[EmitEvent] = field(default_factory=list)
    requeue: float | None = None
    run_names: set[str] = field(default_factory=set)
    terminated: set[str] = field(default_factory=set)

    @classmethod
    def start(cls, rollout: Rollout, observed: Observed, now: datetime) -> Context:
        spec = rollout.spec
        prev = rollout.status or RolloutStatus()
        canary = spec.strategy.canary
        max_weight = DEFAULT_MAX_TRAFFIC_WEIGHT
        if canary is not None and canary.traffic_routing is not None:
            max_weight = canary.traffic_routing.max_traffic_weight or DEFAULT_MAX_TRAFFIC_WEIGHT
        ctx = cls(
            rollout=rollout,
            observed=observed,
            now=now,
            prev=prev,
            replicas=spec.replicas if spec.replicas is not None else 1,
            canary=canary,
            blue_green=spec.strategy.blue_green,
            steps=tuple(canary.steps or ()) if canary is not None else (),
            max_weight=max_weight,
        )
        ctx.abort = bool(prev.abort)
        ctx.aborted_at = prev.aborted_at
        ctx.pause_conditions = list(prev.pause_conditions or ())
        ctx.controller_pause = bool(prev.controller_pause)
        ctx.current_step_index = prev.current_step_index
        ctx.promote_full = bool(prev.promote_full)
        ctx.stable_hash = prev.stable_rs
        if prev.canary is not None:
            ctx.step_run = prev.canary.current_step_analysis_run_status
            ctx.background_run = prev.canary.current_background_analysis_run_status
            ctx.weights = prev.canary.weights
        if prev.blue_green is not None:
            ctx.pre_run = prev.blue_green.pre_promotion_analysis_run_status
            ctx.post_run = prev.blue_green.post_promotion_analysis_run_status
            ctx.active_selector = prev.blue_green.active_selector
            ctx.preview_selector = prev.blue_green.preview_selector
            ctx.check_point = bool(prev.blue_green.scale_up_preview_check_point)
        ctx.conditions = list(prev.conditions or ())
        ctx.restarted_at = prev.restarted_at
        for rs in observed.replica_sets:
            ctx.by_name[rs.name] = rs
            ctx.desired[rs.name] = rs.replicas
            ctx.revisions[rs.name] = rs.revision
            ctx.deadlines[rs.name] = rs.scale_down_deadline
        ctx.run_names = {run.metadata.name or "" for run in observed.analysis_runs}
        return ctx

    # --- small queries -----------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.rollout.name

    @property
    def traffic_routed(self) -> bool:
        return self.canary is not None and self.canary.traffic_routing is not None

    @property
    def index(self) -> int:
        return self.current_step_index or 0

    @property
    def fully_promoted(self) -> bool:
        return self.new_rs is not None and self.stable_rs is not None and self.stable_rs is self.new_rs

    @property
    def aborted(self) -> bool:
        """An abort that is in effect (an abort of a fully promoted rollout changes nothing)."""
        return self.abort and not self.fully_promoted

    @property
    def paused(self) -> bool:
        return bool(self.rollout.spec.paused) or bool(self.pause_conditions)

    @property
    def revision(self) -> int:
        return self.revisions.get(self.new_rs.name, 0) if self.new_rs is not None else 0

    def surge_unavailable(self) -> tuple[int, int]:
        if self.canary is not None:
            return surge_and_unavailable(self.replicas, self.canary.max_surge, self.canary.max_unavailable)
        bg = self.blue_green
        return surge_and_unavailable(self.replicas, 0, bg.max_unavailable if bg is not None else None)

    def deadline(self, rs: ReplicaSetObservation) -> datetime | None:
        return self.deadlines.get(rs.name)

    def pause_condition(self, reason: str) -> PauseCondition | None:
        for cond in self.pause_conditions:
            if cond.reason == reason:
                return cond
        return None

    def runs_by_name(self) -> dict[str, AnalysisRun]:
        return {run.metadata.name or "": run for run in self.observed.analysis_runs}

    def saturated(self, rs: ReplicaSetObservation | None) -> bool:
        """Whether the ReplicaSet runs the rollout's full count with every pod available (or enough of
        them under replicaProgressThreshold)."""
        if rs is None:
            return False
        if self.desired.get(rs.name, 0) != self.replicas or rs.replicas != self.replicas:
            return False
        needed = self.replicas
        threshold = self.canary.replica_progress_threshold if self.canary is not None else None
        if threshold is not None and self.replicas > 0:
            if threshold.type == "Pods":
                needed = min(threshold.value, self.replicas)
            else:
                needed = min(self.replicas, -(-threshold.value * self.replicas // 100))
        return rs.available >= needed

    # --- writing -----------------------------------------------------------------------------------

    def requeue_in(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        if self.requeue is None or seconds < self.requeue:
            self.requeue = seconds

    def requeue_at(self, when: datetime) -> None:
        self.requeue_in((when - self.now).total_seconds())

    def act(self, action: Action) -> None:
        self.actions.append(action)

    def event(self, reason: str, message: str, etype: EventType = "Normal") -> None:
        self.actions.append(EmitEvent(type=etype, reason=reason, message=message))

    def status_event(self, reason: str, message: str, etype: EventType = "Normal") -> None:
        """An event about the rollout as a whole; emitted after the scaling events of the same pass."""
        self.status_events.append(EmitEvent(type=etype, reason=reason, message=message))

    def scale(self, rs: ReplicaSetObservation, replicas: int) -> None:
        if self.frozen:
            return
        replicas = max(replicas, 0)
        old = self.desired.get(rs.name, rs.replicas)
        if old == replicas:
            return
        self.desired[rs.name] = replicas
        if self.created is not None and self.created.name == rs.name:
            self.created = CreateReplicaSet(
                name=self.created.name,
                pod_hash=self.created.pod_hash,
                revision=self.created.revision,
                template=self.created.template,
                replicas=replicas,
            )
            for i, action in enumerate(self.actions):
                if isinstance(action, CreateReplicaSet) and action.name == rs.name:
                    self.actions[i] = self.created
        else:
            self.actions.append(ScaleReplicaSet(name=rs.name, replicas=replicas))
        revision = self.revisions.get(rs.name, rs.revision)
        self.event(c.SCALING_REPLICA_SET, c.scaling_message(rs.name, revision, old, replicas))

    def set_deadline(self, rs: ReplicaSetObservation, deadline: datetime | None) -> None:
        if self.frozen or self.deadlines.get(rs.name) == deadline:
            return
        self.deadlines[rs.name] = deadline
        self.actions.append(SetScaleDownDeadline(name=rs.name, deadline=deadline))

    def point_service(self, service: str | None, pod_hash: str | None) -> None:
        if not service or not pod_hash:
            return
        if self.observed.service_selectors.get(service) == pod_hash:
            return
        self.actions.append(SetServiceSelector(service=service, pod_hash=pod_hash))

    def add_pause(self, reason: str) -> None:
        if self.pause_condition(reason) is None:
            self.pause_conditions.append(PauseCondition(reason=reason, start_time=self.now))
            self.status_event(c.ROLLOUT_PAUSED, f"Rollout is paused ({reason})")
        self.controller_pause = True

    def remove_pause(self, reason: str) -> None:
        self.pause_conditions = [p for p in self.pause_conditions if p.reason != reason]
        if not self.pause_conditions:
            self.controller_pause = False

    def start_abort(self, cause: str = "") -> None:
        """Abort the update in flight: what `status.abort=true` does, plus the cause for the message."""
        if self.fully_promoted:
            return
        if cause:
            self.abort_cause = cause
        if self.abort and self.aborted_at is not None:
            return
        self.abort = True
        self.aborted_at = self.now
        self.aborted_now = True
        self.pause_conditions = []
        self.controller_pause = False
        self.promote_full = False
        self.current_step_index = 0
        self.check_point = False
        message = c.aborted_message(self.revision, self.abort_cause or "")
        self.status_event(c.ROLLOUT_ABORTED, message, "Warning")

    def others_by_age(self) -> list[ReplicaSetObservation]:
        return sorted(self.others, key=lambda rs: (self.revisions.get(rs.name, rs.revision), rs.name))

    def in_future(self, when: datetime | None) -> bool:
        return when is not None and when > self.now

    def after(self, seconds: float) -> datetime:
        return self.now + timedelta(seconds=seconds)
