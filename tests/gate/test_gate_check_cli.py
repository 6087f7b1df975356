"""`rollouts gate check` output and exit codes with the baseline given by hand (no Prometheus)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rollouts.cli import commands, gate  # noqa: F401  (registers the verbs)
from rollouts.cli.main import app

TEMPLATES = str(Path(__file__).resolve().parents[2] / "infra" / "rollouts" / "analysis-templates.yaml")
runner = CliRunner()


def check(*extra: str) -> tuple[int, str]:
    result = runner.invoke(app, ["gate", "check", "-f", TEMPLATES, "-a", "service-name=auth-svc", *extra])
    return result.exit_code, result.output


@pytest.mark.parametrize(("extra", "code", "expected"), [
    pytest.param(["--template", "success-rate", "--error-rate", "0.005", "--rps", "100", "--gates", "4"], 1,
                 "consider rollouts/sequential or a threshold of 0.99", id="runbook-gate-flagged-with-a-looser-threshold"),
    pytest.param(["--template", "success-rate", "--error-rate", "0.001", "--rps", "100", "--gates", "4"], 0,
                 "a healthy release fails it 0 % of the time", id="quiet-service-not-flagged"),
    pytest.param(["--template", "slo-gates", "--error-rate", "0.005", "--rps", "100"], 1,
                 "(600 requests a window, the canary's 10 %)", id="canary-scoped-plugin-metric"),
    pytest.param(["--template", "error-budget-burn", "--error-rate", "0.005", "--rps", "100"], 2,
                 "error-budget-burn: skipped: query is neither", id="no-threshold-metric-is-input-error"),
    pytest.param(["--template", "nope"], 2, "no AnalysisTemplate nope in the given files (found: success-rate",
                 id="unknown-template"),
    pytest.param(["--template", "success-rate", "--prometheus-address", "http://127.0.0.1:9"], 3,
                 "no baseline: Prometheus at http://127.0.0.1:9 is unreachable", id="prometheus-unreachable"),
])
def test_gate_check_lines_and_exit_codes(extra: list[str], code: int, expected: str) -> None:
    exit_code, output = check(*extra)
    assert expected in output, output
    assert exit_code == code, output
