"""A built-in traffic gate without `service` in a rollout's step: the controller infers the service from the
rollout's stable Ingress and counts only the new revision's answers inside the run (13.7, 20.2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.harness import ControllerProcess, Load
from tests.e2e.manifests import shop_services

pytestmark = pytest.mark.integration

# The shape of issue 13.7: `provider: {plugin: {rollouts/traffic: {metric, version, window}}}` and no
# service anywhere (the window is short so the test is).
MANIFEST = """
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: inferred-gate}
spec:
  metrics:
  - name: success-rate
    interval: 2s
    count: 1
    successCondition: result >= 0.95
    failureCondition: result < 0.95
    provider: {plugin: {rollouts/traffic: {metric: success-rate, version: canary, window: 12s}}}
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: shop}}
  template:
    metadata: {labels: {app: shop}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: shop
        image: rollouts-demo:blue
  strategy:
    canary:
      canaryService: shop-canary
      stableService: shop-stable
      scaleDownDelaySeconds: 2
      trafficRouting:
        nginx: {stableIngress: shop}
      steps:
      - setWeight: 50
      - analysis: {templates: [{templateName: inferred-gate}]}
""" + shop_services()


def test_traffic_gate_without_service_infers_it_from_the_rollout(controller: ControllerProcess,
                                                                 tmp_path: Path) -> None:
    manifest = tmp_path / "shop.yaml"
    manifest.write_text(MANIFEST)
    controller.cli("apply", "-f", str(manifest))
    controller.cli("status", "shop", "--timeout", "60s")
    port = controller.ingress_port("shop")
    with Load(port, rate=40):
        controller.cli("set", "image", "shop", "shop=rollouts-demo:yellow")
        result = controller.cli("status", "shop", "--timeout", "90s", check=False, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr + controller.tail()
    status = controller.rollout("shop")["status"]
    with controller.store() as store:
        runs = store.list("AnalysisRun", "default")
    assert len(runs) == 1 and runs[0]["status"]["phase"] == "Successful", runs
    [measurement] = runs[0]["status"]["metricResults"][0]["measurements"]
    meta = measurement["metadata"]
    assert meta["service"] == "shop" and meta["podHash"] == status["currentPodHash"]
    assert int(meta["requests"]) >= 50
