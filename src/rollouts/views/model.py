"""The view model of a rollout as Argo's RolloutInfo shows it: frozen dataclasses (cheap to import on the CLI's
fast path) that turn into JSON-ready dicts with camelCase keys via `to_dict()`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {_camel(f.name): _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


class _ToDict:
    def to_dict(self) -> dict[str, Any]:
        """The JSON form (camelCase keys, lists for tuples)."""
        result = _plain(self)
        assert isinstance(result, dict)
        return result


@dataclass(frozen=True)
class PodInfo(_ToDict):
    name: str
    status: str  # Running, Pending, CrashLoopBackOff, Terminating ...
    icon: str
    ready: str  # "1/1"
    restarts: int
    age: str
    created: str | None
    port: int | None = None


@dataclass(frozen=True)
class MeasurementInfo(_ToDict):
    phase: str
    value: str | None
    message: str | None
    started_at: str | None
    finished_at: str | None


@dataclass(frozen=True)
class MetricInfo(_ToDict):
    name: str
    phase: str
    icon: str
    successful: int
    failed: int
    inconclusive: int
    error: int
    message: str | None
    measurements: tuple[MeasurementInfo, ...] = ()


@dataclass(frozen=True)
class AnalysisRunInfo(_ToDict):
    name: str
    phase: str
    icon: str
    revision: int
    kind: str  # Step, Background, PrePromotion, PostPromotion ("" when unknown)
    successful: int
    failed: int
    inconclusive: int
    error: int
    message: str | None
    age: str
    created: str | None
    metrics: tuple[MetricInfo, ...] = ()


@dataclass(frozen=True)
class ReplicaSetInfo(_ToDict):
    name: str
    status: str  # Healthy, Progressing, ScaledDown, Degraded
    icon: str
    revision: int
    pod_hash: str
    stable: bool
    canary: bool
    active: bool
    preview: bool
    replicas: int
    available: int
    scale_down_deadline: str | None
    images: tuple[str, ...]
    age: str
    created: str | None
    pods: tuple[PodInfo, ...] = ()


@dataclass(frozen=True)
class RevisionInfo(_ToDict):
    revision: int
    replica_sets: tuple[ReplicaSetInfo, ...] = ()
    analysis_runs: tuple[AnalysisRunInfo, ...] = ()


@dataclass(frozen=True)
class ImageInfo(_ToDict):
    image: str
    tags: tuple[str, ...]  # stable, canary, active, preview


@dataclass(frozen=True)
class StepInfo(_ToDict):
    index: int
    kind: str  # setWeight, pause, analysis, ...
    description: str  # "setWeight: 20", "pause: 30s", "pause", "analysis: success-rate"
    state: str  # done, current, pending


@dataclass(frozen=True)
class EventInfo(_ToDict):
    type: str
    reason: str
    message: str
    count: int
    age: str
    last_timestamp: str | None


@dataclass(frozen=True)
class RolloutInfo(_ToDict):
    name: str
    namespace: str
    status: str  # Healthy, Progressing, Paused, Degraded, Unknown
    icon: str
    message: str
    strategy: str  # Canary, BlueGreen
    step: str | None  # "1/6"; None for blue/green and canaries without steps
    set_weight: int | None
    actual_weight: int | None
    desired: int
    current: int
    updated: int
    ready: int
    available: int
    generation: int | None
    restarted_at: str | None
    age: str
    created: str | None
    images: tuple[ImageInfo, ...] = ()
    containers: tuple[dict[str, str], ...] = ()
    revisions: tuple[RevisionInfo, ...] = ()
    steps: tuple[StepInfo, ...] = ()
    events: tuple[EventInfo, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def replica_sets(self) -> tuple[ReplicaSetInfo, ...]:
        return tuple(rs for rev in self.revisions for rs in rev.replica_sets)

    @property
    def analysis_runs(self) -> tuple[AnalysisRunInfo, ...]:
        return tuple(run for rev in self.revisions for run in rev.analysis_runs)
