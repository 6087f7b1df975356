"""`rollouts lint` warns about a fixed-threshold gate within noise of the live baseline (the estimate of
`rollouts gate check`) when a Prometheus answers, and says nothing more when none does; the finding is
`rollouts.analysis.gate_noise.noisy_gates` for the doctor too."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rollouts.analysis.gate_noise import ADDRESS_ENV_VARS, Usage, noisy_gates, template_usages
from tests.conftest import REPO, require_tool

TEMPLATES = REPO / "infra" / "rollouts" / "analysis-templates.yaml"
ROLLOUTS = REPO / "infra" / "rollouts" / "canary-rollouts.yaml"


def lint(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rollouts", "lint", *args], capture_output=True, text=True,
                          timeout=120)


def closed_port_address() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_lint_noisy_gate_address_fallbacks_match_the_prometheus_provider() -> None:
    from rollouts.analysis.providers.prometheus import ADDRESS_ENV_VARS as provider_vars

    assert provider_vars == ADDRESS_ENV_VARS


def _rollout(steps: list[dict[str, object]], **strategy: object) -> dict[str, object]:
    return {"kind": "Rollout", "metadata": {"name": "shop"},
            "spec": {"strategy": {"canary": {"steps": steps, **strategy}}}}


_GATE = {"analysis": {"templates": [{"templateName": "success-rate"}],
                      "args": [{"name": "service-name", "value": "shop"},
                               {"name": "canary-hash", "valueFrom": {"podTemplateHashValue": "Latest"}}]}}


@pytest.mark.parametrize(("rollout", "expected"), [
    pytest.param(_rollout([{"setWeight": 25}, _GATE, {"setWeight": 50}, _GATE]),
                 [Usage({"service-name": "shop"}, 2, 25.0, "shop", (25.0, 50.0))],
                 id="two-gated-steps-weight-of-each"),
    pytest.param(_rollout([_GATE]), [Usage({"service-name": "shop"}, 1, 10.0, "shop", (10.0,))],
                 id="no-weight-yet-default-10"),
    pytest.param(_rollout([], analysis=_GATE["analysis"]), [Usage({"service-name": "shop"}, 1, 10.0, "shop")],
                 id="background-analysis"),
])
def test_lint_noisy_gate_usages_from_rollouts(rollout: dict[str, object], expected: list[Usage]) -> None:
    assert template_usages([rollout])["success-rate"] == expected


def test_lint_says_nothing_about_gates_when_no_prometheus_answers() -> None:
    # The templates' own address does not resolve here, and the given one refuses connections: the
    # output is exactly what lint prints without the gate check.
    plain = lint("--no-gate-check", "-f", str(TEMPLATES), "-f", str(ROLLOUTS))
    own = lint("-f", str(TEMPLATES), "-f", str(ROLLOUTS))
    refused = lint("--prometheus-address", closed_port_address(), "-f", str(TEMPLATES), "-f", str(ROLLOUTS))
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert (own.returncode, own.stdout) == (0, plain.stdout)
    assert (refused.returncode, refused.stdout) == (0, plain.stdout)
    assert "within noise" not in plain.stdout


def test_noisy_gates_is_empty_without_a_reachable_prometheus() -> None:
    import yaml

    objects = [doc for path in (TEMPLATES, ROLLOUTS) for doc in yaml.safe_load_all(path.read_text()) if doc]
    assert noisy_gates(objects, prometheus_address=closed_port_address(), env={}) == []


@pytest.mark.integration
def test_lint_warns_about_runbook_success_rate_gate_within_noise_of_live_baseline(tmp_path: Path) -> None:
    from tests.gate.test_gate_check_prometheus import ExactErrorRateTarget, wait_for_history
    from tests.integration.prometheus_server import PrometheusServer

    binary = require_tool("prometheus", "apt-get install prometheus")
    target = ExactErrorRateTarget(service="auth-svc", error_ratio=0.005, latency_seconds=0.2, rps=600)
    target.start()
    server = PrometheusServer(binary, tmp_path, [target.address])
    try:
        server.start()
        wait_for_history(server, 'count_over_time(http_requests_total{service="auth-svc",code="200"}[20s]) >= 19')
        result = lint("--prometheus-address", server.address, "--lookback", "20s",
                      "-f", str(TEMPLATES), "-f", str(ROLLOUTS))
    finally:
        server.stop()
        target.stop()

    assert result.returncode == 0, result.stdout + result.stderr  # warnings do not fail lint
    warnings = [line for line in result.stdout.splitlines() if "within noise" in line]
    # Only auth-svc has traffic: user-svc's and inference-gateway-svc's baselines have no data, and the
    # latency gate (200 ms against 500 ms) is far from its bound.
    assert len(warnings) == 1, result.stdout
    line = warnings[0]
    assert line.startswith(f"{TEMPLATES}:") and ": AnalysisTemplate/success-rate: spec.metrics[0]: " in line, line
    assert "(as Rollout auth-svc runs it)" in line and "success-rate >= 0.995 over 5m" in line, line
    assert "consider rollouts/sequential or a threshold of 0.99" in line and line.endswith("(warning)"), line
    # The metric's own line in the file.
    metric_line = int(line.split(":")[1])
    assert "- name: success-rate" in TEMPLATES.read_text().splitlines()[metric_line - 1]


@pytest.mark.integration
def test_doctor_warns_about_the_gate_within_noise_without_failing(tmp_path: Path) -> None:
    """`rollouts doctor` on the runbook's configuration, stored in a cluster, with a Prometheus whose auth-svc
    serves 0.5 % errors: a WARN gate-noise line naming the success-rate gate; the exit code stays 0 for it."""
    import yaml

    from rollouts.analysis.gate_noise import TEMPLATE_KINDS
    from rollouts.cluster.store import SQLiteStore
    from tests.cluster.conftest import start_cluster
    from tests.gate.test_gate_check_prometheus import ExactErrorRateTarget, wait_for_history
    from tests.integration.prometheus_server import PrometheusServer

    binary = require_tool("prometheus", "apt-get install prometheus")
    home = tmp_path / "home"
    home.mkdir()
    with SQLiteStore(home / "state.db") as store:
        for doc in (d for path in (TEMPLATES, ROLLOUTS) for d in yaml.safe_load_all(path.read_text()) if d):
            if doc.get("kind") in ("Rollout", *TEMPLATE_KINDS):
                store.create({**doc, "metadata": {**doc["metadata"], "namespace": "aivo-system"}})
    _, stop_cluster = start_cluster(home)
    target = ExactErrorRateTarget(service="auth-svc", error_ratio=0.005, latency_seconds=0.2, rps=600)
    target.start()
    server = PrometheusServer(binary, tmp_path, [target.address])
    try:
        server.start()
        wait_for_history(server, 'count_over_time(http_requests_total{service="auth-svc",code="200"}[20s]) >= 19')
        env = {k: v for k, v in __import__("os").environ.items() if k != "KUBECONFIG"}
        result = subprocess.run([sys.executable, "-m", "rollouts", "doctor", "--home", str(home), "-n", "aivo-system",
                                 "--prometheus-address", server.address, "--lookback", "20s"],
                                capture_output=True, text=True, timeout=120, env=env)
    finally:
        server.stop()
        target.stop()
        stop_cluster()
    lines = {line.split(":")[0]: line for line in result.stdout.splitlines()}
    noise = lines.get("WARN gate-noise")
    assert noise is not None, result.stdout + result.stderr
    assert "AnalysisTemplate/success-rate spec.metrics[0]" in noise and "success-rate >= 0.995" in noise, noise
    assert "FAIL gate-noise" not in result.stdout
