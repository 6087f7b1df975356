"""The local cluster's own Prometheus: Debian's prometheus run as a pod by `rollouts cluster up`, discovering
pods and Endpoints through the cluster's API (/prometheus-sd/v1), scraping an annotated demo pod, the
ingress proxy and a real operator, with the alert rules loaded; and the pieces it is built from (the
discovery answers, the config, the launcher) at unit level.

One cluster process (and so one Prometheus) serves the whole module; the test that stops it runs last."""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from rollouts.cluster import prometheus
from rollouts.cluster.apiserver.prometheus_sd import endpoints_targets, pod_targets
from rollouts.cluster.apiserver.server import start_background, stop_background
from rollouts.cluster.apiserver.tls import CERT_FILE
from rollouts.cluster.prometheus_pod import argv
from rollouts.cluster.runtime_options import RuntimeOptions
from rollouts.store import metrics_endpoints

REPO = Path(__file__).resolve().parents[2]
HAVE_PROMETHEUS = prometheus.find_binary() is not None
needs_prometheus = pytest.mark.skipif(not HAVE_PROMETHEUS, reason=prometheus.INSTALL_HINT)


def _wait(what: str, check: Callable[[], Any], timeout: float = 45.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:.0f}s (last: {last!r})")


# ---- units -------------------------------------------------------------------------------------------

