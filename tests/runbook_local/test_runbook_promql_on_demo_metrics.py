"""Item 1's purpose: the runbook's PromQL gates, as shipped, judge the demo application's own metrics. A real
Prometheus scrapes demo service processes (one healthy, one with 50 % errors, one slow); `rollouts analyze
--template` then passes the healthy service and fails the others on the right gate."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rollouts.demo.prometheus import free_port
from tests.conftest import REPO, require_tool
from tests.integration.prometheus_server import PrometheusServer

pytestmark = pytest.mark.integration

TEMPLATES = str(REPO / "infra" / "rollouts" / "analysis-templates.yaml")
SERVICES = {"good-svc": {}, "bad-svc": {"ERROR_RATE": "0.5", "SEED": "3"}, "slow-svc": {"LATENCY_MS": "700"}}


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert process.poll() is None, f"demo service exited with {process.returncode}"
        try:
            if httpx.get(url + "/healthz", timeout=0.5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise AssertionError(f"{url} did not become healthy")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    binary = require_tool("prometheus", "apt-get install prometheus")
    processes: list[subprocess.Popen[bytes]] = []
    urls: dict[str, str] = {}
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        for name, env in SERVICES.items():
            port = free_port()
            process = subprocess.Popen([sys.executable, "-m", "rollouts.demo.service"],
                                       env={**os.environ, "PORT": str(port), "SERVICE_NAME": name, **env},
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            processes.append(process)
            urls[name] = f"http://127.0.0.1:{port}"
            _wait_healthy(urls[name], process)

        def traffic(url: str) -> None:  # about 10 requests/s per service, until the module ends
            with httpx.Client(timeout=5) as client:
                while not stop.is_set():
                    try:
                        client.get(url + "/")
                    except httpx.HTTPError:
                        pass  # a loaded machine's timeout; the gates see the answered requests
                    stop.wait(0.1)

        threads += [threading.Thread(target=traffic, args=(url,), daemon=True) for url in urls.values()]
        for thread in threads:
            thread.start()
        server = PrometheusServer(binary, tmp_path_factory.mktemp("prometheus"),
                                  [u.removeprefix("http://") for u in urls.values()])
        server.start()
        try:
            for name in SERVICES:  # two scrapes with traffic between them: rate() has data
                server.wait_for(f'sum(rate(http_requests_total{{service="{name}"}}[5m])) > 0', timeout=60)
                server.wait_for(f'sum(rate(http_request_duration_seconds_count{{service="{name}"}}[5m])) > 0',
                                timeout=60)
            yield server
        finally:
            server.stop()
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        for process in processes:
            process.kill()
            process.wait()


@pytest.mark.parametrize(("template", "service", "phase", "code"), [
    pytest.param("success-rate", "good-svc", "Successful", 0, id="success-rate-healthy"),
    pytest.param("success-rate", "bad-svc", "Failed", 1, id="success-rate-errors"),
    pytest.param("latency-p95", "good-svc", "Successful", 0, id="latency-healthy"),
    pytest.param("latency-p95", "slow-svc", "Failed", 1, id="latency-slow"),
])
def test_runbook_promql_gates_judge_the_demo_services_own_metrics(
        prometheus: PrometheusServer, template: str, service: str, phase: str, code: int, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "rollouts", "analyze", "-f", TEMPLATES, "--template", template,
                           "-a", f"service-name={service}", "--once", "--prometheus-address", prometheus.address],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "ROLLOUTS_HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "none")})
    assert done.returncode == code, done.stdout + done.stderr
    assert f"AnalysisRun {phase}" in done.stdout
