"""The runbook's PromQL templates (infra/rollouts/analysis-templates.yaml) judged by `rollouts analyze`
against a real Prometheus that scrapes synthetic traffic: healthy traffic passes, a bad version fails,
and an unreachable Prometheus ends in Error, never Successful."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, require_tool
from tests.integration.prometheus_server import PrometheusServer, free_port
from tests.integration.traffic_target import TrafficTarget

pytestmark = pytest.mark.integration

TEMPLATES = REPO / "infra" / "rollouts" / "analysis-templates.yaml"


def analyze(template: str, *extra: str, address: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rollouts", "analyze", "-f", template, "-a", "service-name=auth-svc", "--once",
         "--prometheus-address", address, *extra],
        capture_output=True, text=True, timeout=120,
    )


def one_template(name: str, tmp_path: Path, **changes: object) -> str:
    """A file holding only the named template from the runbook's set (optionally with metric changes)."""
    for doc in yaml.safe_load_all(TEMPLATES.read_text()):
        if doc and doc["metadata"]["name"] == name:
            for metric in doc["spec"]["metrics"]:
                metric.update(changes)
            path = tmp_path / f"{name}.yaml"
            path.write_text(yaml.safe_dump(doc))
            return str(path)
    raise AssertionError(f"template {name} not in {TEMPLATES}")


@pytest.fixture
def prometheus_binary() -> str:
    return require_tool("prometheus", "apt-get install prometheus")


def run_against(prometheus_binary: str, tmp_path: Path, *, error_ratio: float, latency: float,
                templates: list[str]) -> dict[str, subprocess.CompletedProcess[str]]:
    target = TrafficTarget(service="auth-svc", error_ratio=error_ratio, latency_seconds=latency)
    target.start()
    server = PrometheusServer(prometheus_binary, tmp_path, [target.address])
    try:
        server.start()
        # rate() needs two samples of the series: wait until Prometheus can compute it.
        server.wait_for('sum(rate(http_requests_total{service="auth-svc"}[5m])) > 0')
        return {name: analyze(one_template(name, tmp_path), address=server.address) for name in templates}
    finally:
        server.stop()
        target.stop()


def test_healthy_service_passes_success_rate_and_latency(prometheus_binary: str, tmp_path: Path) -> None:
    results = run_against(prometheus_binary, tmp_path, error_ratio=0.0, latency=0.04,
                          templates=["success-rate", "latency-p95"])
    for name, result in results.items():
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"
        assert "AnalysisRun Successful" in result.stdout


def test_bad_version_fails_success_rate_and_latency(prometheus_binary: str, tmp_path: Path) -> None:
    results = run_against(prometheus_binary, tmp_path, error_ratio=0.2, latency=1.2,
                          templates=["success-rate", "latency-p95"])
    for name, result in results.items():
        assert result.returncode == 1, f"{name}: {result.stdout}{result.stderr}"
        assert "AnalysisRun Failed" in result.stdout
    # The measured values are printed: success rate near 0.8, P95 above the 0.5 s gate.
    rate = float(results["success-rate"].stdout.split("value=[")[1].split("]")[0])
    assert 0.7 < rate < 0.9
    p95 = float(results["latency-p95"].stdout.split("value=[")[1].split("]")[0])
    assert p95 > 0.5


def test_unreachable_prometheus_is_an_error_never_success(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    # consecutiveErrorLimit 1 keeps the test short: Error after 2 failed attempts, 10 s apart.
    template = one_template("success-rate", tmp_path, consecutiveErrorLimit=1)
    result = analyze(template, address=closed)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "AnalysisRun Error" in result.stdout
    assert "consecutiveErrors (2) > consecutiveErrorLimit (1)" in result.stdout
    assert "127.0.0.1" in result.stdout