def _pod(**over: Any) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "metadata": {"name": "auth-svc-abc-x1", "namespace": "shop", "uid": "u1",
                     "labels": {"app": "auth-svc", "rollouts-pod-template-hash": "abc"},
                     "annotations": {"prometheus.io/scrape": "true"},
                     "ownerReferences": [{"kind": "ReplicaSet", "name": "auth-svc-abc", "controller": True}]},
        "spec": {"containers": [{"name": "app", "image": "rollouts-demo:blue",
                                 "ports": [{"name": "http", "containerPort": 8080}]}]},
        "status": {"podIP": "127.1.0.5", "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }
    pod.update(over)
    return pod


@pytest.mark.parametrize(("pod", "expected"), [
    pytest.param(_pod(), ["127.1.0.5:8080"], id="declared-port"),
    pytest.param(_pod(spec={"containers": [{"name": "app", "image": "x"}]}), ["127.1.0.5"], id="no-port"),
    pytest.param(_pod(status={"phase": "Pending"}), [], id="no-ip-left-out"),
])
def test_pod_role_targets_as_kubernetes_discovery(pod: dict[str, Any], expected: list[str]) -> None:
    groups = pod_targets([pod])
    assert [t for g in groups for t in g["targets"]] == expected
    if groups:
        labels = groups[0]["labels"]
        assert labels["__meta_kubernetes_pod_label_rollouts_pod_template_hash"] == "abc"
        assert labels["__meta_kubernetes_pod_labelpresent_app"] == "true"
        assert labels["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] == "true"
        assert labels["__meta_kubernetes_namespace"] == "shop"
        assert labels["__meta_kubernetes_pod_controller_name"] == "auth-svc-abc"
        assert labels["__meta_kubernetes_pod_ready"] == "true"


def test_endpoints_role_targets_carry_service_and_pod_labels() -> None:
    endpoints = {"metadata": {"name": "auth-svc", "namespace": "shop"}, "subsets": [
        {"addresses": [{"ip": "127.1.0.5", "targetRef": {"kind": "Pod", "name": "auth-svc-abc-x1"}}],
         "notReadyAddresses": [{"ip": "127.1.0.6"}], "ports": [{"name": "metrics", "port": 8080}]}]}
    service = {"metadata": {"name": "auth-svc", "namespace": "shop", "labels": {"app.kubernetes.io/name": "x"}}}
    groups = endpoints_targets([endpoints], [service], [_pod()])
    assert [(g["targets"][0], g["labels"]["__meta_kubernetes_endpoint_ready"]) for g in groups] == [
        ("127.1.0.5:8080", "true"), ("127.1.0.6:8080", "false")]
    first = groups[0]["labels"]
    assert first["__meta_kubernetes_service_label_app_kubernetes_io_name"] == "x"
    assert first["__meta_kubernetes_endpoint_port_name"] == "metrics"
    assert first["__meta_kubernetes_pod_label_app"] == "auth-svc"  # the address's pod


def test_prometheus_config_discovers_through_the_api_with_bearer_token(tmp_path: Path) -> None:
    document = prometheus.config(tmp_path, "https://127.0.0.1:6443", "2s", ["/r.yaml"])
    assert [job["job_name"] for job in document["scrape_configs"]] == [
        "kubernetes-pods", "ingress-nginx", "rollouts-metrics"]
    for job in document["scrape_configs"]:
        (sd,) = job["http_sd_configs"]
        assert sd["url"].startswith("https://127.0.0.1:6443/prometheus-sd/v1/")
        # Prometheus 2.42's HTTP discovery sends the bare token unless the type is given.
        assert sd["authorization"] == {"type": "Bearer", "credentials_file": str(tmp_path / "apiserver.token")}
        assert sd["tls_config"] == {"ca_file": str(tmp_path / CERT_FILE)}
    assert document["global"]["scrape_interval"] == "2s" and document["rule_files"] == ["/r.yaml"]


@pytest.mark.parametrize(("args", "env", "expected"), [
    pytest.param(["/usr/bin/prometheus", "--x"], {"PORT": "9090", "POD_IP": "127.1.0.9"},
                 ["/usr/bin/prometheus", "--x", "--web.listen-address=127.1.0.9:9090"], id="own-address"),
    pytest.param(["/usr/bin/prometheus"], {"PORT": "41000"},
                 ["/usr/bin/prometheus", "--web.listen-address=127.0.0.1:41000"], id="shared-loopback"),
])
def test_prometheus_pod_listens_on_the_pod_address(args: list[str], env: dict[str, str],
                                                   expected: list[str]) -> None:
    assert argv(args, env) == expected


def test_prometheus_pod_without_port_says_what_sets_it() -> None:
    with pytest.raises(SystemExit, match="PORT"):
        argv(["/usr/bin/prometheus"], {})


@pytest.mark.parametrize(("interval", "valid"), [("2s", True), ("500ms", True), ("1m30s", True),
                                                 ("0s", False), ("2", False), ("", False)])
def test_prometheus_scrape_interval_option_is_a_prometheus_duration(interval: str, valid: bool) -> None:
    problems = RuntimeOptions(prometheus_scrape_interval=interval).problems()
    assert (not problems) is valid, problems


def test_prometheus_objects_installed_once_and_removed_with_no_prometheus(tmp_path: Path) -> None:
    from rollouts.cluster.store import SQLiteStore

    store = SQLiteStore(tmp_path / "store.db")
    try:
        prometheus.install(store, tmp_path, "https://127.0.0.1:6443", "/usr/bin/prometheus")
        versions = {kind: store.get(kind, "prometheus", "prometheus")["metadata"]["resourceVersion"]
                    for kind in ("ReplicaSet", "Service")}
        prometheus.install(store, tmp_path, "https://127.0.0.1:6443", "/usr/bin/prometheus")  # nothing to change
        assert versions == {kind: store.get(kind, "prometheus", "prometheus")["metadata"]["resourceVersion"]
                            for kind in ("ReplicaSet", "Service")}
        assert (tmp_path / "prometheus" / "prometheus.yml").exists()
        assert prometheus.uninstall(store)
        assert not store.list("ReplicaSet", "prometheus") and not store.list("Service", "prometheus")
        mine = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "prometheus", "namespace": "prometheus"},
                "spec": {"ports": [{"port": 9090}]}}
        store.create(mine)  # a user's own Service of that name is left alone
        assert not prometheus.uninstall(store)
        assert store.get("Service", "prometheus", "prometheus")
    finally:
        store.close()


