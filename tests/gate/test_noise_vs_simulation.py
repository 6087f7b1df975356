"""The false-rollback rate `rollouts gate check` predicts for a threshold gate matches what the simulator's
traffic model (per-request routing, binomial errors per tick) measures over 1,000 seeded healthy runs,
judged by the metric's own failure condition and failureLimit."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rollouts.analysis.expr import evaluate_condition
from rollouts.analysis.gate_baseline import Baseline
from rollouts.analysis.gate_noise import check_line
from rollouts.analysis.gate_shape import gate_shape
from rollouts.analysis.noise import WindowGate, run_fail_probability
from rollouts.simulate.requests import Routing, TrafficLedger, measure_from_traffic
from rollouts.simulate.traffic import LatencyModel, VersionTraffic
from rollouts.spec.analysis import Metric

TEMPLATES = Path(__file__).resolve().parents[2] / "infra" / "rollouts" / "analysis-templates.yaml"
RUNS = 1000


def shipped_metric(template: str, metric: str) -> dict:
    for doc in yaml.safe_load_all(TEMPLATES.read_text()):
        if doc and doc["metadata"]["name"] == template:
            return next(m for m in doc["spec"]["metrics"] if m["name"] == metric)
    raise AssertionError(f"{template} not in {TEMPLATES}")


def simulated_false_rollbacks(metric: Metric, *, rps: float, weight: float, error_rate: float) -> float:
    shape = gate_shape(metric, {})
    healthy = VersionTraffic(error_rate, LatencyModel(50, 100))
    failed_runs = 0
    for seed in range(RUNS):
        ledger = TrafficLedger(rps, {"stable": healthy, "canary": healthy}, seed)
        routing = Routing("stable", "canary", weight)
        start = shape.window_seconds  # the first measurement's window is all canary traffic
        failures = 0
        for k in range(shape.count):
            now = start + k * shape.interval_seconds
            ledger.generate_until(now, routing)
            # The run started with the traffic (t = 0): every window lies inside it.
            outcome = measure_from_traffic(ledger, metric, now, 0.0)
            assert outcome.error is None, outcome.error
            failures += evaluate_condition(metric.failure_condition or "", outcome.value)
            if failures > shape.failure_limit:
                failed_runs += 1
                break
    return failed_runs / RUNS


def predicted(metric: Metric, *, rps: float, weight: float, error_rate: float) -> float:
    """What `rollouts gate check --error-rate E --rps R --canary-weight W` computes for one gate (the same
    check_line), beside the arithmetic spelled out here, which must agree with it."""
    shape = gate_shape(metric, {})
    gate = WindowGate(round(rps * weight / 100 * shape.window_seconds), shape.bad_share_limit, shape.fails_at_equal,
                      shape.count, shape.failure_limit, shape.window_seconds, shape.interval_seconds)
    _, _, checked = check_line(shape, Baseline(error_rate, rps, "given"), gates=1, target=0.01, canary_weight=weight)
    assert checked == pytest.approx(run_fail_probability(error_rate, gate)), (checked, gate)
    return checked


CASES = [
    # The shipped slo-gates success-rate: 1m windows read every 30 s (overlapping), failureLimit 1.
    pytest.param(shipped_metric("slo-gates", "success-rate"), 100, 10, 0.005, id="slo-gates-success-rate-overlapping"),
    # The runbook's 99.5 %/5m shape measured every minute, 5 times, failureLimit 1, at low canary traffic.
    pytest.param({**shipped_metric("slo-gates", "success-rate"), "interval": "1m", "count": 5,
                  "provider": {"plugin": {"rollouts/traffic": {"metric": "success-rate", "version": "canary",
                                                               "window": "5m"}}}},
                 20, 10, 0.005, id="runbook-99.5-over-5m-every-1m"),
    # Independent windows (window = interval), failureLimit 0, a stricter 99.8 % bound at 0.1 % errors.
    pytest.param({**shipped_metric("slo-gates", "success-rate"), "interval": "1m", "count": 3, "failureLimit": 0,
                  "successCondition": "result >= 0.998", "failureCondition": "result < 0.998",
                  "provider": {"plugin": {"rollouts/traffic": {"metric": "success-rate", "version": "canary",
                                                               "window": "1m"}}}},
                 50, 20, 0.001, id="independent-windows-failure-limit-0"),
]


@pytest.mark.parametrize(("raw", "rps", "weight", "error_rate"), CASES)
def test_predicted_false_rollback_rate_matches_simulated_healthy_runs(raw: dict, rps: float, weight: float,
                                                                     error_rate: float) -> None:
    metric = Metric.model_validate(raw)
    expected = predicted(metric, rps=rps, weight=weight, error_rate=error_rate)
    measured = simulated_false_rollbacks(metric, rps=rps, weight=weight, error_rate=error_rate)
    # A gate near a coin flip is the interesting case: the comparison must not be 0 % vs 0 %.
    assert 0.05 < measured < 0.95, measured
    assert abs(expected - measured) <= 0.04, f"predicted {expected:.3f}, simulated {measured:.3f}"
