"""The Experiment kind: parsed and validated so manifests that contain one load; not run."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from rollouts.spec.base import LooseModel, Model
from rollouts.spec.intorstr import IntOrStr
from rollouts.spec.meta import LabelSelector, ObjectMeta
from rollouts.spec.pod import PodTemplateSpec
from rollouts.spec.rollout import AnalysisRunMetadata, DryRun, MeasurementRetention


class TemplateSpec(Model):
    name: str
    replicas: int | None = None
    min_ready_seconds: int | None = None
    selector: LabelSelector | None = None
    template: PodTemplateSpec = Field(default_factory=PodTemplateSpec)
    service: dict[str, Any] | None = None


class ExperimentAnalysisArgument(Model):
    name: str
    value: str | None = None
    value_from: dict[str, Any] | None = None


class ExperimentAnalysisTemplateRef(Model):
    name: str
    template_name: str
    cluster_scope: bool | None = None
    args: list[ExperimentAnalysisArgument] | None = None
    required_for_completion: bool | None = None


class ExperimentSpec(Model):
    templates: list[TemplateSpec] = Field(default_factory=list)
    duration: IntOrStr | None = None
    progress_deadline_seconds: int | None = None
    terminate: bool | None = None
    analyses: list[ExperimentAnalysisTemplateRef] | None = None
    scale_down_delay_seconds: int | None = None
    dry_run: list[DryRun] | None = None
    measurement_retention: list[MeasurementRetention] | None = None
    analysis_run_metadata: AnalysisRunMetadata | None = None


class Experiment(Model):
    api_version: Literal["argoproj.io/v1alpha1"] = "argoproj.io/v1alpha1"
    kind: Literal["Experiment"] = "Experiment"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ExperimentSpec = Field(default_factory=ExperimentSpec)
    status: LooseModel | None = None
