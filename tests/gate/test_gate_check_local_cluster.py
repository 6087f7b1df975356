"""`rollouts gate check` (and the lint/doctor findings built on it) on the local cluster, the shape that ships:
- rollouts/traffic gates with no Prometheus given read the cluster's own ingress-proxy counters (its
  /traffic/v1 API), here a service that answered exactly 1 request in 200 with a 500 for ten minutes;
- the shipped PromQL templates' address `http://prometheus.prometheus.svc:9090` reaches a real Prometheus
  through the cluster's Service listener, for gate check, lint and doctor alike, without
  --prometheus-address."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rollouts.cluster.store import SQLiteStore
from rollouts.runtime.local.traffic import TrafficStats
from tests.cluster.conftest import start_cluster
from tests.conftest import REPO, require_tool

pytestmark = pytest.mark.integration

TEMPLATES = REPO / "infra" / "rollouts" / "analysis-templates.yaml"
ROLLOUTS = REPO / "infra" / "rollouts" / "canary-rollouts.yaml"
RPS = 100


def rollouts(home: Path, user: Path, *args: str, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "ROLLOUTS_HOME")}
    env.update(HOME=str(user), ROLLOUTS_HOME=str(home))
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    return subprocess.run([sys.executable, "-m", "rollouts", *args], capture_output=True, text=True, timeout=120,
                          env=env, cwd=user)


def exact_traffic(stats: TrafficStats, now: float, seconds: int) -> None:
    """`seconds` of the stable version of aivo-system/auth-svc at RPS, every 200th request a 500, 200 ms."""
    served = 0
    for second in range(seconds):
        at = now - seconds + second + 0.5
        for _ in range(RPS):
            served += 1
            stats.record("aivo-system", "auth-svc", "stable", 500 if served % 200 == 0 else 200, 0.2, at=at,
                         pod_hash="abc")


def test_rollouts_traffic_gates_are_judged_on_the_local_proxy_counters(tmp_path: Path) -> None:
    home, user = tmp_path / "home", tmp_path / "user"
    home.mkdir()
    user.mkdir()
    stats = TrafficStats()
    exact_traffic(stats, time.time(), 600)
    cluster, stop = start_cluster(home, traffic=stats)
    try:
        found = rollouts(home, user, "gate", "check", "-f", str(TEMPLATES), "--template", "slo-gates",
                         "-a", "service-name=auth-svc", "--gates", "4", "--lookback", "5m",
                         kubeconfig=cluster.kubeconfig)
    finally:
        stop()
    # Without a cluster to read from, the same command has no baseline (exit 3) and says what to give.
    none = rollouts(tmp_path / "no-cluster", user, "gate", "check", "-f", str(TEMPLATES), "--template", "slo-gates",
                    "-a", "service-name=auth-svc")

    assert found.returncode == 1, found.stdout + found.stderr
    lines = dict(line.split(" ", 1) for line in found.stdout.splitlines())
    # 100 rps, the canary's 10 %, 1-minute windows: 600 requests a window at the counters' exact 0.50 %
    # (a few less: the traffic stopped when the command started, some seconds into the look-back).
    success = lines["success-rate"]
    assert "at today's 0.50 % error rate (" in success and " requests a window, the canary's 10 %)" in success, success
    window = int(success.split("error rate (")[1].split(" requests")[0].replace(",", ""))
    assert 540 <= window <= 600, success
    assert "consider rollouts/sequential" in success, success
    latency = lines["latency-p95"]
    assert "fails it 0 % of the time" in latency and "0.00 % of requests slower than 0.5" in latency, latency
    assert none.returncode == 3, none.stdout + none.stderr
    assert "no running local cluster whose proxy counts the traffic" in none.stdout, none.stdout


def test_shipped_prometheus_address_reaches_the_local_clusters_prometheus(tmp_path: Path) -> None:
    from rollouts.analysis.gate_noise import TEMPLATE_KINDS
    from tests.gate.test_gate_check_prometheus import ExactErrorRateTarget, wait_for_history
    from tests.integration.prometheus_server import PrometheusServer

    binary = require_tool("prometheus", "apt-get install prometheus")
    home, user = tmp_path / "home", tmp_path / "user"
    home.mkdir()
    user.mkdir()
    target = ExactErrorRateTarget(service="auth-svc", error_ratio=0.005, latency_seconds=0.2, rps=600)
    target.start()
    server = PrometheusServer(binary, tmp_path, [target.address])
    stop_cluster = None
    try:
        server.start()
        port = server.address.rsplit(":", 1)[1]
        with SQLiteStore(home / "state.db") as store:
            for doc in (d for path in (TEMPLATES, ROLLOUTS) for d in yaml.safe_load_all(path.read_text()) if d):
                if doc.get("kind") in ("Rollout", *TEMPLATE_KINDS):
                    stored = {**doc, "metadata": {**doc["metadata"], "namespace": "aivo-system"}}
                    if doc["kind"] == "Rollout" and doc["metadata"]["name"] == "auth-svc":
                        # A stable version, so doctor measures this rollout's first gate (the others SKIP).
                        stored["status"] = {"stableRS": "abc", "currentPodHash": "abc"}
                    store.create(stored)
        _, stop_cluster = start_cluster(home)
        # The cluster's Service prometheus/prometheus, its local listener being the real Prometheus' port.
        with SQLiteStore(home / "state.db") as store:
            store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prometheus"}})
            store.create({"apiVersion": "v1", "kind": "Service",
                          "metadata": {"name": "prometheus", "namespace": "prometheus",
                                       "annotations": {"rollouts.io/port": port}},
                          "spec": {"ports": [{"port": 9090}]}})
        wait_for_history(server, 'count_over_time(http_requests_total{service="auth-svc",code="200"}[20s]) >= 19')
        check = rollouts(home, user, "gate", "check", "-f", str(TEMPLATES), "--template", "success-rate",
                         "-a", "service-name=auth-svc", "--gates", "4", "--lookback", "20s")
        lint = rollouts(home, user, "lint", "--lookback", "20s", "-f", str(TEMPLATES), "-f", str(ROLLOUTS))
        doctor = rollouts(home, user, "doctor", "--home", str(home), "-n", "aivo-system", "--lookback", "20s")
    finally:
        if stop_cluster is not None:
            stop_cluster()
        server.stop()
        target.stop()

    assert check.returncode == 1, check.stdout + check.stderr
    assert check.stdout.startswith("success-rate >= 0.995 over 5m (5 x 60s, failureLimit 1): a healthy release "
                                   "fails it"), check.stdout
    assert "consider rollouts/sequential" in check.stdout, check.stdout
    warnings = [line for line in lint.stdout.splitlines() if "within noise" in line]
    assert lint.returncode == 0 and len(warnings) == 1, lint.stdout + lint.stderr
    assert ": AnalysisTemplate/success-rate: spec.metrics[0]: " in warnings[0], warnings
    noise = next((line for line in doctor.stdout.splitlines() if line.startswith("WARN gate-noise")), None)
    assert noise is not None and "AnalysisTemplate/success-rate spec.metrics[0]" in noise, doctor.stdout
    # doctor's gate measurement reaches the same address (the host's resolver knows no .svc name): the
    # service-wide success rate is measured, about 0.995 at the target's 0.5 % errors.
    gates = next((line for line in doctor.stdout.splitlines() if " gates auth-svc: " in line), None)
    assert gates is not None, doctor.stdout
    assert "Name or service not known" not in gates and "success-rate Error" not in gates, gates
    value = float(gates.split("success-rate ")[1].split("value=")[1].split(";")[0].split(" ")[0].strip("[]"))
    assert 0.99 <= value <= 1.0, gates
