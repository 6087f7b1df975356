"""The Rollout kind (argoproj.io/v1alpha1): spec with Argo's defaults, and status."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from rollouts.spec.base import LooseModel, Model
from rollouts.spec.intorstr import IntOrStr
from rollouts.spec.meta import LabelSelector, ObjectMeta
from rollouts.spec.pod import PodTemplateSpec

# Argo's defaults (utils/defaults): used where a field is unset.
DEFAULT_REPLICAS = 1
DEFAULT_REVISION_HISTORY_LIMIT = 10
DEFAULT_PROGRESS_DEADLINE_SECONDS = 600
DEFAULT_MAX_SURGE = "25%"
DEFAULT_MAX_UNAVAILABLE = "25%"
DEFAULT_SCALE_DOWN_DELAY_SECONDS = 30
DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS = 30
DEFAULT_MAX_TRAFFIC_WEIGHT = 100
DEFAULT_ANALYSIS_RUN_HISTORY = 5


# --- analysis references (shared by canary steps, background analysis and blue/green) -------------


class FieldRef(Model):
    field_path: str


class ArgValueFrom(Model):
    pod_template_hash_value: Literal["Stable", "Latest"] | None = None
    field_ref: FieldRef | None = None


class AnalysisRunArgument(Model):
    name: str
    value: str | None = None
    value_from: ArgValueFrom | None = None


class AnalysisTemplateRef(Model):
    template_name: str
    cluster_scope: bool | None = None


class DryRun(Model):
    metric_name: str


class MeasurementRetention(Model):
    metric_name: str
    limit: int


class AnalysisRunMetadata(Model):
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class RolloutAnalysis(Model):
    templates: list[AnalysisTemplateRef] = Field(default_factory=list)
    args: list[AnalysisRunArgument] | None = None
    dry_run: list[DryRun] | None = None
    measurement_retention: list[MeasurementRetention] | None = None
    analysis_run_metadata: AnalysisRunMetadata | None = None


class RolloutAnalysisBackground(RolloutAnalysis):
    starting_step: int | None = None


# --- canary steps ----------------------------------------------------------------------------------


class RolloutPause(Model):
    duration: IntOrStr | None = None


class SetCanaryScale(Model):
    weight: int | None = None
    replicas: int | None = None
    match_traffic_weight: bool | None = None


class StringMatch(Model):
    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None


class HeaderRoutingMatch(Model):
    header_name: str
    header_value: StringMatch | None = None


class SetHeaderRoute(Model):
    name: str
    match: list[HeaderRoutingMatch] | None = None


class RouteMatch(Model):
    method: StringMatch | None = None
    path: StringMatch | None = None
    headers: dict[str, StringMatch] | None = None


class SetMirrorRoute(Model):
    name: str
    match: list[RouteMatch] | None = None
    percentage: int | None = None


class RolloutExperimentTemplate(Model):
    name: str
    spec_ref: str
    replicas: int | None = None
    metadata: dict[str, Any] | None = None
    selector: LabelSelector | None = None
    weight: int | None = None
    service: dict[str, Any] | None = None


class RolloutExperimentStepAnalysisTemplateRef(Model):
    name: str
    template_name: str
    cluster_scope: bool | None = None
    args: list[AnalysisRunArgument] | None = None
    required_for_completion: bool | None = None


class RolloutExperimentStep(Model):
    templates: list[RolloutExperimentTemplate] = Field(default_factory=list)
    duration: IntOrStr | None = None
    analyses: list[RolloutExperimentStepAnalysisTemplateRef] | None = None
    dry_run: list[DryRun] | None = None
    analysis_run_metadata: AnalysisRunMetadata | None = None


class PluginStep(Model):
    name: str
    config: Any = None


class CanaryStep(Model):
    set_weight: int | None = None
    pause: RolloutPause | None = None
    analysis: RolloutAnalysis | None = None
    experiment: RolloutExperimentStep | None = None
    set_canary_scale: SetCanaryScale | None = None
    set_header_route: SetHeaderRoute | None = None
    set_mirror_route: SetMirrorRoute | None = None
    plugin: PluginStep | None = None

    def kind(self) -> str:
        """The one key this step sets (validation guarantees there is exactly one)."""
        for name, value in self:
            if value is not None:
                return name
        return ""


# --- traffic routing -------------------------------------------------------------------------------


class NginxTrafficRouting(Model):
    stable_ingress: str | None = None
    stable_ingresses: list[str] | None = None
    annotation_prefix: str | None = None
    additional_ingress_annotations: dict[str, str] | None = None
    canary_ingress_annotations: dict[str, str] | None = None


class ManagedRoute(Model):
    name: str


class TrafficRouting(Model):
    nginx: NginxTrafficRouting | None = None
    # Other routers parse (so Argo manifests load) but only NGINX is driven; lint warns about the rest.
    istio: dict[str, Any] | None = None
    alb: dict[str, Any] | None = None
    smi: dict[str, Any] | None = None
    ambassador: dict[str, Any] | None = None
    app_mesh: dict[str, Any] | None = None
    traefik: dict[str, Any] | None = None
    apisix: dict[str, Any] | None = None
    plugins: dict[str, Any] | None = None
    managed_routes: list[ManagedRoute] | None = None
    max_traffic_weight: int | None = None


# --- strategies ------------------------------------------------------------------------------------


class PodMetadata(Model):
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class ReplicaProgressThreshold(Model):
    type: Literal["Percent", "Pods"]
    value: int


class PingPong(Model):
    ping_service: str
    pong_service: str


class CanaryStrategy(Model):
    canary_service: str | None = None
    stable_service: str | None = None
    ping_pong: PingPong | None = None
    steps: list[CanaryStep] | None = None
    traffic_routing: TrafficRouting | None = None
    max_unavailable: IntOrStr | None = None
    max_surge: IntOrStr | None = None
    analysis: RolloutAnalysisBackground | None = None
    anti_affinity: dict[str, Any] | None = None
    canary_metadata: PodMetadata | None = None
    stable_metadata: PodMetadata | None = None
    scale_down_delay_seconds: int | None = None
    scale_down_delay_revision_limit: int | None = None
    abort_scale_down_delay_seconds: int | None = None
    dynamic_stable_scale: bool | None = None
    min_pods_per_replica_set: int | None = None
    replica_progress_threshold: ReplicaProgressThreshold | None = None


class BlueGreenStrategy(Model):
    active_service: str = ""
    preview_service: str | None = None
    preview_replica_count: int | None = None
    auto_promotion_enabled: bool | None = None
    auto_promotion_seconds: int | None = None
    max_unavailable: IntOrStr | None = None
    scale_down_delay_seconds: int | None = None
    scale_down_delay_revision_limit: int | None = None
    abort_scale_down_delay_seconds: int | None = None
    pre_promotion_analysis: RolloutAnalysis | None = None
    post_promotion_analysis: RolloutAnalysis | None = None
    anti_affinity: dict[str, Any] | None = None
    preview_metadata: PodMetadata | None = None
    active_metadata: PodMetadata | None = None


class RolloutStrategy(Model):
    canary: CanaryStrategy | None = None
    blue_green: BlueGreenStrategy | None = None


class WorkloadRef(Model):
    api_version: str | None = None
    kind: str | None = None
    name: str | None = None
    scale_down: str | None = None


class RollbackWindow(Model):
    revisions: int | None = None


class AnalysisRunStrategy(Model):
    successful_run_history_limit: int | None = None
    unsuccessful_run_history_limit: int | None = None


class RolloutSpec(Model):
    replicas: int | None = None
    selector: LabelSelector | None = None
    template: PodTemplateSpec | None = None
    workload_ref: WorkloadRef | None = None
    min_ready_seconds: int | None = None
    revision_history_limit: int | None = None
    paused: bool | None = None
    progress_deadline_seconds: int | None = None
    progress_deadline_abort: bool | None = None
    restart_at: datetime | None = None
    rollback_window: RollbackWindow | None = None
    analysis: AnalysisRunStrategy | None = None
    strategy: RolloutStrategy = Field(default_factory=RolloutStrategy)


# --- status ----------------------------------------------------------------------------------------


class PauseCondition(LooseModel):
    reason: str
    start_time: datetime


class RolloutCondition(LooseModel):
    type: str
    status: str
    reason: str = ""
    message: str = ""
    last_update_time: datetime | None = None
    last_transition_time: datetime | None = None


class RolloutAnalysisRunStatus(LooseModel):
    name: str
    status: str = ""
    message: str = ""


class WeightDestination(LooseModel):
    weight: int = 0
    service_name: str = ""
    pod_template_hash: str = ""


class TrafficWeights(LooseModel):
    canary: WeightDestination = Field(default_factory=WeightDestination)
    stable: WeightDestination = Field(default_factory=WeightDestination)
    additional: list[WeightDestination] | None = None
    verified: bool | None = None


class CanaryStatus(LooseModel):
    current_step_analysis_run_status: RolloutAnalysisRunStatus | None = None
    current_background_analysis_run_status: RolloutAnalysisRunStatus | None = None
    current_experiment: str | None = None
    weights: TrafficWeights | None = None
    stable_ping_pong: str | None = None


class BlueGreenStatus(LooseModel):
    preview_selector: str | None = None
    active_selector: str | None = None
    scale_up_preview_check_point: bool | None = None
    pre_promotion_analysis_run_status: RolloutAnalysisRunStatus | None = None
    post_promotion_analysis_run_status: RolloutAnalysisRunStatus | None = None


class RolloutStatus(LooseModel):
    abort: bool | None = None
    pause_conditions: list[PauseCondition] | None = None
    controller_pause: bool | None = None
    aborted_at: datetime | None = None
    current_pod_hash: str | None = None
    current_step_hash: str | None = None
    replicas: int | None = None
    updated_replicas: int | None = None
    ready_replicas: int | None = None
    available_replicas: int | None = None
    hpa_replicas: int | None = Field(default=None, alias="HPAReplicas")
    selector: str | None = None
    current_step_index: int | None = None
    collision_count: int | None = None
    observed_generation: str | None = None
    conditions: list[RolloutCondition] | None = None
    canary: CanaryStatus | None = None
    blue_green: BlueGreenStatus | None = None
    phase: str | None = None
    message: str | None = None
    stable_rs: str | None = Field(default=None, alias="stableRS")
    restarted_at: datetime | None = None
    promote_full: bool | None = None
    workload_observed_generation: str | None = None


class Rollout(Model):
    api_version: Literal["argoproj.io/v1alpha1"] = "argoproj.io/v1alpha1"
    kind: Literal["Rollout"] = "Rollout"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: RolloutSpec = Field(default_factory=RolloutSpec)
    status: RolloutStatus | None = None

    @property
    def name(self) -> str:
        return self.metadata.name or ""

    @property
    def namespace(self) -> str:
        return self.metadata.namespace or "default"
