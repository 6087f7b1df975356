"""The demo's objects as plain manifests: a canary Rollout of `rollouts-demo` behind the NGINX-style ingress,
its stable/canary Services, the Ingress, and the SLO gate (an AnalysisTemplate on the built-in traffic
provider). Durations are short so that a whole demo takes about a minute."""

from __future__ import annotations

from typing import Any

NAMESPACE = "default"
ROLLOUT = "demo"
INGRESS = "demo"
CONTAINER = "demo"
TEMPLATE = "demo-slo"
STABLE_IMAGE = "rollouts-demo:blue"
GOOD_IMAGE = "rollouts-demo:yellow"
BAD_IMAGE = "rollouts-demo:bad-red"
WEIGHTS = (10, 25, 50, 75)

# The gate: a few measurements a couple of seconds apart, any failure aborts. The first one waits for the
# canary to have served some requests; a window without requests is "no data" (an error, never a pass).
SUCCESS_THRESHOLD = 0.95
LATENCY_THRESHOLD_SECONDS = 0.5
GATE_INTERVAL = "2s"
GATE_COUNT = 3
GATE_INITIAL_DELAY = "3s"
GATE_WINDOW = "10s"


def _traffic(metric: str) -> dict[str, Any]:
    config = {"service": INGRESS, "metric": metric, "version": "canary", "window": GATE_WINDOW}
    return {"plugin": {"rollouts/traffic": config}}


def analysis_template() -> dict[str, Any]:
    common = {"interval": GATE_INTERVAL, "count": GATE_COUNT, "failureLimit": 0,
              "initialDelay": GATE_INITIAL_DELAY, "consecutiveErrorLimit": 2}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": TEMPLATE, "namespace": NAMESPACE},
        "spec": {
            "metrics": [
                {"name": "success-rate", **common, "successCondition": f"result >= {SUCCESS_THRESHOLD}",
                 "provider": _traffic("success-rate")},
                {"name": "latency-p95", **common, "successCondition": f"result < {LATENCY_THRESHOLD_SECONDS}",
                 "provider": _traffic("latency-p95")},
            ]
        },
    }


def rollout(image: str = STABLE_IMAGE) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    for weight in WEIGHTS:
        steps.append({"setWeight": weight})
        steps.append({"analysis": {"templates": [{"templateName": TEMPLATE}]}})
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": ROLLOUT, "namespace": NAMESPACE},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "demo"}},
            "template": pod_template(image),
            "strategy": {
                "canary": {
                    "canaryService": "demo-canary",
                    "stableService": "demo-stable",
                    "trafficRouting": {"nginx": {"stableIngress": INGRESS}},
                    "steps": steps,
                }
            },
        },
    }


def pod_template(image: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "demo"}},
        "spec": {"containers": [{"name": CONTAINER, "image": image}]},
    }


def service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"selector": {"app": "demo"}, "ports": [{"port": 80}]},
    }


def ingress() -> dict[str, Any]:
    backend = {"service": {"name": "demo-stable", "port": {"number": 80}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": INGRESS, "namespace": NAMESPACE},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}],
        },
    }


def all_objects() -> list[dict[str, Any]]:
    """In apply order: what the Rollout references exists before it."""
    return [analysis_template(), service("demo-stable"), service("demo-canary"), ingress(), rollout()]
