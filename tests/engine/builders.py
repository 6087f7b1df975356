"""Small manifests and worlds for the engine tests."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from rollouts.engine.world import AnalysisOutcome, World, always_successful
from rollouts.spec.analysis import AnalysisTemplate
from rollouts.spec.rollout import Rollout

T0 = datetime(2026, 1, 1, tzinfo=UTC)

TEMPLATE = AnalysisTemplate.model_validate(
    {
        "metadata": {"name": "success-rate"},
        "spec": {
            "metrics": [
                {
                    "name": "success-rate",
                    "successCondition": "result[0] >= 0.95",
                    "provider": {"prometheus": {"address": "http://prom:9090", "query": "up"}},
                }
            ]
        },
    }
)


def rollout(
    *,
    replicas: int = 1,
    steps: list[dict[str, Any]] | None = None,
    canary: dict[str, Any] | None = None,
    blue_green: dict[str, Any] | None = None,
    image: str = "app:1",
    **spec: Any,
) -> Rollout:
    strategy: dict[str, Any]
    if blue_green is not None:
        strategy = {"blueGreen": blue_green}
    else:
        body = copy.deepcopy(canary or {})
        if steps is not None:
            body["steps"] = steps
        strategy = {"canary": body}
    return Rollout.model_validate(
        {
            "metadata": {"name": "app", "namespace": "default", "generation": 1},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "app"}},
                "template": {
                    "metadata": {"labels": {"app": "app"}},
                    "spec": {"containers": [{"name": "app", "image": image}]},
                },
                "strategy": strategy,
                **spec,
            },
        }
    )


def traffic(**extra: Any) -> dict[str, Any]:
    return {
        "canaryService": "app-canary",
        "stableService": "app-stable",
        "trafficRouting": {"nginx": {"stableIngress": "app"}, "managedRoutes": [{"name": "header"}]},
        **extra,
    }


def with_image(ro: Rollout, image: str) -> Rollout:
    body = ro.model_dump(by_alias=True, exclude_none=True, mode="json")
    body["spec"]["template"]["spec"]["containers"][0]["image"] = image
    return Rollout.model_validate(body)


def world(
    ro: Rollout,
    *,
    ready_after: float = 5.0,
    outcome: AnalysisOutcome = always_successful,
    templates: tuple[AnalysisTemplate, ...] = (TEMPLATE,),
) -> World:
    return World(ro, now=T0, templates=templates, ready_after=ready_after, analysis_outcome=outcome)


def deployed(ro: Rollout, **kwargs: Any) -> World:
    """A world where the first revision is fully rolled out and Healthy."""
    w = world(ro, **kwargs)
    assert w.run(until=lambda x: x.phase == "Healthy", max_seconds=600)
    return w


def update(w: World, image: str = "app:2") -> None:
    w.edit(lambda r: with_image(r, image))
