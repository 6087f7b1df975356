"""`rollouts simulate`: scenarios replayed through the engine and the analysis arithmetic."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from rollouts.cli import commands  # noqa: F401  (registers the verbs)
from rollouts.cli.main import app
from rollouts.simulate.runner import Simulation, simulate
from rollouts.simulate.scenario import ScenarioError, parse_scenario
from rollouts.spec.analysis import AnalysisTemplate
from rollouts.spec.kinds import parse_object
from rollouts.spec.loader import load_paths
from rollouts.spec.rollout import Rollout

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "simulate"
MANIFESTS = str(EXAMPLES / "rollout.yaml")
GOOD = {"release": "shop:1.1", "analysis": {"success-rate": [{"from": "0s", "value": 0.999}]}}


SEQUENTIAL_MANIFESTS = [str(EXAMPLES / "rollout-sequential.yaml"),
                        str(EXAMPLES.parents[1] / "infra" / "rollouts" / "analysis-templates.yaml")]


def run(scenario: dict[str, Any], manifests: list[str] | None = None) -> Simulation:
    objects = [parse_object(o.data) for o in load_paths(manifests or [MANIFESTS]).objects]
    rollout = next(o for o in objects if isinstance(o, Rollout))
    templates = [o for o in objects if isinstance(o, AnalysisTemplate)]
    return simulate(rollout, parse_scenario(scenario), templates=templates)


def reasons(sim: Simulation) -> list[str]:
    return [e.reason for e in sim.events]


def test_good_release_walks_every_step_to_healthy() -> None:
    sim = run(GOOD)
    s = sim.summary
    assert (s.phase, s.aborted, s.stable_image, s.current_step_index) == ("Healthy", False, "shop:1.1", 9)
    completed = [e.message for e in sim.events if e.reason == "RolloutStepCompleted"]
    assert completed == [f"Rollout step {i}/9 completed" + m for i, m in zip(range(1, 10), [
        " (setWeight: 10)", " (analysis)", " (setWeight: 25)", " (analysis)",
        " (setWeight: 50)", " (analysis)", " (setWeight: 75)", " (analysis)",
        " (setWeight: 100)",
    ], strict=True)]
    # 4 analyses x count 3, every 30 s: the first one completes at 5 s (pod ready) + 60 s.
    assert reasons(sim).count("AnalysisMeasurement") == 12
    first_done = next(e for e in sim.events if e.reason == "AnalysisRunSuccessful")
    assert first_done.t == 65 and first_done.weight == 10


def test_bad_release_is_aborted_by_the_success_rate_condition() -> None:
    sim = run({"release": "shop:1.2", "analysis": {"success-rate": [{"from": 0, "value": 0.9}]}})
    s = sim.summary
    assert (s.phase, s.aborted, s.stable_image) == ("Degraded", True, "shop:1.0")
    aborted = next(e for e in sim.events if e.reason == "RolloutAborted")
    assert aborted.t == 5 and '"success-rate" assessed Failed' in aborted.message
    assert sim.events[-1].weight == 0 and aborted.weight == 0


def test_a_late_degradation_fails_a_later_step() -> None:
    sim = run({"release": "shop:1.2", "analysis": {"success-rate": [
        {"from": 0, "value": 0.999}, {"from": "2m", "value": 0.5},
    ]}})
    aborted = next(e for e in sim.events if e.reason == "RolloutAborted")
    # The step-3 run (started 65 s) measures at 65, 95, 125 s: the third sees the bad value.
    assert aborted.t == 125 and sim.summary.stable_image == "shop:1.0"


def test_promote_full_skips_the_remaining_steps() -> None:
    sim = run({**GOOD, "operator": [{"at": "1m", "action": "promote-full"}]})
    assert sim.summary.phase == "Healthy" and sim.summary.stable_image == "shop:1.1"
    completed = [e for e in sim.events if e.reason == "RolloutStepCompleted"]
    assert [e.message for e in completed] == ["Rollout step 1/9 completed (setWeight: 10)"]
    done = next(e for e in sim.events if e.reason == "RolloutCompleted")
    assert done.t == 65 and done.message.endswith("Full promotion requested")


def test_operator_abort_keeps_the_stable_and_retry_resumes() -> None:
    aborted = run({**GOOD, "operator": [{"at": "2m", "action": "abort"}]})
    s = aborted.summary
    assert (s.phase, s.aborted, s.stable_image, s.current_step_index) == ("Degraded", True, "shop:1.0", 0)
    assert next(e for e in aborted.events if e.reason == "RolloutAborted").t == 120
    retried = run({**GOOD, "operator": [{"at": "2m", "action": "abort"}, {"at": "10m", "action": "retry"}]})
    assert retried.summary.phase == "Healthy" and retried.summary.stable_image == "shop:1.1"


@pytest.mark.parametrize(
    ("analysis", "expected_error"),
    [
        ({"success-rate": [{"from": 0, "value": 0.999}, {"from": "2m", "error": "connection refused"}]},
         "connection refused"),
        ({}, 'no scenario value for metric \\"success-rate\\"'.replace("\\", "")),
    ],
    ids=["provider-error", "no-scenario-value"],
)
def test_errors_past_the_consecutive_error_limit_abort(analysis: dict[str, Any], expected_error: str) -> None:
    sim = run({"release": "shop:1.1", "analysis": analysis})
    assert sim.summary.aborted and sim.summary.stable_image == "shop:1.0"
    assert "AnalysisRunError" in reasons(sim)
    aborted = next(e for e in sim.events if e.reason == "RolloutAborted")
    assert "consecutiveErrors (3) > consecutiveErrorLimit (2)" in aborted.message
    assert expected_error in aborted.message


def test_until_stops_the_clock() -> None:
    sim = run({**GOOD, "until": "1m"})
    assert sim.summary.t == 60 and sim.summary.phase == "Progressing"


@pytest.mark.parametrize(
    ("scenario", "message"),
    [
        ({"release": "x", "analisys": {}}, "unknown key 'analisys' (valid keys: analysis, operator, readyAfter"),
        ({"operator": [{"at": "1m", "acton": "abort"}]}, "unknown key 'operator[0].acton' (valid keys: action, at"),
        ({"operator": [{"at": "1m", "action": "explode"}]}, "operator[0].action: Input should be"),
        ({"until": "soon"}, "until: 'soon' is not a duration"),
        ({"analysis": {"m": [{"from": 0}]}}, "analysis.m[0]: set exactly one of value or error"),
    ],
    ids=["top-level-key", "operator-key", "action", "duration", "value-or-error"],
)
def test_bad_scenarios_name_the_problem(scenario: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(scenario, "s.yaml")
    assert str(info.value).startswith("s.yaml: ") and message in str(info.value)


def cli(tmp_path: Path, scenario: dict[str, Any], *extra: str) -> Any:
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario))
    return CliRunner().invoke(app, ["simulate", "-f", MANIFESTS, "--scenario", str(path), *extra])


def test_cli_json_lines_parse(tmp_path: Path) -> None:
    result = cli(tmp_path, {"release": "shop:1.2", "analysis": {"success-rate": [{"from": 0, "value": 0.9}]}},
                 "-o", "json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert lines[-1] == {"summary": {"phase": "Degraded", "aborted": True, "stableImage": "shop:1.0",
                                     "currentStepIndex": 0, "t": 35}}
    assert all(set(e) == {"t", "reason", "phase", "step", "weight", "message"} for e in lines[:-1])
    assert lines[0] == {"t": 0, "reason": "RolloutUpdated", "phase": "Progressing", "step": 0, "weight": 0,
                        "message": "Rollout updated to revision 2"}


def test_cli_text_timeline(tmp_path: Path) -> None:
    result = cli(tmp_path, GOOD)
    assert result.exit_code == 0, result.output
    assert "+    1m5s  RolloutStepCompleted   step 3/9    weight  25  Rollout step 3/9 completed" in result.output
    assert result.output.rstrip().endswith("stable image shop:1.1)")


def test_cli_bad_key_exits_2(tmp_path: Path) -> None:
    result = cli(tmp_path, {"relase": "shop:1.1"})
    assert result.exit_code == 2
    assert ("unknown key 'relase' (valid keys: analysis, operator, readyAfter, release, seed, traffic, until)"
            in result.output)


@pytest.mark.parametrize(
    "name", sorted(p.name for p in EXAMPLES.glob("*.yaml") if not p.name.startswith("rollout"))
)
def test_examples_run(name: str) -> None:
    # sequential-* scenarios go with the sequential rollout and the infra templates (see test_traffic.py).
    manifests = SEQUENTIAL_MANIFESTS if name.startswith("sequential-") else [MANIFESTS]
    if name == "long-analysis.yaml":
        manifests = [str(EXAMPLES / "rollout-long-analysis.yaml")]
    sim = run(yaml.safe_load((EXAMPLES / name).read_text()), manifests)
    assert sim.summary.phase in ("Healthy", "Degraded")


def test_passing_step_analysis_longer_than_progress_deadline_ends_healthy() -> None:
    """Argo's isIndefiniteStep: a 12-minute passing step analysis with progressDeadlineSeconds 600 and
    progressDeadlineAbort is not aborted (it was at 10m5s)."""
    sim = run(yaml.safe_load((EXAMPLES / "long-analysis.yaml").read_text()),
              [str(EXAMPLES / "rollout-long-analysis.yaml")])
    s = sim.summary
    assert (s.phase, s.aborted, s.stable_image) == ("Healthy", False, "checkout:1.1")
    assert "ProgressDeadlineExceeded" not in reasons(sim) and "RolloutAborted" not in reasons(sim)
    done = next(e for e in sim.events if e.reason == "AnalysisRunSuccessful")
    assert done.t >= 12 * 60
