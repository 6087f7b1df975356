"""The kustomize install (deploy/kubernetes and its namespaced overlay): the copies it carries are
identical to their sources, its RBAC is exactly the operator's permission table, and the controller
Deployment has the HA, probe and hardening settings docs/kubernetes.md promises."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollouts.kube.permissions import PERMISSIONS, for_scope, rule_triples, triples
from tests.conftest import REPO
from tests.deploy.manifests import KUSTOMIZE, NAMESPACE, ident, load_yaml, one, render

SYNC = "python deploy/kubernetes/sync_copies.py"


def _sync_module() -> Any:
    spec = importlib.util.spec_from_file_location("sync_copies", KUSTOMIZE / "sync_copies.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


COPIES = _sync_module().copies()


@pytest.mark.parametrize(("source", "copy"), COPIES, ids=[c.relative_to(REPO).as_posix() for _, c in COPIES])
def test_kustomize_copies_identical_to_their_sources(source: Path, copy: Path) -> None:
    assert copy.exists(), f"{copy.relative_to(REPO)} is missing: run `{SYNC}`"
    assert copy.read_bytes() == source.read_bytes(), f"{copy.relative_to(REPO)} differs from {source}: run `{SYNC}`"


def test_argo_crds_shipped_byte_identical_and_rendered_unchanged(shared: Path) -> None:
    sources = sorted((shared / "argo-crds").glob("*-crd.yaml"))
    assert len(sources) == 5
    rendered = {o["metadata"]["name"]: o for o in render("cluster") if o["kind"] == "CustomResourceDefinition"}
    for source in sources:
        copy = KUSTOMIZE / "base" / "crds" / source.name
        assert copy.read_bytes() == source.read_bytes(), f"{copy} differs from {source}: run `{SYNC}`"
        crd = load_yaml(source.read_text())
        # kustomize must not have added a namespace, labels or anything else to Argo's CRDs.
        assert rendered.pop(crd["metadata"]["name"]) == crd, f"kustomize changed {source.name}"
    assert not rendered, f"CRDs not from Argo: {sorted(rendered)}"


def _rules(objects: list[dict[str, Any]], kind: str, name: str) -> set[tuple[str, str, str]]:
    return rule_triples(one(objects, kind, name)["rules"])


def _diff(granted: set[tuple[str, str, str]], wanted: set[tuple[str, str, str]]) -> str:
    return f"extra: {sorted(granted - wanted)}, missing: {sorted(wanted - granted)}"


@pytest.mark.parametrize(("variant", "kind", "name", "wanted"), [
    ("cluster", "ClusterRole", "rollouts-controller", triples(for_scope("managed"))),
    ("cluster", "Role", "rollouts-controller-leader-election", triples(for_scope("own"))),
    ("namespaced", "Role", "rollouts-controller", triples(for_scope("managed", cluster_scoped=False))),
    ("namespaced", "Role", "rollouts-controller-leader-election", triples(for_scope("own"))),
], ids=["cluster-clusterrole", "cluster-leader-election", "namespaced-role", "namespaced-leader-election"])
def test_rbac_rules_are_exactly_the_permission_table(variant: str, kind: str, name: str,
                                                     wanted: set[tuple[str, str, str]]) -> None:
    granted = _rules(render(variant), kind, name)
    assert granted == wanted, _diff(granted, wanted)


@pytest.mark.parametrize("variant", ["cluster", "namespaced"])
def test_rbac_grants_nothing_beyond_the_table(variant: str) -> None:
    """Every Role and ClusterRole of a variant together: no wildcard, nothing outside the table, and the
    only role objects are the ones the variant should have."""
    objects = render(variant)
    roles = [o for o in objects if o["kind"] in ("Role", "ClusterRole")]
    granted = set().union(*(rule_triples(r["rules"]) for r in roles))
    assert not {t for t in granted if "*" in t}, "wildcard in RBAC rules"
    assert granted <= triples(PERMISSIONS), _diff(granted, triples(PERMISSIONS))
    expected = {"cluster": {"ClusterRole/rollouts-controller", "Role/rollouts-controller-leader-election"},
                "namespaced": {"Role/rollouts-controller", "Role/rollouts-controller-leader-election"}}[variant]
    assert {ident(r) for r in roles} == expected


@pytest.mark.parametrize("variant", ["cluster", "namespaced"])
def test_rbac_bindings_bind_the_controller_service_account(variant: str) -> None:
    objects = render(variant)
    account = one(objects, "ServiceAccount", "rollouts-controller")
    roles = {ident(o) for o in objects if o["kind"] in ("Role", "ClusterRole")}
    bindings = [o for o in objects if o["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert len(bindings) == len(roles)
    for binding in bindings:
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "rollouts-controller",
                                        "namespace": account["metadata"]["namespace"]}], ident(binding)
        assert f"{binding['roleRef']['kind']}/{binding['roleRef']['name']}" in roles, ident(binding)
    deployment = one(objects, "Deployment", "rollouts-controller")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "rollouts-controller"


def _dig(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    return obj


POD = "spec.template.spec"
CONTAINER = f"{POD}.containers.0"
DEPLOYMENT_SETTINGS = [
    ("replicas", "spec.replicas", 2),
    ("rolling-update-keeps-standby", "spec.strategy.rollingUpdate.maxUnavailable", 0),
    ("pod-run-as-non-root", f"{POD}.securityContext.runAsNonRoot", True),
    ("pod-seccomp", f"{POD}.securityContext.seccompProfile.type", "RuntimeDefault"),
    ("container-run-as-non-root", f"{CONTAINER}.securityContext.runAsNonRoot", True),
    ("read-only-root", f"{CONTAINER}.securityContext.readOnlyRootFilesystem", True),
    ("no-privilege-escalation", f"{CONTAINER}.securityContext.allowPrivilegeEscalation", False),
    ("drop-all-capabilities", f"{CONTAINER}.securityContext.capabilities.drop", ["ALL"]),
    ("container-seccomp", f"{CONTAINER}.securityContext.seccompProfile.type", "RuntimeDefault"),
    ("liveness-healthz", f"{CONTAINER}.livenessProbe.httpGet", {"path": "/healthz", "port": "metrics"}),
    ("readiness-healthz", f"{CONTAINER}.readinessProbe.httpGet", {"path": "/healthz", "port": "metrics"}),
    ("tmp-mount", f"{CONTAINER}.volumeMounts.0", {"name": "tmp", "mountPath": "/tmp"}),
    ("tmp-emptydir", f"{POD}.volumes.0.name", "tmp"),
    ("home-in-tmp", f"{CONTAINER}.env.2", {"name": "HOME", "value": "/tmp"}),
]


@pytest.mark.parametrize("variant", ["cluster", "namespaced"])
@pytest.mark.parametrize(("path", "expected"), [s[1:] for s in DEPLOYMENT_SETTINGS],
                         ids=[s[0] for s in DEPLOYMENT_SETTINGS])
def test_controller_deployment_ha_probes_and_hardening(variant: str, path: str, expected: Any) -> None:
    deployment = one(render(variant), "Deployment", "rollouts-controller")
    assert _dig(deployment, path) == expected
    assert "emptyDir" in _dig(deployment, f"{POD}.volumes.0")


def test_controller_deployment_resources_and_metrics_port_agree() -> None:
    container = _dig(one(render("cluster"), "Deployment", "rollouts-controller"), CONTAINER)
    for section in ("requests", "limits"):
        assert set(container["resources"][section]) == {"cpu", "memory"}, section
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    address = next(a.split("=", 1)[1] for a in container["args"] if a.startswith("--metrics-address="))
    # The probes and the Service name the port; the process must listen on it, on all interfaces.
    assert address == f"0.0.0.0:{ports['metrics']}"
    assert "--leader-elect" in container["args"]


# Flags of the operator mode being built (issue 15); every other flag must exist in the CLI today.
OPERATOR_FLAGS = {"--leader-elect", "--namespace", "--instance-id", "--kubeconfig"}


def test_controller_deployment_flags_exist_or_belong_to_the_operator() -> None:
    done = subprocess.run([sys.executable, "-m", "rollouts", "controller", "--help"], capture_output=True,
                          text=True, timeout=60, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    known = set(re.findall(r"--[a-z][a-z-]+", done.stdout)) | OPERATOR_FLAGS
    for variant in ("cluster", "namespaced"):
        args = _dig(one(render(variant), "Deployment", "rollouts-controller"), CONTAINER)["args"]
        assert args[0] == "controller"
        flags = {a.split("=", 1)[0] for a in args[1:]}
        assert flags <= known, f"{variant}: unknown flags {sorted(flags - known)}"
    assert "--namespace=$(POD_NAMESPACE)" in args  # the namespaced overlay's own flag


def test_namespaced_overlay_has_no_cluster_wide_grant_and_no_namespace_object() -> None:
    kinds = {o["kind"] for o in render("namespaced")}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Namespace"}
    assert "Namespace" in {o["kind"] for o in render("cluster")}


@pytest.mark.parametrize("variant", ["cluster", "namespaced"])
def test_namespaced_objects_land_in_the_install_namespace(variant: str) -> None:
    cluster_scoped = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
    for obj in render(variant):
        if obj["kind"] in cluster_scoped:
            assert "namespace" not in obj["metadata"], ident(obj)
        else:
            assert obj["metadata"].get("namespace") == NAMESPACE, ident(obj)


def test_metrics_service_and_servicemonitor_select_the_controller() -> None:
    objects = render("cluster")
    pod_labels = _dig(one(objects, "Deployment", "rollouts-controller"), "spec.template.metadata.labels")
    service = one(objects, "Service", "rollouts-metrics")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 8090, "targetPort": "metrics", "protocol": "TCP"}]
    monitor = one(objects, "ServiceMonitor", "rollouts-controller")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"


def test_prometheusrule_is_the_one_of_deploy_prometheus() -> None:
    source = yaml.safe_load((REPO / "deploy/prometheus/prometheusrule.yaml").read_text())
    rule = one(render("cluster"), "PrometheusRule")
    assert rule["spec"] == source["spec"]
    assert rule["metadata"]["name"] == source["metadata"]["name"]


DASHBOARDS = sorted(p.name for p in (REPO / "deploy/grafana").glob("*.json"))


@pytest.mark.parametrize("dashboard", DASHBOARDS)
def test_grafana_dashboards_shipped_as_labelled_configmaps(dashboard: str) -> None:
    maps = [o for o in render("cluster") if o["kind"] == "ConfigMap" and dashboard in o.get("data", {})]
    assert len(maps) == 1, f"{dashboard}: {len(maps)} ConfigMaps carry it"
    assert maps[0]["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(maps[0]["data"][dashboard]) == json.loads((REPO / "deploy/grafana" / dashboard).read_text())
