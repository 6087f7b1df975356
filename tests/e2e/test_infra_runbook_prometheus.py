"""The runbook's own configuration, end to end, on the local cluster with its real Prometheus.

`rollouts cluster up` (which runs Debian's prometheus as Service prometheus/prometheus:9090, discovering pods
through our API), an operator, then `kubectl kustomize infra/overlays/local-fast | rollouts apply -f -`: all
of infra/rollouts as shipped except replicas (1) and the PromQL gates' interval, count and rate windows
(tests/runbook_local/test_local_fast_overlay.py proves nothing else differs). Every gate is the shipped
PromQL against http://prometheus.prometheus.svc:9090, over the demo services' own `http_requests_total` and
`http_request_duration_seconds` with the pod-template-hash label Prometheus' discovery adds. `rollouts load`
sends steady traffic (auth-svc through its Ingress; analytics-svc to its active and its preview Service).

The canary flow (auth-svc) and the blue/green flow (analytics-svc) run side by side, each in its thread:
  (a) auth-svc:1.1.0 walks the four PromQL step gates to 100 %;
  (b) auth-svc:bad-1.2.0 (20 % HTTP 500) is aborted by a step gate. Which metric ends the run is recorded
      and asserted: locally it is error-budget-burn (failureLimit 0), because a few minutes of history make
      a small budget that a 10 % canary at 20 % errors spends 10 % of within seconds (the overlay's comment
      explains it). Whether success-rate has measured the drop by then depends on when its own
      measurement falls: not asserted;
  (c) analytics-svc:1.1.0: pre-promotion analysis on the preview's own requests (scoped to the green hash)
      passes, `rollouts promote`, post-promotion analysis on production traffic passes;
  (d) analytics-svc:bad-1.2.0: the preview's checks pass (the preview load requests /version, which the
      demo answers 404 in every build: counted, not a 5xx; the bad build's defect is on `/`, which only
      production traffic sends), `rollouts promote`, and post-promotion analysis on production traffic
      fails and switches the active Service back to the previous version.
Every run's measurements are asserted to be numbers (no empty vector, no NaN). Also asserted: the runbook's
`rollouts port-forward -n prometheus svc/prometheus` + `/-/healthy`, and Prometheus' /api/v1/targets lists
the pods and the operator as up, discovered from our API."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from rollouts.demo.prometheus import free_port
from tests.conftest import REPO, require_tool
from tests.e2e.harness import ControllerProcess, wait_until

pytestmark = pytest.mark.integration

NS = "aivo-system"
IMAGES = REPO / "infra" / "rollouts" / "local-images.yaml"
OVERLAY = REPO / "infra" / "overlays" / "local-fast"
SLO = 0.995


class Runbook:
    """The running home: operator, loads, the port-forward to Prometheus, and readers of the store."""

    def __init__(self, controller: ControllerProcess, prometheus_url: str) -> None:
        self.controller = controller
        self.prometheus_url = prometheus_url

    def rollout(self, name: str) -> dict[str, Any]:
        return self.controller.rollout(name, NS)

    def runs(self, rollout: str, pod_hash: str, kind: str | None = None) -> list[dict[str, Any]]:
        with self.controller.store() as store:
            runs = store.list("AnalysisRun", NS)
        return [r for r in runs if (r["metadata"].get("labels") or {}).get("rollout") == rollout
                and r["metadata"]["labels"].get("rollouts-pod-template-hash") == pod_hash
                and (kind is None or r["metadata"]["labels"].get("rollout-type") == kind)]

    def query(self, promql: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.prometheus_url}/api/v1/query", params={"query": promql}, timeout=5).json()
        return list(answer["data"]["result"])

    def release(self, name: str, image: str) -> str:
        """Sets the image (the runbook's `set image`) and returns the new pod-template hash."""
        before = self.rollout(name).get("status", {}).get("currentPodHash")
        self.controller.cli("set", "image", name, f"{name}={image}", "-n", NS)

        def new_hash() -> str | None:
            current = self.rollout(name).get("status", {}).get("currentPodHash")
            return current if current and current != before else None

        return str(wait_until(new_hash, 30, f"{name}'s new ReplicaSet for {image}"))

    def wait_phase(self, name: str, check: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> None:
        def done() -> dict[str, Any] | None:
            status = self.rollout(name).get("status") or {}
            return status if check(status) else None

        try:
            wait_until(done, timeout, what, interval=0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nruns: {self.summary(name)}\n{self.controller.tail(30)}") from None

    def summary(self, name: str) -> list[str]:
        with self.controller.store() as store:
            runs = store.list("AnalysisRun", NS)
        return [f"{r['metadata']['name']} {r['status'].get('phase')} {measured(r)}" for r in runs
                if (r["metadata"].get("labels") or {}).get("rollout") == name]


def measured(run: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """metric name -> [(phase, value)] of every measurement of the run."""
    return {res["name"]: [(m.get("phase", ""), str(m.get("value", ""))) for m in res.get("measurements") or []]
            for res in (run.get("status") or {}).get("metricResults") or []}


def numbers(run: dict[str, Any], metric: str) -> list[float]:
    """The metric's measured values as floats; every one must be a real number."""
    values = []
    for phase, value in measured(run)[metric]:
        if phase == "Inconclusive":  # a first look before two scrapes of new pods: tolerated by the gate
            continue
        parsed = json.loads(value) if value.startswith("[") else [float(value)]
        assert parsed and all(isinstance(v, int | float) and not math.isnan(v) for v in parsed), \
            f"{run['metadata']['name']}/{metric}: {value!r} is not a number"
        values.append(float(parsed[0]))
    assert values, f"{run['metadata']['name']}/{metric}: no measured value: {measured(run)}"
    return values


def _load(controller: ControllerProcess, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "rollouts", "load", *args, "-n", NS, "--duration", "0"],
                            env=controller.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def runbook(tmp_path: Path) -> Iterator[Runbook]:
    require_tool("prometheus", "apt-get install prometheus")
    kubectl = require_tool("kubectl", "install kubectl (it carries kustomize)")
    home = tmp_path / "home"
    controller = ControllerProcess(home)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        home.mkdir(parents=True)
        up = subprocess.run([sys.executable, "-m", "rollouts", "cluster", "up", "--home", str(home),
                             "--images", str(IMAGES), "--probe-period", "0.5"],
                            env=controller.env, capture_output=True, text=True, timeout=90, check=False)
        assert up.returncode == 0, up.stdout + up.stderr
        controller.start()
        rendered = subprocess.run([kubectl, "kustomize", str(OVERLAY)], capture_output=True, text=True,
                                  timeout=60, check=True).stdout
        applied = subprocess.run([sys.executable, "-m", "rollouts", "apply", "-f", "-"], input=rendered,
                                 env=controller.env, capture_output=True, text=True, timeout=60, check=False)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        # The runbook's checklist: port-forward to svc/prometheus, then /-/healthy.
        port = free_port()
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "rollouts", "port-forward", "-n", "prometheus", "svc/prometheus",
             f"{port}:9090"], env=controller.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            try:
                return httpx.get(f"{url}/-/healthy", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 60, "the cluster's Prometheus through the port-forward", interval=0.5)
        book = Runbook(controller, url)
        for name in ("auth-svc", "analytics-svc"):
            book.wait_phase(name, lambda s: s.get("phase") == "Healthy", 90, f"{name} Healthy")
        processes.append(_load(controller, "auth-svc", "--rps", "10"))
        processes.append(_load(controller, "analytics-svc", "--rps", "10"))
        processes.append(_load(controller, "analytics-svc", "--preview", "--rps", "4", "--path", "/version"))
        for service in ("auth-svc", "analytics-svc"):  # two scrapes with traffic: the gates have data
            wait_until(lambda s=service: book.query(f'sum(rate(http_requests_total{{service="{s}"}}[20s])) > 0'),
                       60, f"{service}'s request rate in Prometheus", interval=0.5)
        yield book
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        controller.stop_leaving_no_pods()


def canary_flow(book: Runbook) -> dict[str, Any]:
    # (a) a good canary through the four PromQL step gates.
    good = book.release("auth-svc", "auth-svc:1.1.0")
    book.wait_phase("auth-svc", lambda s: s.get("stableRS") == good and s.get("phase") == "Healthy", 150,
                    "auth-svc:1.1.0 promoted to 100 %")
    gates = book.runs("auth-svc", good, "Step")
    assert [r["status"]["phase"] for r in gates] == ["Successful"] * 4, book.summary("auth-svc")
    for run in gates:
        assert min(numbers(run, "success-rate")) >= SLO
        assert max(numbers(run, "latency-p95")) <= 0.5
        assert max(numbers(run, "error-budget-burn")) < 0.10
    # (b) a bad canary, aborted by its first step gate.
    bad = book.release("auth-svc", "auth-svc:bad-1.2.0")
    book.wait_phase("auth-svc", lambda s: bool(s.get("abort")), 120, "auth-svc:bad-1.2.0 aborted")
    book.wait_phase("auth-svc", lambda s: s.get("stableRS") == good and s.get("phase") == "Degraded", 60,
                    "auth-svc back on 1.1.0, Degraded")
    failed = [r for r in book.runs("auth-svc", bad, "Step") if r["status"]["phase"] == "Failed"]
    assert len(failed) == 1, book.summary("auth-svc")
    ended_by = sorted(res["name"] for res in failed[0]["status"]["metricResults"] if res["phase"] == "Failed")
    return {"failed_run": failed[0], "ended_by": ended_by, "hash": bad}


def bluegreen_flow(book: Runbook) -> dict[str, Any]:
    # (c) a good blue/green release: pre-promotion on the preview's requests, promote, post-promotion.
    good = book.release("analytics-svc", "analytics-svc:1.1.0")
    book.wait_phase("analytics-svc", lambda s: any(c.get("reason") == "BlueGreenPause"
                                                   for c in s.get("pauseConditions") or []), 120,
                    "analytics-svc:1.1.0 past pre-promotion analysis, paused for promotion")
    pre = book.runs("analytics-svc", good, "PrePromotion")
    assert [r["status"]["phase"] for r in pre] == ["Successful"], book.summary("analytics-svc")
    assert min(numbers(pre[0], "preview-success-rate")) >= SLO
    assert max(numbers(pre[0], "preview-latency-p95")) <= 0.5
    book.controller.cli("promote", "analytics-svc", "-n", NS)
    book.wait_phase("analytics-svc", lambda s: s.get("stableRS") == good and s.get("phase") == "Healthy", 120,
                    "analytics-svc:1.1.0 promoted after post-promotion analysis")
    post = book.runs("analytics-svc", good, "PostPromotion")
    assert [r["status"]["phase"] for r in post] == ["Successful"], book.summary("analytics-svc")
    assert min(numbers(post[0], "success-rate")) >= SLO
    assert max(numbers(post[0], "latency-p95")) <= 0.5
    # (d) a bad build whose preview checks pass; production traffic fails post-promotion analysis.
    bad = book.release("analytics-svc", "analytics-svc:bad-1.2.0")
    book.wait_phase("analytics-svc", lambda s: any(c.get("reason") == "BlueGreenPause"
                                                   for c in s.get("pauseConditions") or []), 120,
                    "analytics-svc:bad-1.2.0 past pre-promotion analysis")
    assert [r["status"]["phase"] for r in book.runs("analytics-svc", bad, "PrePromotion")] == ["Successful"]
    book.controller.cli("promote", "analytics-svc", "-n", NS)
    book.wait_phase("analytics-svc", lambda s: bool(s.get("abort")), 120, "analytics-svc:bad-1.2.0 aborted")
    book.wait_phase("analytics-svc", lambda s: s.get("stableRS") == good, 60, "analytics-svc back on 1.1.0")
    post = book.runs("analytics-svc", bad, "PostPromotion")
    assert [r["status"]["phase"] for r in post] == ["Failed"], book.summary("analytics-svc")
    assert min(numbers(post[0], "success-rate")) < SLO
    with book.controller.store() as store:
        active = store.get("Service", NS, "analytics-svc-active")
    assert active["spec"]["selector"]["rollouts-pod-template-hash"] == good
    return {}


def test_infra_runbook_releases_gated_by_the_cluster_prometheus(runbook: Runbook) -> None:
    started = time.monotonic()
    targets = runbook.query('up{job="kubernetes-pods", namespace="aivo-system"} == 1')
    assert {t["metric"].get("app") for t in targets} >= {"auth-svc", "analytics-svc"}, targets
    with ThreadPoolExecutor(2) as pool:
        canary = pool.submit(canary_flow, runbook)
        bluegreen = pool.submit(bluegreen_flow, runbook)
        bluegreen.result()
        result = canary.result()
    # (b)'s note, as it happened: error-budget-burn ended the run, on the canary pods' own 5xx in Prometheus.
    assert result["ended_by"] == ["error-budget-burn"], measured(result["failed_run"])
    assert max(numbers(result["failed_run"], "error-budget-burn")) >= 0.10, measured(result["failed_run"])
    errors = runbook.query(f'sum(increase(http_requests_total{{service="auth-svc",code=~"5..",'
                           f'rollouts_pod_template_hash="{result["hash"]}"}}[1h]))')
    assert errors and float(errors[0]["value"][1]) > 0, errors
    api = httpx.get(f"{runbook.prometheus_url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
    pods = [t for t in api if t["labels"].get("job") == "kubernetes-pods" and t["health"] == "up"]
    assert {t["labels"].get("app") for t in pods} >= {"auth-svc", "analytics-svc"}, api
    # The operator's /metrics, discovered through the Endpoints of Service rollouts/rollouts-metrics.
    assert any(t["labels"].get("job") == "rollouts-metrics" and t["health"] == "up" for t in api), api
    print(f"releases took {time.monotonic() - started:.0f} s; bad canary's run: {measured(result['failed_run'])}",
          file=sys.stderr)
