"""A canary release for the controller-restart tests: an indefinite pause (a promotion gate), an analysis
step that asks the canary Service's own port for its color (red is the known-bad build), and a timed
pause. Fixed Service ports make the analysis URL known before the controller runs."""

from __future__ import annotations

from tests.e2e.manifests import shop_services

STEPS = 5


def canary(canary_port: int) -> str:
    return f"""
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: not-red}}
spec:
  metrics:
  - name: color
    interval: 1s
    count: 4
    failureLimit: 2
    successCondition: result != 'red'
    provider:
      web:
        url: http://127.0.0.1:{canary_port}/color
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: shop}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: shop}}}}
  template:
    metadata: {{labels: {{app: shop}}}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: shop
        image: rollouts-demo:blue
  strategy:
    canary:
      canaryService: shop-canary
      stableService: shop-stable
      abortScaleDownDelaySeconds: 2
      scaleDownDelaySeconds: 2
      trafficRouting:
        nginx: {{stableIngress: shop}}
      steps:
      - setWeight: 30
      - pause: {{}}
      - analysis: {{templates: [{{templateName: not-red}}]}}
      - setWeight: 60
      - pause: {{duration: 2s}}
""" + shop_services(canary_port)
