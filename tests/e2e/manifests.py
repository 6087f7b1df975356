"""The manifests the end-to-end tests release: a canary gated by the built-in traffic SLO provider, and the
`shop` Services and Ingress every canary of the e2e tests, the restart tests and bench/rollback.py sits behind.
Built by rollouts.demo.releases, which the benches share (bench/ does not import tests/ for its manifests)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rollouts.demo import releases

GATE = {"analysis": releases.gate("gate")}
STEPS = ({"setWeight": 30}, GATE, {"setWeight": 60}, GATE)

_TRAFFIC_GATE = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "AnalysisTemplate",
    "metadata": {"name": "gate"},
    "spec": {"metrics": [{
        "name": "success-rate", "interval": "2s", "count": 2,
        "successCondition": "result >= 0.95", "failureCondition": "result < 0.95",
        "provider": {"plugin": {"rollouts/traffic": {"service": "shop", "metric": "success-rate",
                                                     "version": "canary", "window": "6s", "minRequests": 20}}},
    }]},
}


def shop_services(canary_port: int | None = None) -> str:
    """The `shop-stable` and `shop-canary` Services and the `shop` Ingress in front of them; `canary_port` pins the
    canary Service's local port (so an analysis URL can name it before the controller runs)."""
    return releases.to_yaml(*releases.shop_services(canary_port))


def canary(steps: Sequence[Mapping[str, Any]] = STEPS) -> str:
    """The gated canary (two replicas, X-Canary header routing) with these steps."""
    shop = releases.shop_canary(steps, replicas=2, ingress_annotations={
        "canary-by-header": "X-Canary", "canary-by-header-value": "true"})
    return releases.to_yaml(_TRAFFIC_GATE, shop, *releases.shop_services())


CANARY = canary()
