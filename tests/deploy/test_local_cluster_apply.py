"""The rendered install (both kustomize variants, and the Helm chart with default values) applied whole with
`kubectl apply -f -` to the local cluster's API server (a real server over SQLite, as `rollouts cluster up`
runs it): every object is applied, read back, and a second apply leaves every one unchanged. The
Prometheus Operator's CRDs are not in the repository, so a minimal fixture registers ServiceMonitor and
PrometheusRule first, as a cluster with the operator would have them."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.conftest import Cluster, start_cluster
from tests.deploy.manifests import ident, kubectl, render

MONITORING_CRDS = Path(__file__).parent / "fixtures" / "prometheus-operator-crds.yaml"


def _kubectl(cluster: Cluster, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "HOME": str(cluster.home)}
    return subprocess.run([kubectl(), *args], env=env, input=stdin, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    found, stop = start_cluster(tmp_path_factory.mktemp("deploy-cluster-home"))
    done = _kubectl(found, "apply", "-f", str(MONITORING_CRDS))
    assert done.returncode == 0, done.stderr
    yield found
    stop()


def _objects(variant: str) -> list[dict[str, Any]]:
    if variant == "helm":
        from tests.deploy.test_helm import template

        return template()
    return render(variant)


def _where(obj: dict[str, Any]) -> list[str]:
    return ["-n", obj["metadata"]["namespace"]] if "namespace" in obj["metadata"] else []


def _resource(obj: dict[str, Any]) -> str:
    """kind.group, so that kubectl resolves the kind without ambiguity."""
    group = obj["apiVersion"].rpartition("/")[0]
    return f"{obj['kind'].lower()}.{group}" if group else obj["kind"].lower()


def _generation(cluster: Cluster, obj: dict[str, Any]) -> int:
    got = _kubectl(cluster, "get", _resource(obj), obj["metadata"]["name"], *_where(obj), "-o", "yaml")
    assert got.returncode == 0, got.stderr
    return int(yaml.safe_load(got.stdout)["metadata"]["generation"])


@pytest.mark.parametrize("variant", ["cluster", "namespaced", "helm"])
def test_rendered_install_applies_to_the_local_cluster(cluster: Cluster, variant: str) -> None:
    objects = _objects(variant)
    assert {"Deployment", "ServiceAccount", "ServiceMonitor", "PrometheusRule"} <= {o["kind"] for o in objects}
    text = yaml.safe_dump_all(objects)

    applied = _kubectl(cluster, "apply", "-f", "-", stdin=text)
    assert applied.returncode == 0, applied.stderr
    assert "warning" not in applied.stderr.lower(), applied.stderr
    assert len(applied.stdout.splitlines()) == len(objects), applied.stdout
    # One `kubectl get -f -` reads every object of the manifest back, in its order.
    got = _kubectl(cluster, "get", "-f", "-", "-o", "json", stdin=text)
    assert got.returncode == 0, got.stderr
    found = json.loads(got.stdout)
    lives = found["items"] if found.get("kind") == "List" else [found]
    assert [ident(o) for o in lives] == [ident(o) for o in objects]
    for obj, live in zip(objects, lives, strict=True):
        assert live["metadata"].get("labels", {}).items() >= obj["metadata"].get("labels", {}).items(), ident(obj)
        for field in ("spec", "data", "rules", "subjects", "roleRef"):
            if field in obj:
                value = live[field]
                assert (value if not isinstance(value, dict) else {k: value.get(k) for k in obj[field]}) \
                    == obj[field], f"{ident(obj)} {field}"

    pdbs = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    before = [_generation(cluster, o) for o in pdbs]
    again = _kubectl(cluster, "apply", "-f", "-", stdin=text)
    assert again.returncode == 0, again.stderr
    # A PodDisruptionBudget's spec.selector has patch strategy "replace", so kubectl's computed patch is
    # never empty and it reports "configured" against any API server; the object must not change, though.
    changed = [line for line in again.stdout.splitlines()
               if not line.endswith("unchanged") and not line.startswith("poddisruptionbudget.policy/")]
    assert changed == [], again.stdout
    assert [_generation(cluster, o) for o in pdbs] == before


def test_shipped_crd_names_are_served_by_the_local_cluster(cluster: Cluster) -> None:
    shipped = {o["metadata"]["name"] for o in render("cluster") if o["kind"] == "CustomResourceDefinition"}
    done = _kubectl(cluster, "get", "crd", "-o", "name")
    assert done.returncode == 0, done.stderr
    assert {line.split("/", 1)[1] for line in done.stdout.split()} >= shipped | {
        "servicemonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com"}


def test_monitoring_kinds_are_discovered_after_their_crds_are_applied(cluster: Cluster) -> None:
    done = _kubectl(cluster, "api-resources", "--api-group", "monitoring.coreos.com", "--no-headers")
    assert done.returncode == 0, done.stderr
    rows = sorted(line.split() for line in done.stdout.splitlines())
    assert rows == [["prometheusrules", "promrule", "monitoring.coreos.com/v1", "true", "PrometheusRule"],
                    ["servicemonitors", "smon", "monitoring.coreos.com/v1", "true", "ServiceMonitor"]]
