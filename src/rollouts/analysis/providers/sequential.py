"""The built-in `rollouts/sequential` metric provider: an anytime-valid comparison of the canary with the
stable version (statistics in analysis/sequential), written in Argo's plugin syntax:

    provider:
      plugin:
        rollouts/sequential:
          test: errors               # or latency: the share of requests slower than latencyThresholdMs
          alpha: 0.01                # false-alarm bound over the whole test
          minSamples: 100            # canary requests before any verdict other than the hard-outage guard
          maxSamples: 2000           # optional: healthy once this many canary requests showed no regression
          latencyThresholdMs: 500    # latency test only
          since: release             # release (one test across all step gates of the revision, from
                                     # the canary's first request; restart-safe, see "Restarts") or
                                     # run (the default: counts since the analysis run started)
          alternatives: [2, 3, 4, 6] # optional: one-sided grid of rate ratios for the e-value
                                     # (default: the Beta mixture of priorStrength), see evalue.py
          guardRate: 0.2             # hard-outage guard: canary event rate ...
          guardMinEvents: 3          # ... with at least this many events
          service: my-svc            # like rollouts/traffic: else args.service-name, else the rollout's
                                     # (inferred from the run's owner; each arm then counts only the
                                     # pods of its revision: the run's pod hash and status.stableRS)
          prometheus: {address: http://prometheus:9090}   # optional, counts from PromQL
          ingress: my-svc            # Prometheus only: the ingress label (default: the service)

The result is a map, so conditions read `result.regression`, `result.decided`:
    {regression, decided, eValue, canaryErrorRate, stableErrorRate, canaryRequests, stableRequests,
     canaryEvents, stableEvents, reason}
For the latency test the two *ErrorRate fields hold the share of slow requests.
Recommended metric: interval 2s on local counts (the scrape interval with Prometheus), successCondition
`result.decided && !result.regression`, failureCondition `result.regression`, failureLimit 0,
consecutiveSuccessLimit 1, count N and inconclusiveLimit N (undecided measurements are Inconclusive and
must not end the run); see docs/analysis.md.

Restarts. Counts are cumulative from the start of the test, read afresh at every measurement: the
provider keeps no statistical state, and every measurement records its test's start in its metadata
(`start`, `since`), which the AnalysisRun's status stores. With `since: run` the start is the run's stored
status.startedAt (`ctx.run_started_at`). With `since: release` it is the earliest start recorded by this
metric's measurements in the AnalysisRuns of the same rollout and revision (`stored_start`, see
analysis/sequential/release_start.py), so later step gates and a restarted controller continue the same
test, with counts recomputed from that start; only the first measurement of a release asks the
`release_start(namespace, service, version)` callback, else the canary's first request the local stats
remember, else the run's start. Only a context without a run start (not the executor's) falls back to
the first measurement this process took of the run.

Where the counts come from: local TrafficStats bound with `register_sequential_plugin(stats=...)` (the
local runtime does this), else Prometheus (config `prometheus.address` or ROLLOUTS_PROMETHEUS_ADDRESS)
over ingress-nginx's `nginx_ingress_controller_requests` and `..._request_duration_seconds_bucket`
counters, canary vs stable by the `canary` label, increase() over the time since the start. The latency
threshold must then be one of the histogram's bucket bounds (ingress-nginx has 0.5 s).
"""

from __future__ import annotations

import math
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rollouts.analysis.outcome import MeasurementOutcome
from rollouts.analysis.providers._traffic_base import Scope, TrafficPlugin, TrafficSource
from rollouts.analysis.providers.base import MeasureContext
from rollouts.analysis.providers.prometheus import format_float
from rollouts.analysis.providers.registry import register_plugin
from rollouts.analysis.sequential import ArmCounts, SequentialSettings, Verdict, assess_sequential
from rollouts.analysis.sequential.judge import DEFAULT_GUARD_MIN_EVENTS, DEFAULT_GUARD_RATE
from rollouts.analysis.sequential.release_start import StoredStart
from rollouts.spec.analysis import Metric

PLUGIN_NAME = "rollouts/sequential"
FIELD = f"provider.plugin.{PLUGIN_NAME}"
TESTS = ("errors", "latency")
SINCE = ("run", "release")
DEFAULT_LATENCY_THRESHOLD_MS = 500.0
KNOWN_KEYS = frozenset({"test", "alpha", "minSamples", "maxSamples", "latencyThresholdMs", "since", "guardRate",
                        "guardMinEvents", "priorStrength", "alternatives", "service", "prometheus", "ingress", "queries"})

