"""The stable version's recent traffic for `rollouts gate check` read from the local cluster's own ingress
proxy counters (its `/traffic/v1` API, `kube.traffic.ClusterTrafficSource`), for `rollouts/traffic` gates
when no Prometheus is given: the counters those gates themselves are measured on.

What the proxy keeps bounds the look-back: per-second counts with latency for 35 minutes, per-minute
request and 5xx counts for 24 hours (runtime/local/traffic.py). An error-rate baseline reads the
per-minute counts over min(look-back, 24 h); a latency baseline the per-second latency buckets over
min(look-back, 35 min). The rate is the stable requests counted over that span, divided by the part of
it since the proxy's first stable request, so a look-back longer than the history does not dilute it.
The stable version's requests are those of versions `stable` and `active` (blue/green), as the traffic
provider's `version: stable` and `active` read them.
"""

from __future__ import annotations

import math
import time
from typing import Protocol

from rollouts.analysis.gate_baseline import Baseline, BaselineUnavailable
from rollouts.analysis.gate_shape import GateShape, TrafficMetric
from rollouts.runtime.local.traffic import (
    DEFAULT_COARSE_HORIZON_SECONDS,
    DEFAULT_HORIZON_SECONDS,
)
from rollouts.traffic_window import WindowStats

STABLE_VERSIONS = ("stable", "active")
# TrafficStats' latency buckets: bucket i holds [1e-5 * 1.02**i, 1e-5 * 1.02**(i+1)) seconds; a bucket
# counts as slower than a bound when its middle is above it (as the sequential latency test counts).
_LATENCY_MIN, _LATENCY_GROWTH = 1e-5, 1.02


class CounterSource(Protocol):
    def window(self, namespace: str, service: str, version: tuple[str, ...], seconds: float,
               now: float | None = None) -> WindowStats: ...

    def since(self, namespace: str, service: str, version: tuple[str, ...], start: float,
              now: float | None = None) -> WindowStats: ...

    def first_seen(self, namespace: str, service: str, version: tuple[str, ...]) -> float | None: ...


def proxy_baseline(shape: GateShape, source: CounterSource, namespace: str, lookback: str,
                   lookback_seconds: float, *, now: float | None = None) -> Baseline:
    """Bad share and request rate of a rollouts/traffic gate's service from the local proxy's counters."""
    metric = shape.source
    if not isinstance(metric, TrafficMetric):
        raise BaselineUnavailable("only rollouts/traffic gates are measured on the local proxy's counters")
    if metric.service is None:
        raise BaselineUnavailable(f"rollouts/traffic {metric.metric}: no service (give -a service-name=...)")
    at = time.time() if now is None else now
    service = metric.service
    if shape.quantile is None:
        span = min(lookback_seconds, float(DEFAULT_COARSE_HORIZON_SECONDS))
        counts = source.since(namespace, service, STABLE_VERSIONS, at - span, at)
        if counts.requests <= 0:
            raise BaselineUnavailable(f"the local proxy counted no stable requests of {namespace}/{service} "
                                      f"over the last {_kept(lookback, span, lookback_seconds)}")
        bad = counts.errors / counts.requests  # success-rate and error-rate gates both count the 5xx
    else:
        span = min(lookback_seconds, float(DEFAULT_HORIZON_SECONDS))
        counts = source.window(namespace, service, STABLE_VERSIONS, span, at)
        timed = sum(count for _, count in counts.latency_counts)
        if timed <= 0:
            raise BaselineUnavailable(f"the local proxy timed no stable requests of {namespace}/{service} "
                                      f"over the last {_kept(lookback, span, lookback_seconds)}")
        limit = shape.threshold.bound
        slow = sum(count for index, count in counts.latency_counts
                   if _LATENCY_MIN * _LATENCY_GROWTH ** (index + 0.5) > limit)
        bad = slow / timed
    # The rate over what the counts cover (the per-minute answer starts at its first whole minute), and
    # only since the first request: a service younger than the look-back is not diluted.
    first = source.first_seen(namespace, service, STABLE_VERSIONS)
    begin = counts.start if first is None or not math.isfinite(first) else max(counts.start, first)
    rate = counts.requests / max(at - begin, 1.0)
    return Baseline(min(max(bad, 0.0), 1.0), rate,
                    f"the local proxy's counters, last {_kept(lookback, span, lookback_seconds)}")


def _kept(lookback: str, span: float, lookback_seconds: float) -> str:
    if span >= lookback_seconds:
        return lookback
    return f"{span / 3600:g}h (all the proxy keeps)" if span >= 3600 else f"{span / 60:g}m (all the proxy keeps)"


__all__ = ["STABLE_VERSIONS", "CounterSource", "proxy_baseline"]
