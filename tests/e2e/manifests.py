"""The manifests the end-to-end tests release: a canary gated by the built-in traffic SLO provider, and the
`shop` Services and Ingress every canary of the e2e tests, the restart tests and bench/rollback.py sits behind."""

from __future__ import annotations


def shop_services(canary_port: int | None = None) -> str:
    """The `shop-stable` and `shop-canary` Services and the `shop` Ingress in front of them; `canary_port` pins the
    canary Service's local port (so an analysis URL can name it before the controller runs)."""
    canary_meta = ("{name: shop-canary}" if canary_port is None
                   else f'''
  name: shop-canary
  annotations: {{rollouts.io/port: "{canary_port}"}}''')
    return f"""---
apiVersion: v1
kind: Service
metadata: {{name: shop-stable}}
spec: {{selector: {{app: shop}}, ports: [{{port: 80, targetPort: 8080}}]}}
---
apiVersion: v1
kind: Service
metadata: {canary_meta}
spec: {{selector: {{app: shop}}, ports: [{{port: 80, targetPort: 8080}}]}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: shop}}
spec:
  ingressClassName: nginx
  rules:
  - http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: shop-stable, port: {{number: 80}}}}}}}}
"""


CANARY = """
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: gate}
spec:
  metrics:
  - name: success-rate
    interval: 2s
    count: 2
    successCondition: result >= 0.95
    failureCondition: result < 0.95
    provider:
      plugin:
        rollouts/traffic: {service: shop, metric: success-rate, version: canary, window: 6s, minRequests: 20}
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
      abortScaleDownDelaySeconds: 2
      scaleDownDelaySeconds: 2
      trafficRouting:
        nginx:
          stableIngress: shop
          additionalIngressAnnotations: {canary-by-header: X-Canary, canary-by-header-value: "true"}
      steps:
      - setWeight: 30
      - analysis: {templates: [{templateName: gate}]}
      - setWeight: 60
      - analysis: {templates: [{templateName: gate}]}
""" + shop_services()
