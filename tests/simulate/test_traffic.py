"""`rollouts simulate` with a traffic model: the rollouts/traffic and rollouts/sequential metrics computed
from seeded simulated requests, the summary's canary counts and time to decision."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from rollouts.cli import commands  # noqa: F401  (registers the verbs)
from rollouts.cli.main import app
from rollouts.simulate.requests import Routing, TrafficLedger, measure_from_traffic, measurement_ready_at
from rollouts.simulate.runner import SimulationError
from rollouts.simulate.scenario import ScenarioError, parse_scenario
from rollouts.simulate.traffic import LatencyModel, VersionTraffic
from rollouts.spec.analysis import Metric
from tests.simulate.test_simulate import EXAMPLES, SEQUENTIAL_MANIFESTS, run

STABLE = {"errorRate": 0.005, "latencyMs": {"p50": 80, "p95": 250}}


def sequential(canary_error_rate: float, seed: int = 7, rps: float = 200) -> dict[str, Any]:
    # 200 requests/s to the service: 20/s reach the canary at weight 10.
    return {"release": "shop:1.1", "seed": seed, "until": "1h", "traffic": {"rps": rps, "versions": {
        "shop:1.0": STABLE, "shop:1.1": {**STABLE, "errorRate": canary_error_rate}}}}


def test_bad_canary_is_aborted_by_the_sequential_gate() -> None:
    sim = run(sequential(0.02), SEQUENTIAL_MANIFESTS)
    s = sim.summary
    assert (s.phase, s.aborted, s.stable_image) == ("Degraded", True, "shop:1.0")
    aborted = next(e for e in sim.events if e.reason == "RolloutAborted")
    assert 'Metric "sequential-errors" assessed Failed' in aborted.message
    assert 300 <= s.canary_requests <= 2000
    assert 0.01 <= s.canary_failed_requests / s.canary_requests <= 0.04
    assert s.time_to_decision == aborted.t and 20 <= aborted.t <= 120
    failed = [e for e in sim.events if e.reason == "AnalysisMeasurement" and "(Failed)" in e.message]
    assert '"regression":true' in failed[0].message


def test_bad_canaries_are_aborted_across_seeds() -> None:
    # Not one lucky seed: every one of several replays aborts at the first gate with a plausible sample.
    for seed in range(5):
        s = run(sequential(0.02, seed=seed), SEQUENTIAL_MANIFESTS).summary
        # No statistical verdict before the template's minSamples (100 canary requests).
        assert s.aborted and 100 <= s.canary_requests <= 2400, (seed, s)


def test_same_seed_same_output_and_another_seed_differs() -> None:
    first, again = run(sequential(0.02), SEQUENTIAL_MANIFESTS), run(sequential(0.02), SEQUENTIAL_MANIFESTS)
    assert first == again
    other = run(sequential(0.02, seed=8), SEQUENTIAL_MANIFESTS)
    assert other.summary.canary_requests != first.summary.canary_requests or other.events != first.events


def test_healthy_canary_is_promoted_through_every_gate() -> None:
    sim = run(sequential(0.005), SEQUENTIAL_MANIFESTS)
    s = sim.summary
    assert (s.phase, s.aborted, s.stable_image) == ("Healthy", False, "shop:1.1")
    assert [e.reason for e in sim.events].count("AnalysisRunSuccessful") == 4
    done = next(e for e in sim.events if e.reason == "RolloutCompleted")
    assert s.time_to_decision == done.t
    # Each gate passes at maxSamples (2,000 canary requests of its own run, seen at the next 10 s
    # measurement), then the canary serves all the traffic at weight 100 until the promotion.
    assert 8000 <= s.canary_requests <= 13000
    assert s.canary_failed_requests < 0.015 * s.canary_requests


def test_hard_outage_is_aborted_at_the_first_measurement_that_sees_canary_traffic() -> None:
    sim = run(sequential(0.5), SEQUENTIAL_MANIFESTS)
    measured = [e for e in sim.events
                if e.reason == "AnalysisMeasurement" and "sequential-errors" in e.message]
    # The run starts when the canary pod turns ready (5 s), before any request: the next look decides.
    assert [e.t for e in measured] == [5, 7] and '"reason":"guard: canary errors rate' in measured[1].message
    assert sim.summary.aborted and sim.summary.time_to_decision == 7


def test_traffic_success_rate_metric_comes_from_simulated_requests() -> None:
    # examples/simulate/rollout.yaml gates on rollouts/traffic success-rate >= 0.995 over 1m.
    scenario = {"release": "shop:1.2", "seed": 1, "traffic": {"rps": 200, "versions": {
        "shop:1.0": {"errorRate": 0.0}, "shop:1.2": {"errorRate": 0.1}}}}
    sim = run(scenario)
    assert sim.summary.aborted and sim.summary.stable_image == "shop:1.0"
    started = next(e.t for e in sim.events if e.reason == "AnalysisRunRunning")
    measured = [e for e in sim.events if e.reason == "AnalysisMeasurement"]
    # As the provider on local stats: the first measurement waits until its 1m window lies inside the run,
    # so it judges a whole minute of canary traffic (about 20 requests/s at weight 10).
    assert [e.t for e in measured] == [started + 60]
    value = float(measured[-1].message.split("= ")[1].split(" ")[0])
    assert 0.8 < value < 0.97
    assert 1000 <= sim.summary.canary_requests <= 1400


def test_thin_evidence_measurement_is_inconclusive_in_simulation() -> None:
    # 2 requests/s to the service, 10 % to the canary: about 12 requests in the gate's minute, fewer than
    # the provider's default minRequests (50). A perfect canary is not promoted on that: Inconclusive.
    scenario = {"release": "shop:1.2", "seed": 1, "until": "10m", "traffic": {"rps": 2, "versions": {
        "shop:1.0": {"errorRate": 0.0}, "shop:1.2": {"errorRate": 0.0}}}}
    sim = run(scenario)
    measured = [e for e in sim.events if e.reason == "AnalysisMeasurement"]
    assert len(measured) == 1 and measured[0].message.endswith("(Inconclusive)")
    assert "fewer than minRequests (50): too few to judge" in measured[0].message
    seen = int(measured[0].message.split("only ")[1].split(" ")[0])
    assert 3 <= seen < 50
    assert "RolloutPaused" in [e.reason for e in sim.events]
    assert (sim.summary.phase, sim.summary.aborted, sim.summary.current_step_index) == ("Paused", False, 1)


def _traffic_metric(**config: Any) -> Metric:
    return Metric.model_validate({"name": "m", "provider": {"plugin": {"rollouts/traffic": config}}})


def _ledger(rps: float, canary_from: int = 0, until: int = 120, error_rate: float = 0.0) -> TrafficLedger:
    healthy = VersionTraffic(error_rate, LatencyModel(50, 100))
    ledger = TrafficLedger(rps, {"old": healthy, "new": healthy}, seed=5)
    ledger.generate_until(canary_from, Routing("old"))
    ledger.generate_until(until, Routing("old", "new", 50))
    return ledger


@pytest.mark.parametrize(
    ("config", "rps", "canary_from", "phase", "value"),
    [
        # 0.6 requests/s at weight 50: about 18 canary requests per minute, below the default 50.
        ({"metric": "success-rate", "window": "1m"}, 0.6, 0, "Inconclusive", None),
        ({"metric": "success-rate", "window": "1m"}, 20, 0, None, 1.0),
        ({"metric": "error-rate", "window": "1m", "minRequests": 5}, 0.6, 0, None, 0.0),
        ({"metric": "latency-p95", "window": "1m", "minRequests": "40"}, 0.6, 0, "Inconclusive", None),
        ({"metric": "success-rate", "window": "1m", "minRequests": 0}, 0.6, 0, None, 1.0),
        ({"metric": "request-count", "window": "1m"}, 0.6, 0, None, "count"),
        ({"metric": "error-budget-burn", "window": "1m"}, 0.6, 0, "Inconclusive", None),
        ({"metric": "error-budget-burn", "window": "1m"}, 20, 0, None, 0.0),
        # No canary request at all yet: too few (0), as the provider says for an unknown release start.
        ({"metric": "error-budget-burn", "window": "1m"}, 20, 200, "Inconclusive", None),
    ],
    ids=["success-rate-thin", "success-rate-enough", "min-requests-lowered", "min-requests-from-argument",
         "min-requests-0-bare", "request-count-never-thin", "burn-thin", "burn-enough", "burn-no-canary-yet"],
)
def test_thin_evidence_measurement_is_inconclusive_in_simulation_table(
    config: dict[str, Any], rps: float, canary_from: int, phase: str | None, value: Any
) -> None:
    ledger = _ledger(rps, canary_from=canary_from)
    outcome = measure_from_traffic(ledger, _traffic_metric(**config), 120.0, 0.0)
    assert outcome.error is None and outcome.phase == phase, outcome
    if phase == "Inconclusive":
        needed = str(config.get("minRequests", 50))
        assert outcome.value is None and outcome.metadata["minRequests"] == needed
        assert f"fewer than minRequests ({needed}): too few to judge" in (outcome.message or "")
    elif value == "count":
        assert outcome.value == float(ledger.counts("canary", 60, 120)[0])
    else:
        assert outcome.value == value


def test_simulated_window_starts_no_earlier_than_the_run() -> None:
    # A run started 20 s ago reads 20 s of traffic, not the 40 s before it, whatever its window.
    ledger = _ledger(20, until=120)
    outcome = measure_from_traffic(ledger, _traffic_metric(metric="request-count", window="1m"), 120.0, 100.0)
    assert outcome.value == float(ledger.counts("canary", 100, 120)[0])


@pytest.mark.parametrize(
    ("plugin", "expected"),
    [({"rollouts/traffic": {"metric": "success-rate", "window": "2m"}}, 125.0),
     ({"rollouts/traffic": {"metric": "success-rate"}}, 65.0),
     ({"rollouts/traffic": {"metric": "nonsense"}}, None),
     ({"rollouts/sequential": {"test": "errors"}}, None)],
    ids=["window-2m", "default-window-1m", "bad-config-measured-at-once", "sequential-does-not-wait"],
)
def test_traffic_gate_waits_until_its_window_lies_inside_the_run(plugin: dict[str, Any], expected: float) -> None:
    metric = Metric.model_validate({"name": "m", "provider": {"plugin": plugin}})
    assert measurement_ready_at(metric, 5.0) == expected


def test_waiting_traffic_gate_does_not_delay_the_runs_other_metrics(tmp_path: Path) -> None:
    manifests = yaml.safe_load_all((EXAMPLES / "rollout.yaml").read_text())
    rollout, template = list(manifests)
    template["spec"]["metrics"] = [
        {**template["spec"]["metrics"][0], "count": 2},
        {"name": "short", "interval": "10s", "count": 3, "successCondition": "result >= 0.9",
         "provider": {"plugin": {"rollouts/traffic": {"metric": "success-rate", "window": "10s",
                                                       "minRequests": 10}}}},
    ]
    path = tmp_path / "rollout.yaml"
    path.write_text(yaml.safe_dump_all([rollout, template]))
    scenario = {"release": "shop:1.2", "seed": 1, "until": "3m", "traffic": {"rps": 200, "versions": {
        "shop:1.0": {"errorRate": 0.0}, "shop:1.2": {"errorRate": 0.0}}}}
    sim = run(scenario, [str(path)])
    started = next(e.t for e in sim.events if e.reason == "AnalysisRunRunning")
    times: dict[str, list[float]] = {"success-rate": [], "short": []}
    for e in sim.events:
        if e.reason == "AnalysisMeasurement" and e.message.startswith("shop-"):
            name = e.message.split(": ")[1].split(" ")[0]
            if len(times[name]) < 3 and e.t < started + 120:
                times[name].append(e.t - started)
    assert times == {"short": [10, 20, 30], "success-rate": [60, 90]}


def test_scenario_analysis_values_override_the_traffic_model() -> None:
    scenario = {**sequential(0.5), "analysis": {"success-rate": [{"from": 0, "value": 0.999}]}}
    scenario["traffic"]["versions"] = {"shop:1.0": STABLE, "shop:1.1": {**STABLE, "errorRate": 0.5}}
    sim = run(scenario)  # the success-rate template of rollout.yaml, overridden: promoted despite 50 %
    assert sim.summary.phase == "Healthy" and sim.summary.canary_failed_requests > 100


def test_an_image_without_a_traffic_entry_is_refused() -> None:
    scenario = sequential(0.02)
    del scenario["traffic"]["versions"]["shop:1.1"]
    with pytest.raises(SimulationError, match="traffic.versions has no entry for image 'shop:1.1'"):
        run(scenario, SEQUENTIAL_MANIFESTS)


@pytest.mark.parametrize(
    ("traffic", "message"),
    [({"rps": 0, "versions": {"a": {"errorRate": 0}}}, "traffic.rps: Input should be greater than 0"),
     ({"rps": 1, "versions": {"a": {"errorRate": 0, "latencyMs": {"p50": 9, "p95": 3}}}},
      "traffic.versions.a.latencyMs: p95 (3) must not be below p50 (9)"),
     ({"rps": 1, "versions": {"a": {"error": 0}}},
      "unknown key 'traffic.versions.a.error' (valid keys: errorRate")],
    ids=["rps", "latency-order", "version-key"],
)
def test_bad_traffic_keys_name_the_problem(traffic: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError, match="^s.yaml: ") as info:
        parse_scenario({"traffic": traffic}, "s.yaml")
    assert message in str(info.value)


def test_ledger_splits_by_weight_and_counts_ranges() -> None:
    latency = LatencyModel(50, 100)
    versions = {"old": VersionTraffic(0.0, latency), "new": VersionTraffic(1.0, latency)}
    ledger = TrafficLedger(100.5, versions, seed=3)
    ledger.generate_until(10, Routing("old"))
    ledger.generate_until(110, Routing("old", "new", 25))
    assert ledger.counts("canary", 0, 10) == (0, 0)
    canary, errors = ledger.counts("canary", 10, 110)
    assert errors == canary and 2200 < canary < 2800  # 25 % of about 10,050
    requests, stable_errors = ledger.counts("stable", 0, 110)
    assert stable_errors == 0 and abs(requests + canary - 110 * 100.5) < 60
    assert ledger.first_canary_tick == 10
    # p50 50 ms, p95 100 ms: half the requests are slower than 50 ms.
    assert abs(ledger.slow("stable", 0, 110, 50.0) / requests - 0.5) < 0.03
    replay = TrafficLedger(100.5, versions, seed=3)
    replay.generate_until(10, Routing("old"))
    replay.generate_until(110, Routing("old", "new", 25))
    assert replay.counts("canary", 10, 110) == (canary, errors)


def test_cli_summary_has_canary_counts_and_time_to_decision(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(sequential(0.02)))
    args = ["simulate", *sum((["-f", m] for m in SEQUENTIAL_MANIFESTS), []), "--scenario", str(path)]
    result = CliRunner().invoke(app, [*args, "-o", "json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.splitlines()[-1])["summary"]
    assert set(summary) == {"phase", "aborted", "stableImage", "currentStepIndex", "t", "canaryRequests",
                            "canaryFailedRequests", "timeToDecision"}
    example = yaml.safe_load((EXAMPLES / "sequential-bad-release.yaml").read_text())
    assert example == sequential(0.02) | {"traffic": example["traffic"]}
    text = CliRunner().invoke(app, args).output
    assert f"Canary served {summary['canaryRequests']} requests, {summary['canaryFailedRequests']} failed; " \
           f"decided {summary['timeToDecision']}s after the release" in text
