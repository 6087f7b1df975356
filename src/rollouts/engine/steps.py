"""Reading a canary step list: which step is current, what weight and canary scale apply at an index,
which header routes should exist, how a step is named in events, and pause durations."""

from __future__ import annotations

from collections.abc import Sequence

from rollouts.spec.duration import DurationError, parse_duration
from rollouts.spec.ranges import INT32_MAX
from rollouts.spec.rollout import CanaryStep, HeaderRoutingMatch, RolloutPause, SetCanaryScale


def current_step(steps: Sequence[CanaryStep], index: int) -> CanaryStep | None:
    if 0 <= index < len(steps):
        return steps[index]
    return None


def set_weight_at(steps: Sequence[CanaryStep], index: int, max_weight: int) -> int:
    """The weight the steps ask for at `index`: the last setWeight at or before it; the maximum once the
    steps are done (or when there are none)."""
    if index >= len(steps):
        return max_weight
    for i in range(index, -1, -1):
        weight = steps[i].set_weight
        if weight is not None:
            return weight
    return 0


def previous_set_weight(steps: Sequence[CanaryStep], index: int) -> int:
    """The weight of the last setWeight strictly before `index` (0 if none)."""
    for i in range(min(index, len(steps)) - 1, -1, -1):
        weight = steps[i].set_weight
        if weight is not None:
            return weight
    return 0


def canary_scale_at(steps: Sequence[CanaryStep], index: int) -> SetCanaryScale | None:
    """The setCanaryScale in force at `index` (the last one at or before it), None when the canary
    scale follows the weight (none yet, or the last one said matchTrafficWeight)."""
    for i in range(min(index, len(steps) - 1), -1, -1):
        scale = steps[i].set_canary_scale
        if scale is not None:
            return None if scale.match_traffic_weight else scale
    return None


def header_routes_at(steps: Sequence[CanaryStep], index: int) -> dict[str, tuple[HeaderRoutingMatch, ...]]:
    """Managed header routes that should exist once the step at `index` has run."""
    routes: dict[str, tuple[HeaderRoutingMatch, ...]] = {}
    for step in steps[: index + 1]:
        route = step.set_header_route
        if route is None:
            continue
        if route.match:
            routes[route.name] = tuple(route.match)
        else:
            routes.pop(route.name, None)
    return routes


def pause_seconds(pause: RolloutPause) -> int | None:
    """Whole seconds a pause step lasts, as Argo's `RolloutPause.DurationSeconds` (int32 seconds, the
    fraction dropped: `1500ms` is 1 s); None for an indefinite pause. An unparsable duration counts as
    indefinite (Argo reads it as -1). Validation refuses more than int32 seconds; it is capped here too."""
    if pause.duration is None:
        return None
    try:
        seconds = parse_duration(pause.duration)
    except DurationError:
        return None
    return min(int(seconds), INT32_MAX) if seconds >= 0 else None


def describe_step(step: CanaryStep) -> str:
    """How a step reads in `RolloutStepCompleted` events: Argo's `CanaryStepString`, e.g. `setWeight: 50`."""
    if step.set_weight is not None:
        return f"setWeight: {step.set_weight}"
    if step.pause is not None:
        return "pause" if step.pause.duration is None else f"pause: {step.pause.duration}"
    if step.experiment is not None:
        return "experiment"
    if step.analysis is not None:
        return "analysis"
    if step.set_canary_scale is not None:
        scale = step.set_canary_scale
        if scale.weight is not None:
            return f"setCanaryScale{{weight: {scale.weight}}}"
        if scale.match_traffic_weight:
            return "setCanaryScale{matchTrafficWeight: true}"
        if scale.replicas is not None:
            return f"setCanaryScale{{replicas: {scale.replicas}}}"
    if step.plugin is not None:
        return f"plugin: {step.plugin.name}"
    if step.set_header_route is not None:
        return f"setHeaderRoute: {step.set_header_route.name}"
    if step.set_mirror_route is not None:
        return f"setMirrorRoute: {step.set_mirror_route.name}"
    return "invalid"
