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
# At 10 % weight the demo's load gives the canary about 5 requests a second: 50 per window, just the
# provider's default minimum sample; ask for 20 so the first step decides.
GATE_MIN_REQUESTS = 20


# With --prometheus: the PromQL shapes of infra/rollouts/analysis-templates.yaml (service-wide success rate
# and p95 latency, the runbook's thresholds) over windows short enough for a demo. The address is replaced
# by the demo's own Prometheus (--prometheus-address); no data gives Inconclusive, as in the infra templates.
PROMETHEUS_ADDRESS = "http://prometheus.prometheus.svc:9090"
PROMQL_WINDOW = "10s"
PROMQL_SUCCESS_THRESHOLD = 0.995
PROMQL = {
    "success-rate": (
        'sum(rate(http_requests_total{{service="{{{{args.service-name}}}}",code!~"5.."}}[{w}]))'
        ' / sum(rate(http_requests_total{{service="{{{{args.service-name}}}}"}}[{w}]))'
    ),
    "latency-p95": (
        "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket"
        '{{service="{{{{args.service-name}}}}"}}[{w}])))'
    ),
}


def _has_data(op: str, threshold: float) -> str:
    return f"len(result) > 0 && !isNaN(result[0]) && result[0] {op} {threshold}"


def prometheus_template() -> dict[str, Any]:
    common = {"interval": GATE_INTERVAL, "count": GATE_COUNT, "failureLimit": 0, "inconclusiveLimit": 1,
              "initialDelay": GATE_INITIAL_DELAY}
    thresholds = {"success-rate": (">=", "<", PROMQL_SUCCESS_THRESHOLD),
                  "latency-p95": ("<=", ">", LATENCY_THRESHOLD_SECONDS)}
    metrics = []
    for name, (good, bad, threshold) in thresholds.items():
        query = PROMQL[name].format(w=PROMQL_WINDOW)
        metrics.append({"name": name, **common, "successCondition": _has_data(good, threshold),
                        "failureCondition": _has_data(bad, threshold),
                        "provider": {"prometheus": {"address": PROMETHEUS_ADDRESS, "query": query}}})
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": TEMPLATE, "namespace": NAMESPACE},
        "spec": {"args": [{"name": "service-name"}], "metrics": metrics},
    }


def _traffic(metric: str) -> dict[str, Any]:
    config = {"service": INGRESS, "metric": metric, "version": "canary", "window": GATE_WINDOW,
              "minRequests": GATE_MIN_REQUESTS}
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


def rollout(image: str = STABLE_IMAGE, *, prometheus: bool = False) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    analysis: dict[str, Any] = {"templates": [{"templateName": TEMPLATE}]}
    if prometheus:
        analysis["args"] = [{"name": "service-name", "value": INGRESS}]  # the proxy's `service` label
    for weight in WEIGHTS:
        steps.append({"setWeight": weight})
        steps.append({"analysis": analysis})
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


def all_objects(*, prometheus: bool = False) -> list[dict[str, Any]]:
    """In apply order: what the Rollout references exists before it."""
    template = prometheus_template() if prometheus else analysis_template()
    return [template, service("demo-stable"), service("demo-canary"), ingress(), rollout(prometheus=prometheus)]
