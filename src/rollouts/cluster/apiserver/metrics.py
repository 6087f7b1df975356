"""The API server's own Prometheus metrics, named as kube-apiserver's so existing dashboards apply:
`apiserver_request_total{verb,resource,subresource,code}`, `apiserver_request_duration_seconds` and
`apiserver_longrunning_requests{verb,resource}` (open watches and log follows)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LABELS = ("verb", "group", "resource", "subresource", "code")


class ApiMetrics:
    """One registry per server, so several servers in one process (tests) do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("apiserver_request_total", "Requests by verb, resource and HTTP code.", _LABELS,
                                registry=self.registry)
        self.duration = Histogram("apiserver_request_duration_seconds", "Time to answer, by verb and resource "
                                  "(watches: until the stream was set up).", _LABELS[:-1], registry=self.registry,
                                  buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.longrunning = Gauge("apiserver_longrunning_requests", "Open watches and log follows.",
                                 ("verb", "group", "resource"), registry=self.registry)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
