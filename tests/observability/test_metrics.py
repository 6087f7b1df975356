"""The controller's /metrics and /healthz: Argo's metric names, types and labels scraped from a running
operator (and the ingress proxy's series from the local cluster's ingress metrics port, where they moved
with the proxy); the runbook's two series (seconds per phase with Aborted split out, analysis run phase with
run and rollout labels); series of deleted objects dropped; liveness."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.e2e.harness import ControllerProcess
from tests.e2e.manifests import CANARY
from tests.integration.prometheus_server import free_port

from rollouts.cluster.store import SQLiteStore
from rollouts.controller import metrics as controller_metrics
from rollouts.controller.loop import Controller
from rollouts.controller.metrics import ControllerMetrics
from rollouts.controller.metrics_http import MetricsServer
from rollouts.controller.metrics_phases import current_runs, metrics_phase, runbook_phase
from rollouts.controller.service import _liveness
from rollouts.engine.types import Decision, EmitEvent
from rollouts.spec.rollout import Rollout, RolloutStatus

# -- a small reader of the text format that keeps names as exposed (prometheus-client's parser renames) ----

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass
class Exposition:
    types: dict[str, str]
    samples: list[tuple[str, dict[str, str], float]]

    def series(self, metric: str, /, **match: str) -> list[tuple[dict[str, str], float]]:
        return [(labels, value) for n, labels, value in self.samples
                if n == metric and all(labels.get(k) == v for k, v in match.items())]

    def value(self, metric: str, /, **match: str) -> float:
        found = self.series(metric, **match)
        assert len(found) == 1, (metric, match, found)
        return found[0][1]


def parse(text: str) -> Exposition:
    types: dict[str, str] = {}
    samples = []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
        elif line and not line.startswith("#"):
            found = _SAMPLE.match(line)
            assert found, line
            labels = dict(_LABEL.findall(found.group(2) or ""))
            samples.append((found.group(1), labels, float(found.group(3))))
    return Exposition(types, samples)


# -- a live controller -------------------------------------------------------------------------------------

_NGINX_LABELS = {"controller_class", "controller_namespace", "controller_pod", "canary", "host", "ingress", "method",
                 "namespace", "path", "service", "status"}
ARGO_FAMILIES = {
    "argo_rollouts_controller_info": ("gauge", {"version"}),
    "rollout_info": ("gauge", {"namespace", "name", "strategy", "traffic_router", "phase"}),
    "rollout_info_replicas_available": ("gauge", {"namespace", "name"}),
    "rollout_info_replicas_unavailable": ("gauge", {"namespace", "name"}),
    "rollout_info_replicas_desired": ("gauge", {"namespace", "name"}),
    "rollout_info_replicas_updated": ("gauge", {"namespace", "name"}),
    "rollout_phase": ("gauge", {"namespace", "name", "strategy", "phase"}),
    "rollout_reconcile": ("histogram", {"namespace", "name"}),
    "rollout_events_total": ("counter", {"namespace", "name", "type", "reason"}),
    "analysis_template_info": ("gauge", {"namespace", "name"}),
    "rollout_phase_duration_seconds": ("counter", {"namespace", "rollout", "phase"}),
    "argo_rollouts_rollout_phase": ("gauge", {"namespace", "rollout", "phase"}),
    # The proxy's own per-version series: never the application's http_requests_total (no double count).
    "rollouts_ingress_http_requests_total": ("counter", {"namespace", "service", "ingress", "version",
                                                          "rollouts_pod_template_hash", "code"}),
    # ingress-nginx's series, from the same proxy (runtime/local/nginx_metrics.py).
    "nginx_ingress_controller_requests": ("counter", _NGINX_LABELS),
    "nginx_ingress_controller_request_duration_seconds": ("histogram", _NGINX_LABELS),
}
# The proxy's series: served by the local cluster process on its ingress metrics port, not the operator's.
PROXY_FAMILIES = {"rollouts_ingress_http_requests_total", "nginx_ingress_controller_requests",
                  "nginx_ingress_controller_request_duration_seconds"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControllerProcess]:
    home = tmp_path_factory.mktemp("metrics") / "home"
    ctl = ControllerProcess(home, extra_args=("--proxy-metrics-port", str(free_port())))
    ctl.start()
    try:
        manifest = home / "shop.yaml"
        manifest.write_text(CANARY)
        ctl.cli("apply", "-f", str(manifest))
        ctl.cli("status", "shop", "--timeout", "60s")
        yield ctl
    finally:
        ctl.stop_leaving_no_pods()


def _scrape(ctl: ControllerProcess, proxy: bool = False) -> tuple[httpx.Response, Exposition]:
    address = ctl.metrics_address
    if proxy:
        port = ctl.extra_args[ctl.extra_args.index("--proxy-metrics-port") + 1]
        address = f"127.0.0.1:{port}"
    response = httpx.get(f"http://{address}/metrics", timeout=5)
    return response, parse(response.text)


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(ARGO_FAMILIES), ids=sorted(ARGO_FAMILIES))
def test_live_scrape_has_argo_names_types_and_labels(live: ControllerProcess, name: str) -> None:
    httpx.get(f"http://127.0.0.1:{live.ingress_port('shop')}/", timeout=5)  # one request for the proxy series
    proxy = name in PROXY_FAMILIES
    response, exposition = _scrape(live, proxy=proxy)
    assert response.status_code == 200
    # The proxy's listener is prometheus-client's own (text format 1.0.0, which Prometheus reads as well).
    assert response.headers["Content-Type"].startswith("text/plain; version=" if proxy else "text/plain; version=0.0.4")
    kind, labels = ARGO_FAMILIES[name]
    assert exposition.types.get(name) == kind
    sample_name = f"{name}_count" if kind == "histogram" else name
    found = exposition.series(sample_name)
    assert found, f"no {sample_name} samples"
    assert all(set(series_labels) == labels for series_labels, _ in found)


@pytest.mark.integration
def test_live_proxy_series_are_on_the_cluster_not_the_operator(live: ControllerProcess) -> None:
    httpx.get(f"http://127.0.0.1:{live.ingress_port('shop')}/", timeout=5)
    _, operator = _scrape(live)
    _, cluster = _scrape(live, proxy=True)
    assert not PROXY_FAMILIES & set(operator.types)  # the operator holds no proxy since it left its process
    assert set(cluster.types) >= PROXY_FAMILIES
    assert cluster.series("nginx_ingress_controller_requests", ingress="shop")


@pytest.mark.integration
def test_live_rollout_series_describe_the_healthy_rollout(live: ControllerProcess) -> None:
    _, exposition = _scrape(live)
    assert exposition.value("rollout_info", name="shop") == 1.0
    assert exposition.series("rollout_info", name="shop")[0][0] == {
        "namespace": "default", "name": "shop", "strategy": "canary", "traffic_router": "Nginx",
        "phase": "Completed"}
    assert exposition.value("rollout_info_replicas_desired", name="shop") == 2.0
    assert exposition.value("rollout_info_replicas_available", name="shop") == 2.0
    assert {labels["phase"]: v for labels, v in exposition.series("rollout_phase", name="shop")} == {
        "Completed": 1.0, "Progressing": 0.0, "Paused": 0.0, "Timeout": 0.0, "Error": 0.0, "Abort": 0.0}
    assert exposition.value("rollout_phase_duration_seconds", rollout="shop", phase="Healthy") > 0
    assert exposition.value("rollout_phase_duration_seconds", rollout="shop", phase="Aborted") == 0.0
    assert exposition.value("rollout_events_total", name="shop", reason="RolloutCompleted") >= 1
    buckets = [labels["le"] for labels, _ in exposition.series("rollout_reconcile_bucket", name="shop")]
    assert buckets == ["0.01", "0.15", "0.25", "0.5", "1.0", "+Inf"]


@pytest.mark.integration
def test_live_healthz_answers_ok(live: ControllerProcess) -> None:
    response = httpx.get(f"http://{live.metrics_address}/healthz", timeout=5)
    assert (response.status_code, response.text.split(":")[0]) == (200, "ok")


def test_cli_rejects_a_malformed_metrics_address(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "rollouts", "controller", "--home", str(tmp_path),
                             "--metrics-address", "localhost"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert '--metrics-address: "localhost" is not HOST:PORT' in result.stderr


@pytest.mark.integration
def test_cli_reports_a_busy_metrics_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "rollouts", "controller", "--home", str(tmp_path),
                                 "--metrics-address", f"127.0.0.1:{port}"], capture_output=True, text=True,
                                timeout=60)
    assert result.returncode == 1
    assert f"--metrics-address 127.0.0.1:{port}: cannot listen" in result.stderr
    assert not (tmp_path / "apiserver.json").exists()  # refused before a local cluster was started for it


# -- the collector against a store, with a clock the test moves ----------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _rollout(name: str = "shop", **spec: Any) -> Rollout:
    return Rollout.model_validate({"metadata": {"name": name, "namespace": "default"},
                                   "spec": {"strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}},
                                            **spec}})


def _decision(status: dict[str, Any], *events: EmitEvent) -> Decision:
    return Decision(status=RolloutStatus.model_validate(status), actions=events)


PROGRESSING = {"phase": "Progressing", "currentPodHash": "new", "stableRS": "old"}
ABORTED = {"phase": "Degraded", "abort": True, "currentPodHash": "new", "stableRS": "old",
           "conditions": [{"type": "Progressing", "status": "False", "reason": "RolloutAborted"}]}
HEALTHY = {"phase": "Healthy", "currentPodHash": "new", "stableRS": "new",
           "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}
PAUSED_BY_STEP = {"phase": "Paused", "currentPodHash": "new", "stableRS": "old", "currentStepIndex": 1,
                  "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2026-01-01T00:00:00Z"}],
                  "conditions": [{"type": "Progressing", "status": "Unknown", "reason": "RolloutPaused"}]}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(tmp_path / "state.db") as db:
        yield db


@pytest.mark.parametrize(("status", "metrics", "runbook"), [
    (PROGRESSING, "Progressing", "Progressing"),
    (ABORTED, "Abort", "Aborted"),
    (HEALTHY, "Completed", "Healthy"),
    (PAUSED_BY_STEP, "Paused", "Paused"),
    ({"phase": "Degraded", "conditions": [{"type": "Progressing", "status": "False",
                                           "reason": "ProgressDeadlineExceeded"}]}, "Timeout", "Degraded"),
    ({"phase": "Healthy", "abort": True}, "Progressing", "Healthy"),
    ({"phase": "Healthy", "abort": True, "conditions": [{"type": "Progressing", "status": "False",
                                                         "reason": "RolloutAborted"}]}, "Abort", "Healthy"),
    ({"phase": "Degraded", "conditions": [{"type": "InvalidSpec", "status": "True"}]}, "InvalidSpec", "Degraded"),
    ({}, "Progressing", "Progressing"),
], ids=["progressing", "aborted", "completed", "paused", "timeout", "abort-of-finished-rollout",
        "healthy-with-a-stale-abort-condition", "invalid", "no-status"])
def test_phase_vocabularies(status: dict[str, Any], metrics: str, runbook: str) -> None:
    assert (metrics_phase(status), runbook_phase(status)) == (metrics, runbook)


def test_phase_seconds_grow_only_in_the_phase_the_rollout_is_in(store: SQLiteStore) -> None:
    clock = FakeClock()
    metrics = ControllerMetrics(store, monotonic=clock)
    rollout = _rollout()
    metrics.observe_decision(rollout, _decision(PROGRESSING), 0.01)
    clock.now += 10
    metrics.observe_decision(rollout, _decision(ABORTED, EmitEvent(type="Warning", reason="RolloutAborted",
                                                                    message="aborted")), 0.02)
    clock.now += 15
    exposition = parse(metrics.render().decode())
    seconds = {labels["phase"]: v for labels, v in exposition.series("rollout_phase_duration_seconds")}
    assert seconds == {"Progressing": 10.0, "Paused": 0.0, "Healthy": 0.0, "Degraded": 0.0, "Aborted": 15.0}
    assert exposition.value("rollout_events_total", reason="RolloutAborted", type="Warning") == 1.0
    assert exposition.value("rollout_reconcile_count", name="shop") == 2.0
    assert exposition.value("rollout_reconcile_bucket", name="shop", le="0.01") == 1.0
    # The attempt ended in an abort after 10 s.
    assert exposition.value("rollout_duration_seconds_count", status="Aborted") == 1.0
    assert exposition.value("rollout_duration_seconds_sum", status="Aborted") == 10.0


@pytest.mark.parametrize(("status", "phase"), [
    (ABORTED, "Aborted"),
    (HEALTHY, "Healthy"),
    ({**HEALTHY, "abort": True}, "Healthy"),
    (PROGRESSING, "Progressing"),
], ids=["aborted", "healthy", "healthy-after-abort-all", "progressing"])
def test_rollout_failed_gauge_reads_the_stored_status_after_a_restart(store: SQLiteStore, status: dict[str, Any],
                                                                       phase: str) -> None:
    """A controller that just started (no decision observed, counters at 0) exports the phase from the store."""
    store.update_status({**store.create(_rollout().to_dict()), "status": status})
    exposition = parse(ControllerMetrics(store).render().decode())
    assert {labels["phase"]: v for labels, v in exposition.series("argo_rollouts_rollout_phase", rollout="shop")} == {
        p: (1.0 if p == phase else 0.0) for p in ("Progressing", "Paused", "Healthy", "Degraded", "Aborted")}
    assert exposition.types["argo_rollouts_rollout_phase"] == "gauge"


def _run(name: str, *, created: str, kind: str = "Step", step: str | None = "1", pod_hash: str = "new",
         owner: str | None = "shop") -> dict[str, Any]:
    labels = {"rollout-type": kind, "rollouts-pod-template-hash": pod_hash}
    if step is not None:
        labels["step-index"] = step
    meta: dict[str, Any] = {"name": name, "namespace": "default", "creationTimestamp": created, "labels": labels}
    if owner is not None:
        meta["ownerReferences"] = [{"kind": "Rollout", "name": owner, "uid": "u1", "controller": True}]
    return {"kind": "AnalysisRun", "metadata": meta, "status": {"phase": "Failed"}}


def _owner(**status: Any) -> dict[str, Any]:
    return {"kind": "Rollout", "metadata": {"name": "shop", "namespace": "default"},
            "status": {"phase": "Degraded", "currentPodHash": "new", "stableRS": "old", **status}}


T1, T2 = "2026-01-01T00:00:01Z", "2026-01-01T00:00:09Z"


@pytest.mark.parametrize(("runs", "rollout", "current"), [
    ([_run("shop-new-2", created=T1)], _owner(), {"shop-new-2"}),
    ([_run("shop-new-2", created=T1), _run("shop-new-2.1", created=T2)], _owner(phase="Progressing"),
     {"shop-new-2.1"}),
    ([_run("shop-new-2", created=T1), _run("shop-new-2.1", created=T1)], _owner(), {"shop-new-2.1"}),
    ([_run("shop-new-2", created=T1)], _owner(phase="Healthy", stableRS="new"), set()),
    ([_run("shop-new-2", created=T1)], _owner(phase="Progressing", currentPodHash="newer"), set()),
    ([_run("shop-new-2", created=T1, kind="Background", step=None), _run("shop-new-2-1", created=T2)], _owner(),
     {"shop-new-2", "shop-new-2-1"}),
    ([_run("shop-new-2-1", created=T1, step="1"), _run("shop-new-2-3", created=T2, step="3")], _owner(),
     {"shop-new-2-1", "shop-new-2-3"}),
    ([_run("smoke", created=T1, owner=None), _run("smoke-2", created=T2, owner=None, step="2")], None,
     {"smoke", "smoke-2"}),
], ids=["failed-run-of-the-release", "superseded-by-a-retry", "retry-within-the-same-second",
        "rollout-promoted-or-rolled-back", "rollout-moved-to-another-revision", "background-and-step-are-kinds",
        "other-steps-do-not-supersede", "standalone-runs"])
def test_canary_analysis_failed_resolves_when_the_run_is_superseded(runs: list[dict[str, Any]],
                                                                     rollout: dict[str, Any] | None,
                                                                     current: set[str]) -> None:
    found = current_runs(runs, [rollout] if rollout is not None else [])
    assert {name for _, name in found} == current


def test_analysis_run_current_series(store: SQLiteStore) -> None:
    store.update_status({**store.create(_rollout().to_dict()), "status": ABORTED})
    failed = _analysis_run("Failed")
    failed["metadata"]["labels"] = {"rollout-type": "Step", "step-index": "0", "rollouts-pod-template-hash": "new"}
    store.create(failed)
    exposition = parse(ControllerMetrics(store).render().decode())
    assert exposition.series("argo_rollouts_analysis_run_current") == [
        ({"namespace": "default", "analysisrun": "shop-6d4f-2", "rollout": "shop"}, 1.0)]
    retry = _analysis_run("Successful")
    retry["metadata"].update(name="shop-6d4f-2.1", labels=failed["metadata"]["labels"])
    store.create(retry)
    exposition = parse(ControllerMetrics(store).render().decode())
    assert {labels["analysisrun"]: v for labels, v in exposition.series("argo_rollouts_analysis_run_current")} == {
        "shop-6d4f-2": 0.0, "shop-6d4f-2.1": 1.0}
    assert exposition.types["argo_rollouts_analysis_run_current"] == "gauge"


def test_release_duration_leaves_manual_pauses_out_of_progression(store: SQLiteStore) -> None:
    clock = FakeClock()
    metrics = ControllerMetrics(store, monotonic=clock)
    rollout = _rollout()
    for status, seconds in ((PROGRESSING, 20), (PAUSED_BY_STEP, 100), (PROGRESSING, 30), (HEALTHY, 0)):
        metrics.observe_decision(rollout, _decision(status), 0.01)
        clock.now += seconds
    exposition = parse(metrics.render().decode())
    assert exposition.value("rollout_duration_seconds_sum", status="Promoted") == 150.0
    assert exposition.value("rollout_progression_duration_seconds_sum", status="Promoted") == 50.0
    assert exposition.types["rollout_duration_seconds"] == "histogram"


def _analysis_run(phase: str) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": "shop-6d4f-2", "namespace": "default",
                     "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                                          "name": "shop", "uid": "u1", "controller": True}]},
        "spec": {"metrics": [
            {"name": "success-rate", "provider": {"prometheus": {"query": "up"}}},
            {"name": "latency", "provider": {"plugin": {"rollouts/traffic": {"service": "shop"}}}}],
            "dryRun": [{"metricName": "lat.*"}]},
        "status": {"phase": phase, "metricResults": [{"name": "success-rate", "phase": phase}]},
    }


def test_analysis_run_series(store: SQLiteStore) -> None:
    store.create(_analysis_run("Failed"))
    store.create({"apiVersion": "argoproj.io/v1alpha1", "kind": "ClusterAnalysisTemplate",
                  "metadata": {"name": "shared"}, "spec": {"metrics": []}})
    exposition = parse(ControllerMetrics(store).render().decode())
    runbook = {labels["phase"]: v for labels, v in exposition.series("argo_rollouts_analysis_run_phase")}
    assert runbook == {"Pending": 0.0, "Running": 0.0, "Successful": 0.0, "Failed": 1.0, "Error": 0.0,
                       "Inconclusive": 0.0}
    assert exposition.series("argo_rollouts_analysis_run_phase", phase="Failed")[0][0] == {
        "namespace": "default", "analysisrun": "shop-6d4f-2", "rollout": "shop", "phase": "Failed"}
    assert exposition.value("analysis_run_info", name="shop-6d4f-2", phase="Failed") == 1.0
    assert exposition.value("analysis_run_phase", name="shop-6d4f-2", phase="Failed") == 1.0
    assert exposition.value("analysis_run_metric_type", metric="success-rate", type="Prometheus") == 1.0
    assert exposition.value("analysis_run_metric_type", metric="latency", type="RPCPlugin") == 1.0
    assert exposition.value("analysis_run_metric_phase", metric="success-rate", dry_run="false",
                            phase="Failed") == 1.0
    assert exposition.value("analysis_run_metric_phase", metric="latency", dry_run="true", phase="Pending") == 1.0
    assert exposition.value("analysis_template_info", namespace="", name="shared") == 1.0


def test_series_of_deleted_objects_are_dropped(store: SQLiteStore) -> None:
    clock = FakeClock()
    metrics = ControllerMetrics(store, monotonic=clock, forget_after=65)
    created = store.create(_rollout().to_dict())
    store.create(_analysis_run("Running"))
    metrics.observe_decision(_rollout(), _decision(PROGRESSING), 0.01)
    metrics.observe_error(_rollout())
    before = parse(metrics.render().decode())
    assert before.series("rollout_info") and before.series("rollout_reconcile_error", name="shop") == [
        ({"namespace": "default", "name": "shop"}, 1.0)]
    assert before.types["rollout_reconcile_error"] == "counter"
    store.delete("Rollout", "default", created["metadata"]["name"])
    store.delete("AnalysisRun", "default", "shop-6d4f-2")
    soon = parse(metrics.render().decode())
    assert soon.series("rollout_info") == [] and soon.series("argo_rollouts_analysis_run_phase") == []
    assert soon.series("rollout_reconcile_error"), "counters outlive the object for a last scrape"
    clock.now += 66
    later = parse(metrics.render().decode())
    assert later.series("rollout_reconcile_error") == []
    assert later.series("rollout_phase_duration_seconds") == []
    assert later.series("rollout_reconcile_count") == []


def test_record_notification_counts_into_the_active_metrics(store: SQLiteStore) -> None:
    metrics = ControllerMetrics(store)
    store.create(_rollout().to_dict())
    controller_metrics.record_notification("default", "shop", "webhook", "RolloutAborted", True)  # inactive
    controller_metrics.activate(metrics)
    try:
        controller_metrics.record_notification("default", "shop", "webhook", "RolloutAborted", True)
        controller_metrics.record_notification("default", "shop", "slack", "RolloutAborted", False)
    finally:
        controller_metrics.activate(None)
    exposition = parse(metrics.render().decode())
    assert exposition.series("notification_send_success") == [
        ({"namespace": "default", "name": "shop", "type": "webhook", "reason": "RolloutAborted"}, 1.0)]
    assert exposition.value("notification_send_error", type="slack") == 1.0
    assert exposition.types["notification_send_success"] == "counter"


class _StepClock:
    def __init__(self) -> None:
        self.mono = 0.0

    def now(self) -> Any:
        from datetime import UTC, datetime

        return datetime.now(UTC)

    def monotonic(self) -> float:
        return self.mono


@pytest.mark.parametrize(("last_pass", "now", "code"), [
    (None, 5.0, 200), (100.0, 110.0, 200), (100.0, 131.0, 503), (None, 31.0, 503)],
    ids=["starting", "recent-pass", "stale-pass", "never-passed"])
def test_healthz_follows_the_loop(store: SQLiteStore, last_pass: float | None, now: float, code: int) -> None:
    clock = _StepClock()
    controller = Controller(store=store, clock=clock)
    healthy = _liveness(controller)
    controller.last_pass = last_pass
    clock.mono = now

    async def probe() -> int:
        server = MetricsServer(render=lambda: b"", healthy=healthy, extra=[])
        await server.start("127.0.0.1:0")
        try:
            async with httpx.AsyncClient() as client:
                response = await client.get(f"http://127.0.0.1:{server.port}/healthz")
                return response.status_code
        finally:
            await server.close()

    assert asyncio.run(probe()) == code
