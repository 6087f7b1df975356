"""One canary weight per gated step: a gate on the canary's own requests sees a larger window at each later
step of a 10 -> 25 -> 50 -> 75 % plan, and the release figure combines each step's own probability
(`rollouts gate check --canary-weight` once per gate; lint's weight at every gated step of a Rollout)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rollouts.analysis.gate_baseline import Baseline
from rollouts.analysis.gate_noise import Usage, check_line, template_usages
from rollouts.analysis.gate_shape import gate_shape
from rollouts.analysis.noise import release_fail_probability
from rollouts.cli import commands, gate  # noqa: F401  (registers the verbs)
from rollouts.cli.main import app
from rollouts.spec.analysis import Metric

TEMPLATES = str(Path(__file__).resolve().parents[2] / "infra" / "rollouts" / "analysis-templates.yaml")
PLAN = [10.0, 25.0, 50.0, 75.0]

# A canary-scoped 99.5 % gate over 1m windows read every minute, 3 times, failureLimit 0, on a service at
# 0.2 % errors and 20 rps: the 10 % step's 120-request windows are noisy, the 75 % step's 900 are not.
METRIC = Metric.model_validate({
    "name": "success-rate", "interval": "1m", "count": 3, "failureLimit": 0,
    "successCondition": "result >= 0.995", "failureCondition": "result < 0.995",
    "provider": {"plugin": {"rollouts/traffic": {"metric": "success-rate", "version": "canary", "window": "1m",
                                                 "service": "shop"}}}})
BASELINE = Baseline(0.002, 20.0, "given")


def _release(weights: float | list[float], gates: int) -> float:
    _, _, release = check_line(gate_shape(METRIC, {}), BASELINE, gates=gates, target=0.01, canary_weight=weights)
    return release


def test_each_step_is_judged_at_its_own_weight() -> None:
    per_step = _release(PLAN, 4)
    one_gate = [_release(w, 1) for w in PLAN]
    # The steps are independent runs: the release survives only if each of them does.
    survives = 1.0
    for run in one_gate:
        survives *= 1.0 - run
    assert per_step == pytest.approx(1.0 - survives, abs=1e-9)
    # Later, larger windows are quieter here (the threshold tolerates more than the healthy 0.2 %), so the
    # per-step figure is well below four gates at the first step's 10 %.
    assert one_gate[0] > one_gate[-1] + 0.05, one_gate
    assert per_step < release_fail_probability(one_gate[0], 4) - 0.05, (per_step, one_gate)
    # The same weight at every step is the single-weight figure.
    assert _release([10.0] * 4, 4) == pytest.approx(_release(10.0, 4))


def test_weights_must_be_one_or_one_per_gate() -> None:
    with pytest.raises(ValueError, match="2 canary weights for 4 gates"):
        _release([10.0, 25.0], 4)


def test_gate_check_takes_a_weight_per_gate() -> None:
    runner = CliRunner()
    base = ["gate", "check", "-f", TEMPLATES, "--template", "slo-gates", "-a", "service-name=auth-svc",
            "--error-rate", "0.005", "--slow-share", "0.01", "--rps", "100", "--gates", "4"]
    weights = [arg for w in PLAN for arg in ("--canary-weight", f"{w:g}")]
    result = runner.invoke(app, [*base, *weights])
    assert result.exit_code == 1, result.output
    assert "over 4 gates at 10 / 25 / 50 / 75 %)" in result.output, result.output
    assert "(600 requests a window, the canary's 10 %)" in result.output, result.output
    wrong = runner.invoke(app, [*base, "--canary-weight", "10", "--canary-weight", "25"])
    assert wrong.exit_code == 2, wrong.output
    assert "2 weights for --gates 4" in wrong.output, wrong.output


def test_lint_judges_a_rollout_at_the_weight_of_each_gated_step() -> None:
    gate_step = {"analysis": {"templates": [{"templateName": "success-rate"}],
                              "args": [{"name": "service-name", "value": "shop"}]}}
    steps: list[dict[str, object]] = []
    for weight in PLAN:
        steps += [{"setWeight": weight}, gate_step]
    rollout = {"kind": "Rollout", "metadata": {"name": "shop"}, "spec": {"strategy": {"canary": {"steps": steps}}}}
    [use] = template_usages([rollout])["success-rate"]
    assert use == Usage({"service-name": "shop"}, 4, 10.0, "shop", tuple(PLAN))
    assert use.weights == tuple(PLAN)
    assert Usage({}, 2, 25.0, "shop", (25.0, 25.0)).weights == 25.0
