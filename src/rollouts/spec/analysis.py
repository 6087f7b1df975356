"""AnalysisTemplate, ClusterAnalysisTemplate and AnalysisRun (argoproj.io/v1alpha1): metrics, providers,
arguments, and the run's status."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from rollouts.spec.base import LooseModel, Model
from rollouts.spec.intorstr import IntOrStr
from rollouts.spec.meta import ObjectMeta
from rollouts.spec.pod import JobSpec
from rollouts.spec.rollout import DryRun, MeasurementRetention

DEFAULT_CONSECUTIVE_ERROR_LIMIT = 4
DEFAULT_MEASUREMENTS_RETAINED = 10
ERROR_RETRY_SECONDS = 10.0

# The phases an analysis run, a metric or a measurement can be in.
AnalysisPhase = Literal["", "Pending", "Running", "Successful", "Failed", "Error", "Inconclusive"]


# --- arguments -------------------------------------------------------------------------------------


class SecretKeyRef(Model):
    name: str
    key: str


class FieldRef(Model):
    field_path: str


class ValueFrom(Model):
    secret_key_ref: SecretKeyRef | None = None
    field_ref: FieldRef | None = None


class Argument(Model):
    name: str
    value: str | None = None
    value_from: ValueFrom | None = None


# --- providers -------------------------------------------------------------------------------------


class KeyValue(Model):
    key: str
    value: str


class BasicAuth(Model):
    username: str
    password: str


class OAuth2(Model):
    token_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    scopes: list[str] | None = None


class Sigv4(Model):
    region: str | None = None
    profile: str | None = None
    role_arn: str | None = None


class Authentication(Model):
    sigv4: Sigv4 | None = None
    oauth2: OAuth2 | None = None
    basic_auth: BasicAuth | None = None


class RangeQuery(Model):
    start: str | None = None
    end: str | None = None
    step: str | None = None


class PrometheusProvider(Model):
    address: str | None = None
    query: str = ""
    timeout: int | None = None
    insecure: bool | None = None
    headers: list[KeyValue] | None = None
    authentication: Authentication | None = None
    range_query: RangeQuery | None = None


class WebProvider(Model):
    url: str = ""
    method: Literal["GET", "POST", "PUT"] | None = None
    headers: list[KeyValue] | None = None
    body: str | None = None
    json_body: Any = None
    timeout_seconds: int | None = None
    json_path: str | None = None
    insecure: bool | None = None
    authentication: Authentication | None = None


class JobMetadata(Model):
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class JobProvider(Model):
    metadata: JobMetadata | None = None
    spec: JobSpec


class MetricProvider(Model):
    prometheus: PrometheusProvider | None = None
    web: WebProvider | None = None
    job: JobProvider | None = None
    # `plugin: {<name>: config}`: our built-in providers (rollouts/traffic, rollouts/sequential) use this
    # syntax so manifests stay valid for Argo's schema.
    plugin: dict[str, Any] | None = None
    # Providers Argo has and we parse but cannot measure here; lint says so.
    datadog: dict[str, Any] | None = None
    new_relic: dict[str, Any] | None = None
    wavefront: dict[str, Any] | None = None
    kayenta: dict[str, Any] | None = None
    cloud_watch: dict[str, Any] | None = None
    graphite: dict[str, Any] | None = None
    influxdb: dict[str, Any] | None = None
    skywalking: dict[str, Any] | None = None

    def kinds(self) -> list[str]:
        """The provider keys that are set (validation requires exactly one)."""
        return [name for name, value in self if value is not None]


# Provider key -> the type label Argo's metrics use (analysis_run_metric_type).
PROVIDER_TYPE_LABELS = {
    "prometheus": "Prometheus",
    "web": "Web",
    "job": "Job",
    "datadog": "Datadog",
    "new_relic": "NewRelic",
    "wavefront": "Wavefront",
    "kayenta": "Kayenta",
    "cloud_watch": "CloudWatch",
    "graphite": "Graphite",
    "influxdb": "Influxdb",
    "skywalking": "skywalking",
    "plugin": "RPCPlugin",
}


class Metric(Model):
    name: str
    provider: MetricProvider
    interval: str | None = None
    initial_delay: str | None = None
    count: IntOrStr | None = None
    success_condition: str | None = None
    failure_condition: str | None = None
    failure_limit: IntOrStr | None = None
    inconclusive_limit: IntOrStr | None = None
    consecutive_error_limit: IntOrStr | None = None
    consecutive_success_limit: IntOrStr | None = None


class TemplateRef(Model):
    template_name: str
    cluster_scope: bool | None = None


class AnalysisTemplateSpec(Model):
    metrics: list[Metric] = Field(default_factory=list)
    args: list[Argument] | None = None
    dry_run: list[DryRun] | None = None
    measurement_retention: list[MeasurementRetention] | None = None
    templates: list[TemplateRef] | None = None


class AnalysisTemplate(Model):
    api_version: Literal["argoproj.io/v1alpha1"] = "argoproj.io/v1alpha1"
    kind: Literal["AnalysisTemplate"] = "AnalysisTemplate"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: AnalysisTemplateSpec = Field(default_factory=AnalysisTemplateSpec)


class ClusterAnalysisTemplate(Model):
    api_version: Literal["argoproj.io/v1alpha1"] = "argoproj.io/v1alpha1"
    kind: Literal["ClusterAnalysisTemplate"] = "ClusterAnalysisTemplate"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: AnalysisTemplateSpec = Field(default_factory=AnalysisTemplateSpec)


# --- runs ------------------------------------------------------------------------------------------


class TTLStrategy(Model):
    seconds_after_completion: int | None = None
    seconds_after_failure: int | None = None
    seconds_after_success: int | None = None


class AnalysisRunSpec(Model):
    metrics: list[Metric] = Field(default_factory=list)
    args: list[Argument] | None = None
    terminate: bool | None = None
    dry_run: list[DryRun] | None = None
    measurement_retention: list[MeasurementRetention] | None = None
    ttl_strategy: TTLStrategy | None = None


class Measurement(LooseModel):
    phase: AnalysisPhase
    message: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    value: str | None = None
    metadata: dict[str, str] | None = None
    resume_at: datetime | None = None


class MetricResult(LooseModel):
    name: str
    phase: AnalysisPhase = ""
    measurements: list[Measurement] = Field(default_factory=list)
    message: str | None = None
    count: int = 0
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    error: int = 0
    consecutive_error: int = 0
    consecutive_success: int = 0
    dry_run: bool | None = None
    metadata: dict[str, str] | None = None


class RunSummary(LooseModel):
    count: int = 0
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    error: int = 0


class AnalysisRunStatus(LooseModel):
    phase: AnalysisPhase = ""
    message: str | None = None
    metric_results: list[MetricResult] = Field(default_factory=list)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    run_summary: RunSummary | None = None
    dry_run_summary: RunSummary | None = None


class AnalysisRun(Model):
    api_version: Literal["argoproj.io/v1alpha1"] = "argoproj.io/v1alpha1"
    kind: Literal["AnalysisRun"] = "AnalysisRun"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: AnalysisRunSpec = Field(default_factory=AnalysisRunSpec)
    status: AnalysisRunStatus | None = None
