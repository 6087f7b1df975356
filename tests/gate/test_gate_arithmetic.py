"""The pure parts of `rollouts gate check`: reading a metric as a threshold on a share of requests, and the
arithmetic of how often it fails a healthy release."""

from __future__ import annotations

import math
import random

import pytest

from rollouts.analysis.gate_baseline import cumulative_at
from rollouts.analysis.gate_shape import NotAGate, PromQuantile, PromRatio, gate_shape, prom_duration
from rollouts.analysis.noise import (
    WindowGate,
    detectable_bad_share,
    loosest_safe_limit,
    max_bad_allowed,
    measurement_fail_probability,
    release_fail_probability,
    run_fail_probability,
)
from rollouts.simulate.traffic import binomial
from rollouts.spec.analysis import Metric

RATIO_QUERY = ('sum(rate(http_requests_total{service="{{args.service-name}}",code!~"5.."}[5m]))\n'
               '/ sum(rate(http_requests_total{service="{{args.service-name}}"}[5m]))')


def prom_metric(query: str, **fields: object) -> Metric:
    base: dict[str, object] = {"name": "m", "interval": "1m", "count": 5, "failureLimit": 1,
                               "provider": {"prometheus": {"address": "http://p:9090", "query": query}}}
    return Metric.model_validate({**base, **fields})


@pytest.mark.parametrize(("conditions", "limit", "at_equal"), [
    pytest.param({"successCondition": "len(result) > 0 && !isNaN(result[0]) && result[0] >= 0.995",
                  "failureCondition": "len(result) > 0 && !isNaN(result[0]) && result[0] < 0.995"}, 0.005, False,
                 id="compound-conditions-failure-wins"),
    pytest.param({"successCondition": "result[0] >= 0.99"}, 0.01, False, id="success-only-negated"),
    pytest.param({"failureCondition": "0.99 >= result[0]"}, 0.01, True, id="reversed-comparison-fails-at-equal"),
])
def test_gate_shape_reads_compound_threshold_conditions(conditions: dict, limit: float, at_equal: bool) -> None:
    shape = gate_shape(prom_metric(RATIO_QUERY, **conditions), {"service-name": "auth"})
    assert isinstance(shape.source, PromRatio)
    assert shape.source.denominator == 'http_requests_total{service="auth"}'
    assert shape.value_is_good_share
    assert math.isclose(shape.bad_share_limit, limit) and shape.fails_at_equal is at_equal
    assert (shape.window_seconds, shape.interval_seconds, shape.count, shape.failure_limit) == (300, 60, 5, 1)
    assert not shape.canary_scoped


def test_gate_shape_drops_canary_hash_matcher_when_arg_missing() -> None:
    query = ('sum(rate(x_total{service="{{args.service-name}}",rollouts_pod_template_hash="{{args.canary-hash}}",'
             'code!~"5.."}[5m])) / sum(rate(x_total{service="{{args.service-name}}",'
             'rollouts_pod_template_hash="{{args.canary-hash}}"}[5m]))')
    shape = gate_shape(prom_metric(query, successCondition="result[0] >= 0.995"), {"service-name": "auth"})
    assert shape.canary_scoped
    assert isinstance(shape.source, PromRatio)
    assert shape.source.numerator == 'x_total{service="auth",code!~"5.."}'


def test_gate_shape_reads_histogram_quantile_latency_gate() -> None:
    query = 'histogram_quantile(0.95, sum by (le) (rate(d_bucket{service="{{args.service-name}}"}[5m])))'
    shape = gate_shape(prom_metric(query, failureCondition="result[0] > 0.5"), {"service-name": "a"})
    assert isinstance(shape.source, PromQuantile) and shape.quantile == 0.95
    assert math.isclose(shape.bad_share_limit, 0.05)


@pytest.mark.parametrize(("fields", "reason"), [
    pytest.param({"failureCondition": 'result["regression"]'}, "0 comparisons", id="sequential-verdict"),
    pytest.param({"failureCondition": "result[0] < 0.9 || result[0] > 2"}, "||", id="disjunction"),
    pytest.param({"successCondition": "result[0] >= 0.99", "count": None, "interval": "1m"}, "no count",
                 id="endless-gate"),
])
def test_gate_shape_refuses_what_is_not_a_fixed_threshold(fields: dict, reason: str) -> None:
    with pytest.raises(NotAGate, match=reason):
        gate_shape(prom_metric(RATIO_QUERY, **fields), {"service-name": "a"})


