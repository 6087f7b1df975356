"""The local cluster's own Prometheus: Debian's `prometheus` binary run as a pod of the local runtime (ReplicaSet
and Service `prometheus` in namespace `prometheus`, port 9090), so `prometheus.prometheus.svc:9090` in an
analysis template, `rollouts port-forward -n prometheus svc/prometheus 9090:9090` and `kubectl get pods -n
prometheus` all see it. As a pod it is re-adopted when the cluster process restarts, stops on `cluster down`
and is found by `cluster down` even after a SIGKILL of the cluster. Its files live in HOME/prometheus:
prometheus.yml, rules.yaml (a copy of deploy/prometheus/rules.yaml, so the folder is self-contained) and the
TSDB under data/.

Discovery goes through the cluster's own API (bearer token from HOME/apiserver.token, the API's CA), with
`http_sd_configs` against /prometheus-sd/v1/{pod,endpoints} (Debian's build has no Kubernetes discovery; the
API answers with Kubernetes discovery's `__meta_kubernetes_*` labels, see apiserver/prometheus_sd.py). Jobs:

- `kubernetes-pods`: pods annotated `prometheus.io/scrape: "true"` (`prometheus.io/port`, `prometheus.io/path`,
  `prometheus.io/scheme` as usual); every pod label is kept (`rollouts-pod-template-hash` ->
  `rollouts_pod_template_hash`, `app`, ...) plus `namespace` and `pod`;
- `ingress-nginx`: the ingress proxy's /metrics (Endpoints `ingress-nginx/ingress-nginx-controller-metrics`,
  kept up to date here): `nginx_ingress_controller_*` as ingress-nginx exports them, and the proxy's own
  per-version `rollouts_ingress_http_request*` series (named so that they never add to the application's
  own `http_requests_total{service=...}` the runbook's gates sum);
- `rollouts-metrics`: the operator's /metrics, from the Endpoints of Service `rollouts/rollouts-metrics`
  (labels `app.kubernetes.io/name: rollouts`, `app.kubernetes.io/component: metrics`, port `metrics`, as
  deploy/kubernetes installs it), which the operator registers when it runs against a local cluster.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from rollouts.cluster.apiserver.kubeconfig import TOKEN_FILE
from rollouts.cluster.apiserver.prometheus_sd import PATH as SD_PATH
from rollouts.cluster.apiserver.tls import CERT_FILE
from rollouts.store.metrics_endpoints import (
    CONTROLLER_METRICS_SERVICE,
    MetricsEndpoint,
    ensure_namespace,
    ensure_service,
)
from rollouts.store.protocol import NotFound, ObjectStore

log = logging.getLogger(__name__)

NAMESPACE = "prometheus"
NAME = "prometheus"
PORT = 9090
FOLDER = "prometheus"
CONFIG_FILE = "prometheus.yml"
RULES_FILE = "rules.yaml"
INSTALL_HINT = "sudo apt-get install prometheus"
MANAGED_BY = {"app.kubernetes.io/managed-by": "rollouts-local-cluster"}
DIGEST_FILE = "config.digest"  # of the files Prometheus runs with, to know when to ask it to reload them
DEFAULT_SCRAPE_INTERVAL = "2s"
# The ingress proxy's metrics, where ingress-nginx's Helm chart puts its controller's.
INGRESS_NAMESPACE = "ingress-nginx"
INGRESS_METRICS_SERVICE = "ingress-nginx-controller-metrics"


def find_binary() -> str | None:
    return shutil.which("prometheus")


def missing_line() -> str:
    return (f"Prometheus is not installed: `{INSTALL_HINT}` (`scripts/setup.sh test` does it), then "
            f"`rollouts cluster down && rollouts cluster up` runs it in the local cluster as "
            f"{NAME}.{NAMESPACE}.svc:{PORT} (the runbook's gates query it)")


def rules_source() -> Path | None:
    """deploy/prometheus/rules.yaml of the source tree this package runs from (None when not there)."""
    path = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "rules.yaml"
    return path if path.exists() else None


def folder(home: Path) -> Path:
    return home / FOLDER


def _sd(api_url: str, home: Path, role: str, refresh: str) -> list[dict[str, Any]]:
    return [{"url": api_url + SD_PATH.replace("{role}", role), "refresh_interval": refresh,
             # `type` spelled out: Prometheus 2.42's HTTP discovery sends the bare token without it.
             "authorization": {"type": "Bearer", "credentials_file": str(home / TOKEN_FILE)},
             "tls_config": {"ca_file": str(home / CERT_FILE)}}]


def _keep(label: str, regex: str) -> dict[str, Any]:
    return {"source_labels": [label], "regex": regex, "action": "keep"}


def config(home: Path, api_url: str, scrape_interval: str = DEFAULT_SCRAPE_INTERVAL,
           rule_files: list[str] | None = None) -> dict[str, Any]:
    """The prometheus.yml of the local cluster's Prometheus (see the module docstring for its jobs)."""
    meta = "__meta_kubernetes_"
    pods = {
        "job_name": "kubernetes-pods",
        "http_sd_configs": _sd(api_url, home, "pod", scrape_interval),
        "relabel_configs": [
            _keep(f"{meta}pod_annotation_prometheus_io_scrape", "true"),
            {"source_labels": [f"{meta}pod_phase"], "regex": "Pending|Succeeded|Failed", "action": "drop"},
            {"source_labels": [f"{meta}pod_annotation_prometheus_io_scheme"], "regex": "(https?)",
             "target_label": "__scheme__"},
            {"source_labels": [f"{meta}pod_annotation_prometheus_io_path"], "regex": "(.+)",
             "target_label": "__metrics_path__"},
            {"source_labels": ["__address__", f"{meta}pod_annotation_prometheus_io_port"],
             "regex": r"([^:]+)(?::\d+)?;(\d+)", "replacement": "$1:$2", "target_label": "__address__"},
            # A pod on the shared loopback (no address of its own) listens on the port the runtime recorded.
            {"source_labels": [f"{meta}pod_ip", f"{meta}pod_annotation_rollouts_io_port"],
             "regex": r"127\.0\.0\.1;(\d+)", "replacement": "127.0.0.1:$1", "target_label": "__address__"},
            {"action": "labelmap", "regex": f"{meta}pod_label_(.+)"},
            {"source_labels": [f"{meta}namespace"], "target_label": "namespace"},
            {"source_labels": [f"{meta}pod_name"], "target_label": "pod"},
        ],
    }
    ingress = {
        "job_name": "ingress-nginx",
        "http_sd_configs": _sd(api_url, home, "endpoints", scrape_interval),
        "relabel_configs": [
            _keep(f"{meta}namespace", INGRESS_NAMESPACE),
            _keep(f"{meta}service_name", INGRESS_METRICS_SERVICE),
            _keep(f"{meta}endpoint_port_name", "metrics"),
            {"source_labels": [f"{meta}namespace"], "target_label": "controller_namespace"},
        ],
    }
    controller = {
        "job_name": CONTROLLER_METRICS_SERVICE,
        "http_sd_configs": _sd(api_url, home, "endpoints", scrape_interval),
        "relabel_configs": [
            _keep(f"{meta}service_label_app_kubernetes_io_name", "rollouts"),
            _keep(f"{meta}service_label_app_kubernetes_io_component", "metrics"),
            _keep(f"{meta}endpoint_port_name", "metrics"),
            {"source_labels": [f"{meta}namespace"], "target_label": "kubernetes_namespace"},
            {"source_labels": [f"{meta}endpoint_address_target_name"], "target_label": "controller"},
        ],
    }
    document: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval,
                   "scrape_timeout": scrape_interval},
        "scrape_configs": [pods, ingress, controller],
    }
    if rule_files:
        document["rule_files"] = rule_files
    return document


