"""The `rollouts/traffic` metric provider: local stats (known mixes, no data), error-budget burn, config
errors, and the Prometheus path against a fake Prometheus HTTP API."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from aiohttp import web

from rollouts.analysis.assessment import judge_outcome
from rollouts.analysis.outcome import MeasurementOutcome
from rollouts.analysis.providers.base import MeasureContext
from rollouts.analysis.providers.registry import provider_for, unregister_plugin
from rollouts.analysis.providers.run_target import store_run_target
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
    bare = dict(metric="success-rate", service="app", version="stable", minRequests=0)
    assert measure(stats, window="1m", **bare).value is None
    assert measure(stats, window="5m", **bare).value == 1.0


@pytest.mark.parametrize("name", ["success-rate", "error-rate", "latency-p99"])
def test_no_traffic_is_none_not_success(name: str) -> None:
    outcome = measure(TrafficStats(clock=lambda: T0), metric=name, service="app", minRequests=0)
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
    outcome = measure(TrafficStats(clock=lambda: T0), metric="error-budget-burn", service="app", minRequests=0)
    assert outcome.value is None and "served no request" in outcome.metadata["NoData"]


def test_service_falls_back_to_default_service_callback() -> None:
    stats = stats_with_mix(60, 0)
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


async def prometheus_measure(
    answer: list[Any], env: bool = False, requests: str = "1000", **config: Any
) -> tuple[MeasurementOutcome, str]:
    """`answer` to the metric's query; `requests` to the minimum-sample count that follows it."""
    queries: list[str] = []

    async def query(request: web.Request) -> web.Response:
        form = await request.post()
        queries.append(str(form["query"]))
        result = answer
        if len(queries) > 1 and queries[-1].startswith("sum(increase("):
            result = [{"metric": {}, "value": [T0, requests]}]
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": result}})

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


# --- minimum sample (20.1) -------------------------------------------------------------------------------

# (id, ok, failed, config, expected phase or value): a gate with count 1 judged a 20 %-error release on
# 1-6 requests; below minRequests the measurement is Inconclusive whatever the rate is.
MIN_REQUEST_CASES = [
    ("3-good-requests-default", 3, 0, {}, "Inconclusive"),
    ("49-requests-default", 49, 0, {}, "Inconclusive"),
    ("no-request-default", 0, 0, {}, "Inconclusive"),
    ("50-requests-default", 50, 0, {}, 1.0),
    ("custom-minimum-met", 8, 2, {"minRequests": 10}, 0.8),
    ("custom-minimum-missed", 9, 0, {"minRequests": 10}, "Inconclusive"),
    ("minimum-as-argument-string", 9, 0, {"minRequests": "10"}, "Inconclusive"),
    ("latency-too", 5, 0, {"metric": "latency-p99"}, "Inconclusive"),
    ("error-rate-too", 5, 0, {"metric": "error-rate"}, "Inconclusive"),
]


@pytest.mark.parametrize(("ok", "failed", "config", "expected"), [c[1:] for c in MIN_REQUEST_CASES],
                         ids=[c[0] for c in MIN_REQUEST_CASES])
def test_min_requests_below_minimum_is_inconclusive(ok: int, failed: int, config: dict[str, Any],
                                                    expected: Any) -> None:
    outcome = measure(stats_with_mix(ok, failed), **{"metric": "success-rate", "service": "app", **config})
    if expected == "Inconclusive":
        assert outcome.phase == "Inconclusive" and outcome.error is None
        assert outcome.message is not None and f"only {ok + failed} request" in outcome.message
        assert "minRequests" in outcome.message
        assert outcome.metadata["requests"] == str(ok + failed)
    else:
        assert outcome.phase is None and outcome.value == expected


def test_min_requests_inconclusive_is_never_successful_through_the_assessment() -> None:
    gate = Metric.model_validate({"name": "gate", "successCondition": "result >= 0.95",
                                  "provider": {"plugin": {PLUGIN_NAME: {"metric": "success-rate"}}}})
    outcome = measure(stats_with_mix(3, 0), metric="success-rate", service="app")
    phase, _ = judge_outcome(gate, outcome)
    assert phase == "Inconclusive"


def test_min_requests_applies_to_error_budget_burn() -> None:
    outcome = measure(stats_with_mix(10, 0), metric="error-budget-burn", service="app")
    assert outcome.phase == "Inconclusive" and "only 10 requests" in (outcome.message or "")


def test_min_requests_invalid_value_names_the_field() -> None:
    outcome = measure(TrafficStats(), metric="success-rate", service="app", minRequests=-1)
    assert outcome.error is not None and "minRequests: -1 is not a whole number" in outcome.error


def test_min_requests_through_prometheus_counts_the_requests() -> None:
    outcome, _ = run(prometheus_measure([{"metric": {}, "value": [T0, "1.0"]}], requests="4",
                                        metric="success-rate", service="app"))
    assert outcome.phase == "Inconclusive" and "only 4 requests" in (outcome.message or "")


# --- the revision under test, inside the run (20.2) and the inferred service (13.7) ---------------------