def test_controller_metrics_endpoints_keep_live_operators_and_drop_stopped_ones(tmp_path: Path) -> None:
    import socket

    from rollouts.cluster.store import SQLiteStore

    store = SQLiteStore(tmp_path / "store.db")
    first, second = socket.create_server(("127.0.0.1", 0)), socket.create_server(("127.0.0.1", 0))
    ep = metrics_endpoints.CONTROLLER_METRICS

    def listed() -> list[tuple[str, int]]:
        obj = store.get("Endpoints", ep.namespace, ep.service)
        return [(s["addresses"][0]["targetRef"]["name"], s["ports"][0]["port"]) for s in obj["subsets"]]

    try:
        metrics_endpoints.register_metrics(store, ep, "127.0.0.1", first.getsockname()[1], "controller-1")
        metrics_endpoints.register_metrics(store, ep, "127.0.0.1", second.getsockname()[1], "controller-2")
        assert listed() == [("controller-1", first.getsockname()[1]), ("controller-2", second.getsockname()[1])]
        service = store.get("Service", ep.namespace, ep.service)
        assert service["metadata"]["labels"]["app.kubernetes.io/component"] == "metrics"
        assert [p["name"] for p in service["spec"]["ports"]] == ["metrics"]
        first.close()  # controller-1 was killed: the next registration drops its address
        metrics_endpoints.register_metrics(store, ep, "127.0.0.1", second.getsockname()[1], "controller-2")
        assert listed() == [("controller-2", second.getsockname()[1])]
        metrics_endpoints.unregister_metrics(store, ep, "controller-2")
        assert listed() == []
    finally:
        first.close()
        second.close()
        store.close()


# ---- a real cluster with its Prometheus ------------------------------------------------------------

@dataclass
class LocalCluster:
    home: Path
    url: str
    token: str

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"},
                            verify=ssl.create_default_context(cafile=str(self.home / CERT_FILE)), timeout=10)

    def get(self, path: str) -> Any:
        with self.api() as client:
            answer = client.get(path)
            answer.raise_for_status()
            return answer.json()

    def create(self, path: str, obj: dict[str, Any]) -> None:
        with self.api() as client:
            answer = client.post(path, json=obj)
            assert answer.status_code in (201, 409), answer.text

    def prometheus_url(self) -> str:
        pods = self.get("/api/v1/namespaces/prometheus/pods")["items"]
        ready = [p for p in pods if any(c.get("type") == "Ready" and c.get("status") == "True"
                                        for c in (p.get("status") or {}).get("conditions") or [])]
        pod = ready[0]
        port = pod["metadata"]["annotations"]["rollouts.io/port"]
        return f"http://{pod['status']['podIP']}:{port}"

    def targets(self) -> list[dict[str, Any]]:
        data = httpx.get(self.prometheus_url() + "/api/v1/targets", timeout=5).json()
        return list(data["data"]["activeTargets"])

    def prometheus_pids(self) -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmdline and cmdline[0].endswith(b"prometheus") and any(
                    str(self.home).encode() in part for part in cmdline):
                pids.append(int(entry.name))
        return pids


