"""The alerts against the real thing: a Prometheus with deploy/prometheus/rules.yaml (scraping and evaluating
every second, under a job name of its own: ControllerDown must not depend on it) scrapes a running
operator process and, on its ingress metrics port, the local cluster's proxy with its request series. A good release fires
neither RolloutFailed nor CanaryAnalysisFailed; an abort fires RolloutFailed only while it lasts, and after
retry, promote and a controller restart the Healthy rollout has no alert at all; a bad canary is aborted by
its analysis and both fire, read back through Prometheus' ALERTS series."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import httpx
import pytest
from tests.conftest import REPO, require_tool
from tests.e2e.harness import ControllerProcess, Load, wait_until
from tests.e2e.manifests import CANARY
from tests.integration.prometheus_server import PrometheusServer, free_port

pytestmark = pytest.mark.integration

RULES = REPO / "deploy" / "prometheus" / "rules.yaml"
RUNBOOK_ALERTS = 'ALERTS{alertname=~"RolloutFailed|CanaryAnalysisFailed"}'


@dataclass
class Stack:
    controller: ControllerProcess
    prometheus: PrometheusServer
    port: int

    def rules_evaluated_after(self, moment: float) -> bool:
        """True once every rule group has been evaluated after `moment` (a time.time() value)."""
        groups = httpx.get(f"{self.prometheus.address}/api/v1/rules", timeout=5).json()["data"]["groups"]
        return bool(groups) and all(
            datetime.fromisoformat(g["lastEvaluation"].replace("Z", "+00:00")).timestamp() > moment
            for g in groups)

    def settle(self) -> None:
        """Wait until Prometheus has scraped the current state and evaluated the rules on it."""
        now = time.time()
        wait_until(lambda: self.prometheus.query(f"timestamp(argo_rollouts_controller_info) > {now}"), 30,
                   "a successful scrape of the controller after now")
        after_scrape = time.time()
        wait_until(lambda: self.rules_evaluated_after(after_scrape), 15, "a rule evaluation after that scrape")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    binary = require_tool("prometheus", "apt-get install prometheus")
    workdir = tmp_path_factory.mktemp("alerts")
    proxy_port = free_port()
    controller = ControllerProcess(workdir / "home", extra_args=("--proxy-metrics-port", str(proxy_port)))
    controller.start()
    prometheus = PrometheusServer(binary, workdir, [controller.metrics_address, f"127.0.0.1:{proxy_port}"],
                                  rule_files=[RULES])
    try:
        prometheus.start()
        manifest = workdir / "shop.yaml"
        manifest.write_text(CANARY)
        controller.cli("apply", "-f", str(manifest))
        controller.cli("status", "shop", "--timeout", "60s")
        yield Stack(controller, prometheus, controller.ingress_port("shop"))
    finally:
        prometheus.stop()
        controller.stop_leaving_no_pods()
        shutil.rmtree(workdir / "data", ignore_errors=True)


def test_a_good_release_fires_neither_runbook_alert(stack: Stack) -> None:
    with Load(stack.port):
        stack.controller.cli("set", "image", "shop", "shop=rollouts-demo:yellow")
        result = stack.controller.cli("status", "shop", "--timeout", "60s", check=False, timeout=90)
        assert result.returncode == 0, result.stdout + result.stderr + stack.controller.tail()
    stack.settle()
    prom = stack.prometheus
    # The rules had their inputs: both gate runs are exported as Successful, the Aborted clock exists.
    successful = prom.query('argo_rollouts_analysis_run_phase{rollout="shop", phase="Successful"} == 1')
    assert len(successful) == 2, successful
    aborted = prom.query('rollout_phase_duration_seconds{rollout="shop", phase="Aborted"}')
    assert [float(s["value"][1]) for s in aborted] == [0.0]
    healthy = prom.query('argo_rollouts_rollout_phase{rollout="shop", phase="Healthy"}')
    assert [float(s["value"][1]) for s in healthy] == [1.0]
    assert prom.query('sum(rollouts_ingress_http_requests_total{service="shop", version="canary"}) > 0'), \
        "the ingress proxy's request series are not on the cluster's ingress metrics target"
    # Nothing pending or firing at any evaluation during the release.
    assert prom.query(f"count_over_time({RUNBOOK_ALERTS}[10m])") == []


def test_alerts_for_a_healthy_rollout_after_abort_retry_promote_and_restart(stack: Stack) -> None:
    prom, controller = stack.prometheus, stack.controller
    with Load(stack.port):
        controller.cli("set", "image", "shop", "shop=rollouts-demo:green")
        controller.cli("abort", "shop")
        wait_until(lambda: controller.rollout("shop").get("status", {}).get("phase") == "Degraded", 20,
                   "the abort to take effect")
        # The abort is real, so RolloutFailed fires while it lasts.
        firing = prom.wait_for('ALERTS{alertname="RolloutFailed", rollout="shop", alertstate="firing"}', timeout=20)
        assert len(firing) == 1, firing
        controller.cli("retry", "rollout", "shop")
        controller.cli("promote", "shop", "--full")
        result = controller.cli("status", "shop", "--timeout", "60s", check=False, timeout=90)
        assert result.returncode == 0, result.stdout + result.stderr + controller.tail()
    stack.settle()
    healthy_since = time.time()
    controller.stop()
    controller.start()
    stack.settle()
    assert controller.rollout("shop")["status"]["phase"] == "Healthy"
    # From the first evaluation that saw it Healthy, through the restart (missed scrapes, counters back
    # to 0), to now: no alert for shop in any state, and nothing firing at all (ControllerDown may be
    # pending while the controller restarts, as it should, but its 2m `for` is longer than a restart).
    window = f"{int(time.time() - healthy_since) + 1}s"
    assert prom.query(f'count_over_time(ALERTS{{rollout="shop"}}[{window}])') == []
    assert prom.query(f'count_over_time(ALERTS{{alertstate="firing"}}[{window}])') == []
    assert prom.query('argo_rollouts_rollout_phase{rollout="shop", phase="Aborted"} == 0'), \
        "the restarted controller does not export the rollout's phase"


def test_a_bad_canary_fires_rollout_failed_and_canary_analysis_failed(stack: Stack) -> None:
    with Load(stack.port):
        stack.controller.cli("set", "image", "shop", "shop=rollouts-demo:bad-red")
        result = stack.controller.cli("status", "shop", "--timeout", "60s", check=False, timeout=90)
        assert result.returncode == 1 and "RolloutAborted" in result.stderr, \
            result.stdout + result.stderr + stack.controller.tail()
    with stack.controller.store() as store:
        failed = [r["metadata"]["name"] for r in store.list("AnalysisRun", "default")
                  if r.get("status", {}).get("phase") == "Failed"]
    assert len(failed) == 1, failed
    prom = stack.prometheus
    rollout_failed = prom.wait_for('ALERTS{alertname="RolloutFailed", alertstate="firing"}', timeout=20)
    assert [(a["metric"]["rollout"], a["metric"]["severity"]) for a in rollout_failed] == [("shop", "critical")]
    analysis_failed = prom.wait_for('ALERTS{alertname="CanaryAnalysisFailed", alertstate="firing"}', timeout=20)
    assert [(a["metric"]["analysisrun"], a["metric"]["rollout"]) for a in analysis_failed] == [(failed[0], "shop")]
