"""The built-in `rollouts/traffic` metric provider, written in Argo's plugin syntax:

    provider:
      plugin:
        rollouts/traffic:
          metric: success-rate     # error-rate, latency-p50/p95/p99, request-count, error-budget-burn
          version: canary          # stable, preview, active
          window: 1m               # look-back of rates, quantiles and counts
          slo: 0.995               # for error-budget-burn
          service: my-svc          # optional, see "Which service" below
          quantile: 0.95           # optional, overrides the quantile of latency-pNN
          minRequests: 50          # optional, fewer requests in the window: Inconclusive (0: no minimum)
          budgetPeriod: 30d        # optional, the SLO period of error-budget-burn
          prometheus: {address: http://prometheus:9090}   # optional, measure through Prometheus
          queries: {success-rate: "..."}                   # optional, PromQL templates per metric

Results are plain numbers (success-rate and error-rate are ratios 0..1, latencies are seconds), so
conditions read `result >= 0.995`. request-count is a plain count (zero is a real count).

Minimum sample: every other metric needs `minRequests` requests (default 50) in what it reads (the window;
for error-budget-burn the requests since the release started); with fewer the measurement is Inconclusive
whatever its value, and its message says how many requests were seen. A rate over 3 requests is not
evidence: with `count: 1` it would promote a 20 %-error release one time in two. `minRequests: 0` restores
the bare behaviour: no request at all gives a None result (printed empty) and conditions comparing it fail
with an error, so no traffic is never a success.

What is counted (local stats): only requests served by pods of the revision under test, and only since the
analysis run started; a measurement taken less than `window` after the run started waits (in flight) until
its whole window lies inside the run, so the first one is not judged on a sliver (error-budget-burn too: its
count since the release then covers at least `window`). When the run belongs to a rollout of the measured service, canary and preview mean
the run's `rollouts-pod-template-hash` (the revision the run was started for), stable the rollout's
`status.stableRS`, active its `status.blueGreen.activeSelector`; so an old version's answers on the preview
Service, or answers from before the run, never count. Answers no pod gave (503 while no pod was ready)
count for the service as a whole (the request rate of error-budget-burn), never for a revision. Through
Prometheus neither the hash nor the run start can be told apart by ingress-nginx's metrics: the window is
what it is there.

Which service: the `service` key of the config (usually `"{{args.service-name}}"`); else the analysis
argument `service-name` when the measure context carries arguments (`ctx.args`); else the service of the
rollout that owns the run (the controller binds `run_target`, see run_target.py: the logical service of its
stable Ingress, or its blue/green active Service); else what a `default_service(ctx)` callback answers;
else the measurement is an Error that says to set `service`.

Where the numbers come from:
- Local stats (a `TrafficSource`, normally the local runtime's TrafficStats, bound by the controller with
  `register_traffic_plugin(stats=...)`): `version` maps to the stats' versions: canary -> canary, stable ->
  stable, active -> stable + active (ingress traffic plus direct requests to the active Service), preview ->
  preview (direct requests to the preview Service).
- Prometheus, when the config has `prometheus.address`, or when no local stats are bound and
  ROLLOUTS_PROMETHEUS_ADDRESS is set: PromQL over ingress-nginx's metrics (`nginx_ingress_controller_requests`,
  `nginx_ingress_controller_request_duration_seconds_bucket`) filtered by namespace and ingress (config key
  `ingress`, default: the service name) and by the `canary` label (non-empty for canary traffic). Templates
  use `${name}` placeholders: namespace, ingress, service, window, quantile, slo, budget_seconds,
  release_window, version_selector; replace any of them per metric with `queries:`.

error-budget-burn is an estimate: the errors (5xx) the version served since the release started, divided by
the error budget of a whole budget period (30 days by default) at the service's current traffic:
    burn = errors_since_release / ((1 - slo) * request_rate * budget_period_seconds)
where request_rate is the requests per second to the service (all versions) over the stats' horizon
(35 minutes, or since the first request when shorter). The release start is what the controller's
`release_start(namespace, service, version)` callback answers, else the first request of that version the
stats remember. Through Prometheus the errors are counted over `release_window` (config `releaseWindow`,
default: `window`) and the rate over `rateWindow` (default 30m).
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rollouts.analysis.outcome import MeasurementOutcome
from rollouts.analysis.providers._traffic_base import (
    DEFAULT_MIN_REQUESTS,
    Scope,
    TrafficPlugin,
    TrafficSource,
)
from rollouts.analysis.providers.base import MeasureContext
from rollouts.analysis.providers.prometheus import format_float
from rollouts.analysis.providers.registry import register_plugin
from rollouts.spec.analysis import Metric
from rollouts.spec.duration import DurationError, parse_duration

PLUGIN_NAME = "rollouts/traffic"
FIELD = f"provider.plugin.{PLUGIN_NAME}"

METRICS = (
    "success-rate",
    "error-rate",
    "latency-p50",
    "latency-p95",
    "latency-p99",
    "request-count",
    "error-budget-burn",
)
VERSIONS: dict[str, tuple[str, ...]] = {
    "canary": ("canary",),
    "stable": ("stable",),
    "active": ("stable", "active"),
    "preview": ("preview",),
}
DEFAULT_WINDOW = "1m"
DEFAULT_SLO = 0.995
DEFAULT_BUDGET_PERIOD = "30d"
DEFAULT_RATE_WINDOW = "30m"
NO_DATA_KEY = "NoData"
QUERY_KEY = "ResolvedPrometheusQuery"

_REQ = "nginx_ingress_controller_requests"
_DUR = "nginx_ingress_controller_request_duration_seconds_bucket"
_SEL = 'namespace="${namespace}",ingress="${ingress}",${version_selector}'
_SERVICE_SEL = 'namespace="${namespace}",ingress="${ingress}"'
DEFAULT_QUERIES: dict[str, str] = {
    "success-rate": (
        f'sum(rate({_REQ}{{{_SEL},status!~"5.."}}[${{window}}])) / sum(rate({_REQ}{{{_SEL}}}[${{window}}]))'
    ),
    "error-rate": (
        f'sum(rate({_REQ}{{{_SEL},status=~"5.."}}[${{window}}])) / sum(rate({_REQ}{{{_SEL}}}[${{window}}]))'
    ),
    "latency": f"histogram_quantile(${{quantile}}, sum by (le) (rate({_DUR}{{{_SEL}}}[${{window}}])))",
    "request-count": f"sum(increase({_REQ}{{{_SEL}}}[${{window}}]))",
    "error-budget-burn": (
        f'(sum(increase({_REQ}{{{_SEL},status=~"5.."}}[${{release_window}}])) or vector(0))'
        f" / ((1 - ${{slo}}) * sum(rate({_REQ}{{{_SERVICE_SEL}}}[${{rate_window}}])) * ${{budget_seconds}})"
    ),
}
_VERSION_SELECTORS = {"canary": 'canary!=""', "stable": 'canary=""', "active": 'canary=""'}


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class TrafficQuery:
    """A validated plugin config."""

    metric: str
    version: str
    window: str
    window_seconds: float
    slo: float
    quantile: float | None
    budget_seconds: float
    service: str | None
    ingress: str | None
    prometheus: Mapping[str, Any] | None
    queries: Mapping[str, str]
    release_window: str | None
    rate_window: str
    min_requests: int = DEFAULT_MIN_REQUESTS


class TrafficMetricProvider(TrafficPlugin):
    """Measures request success, latency and error-budget burn of one version of a service."""

    field = FIELD

    async def measure(self, metric: Metric, ctx: MeasureContext) -> MeasurementOutcome:
        try:
            query = parse_config((metric.provider.plugin or {}).get(PLUGIN_NAME))
        except ConfigError as exc:
            return ctx.error(str(exc))
        scope = self._scope(query.service, ctx)
        if scope is None:
            return self._no_service(ctx)
        address = self._prometheus_address(query.prometheus, ctx)
        if address:
            return await self._measure_prometheus(metric, query, scope.service, address, ctx)
        if self._stats is None:
            return self._no_source(ctx)
        if scope.not_before is not None:
            # A window reaching back before the run would be clipped short (the run's first measurement
            # would see nothing, or for error-budget-burn a release seconds old): wait until the whole
            # window lies inside the run.
            await self._wait_until(window_inside_run_at(scope.not_before, query))
        return self._measure_local(self._stats, query, scope, ctx)

    # --- local --------------------------------------------------------------------------------------

    def _measure_local(
        self, stats: TrafficSource, query: TrafficQuery, scope: Scope, ctx: MeasureContext
    ) -> MeasurementOutcome:
        now = self._clock()
        service = scope.service
        versions = VERSIONS[query.version]
        pod_hash = scope.pod_hash(query.version)
        where = f"{query.version} of {ctx.namespace}/{service}"
        if pod_hash:
            where += f" (revision {pod_hash})"
        if query.metric == "error-budget-burn":
            return self._burn(stats, query, service, versions, pod_hash, where, ctx, now)
        window = stats.window(ctx.namespace, service, versions, query.window_seconds, now,
                              pod_hash=pod_hash, not_before=scope.not_before)
        meta = {"service": service, "version": query.version, "window": query.window,
                "requests": str(window.requests), "errors": str(window.errors)}
        if pod_hash:
            meta["podHash"] = pod_hash
        span = f"in the last {query.window}"
        if scope.not_before is not None and scope.not_before > now - query.window_seconds:
            span = f"since the run started ({round(max(now - scope.not_before, 0.0))}s ago)"
        if query.metric == "request-count":
            return _number(float(window.requests), meta)
        if (thin := too_few_requests(window.requests, query, f"to the {where} {span}", meta)) is not None:
            return thin
        if window.requests == 0:
            return _no_data(f"no requests to the {where} {span}", meta)
        value: float | None
        if query.metric == "success-rate":
            value = window.success_rate
        elif query.metric == "error-rate":
            value = window.error_rate
        else:
            value = window.quantile(_quantile(query))
        if value is None:
            return _no_data(f"no latency samples for the {where} in the last {query.window}", meta)
        return _number(value, meta)

    def _burn(
        self,
        stats: TrafficSource,
        query: TrafficQuery,
        service: str,
        versions: tuple[str, ...],
        pod_hash: str | None,
        where: str,
        ctx: MeasureContext,
        now: float,
    ) -> MeasurementOutcome:
        start = self._release_start(ctx.namespace, service, query.version) if self._release_start else None
        if start is None:
            start = stats.first_seen(ctx.namespace, service, versions, pod_hash=pod_hash)
        meta = {"service": service, "version": query.version, "slo": format_float(query.slo)}
        if pod_hash:
            meta["podHash"] = pod_hash
        if start is None:
            if (thin := too_few_requests(0, query, f"served by the {where}", meta)) is not None:
                return thin
            return _no_data(f"the {where} has served no request yet", meta)
        served = stats.since(ctx.namespace, service, versions, start, now, pod_hash=pod_hash)
        errors = served.errors
        rate = stats.request_rate(ctx.namespace, service, now)
        meta.update(errors=str(errors), requests=str(served.requests), releaseStart=format_float(round(start, 3)))
        thin = too_few_requests(served.requests, query, f"served by the {where} since its release", meta)
        if thin is not None:
            return thin
        if not rate:
            return _no_data(f"no recent requests to {ctx.namespace}/{service}: its error budget is unknown", meta)
        budget = (1 - query.slo) * rate * query.budget_seconds
        meta.update(requestRate=format_float(round(rate, 6)), budget=format_float(round(budget, 3)))
        return _number(errors / budget, meta)

    # --- prometheus ---------------------------------------------------------------------------------

    async def _measure_prometheus(
        self, metric: Metric, query: TrafficQuery, service: str, address: str, ctx: MeasureContext
    ) -> MeasurementOutcome:
        selector = _VERSION_SELECTORS.get(query.version)
        template_key = "latency" if query.metric.startswith("latency-") else query.metric
        template = query.queries.get(query.metric) or query.queries.get(template_key)
        if selector is None and template is None:
            return ctx.error(
                f"{FIELD}.version: {query.version!r} traffic does not pass the NGINX ingress, so its metrics "
                f"cannot tell it apart; give {FIELD}.queries.{query.metric} or use canary, stable or active"
            )
        template = template or DEFAULT_QUERIES[template_key]
        values = {
            "namespace": ctx.namespace,
            "service": service,
            "ingress": query.ingress or service,
            "window": query.window,
            "quantile": format_float(_quantile(query)) if template_key == "latency" else "",
            "slo": format_float(query.slo),
            "budget_seconds": format_float(query.budget_seconds),
            "release_window": query.release_window or query.window,
            "rate_window": query.rate_window,
            "version_selector": selector or "",
        }
        try:
            promql = string.Template(template).substitute(values)
        except (KeyError, ValueError) as exc:
            return ctx.error(f"{FIELD}.queries.{template_key}: unknown or malformed placeholder {exc} "
                             f"(known: {', '.join('${' + k + '}' for k in values)})")
        try:
            inner = self._prometheus_metric(metric, query.prometheus, promql=promql, address=address)
        except ValueError as exc:
            return ctx.error(f"{FIELD}.prometheus: {exc}")
        outcome = await self._prometheus.measure(inner, ctx)
        if outcome.error is not None:
            return outcome
        meta = {QUERY_KEY: ctx.redact(promql), "service": service, "version": query.version}
        if query.metric != "request-count" and query.min_requests > 0:
            seen = await self._prometheus_requests(metric, query, values, address, ctx)
            if isinstance(seen, MeasurementOutcome):
                return seen
            if seen is not None:
                meta["requests"] = str(seen)
                if seen < query.min_requests:
                    span = values["release_window"] if query.metric == "error-budget-burn" else query.window
                    return _too_few(seen, query.min_requests, f"to the {query.version} of {service} in {span}",
                                    meta)
        value = outcome.value
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, float | int) and not math.isnan(value):
            return _number(float(value), meta)
        if query.metric == "request-count" and value is None:
            return _number(0.0, meta)
        return _no_data(f"Prometheus returned no sample for the {query.version} of {service}", meta)


    async def _prometheus_requests(
        self, metric: Metric, query: TrafficQuery, values: Mapping[str, str], address: str, ctx: MeasureContext
    ) -> int | None | MeasurementOutcome:
        """Requests of the version in the measured range, for the minimum sample; None when they cannot be
        told apart (a custom query for a version without a selector and no `queries.request-count`)."""
        template = query.queries.get("request-count")
        if template is None:
            if not values["version_selector"]:
                return None
            template = DEFAULT_QUERIES["request-count"]
        span = values["release_window"] if query.metric == "error-budget-burn" else values["window"]
        try:
            promql = string.Template(template).substitute({**values, "window": span})
            inner = self._prometheus_metric(metric, query.prometheus, promql=promql, address=address)
        except (KeyError, ValueError) as exc:
            return ctx.error(f"{FIELD}.queries.request-count: {exc}")
        outcome = await self._prometheus.measure(inner, ctx)
        if outcome.error is not None:
            return outcome
        value = outcome.value
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, float | int) and not math.isnan(value):
            return max(int(round(value)), 0)
        return 0


# --- config ---------------------------------------------------------------------------------------------


def parse_config(raw: Any) -> TrafficQuery:
    """The plugin config, validated; ConfigError names the field and what would be valid."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{FIELD}: expected a mapping with at least `metric`, got {type(raw).__name__}")
    known = {"metric", "version", "window", "slo", "service", "quantile", "budgetPeriod", "prometheus",
             "queries", "ingress", "releaseWindow", "rateWindow", "minRequests"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{FIELD}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    metric = raw.get("metric")
    if metric not in METRICS:
        raise ConfigError(f"{FIELD}.metric: {metric!r} is not one of {', '.join(METRICS)}")
    version = str(raw.get("version", "canary"))
    if version not in VERSIONS:
        raise ConfigError(f"{FIELD}.version: {version!r} is not one of {', '.join(VERSIONS)}")
    window = str(raw.get("window", DEFAULT_WINDOW))
    window_seconds = _duration(window, "window")
    if window_seconds <= 0:
        raise ConfigError(f"{FIELD}.window: {window!r} must be positive, e.g. 1m")
    slo = _ratio(raw.get("slo", DEFAULT_SLO), "slo", open_top=True)
    quantile = None if raw.get("quantile") is None else _ratio(raw["quantile"], "quantile", open_top=False)
    budget = _duration(str(raw.get("budgetPeriod", DEFAULT_BUDGET_PERIOD)), "budgetPeriod")
    if budget <= 0:
        raise ConfigError(f"{FIELD}.budgetPeriod: must be positive, e.g. 30d")
    prometheus = raw.get("prometheus")
    if prometheus is not None and not isinstance(prometheus, Mapping):
        raise ConfigError(f"{FIELD}.prometheus: expected a mapping such as {{address: http://prometheus:9090}}")
    queries = raw.get("queries") or {}
    if not isinstance(queries, Mapping) or not all(isinstance(v, str) for v in queries.values()):
        raise ConfigError(f"{FIELD}.queries: expected a mapping of metric name to PromQL template")
    release_window = raw.get("releaseWindow")
    if release_window is not None:
        _duration(str(release_window), "releaseWindow")
    rate_window = str(raw.get("rateWindow", DEFAULT_RATE_WINDOW))
    _duration(rate_window, "rateWindow")
    service = raw.get("service")
    ingress = raw.get("ingress")
    min_requests = raw.get("minRequests", DEFAULT_MIN_REQUESTS)
    if isinstance(min_requests, str) and min_requests.strip().isdigit():
        min_requests = int(min_requests)  # from an argument substitution: "{{args.min-requests}}"
    if isinstance(min_requests, bool) or not isinstance(min_requests, int) or min_requests < 0:
        raise ConfigError(f"{FIELD}.minRequests: {min_requests!r} is not a whole number >= 0, e.g. 50")
    return TrafficQuery(
        metric=str(metric),
        version=version,
        window=window,
        window_seconds=window_seconds,
        slo=slo,
        quantile=quantile,
        budget_seconds=budget,
        service=str(service) if service else None,
        ingress=str(ingress) if ingress else None,
        prometheus=prometheus,
        queries=dict(queries),
        release_window=str(release_window) if release_window else None,
        rate_window=rate_window,
        min_requests=min_requests,
    )


_DAYS = re.compile(r"^(\d+(?:\.\d+)?)d(.*)$")


def _duration(text: str, key: str) -> float:
    # Go durations have no day unit; SLO periods are written in days (30d), so days are accepted here.
    days = 0.0
    match = _DAYS.match(text.strip())
    if match:
        days, text = float(match.group(1)), match.group(2)
    try:
        rest = parse_duration(text, bare_number_is_seconds=False) if text else 0.0
    except DurationError as exc:
        raise ConfigError(f"{FIELD}.{key}: {exc}") from exc
    return days * 86400 + rest


def _ratio(value: Any, key: str, *, open_top: bool) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    ok = 0 < number < 1 if open_top else 0 < number <= 1
    if not ok:
        bound = "0 and 1 (exclusive)" if open_top else "0 (exclusive) and 1"
        raise ConfigError(f"{FIELD}.{key}: {value!r} is not between {bound}, e.g. 0.995")
    return number


def _quantile(query: TrafficQuery) -> float:
    if query.quantile is not None:
        return query.quantile
    if query.metric.startswith("latency-p"):
        return int(query.metric.removeprefix("latency-p")) / 100
    return 0.5


def _number(value: float, meta: dict[str, str]) -> MeasurementOutcome:
    return MeasurementOutcome(value=value, printed=format_float(value), metadata=meta)


def window_inside_run_at(run_started: float, query: TrafficQuery) -> float:
    """The earliest time (epoch seconds, or any clock the run's start is on) a measurement from local
    statistics may be taken: once its whole window lies inside the run. Shared with `rollouts simulate`."""
    return run_started + query.window_seconds


def too_few_requests(seen: int, query: TrafficQuery, where: str, meta: dict[str, str]) -> MeasurementOutcome | None:
    """The Inconclusive outcome when `seen` requests are fewer than the query's minRequests, else None
    (request-count is a plain count, never thin). Shared with `rollouts simulate`."""
    if query.metric == "request-count" or seen >= query.min_requests:
        return None
    return _too_few(seen, query.min_requests, where, meta)


def _too_few(seen: int, needed: int, where: str, meta: dict[str, str]) -> MeasurementOutcome:
    """Inconclusive: too few requests to judge, whatever the value would be."""
    message = (f"only {seen} request{'s' if seen != 1 else ''} {where}, fewer than minRequests ({needed}): "
               "too few to judge")
    return MeasurementOutcome(value=None, printed="", phase="Inconclusive", message=message,
                              metadata={**meta, "requests": str(seen), "minRequests": str(needed)})


def _no_data(reason: str, meta: dict[str, str]) -> MeasurementOutcome:
    return MeasurementOutcome(value=None, printed="", metadata={**meta, NO_DATA_KEY: reason})


# --- registration ---------------------------------------------------------------------------------------


def traffic_provider_factory(
    stats: TrafficSource | None = None, **options: Any
) -> Callable[[], TrafficMetricProvider]:
    """A provider factory bound to local stats (or to none: Prometheus only)."""

    def factory() -> TrafficMetricProvider:
        return TrafficMetricProvider(stats=stats, **options)

    return factory


def register_traffic_plugin(stats: TrafficSource | None = None, **options: Any) -> None:
    """Make `plugin: {rollouts/traffic: ...}` measurable, reading `stats` when given (replaces any earlier
    registration: the controller binds its own stats at start)."""
    register_plugin(PLUGIN_NAME, traffic_provider_factory(stats, **options), replace=True)
