"""The `prometheus` metric provider: one instant (or range) query against Prometheus' HTTP API, its result
typed the way Argo hands it to the conditions (scalar -> float, vector -> list of floats, matrix -> all
samples flattened, string -> str) and printed the way Argo stores it (`[0.98]`, `[]`, `NaN`)."""

from __future__ import annotations

import logging
import math
import re
import time
from decimal import Decimal
from typing import Any, cast

import httpx

from rollouts.analysis.outcome import MeasurementOutcome
from rollouts.analysis.providers._http import (
    RequestFailed,
    authorize,
    client,
    describe,
    header_dict,
    send,
    snippet,
)
from rollouts.analysis.providers.base import MeasureContext
from rollouts.kube.dns import ResolveError, resolve_url
from rollouts.spec.analysis import Metric, PrometheusProvider, RangeQuery
from rollouts.spec.duration import DurationError, parse_duration

log = logging.getLogger(__name__)

ADDRESS_ENV_VARS = ("ROLLOUTS_PROMETHEUS_ADDRESS", "ARGO_ROLLOUTS_PROMETHEUS_ADDRESS")
DEFAULT_TIMEOUT_SECONDS = 30
QUERY_METADATA_KEY = "ResolvedPrometheusQuery"
ADDRESS_METADATA_KEY = "PrometheusAddress"  # the address queried (an override may replace the template's)
FIELD = "provider.prometheus"


class PrometheusMetricProvider:
    """Measures a metric with a PromQL query."""

    type_label = "Prometheus"

    def __init__(self, *, clock: Any = time.time) -> None:
        # The clock only places range queries in time; tests pin it.
        self._clock = clock

    async def measure(self, metric: Metric, ctx: MeasureContext) -> MeasurementOutcome:
        spec = metric.provider.prometheus
        if spec is None:
            return ctx.error(f"metric {metric.name!r} has no {FIELD} section")
        if not spec.query.strip():
            # Argo's schema allows a metric without a query (lint warns); measuring one is an Error, never
            # a request to Prometheus that a permissive endpoint might answer with a value.
            return ctx.error(f"metric {metric.name!r}: {FIELD}.query is empty: give a PromQL expression, e.g. "
                             'sum(rate(http_requests_total{code!~"5.."}[5m])) / sum(rate(http_requests_total[5m]))')
        metadata = {QUERY_METADATA_KEY: ctx.redact(spec.query)}
        address = resolve_address(spec, ctx)
        if not address:
            return ctx.error(
                f"{FIELD}.address is empty and neither {' nor '.join(ADDRESS_ENV_VARS)} is set: "
                "give the Prometheus base URL, e.g. http://prometheus:9090",
                **metadata,
            )
        metadata[ADDRESS_METADATA_KEY] = ctx.redact(address)
        timeout = float(spec.timeout if spec.timeout and spec.timeout > 0 else DEFAULT_TIMEOUT_SECONDS)
        try:
            # A cluster Service name (prometheus.prometheus.svc) reaches the local cluster's listener when
            # the operator installed a resolver (rollouts.kube.dns).
            resolved = await resolve_url(address, ctx.namespace)
        except ResolveError as exc:
            return ctx.error(f"Prometheus at {address}: {exc}", **metadata)
        try:
            path, params = self._request_params(spec, timeout)
            body = await _query(spec, resolved.url.rstrip("/"), path, params, timeout, host=resolved.host)
            value, printed = interpret(body)
        except RequestFailed as exc:
            log.debug("prometheus measurement of %s failed: %s", metric.name, ctx.redact(str(exc)))
            return ctx.error(f"Prometheus at {address}: {exc}", **metadata)
        return MeasurementOutcome(value=value, printed=printed, metadata=metadata)

    def _request_params(self, spec: PrometheusProvider, timeout: float) -> tuple[str, dict[str, str]]:
        params = {"query": spec.query, "timeout": f"{timeout:g}s"}
        if spec.range_query is None:
            return "/api/v1/query", params
        start, end, step = range_window(spec.range_query, now=self._clock())
        params.update(start=_number(start), end=_number(end), step=_number(step))
        return "/api/v1/query_range", params


def resolve_address(spec: PrometheusProvider, ctx: MeasureContext) -> str:
    if spec.address:
        return spec.address.rstrip("/")
    env = ctx.environment()
    for name in ADDRESS_ENV_VARS:
        if env.get(name):
            return env[name].rstrip("/")
    return ""


