"""`rollouts gate check` against a real Prometheus that scrapes a service whose normal error rate is exactly
0.5 % (every 200th request fails): the runbook's success-rate gate (>= 99.5 % over 5m, failureLimit 1) is
flagged as a coin that lands on "abort", and its latency gate, far from its bound, is not; the same for the
rollouts/traffic gates of `slo-gates`, read from the same request metrics."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, require_tool
from tests.integration.prometheus_server import PrometheusServer
from tests.integration.traffic_target import TrafficTarget

pytestmark = pytest.mark.integration

TEMPLATES = REPO / "infra" / "rollouts" / "analysis-templates.yaml"
LOOKBACK = "20s"  # 60 errors at 600 rps: the counters' whole-request steps stay a small error


class ExactErrorRateTarget(TrafficTarget):
    """The integration target with a deterministic error pattern instead of random draws, so a short
    look-back sees the stated baseline and not a noisy sample of it."""

    def _generate(self) -> None:
        per_tick = max(1, self.rps // 10)
        every = round(1 / self.error_ratio)
        served = 0
        while not self._stop.wait(0.1):
            for _ in range(per_tick):
                served += 1
                code = "500" if served % every == 0 else "200"
                self.requests.labels(self.service, code, self.version).inc()
                self.latency.labels(self.service, self.version).observe(self.latency_seconds)


def wait_for_history(server: PrometheusServer, promql: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.query(promql):
            return
        time.sleep(0.25)
    raise TimeoutError(f"{promql!r} stayed empty for {timeout}s")


def gate_check(address: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rollouts", "gate", "check", "-f", str(TEMPLATES), "-a", "service-name=auth-svc",
         "--lookback", LOOKBACK, "--prometheus-address", address, *extra],
        capture_output=True, text=True, timeout=120,
    )


def test_gate_check_flags_runbook_success_rate_gate_at_half_percent_baseline(tmp_path) -> None:  # type: ignore[no-untyped-def]
    binary = require_tool("prometheus", "apt-get install prometheus")
    target = ExactErrorRateTarget(service="auth-svc", error_ratio=0.005, latency_seconds=0.2, rps=600)
    target.start()
    server = PrometheusServer(binary, tmp_path, [target.address])
    try:
        server.start()
        # The look-back must lie inside the series' history: wait until it holds a full window of scrapes.
        wait_for_history(server, f'count_over_time(http_requests_total{{service="auth-svc",code="200"}}[{LOOKBACK}]) >= 19')
        success = gate_check(server.address, "--template", "success-rate", "--gates", "4")
        latency = gate_check(server.address, "--template", "latency-p95", "--gates", "4")
        plugin = gate_check(server.address, "--template", "slo-gates", "--gates", "4")
    finally:
        server.stop()
        target.stop()

    assert success.returncode == 1, success.stdout + success.stderr
    line = success.stdout.strip()
    assert line.startswith("success-rate >= 0.995 over 5m (5 x 60s, failureLimit 1): a healthy release fails it"), line
    measured = float(line.split("at today's ")[1].split(" %")[0])
    assert 0.45 <= measured <= 0.55 and " % error rate (" in line, line  # the counters' own 0.5 %
    assert "consider rollouts/sequential or a threshold of 0.99" in line, line
    over_release = float(line.split("(")[2].split(" %")[0])
    assert over_release >= 80, line

    assert latency.returncode == 0, latency.stdout + latency.stderr
    assert latency.stdout.startswith("latency-p95 <= 0.5 over 5m"), latency.stdout
    assert "fails it 0 % of the time" in latency.stdout, latency.stdout

    # The rollouts/traffic gates read the same request metrics (the local ingress proxy's shape); the
    # canary's 10 % of 600 rps is 3,600 requests per 1m window.
    assert plugin.returncode == 1, plugin.stdout + plugin.stderr
    lines = dict(line.split(" ", 1) for line in plugin.stdout.splitlines())
    assert "the canary's 10 %" in lines["success-rate"] and "consider rollouts/sequential" in lines["success-rate"]
    assert "fails it 0 % of the time" in lines["latency-p95"], plugin.stdout
    assert lines["error-budget-burn:"].startswith("skipped"), plugin.stdout
