"""The demo service's own request metrics, as an instrumented HTTP service exports them at `/metrics`:

- `http_requests_total{service, code, method}`: a counter of answered requests;
- `http_request_duration_seconds{service, code, method}`: a histogram (Prometheus' default buckets,
  0.005 ... 10 s, which include the runbook's 0.5 s P95 gate as a bucket bound), `_bucket`/`_sum`/`_count`.

`service` is the name the service is deployed as, so the runbook's PromQL (`http_requests_total{service=
"auth-svc"}`) reads the same series for canary and stable pods; Prometheus tells them apart by the pod's
`rollouts-pod-template-hash` label, which its Kubernetes discovery adds to the target, not the application.

Written in text exposition format 0.0.4 by the standard-library helper runtime/local/exposition.py rather
than with prometheus_client: the demo must start in well under half a second on a loaded machine.
Thread-safe: the server's handler threads observe, the `/metrics` handler renders.
"""

from __future__ import annotations

from rollouts.runtime.local.exposition import CONTENT_TYPE, DEFAULT_BUCKETS, Key, method_label
from rollouts.runtime.local.exposition import RequestMetrics as _Families

__all__ = ["BUCKETS", "CONTENT_TYPE", "DURATION", "REQUESTS", "RequestMetrics"]

REQUESTS = "http_requests_total"
DURATION = "http_request_duration_seconds"
BUCKETS = DEFAULT_BUCKETS


class RequestMetrics:
    """Counter and histogram of one service's answered requests."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._families = _Families(
            requests=REQUESTS, requests_help="HTTP requests answered, by status code and method.",
            duration=DURATION,
            duration_help="Seconds from reading a request to writing the last byte of its answer.",
            labels=self._labels, buckets=BUCKETS)

    def observe(self, method: str, code: int, seconds: float) -> None:
        self._families.observe((str(code), method_label(method)), seconds)

    def render(self) -> bytes:
        """Both families in text format 0.0.4; HELP and TYPE even before the first request."""
        return self._families.render().encode()

    def _labels(self, key: Key) -> list[tuple[str, str]]:
        code, method = key
        return [("service", self.service), ("code", code), ("method", method)]
