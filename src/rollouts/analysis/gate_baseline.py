"""The stable version's recent traffic for `rollouts gate check`: its share of bad requests and its request
rate, read from Prometheus with the metric's own counters over a look-back (`increase()` of the query's
numerator and denominator, or of the histogram's buckets), or given by hand.

The look-back should lie inside the counters' history: a series younger than the look-back makes the rate
(increase / look-back) too low. The bad share does not depend on that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import httpx

from rollouts.analysis.gate_shape import GateShape, PromQuantile, PromRatio

_TIMEOUT_SECONDS = 10.0


class BaselineUnavailable(RuntimeError):
    """No baseline for a metric: Prometheus unreachable, an error answer, or no data (the text says which)."""


@dataclass(frozen=True)
class Baseline:
    bad_share: float  # share of the stable version's requests that are bad (errors, or slower than the bound)
    rps: float  # the requests per second the metric's denominator counts, service-wide
    source: str


def _instant(address: str, promql: str) -> list[tuple[dict[str, str], float]]:
    url = address.rstrip("/") + "/api/v1/query"
    try:
        response = httpx.get(url, params={"query": promql}, timeout=_TIMEOUT_SECONDS)
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


def _total(address: str, selector: str, lookback: str) -> float:
    found = _instant(address, f"sum(increase({selector}[{lookback}]))")
    return found[0][1] if found else 0.0


def prometheus_baseline(shape: GateShape, address: str, lookback: str, lookback_seconds: float) -> Baseline:
    """Bad share and request rate of the metric's own series over the look-back."""
    source = shape.source
    if isinstance(source, PromRatio):
        denominator = _total(address, source.denominator, lookback)
        if denominator <= 0:
            raise BaselineUnavailable(f"no requests in {source.denominator} over the last {lookback}")
        share = min(max(_total(address, source.numerator, lookback) / denominator, 0.0), 1.0)
        bad = 1.0 - share if shape.value_is_good_share else share
        return Baseline(bad, denominator / lookback_seconds, f"Prometheus, last {lookback}")
    if isinstance(source, PromQuantile):
        rows = _instant(address, f"sum by (le) (increase({source.bucket}[{lookback}]))")
        buckets = sorted((float(labels["le"]), value) for labels, value in rows if "le" in labels)
        if not buckets or buckets[-1][0] != math.inf or buckets[-1][1] <= 0:
            raise BaselineUnavailable(f"no observations in {source.bucket} over the last {lookback}")
        total = buckets[-1][1]
        within = cumulative_at(buckets, shape.threshold.bound)
        return Baseline(min(max(1.0 - within / total, 0.0), 1.0), total / lookback_seconds,
                        f"Prometheus, last {lookback}")
    raise BaselineUnavailable(f"metrics[{shape.name}]: the {source.metric} of rollouts/traffic is not read from "
                              "Prometheus here; give --error-rate (or --slow-share) and --rps")


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


__all__ = ["Baseline", "BaselineUnavailable", "cumulative_at", "prometheus_baseline"]
