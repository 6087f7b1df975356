"""Releases of the demo app on a local cluster, as plain manifests: the `shop` canary behind the `shop` Ingress
and its stable/canary Services, the `bg` blue/green behind its active/preview Services, and the analysis that
asks a Service's own port which build (`/color`) it serves.

The end-to-end tests (tests/e2e/*manifests.py) and the benches (bench/chaoslib, bench/rollback.py) release
these, each with its own steps and timings: the builders take those and return dicts, `to_yaml` makes one
multi-document file of them for `rollouts apply -f`. A Service annotated `rollouts.io/port` listens on that
local port, so an analysis URL can name it before the operator runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

STABLE_IMAGE = "rollouts-demo:blue"
PORT_ANNOTATION = "rollouts.io/port"


class _Dumper(yaml.SafeDumper):
    # A piece shared by two steps would be written as an anchor and an alias, which the API server refuses.
    def ignore_aliases(self, data: Any) -> bool:
        return True


def to_yaml(*objects: Mapping[str, Any]) -> str:
    """One document per object, in the order given (apply order: what a Rollout references comes first)."""
    return yaml.dump_all([dict(o) for o in objects], Dumper=_Dumper, sort_keys=False, explicit_start=True)


def rollout(name: str, strategy: dict[str, Any], *, replicas: int = 1, image: str = STABLE_IMAGE,
            grace: int | None = None, namespace: str | None = None) -> dict[str, Any]:
    """A Rollout of one container named like the Rollout, its pods labelled `app: <name>`; `grace` is the
    pods' terminationGracePeriodSeconds (short, so that a scaled-down revision is gone quickly)."""
    pod: dict[str, Any] = {} if grace is None else {"terminationGracePeriodSeconds": grace}
    pod["containers"] = [{"name": name, "image": image}]
    metadata = {"name": name} if namespace is None else {"name": name, "namespace": namespace}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": metadata,
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod},
            "strategy": strategy,
        },
    }


def shop_canary(steps: Sequence[Mapping[str, Any]], *, replicas: int = 1, image: str = STABLE_IMAGE, grace: int = 2,
                delay: int | None = 2, ingress_annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The `shop` canary over the NGINX-style `shop` Ingress; `delay` is both scale-down delays (None: Argo's
    defaults), `ingress_annotations` go on the canary Ingress the controller makes."""
    canary: dict[str, Any] = {"canaryService": "shop-canary", "stableService": "shop-stable"}
    if delay is not None:
        canary |= {"abortScaleDownDelaySeconds": delay, "scaleDownDelaySeconds": delay}
    nginx: dict[str, Any] = {"stableIngress": "shop"}
    if ingress_annotations:
        nginx["additionalIngressAnnotations"] = dict(ingress_annotations)
    canary |= {"trafficRouting": {"nginx": nginx}, "steps": [dict(s) for s in steps]}
    return rollout("shop", {"canary": canary}, replicas=replicas, image=image, grace=grace)


def bg_bluegreen(*, grace: int = 2, delay: int = 2, auto_promotion: bool | None = None,
                 pre: dict[str, Any] | None = None, post: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `bg` blue/green between `bg-active` and `bg-preview`; `pre`/`post` are its pre- and
    post-promotion analyses (see `gate`)."""
    strategy: dict[str, Any] = {"activeService": "bg-active", "previewService": "bg-preview"}
    if auto_promotion is not None:
        strategy["autoPromotionEnabled"] = auto_promotion
    strategy |= {"scaleDownDelaySeconds": delay, "abortScaleDownDelaySeconds": delay}
    if pre is not None:
        strategy["prePromotionAnalysis"] = pre
    if post is not None:
        strategy["postPromotionAnalysis"] = post
    return rollout("bg", {"blueGreen": strategy}, grace=grace)


def gate(template: str, **args: object) -> dict[str, Any]:
    """An analysis of one template (a canary step's `analysis`, a blue/green promotion analysis)."""
    found: dict[str, Any] = {"templates": [{"templateName": template}]}
    if args:
        found["args"] = [{"name": name, "value": str(value)} for name, value in args.items()]
    return found


def color_template(name: str, url: str, metric: Mapping[str, Any], *, args: Sequence[str] = (),
                   json_path: str | None = None) -> dict[str, Any]:
    """An AnalysisTemplate of one web metric `color` that GETs `url` (a Service's /color); `metric` holds its
    timing and conditions."""
    web: dict[str, Any] = {"url": url}
    if json_path is not None:
        web["jsonPath"] = json_path
    spec: dict[str, Any] = {"args": [{"name": a} for a in args]} if args else {}
    spec["metrics"] = [{"name": "color", **metric, "provider": {"web": web}}]
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate", "metadata": {"name": name},
            "spec": spec}


def service(name: str, app: str, port: int | None = None) -> dict[str, Any]:
    """A Service in front of the demo pods of `app` (they listen on 8080); `port` pins its local port."""
    metadata: dict[str, Any] = {"name": name}
    if port is not None:
        metadata["annotations"] = {PORT_ANNOTATION: str(port)}
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata,
            "spec": {"selector": {"app": app}, "ports": [{"port": 80, "targetPort": 8080}]}}


def shop_services(canary_port: int | None = None) -> list[dict[str, Any]]:
    """`shop-stable`, `shop-canary` (on `canary_port` when given) and the `shop` Ingress to `shop-stable`."""
    backend = {"service": {"name": "shop-stable", "port": {"number": 80}}}
    ingress = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "shop"},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}],
        },
    }
    return [service("shop-stable", "shop"), service("shop-canary", "shop", canary_port), ingress]


def bg_services(preview_port: int, active_port: int | None = None) -> list[dict[str, Any]]:
    """`bg-active` (on `active_port` when given) and `bg-preview` on `preview_port`."""
    return [service("bg-active", "bg", active_port), service("bg-preview", "bg", preview_port)]
