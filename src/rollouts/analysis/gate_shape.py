"""What a threshold metric of an AnalysisTemplate gates on, in the terms of `rollouts.analysis.noise`:
which counts its value is a share of, the threshold on that share, its window, interval, count and
limits. Pure: reads the metric, no I/O.

Recognised shapes (anything else is reported as not a fixed-threshold gate, with the reason):
- Prometheus `sum(rate(A[w])) / sum(rate(B[w]))` (or increase): a share of B's requests. A failure when
  the value is low (`result[0] < 0.995`) means A counts good requests; when high, bad ones.
- Prometheus `histogram_quantile(q, sum by (le) (rate(X_bucket[w])))` compared with `<= y`: the quantile
  is above y exactly when more than 1 - q of the window's requests took longer than y (exact when y is a
  bucket bound), so it gates the share of slow requests.
- `rollouts/traffic` success-rate, error-rate and latency-pNN over its `window`.

Conditions may be compound (`len(result) > 0 && !isNaN(result[0]) && result[0] >= 0.995`): the one
comparison of `result` or `result[0]` with a number is the threshold; the failure condition wins, else
the success condition is negated (Argo fails a measurement whose success condition is false when no
failure condition is given).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from rollouts.spec.analysis import Metric

TRAFFIC_PLUGIN = "rollouts/traffic"
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_SUBJECT = r"(?<![\w)\]])result(?:\s*\[\s*0\s*\])?(?![\w(\[])"
_COMPARE = re.compile(rf"{_SUBJECT}\s*(>=|<=|>|<)\s*({_NUMBER})")
_COMPARE_REVERSED = re.compile(rf"({_NUMBER})\s*(>=|<=|>|<)\s*{_SUBJECT}")
_FLIP = {">=": "<=", "<=": ">=", ">": "<", "<": ">"}
_NEGATE = {">=": "<", "<=": ">", ">": "<=", "<": ">="}
_RANGE_FN = r"(?:rate|increase)\(\s*([A-Za-z_:][\w:]*\s*(?:\{[^{}]*\})?)\s*\[\s*(\w+)\s*\]\s*\)"
_RATIO = re.compile(rf"^\(?\s*sum\s*\(\s*{_RANGE_FN}\s*\)\s*\)?\s*/\s*\(?\s*sum\s*\(\s*{_RANGE_FN}\s*\)\s*\)?$")
_QUANTILE = re.compile(
    rf"^histogram_quantile\(\s*({_NUMBER})\s*,\s*sum\s+by\s*\(\s*le\s*\)\s*\(\s*{_RANGE_FN}\s*\)\s*\)$")
_PLACEHOLDER = re.compile(r"\{\{\s*args\.([\w.-]+)\s*\}\}")
_MATCHER_WITH_PLACEHOLDER = re.compile(r"\s*,?\s*[A-Za-z_]\w*\s*(?:=~|!~|!=|=)\s*\"[^\"]*\{\{\s*args\.[\w.-]+\s*\}\}[^\"]*\"")
_PROM_DURATION = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_PROM_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


class NotAGate(ValueError):
    """The metric is not a fixed threshold on a share of requests (the text says why)."""


def prom_duration(text: str) -> float:
    """Seconds in a PromQL duration (`5m`, `1h30m`, `7d`)."""
    text = text.strip()
    total, pos = 0.0, 0
    for match in _PROM_DURATION.finditer(text):
        if match.start() != pos:
            break
        total += int(match.group(1)) * _PROM_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"{text!r} is not a PromQL duration (use a form like 30s, 5m, 1h, 7d)")
    return total


@dataclass(frozen=True)
class Threshold:
    op: str  # the comparison that FAILS the measurement: value <op> bound
    bound: float

    def text(self) -> str:
        return f"{_NEGATE[self.op]} {self.bound:g}"


@dataclass(frozen=True)
class PromRatio:
    numerator: str  # selectors, e.g. http_requests_total{service="x",code!~"5.."}
    denominator: str


@dataclass(frozen=True)
class PromQuantile:
    bucket: str  # the _bucket selector


@dataclass(frozen=True)
class TrafficMetric:
    metric: str
    version: str
    service: str | None  # None when the config's service is an argument that was not given


@dataclass(frozen=True)
class GateShape:
    name: str
    source: PromRatio | PromQuantile | TrafficMetric
    threshold: Threshold
    value_is_good_share: bool  # the value counts good requests (success rate) rather than bad ones
    quantile: float | None  # latency gates: the quantile; the bad requests are those slower than the bound
    window_seconds: float
    window_text: str
    interval_seconds: float
    count: int
    failure_limit: int
    consecutive_success_limit: int
    canary_scoped: bool  # measures the canary's pods only (its request count is the canary's share)
    address: str | None = None

    @property
    def bad_share_limit(self) -> float:
        if self.quantile is not None:
            return 1.0 - self.quantile
        return 1.0 - self.threshold.bound if self.value_is_good_share else self.threshold.bound

    @property
    def fails_at_equal(self) -> bool:
        if self.quantile is not None:
            return False
        return self.threshold.op in ("<=", ">=")

    def describe(self) -> str:
        what = f"p{self.quantile * 100:g}" if self.quantile is not None else self.name
        return (f"{what} {self.threshold.text()} over {self.window_text}"
                f" ({self.count} x {self.interval_seconds:g}s, failureLimit {self.failure_limit})")


def threshold_of(metric: Metric) -> Threshold:
    """The threshold the metric's conditions put on its value, as the comparison that fails it."""
    for source, negate in ((metric.failure_condition, False), (metric.success_condition, True)):
        if not source:
            continue
        if "||" in source:
            raise NotAGate(f"metrics[{metric.name}]: condition {source!r} has `||`; only `&&` of one threshold "
                           "comparison and no-data guards is understood")
        found = [(m.group(1), float(m.group(2))) for m in _COMPARE.finditer(source)]
        found += [(_FLIP[m.group(2)], float(m.group(1))) for m in _COMPARE_REVERSED.finditer(source)]
        if len(found) != 1:
            raise NotAGate(f"metrics[{metric.name}]: condition {source!r} has {len(found)} comparisons of result "
                           "with a number; a fixed-threshold gate has exactly one")
        op, bound = found[0]
        return Threshold(_NEGATE[op] if negate else op, bound)
    raise NotAGate(f"metrics[{metric.name}]: no successCondition or failureCondition")


