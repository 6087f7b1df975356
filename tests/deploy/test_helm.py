"""The Helm chart (charts/rollouts) rendered by the real `helm` program (`bash charts/install-helm.sh`
installs it): with default values it renders the kustomize install's objects (less the Namespace, which
`helm install --create-namespace` makes, and plus Helm's release labels), `scope=namespace` renders the
namespaced overlay's, each value changes what it says, and every rendering passes strict validation."""

from __future__ import annotations

import functools
import subprocess
from typing import Any

import pytest

from rollouts.kube.permissions import PERMISSIONS, for_scope, rule_triples, triples
from tests.conftest import REPO, require_tool
from tests.deploy.manifests import NAMESPACE, ident, load_yaml_all, one, render
from tests.deploy.test_validate import MONITORING, MONITORING_SCHEMAS, _validate_builtin

CHART = REPO / "charts" / "rollouts"
RELEASE_LABELS = {"app.kubernetes.io/instance", "app.kubernetes.io/managed-by", "app.kubernetes.io/version",
                  "helm.sh/chart"}


def _helm() -> str:
    return require_tool("helm", "bash charts/install-helm.sh")


@functools.cache
def _template(*sets: str) -> tuple[dict[str, Any], ...]:
    args = [_helm(), "template", "rollouts", str(CHART), "--namespace", NAMESPACE, "--include-crds"]
    for item in sets:
        args += ["--set", item]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"helm template {' '.join(sets)}: {done.stderr}"
    return tuple(doc for doc in load_yaml_all(done.stdout) if doc)


def template(*sets: str) -> list[dict[str, Any]]:
    return list(_template(*sets))


def _without_release_labels(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_release_labels(v) for k, v in value.items() if k not in RELEASE_LABELS}
    if isinstance(value, list):
        return [_without_release_labels(v) for v in value]
    return value


@pytest.mark.parametrize(("sets", "variant"), [((), "cluster"), (("scope=namespace",), "namespaced")],
                         ids=["defaults-vs-kustomize", "namespace-scope-vs-namespaced-overlay"])
def test_helm_chart_renders_the_kustomize_objects(sets: tuple[str, ...], variant: str) -> None:
    helm = {ident(o): _without_release_labels(o) for o in template(*sets)}
    kustomize = {ident(o): o for o in render(variant) if o["kind"] != "Namespace"}
    assert sorted(helm) == sorted(kustomize)
    for key, obj in kustomize.items():
        assert helm[key] == obj, f"{key} differs between charts/rollouts and deploy/kubernetes"


def test_helm_release_labels_on_every_templated_object() -> None:
    for obj in template():
        if obj["kind"] != "CustomResourceDefinition":  # Helm installs crds/ as is
            assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm", ident(obj)


@pytest.mark.parametrize(("scope", "kind", "wanted"), [
    ("cluster", "ClusterRole", triples(for_scope("managed"))),
    ("namespace", "Role", triples(for_scope("managed", cluster_scoped=False))),
], ids=["cluster", "namespace"])
def test_helm_rbac_rules_are_exactly_the_permission_table(scope: str, kind: str, wanted: set[Any]) -> None:
    objects = template(f"scope={scope}")
    assert rule_triples(one(objects, kind, "rollouts-controller")["rules"]) == wanted
    assert rule_triples(one(objects, "Role", "rollouts-controller-leader-election")["rules"]) == \
        triples(for_scope("own"))
    roles = [o for o in objects if o["kind"] in ("Role", "ClusterRole")]
    assert set().union(*(rule_triples(r["rules"]) for r in roles)) <= triples(PERMISSIONS)


def _container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "Deployment", "rollouts-controller")["spec"]["template"]["spec"]["containers"][0]


def _kinds(objects: list[dict[str, Any]]) -> list[str]:
    return sorted(ident(o) for o in objects)


VALUES = [
    ("image", ("image.repository=registry.example/rollouts", "image.tag=0.2.0"),
     lambda o: _container(o)["image"] == "registry.example/rollouts:0.2.0"),
    ("replicas", ("replicaCount=3",), lambda o: one(o, "Deployment")["spec"]["replicas"] == 3),
    ("instance-id", ("instanceID=shard-a",), lambda o: "--instance-id=shard-a" in _container(o)["args"]),
    ("namespace-scope-flag", ("scope=namespace",), lambda o: "--namespace=$(POD_NAMESPACE)" in _container(o)["args"]),
    ("resources", ("resources.limits.memory=1Gi",), lambda o: _container(o)["resources"]["limits"]["memory"] == "1Gi"),
    ("metrics-port", ("metrics.port=9100",),
     lambda o: "--metrics-address=0.0.0.0:9100" in _container(o)["args"]
     and one(o, "Service")["spec"]["ports"][0]["port"] == 9100),
    ("no-service-monitor", ("metrics.serviceMonitor.enabled=false",),
     lambda o: "ServiceMonitor" not in {x["kind"] for x in o} and one(o, "Service")),
    ("no-metrics-service", ("metrics.service.enabled=false",),
     lambda o: not {"Service", "ServiceMonitor"} & {x["kind"] for x in o}),
    ("service-monitor-labels", ("metrics.serviceMonitor.labels.release=prom",),
     lambda o: one(o, "ServiceMonitor")["metadata"]["labels"].get("release") == "prom"),
    ("no-prometheus-rule", ("prometheusRule.enabled=false",), lambda o: "PrometheusRule" not in {x["kind"] for x in o}),
    ("no-dashboards", ("dashboards.enabled=false",), lambda o: "ConfigMap" not in {x["kind"] for x in o}),
    ("no-leader-election", ("leaderElection=false",),
     lambda o: "--leader-elect" not in _container(o)["args"]
     and "Role/rollouts-controller-leader-election" not in _kinds(o)),
]


@pytest.mark.parametrize(("sets", "check"), [v[1:] for v in VALUES], ids=[v[0] for v in VALUES])
def test_helm_values_change_the_rendering(sets: tuple[str, ...], check: Any) -> None:
    assert not check(template()), "the default rendering already satisfies this check"
    assert check(template(*sets))


def test_helm_rejects_an_unknown_scope() -> None:
    done = subprocess.run([_helm(), "template", "rollouts", str(CHART), "--set", "scope=everywhere"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert 'values.scope: "everywhere" is not one of cluster, namespace' in done.stderr


def test_helm_lint_strict() -> None:
    done = subprocess.run([_helm(), "lint", "--strict", str(CHART)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("sets", [(), ("scope=namespace", "instanceID=shard-a", "leaderElection=false")],
                         ids=["defaults", "namespace-shard"])
def test_helm_renderings_valid_strict(sets: tuple[str, ...]) -> None:
    import jsonschema

    objects = template(*sets)
    errors = [e for e in map(_validate_builtin, [o for o in objects if o["apiVersion"] != MONITORING]) if e]
    assert not errors, "\n".join(errors)
    for obj in objects:
        if obj["apiVersion"] == MONITORING:
            jsonschema.validate(obj, MONITORING_SCHEMAS[obj["kind"]])