def _store(rollout: dict[str, Any], *extra: dict[str, Any]) -> Any:
    objects = {(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]): o for o in (rollout, *extra)}

    def get(kind: str, namespace: str, name: str) -> dict[str, Any]:
        try:
            return objects[(kind, namespace, name)]
        except KeyError:
            raise LookupError(f"{kind} {namespace}/{name} not found") from None

    return get


CANARY_ROLLOUT = {
    "kind": "Rollout", "metadata": {"name": "app", "namespace": "ns"},
    "spec": {"strategy": {"canary": {"trafficRouting": {"nginx": {"stableIngress": "app-ingress"}}}}},
    "status": {"currentPodHash": "new", "stableRS": "old"},
}
APP_INGRESS = {"kind": "Ingress", "metadata": {"name": "app-ingress", "namespace": "ns",
                                               "annotations": {"rollouts.io/service": "app"}}}


def _run_ctx(started: float, labels: dict[str, str] | None = None) -> MeasureContext:
    return MeasureContext(namespace="ns", run_name="app-new-2", metric_name="gate", measurement_index=1,
                          run_started_at=datetime.fromtimestamp(started, UTC), owner="app",
                          labels=labels if labels is not None else {"rollouts-pod-template-hash": "new"})


def test_gate_counts_only_the_revision_under_test_and_only_inside_the_run() -> None:
    stats = TrafficStats(clock=lambda: T0)
    for i in range(120):  # the old canary failing, before the run and during it
        stats.record("ns", "app", "canary", 500, 0.01, at=T0 - 119 + i, pod_hash="old")
    for i in range(60):  # 503s while no new pod was ready: not the revision's
        stats.record("ns", "app", "canary", 503, 0.0, at=T0 - 59 + i, served=False)
    for i in range(100):  # the new revision: 60 before the run started, 40 inside it, all good
        stats.record("ns", "app", "canary", 200, 0.01, at=T0 - 99 + i, pod_hash="new")
    clock = _SteppingClock(T0)
    provider = TrafficMetricProvider(stats=stats, clock=clock, sleep=clock.sleep, run_target=store_run_target(
        _store(CANARY_ROLLOUT, APP_INGRESS)))
    outcome = run(provider.measure(metric(metric="success-rate", window="5m", minRequests=30),
                                   _run_ctx(T0 - 39)))
    assert outcome.error is None and outcome.value == 1.0
    # The first 5-minute window inside the run (measured at T0 + 261): the new pods' answers from T0 - 38 on.
    assert outcome.metadata["requests"] == "39" and outcome.metadata["podHash"] == "new"
    assert outcome.metadata["service"] == "app"


class _SteppingClock:
    """A clock that only moves when the provider sleeps."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


def test_first_measurement_waits_until_its_window_lies_inside_the_run() -> None:
    stats = TrafficStats(clock=lambda: T0)
    for i in range(60):  # before the run: would make a sliver window look full
        stats.record("ns", "app", "canary", 200, 0.01, at=T0 - 60 + i, pod_hash="new")
    for i in range(70):  # inside the run: 7 per second for 10 s
        stats.record("ns", "app", "canary", 500 if i < 7 else 200, 0.01, at=T0 + 1 + i / 7, pod_hash="new")
    clock = _SteppingClock(T0 + 0.5)
    provider = TrafficMetricProvider(stats=stats, clock=clock, sleep=clock.sleep, run_target=store_run_target(
        _store(CANARY_ROLLOUT, APP_INGRESS)))
    outcome = run(provider.measure(metric(metric="success-rate", window="10s"), _run_ctx(T0)))
    assert clock.slept == pytest.approx(9.5)
    assert outcome.metadata["requests"] == "70" and outcome.value == pytest.approx(0.9)


def test_traffic_gate_without_service_infers_it_from_the_owning_rollout() -> None:
    stats = stats_with_mix(99, 1)
    lookup = store_run_target(_store(CANARY_ROLLOUT, APP_INGRESS))
    provider = TrafficMetricProvider(stats=stats, clock=lambda: T0, run_target=lookup)
    ctx = MeasureContext(namespace="ns", run_name="r", metric_name="gate", measurement_index=1, owner="app")
    outcome = run(provider.measure(metric(metric="success-rate"), ctx))
    # The stats here carry no pod hash: with the rollout's revision known nothing matches, so the gate
    # says it saw too few requests instead of judging another revision's answers.
    assert outcome.error is None and outcome.phase == "Inconclusive"
    assert "canary of ns/app (revision new)" in (outcome.message or "")
    standalone = run(provider.measure(metric(metric="success-rate"), CTX))
    assert standalone.error is not None and "service is not set" in standalone.error


def test_configured_other_service_is_not_filtered_by_the_rollouts_revision() -> None:
    stats = TrafficStats(clock=lambda: T0)
    for i in range(60):
        stats.record("ns", "backend", "stable", 200, 0.01, at=T0 - i, pod_hash="b1")
    provider = TrafficMetricProvider(stats=stats, clock=lambda: T0, run_target=store_run_target(
        _store(CANARY_ROLLOUT, APP_INGRESS)))
    outcome = run(provider.measure(metric(metric="success-rate", service="backend", version="stable"),
                                   _run_ctx(T0 - 100)))
    assert outcome.value == 1.0 and "podHash" not in outcome.metadata
