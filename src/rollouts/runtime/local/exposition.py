"""Request metrics in Prometheus text exposition format 0.0.4, standard library only: one counter of requests
and one histogram of their durations over the same label values, as an instrumented HTTP server exports
them. Shared by the demo service's own metrics (demo/http_metrics.py, which must start without importing
prometheus_client), the ingress proxy's per-version series (proxy.py) and its ingress-nginx series
(nginx_metrics.py).

Floats are formatted as Prometheus' Go client does (shortest repr, whole numbers without a fraction);
label values are escaped as the text format requires. Thread-safe: request threads observe, the /metrics
handler renders.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Prometheus' default buckets.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
# A method outside these is counted as OTHER: a client cannot create series by inventing methods.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
OTHER_METHOD = "OTHER"

Key = tuple[str, ...]


def method_label(method: str) -> str:
    upper = method.upper()
    return upper if upper in METHODS else OTHER_METHOD


def escape_label(value: str) -> str:
    """A label value as the text format quotes it: backslash, double quote and newline escaped."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def go_float(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def label_text(pairs: Iterable[tuple[str, str]]) -> str:
    return ",".join(f'{name}="{escape_label(value)}"' for name, value in pairs)


class _Histogram:
    __slots__ = ("buckets", "count", "sum")

    def __init__(self, size: int) -> None:
        self.buckets = [0] * size  # cumulative: bucket i counts every observation <= bound i
        self.count = 0
        self.sum = 0.0


class RequestMetrics:
    """A request counter and a duration histogram keyed by the same label values.

    `labels(key)` turns a key into its `name="value"` pairs in exposition order; `histogram_key(key)` the
    key the histogram uses (default: the same, a histogram without some of the counter's labels drops them).
    """

    def __init__(self, *, requests: str, requests_help: str, duration: str, duration_help: str,
                 labels: Callable[[Key], Sequence[tuple[str, str]]], buckets: Sequence[float] = DEFAULT_BUCKETS,
                 histogram_key: Callable[[Key], Key] | None = None, always_describe: bool = True) -> None:
        self.requests_name, self.duration_name = requests, duration
        self._help = (requests_help, duration_help)
        self._labels = labels
        self._histogram_key = histogram_key or (lambda key: key)
        self.buckets = tuple(buckets)
        self._always_describe = always_describe
        self._lock = threading.Lock()
        self._requests: dict[Key, int] = {}
        self._durations: dict[Key, _Histogram] = {}

    def observe(self, key: Key, seconds: float) -> None:
        seconds = max(0.0, seconds)
        hkey = self._histogram_key(key)
        with self._lock:
            self._requests[key] = self._requests.get(key, 0) + 1
            histogram = self._durations.get(hkey)
            if histogram is None:
                histogram = self._durations[hkey] = _Histogram(len(self.buckets))
            for i, bound in enumerate(self.buckets):
                if seconds <= bound:
                    histogram.buckets[i] += 1
            histogram.count += 1
            histogram.sum += seconds

    def retain(self, keep: Callable[[Key], bool]) -> None:
        """Drop the series whose key `keep` refuses (an Ingress that is gone, say)."""
        with self._lock:
            for table in (self._requests, self._durations):
                for key in [k for k in table if not keep(k)]:
                    del table[key]

    def series_count(self) -> int:
        with self._lock:
            return len(self._requests)

    def render(self) -> str:
        """Both families; without any request yet, only their HELP and TYPE lines (or nothing at all when
        `always_describe` is off)."""
        with self._lock:
            requests = sorted(self._requests.items())
            durations = sorted((key, (list(h.buckets), h.count, h.sum)) for key, h in self._durations.items())
        if not requests and not self._always_describe:
            return ""
        name, duration = self.requests_name, self.duration_name
        lines = [f"# HELP {name} {self._help[0]}", f"# TYPE {name} counter"]
        lines += [f"{name}{{{label_text(self._labels(key))}}} {count}" for key, count in requests]
        lines += [f"# HELP {duration} {self._help[1]}", f"# TYPE {duration} histogram"]
        for key, (buckets, count, total) in durations:
            labels = label_text(self._labels(key))
            for bound, cumulative in zip(self.buckets, buckets, strict=True):
                lines.append(f'{duration}_bucket{{{labels},le="{go_float(bound)}"}} {cumulative}')
            lines.append(f'{duration}_bucket{{{labels},le="+Inf"}} {count}')
            lines.append(f"{duration}_sum{{{labels}}} {go_float(total)}")
            lines.append(f"{duration}_count{{{labels}}} {count}")
        return "\n".join(lines) + "\n"
