"""Building an AnalysisRun from a rollout's analysis stanza and its (already flattened) templates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from rollouts.analysis.args import (
    ArgsError,
    flatten_template_args,
    merge_args,
    resolve_field_refs,
    rollout_argument_values,
)
from rollouts.analysis.messages import SPEC_INVALID_PREFIX, UNRESOLVED_ARGS_PREFIX
from rollouts.spec.analysis import (
    AnalysisRun,
    AnalysisRunSpec,
    AnalysisRunStatus,
    AnalysisTemplate,
    Argument,
    ClusterAnalysisTemplate,
    Metric,
)
from rollouts.spec.meta import ObjectMeta, OwnerReference
from rollouts.spec.rollout import DryRun, MeasurementRetention, Rollout, RolloutAnalysis


class SpecError(ValueError):
    """Templates that cannot be merged into one run."""


def _unique_templates(
    templates: Sequence[AnalysisTemplate | ClusterAnalysisTemplate],
) -> list[AnalysisTemplate | ClusterAnalysisTemplate]:
    # A template reachable through several references contributes once.
    seen: set[tuple[str, str | None]] = set()
    out: list[AnalysisTemplate | ClusterAnalysisTemplate] = []
    for template in templates:
        key = (template.kind, template.metadata.name)
        if template.metadata.name is not None and key in seen:
            continue
        seen.add(key)
        out.append(template)
    return out


def _flatten_metrics(templates: Sequence[AnalysisTemplate | ClusterAnalysisTemplate]) -> list[Metric]:
    metrics: list[Metric] = []
    names: set[str] = set()
    for template in templates:
        for metric in template.spec.metrics:
            if metric.name in names:
                raise SpecError(f"two metrics have the same name '{metric.name}'")
            names.add(metric.name)
            metrics.append(metric)
    return metrics


def _first_metric_of_each_name(templates: Sequence[AnalysisTemplate | ClusterAnalysisTemplate]) -> list[Metric]:
    by_name: dict[str, Metric] = {}
    for template in templates:
        for metric in template.spec.metrics:
            by_name.setdefault(metric.name, metric)
    return list(by_name.values())


def _no_duplicate_rules(rules: Sequence[DryRun | MeasurementRetention], what: str) -> None:
    names: set[str] = set()
    for rule in rules:
        if rule.metric_name in names:
            raise SpecError(f"two {what} metric rules have the same name '{rule.metric_name}'")
        names.add(rule.metric_name)


def _merge_rules(
    analysis: RolloutAnalysis, templates: Sequence[AnalysisTemplate | ClusterAnalysisTemplate]
) -> tuple[list[DryRun], list[MeasurementRetention]]:
    template_dry = [r for t in templates for r in t.spec.dry_run or []]
    template_keep = [r for t in templates for r in t.spec.measurement_retention or []]
    _no_duplicate_rules(template_dry, "Dry-Run")
    _no_duplicate_rules(template_keep, "Measurement Retention")
    dry_run = [*(analysis.dry_run or []), *template_dry]
    retention = [*(analysis.measurement_retention or []), *template_keep]
    _no_duplicate_rules(dry_run, "Dry-Run")
    _no_duplicate_rules(retention, "Measurement Retention")
    return dry_run, retention


def _metadata(
    rollout: Rollout, name: str, analysis: RolloutAnalysis, labels: Mapping[str, str], now: datetime
) -> ObjectMeta:
    run_labels = dict(labels)
    annotations: dict[str, str] = {}
    if analysis.analysis_run_metadata is not None:
        run_labels.update(analysis.analysis_run_metadata.labels)
        annotations.update(analysis.analysis_run_metadata.annotations)
    owner = OwnerReference(
        api_version=rollout.api_version,
        kind=rollout.kind,
        name=rollout.name,
        uid=rollout.metadata.uid or "",
        controller=True,
        blockOwnerDeletion=True,  # type: ignore[call-arg]  # kept as an extra field
    )
    return ObjectMeta(
        name=name,
        namespace=rollout.namespace,
        labels=run_labels,
        annotations=annotations,
        creation_timestamp=now,
        owner_references=[owner],
    )


def build_analysis_run(
    *,
    rollout: Rollout,
    name: str,
    templates: Sequence[AnalysisTemplate | ClusterAnalysisTemplate],
    analysis: RolloutAnalysis,
    stable_hash: str | None,
    latest_hash: str,
    labels: Mapping[str, str],
    now: datetime,
) -> AnalysisRun:
    """One AnalysisRun merging the templates' metrics and arguments with the rollout's analysis stanza.

    A merge or argument problem does not raise: the run is returned already in phase Error with the
    reason as its message, so it shows up (and blocks the rollout) like any failed analysis.
    """
    unique = _unique_templates(templates)
    metadata = _metadata(rollout, name, analysis, labels, now)
    metrics: list[Metric] = []
    args: list[Argument] = []
    dry_run: list[DryRun] = []
    retention: list[MeasurementRetention] = []
    error: str | None = None
    try:
        metrics = _flatten_metrics(unique)
        dry_run, retention = _merge_rules(analysis, unique)
        template_args = flatten_template_args(t.spec.args for t in unique)
        incoming = rollout_argument_values(
            analysis.args, rollout, stable_hash=stable_hash, latest_hash=latest_hash
        )
        args = resolve_field_refs(merge_args(incoming, template_args), rollout)
    except SpecError as exc:
        error = SPEC_INVALID_PREFIX + str(exc)
        # The run must still be a valid object to be stored (an API server refuses a run without metrics):
        # it keeps the first metric of each name, and its Error phase says why it cannot be measured.
        metrics = metrics or _first_metric_of_each_name(unique)
    except ArgsError as exc:
        error = UNRESOLVED_ARGS_PREFIX + str(exc)
    spec = AnalysisRunSpec(
        metrics=metrics,
        args=args or None,
        dry_run=dry_run or None,
        measurement_retention=retention or None,
    )
    status = None
    if error is not None:
        status = AnalysisRunStatus(phase="Error", message=error, started_at=now, completed_at=now)
    return AnalysisRun(metadata=metadata, spec=spec, status=status)