def test_gate_shape_refuses_other_query_shapes() -> None:
    with pytest.raises(NotAGate, match="neither"):
        gate_shape(prom_metric("sum(rate(a[5m])) or vector(0)", successCondition="result[0] < 1"), {})


@pytest.mark.parametrize(("requests", "limit", "at_equal", "expected"), [
    pytest.param(1000, 1 - 0.995, False, 5, id="float-noise-of-1-minus-0.995"),
    pytest.param(600, 0.005, False, 3, id="600-at-99.5"),
    pytest.param(599, 0.005, False, 2, id="599-at-99.5"),
    pytest.param(1000, 0.005, True, 4, id="fails-at-equal"),
    pytest.param(0, 0.005, True, -1, id="empty-window"),
])
def test_max_bad_allowed(requests: int, limit: float, at_equal: bool, expected: int) -> None:
    assert max_bad_allowed(requests, limit, fails_at_equal=at_equal) == expected


def test_measurement_fail_probability_matches_direct_simulation_of_arrivals() -> None:
    # Reference: the window's arrivals ~ Poisson(600) (normal approximation, plenty at this mean), each
    # request an error with p = 0.5 %, drawn exactly.
    gate = WindowGate(requests=600, bad_share_limit=0.005)
    rng = random.Random(3)
    fails = 0
    for _ in range(10_000):
        n = max(round(rng.gauss(600, 600 ** 0.5)), 0)
        bad = binomial(rng, n, 0.005)
        fails += bad > max_bad_allowed(n, 0.005, fails_at_equal=False)
    assert abs(measurement_fail_probability(0.005, gate) - fails / 10_000) < 0.02


def test_run_fail_probability_independent_windows_is_binomial_over_measurements() -> None:
    gate = WindowGate(requests=1200, bad_share_limit=0.005, count=5, failure_limit=1, window_seconds=60,
                      interval_seconds=60)
    p = measurement_fail_probability(0.005, gate)
    expected = 1 - (1 - p) ** 5 - 5 * p * (1 - p) ** 4
    assert math.isclose(run_fail_probability(0.005, gate), expected, rel_tol=1e-9)


def test_overlapping_windows_are_correlated_not_independent() -> None:
    # 5m read every minute: the five measurements share most requests, so P(2+ failures) is close to
    # P(one fails), far above what five independent windows would give.
    overlapping = WindowGate(30_000, 0.005, count=5, failure_limit=1, window_seconds=300, interval_seconds=60)
    independent = WindowGate(30_000, 0.005, count=5, failure_limit=1, window_seconds=300, interval_seconds=300)
    assert run_fail_probability(0.005, overlapping) < run_fail_probability(0.005, independent) - 0.1


def test_runbook_gate_rolls_back_most_healthy_releases_at_half_percent() -> None:
    gate = WindowGate(30_000, 1 - 0.995, count=5, failure_limit=1, window_seconds=300, interval_seconds=60)
    assert release_fail_probability(run_fail_probability(0.005, gate), 4) > 0.9
    looser = loosest_safe_limit(gate, 0.005, gates=4, target=0.01)
    assert looser is not None and 0.005 < looser.bad_share_limit <= 0.01 and looser.release_probability <= 0.01
    detect = detectable_bad_share(gate, 0.005)
    assert detect is not None and 0.005 <= detect < 0.006


@pytest.mark.parametrize(("text", "seconds"), [("15s", 15), ("5m", 300), ("1h30m", 5400), ("7d", 604800)])
def test_prom_duration(text: str, seconds: float) -> None:
    assert prom_duration(text) == seconds


def test_cumulative_at_interpolates_inside_a_bucket() -> None:
    buckets = [(0.25, 50.0), (0.5, 90.0), (1.0, 100.0), (math.inf, 100.0)]
    assert cumulative_at(buckets, 0.5) == 90.0
    assert cumulative_at(buckets, 0.75) == 95.0
