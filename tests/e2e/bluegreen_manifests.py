"""The blue/green release the end-to-end tests drive: active and preview Services on fixed ports, manual
promotion, and pre/post-promotion analysis that asks a Service's own port which color it serves."""

from __future__ import annotations

from rollouts.demo.prometheus import free_port

__all__ = ["blue_green", "free_port"]


def blue_green(active_port: int, preview_port: int, post_color: str) -> str:
    """`post_color` is what post-promotion analysis expects from the active Service after the switch."""
    return f"""
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: answers-color}}
spec:
  args:
  - name: port
  - name: color
  metrics:
  - name: color
    # The switch is a Service write; the cluster moves its listener a moment later (as kube-proxy does), so
    # a measurement of the active Service waits a second, as post-promotion gates on a real cluster should.
    initialDelay: 1s
    interval: 1s
    count: 2
    successCondition: result == '{{{{args.color}}}}'
    provider:
      web:
        url: http://127.0.0.1:{{{{args.port}}}}/color
        jsonPath: "{{$}}"
---
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: bg}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: bg}}}}
  template:
    metadata: {{labels: {{app: bg}}}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: bg
        image: rollouts-demo:blue
  strategy:
    blueGreen:
      activeService: bg-active
      previewService: bg-preview
      autoPromotionEnabled: false
      scaleDownDelaySeconds: 2
      abortScaleDownDelaySeconds: 2
      prePromotionAnalysis:
        templates: [{{templateName: answers-color}}]
        args:
        - {{name: port, value: "{preview_port}"}}
        - {{name: color, value: yellow}}
      postPromotionAnalysis:
        templates: [{{templateName: answers-color}}]
        args:
        - {{name: port, value: "{active_port}"}}
        - {{name: color, value: {post_color}}}
---
apiVersion: v1
kind: Service
metadata:
  name: bg-active
  annotations: {{rollouts.io/port: "{active_port}"}}
spec: {{selector: {{app: bg}}, ports: [{{port: 80, targetPort: 8080}}]}}
---
apiVersion: v1
kind: Service
metadata:
  name: bg-preview
  annotations: {{rollouts.io/port: "{preview_port}"}}
spec: {{selector: {{app: bg}}, ports: [{{port: 80, targetPort: 8080}}]}}
"""
