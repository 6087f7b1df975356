"""The stable version's recent traffic for `rollouts gate check`: its share of bad requests and its request
rate, read from Prometheus with the metric's own counters over a look-back (`increase()` of the query's
numerator and denominator, or of the histogram's buckets; for `rollouts/traffic` metrics, the service's own
request metrics `http_requests_total{service}` and `http_request_duration_seconds_bucket{service}`), or
given by hand. (Without a Prometheus, rollouts/traffic gates are read from the local cluster's proxy
counters instead: gate_local.py.)

The look-back should lie inside the counters' history: a series younger than the look-back makes the rate
(increase / look-back) too low. The bad share does not depend on that.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import httpx

from rollouts.analysis.gate_shape import GateShape, PromQuantile, PromRatio, TrafficMetric

_TIMEOUT_SECONDS = 10.0


class BaselineUnavailable(RuntimeError):
    """No baseline for a metric: Prometheus unreachable, an error answer, or no data (the text says which)."""


@dataclass(frozen=True)
class Baseline:
    bad_share: float  # share of the stable version's requests that are bad (errors, or slower than the bound)
    rps: float  # the requests per second the metric's denominator counts, service-wide
    source: str


def _instant(address: str, promql: str, at: float) -> list[tuple[dict[str, str], float]]:
    url = address.rstrip("/") + "/api/v1/query"
    try:
        response = httpx.get(url, params={"query": promql, "time": f"{at:.3f}"}, timeout=_TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        raise BaselineUnavailable(f"Prometheus at {address} is unreachable: {type(exc).__name__}") from None
    try:
        body = response.json()
    except ValueError:
        raise BaselineUnavailable(f"Prometheus at {address} answered HTTP {response.status_code}, not JSON") from None
    if response.status_code != 200 or body.get("status") != "success":
        raise BaselineUnavailable(f"Prometheus at {address} rejected {promql!r}: {body.get('error', response.status_code)}")
    data = body.get("data") or {}
    if data.get("resultType") != "vector":
        raise BaselineUnavailable(f"{promql!r} gave a {data.get('resultType')}, not an instant vector")
    out = []
    for sample in data.get("result") or []:
        value = float(sample["value"][1])
        if not math.isnan(value):
            out.append((dict(sample.get("metric") or {}), value))
    return out


def _one(address: str, promql: str, at: float) -> float:
    found = _instant(address, promql, at)
    return found[0][1] if found else 0.0


def prometheus_baseline(shape: GateShape, address: str, lookback: str, lookback_seconds: float,
                        *, now: float | None = None) -> Baseline:
    """Bad share and request rate of the metric's own series over the look-back.

    Every query is evaluated at one instant, and the share in one expression: a bad share of 0.5 % is
    1 minus a ratio near 0.995, so numerator and denominator read at different moments (their increase()
    extrapolated over differently aligned samples) would move it by tenths of a point."""
    at = time.time() if now is None else now
    source = shape.source
    if isinstance(source, PromRatio):
        denominator = _one(address, f"sum(increase({source.denominator}[{lookback}]))", at)
        if denominator <= 0:
            raise BaselineUnavailable(f"no requests in {source.denominator} over the last {lookback}")
        ratio = _one(address, f"sum(increase({source.numerator}[{lookback}])) / "
                              f"sum(increase({source.denominator}[{lookback}]))", at)
        share = min(max(ratio, 0.0), 1.0)
        bad = 1.0 - share if shape.value_is_good_share else share
        return Baseline(bad, denominator / lookback_seconds, f"Prometheus, last {lookback}")
    if isinstance(source, PromQuantile):
        rows = _instant(address, f"sum by (le) (increase({source.bucket}[{lookback}]))", at)
        buckets = sorted((float(labels["le"]), value) for labels, value in rows if "le" in labels)
        if not buckets or buckets[-1][0] != math.inf or buckets[-1][1] <= 0:
            raise BaselineUnavailable(f"no observations in {source.bucket} over the last {lookback}")
        total = buckets[-1][1]
        within = cumulative_at(buckets, shape.threshold.bound)
        return Baseline(min(max(1.0 - within / total, 0.0), 1.0), total / lookback_seconds,
                        f"Prometheus, last {lookback}")
    return prometheus_baseline(replace(shape, source=traffic_series(source)), address, lookback, lookback_seconds,
                               now=at)


def traffic_series(source: TrafficMetric) -> PromRatio | PromQuantile:
    """The series a rollouts/traffic metric's baseline is read from in Prometheus: the service's own request
    metrics as the runbook's queries read them (`http_requests_total{service, code}`,
    `http_request_duration_seconds_bucket{service}`, which the demo services export), summed over every
    pod (the stable version's traffic before a release); not the local ingress proxy's own
    `rollouts_ingress_http_*` series."""
    if source.service is None:
        raise BaselineUnavailable(f"rollouts/traffic {source.metric}: no service (give -a service-name=...)")
    service = source.service.replace("\\", "\\\\").replace('"', '\\"')
    requests = f'http_requests_total{{service="{service}"}}'
    if source.metric == "success-rate":
        return PromRatio(f'http_requests_total{{service="{service}",code!~"5.."}}', requests)
    if source.metric == "error-rate":
        return PromRatio(f'http_requests_total{{service="{service}",code=~"5.."}}', requests)
    return PromQuantile(f'http_request_duration_seconds_bucket{{service="{service}"}}')


def cumulative_at(buckets: list[tuple[float, float]], bound: float) -> float:
    """Observations <= `bound` in sorted cumulative histogram buckets, linearly interpolated inside the
    bucket that contains it (as histogram_quantile does; exact when `bound` is a bucket's upper bound)."""
    previous_le, previous_count = 0.0, 0.0
    for le, count in buckets:
        if bound <= le:
            if le == math.inf or le == previous_le:
                return previous_count if le == math.inf else count
            return previous_count + (count - previous_count) * (bound - previous_le) / (le - previous_le)
        previous_le, previous_count = le, count
    return previous_count


__all__ = ["Baseline", "BaselineUnavailable", "cumulative_at", "prometheus_baseline", "traffic_series"]
