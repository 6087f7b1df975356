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
from rollouts.simulate.requests import Routing, TrafficLedger
from rollouts.simulate.runner import SimulationError
from rollouts.simulate.scenario import ScenarioError, parse_scenario
from rollouts.simulate.traffic import LatencyModel, VersionTraffic
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
        assert s.aborted and 200 <= s.canary_requests <= 2400, (seed, s)


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
    assert [e.t for e in measured] == [5, 15] and '"reason":"guard: canary errors rate' in measured[1].message
    assert sim.summary.aborted and sim.summary.time_to_decision == 15


def test_traffic_success_rate_metric_comes_from_simulated_requests() -> None:
    # examples/simulate/rollout.yaml gates on rollouts/traffic success-rate >= 0.995 over 1m.
    scenario = {"release": "shop:1.2", "seed": 1, "traffic": {"rps": 200, "versions": {
        "shop:1.0": {"errorRate": 0.0}, "shop:1.2": {"errorRate": 0.1}}}}
    sim = run(scenario)
    assert sim.summary.aborted and sim.summary.stable_image == "shop:1.0"
    measured = [e.message for e in sim.events if e.reason == "AnalysisMeasurement"]
    value = float(measured[-1].split("= ")[1].split(" ")[0])
    assert 0.8 < value < 0.97


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