# Geometry of TrafficStats' latency buckets (runtime/local/traffic.py): bucket i holds latencies in
# [1e-5 * 1.02**i, 1e-5 * 1.02**(i+1)) seconds; a bucket counts as slow when its middle is above the bound.
_LATENCY_MIN, _LATENCY_GROWTH = 1e-5, 1.02
# The fine (per-second, with latency) ring of TrafficStats; older starts use the per-minute counts.
_FINE_HORIZON_SECONDS = 35 * 60

_REQ = "nginx_ingress_controller_requests"
_DUR = "nginx_ingress_controller_request_duration_seconds_bucket"
_SEL = 'namespace="${namespace}",ingress="${ingress}",${version_selector}'
DEFAULT_QUERIES: dict[str, str] = {
    "requests": f"sum(increase({_REQ}{{{_SEL}}}[${{range}}]))",
    "errors": f'sum(increase({_REQ}{{{_SEL},status=~"5.."}}[${{range}}]))',
    "fast": f'sum(increase({_DUR}{{{_SEL},le="${{threshold}}"}}[${{range}}]))',
}
_SELECTORS = {"canary": 'canary!=""', "stable": 'canary=""'}

class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class SequentialQuery:
    test: str
    settings: SequentialSettings
    threshold_ms: float
    since: str
    service: str | None
    ingress: str | None
    prometheus: Mapping[str, Any] | None
    queries: Mapping[str, str]


