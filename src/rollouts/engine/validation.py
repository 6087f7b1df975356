"""The checks that make a Rollout `InvalidSpec` before the engine acts on it: strategy shape, step
contents, traffic-routing requirements, and analysis references (templates must exist and step/pre/post
analyses must not run forever). Messages name the field path and carry Argo's wording.

These stay apart from the lint rules in spec.rules_rollout: the lint words its findings for authors and
only warns about unsupported features and templates missing from its input, while a controller must
refuse what it cannot run, report Argo's InvalidSpec messages, and not reject specs Argo accepts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rollouts.engine.analysis import MissingTemplate, resolve_templates
from rollouts.engine.memo import MEMO_LIMIT, forget_oldest
from rollouts.engine.types import Observed
from rollouts.spec.analysis import Metric
from rollouts.spec.duration import DurationError, parse_duration
from rollouts.spec.intorstr import IntOrPercentError, resolve_int_or_percent
from rollouts.spec.ranges import INT32_MAX, dotted, int32_message, int32_overflows
from rollouts.spec.rollout import DEFAULT_MAX_TRAFFIC_WEIGHT, Rollout, RolloutAnalysis

STEP_KEYS_MESSAGE = (
    "Step must have one of the following set: experiment, setWeight, setCanaryScale, plugin or pause"
)


_memo: dict[tuple[Any, ...], tuple[tuple[object, ...], list[str]]] = {}


def validate(rollout: Rollout, observed: Observed) -> list[str]:
    """Every problem found, each as `field.path: what is wrong`; empty when the rollout can run.

    The answer depends only on the (frozen) spec and the template objects, so it is memoised by their
    identities; the memo holds references to them so an identity cannot be reused while cached."""
    templates = tuple(observed.analysis_templates.items())
    cluster = tuple(observed.cluster_analysis_templates.items())
    key = (
        id(rollout.spec),
        tuple((k, id(v)) for k, v in templates),
        tuple((k, id(v)) for k, v in cluster),
    )
    hit = _memo.get(key)
    if hit is not None and hit[0][0] is rollout.spec:
        return list(hit[1])
    errors = _validate(rollout, observed)
    if len(_memo) >= MEMO_LIMIT:
        forget_oldest(_memo)
    _memo[key] = ((rollout.spec, templates, cluster), errors)
    return list(errors)


def _validate(rollout: Rollout, observed: Observed) -> list[str]:
    spec = rollout.spec
    errors: list[str] = []
    canary, bg = spec.strategy.canary, spec.strategy.blue_green
    if canary is not None and bg is not None:
        errors.append("spec.strategy: Multiple Strategies can not be listed")
    if canary is None and bg is None:
        errors.append("spec.strategy: Rollout has missing field '.spec.strategy.canary or .spec.strategy.blueGreen'")
    if spec.template is None:
        errors.append("spec.template: a pod template is required (workloadRef is not supported by this engine)")
    if spec.replicas is not None and spec.replicas < 0:
        errors.append(f"spec.replicas: {spec.replicas} must be 0 or more")
    # Values no cluster could store would overflow the reconcile's date arithmetic: InvalidSpec instead.
    for path, value in int32_overflows(spec, ("spec",)):
        errors.append(f"{dotted(path)}: {int32_message(value)}")
    if spec.selector is not None and spec.template is not None:
        if not spec.selector.match_labels and not spec.selector.match_expressions:
            errors.append("spec.selector: empty selector is invalid for deployment")
        elif not spec.selector.matches(spec.template.metadata.labels):
            errors.append("spec.selector: Invalid value: selector does not match template labels")
    if canary is not None:
        errors += _validate_canary(rollout, observed)
    if bg is not None:
        if not bg.active_service:
            errors.append("spec.strategy.blueGreen.activeService: is required")
        if bg.preview_service and bg.preview_service == bg.active_service:
            errors.append(
                "spec.strategy.blueGreen.previewService: Preview service and Active service cannot be the same"
            )
        if bg.preview_replica_count is not None and bg.preview_replica_count < 0:
            errors.append("spec.strategy.blueGreen.previewReplicaCount: must be 0 or more")
        for field, analysis in (
            ("prePromotionAnalysis", bg.pre_promotion_analysis),
            ("postPromotionAnalysis", bg.post_promotion_analysis),
        ):
            if analysis is not None:
                errors += _validate_analysis(f"spec.strategy.blueGreen.{field}", analysis, observed, True)
    return errors


def _validate_canary(rollout: Rollout, observed: Observed) -> list[str]:
    canary = rollout.spec.strategy.canary
    assert canary is not None
    errors: list[str] = []
    routing = canary.traffic_routing
    max_weight = DEFAULT_MAX_TRAFFIC_WEIGHT
    if routing is not None:
        max_weight = routing.max_traffic_weight or DEFAULT_MAX_TRAFFIC_WEIGHT
        if not canary.canary_service or not canary.stable_service:
            errors.append(
                "spec.strategy.canary.trafficRouting: Canary service and Stable service must to be set "
                "to use Traffic Routing"
            )
    if canary.canary_service and canary.canary_service == canary.stable_service:
        errors.append(
            "spec.strategy.canary.stableService: Stable and Canary services cannot be the same"
        )
    # Argo's invalidMaxSurgeMaxUnavailable compares the written values (0 and "0%" alike), not the counts
    # they resolve to: `maxSurge: 0, maxUnavailable: 25%` is valid even when 25% of 3 rounds down to 0
    # (two resolved zeros then mean one unavailable pod).
    try:
        surge = resolve_int_or_percent(canary.max_surge, 100, round_up=True, default="25%")
        unavailable = resolve_int_or_percent(canary.max_unavailable, 100, round_up=True, default="25%")
        if surge == 0 == unavailable:
            errors.append("spec.strategy.canary.maxSurge: MaxSurge and MaxUnavailable both can not be zero")
    except IntOrPercentError as exc:
        errors.append(f"spec.strategy.canary.maxSurge: {exc}")
    if routing is None:
        if canary.scale_down_delay_seconds is not None:
            errors.append(
                "spec.strategy.canary.scaleDownDelaySeconds: Can only be used with Traffic Routing"
            )
        if canary.dynamic_stable_scale:
            errors.append("spec.strategy.canary.dynamicStableScale: Can only be used with Traffic Routing")
    if canary.dynamic_stable_scale and canary.scale_down_delay_seconds is not None:
        errors.append(
            "spec.strategy.canary.dynamicStableScale: Cannot set scaleDownDelaySeconds with dynamicStableScale"
        )
    managed = {r.name for r in (routing.managed_routes or [])} if routing is not None else set()
    for i, step in enumerate(canary.steps or []):
        path = f"spec.strategy.canary.steps[{i}]"
        keys = [name for name, value in step if value is not None]
        if len(keys) != 1:
            errors.append(f"{path}: {STEP_KEYS_MESSAGE}")
            continue
        if step.pause is not None and step.pause.duration is not None:
            seconds = _pause_seconds(step.pause.duration)
            if seconds is not None and seconds > INT32_MAX:
                errors.append(f"{path}.pause.duration: {step.pause.duration} is longer than {INT32_MAX} seconds")
        if step.set_weight is not None and not 0 <= step.set_weight <= max_weight:
            errors.append(f"{path}.setWeight: SetWeight needs to be between 0 and {max_weight}")
        if step.set_canary_scale is not None and routing is None:
            errors.append(f"{path}.setCanaryScale: SetCanaryScale requires TrafficRouting to be set")
        if step.set_header_route is not None and step.set_header_route.name not in managed:
            errors.append(
                f"{path}.setHeaderRoute.name: {step.set_header_route.name!r} is not listed in "
                "spec.strategy.canary.trafficRouting.managedRoutes"
            )
        if step.set_mirror_route is not None and step.set_mirror_route.name not in managed:
            errors.append(
                f"{path}.setMirrorRoute.name: {step.set_mirror_route.name!r} is not listed in "
                "spec.strategy.canary.trafficRouting.managedRoutes"
            )
        if step.experiment is not None:
            errors.append(f"{path}.experiment: experiment steps are not supported (use an analysis step)")
        if step.plugin is not None:
            errors.append(f"{path}.plugin: step plugins are not supported")
        if step.analysis is not None:
            errors += _validate_analysis(f"{path}.analysis", step.analysis, observed, True)
    if canary.analysis is not None:
        errors += _validate_analysis("spec.strategy.canary.analysis", canary.analysis, observed, False)
    return errors


def _pause_seconds(duration: int | str) -> float | None:
    try:
        return parse_duration(duration)
    except DurationError:
        return None


def _validate_analysis(path: str, analysis: RolloutAnalysis, observed: Observed, bounded: bool) -> list[str]:
    if not analysis.templates:
        return [f"{path}.templates: at least one template is required"]
    try:
        templates = resolve_templates(
            analysis.templates, observed.analysis_templates, observed.cluster_analysis_templates
        )
    except MissingTemplate as exc:
        return [f"{path}.templates: {exc}"]
    if not bounded:
        return []
    errors: list[str] = []
    for template in templates:
        errors += _unbounded_metrics(path, template.metadata.name or "", template.spec.metrics)
    return errors


def _unbounded_metrics(path: str, template: str, metrics: Sequence[Metric]) -> list[str]:
    """Metrics that measure on an interval with no count. Argo's rule: a negative count is not
    "indefinite" (the lint rule `runs_indefinitely` is stricter), so this check stays separate."""
    errors = []
    for metric in metrics:
        count = metric.count
        if metric.interval and (count is None or count == 0 or count == "0"):
            errors.append(
                f"{path}.templates: AnalysisTemplate {template} has metric {metric.name} which runs indefinitely. "
                f"Invalid value for count: {count if count is not None else 0}"
            )
    return errors
