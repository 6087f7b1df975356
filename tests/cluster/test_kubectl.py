"""kubectl 1.32 against the local API server: the runbook's commands (apply, get, patch, scale,
describe, events by involvedObject, ingress YAML, get -w, logs, delete) with KUBECONFIG pointing at it.

The server serves a minimal /openapi/v3 (no /openapi/v2), which makes kubectl leave validation to the
server (`fieldValidation=Strict`): `kubectl apply -f` runs as written, without `--validate=false`."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.cluster.conftest import Cluster
from tests.conftest import REPO, require_tool

NS = "aivo-system"
INFRA = REPO / "infra" / "rollouts"


@pytest.fixture(scope="module")
def kubectl(cluster: Cluster) -> str:
    return require_tool("kubectl", "apt-get install kubernetes-client (Debian), or see kubernetes.io/docs/tasks/tools")


def _env(cluster: Cluster) -> dict[str, str]:
    return {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "HOME": str(cluster.home)}


def run(cluster: Cluster, kubectl: str, *args: str, ok: bool = True) -> str:
    done = subprocess.run([kubectl, *args], env=_env(cluster), capture_output=True, text=True, timeout=60)
    if ok:
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def applied(cluster: Cluster, kubectl: str) -> None:
    for name in ("analysis-templates", "canary-rollouts", "ingress"):
        out = run(cluster, kubectl, "apply", "-f", str(INFRA / f"{name}.yaml"))
        assert "warning" not in out.lower(), out


def test_kubectl_apply_creates_then_reports_unchanged(cluster: Cluster, kubectl: str, applied: None) -> None:
    again = run(cluster, kubectl, "apply", "-f", str(INFRA / "canary-rollouts.yaml"))
    assert "rollout.argoproj.io/auth-svc unchanged" in again


def test_kubectl_apply_server_side(cluster: Cluster, kubectl: str, applied: None) -> None:
    out = run(cluster, kubectl, "apply", "--server-side", "-f", str(INFRA / "analysis-templates.yaml"))
    assert "serverside-applied" in out


def test_kubectl_apply_of_an_invalid_rollout_prints_the_field_causes(cluster: Cluster, kubectl: str,
                                                                    tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("""apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: bad-ro, namespace: aivo-system}
spec:
  selector: {matchLabels: {app: bad}}
  template:
    metadata: {labels: {app: bad}}
    spec: {containers: [{name: app, image: "bad:1"}]}
  strategy: {canary: {steps: [{setWeight: 140}]}}
