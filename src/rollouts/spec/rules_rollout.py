"""Semantic rules for a Rollout, as Argo's controller judges a spec (reference 1.1-1.5): one strategy,
canary steps with exactly one action and values in range, traffic routing and blue/green requirements,
and references to analysis templates, Services and Ingresses found in the same input."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from rollouts.spec.analysis import AnalysisTemplate, ClusterAnalysisTemplate
from rollouts.spec.defaults import max_traffic_weight
from rollouts.spec.duration import DurationError, parse_duration
from rollouts.spec.intorstr import IntOrPercentError, IntOrStr, resolve_int_or_percent
from rollouts.spec.inventory import Inventory
from rollouts.spec.problems import FieldPath, Finding, error, warning
from rollouts.spec.ranges import INT32_MAX, int32_message, int32_overflows
from rollouts.spec.rollout import (
    BlueGreenStrategy,
    CanaryStep,
    CanaryStrategy,
    Rollout,
    RolloutAnalysis,
    TrafficRouting,
)
from rollouts.spec.rules_analysis import runs_indefinitely

STEP_KEYS = (
    "setWeight", "pause", "analysis", "experiment", "setCanaryScale", "setHeaderRoute", "setMirrorRoute", "plugin",
)
OTHER_ROUTERS = ("istio", "alb", "smi", "ambassador", "appMesh", "traefik", "apisix", "plugins")
S = ("spec", "strategy")
C = (*S, "canary")
B = (*S, "blueGreen")


def _set_keys(model: BaseModel) -> list[str]:
    """Wire names of the fields that are set."""
    fields = type(model).model_fields
    return [fields[name].alias or name for name, value in model if value is not None]


def check_rollout(rollout: Rollout, inventory: Inventory | None = None) -> list[Finding]:
    """Every rule that can be judged from this Rollout and the objects beside it."""
    inventory = inventory or Inventory()
    findings: list[Finding] = []
    spec = rollout.spec
    if spec.replicas is not None and spec.replicas < 0:
        findings.append(error(("spec", "replicas"), f"{spec.replicas} is negative (use 0 or more)"))
    for value, name in ((spec.revision_history_limit, "revisionHistoryLimit"), (spec.min_ready_seconds,
                        "minReadySeconds"), (spec.progress_deadline_seconds, "progressDeadlineSeconds")):
        if value is not None and value < 0:
            findings.append(error(("spec", name), f"{value} is negative (use 0 or more)"))
    deadline = spec.progress_deadline_seconds if spec.progress_deadline_seconds is not None else 600
    if spec.min_ready_seconds is not None and spec.min_ready_seconds >= deadline:
        findings.append(
            error(("spec", "progressDeadlineSeconds"), f"{deadline} must be greater than minReadySeconds "
                  f"({spec.min_ready_seconds})")
        )
    findings.extend(_check_template(rollout))
    for path, value in int32_overflows(spec, ("spec",)):
        findings.append(error(path, int32_message(value)))
    strategy = spec.strategy
    if strategy.canary is not None and strategy.blue_green is not None:
        findings.append(error(S, "Multiple Strategies can not be listed (set either canary or blueGreen)"))
    elif strategy.canary is None and strategy.blue_green is None:
        findings.append(error(S, "a strategy is required (set canary or blueGreen)"))
    if strategy.canary is not None:
        findings.extend(_check_canary(rollout, strategy.canary, inventory))
    if strategy.blue_green is not None:
        findings.extend(_check_blue_green(rollout, strategy.blue_green, inventory))
    return findings


def _check_template(rollout: Rollout) -> list[Finding]:
    spec = rollout.spec
    findings: list[Finding] = []
    if spec.workload_ref is not None:
        findings.append(
            warning(("spec", "workloadRef"), "parsed; workloadRef is not supported by this version (use template)")
        )
        return findings
    if spec.template is None:
        findings.append(error(("spec", "template"), "required (a pod template, unless workloadRef is set)"))
    elif not spec.template.spec.containers:
        findings.append(error(("spec", "template", "spec", "containers"), "at least one container is required"))
    if spec.selector is None:
        findings.append(error(("spec", "selector"), "required (a label selector matching the template's labels)"))
    elif not spec.selector.match_labels and not spec.selector.match_expressions:
        findings.append(error(("spec", "selector"), "an empty selector selects every pod (set matchLabels)"))
    elif spec.template is not None and not spec.selector.matches(spec.template.metadata.labels):
        labels = spec.template.metadata.labels
        findings.append(
            error(("spec", "selector"), f"does not match spec.template.metadata.labels ({_labels(labels)})")
        )
    return findings


def _labels(labels: dict[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in labels.items()) or "none set"


def _int_or_percent(value: IntOrStr | None, path: FieldPath, findings: list[Finding]) -> int | None:
    """The value against 100 replicas (so 0 and 0% compare alike); a bad value is a finding."""
    if value is None:
        return None
    try:
        resolved = resolve_int_or_percent(value, 100, round_up=True, default=0)
    except IntOrPercentError:
        findings.append(error(path, f'"{value}" is not an integer or a percentage (e.g. 1 or 25%)'))
        return None
    if resolved < 0:
        findings.append(error(path, f"{value} is negative (use 0 or more)"))
    return resolved


def _check_canary(rollout: Rollout, canary: CanaryStrategy, inventory: Inventory) -> list[Finding]:
    findings: list[Finding] = []
    surge = _int_or_percent(canary.max_surge, (*C, "maxSurge"), findings)
    unavailable = _int_or_percent(canary.max_unavailable, (*C, "maxUnavailable"), findings)
    if surge == 0 and unavailable == 0:
        findings.append(
            error((*C, "maxSurge"), "MaxSurge and MaxUnavailable both can not be zero (make one of them > 0)")
        )
    if isinstance(canary.max_unavailable, str) and unavailable is not None and unavailable > 100:
        findings.append(error((*C, "maxUnavailable"), f"{canary.max_unavailable} is more than 100%"))
    routing = canary.traffic_routing
    if routing is not None:
        findings.extend(_check_traffic_routing(rollout, canary, routing, inventory))
    else:
        for value, name in ((canary.scale_down_delay_seconds, "scaleDownDelaySeconds"),
                            (canary.dynamic_stable_scale, "dynamicStableScale")):
            if value is not None and value is not False:
                findings.append(error((*C, name), "can only be set with trafficRouting"))
        # Argo accepts these on a basic canary and ignores them: a warning, not an error.
        for value, name in ((canary.abort_scale_down_delay_seconds, "abortScaleDownDelaySeconds"),
                            (canary.min_pods_per_replica_set, "minPodsPerReplicaSet")):
            if value is not None:
                findings.append(warning((*C, name), "has no effect without trafficRouting (it is ignored)"))
    if canary.dynamic_stable_scale and canary.scale_down_delay_seconds is not None:
        findings.append(
            error((*C, "dynamicStableScale"), "cannot be combined with scaleDownDelaySeconds (remove one of them)")
        )
    for value, name in ((canary.scale_down_delay_seconds, "scaleDownDelaySeconds"),
                        (canary.abort_scale_down_delay_seconds, "abortScaleDownDelaySeconds"),
                        (canary.scale_down_delay_revision_limit, "scaleDownDelayRevisionLimit")):
        if value is not None and value < 0:
            findings.append(error((*C, name), f"{value} is negative (use 0 or more)"))
    if canary.min_pods_per_replica_set is not None and canary.min_pods_per_replica_set < 1:
        findings.append(error((*C, "minPodsPerReplicaSet"), f"{canary.min_pods_per_replica_set} must be 1 or more"))
    if canary.ping_pong is not None:
        findings.append(warning((*C, "pingPong"), "parsed; pingPong services are not supported by this version"))
    threshold = canary.replica_progress_threshold
    if threshold is not None and threshold.value <= 0:
        findings.append(error((*C, "replicaProgressThreshold", "value"), f"{threshold.value} must be > 0"))
    if threshold is not None and threshold.type == "Percent" and threshold.value > 100:
        findings.append(error((*C, "replicaProgressThreshold", "value"), f"{threshold.value} is more than 100"))
    for service, name in ((canary.canary_service, "canaryService"), (canary.stable_service, "stableService")):
        if service:
            findings.extend(_service_exists(service, (*C, name), rollout, inventory))
    steps = canary.steps or []
    for index, step in enumerate(steps):
        findings.extend(_check_step(rollout, canary, step, (*C, "steps", index), inventory))
    background = canary.analysis
    if background is not None:
        start = background.starting_step
        if start is not None and (start < 0 or start > len(steps)):
            findings.append(
                error((*C, "analysis", "startingStep"), f"{start} is not between 0 and {len(steps)} (the step count)")
            )
        findings.extend(_check_analysis_ref(rollout, background, (*C, "analysis"), inventory, gating=False))
    return findings


def _check_traffic_routing(
    rollout: Rollout, canary: CanaryStrategy, routing: TrafficRouting, inventory: Inventory
) -> list[Finding]:
    findings: list[Finding] = []
    tpath = (*C, "trafficRouting")
    if canary.ping_pong is None:
        for value, name in ((canary.canary_service, "canaryService"), (canary.stable_service, "stableService")):
            if not value:
                findings.append(error((*C, name), "required when trafficRouting is set (the name of a Service)"))
        if canary.canary_service and canary.canary_service == canary.stable_service:
            findings.append(
                error((*C, "stableService"), f'"{canary.stable_service}" is also the canaryService (they must differ)')
            )
    routers = [r for r in _set_keys(routing) if r not in ("managedRoutes", "maxTrafficWeight")]
    if not routers:
        findings.append(error(tpath, "no traffic router set (set nginx)"))
    for router in routers:
        if router in OTHER_ROUTERS:
            findings.append(
                warning((*tpath, router), f"parsed; {router} traffic routing is not supported here (only nginx is)")
            )
    nginx = routing.nginx
    if nginx is not None:
        npath = (*tpath, "nginx")
        if not nginx.stable_ingress and not nginx.stable_ingresses:
            findings.append(error(npath, "set stableIngress (or stableIngresses): the Ingress to split traffic on"))
        if nginx.stable_ingress and nginx.stable_ingresses:
            findings.append(error((*npath, "stableIngresses"), "set either stableIngress or stableIngresses, not both"))
        ingresses: list[tuple[str, FieldPath]] = []
        if nginx.stable_ingress:
            ingresses.append((nginx.stable_ingress, (*npath, "stableIngress")))
        ingresses += [(name, (*npath, "stableIngresses", i)) for i, name in enumerate(nginx.stable_ingresses or [])]
        for name, path in ingresses:
            missing = inventory.find("Ingress", name, rollout.metadata.namespace) is None
            if name and inventory.has_kind("Ingress") and missing:
                findings.append(warning(path, f'Ingress "{name}" is not in the input (it must exist in the cluster)'))
    if routing.max_traffic_weight is not None and routing.max_traffic_weight < 1:
        findings.append(error((*tpath, "maxTrafficWeight"), f"{routing.max_traffic_weight} must be 1 or more"))
    seen: set[str] = set()
    for index, route in enumerate(routing.managed_routes or []):
        if route.name in seen:
            findings.append(error((*tpath, "managedRoutes", index, "name"), f'"{route.name}" is listed twice'))
        seen.add(route.name)
    return findings


def _check_step(
    rollout: Rollout, canary: CanaryStrategy, step: CanaryStep, path: FieldPath, inventory: Inventory
) -> list[Finding]:
    keys = _set_keys(step)
    if not keys:
        return [
            error(path, "Step must have one of the following set: experiment, setWeight, setCanaryScale, plugin "
                  "or pause (or analysis, setHeaderRoute, setMirrorRoute)")
        ]
    if len(keys) > 1:
        return [error(path, f"a step sets exactly one action, this one sets {len(keys)}: {', '.join(keys)} "
                      "(split it into separate steps)")]
    findings: list[Finding] = []
    routing = canary.traffic_routing
    if step.set_weight is not None:
        top = max_traffic_weight(rollout)
        if not 0 <= step.set_weight <= top:
            findings.append(error((*path, "setWeight"), f"{step.set_weight} is not between 0 and {top}"))
    if step.pause is not None and step.pause.duration is not None:
        findings.extend(_check_pause(step.pause.duration, (*path, "pause", "duration")))
    if step.set_canary_scale is not None:
        scale = step.set_canary_scale
        spath = (*path, "setCanaryScale")
        if routing is None:
            findings.append(error(spath, "SetCanaryScale requires TrafficRouting to be set"))
        chosen = _set_keys(scale)
        if len(chosen) != 1:
            findings.append(error(spath, "set exactly one of replicas, weight, matchTrafficWeight"))
        if scale.weight is not None and not 0 <= scale.weight <= 100:
            findings.append(error((*spath, "weight"), f"{scale.weight} is not between 0 and 100"))
        if scale.replicas is not None and scale.replicas < 0:
            findings.append(error((*spath, "replicas"), f"{scale.replicas} is negative (use 0 or more)"))
    for route, key in ((step.set_header_route, "setHeaderRoute"), (step.set_mirror_route, "setMirrorRoute")):
        if route is None:
            continue
        managed = [r.name for r in (routing.managed_routes or [])] if routing else []
        if routing is None:
            findings.append(error((*path, key), "requires trafficRouting with managedRoutes"))
        elif route.name not in managed:
            valid = ", ".join(managed) if managed else "none are listed"
            findings.append(
                error((*path, key, "name"), f'"{route.name}" is not in trafficRouting.managedRoutes ({valid})')
            )
        if routing is not None and routing.nginx is not None:
            findings.append(warning((*path, key), f"{key} has no effect with nginx traffic routing"))
    if step.set_mirror_route is not None and step.set_mirror_route.percentage is not None:
        pct = step.set_mirror_route.percentage
        if not 0 <= pct <= 100:
            findings.append(error((*path, "setMirrorRoute", "percentage"), f"{pct} is not between 0 and 100"))
    if step.experiment is not None:
        findings.append(warning((*path, "experiment"), "parsed; experiments are not run by this version"))
    if step.plugin is not None:
        findings.append(warning((*path, "plugin"), f'parsed; step plugin "{step.plugin.name}" is not run here'))
    if step.analysis is not None:
        findings.extend(_check_analysis_ref(rollout, step.analysis, (*path, "analysis"), inventory, gating=True))
    return findings


def _check_pause(duration: IntOrStr, path: FieldPath) -> list[Finding]:
    try:
        seconds = parse_duration(duration)
    except DurationError:
        return [error(path, f'"{duration}" is not a duration (use seconds, or a form like 30s, 5m, 1h)')]
    if seconds < 0:
        return [error(path, f"{duration}: Duration needs to be greater than 0")]
    if seconds > INT32_MAX:
        return [error(path, f"{duration} is too long (at most {INT32_MAX} seconds: Argo stores it as int32 seconds)")]
    if seconds == 0:
        return [warning(path, "a zero duration does not pause (omit the step, or use pause: {} to wait for promote)")]
    return []


def _templates(
    refs: RolloutAnalysis, namespace: str | None, inventory: Inventory, path: FieldPath
) -> Iterator[tuple[FieldPath, str, str, AnalysisTemplate | ClusterAnalysisTemplate | None]]:
    """(path of the reference, kind, name, template or None) for every template referenced, nested ones
    included (a nested one is reported at the reference that brought it in)."""
    seen: set[tuple[str, str]] = set()
    pending: list[tuple[FieldPath, str, str]] = [
        (
            (*path, "templates", i),
            "ClusterAnalysisTemplate" if ref.cluster_scope else "AnalysisTemplate",
            ref.template_name,
        )
        for i, ref in enumerate(refs.templates)
    ]
    while pending:
        ref_path, kind, name = pending.pop(0)
        if (kind, name) in seen:
            continue
        seen.add((kind, name))
        found = inventory.find(kind, name, namespace)
        template = found if isinstance(found, AnalysisTemplate | ClusterAnalysisTemplate) else None
        yield ref_path, kind, name, template
        if template is not None:
            for nested in template.spec.templates or []:
                nkind = "ClusterAnalysisTemplate" if nested.cluster_scope else "AnalysisTemplate"
                pending.append((ref_path, nkind, nested.template_name))


def _check_analysis_ref(
    rollout: Rollout, analysis: RolloutAnalysis, path: FieldPath, inventory: Inventory, *, gating: bool
) -> list[Finding]:
    """Templates exist (when in the input), required args are given, and gating runs can finish."""
    findings: list[Finding] = []
    if not analysis.templates:
        findings.append(error((*path, "templates"), "at least one template is required"))
    given = {arg.name: arg.value for arg in analysis.args or []}
    literal_args = {name: value for name, value in given.items() if value is not None}
    arg_names = [a.name for a in analysis.args or []]
    for index, name in enumerate(arg_names):
        if name in arg_names[:index]:
            findings.append(error((*path, "args", index, "name"), f'argument "{name}" is given twice'))
    for ref_path, kind, name, template in _templates(analysis, rollout.metadata.namespace, inventory, path):
        name_path = (*ref_path, "templateName")
        if template is None:
            findings.append(warning(name_path, f'{kind} "{name}" is not in the input (it must exist in the cluster)'))
            continue
        label = f"{kind}/{template.metadata.name}"
        for arg in template.spec.args or []:
            if arg.value is None and arg.value_from is None and arg.name not in given:
                where = (*path, "args") if analysis.args else path
                findings.append(
                    error(where, f'argument "{arg.name}" required by {label} is not given '
                          f"(add {{name: {arg.name}, value: ...}} to args)")
                )
        if gating:
            for metric in template.spec.metrics:
                if runs_indefinitely(metric, literal_args):
                    findings.append(
                        error(ref_path, f'metric "{metric.name}" of {label} runs indefinitely. Invalid value for '
                              "count (set count, since this analysis gates the rollout)")
                    )
    return findings


def _service_exists(name: str, path: FieldPath, rollout: Rollout, inventory: Inventory) -> list[Finding]:
    """A warning when the input holds Services but not this one (an input without any Service is taken to
    be only part of the application)."""
    if inventory.has_kind("Service") and inventory.find("Service", name, rollout.metadata.namespace) is None:
        return [warning(path, f'Service "{name}" is not in the input (it must exist in the cluster)')]
    return []


def _check_blue_green(rollout: Rollout, bg: BlueGreenStrategy, inventory: Inventory) -> list[Finding]:
    findings: list[Finding] = []
    if not bg.active_service:
        findings.append(error((*B, "activeService"), "required (the Service that receives production traffic)"))
    else:
        findings.extend(_service_exists(bg.active_service, (*B, "activeService"), rollout, inventory))
    if bg.preview_service:
        if bg.preview_service == bg.active_service:
            findings.append(
                error((*B, "previewService"), f'"{bg.preview_service}" is also the activeService (they must differ)')
            )
        else:
            findings.extend(_service_exists(bg.preview_service, (*B, "previewService"), rollout, inventory))
    for value, name in ((bg.preview_replica_count, "previewReplicaCount"),
                        (bg.auto_promotion_seconds, "autoPromotionSeconds"),
                        (bg.scale_down_delay_seconds, "scaleDownDelaySeconds"),
                        (bg.abort_scale_down_delay_seconds, "abortScaleDownDelaySeconds"),
                        (bg.scale_down_delay_revision_limit, "scaleDownDelayRevisionLimit")):
        if value is not None and value < 0:
            findings.append(error((*B, name), f"{value} is negative (use 0 or more)"))
    findings_unavail: list[Finding] = []
    _int_or_percent(bg.max_unavailable, (*B, "maxUnavailable"), findings_unavail)
    findings.extend(findings_unavail)
    for analysis, name in ((bg.pre_promotion_analysis, "prePromotionAnalysis"),
                           (bg.post_promotion_analysis, "postPromotionAnalysis")):
        if analysis is not None:
            findings.extend(_check_analysis_ref(rollout, analysis, (*B, name), inventory, gating=True))
    return findings