def _int(value: object, default: int) -> int:
    if value is None:
        return default
    try:
        return int(str(value))
    except ValueError:
        raise NotAGate(f"{value!r} is not a whole number") from None


def substitute_args(text: str, args: Mapping[str, str]) -> tuple[str, bool]:
    """`text` with the given `{{args.x}}` replaced; label matchers on missing args are dropped (they name
    the canary's pods, which do not exist before the release). True when a matcher was dropped."""
    text = _PLACEHOLDER.sub(lambda m: args.get(m.group(1), m.group(0)), text)
    dropped = _MATCHER_WITH_PLACEHOLDER.sub("", text)
    dropped = re.sub(r"\{\s*,", "{", dropped)
    missing = _PLACEHOLDER.search(dropped)
    if missing:
        raise NotAGate(f"needs the argument {missing.group(1)!r} outside a label matcher; give -a {missing.group(1)}=...")
    return dropped, dropped != text


def gate_shape(metric: Metric, args: Mapping[str, str]) -> GateShape:
    """The metric as a threshold gate on a share of requests; NotAGate says why it is not one."""
    threshold = threshold_of(metric)
    interval = prom_duration(metric.interval) if metric.interval else 0.0
    count = _int(metric.count, 1 if not metric.interval else 0)
    if count < 1:
        raise NotAGate(f"metrics[{metric.name}]: no count (a gate that measures forever has no false-rollback rate)")
    limits = dict(count=count, failure_limit=_int(metric.failure_limit, 0),
                  consecutive_success_limit=_int(metric.consecutive_success_limit, 0))
    provider = metric.provider
    if provider.prometheus is not None:
        query, scoped = substitute_args(" ".join(provider.prometheus.query.split()), args)
        ratio = _RATIO.match(query)
        if ratio:
            num, num_w, den, den_w = ratio.groups()
            if num_w != den_w:
                raise NotAGate(f"metrics[{metric.name}]: numerator and denominator windows differ ({num_w}, {den_w})")
            good = threshold.op in ("<", "<=")
            return GateShape(metric.name, PromRatio(num, den), threshold, good, None, prom_duration(num_w), num_w,
                             interval or prom_duration(num_w), canary_scoped=scoped,
                             address=provider.prometheus.address, **limits)
        quantile = _QUANTILE.match(query)
        if quantile:
            q, bucket, window = quantile.groups()
            _latency_direction(metric, threshold)
            return GateShape(metric.name, PromQuantile(bucket), threshold, False, float(q), prom_duration(window),
                             window, interval or prom_duration(window), canary_scoped=scoped,
                             address=provider.prometheus.address, **limits)
        raise NotAGate(f"metrics[{metric.name}]: query is neither sum(rate(a[w])) / sum(rate(b[w])) nor "
                       "histogram_quantile(q, sum by (le) (rate(x_bucket[w])))")
    plugin = (provider.plugin or {}).get(TRAFFIC_PLUGIN)
    if isinstance(plugin, dict):
        return _traffic_shape(metric, plugin, threshold, interval, limits, args)
    raise NotAGate(f"metrics[{metric.name}]: provider is neither prometheus nor {TRAFFIC_PLUGIN}")