DEMO_RS = {
    "apiVersion": "apps/v1", "kind": "ReplicaSet",
    "metadata": {"name": "auth-svc-abc123", "namespace": "default",
                 "labels": {"app": "auth-svc", "rollouts-pod-template-hash": "abc123"}},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "auth-svc", "rollouts-pod-template-hash": "abc123"}},
             "template": {"metadata": {"labels": {"app": "auth-svc", "rollouts-pod-template-hash": "abc123"},
                                       "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "8080"}},
                          "spec": {"containers": [{"name": "auth-svc", "image": "rollouts-demo:blue",
                                                   "ports": [{"name": "http", "containerPort": 8080}]}]}}},
}


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    if not HAVE_PROMETHEUS:
        pytest.skip(prometheus.INSTALL_HINT)
    home = tmp_path_factory.mktemp("prom") / "home"
    home.mkdir()
    running = start_background(home, runtime=RuntimeOptions(probe_period=0.2, prometheus_scrape_interval="1s"))
    cluster = LocalCluster(home, running.url, (home / "apiserver.token").read_text().strip())
    controller = None
    try:
        cluster.create("/apis/apps/v1/namespaces/default/replicasets", DEMO_RS)
        controller = subprocess.Popen(  # a real operator on a free port, registering its /metrics
            [sys.executable, "-m", "rollouts", "controller", "--home", str(home), "--metrics-address",
             "127.0.0.1:0", "--log-format", "text"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=(home / "logs" / "controller.log").open("wb"), start_new_session=True)
        yield cluster
    finally:
        if controller is not None:
            controller.send_signal(signal.SIGTERM)
            try:
                controller.wait(15)
            except subprocess.TimeoutExpired:
                controller.kill()
                controller.wait()
        stop_background(home)


def _target(cluster: LocalCluster, job: str, **labels: str) -> dict[str, Any] | None:
    for target in cluster.targets():
        if target["labels"].get("job") == job and all(target["labels"].get(k) == v for k, v in labels.items()) \
                and target["health"] == "up":
            return target
    return None


@needs_prometheus
def test_prometheus_runs_as_pod_of_service_prometheus_and_is_healthy(local: LocalCluster) -> None:
    url = _wait("the prometheus pod ready", local.prometheus_url)
    assert httpx.get(url + "/-/healthy", timeout=5).status_code == 200
    service = local.get("/api/v1/namespaces/prometheus/services/prometheus")
    assert [p["port"] for p in service["spec"]["ports"]] == [9090]
    endpoints = local.get("/api/v1/namespaces/prometheus/endpoints/prometheus")
    assert endpoints["subsets"][0]["addresses"], endpoints
    from typer.testing import CliRunner

    from rollouts.cli.cluster import cluster_app

    status = CliRunner().invoke(cluster_app, ["status", "--home", str(local.home)])
    assert status.exit_code == 0 and "prometheus: ready (pod prometheus-" in status.output, status.output
    assert (local.home / "prometheus" / "data").is_dir()
    assert (local.home / "prometheus" / "rules.yaml").read_text() == \
        (REPO / "deploy" / "prometheus" / "rules.yaml").read_text()


@needs_prometheus
def test_annotated_demo_pod_discovered_from_the_api_and_up_with_its_labels(local: LocalCluster) -> None:
    target = _wait("the demo pod's target up", lambda: _target(local, "kubernetes-pods", app="auth-svc"))
    labels = target["labels"]
    assert labels["rollouts_pod_template_hash"] == "abc123"
    assert labels["namespace"] == "default" and labels["pod"].startswith("auth-svc-abc123-")
    assert target["discoveredLabels"]["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] == "true"


@needs_prometheus
def test_controller_and_ingress_metrics_discovered_through_endpoints_and_up(local: LocalCluster) -> None:
    controller = _wait("the operator's /metrics target up", lambda: _target(local, "rollouts-metrics"))
    assert controller["discoveredLabels"]["__meta_kubernetes_service_name"] == "rollouts-metrics"
    assert controller["labels"]["kubernetes_namespace"] == "rollouts"
    _wait("the ingress proxy's /metrics target up", lambda: _target(local, "ingress-nginx"))


@needs_prometheus
def test_alert_rules_of_deploy_prometheus_loaded(local: LocalCluster) -> None:
    wanted = {r["alert"] for g in yaml.safe_load((REPO / "deploy/prometheus/rules.yaml").read_text())["groups"]
              for r in g["rules"] if "alert" in r}

    def loaded() -> set[str]:
        data = httpx.get(local.prometheus_url() + "/api/v1/rules", timeout=5).json()
        return {r["name"] for g in data["data"]["groups"] for r in g["rules"] if r["type"] == "alerting"}

    assert {"RolloutFailed", "CanaryAnalysisFailed"} <= wanted
    assert _wait("the alert rules loaded", lambda: wanted <= loaded())


@needs_prometheus
def test_runbook_success_rate_query_returns_a_number_for_a_demo_pod_serving_traffic(local: LocalCluster) -> None:
    target = _wait("the demo pod's target up", lambda: _target(local, "kubernetes-pods", app="auth-svc"))
    app_url = target["scrapeUrl"].rsplit("/metrics", 1)[0]
    templates = list(yaml.safe_load_all((REPO / "infra/rollouts/analysis-templates.yaml").read_text()))
    (query,) = [m["provider"]["prometheus"]["query"] for t in templates
                if t and t["metadata"]["name"] == "success-rate" for m in t["spec"]["metrics"]]
    query = query.replace("{{args.service-name}}", "auth-svc")

    def answered() -> float | None:
        for _ in range(5):
            httpx.get(app_url + "/", timeout=5)
        data = httpx.get(local.prometheus_url() + "/api/v1/query", params={"query": query}, timeout=5).json()
        result = data["data"]["result"]
        return float(result[0]["value"][1]) if result and result[0]["value"][1] != "NaN" else None

    assert _wait("the success-rate query to answer", answered) == pytest.approx(1.0)


@needs_prometheus
def test_port_forward_to_svc_prometheus_answers_healthy(local: LocalCluster) -> None:
    _wait("the prometheus pod ready", local.prometheus_url)
    forward = subprocess.Popen([sys.executable, "-m", "rollouts", "port-forward", "-n", "prometheus",
                                "svc/prometheus", "0:9090", "--home", str(local.home)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert forward.stdout is not None
        line = forward.stdout.readline()
        match = re.search(r"Forwarding from 127\.0\.0\.1:(\d+)", line)
        assert match, line
        answer = httpx.get(f"http://127.0.0.1:{match.group(1)}/-/healthy", timeout=5)
        assert answer.status_code == 200 and "Healthy" in answer.text
    finally:
        forward.terminate()
        forward.wait(10)


@needs_prometheus
def test_doctor_reaches_prometheus_prometheus_svc_through_the_local_cluster(local: LocalCluster) -> None:
    from rollouts.cli.doctor import check_prometheus
    from rollouts.kube.client import connect

    _wait("the prometheus pod ready", local.prometheus_url)
    template = {"spec": {"metrics": [{"provider": {"prometheus": {
        "address": "http://prometheus.prometheus.svc:9090", "query": "up"}}}]}}
    store = connect(str(local.home / "kubeconfig"))
    try:
        check = check_prometheus([template], None, store)
    finally:
        store.close()
    assert check.verdict == "PASS", check.line()


@needs_prometheus
def test_changed_prometheus_config_is_reloaded_by_the_running_prometheus(local: LocalCluster) -> None:
    from rollouts.kube.client import connect

    _wait("the prometheus pod ready", local.prometheus_url)
    before = local.prometheus_pids()
    binary = prometheus.find_binary()
    assert binary is not None

    def loaded_config() -> str:
        return str(httpx.get(local.prometheus_url() + "/api/v1/status/config", timeout=5).json()["data"]["yaml"])

    store = connect(str(local.home / "kubeconfig"))
    try:
        prometheus.install(store, local.home, local.url, binary, "3s")  # another interval: another config
        assert _wait("the new interval loaded", lambda: "scrape_interval: 3s" in loaded_config())
        prometheus.install(store, local.home, local.url, binary, "1s")
        assert _wait("the interval back", lambda: "scrape_interval: 1s" in loaded_config())
    finally:
        store.close()
    assert local.prometheus_pids() == before  # reloaded in place, not restarted


@needs_prometheus
def test_prometheus_survives_a_cluster_restart_and_cluster_down_leaves_no_prometheus(local: LocalCluster) -> None:
    """Last in the module: it stops the cluster."""
    _wait("the prometheus pod ready", local.prometheus_url)
    before = local.prometheus_pids()
    assert len(before) == 1, before
    state = json.loads((local.home / "apiserver.json").read_text())
    os.kill(state["pid"], signal.SIGKILL)  # the cluster process dies; its pods live on
    running = start_background(local.home, runtime=RuntimeOptions(probe_period=0.2, prometheus_scrape_interval="1s"))
    local.url = running.url
    _wait("the prometheus pod ready again", local.prometheus_url)
    assert local.prometheus_pids() == before  # re-adopted, not started twice
    assert stop_background(local.home)
    assert _wait("no prometheus process left", lambda: not local.prometheus_pids(), timeout=15)


def test_cluster_up_without_prometheus_installed_says_how_to_install_and_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from rollouts.cli.cluster import cluster_app

    home = tmp_path / "home"
    # python stays reachable (by its full path); prometheus is not on PATH, here nor in the cluster process.
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    try:
        up = CliRunner().invoke(cluster_app, ["up", "--home", str(home)])
        assert up.exit_code == 0, up.output
        assert "Prometheus is not installed" in up.output and prometheus.INSTALL_HINT in up.output
        log = home / "logs" / "apiserver.log"
        logged = _wait("the cluster's log line", lambda: "Prometheus is not installed" in log.read_text())
        assert logged and prometheus.INSTALL_HINT in log.read_text()
    finally:
        stop_background(home)
