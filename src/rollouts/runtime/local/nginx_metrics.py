"""The local ingress's request counters as ingress-nginx exports them, so PromQL written for a cluster with
ingress-nginx (the runbook's gates, the `rollouts/traffic` provider's Prometheus path) reads the same series
from the local runtime:

- `nginx_ingress_controller_requests` (counter, no `_total` suffix, as ingress-nginx's Go client exports it);
- `nginx_ingress_controller_request_duration_seconds` (histogram, seconds, ingress-nginx's default
  `--time-buckets`: 0.005 ... 10, Prometheus' default buckets).

Labels, in the sorted order ingress-nginx's exposition shows them: `canary`, `controller_class`,
`controller_namespace`, `controller_pod`, `host`, `ingress`, `method`, `namespace`, `path`, `service`,
`status`. Their values follow ingress-nginx:
- `ingress`, `namespace`, `service`, `path`, `host`: the matched rule of the *stable* Ingress (canary traffic
  is served from the stable Ingress's location, so it carries the stable Ingress and Service too); `path` is
  the rule's path as written in the Ingress (never the request path), `host` the rule's host ("" without one:
  with the default `--metrics-per-host` ingress-nginx adds this label);
- `canary`: "" for stable traffic, else the canary backend's upstream name `<namespace>-<service>-<port>`
  (`<namespace>-INVALID` without a port), as `$proxy_alternative_upstream_name` is;
- `status`: the status code as text ("200"); `method`: the request method.

Deliberate differences, for bounded cardinality: a method outside the standard ones (RFC 9110 and PATCH)
is counted as `OTHER` (ingress-nginx would keep any token nginx accepts); requests no Ingress rule matched
(the proxy's own 404) are not counted at all, so no request path, Host header or method a client invents
can create a series. The series of an Ingress that is gone are dropped (`retain`), as ingress-nginx drops
removed Ingresses' metrics.

Thread-safe: the data plane observes, the controller's /metrics renders.
"""

from __future__ import annotations

from collections.abc import Iterable

from rollouts.runtime.local.exposition import Key, RequestMetrics, method_label
from rollouts.runtime.local.routing import Backend

__all__ = ["DURATION", "REQUESTS", "TIME_BUCKETS", "NginxIngressMetrics", "canary_upstream", "method_label"]

REQUESTS = "nginx_ingress_controller_requests"
DURATION = "nginx_ingress_controller_request_duration_seconds"
TIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

DEFAULT_CONTROLLER_CLASS = "k8s.io/ingress-nginx"
DEFAULT_CONTROLLER_NAMESPACE = "ingress-nginx"
DEFAULT_CONTROLLER_POD = "rollouts-local-ingress"

# Per-request labels, in exposition order after the constant controller_* labels are merged in.
_LABELS = ("canary", "host", "ingress", "method", "namespace", "path", "service", "status")


def canary_upstream(backend: Backend) -> str:
    """ingress-nginx's upstream name of the canary backend (`$proxy_alternative_upstream_name`), "" for stable."""
    if backend.version != "canary":
        return ""
    port = backend.service_port
    if isinstance(port, int) and port > 0:
        return f"{backend.namespace}-{backend.service}-{port}"
    if isinstance(port, str) and port:
        return f"{backend.namespace}-{backend.service}-{port}"
    return f"{backend.namespace}-INVALID"


class NginxIngressMetrics:
    """ingress-nginx's request counter and duration histogram, fed by the local ingress proxy."""

    def __init__(
        self,
        *,
        controller_class: str = DEFAULT_CONTROLLER_CLASS,
        controller_namespace: str = DEFAULT_CONTROLLER_NAMESPACE,
        controller_pod: str = DEFAULT_CONTROLLER_POD,
    ) -> None:
        self._constant = {
            "controller_class": controller_class,
            "controller_namespace": controller_namespace,
            "controller_pod": controller_pod,
        }
        self._families = RequestMetrics(
            requests=REQUESTS, requests_help="Client requests the local ingress routed by an Ingress rule.",
            duration=DURATION,
            duration_help="Seconds from the first byte of a request to the last byte of its answer.",
            labels=self._labels, buckets=TIME_BUCKETS, always_describe=False)

    def observe(self, backend: Backend, method: str, status: int, seconds: float) -> None:
        """Count one request a rule of a stable Ingress routed (whatever answered it, 502/503 included)."""
        key: Key = (
            canary_upstream(backend),
            backend.host,
            backend.stable_ingress,
            method_label(method),
            backend.namespace,
            backend.path,
            backend.stable_service or backend.service,
            str(status),
        )
        self._families.observe(key, seconds)

    def retain(self, ingresses: Iterable[tuple[str, str]]) -> None:
        """Keep only the series of these stable Ingresses (namespace, name)."""
        keep = set(ingresses)
        self._families.retain(lambda key: (key[4], key[2]) in keep)

    def series_count(self) -> int:
        return self._families.series_count()

    def render(self) -> bytes:
        """Both families in Prometheus text format 0.0.4 (nothing before the first request)."""
        return self._families.render().encode()

    def _labels(self, key: Key) -> list[tuple[str, str]]:
        merged = dict(zip(_LABELS, key, strict=True)) | self._constant
        return [(name, merged[name]) for name in sorted(merged)]