def write_files(home: Path, api_url: str, scrape_interval: str) -> tuple[Path, str]:
    """Write HOME/prometheus/{prometheus.yml,rules.yaml}; returns the config's path and a digest of both
    (also written to HOME/prometheus/config.digest)."""
    where = folder(home)
    (where / "data").mkdir(parents=True, exist_ok=True)
    rules = []
    source = rules_source()
    if source is not None:
        shutil.copyfile(source, where / RULES_FILE)
        rules = [str(where / RULES_FILE)]
    else:
        log.warning("prometheus: deploy/prometheus/rules.yaml is not next to this installation; the cluster's "
                    "Prometheus runs without the alert rules")
    text = yaml.safe_dump(config(home, api_url, scrape_interval, rules), sort_keys=False)
    path = where / CONFIG_FILE
    path.write_text(text)
    digest = hashlib.sha256(text.encode() + ((where / RULES_FILE).read_bytes() if rules else b"")).hexdigest()
    (where / DIGEST_FILE).write_text(digest[:16] + "\n")
    return path, digest[:16]


def replica_set(home: Path, binary: str, config_path: Path) -> dict[str, Any]:
    labels = {"app": NAME, "app.kubernetes.io/name": NAME}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {**labels, **MANAGED_BY}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": NAME}},
            "template": {
                "metadata": {"labels": labels, "annotations": {
                    "prometheus.io/scrape": "true", "prometheus.io/port": str(PORT)}},
                "spec": {
                    "terminationGracePeriodSeconds": 10,
                    "containers": [{
                        "name": NAME,
                        "image": "prometheus:debian",  # informational: the command below is what runs
                        "command": [sys.executable, "-m", "rollouts.cluster.prometheus_pod"],
                        "args": [binary, f"--config.file={config_path}",
                                 f"--storage.tsdb.path={folder(home) / 'data'}", "--web.enable-lifecycle"],
                        "ports": [{"name": "web", "containerPort": PORT, "protocol": "TCP"}],
                        "readinessProbe": {"httpGet": {"path": "/-/ready", "port": "web"}, "periodSeconds": 1},
                    }],
                },
            },
        },
    }