def _latency_direction(metric: Metric, threshold: Threshold) -> None:
    if threshold.op not in (">", ">="):
        raise NotAGate(f"metrics[{metric.name}]: a latency gate fails when the quantile is HIGH "
                       f"(result <= bound passes), got failure when value {threshold.op} {threshold.bound:g}")


def _traffic_shape(metric: Metric, plugin: dict[str, object], threshold: Threshold, interval: float,
                   limits: dict[str, int], args: Mapping[str, str]) -> GateShape:
    name = str(plugin.get("metric", ""))
    window_text = str(plugin.get("window", "1m"))
    window = prom_duration(window_text)
    version = str(plugin.get("version", "canary"))
    scoped = version in ("canary", "preview")
    service = _PLACEHOLDER.sub(lambda m: args.get(m.group(1), m.group(0)), str(plugin.get("service") or ""))
    if not service and "service-name" in args:
        service = args["service-name"]  # the provider's own fallback: the analysis argument service-name
    source = TrafficMetric(name, version, service if service and not _PLACEHOLDER.search(service) else None)
    prometheus = plugin.get("prometheus")
    address = str(prometheus["address"]) if isinstance(prometheus, dict) and prometheus.get("address") else None
    if name in ("success-rate", "error-rate"):
        good = name == "success-rate"
        if good != (threshold.op in ("<", "<=")):
            raise NotAGate(f"metrics[{metric.name}]: {name} fails when it is "
                           f"{'low' if good else 'high'}; the condition fails it when value {threshold.op} "
                           f"{threshold.bound:g}")
        return GateShape(metric.name, source, threshold, good, None, window, window_text, interval or window,
                         canary_scoped=scoped, address=address, **limits)
    latency = re.fullmatch(r"latency-p(\d+)", name)
    if latency:
        _latency_direction(metric, threshold)
        raw_q = plugin.get("quantile")
        q = float(str(raw_q)) if raw_q is not None else int(latency.group(1)) / 100
        if not 0 < q < 1 or math.isnan(q):
            raise NotAGate(f"metrics[{metric.name}]: quantile {q} is not in (0, 1)")
        return GateShape(metric.name, source, threshold, False, q, window, window_text, interval or window,
                         canary_scoped=scoped, address=address, **limits)
    raise NotAGate(f"metrics[{metric.name}]: {TRAFFIC_PLUGIN} metric {name!r} is not a per-window share "
                   "(success-rate, error-rate and latency-pNN are)")


__all__ = ["GateShape", "NotAGate", "PromQuantile", "PromRatio", "Threshold", "TrafficMetric", "gate_shape",
           "prom_duration", "substitute_args", "threshold_of"]
