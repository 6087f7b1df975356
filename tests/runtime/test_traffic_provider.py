"""The `rollouts/traffic` metric provider: local stats (known mixes, no data), error-budget burn, config
errors, and the Prometheus path against a fake Prometheus HTTP API."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest
from aiohttp import web

from rollouts.analysis.outcome import MeasurementOutcome
from rollouts.analysis.providers.base import MeasureContext
from rollouts.analysis.providers.registry import provider_for, unregister_plugin
from rollouts.analysis.providers.traffic import PLUGIN_NAME, TrafficMetricProvider, register_traffic_plugin
from rollouts.runtime.local.traffic import TrafficStats
from rollouts.spec.analysis import Metric

T0 = 1_700_000_000.0
R = TypeVar("R")


def run(coro: Awaitable[R]) -> R:
    return asyncio.run(asyncio.wait_for(coro, timeout=30))  # type: ignore[arg-type]


def metric(**config: Any) -> Metric:
    return Metric.model_validate({"name": "gate", "provider": {"plugin": {PLUGIN_NAME: config}}})


CTX = MeasureContext(namespace="ns", run_name="app-abc-1", metric_name="gate", measurement_index=1)


def stats_with_mix(ok: int, failed: int, *, version: str = "canary", latency: float = 0.1) -> TrafficStats:
    stats = TrafficStats(clock=lambda: T0)
    for i in range(ok + failed):
        stats.record("ns", "app", version, 500 if i < failed else 200, latency, at=T0 - (i % 50))
    return stats


def measure(stats: TrafficStats | None, now: float = T0, **config: Any) -> MeasurementOutcome:
    provider = TrafficMetricProvider(stats=stats, clock=lambda: now)
    return run(provider.measure(metric(**config), CTX))


LOCAL_CASES = [
    ("success-rate", dict(metric="success-rate"), 0.99),
    ("error-rate", dict(metric="error-rate"), 0.01),
    ("request-count", dict(metric="request-count"), 1000.0),
    ("latency-p95", dict(metric="latency-p95"), pytest.approx(0.1, rel=0.02)),
    ("latency-quantile-override", dict(metric="latency-p95", quantile=0.5), pytest.approx(0.1, rel=0.02)),
]


@pytest.mark.parametrize(("config", "expected"), [c[1:] for c in LOCAL_CASES], ids=[c[0] for c in LOCAL_CASES])
def test_local_values_for_a_known_mix(config: dict[str, Any], expected: Any) -> None:
    outcome = measure(stats_with_mix(990, 10), service="app", version="canary", window="1m", **config)
    assert outcome.error is None
    assert outcome.value == expected


def test_other_version_and_window_are_separate() -> None:
    stats = stats_with_mix(990, 10)
    stats.record("ns", "app", "stable", 200, 0.01, at=T0 - 200)
    assert measure(stats, metric="success-rate", service="app", version="stable", window="1m").value is None
    assert measure(stats, metric="success-rate", service="app", version="stable", window="5m").value == 1.0


@pytest.mark.parametrize("name", ["success-rate", "error-rate", "latency-p99"])
def test_no_traffic_is_none_not_success(name: str) -> None:
    outcome = measure(TrafficStats(clock=lambda: T0), metric=name, service="app")
    assert outcome.error is None and outcome.value is None and outcome.printed == ""
    assert "no requests to the canary of ns/app" in outcome.metadata["NoData"]


def test_no_traffic_request_count_is_zero() -> None:
    assert measure(TrafficStats(clock=lambda: T0), metric="request-count", service="app").value == 0.0


def test_error_budget_burn_from_release_start() -> None:
    stats = TrafficStats(clock=lambda: T0, horizon=600)
    # 600 s of traffic at 10 req/s to the service: 9 stable + 1 canary per second; 6 canary 5xx in total.
    for second in range(600):
        at = T0 - 600 + second
        for _ in range(9):
            stats.record("ns", "app", "stable", 200, 0.01, at=at)
        stats.record("ns", "app", "canary", 500 if second % 100 == 0 else 200, 0.01, at=at)
    outcome = measure(stats, metric="error-budget-burn", service="app", slo=0.995)
    # budget for 30 days at 10 req/s with 0.5 % allowed: 0.005 * 10 * 2_592_000 = 129_600 errors.
    assert outcome.value == pytest.approx(6 / 129_600, rel=0.01)
    assert outcome.metadata["errors"] == "6"
    # A release that started later only counts the errors since then (whole minutes).
    provider = TrafficMetricProvider(stats=stats, clock=lambda: T0, release_start=lambda ns, svc, v: T0 - 120)
    later = run(provider.measure(metric(metric="error-budget-burn", service="app", budgetPeriod="1d"), CTX))
    errors = int(later.metadata["errors"])
    assert errors in (1, 2)
    assert later.value == pytest.approx(errors / (0.005 * 10 * 86_400), rel=0.01)


def test_error_budget_burn_without_traffic_is_none() -> None:
    outcome = measure(TrafficStats(clock=lambda: T0), metric="error-budget-burn", service="app")
    assert outcome.value is None and "served no request" in outcome.metadata["NoData"]


def test_service_falls_back_to_default_service_callback() -> None:
    stats = stats_with_mix(10, 0)
    provider = TrafficMetricProvider(stats=stats, clock=lambda: T0, default_service=lambda ctx: "app")
    assert run(provider.measure(metric(metric="success-rate"), CTX)).value == 1.0
    missing = measure(stats, metric="success-rate")
    assert missing.error is not None and "service is not set" in missing.error


CONFIG_ERRORS = [
    ("unknown-metric", dict(metric="throughput"), "metric: 'throughput' is not one of"),
    ("unknown-version", dict(metric="success-rate", version="blue"), "version: 'blue' is not one of"),
    ("bad-window", dict(metric="success-rate", window="soon"), "window:"),
    ("bad-slo", dict(metric="success-rate", slo=99.5), "slo: 99.5 is not between 0 and 1"),
    ("unknown-key", dict(metric="success-rate", windw="1m"), "unknown key(s) windw"),
]


@pytest.mark.parametrize(("config", "message"), [c[1:] for c in CONFIG_ERRORS], ids=[c[0] for c in CONFIG_ERRORS])
def test_config_errors_name_the_field(config: dict[str, Any], message: str) -> None:
    outcome = measure(TrafficStats(), service="app", **config)
    assert outcome.error is not None
    assert outcome.error.startswith(f"provider.plugin.{PLUGIN_NAME}.") or "provider.plugin" in outcome.error
    assert message in outcome.error


def test_no_stats_and_no_prometheus_is_an_error() -> None:
    outcome = measure(None, metric="success-rate", service="app")
    assert outcome.error is not None and "ROLLOUTS_PROMETHEUS_ADDRESS" in outcome.error


def test_registered_plugin_is_found_by_provider_for() -> None:
    stats = stats_with_mix(99, 1)
    register_traffic_plugin(stats, clock=lambda: T0)
    try:
        provider = provider_for(metric(metric="success-rate", service="app"))
        assert run(provider.measure(metric(metric="success-rate", service="app"), CTX)).value == 0.99
    finally:
        unregister_plugin(PLUGIN_NAME)


# --- Prometheus ------------------------------------------------------------------------------------------


async def prometheus_measure(answer: list[Any], env: bool = False, **config: Any) -> tuple[MeasurementOutcome, str]:
    queries: list[str] = []

    async def query(request: web.Request) -> web.Response:
        form = await request.post()
        queries.append(str(form["query"]))
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": answer}})

    app = web.Application()
    app.router.add_post("/api/v1/query", query)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    address = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    try:
        if env:
            ctx = MeasureContext(namespace="ns", run_name="r", metric_name="gate", measurement_index=1,
                                 env={"ROLLOUTS_PROMETHEUS_ADDRESS": address})
            outcome = await TrafficMetricProvider().measure(metric(**config), ctx)
        else:
            outcome = await TrafficMetricProvider(stats=TrafficStats()).measure(
                metric(prometheus={"address": address}, **config), CTX
            )
    finally:
        await runner.cleanup()
    return outcome, queries[0] if queries else ""


def test_prometheus_success_rate_query_and_value() -> None:
    outcome, query = run(prometheus_measure([{"metric": {}, "value": [T0, "0.9975"]}],
                                            metric="success-rate", service="app", window="2m"))
    assert outcome.error is None and outcome.value == 0.9975
    assert 'nginx_ingress_controller_requests{namespace="ns",ingress="app",canary!="",status!~"5.."}[2m]' in query
    assert outcome.metadata["ResolvedPrometheusQuery"] == query


def test_prometheus_from_env_when_no_stats_bound_latency_query() -> None:
    outcome, query = run(prometheus_measure([{"metric": {}, "value": [T0, "0.42"]}], env=True,
                                            metric="latency-p95", service="app", version="stable"))
    assert outcome.value == 0.42
    assert query.startswith("histogram_quantile(0.95, sum by (le) (rate(")
    assert 'canary=""' in query


@pytest.mark.parametrize(("answer", "expected"), [([], None), ([{"metric": {}, "value": [T0, "NaN"]}], None)],
                         ids=["empty-vector", "nan"])
def test_prometheus_without_samples_is_none(answer: list[Any], expected: Any) -> None:
    outcome, _ = run(prometheus_measure(answer, metric="success-rate", service="app"))
    assert outcome.error is None and outcome.value is expected and "NoData" in outcome.metadata


def test_prometheus_custom_query_template() -> None:
    template = 'sum(rate(http_requests_total{service="${service}",version="canary"}[${window}]))'
    outcome, query = run(prometheus_measure([{"metric": {}, "value": [T0, "12"]}], metric="request-count",
                                            service="app", queries={"request-count": template}))
    assert query == 'sum(rate(http_requests_total{service="app",version="canary"}[1m]))'
    assert outcome.value == 12.0


def test_prometheus_preview_needs_a_custom_query() -> None:
    outcome, query = run(prometheus_measure([], metric="success-rate", service="app", version="preview"))
    assert query == "" and outcome.error is not None and "queries.success-rate" in outcome.error
