"""Builders of small valid manifests for the spec tests."""

from __future__ import annotations

import copy
from typing import Any

ROLLOUT: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Rollout",
    "metadata": {"name": "app"},
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "app"}},
        "template": {
            "metadata": {"labels": {"app": "app"}},
            "spec": {"containers": [{"name": "app", "image": "app:1"}]},
        },
        "strategy": {
            "canary": {
                "canaryService": "app-canary",
                "stableService": "app-stable",
                "trafficRouting": {"nginx": {"stableIngress": "app"}},
                "steps": [
                    {"setWeight": 20},
                    {"pause": {"duration": "30s"}},
                    {"analysis": {"templates": [{"templateName": "rate"}], "args": [{"name": "svc", "value": "a"}]}},
                ],
            }
        },
    },
}

BLUE_GREEN: dict[str, Any] = {
    **copy.deepcopy(ROLLOUT),
    "spec": {
        **copy.deepcopy(ROLLOUT["spec"]),
        "strategy": {"blueGreen": {"activeService": "app-active", "previewService": "app-preview"}},
    },
}

TEMPLATE: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "AnalysisTemplate",
    "metadata": {"name": "rate"},
    "spec": {
        "args": [{"name": "svc"}],
        "metrics": [
            {
                "name": "success",
                "interval": "10s",
                "count": 3,
                "failureLimit": 1,
                "successCondition": "result[0] >= 0.95",
                "provider": {"prometheus": {"address": "http://p:9090", "query": "up{svc='{{args.svc}}'}"}},
            }
        ],
    },
}


def rollout(**changes: Any) -> dict[str, Any]:
    return apply(ROLLOUT, changes)


def blue_green(**changes: Any) -> dict[str, Any]:
    return apply(BLUE_GREEN, changes)


def template(**changes: Any) -> dict[str, Any]:
    return apply(TEMPLATE, changes)


def apply(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of `base` with dotted paths set (`spec__strategy__canary__steps=[...]`); None deletes."""
    data = copy.deepcopy(base)
    for dotted, value in changes.items():
        parts = dotted.split("__")
        target = data
        for part in parts[:-1]:
            key: Any = int(part) if part.isdigit() else part
            target = target[key]
        last: Any = int(parts[-1]) if parts[-1].isdigit() else parts[-1]
        if value is None:
            del target[last]
        else:
            target[last] = value
    return data