""")
    out = run(cluster, kubectl, "apply", "-f", str(bad), ok=False)
    assert "spec.strategy.canary.steps[0].setWeight: 140 is not between 0 and 100" in out
    assert "NotFound" in run(cluster, kubectl, "get", "rollout", "bad-ro", "-n", NS, ok=False)


def test_kubectl_get_rollouts_prints_argo_columns(cluster: Cluster, kubectl: str, applied: None) -> None:
    out = run(cluster, kubectl, "get", "ro", "-n", NS)
    header = out.splitlines()[0].split()
    assert header == ["NAME", "DESIRED", "CURRENT", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert any(line.split()[:2] == ["auth-svc", "4"] for line in out.splitlines())


def test_kubectl_patch_merge_and_scale(cluster: Cluster, kubectl: str, applied: None) -> None:
    assert "patched" in run(cluster, kubectl, "patch", "rollout", "user-svc", "-n", NS, "--type", "merge",
                            "-p", '{"spec":{"replicas":3}}')
    assert run(cluster, kubectl, "get", "rollout", "user-svc", "-n", NS, "-o", "jsonpath={.spec.replicas}") == "3"
    assert "scaled" in run(cluster, kubectl, "scale", "rollout", "user-svc", "-n", NS, "--replicas=5")
    assert cluster.store.get("Rollout", NS, "user-svc")["spec"]["replicas"] == 5
    refused = run(cluster, kubectl, "patch", "rollout", "user-svc", "-n", NS, "--type", "merge",
                  "-p", '{"spec":{"strategy":{"canary":{"steps":[{"setWeight":140}]}}}}', ok=False)
    assert "setWeight: 140 is not between 0 and 100" in refused


def test_kubectl_runbook_reads(cluster: Cluster, kubectl: str, applied: None) -> None:
    ro = cluster.store.get("Rollout", NS, "auth-svc")
    cluster.store.create({"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
                          "metadata": {"name": "auth-svc-abc-2", "namespace": NS, "labels": {"rollout": "auth-svc"}},
                          "spec": {"metrics": []}, "status": {"phase": "Running"}})
    cluster.store.create({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                          "metadata": {"name": "auth-svc-auth-svc-canary", "namespace": NS, "annotations": {
                              "nginx.ingress.kubernetes.io/canary": "true",
                              "nginx.ingress.kubernetes.io/canary-weight": "10"}},
                          "spec": {"rules": []}})
    cluster.store.record_event({"kind": "Rollout", "name": "auth-svc", "namespace": NS, "uid": ro["metadata"]["uid"]},
                               "Normal", "RolloutUpdated", "Rollout updated to revision 2")
    analysis = run(cluster, kubectl, "get", "analysisrun", "-n", NS, "-l", "rollout=auth-svc")
    assert "auth-svc-abc-2" in analysis and "Running" in analysis
    name = run(cluster, kubectl, "get", "analysisrun", "-n", NS, "-l", "rollout=auth-svc", "-o", "name").split()[0]
    assert "Name:         auth-svc-abc-2" in run(cluster, kubectl, "describe", name, "-n", NS)
    yaml_out = run(cluster, kubectl, "get", "ingress", "auth-svc-auth-svc-canary", "-n", NS, "-o", "yaml")
    assert 'nginx.ingress.kubernetes.io/canary-weight: "10"' in yaml_out
    events = run(cluster, kubectl, "get", "events", "-n", NS, "--field-selector", "involvedObject.name=auth-svc")
    assert "RolloutUpdated" in events and "rollout/auth-svc" in events
    described = run(cluster, kubectl, "describe", "rollout", "auth-svc", "-n", NS)
    assert "Rollout updated to revision 2" in described


def test_kubectl_get_watch_prints_changes(cluster: Cluster, kubectl: str, applied: None) -> None:
    watcher = subprocess.Popen([kubectl, "get", "rollout", "inference-gateway-svc", "-n", NS, "-w"],
                               env=_env(cluster), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert watcher.stdout is not None
        first = watcher.stdout.readline()
        assert first.split()[0] == "NAME"
        watcher.stdout.readline()  # the current row
        run(cluster, kubectl, "patch", "rollout", "inference-gateway-svc", "-n", NS, "--type", "merge",
            "-p", '{"spec":{"replicas":7}}')
        deadline = time.monotonic() + 20
        changed = ""
        while time.monotonic() < deadline and not changed.startswith("inference-gateway-svc"):
            changed = watcher.stdout.readline()
        assert changed.split()[:2] == ["inference-gateway-svc", "7"]
    finally:
        watcher.kill()
        watcher.wait(10)


def test_kubectl_logs(cluster: Cluster, kubectl: str) -> None:
    cluster.store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kubectl-log-pod"},
                          "spec": {"containers": [{"name": "c", "image": "i"}]}, "status": {"phase": "Running"}})
    logs: Path = cluster.home / "logs"
    logs.mkdir(exist_ok=True)
    (logs / "kubectl-log-pod.log").write_text("hello from the pod\n")
    assert run(cluster, kubectl, "logs", "kubectl-log-pod") == "hello from the pod\n"


def test_kubectl_delete_cascades(cluster: Cluster, kubectl: str, applied: None) -> None:
    ro = cluster.store.get("Rollout", NS, "inference-gateway-svc")
    cluster.store.create({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                          "metadata": {"name": "inference-gateway-svc-123", "namespace": NS, "ownerReferences": [
                              {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                               "name": "inference-gateway-svc", "uid": ro["metadata"]["uid"], "controller": True}]},
                          "spec": {"replicas": 1}})
    assert "deleted" in run(cluster, kubectl, "delete", "rollout", "inference-gateway-svc", "-n", NS)
    assert "No resources found" in run(cluster, kubectl, "get", "rs", "-n", NS)


def test_kubectl_get_crds(cluster: Cluster, kubectl: str) -> None:
    out = run(cluster, kubectl, "get", "crd")
    assert out.splitlines()[0].split() == ["NAME", "CREATED", "AT"]
    assert "rollouts.argoproj.io" in out and "analysisruns.argoproj.io" in out


def test_kubectl_logs_by_label(cluster: Cluster, kubectl: str) -> None:
    logs: Path = cluster.home / "logs"
    logs.mkdir(exist_ok=True)
    for name in ("web-abc-1", "web-abc-2"):
        cluster.store.create({"apiVersion": "v1", "kind": "Pod",
                              "metadata": {"name": name, "labels": {"app": "web", "rollouts-pod-template-hash": "abc"}},
                              "spec": {"containers": [{"name": "web", "image": "web:1"}]},
                              "status": {"phase": "Running"}})
        (logs / f"{name}.log").write_text(f"line of {name}\n")
    out = run(cluster, kubectl, "logs", "-l", "app=web,rollouts-pod-template-hash=abc")
    assert sorted(out.splitlines()) == ["line of web-abc-1", "line of web-abc-2"]


def test_kubectl_get_all_lists_the_kinds_of_the_all_category(cluster: Cluster, kubectl: str, applied: None) -> None:
    out = run(cluster, kubectl, "get", "all", "-n", NS)
    assert "service/auth-svc-stable" in out
    assert "rollout" not in out  # Argo's CRD puts Rollouts in no category


def test_kubectl_create_configmap_secret_namespace_in_protobuf(cluster: Cluster, kubectl: str) -> None:
    assert "created" in run(cluster, kubectl, "create", "configmap", "pb-cm", "--from-literal=a=b")
    assert run(cluster, kubectl, "get", "cm", "pb-cm", "-o", "jsonpath={.data.a}") == "b"
    assert "created" in run(cluster, kubectl, "create", "secret", "generic", "pb-secret", "--from-literal=p=q")
    assert cluster.store.get("Secret", "default", "pb-secret")["data"] == {"p": "cQ=="}
    assert "created" in run(cluster, kubectl, "create", "namespace", "pb-team")
    refused = run(cluster, kubectl, "create", "job", "pb-job", "--image=busybox", ok=False)
    assert "send it as YAML or JSON" in refused
