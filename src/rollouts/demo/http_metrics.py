"""The demo service's own request metrics, as an instrumented HTTP service exports them at `/metrics`:

- `http_requests_total{service, code, method}`: a counter of answered requests;
- `http_request_duration_seconds{service, code, method}`: a histogram (Prometheus' default buckets,
  0.005 ... 10 s, which include the runbook's 0.5 s P95 gate as a bucket bound), `_bucket`/`_sum`/`_count`.

`service` is the name the service is deployed as, so the runbook's PromQL (`http_requests_total{service=
"auth-svc"}`) reads the same series for canary and stable pods; Prometheus tells them apart by the pod's
`rollouts-pod-template-hash` label, which its Kubernetes discovery adds to the target, not the application.

Written by hand in text exposition format 0.0.4 rather than with prometheus_client: the demo must start in
well under half a second on a loaded machine, and this keeps its import cost to the standard library.
Thread-safe: the server's handler threads observe, the `/metrics` handler renders.
"""

from __future__ import annotations

import math
import threading

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUESTS = "http_requests_total"
DURATION = "http_request_duration_seconds"
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
# A method outside these is counted as OTHER: a client cannot create series by inventing methods.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
OTHER_METHOD = "OTHER"

_Key = tuple[str, str]  # (code, method)


class _Histogram:
    __slots__ = ("buckets", "count", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * len(BUCKETS)  # cumulative: bucket i counts every observation <= BUCKETS[i]
        self.count = 0
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                self.buckets[i] += 1
        self.count += 1
        self.sum += seconds


class RequestMetrics:
    """Counter and histogram of one service's answered requests."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._lock = threading.Lock()
        self._requests: dict[_Key, int] = {}
        self._durations: dict[_Key, _Histogram] = {}

    def observe(self, method: str, code: int, seconds: float) -> None:
        upper = method.upper()
        key: _Key = (str(code), upper if upper in METHODS else OTHER_METHOD)
        with self._lock:
            self._requests[key] = self._requests.get(key, 0) + 1
            histogram = self._durations.get(key)
            if histogram is None:
                histogram = self._durations[key] = _Histogram()
            histogram.observe(max(0.0, seconds))

    def render(self) -> bytes:
        """Both families in text format 0.0.4; HELP and TYPE even before the first request."""
        with self._lock:
            requests = sorted(self._requests.items())
            durations = sorted((key, (list(h.buckets), h.count, h.sum)) for key, h in self._durations.items())
        lines = [
            f"# HELP {REQUESTS} HTTP requests answered, by status code and method.",
            f"# TYPE {REQUESTS} counter",
        ]
        lines += [f"{REQUESTS}{{{self._labels(key)}}} {count}" for key, count in requests]
        lines += [
            f"# HELP {DURATION} Seconds from reading a request to writing the last byte of its answer.",
            f"# TYPE {DURATION} histogram",
        ]
        for key, (buckets, count, total) in durations:
            labels = self._labels(key)
            for bound, cumulative in zip(BUCKETS, buckets, strict=True):
                lines.append(f'{DURATION}_bucket{{{labels},le="{_go_float(bound)}"}} {cumulative}')
            lines.append(f'{DURATION}_bucket{{{labels},le="+Inf"}} {count}')
            lines.append(f"{DURATION}_sum{{{labels}}} {_go_float(total)}")
            lines.append(f"{DURATION}_count{{{labels}}} {count}")
        return ("\n".join(lines) + "\n").encode()

    def _labels(self, key: _Key) -> str:
        code, method = key
        return f'service="{escape_label(self.service)}",code="{code}",method="{method}"'


def escape_label(value: str) -> str:
    """A label value as the text format quotes it: backslash, double quote and newline escaped."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _go_float(value: float) -> str:
    # As Prometheus' Go client formats floats: shortest repr, whole numbers without a fraction.
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)
