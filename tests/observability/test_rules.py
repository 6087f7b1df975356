"""The alert rules in deploy/prometheus: valid for promtool, proven by promtool unit tests (every alert both
firing and quiet), the runbook's two alerts kept under their names, severities and summaries but with
expressions that tell the truth (the lying forms fail the unit tests), and the PrometheusRule identical to
rules.yaml."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.conftest import REPO, require_tool

RULES_DIR = REPO / "deploy" / "prometheus"
RULES = RULES_DIR / "rules.yaml"
PROMETHEUS_RULE = RULES_DIR / "prometheusrule.yaml"
UNIT_TESTS = sorted((RULES_DIR / "tests").glob("*.yaml"))

# The release runbook's two alerts: what its readers and receivers know them by.
RUNBOOK_ALERTS = {
    "RolloutFailed": {"for": "0m", "labels": {"severity": "critical"},
                      "annotations": {"summary": "Argo Rollout failed for {{ $labels.rollout }}"}},
    "CanaryAnalysisFailed": {"for": "0m", "labels": {"severity": "warning"},
                             "annotations": {"summary": "Canary analysis failed for {{ $labels.analysisrun }}"}},
}
# Expressions that lie, each caught by a sequence in the unit tests: the runbook's own two (an increase() of a
# counter fires for a Healthy rollout after abort, retry, promote and a restart; a bare selector on the run
# phase never resolves while the failed run is stored), a ControllerDown tied to one job name, and bare
# selectors that a missed scrape resolves (or whose `for:` it restarts).
LYING_EXPRESSIONS = {
    "runbook-rollout-failed": ("RolloutFailed",
                               'increase(rollout_phase_duration_seconds{phase="Aborted"}[5m]) > 0'),
    "runbook-rollout-failed-on-the-gauge": ("RolloutFailed",
                                            'increase(argo_rollouts_rollout_phase{phase="Aborted"}[5m]) > 0'),
    "runbook-canary-analysis-failed": ("CanaryAnalysisFailed", 'argo_rollouts_analysis_run_phase{phase="Failed"} > 0'),
    "controller-down-by-job-name": ("ControllerDown",
                                    'up{job="rollouts-controller"} == 0 or absent(up{job="rollouts-controller"})'),
    "rollout-failed-bare-selector": ("RolloutFailed", 'argo_rollouts_rollout_phase{phase="Aborted"} == 1'),
    "canary-analysis-failed-bare-selector": (
        "CanaryAnalysisFailed",
        'argo_rollouts_analysis_run_phase{phase="Failed"} == 1 and on (namespace, analysisrun) '
        "argo_rollouts_analysis_run_current == 1"),
    "rollout-stuck-bare-selector": ("RolloutStuck",
                                    'max by (namespace, name) (rollout_info{phase=~"Progressing|Paused"}) == 1'),
    "rollout-stuck-without-unless": (
        "RolloutStuck",
        'max by (namespace, name) (last_over_time(rollout_info{phase=~"Progressing|Paused"}[3m])) == 1'),
}
REQUIRED_ALERTS = {"RolloutFailed", "CanaryAnalysisFailed", "RolloutStuck", "ControllerDown",
                   "SLOErrorBudgetBurnFast", "SLOErrorBudgetBurnSlow"}


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _rules() -> list[dict[str, Any]]:
    return [rule for group in _load(RULES)["groups"] for rule in group["rules"]]


def _promtool(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    binary = require_tool("promtool", "apt-get install prometheus")
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_rules_file_passes_promtool_check() -> None:
    result = _promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


def test_prometheusrule_groups_pass_promtool_check(tmp_path: Path) -> None:
    extracted = tmp_path / "from-prometheusrule.yaml"
    extracted.write_text(yaml.safe_dump({"groups": _load(PROMETHEUS_RULE)["spec"]["groups"]}))
    result = _promtool("check", "rules", str(extracted))
    assert result.returncode == 0, result.stdout + result.stderr


def test_unit_tests_pass() -> None:
    assert UNIT_TESTS, "no promtool unit tests in deploy/prometheus/tests"
    result = _promtool("test", "rules", *[str(p) for p in UNIT_TESTS])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(UNIT_TESTS), result.stdout


def test_prometheusrule_carries_the_same_groups() -> None:
    rule = _load(PROMETHEUS_RULE)
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    assert rule["metadata"]["name"]
    assert rule["spec"]["groups"] == _load(RULES)["groups"]


@pytest.mark.parametrize("name", sorted(RUNBOOK_ALERTS), ids=sorted(RUNBOOK_ALERTS))
def test_runbook_alerts_keep_their_names_severities_and_summaries(name: str) -> None:
    found = [r for r in _rules() if r.get("alert") == name]
    assert len(found) == 1
    assert {k: found[0][k] for k in ("for", "labels", "annotations")} == RUNBOOK_ALERTS[name]


@pytest.mark.parametrize("name", ["RolloutFailed", "CanaryAnalysisFailed", "RolloutStuck", "ControllerDown"])
def test_alerts_survive_restarts_and_scrape_gaps_by_construction(name: str) -> None:
    """No rollout alert reads a counter (it restarts with the controller) or matches a scrape job name."""
    expr = next(r["expr"] for r in _rules() if r.get("alert") == name)
    assert "rollout_phase_duration_seconds" not in expr and "increase(" not in expr
    assert "job=" not in expr and "up{" not in expr


def _run_unit_tests_with(tmp_path: Path, alert: str, expr: str) -> subprocess.CompletedProcess[str]:
    rules = _load(RULES)
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                rule["expr"] = expr
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    tests_dir = tmp_path / "tests"
    tests_dir.mkdir()
    for path in UNIT_TESTS:
        (tests_dir / path.name).write_text(path.read_text())
    return _promtool("test", "rules", *[str(tests_dir / p.name) for p in UNIT_TESTS])


@pytest.mark.parametrize("case", sorted(LYING_EXPRESSIONS), ids=sorted(LYING_EXPRESSIONS))
def test_alerts_that_lie_fail_the_unit_tests(tmp_path: Path, case: str) -> None:
    alert, expr = LYING_EXPRESSIONS[case]
    result = _run_unit_tests_with(tmp_path, alert, expr)
    assert result.returncode != 0, f"the unit tests accept {alert}: {expr}"
    assert f"alertname: {alert}," in result.stdout + result.stderr


def test_every_required_alert_is_defined_once() -> None:
    names = [r["alert"] for r in _rules() if "alert" in r]
    assert sorted(names) == sorted(set(names))
    assert set(names) >= REQUIRED_ALERTS


def _unit_test_cases() -> list[dict[str, Any]]:
    return [case for path in UNIT_TESTS for test in _load(path)["tests"]
            for case in test.get("alert_rule_test", [])]


@pytest.mark.parametrize("name", sorted(REQUIRED_ALERTS), ids=sorted(REQUIRED_ALERTS))
def test_every_alert_is_tested_firing_and_quiet(name: str) -> None:
    cases = [c for c in _unit_test_cases() if c["alertname"] == name]
    assert any(c.get("exp_alerts") for c in cases), f"no unit test expects {name} to fire"
    assert any(not c.get("exp_alerts") for c in cases), f"no unit test expects {name} to stay quiet"


def test_unit_tests_catch_a_broken_rule(tmp_path: Path) -> None:
    """A rule that never fires makes the unit tests fail: they assert real alerts, not just syntax."""
    result = _run_unit_tests_with(tmp_path, "CanaryAnalysisFailed",
                                  'last_over_time(argo_rollouts_analysis_run_phase{phase="Failed"}[3m]) > 1')
    assert result.returncode != 0
    assert "CanaryAnalysisFailed" in result.stdout + result.stderr