def parse_config(raw: Any) -> SequentialQuery:
    """The plugin config, validated; ConfigError names the field and what would be valid."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{FIELD}: expected a mapping such as {{test: errors}}, got {type(raw).__name__}")
    unknown = sorted(set(raw) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(f"{FIELD}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(KNOWN_KEYS))})")
    test = str(raw.get("test", "errors"))
    if test not in TESTS:
        raise ConfigError(f"{FIELD}.test: {test!r} is not one of {', '.join(TESTS)}")
    since = str(raw.get("since", "run"))
    if since not in SINCE:
        raise ConfigError(f"{FIELD}.since: {since!r} is not one of {', '.join(SINCE)}")
    alpha = _number(raw, "alpha", 0.01, lambda v: 0 < v < 1, "between 0 and 1 (exclusive), e.g. 0.01")
    min_samples = int(_number(raw, "minSamples", 100, lambda v: v >= 0 and v == int(v), "a whole number >= 0"))
    max_raw = raw.get("maxSamples")
    max_samples = None if max_raw is None else int(
        _number(raw, "maxSamples", 0, lambda v: v >= 1 and v == int(v), "a whole number >= 1"))
    threshold = _number(raw, "latencyThresholdMs", DEFAULT_LATENCY_THRESHOLD_MS, lambda v: v > 0, "positive")
    guard_rate = _number(raw, "guardRate", DEFAULT_GUARD_RATE, lambda v: 0 < v <= 1, "in (0, 1], e.g. 0.2")
    guard_events = int(_number(raw, "guardMinEvents", DEFAULT_GUARD_MIN_EVENTS,
                               lambda v: v >= 1 and v == int(v), "a whole number >= 1"))
    prior = _number(raw, "priorStrength", 10.0, lambda v: v > 0, "positive, e.g. 10")
    alternatives = _ratios(raw.get("alternatives"))
    prometheus = raw.get("prometheus")
    if prometheus is not None and not isinstance(prometheus, Mapping):
        raise ConfigError(f"{FIELD}.prometheus: expected a mapping such as {{address: http://prometheus:9090}}")
    queries = raw.get("queries") or {}
    if not isinstance(queries, Mapping) or not set(queries) <= set(DEFAULT_QUERIES) \
            or not all(isinstance(v, str) for v in queries.values()):
        raise ConfigError(f"{FIELD}.queries: expected PromQL templates for {', '.join(DEFAULT_QUERIES)}")
    settings = SequentialSettings(alpha=alpha, min_samples=min_samples, max_samples=max_samples,
                                  guard_rate=guard_rate, guard_min_events=guard_events, prior_strength=prior,
                                  alternatives=alternatives,
                                  event="errors" if test == "errors" else "slow")
    service, ingress = raw.get("service"), raw.get("ingress")
    return SequentialQuery(test=test, settings=settings, threshold_ms=threshold, since=since,
                           service=str(service) if service else None, ingress=str(ingress) if ingress else None,
                           prometheus=prometheus, queries=dict(queries))


def _ratios(raw: Any) -> tuple[float, ...]:
    if raw is None:
        return ()
    valid = "a non-empty list of rate ratios above 1, e.g. [1.5, 2, 3, 4, 6, 8]"
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{FIELD}.alternatives: {raw!r} is not {valid}")
    ratios = []
    for i, value in enumerate(raw):
        try:
            ratio = float(value)
        except (TypeError, ValueError):
            ratio = math.nan
        if isinstance(value, bool) or not ratio > 1.0 or math.isinf(ratio):
            raise ConfigError(f"{FIELD}.alternatives[{i}]: {value!r} is not a rate ratio above 1 ({valid})")
        ratios.append(ratio)
    return tuple(ratios)


def _number(raw: Mapping[str, Any], key: str, default: float, ok: Callable[[float], bool], valid: str) -> float:
    value = raw.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or math.isnan(number) or not ok(number):
        raise ConfigError(f"{FIELD}.{key}: {value!r} is not {valid}")
    return number


def verdict_outcome(verdict: Verdict, meta: Mapping[str, str]) -> MeasurementOutcome:
    """The measurement for a verdict: the result map, printed as compact JSON-like text."""
    result = verdict.to_result()
    printed = "{" + ",".join(f'"{k}":{_printed(v)}' for k, v in result.items()) + "}"
    return MeasurementOutcome(value=result, printed=printed, metadata=dict(meta))


def _printed(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return format_float(round(value, 6))
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


class SequentialMetricProvider(TrafficPlugin):
    """Judges the canary against the stable version with the sequential test on cumulative counts."""

    field = FIELD

    def __init__(self, *, stored_start: StoredStart | None = None, **options: Any) -> None:
        super().__init__(**options)
        self._stored_start = stored_start
        self._first_measured: dict[tuple[str, str, str], float] = {}

    async def measure(self, metric: Metric, ctx: MeasureContext) -> MeasurementOutcome:
        try:
            query = parse_config((metric.provider.plugin or {}).get(PLUGIN_NAME))
        except (ConfigError, ValueError) as exc:
            return ctx.error(str(exc))
        scope = self._scope(query.service, ctx)
        if scope is None:
            return self._no_service(ctx)
        service = scope.service
        now = self._clock()
        run_key = (ctx.namespace, ctx.run_name, ctx.metric_name)
        if ctx.run_started_at is not None:
            run_start = ctx.run_started_at.timestamp()
        else:
            run_start = self._first_measured.setdefault(run_key, now)
        start = run_start
        if query.since == "release":
            # The start stored in this release's AnalysisRuns first: it survives a controller restart.
            release = self._stored_start(ctx) if self._stored_start is not None else None
            if release is None and self._release_start is not None:
                release = self._release_start(ctx.namespace, service, "canary")
            if release is None and self._stats is not None:
                release = self._stats.first_seen(ctx.namespace, service, "canary", pod_hash=scope.pod_hash("canary"))
            start = release if release is not None else run_start
        meta = {"service": service, "test": query.test, "since": query.since,
                "start": format_float(round(start, 3))}
        address = self._prometheus_address(query.prometheus, ctx)
        try:
            if address:
                counts = await self._prometheus_counts(metric, query, service, address, now - start, ctx)
                budget = None
                if query.since == "release" and query.settings.max_samples is not None:
                    budget = (await self._prometheus_counts(metric, query, service, address,
                                                            now - run_start, ctx))[0].requests
            elif self._stats is not None:
                counts = self._local_counts(self._stats, query, ctx.namespace, scope, start, now)
                budget = None
                if query.since == "release" and query.settings.max_samples is not None:
                    budget = self._local_counts(self._stats, query, ctx.namespace, scope, run_start,
                                                now)[0].requests
            else:
                return self._no_source(ctx)
        except _QueryFailed as exc:
            return MeasurementOutcome(error=str(exc), metadata=meta)
        canary, stable = counts
        return verdict_outcome(assess_sequential(canary, stable, query.settings, budget_requests=budget), meta)

    @staticmethod
    def _local_counts(
        stats: TrafficSource, query: SequentialQuery, namespace: str, scope: Scope, start: float, now: float
    ) -> tuple[ArmCounts, ArmCounts]:
        # Each arm counts only its own revision's pods (when the run's rollout is known): answers of an
        # older canary, or 503s while no pod was ready, are neither arm's evidence.
        elapsed = max(now - start, 0.0)
        arms = []
        for version in ("canary", "stable"):
            pod_hash = scope.pod_hash(version)
            if elapsed <= _FINE_HORIZON_SECONDS:
                window = stats.window(namespace, scope.service, version, max(elapsed, 1.0), now, pod_hash=pod_hash)
            else:
                window = stats.since(namespace, scope.service, version, start, now, pod_hash=pod_hash)
            if query.test == "errors":
                arms.append(ArmCounts(window.requests, window.errors))
            else:
                limit = query.threshold_ms / 1000.0
                counts = getattr(window, "latency_counts", ())
                slow = sum(c for i, c in counts if _LATENCY_MIN * _LATENCY_GROWTH ** (i + 0.5) > limit)
                timed = sum(c for _, c in counts)
                arms.append(ArmCounts(timed, slow))
        return arms[0], arms[1]

    async def _prometheus_counts(
        self, metric: Metric, query: SequentialQuery, service: str, address: str, elapsed: float,
        ctx: MeasureContext,
    ) -> tuple[ArmCounts, ArmCounts]:
        arms = []
        for version in ("canary", "stable"):
            values = {"namespace": ctx.namespace, "service": service, "ingress": query.ingress or service,
                      "version_selector": _SELECTORS[version], "range": f"{max(int(math.ceil(elapsed)), 1)}s",
                      "threshold": format_float(query.threshold_ms / 1000.0)}
            requests = await self._scalar(metric, query, "requests", values, address, ctx)
            other = await self._scalar(metric, query, "errors" if query.test == "errors" else "fast",
                                       values, address, ctx)
            events = other if query.test == "errors" else requests - other
            requests_n = max(int(round(requests)), 0)
            arms.append(ArmCounts(requests_n, min(max(int(round(events)), 0), requests_n)))
        return arms[0], arms[1]

    async def _scalar(self, metric: Metric, query: SequentialQuery, key: str, values: Mapping[str, str],
                      address: str, ctx: MeasureContext) -> float:
        template = query.queries.get(key) or DEFAULT_QUERIES[key]
        try:
            promql = string.Template(template).substitute(values)
        except (KeyError, ValueError) as exc:
            raise _QueryFailed(f"{FIELD}.queries.{key}: unknown or malformed placeholder {exc}") from None
        try:
            inner = self._prometheus_metric(metric, query.prometheus, promql=promql, address=address)
        except ValueError as exc:
            raise _QueryFailed(f"{FIELD}.prometheus: {exc}") from None
        outcome = await self._prometheus.measure(inner, ctx)
        if outcome.error is not None:
            raise _QueryFailed(outcome.error)
        value = outcome.value
        if isinstance(value, list):
            value = value[0] if value else None
        # No series means nothing was counted yet (e.g. no 5xx at all): zero, not missing data.
        return float(value) if isinstance(value, float | int) and not math.isnan(value) else 0.0


class _QueryFailed(Exception):
    pass


def sequential_provider_factory(
    stats: TrafficSource | None = None, **options: Any
) -> Callable[[], SequentialMetricProvider]:
    """A provider factory bound to local stats (or to none: Prometheus only). One provider instance per
    factory, so the in-memory start times of runs survive between measurements."""
    provider = SequentialMetricProvider(stats=stats, **options)

    def factory() -> SequentialMetricProvider:
        return provider

    return factory


def register_sequential_plugin(stats: TrafficSource | None = None, **options: Any) -> None:
    # options: TrafficPlugin's callbacks, and stored_start (release_start.store_release_start(store.list))
    """Make `plugin: {rollouts/sequential: ...}` measurable, reading `stats` when given (replaces any earlier
    registration: the controller binds its own stats at start)."""
    register_plugin(PLUGIN_NAME, sequential_provider_factory(stats, **options), replace=True)
