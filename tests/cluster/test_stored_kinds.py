"""The stored-only kinds of the local API server (ServiceAccount, RBAC's four kinds, Deployment,
PodDisruptionBudget): discovery, scope, the verbs over HTTP, Deployment's /status and /scale, Table columns,
and kubectl's view of them."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest

from tests.cluster.conftest import Cluster
from tests.conftest import require_tool

RBAC = "/apis/rbac.authorization.k8s.io/v1"
DEPLOY = "/apis/apps/v1/namespaces/default/deployments"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
MERGE = {"Content-Type": "application/merge-patch+json"}
STRATEGIC = {"Content-Type": "application/strategic-merge-patch+json"}

# (collection URL, body, field read back)
KINDS: list[tuple[str, dict[str, Any], str]] = [
    ("/api/v1/namespaces/default/serviceaccounts",
     {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa-1"}, "automountServiceAccountToken": False},
     "automountServiceAccountToken"),
    (f"{RBAC}/clusterroles",
     {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "cr-1"},
      "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}, "rules"),
    (f"{RBAC}/clusterrolebindings",
     {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "crb-1"},
      "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cr-1"},
      "subjects": [{"kind": "ServiceAccount", "name": "sa-1", "namespace": "default"}]}, "roleRef"),
    (f"{RBAC}/namespaces/default/roles",
     {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "role-1"},
      "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["*"]}]}, "rules"),
    (f"{RBAC}/namespaces/default/rolebindings",
     {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "rb-1"},
      "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "role-1"}, "subjects": []},
     "roleRef"),
    (DEPLOY,
     {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "dep-1"},
      "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "dep-1"}},
               "template": {"metadata": {"labels": {"app": "dep-1"}},
                            "spec": {"containers": [{"name": "app", "image": "demo:1"}]}}}}, "spec"),
    ("/apis/policy/v1/namespaces/default/poddisruptionbudgets",
     {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "pdb-1"},
      "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "dep-1"}}}}, "spec"),
]


@pytest.mark.parametrize(("url", "body", "field"), KINDS, ids=[k[1]["kind"] for k in KINDS])
def test_stored_kind_create_get_list_patch_delete(cluster: Cluster, url: str, body: dict[str, Any],
                                                  field: str) -> None:
    name = body["metadata"]["name"]
    with cluster.http() as http:
        created = http.post(url, json=body)
        assert created.status_code == 201, created.text
        got = http.get(f"{url}/{name}").json()
        listed = http.get(url).json()
        patched = http.patch(f"{url}/{name}", json={"metadata": {"labels": {"t": "x"}}}, headers=STRATEGIC)
        deleted = http.delete(f"{url}/{name}")
        gone = http.get(f"{url}/{name}")
    assert got[field] == body[field] and got["kind"] == body["kind"]
    assert ("namespace" in got["metadata"]) == ("/namespaces/" in url)
    assert name in [i["metadata"]["name"] for i in listed["items"]] and listed["kind"] == body["kind"] + "List"
    assert patched.status_code == 200 and patched.json()["metadata"]["labels"] == {"t": "x"}
    assert deleted.status_code == 200 and gone.status_code == 404


def test_stored_kinds_are_in_discovery_with_scope_and_subresources(cluster: Cluster) -> None:
    with cluster.http() as http:
        groups = {g["name"] for g in http.get("/apis").json()["groups"]}
        rbac = {r["name"]: r for r in http.get(RBAC).json()["resources"]}
        apps = {r["name"]: r for r in http.get("/apis/apps/v1").json()["resources"]}
        policy = {r["name"]: r for r in http.get("/apis/policy/v1").json()["resources"]}
        core = {r["name"]: r for r in http.get("/api/v1").json()["resources"]}
    assert {"rbac.authorization.k8s.io", "policy", "apps", "apiextensions.k8s.io"} <= groups
    assert rbac["clusterroles"]["namespaced"] is False and rbac["roles"]["namespaced"] is True
    assert {"deployments", "deployments/status", "deployments/scale"} <= set(apps)
    assert apps["deployments"]["shortNames"] == ["deploy"] and "all" in apps["deployments"]["categories"]
    assert policy["poddisruptionbudgets"]["shortNames"] == ["pdb"] and "poddisruptionbudgets/status" in policy
    assert core["serviceaccounts"]["shortNames"] == ["sa"]


def _deployment(name: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": "demo:1"}]}}},
            "status": {"replicas": 99}}


def test_deployment_status_and_scale_subresources(cluster: Cluster) -> None:
    with cluster.http() as http:
        created = http.post(DEPLOY, json=_deployment("dep-sub")).json()
        status = http.patch(f"{DEPLOY}/dep-sub/status", json={"status": {"readyReplicas": 2, "replicas": 3}},
                            headers=MERGE).json()
        ignored = http.patch(f"{DEPLOY}/dep-sub", json={"status": {"readyReplicas": 0}}, headers=MERGE).json()
        scale = http.get(f"{DEPLOY}/dep-sub/scale").json()
        scaled = http.patch(f"{DEPLOY}/dep-sub/scale", json={"spec": {"replicas": 5}}, headers=MERGE).json()
        after = http.get(f"{DEPLOY}/dep-sub").json()
        table = http.get(DEPLOY, headers={"Accept": TABLE}).json()
    assert "status" not in created  # status is written through /status only
    assert status["status"] == {"readyReplicas": 2, "replicas": 3} and ignored["status"]["readyReplicas"] == 2
    assert scale["kind"] == "Scale" and scale["spec"] == {"replicas": 3}
    assert scale["status"] == {"replicas": 3, "selector": "app=dep-sub"}
    assert scaled["spec"]["replicas"] == 5 and after["spec"]["replicas"] == 5 and after["metadata"]["generation"] == 2
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Ready", "Up-to-date", "Available", "Age"]
    assert [r["cells"][:2] for r in table["rows"] if r["cells"][0] == "dep-sub"] == [["dep-sub", "2/5"]]


def test_cluster_scoped_rbac_kinds_are_not_addressed_in_a_namespace(cluster: Cluster) -> None:
    with cluster.http() as http:
        http.post(f"{RBAC}/clusterroles", json={"metadata": {"name": "cr-scope", "namespace": "default"},
                                                 "rules": []})
        inside = http.get(f"{RBAC}/namespaces/default/clusterroles/cr-scope")
        got = http.get(f"{RBAC}/clusterroles/cr-scope").json()
    assert inside.status_code == 404 and "namespace" not in got["metadata"]
    assert cluster.store.get("ClusterRole", "", "cr-scope")["metadata"]["name"] == "cr-scope"


def test_kubectl_lists_stored_kinds_with_their_columns(cluster: Cluster) -> None:
    kubectl = require_tool("kubectl", "apt-get install kubernetes-client (Debian)")
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "HOME": str(cluster.home)}
    with cluster.http() as http:
        http.post("/apis/policy/v1/namespaces/default/poddisruptionbudgets",
                  json={"metadata": {"name": "pdb-cols"}, "spec": {"minAvailable": 1}})
        http.post(f"{RBAC}/namespaces/default/rolebindings",
                  json={"metadata": {"name": "rb-cols"}, "roleRef": {"kind": "Role", "name": "r", "apiGroup": ""}})
    done = subprocess.run([kubectl, "get", "pdb,rolebindings", "-n", "default"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = [line.split() for line in done.stdout.splitlines()]
    assert ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE"] in lines
    assert any(line[:4] == ["poddisruptionbudget.policy/pdb-cols", "1", "N/A", "0"] for line in lines)
    assert any(line[:2] == ["rolebinding.rbac.authorization.k8s.io/rb-cols", "Role/r"] for line in lines)
