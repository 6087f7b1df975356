"""The engine's vocabulary: what the shell observed, the actions the engine asks for, and its Decision.

All values are frozen, keyword-only dataclasses so a Decision can be compared, hashed into logs and
replayed. Every action has a `describe()` one-liner for logs and the `simulate` command.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from rollouts.spec.analysis import AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate
from rollouts.spec.pod import PodTemplateSpec
from rollouts.spec.rollout import HeaderRoutingMatch, RolloutStatus

# --- observations ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ReplicaSetObservation:
    """One ReplicaSet owned by the rollout. `replicas` is the desired count (spec.replicas), `created`
    the pods that exist (status.replicas; None: not observed, the observed pods are counted instead)."""

    name: str
    pod_hash: str
    revision: int
    template: PodTemplateSpec
    replicas: int
    ready: int = 0
    available: int = 0
    created: int | None = None
    created_at: datetime | None = None
    scale_down_deadline: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class PodObservation:
    name: str
    pod_hash: str
    created_at: datetime
    ready: bool = False


@dataclass(frozen=True, kw_only=True)
class Observed:
    """Everything the engine may look at besides the Rollout itself."""

    replica_sets: tuple[ReplicaSetObservation, ...] = ()
    pods: tuple[PodObservation, ...] = ()
    analysis_runs: tuple[AnalysisRun, ...] = ()
    analysis_templates: Mapping[str, AnalysisTemplate] = field(default_factory=dict)
    cluster_analysis_templates: Mapping[str, ClusterAnalysisTemplate] = field(default_factory=dict)
    canary_weight: int = 0
    header_routes: Mapping[str, tuple[HeaderRoutingMatch, ...]] = field(default_factory=dict)
    service_selectors: Mapping[str, str | None] = field(default_factory=dict)


# --- actions ---------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CreateReplicaSet:
    name: str
    pod_hash: str
    revision: int
    template: PodTemplateSpec
    replicas: int

    def describe(self) -> str:
        return f"create ReplicaSet {self.name} (revision {self.revision}) with {self.replicas} replicas"


@dataclass(frozen=True, kw_only=True)
class ScaleReplicaSet:
    name: str
    replicas: int

    def describe(self) -> str:
        return f"scale ReplicaSet {self.name} to {self.replicas}"


@dataclass(frozen=True, kw_only=True)
class SetReplicaSetRevision:
    name: str
    revision: int

    def describe(self) -> str:
        return f"label ReplicaSet {self.name} as revision {self.revision}"


@dataclass(frozen=True, kw_only=True)
class SetScaleDownDeadline:
    name: str
    deadline: datetime | None

    def describe(self) -> str:
        if self.deadline is None:
            return f"clear the scale-down deadline of ReplicaSet {self.name}"
        return f"scale ReplicaSet {self.name} down at {self.deadline.isoformat()}"


@dataclass(frozen=True, kw_only=True)
class DeleteReplicaSet:
    name: str

    def describe(self) -> str:
        return f"delete ReplicaSet {self.name}"


@dataclass(frozen=True, kw_only=True)
class SetServiceSelector:
    service: str
    pod_hash: str

    def describe(self) -> str:
        return f"point Service {self.service} at pods {self.pod_hash}"


@dataclass(frozen=True, kw_only=True)
class SetCanaryWeight:
    weight: int

    def describe(self) -> str:
        return f"send {self.weight} to the canary"


@dataclass(frozen=True, kw_only=True)
class SetHeaderRoute:
    name: str
    match: tuple[HeaderRoutingMatch, ...]

    def describe(self) -> str:
        parts = []
        for m in self.match:
            value = m.header_value
            shown = "" if value is None else (value.exact or value.prefix or value.regex or "")
            parts.append(f"{m.header_name}={shown}")
        return f"route requests with {', '.join(parts)} to the canary (route {self.name})"


@dataclass(frozen=True, kw_only=True)
class RemoveHeaderRoute:
    name: str

    def describe(self) -> str:
        return f"remove header route {self.name}"


@dataclass(frozen=True, kw_only=True)
class CreateAnalysisRun:
    run: AnalysisRun

    def describe(self) -> str:
        return f"start AnalysisRun {self.run.metadata.name}"


@dataclass(frozen=True, kw_only=True)
class TerminateAnalysisRun:
    name: str

    def describe(self) -> str:
        return f"terminate AnalysisRun {self.name}"


@dataclass(frozen=True, kw_only=True)
class DeleteAnalysisRun:
    name: str

    def describe(self) -> str:
        return f"delete AnalysisRun {self.name}"


@dataclass(frozen=True, kw_only=True)
class EvictPod:
    name: str

    def describe(self) -> str:
        return f"evict Pod {self.name}"


EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True, kw_only=True)
class EmitEvent:
    type: EventType
    reason: str
    message: str

    def describe(self) -> str:
        return f"event {self.type} {self.reason}: {self.message}"


Action = (
    CreateReplicaSet
    | ScaleReplicaSet
    | SetReplicaSetRevision
    | SetScaleDownDeadline
    | DeleteReplicaSet
    | SetServiceSelector
    | SetCanaryWeight
    | SetHeaderRoute
    | RemoveHeaderRoute
    | CreateAnalysisRun
    | TerminateAnalysisRun
    | DeleteAnalysisRun
    | EvictPod
    | EmitEvent
)


@dataclass(frozen=True, kw_only=True)
class Decision:
    """The new status, what to do (in order), and when to look again (seconds; None = on change only)."""

    status: RolloutStatus
    actions: tuple[Action, ...] = ()
    requeue_after: float | None = None

    @property
    def events(self) -> tuple[EmitEvent, ...]:
        return tuple(a for a in self.actions if isinstance(a, EmitEvent))

    @property
    def changes(self) -> tuple[Action, ...]:
        """The actions that touch the world (everything but events)."""
        return tuple(a for a in self.actions if not isinstance(a, EmitEvent))