async def _query(
    spec: PrometheusProvider, address: str, path: str, params: dict[str, str], timeout: float,
    host: str | None = None,
) -> dict[str, Any]:
    headers = header_dict(spec.headers)
    if host and not any(key.lower() == "host" for key in headers):
        headers["Host"] = host
    async with client(timeout=timeout, insecure=spec.insecure) as http:
        try:
            basic = await authorize(http, spec.authentication, headers, field=f"{FIELD}.authentication")
            auth = basic if basic is not None else httpx.USE_CLIENT_DEFAULT
            # Prometheus' own client POSTs the form (long queries fit) and falls back to GET when a proxy
            # refuses POST.
            response = await send(http, "POST", address + path, timeout=timeout, data=params, headers=headers,
                                  auth=auth)
            if response.status_code == 405:
                response = await send(http, "GET", address + path, timeout=timeout, params=params,
                                      headers=headers, auth=auth)
        except httpx.TimeoutException as exc:
            raise RequestFailed(f"no answer within {timeout:g}s (timeout)") from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise RequestFailed(describe(exc)) from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise RequestFailed(
            f"HTTP {response.status_code}, not a Prometheus API answer: {snippet(response.text)}"
        )
    if body.get("status") != "success" or not response.is_success:
        kind = body.get("errorType") or "error"
        message = body.get("error") or snippet(response.text)
        raise RequestFailed(f"query failed with HTTP {response.status_code}: {kind}: {message}")
    return body


def interpret(body: dict[str, Any]) -> tuple[Any, str]:
    """The typed result and its printed form from a successful API answer."""
    data = body.get("data")
    if not isinstance(data, dict):
        raise RequestFailed("answer has no data section")
    kind, result = data.get("resultType"), cast(Any, data.get("result"))
    try:
        if kind == "scalar":
            number = _sample(result)
            return number, format_float(number)
        if kind == "string":
            text = str(result[1])
            return text, text
        if kind == "vector":
            numbers = [_sample(item["value"]) for item in result or []]
            return numbers, format_floats(numbers)
        if kind == "matrix":
            numbers = [_sample(pair) for series in result or [] for pair in series.get("values") or []]
            return numbers, format_floats(numbers)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise RequestFailed(f"malformed {kind} result: {snippet(str(result))}") from exc
    raise RequestFailed(f"result type {kind!r} is not supported (expected scalar, vector, matrix or string)")


def _sample(pair: Any) -> float:
    # Samples are [unix_time, "value"]; the value is a string so that NaN and +Inf survive JSON.
    return float(pair[1])


def format_float(number: float) -> str:
    """Shortest decimal form without exponent, as Prometheus' Go client prints sample values."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    return format(Decimal(repr(number)).normalize(), "f")


def format_floats(numbers: list[float]) -> str:
    return "[" + ",".join(format_float(n) for n in numbers) + "]"


def _number(value: float) -> str:
    return format_float(round(value, 3))


# --- range queries: `now()`, `now() - duration("5m")`, `now() + duration("1h")` -------------------------

_TIME_TERM = re.compile(r"""\s*([+-])\s*duration\(\s*(["'])(.*?)\2\s*\)""")
_NOW = re.compile(r"\s*now\(\s*\)")


class TimeExpressionError(ValueError):
    pass


def eval_time_expression(text: str, *, now: float) -> float:
    """Unix seconds for a time expression made of `now()` plus or minus `duration("...")` terms."""
    match = _NOW.match(text)
    if not match:
        raise TimeExpressionError(f"{text!r} must start with now()")
    moment, pos = now, match.end()
    while pos < len(text.rstrip()):
        term = _TIME_TERM.match(text, pos)
        if not term:
            raise TimeExpressionError(f"{text!r}: expected + duration(\"...\") or - duration(\"...\") "
                                      f"at {text[pos:].strip()!r}")
        try:
            seconds = parse_duration(term.group(3), bare_number_is_seconds=False)
        except DurationError as exc:
            raise TimeExpressionError(f"{text!r}: {exc}") from exc
        moment += seconds if term.group(1) == "+" else -seconds
        pos = term.end()
    return moment


def range_window(range_query: RangeQuery, *, now: float) -> tuple[float, float, float]:
    """(start, end, step) in seconds; raises RequestFailed naming the field at fault."""
    field = f"{FIELD}.rangeQuery"
    hint = 'use now(), now() - duration("5m") or now() + duration("1h")'
    if not range_query.start:
        raise RequestFailed(f'{field}.start is required, e.g. now() - duration("10m")')
    try:
        start = eval_time_expression(range_query.start, now=now)
    except TimeExpressionError as exc:
        raise RequestFailed(f"{field}.start: {exc}; {hint}") from exc
    try:
        end = eval_time_expression(range_query.end or "now()", now=now)
    except TimeExpressionError as exc:
        raise RequestFailed(f"{field}.end: {exc}; {hint}") from exc
    if not range_query.step:
        raise RequestFailed(f"{field}.step is required, e.g. 1m")
    try:
        step = parse_duration(range_query.step)
    except DurationError as exc:
        raise RequestFailed(f"{field}.step: {exc}") from exc
    if step <= 0:
        raise RequestFailed(f"{field}.step: {range_query.step!r} must be positive")
    if end < start:
        raise RequestFailed(
            f"{field}: end ({range_query.end or 'now()'}) is before start ({range_query.start})"
        )
    return start, end, step