def service() -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": {"app": NAME, **MANAGED_BY}},
        "spec": {"selector": {"app": NAME},
                 "ports": [{"name": "web", "port": PORT, "targetPort": "web", "protocol": "TCP"}]},
    }


def _same_template(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return json.dumps(current, sort_keys=True) == json.dumps(wanted, sort_keys=True)


def _own_pods(store: ObjectStore) -> list[dict[str, Any]]:
    return [pod for pod in store.list("Pod", NAMESPACE)
            if any(o.get("kind") == "ReplicaSet" and o.get("name") == NAME
                   for o in pod["metadata"].get("ownerReferences") or [])]


def _reload(store: ObjectStore) -> None:
    """Ask the running Prometheus to read its files again (POST /-/reload, --web.enable-lifecycle): a cluster
    that came back on another port keeps its Prometheus, and so its pid, target state and rule timers."""
    import httpx

    for pod in _own_pods(store):
        ip = (pod.get("status") or {}).get("podIP")
        port = (pod["metadata"].get("annotations") or {}).get("rollouts.io/port")
        if not ip or not port:
            continue
        try:
            httpx.post(f"http://{ip}:{port}/-/reload", timeout=10).raise_for_status()
            log.info("prometheus: pod %s reloaded its configuration", pod["metadata"]["name"])
        except httpx.HTTPError as exc:  # not up yet: it reads the new files when it starts
            log.info("prometheus: pod %s did not reload (%s); it reads the new files when it starts",
                     pod["metadata"]["name"], exc)


def install(store: ObjectStore, home: Path, api_url: str, binary: str,
            scrape_interval: str = DEFAULT_SCRAPE_INTERVAL) -> None:
    """Write the config and make the Namespace, ReplicaSet and Service exist as wanted. Changed files (the
    API's port, the interval, the rules) are reloaded by the running Prometheus; a changed pod template (the
    binary, the home) replaces the pod."""
    try:
        before = (folder(home) / DIGEST_FILE).read_text().strip()
    except OSError:
        before = ""
    config_path, digest = write_files(home, api_url, scrape_interval)
    ensure_namespace(store, NAMESPACE)
    wanted = replica_set(home, binary, config_path)
    try:
        current = store.get("ReplicaSet", NAMESPACE, NAME)
    except NotFound:
        store.create(wanted)
    else:
        if not _same_template(current.get("spec") or {}, wanted["spec"]):
            store.update({**current, "spec": wanted["spec"]})
            # A ReplicaSet does not replace its pods when its template changes; the old pod goes here.
            for pod in _own_pods(store):
                try:
                    store.delete("Pod", NAMESPACE, pod["metadata"]["name"])
                except NotFound:
                    pass
        elif digest != before:
            _reload(store)
    ensure_service(store, service())
    log.info("prometheus: %s (config %s, digest %s)", binary, config_path, digest)


def uninstall(store: ObjectStore) -> bool:
    """Remove the ReplicaSet (its pod stops) and Service of a cluster started with --no-prometheus; the TSDB
    stays. True when something was removed."""
    removed = False
    for kind in ("ReplicaSet", "Service"):
        try:
            obj = store.get(kind, NAMESPACE, NAME)
        except NotFound:
            continue
        if all((obj["metadata"].get("labels") or {}).get(k) == v for k, v in MANAGED_BY.items()):
            store.delete(kind, NAMESPACE, NAME)
            removed = True
    return removed


INGRESS_METRICS = MetricsEndpoint(INGRESS_NAMESPACE, INGRESS_METRICS_SERVICE,
                                  {"app.kubernetes.io/name": "ingress-nginx",
                                   "app.kubernetes.io/component": "controller", **MANAGED_BY}, 10254)
