"""The rendered install (both kustomize variants, and the Helm chart with default values) applied with
`kubectl apply -f -` to the local cluster's API server (a real server process over SQLite, as `rollouts
cluster up` runs it). That server serves a subset of Kubernetes' kinds: what it serves with create and
patch is applied and read back; the rest is listed in docs/kubernetes.md as not yet run against any API
server. Its CRDs are read-only Argo's own, so for them the check is that the five names the install ships
are the ones it serves."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.cluster.conftest import Cluster, start_cluster
from tests.deploy.manifests import ident, kubectl, render

# Kinds of the install the local API server does not serve (or serves read-only) today.
NOT_SERVED_LOCALLY = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Deployment",
                      "PodDisruptionBudget", "ServiceMonitor", "PrometheusRule", "CustomResourceDefinition"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    found, stop = start_cluster(tmp_path_factory.mktemp("deploy-cluster-home"))
    yield found
    stop()


def _kubectl(cluster: Cluster, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "HOME": str(cluster.home)}
    return subprocess.run([kubectl(), *args], env=env, input=stdin, capture_output=True, text=True, timeout=120)


def _writable_kinds(cluster: Cluster) -> set[tuple[str, str]]:
    """(apiVersion, kind) the server serves with the verbs `kubectl apply` needs."""
    done = _kubectl(cluster, "api-resources", "-o", "wide", "--no-headers")
    assert done.returncode == 0, done.stderr
    kinds = set()
    for line in done.stdout.splitlines():
        fields = line.split()
        # NAME [SHORTNAMES] APIVERSION NAMESPACED KIND VERBS [CATEGORIES]: find the NAMESPACED column.
        at = next(i for i, f in enumerate(fields) if f in ("true", "false") and i >= 1)
        verbs = set(fields[at + 2].split(","))
        if {"get", "create", "patch"} <= verbs:
            kinds.add((fields[at - 1], fields[at + 1]))
    return kinds


def _objects(variant: str) -> list[dict[str, Any]]:
    if variant == "helm":
        from tests.deploy.test_helm import template

        return template()
    return render(variant)


@pytest.mark.parametrize("variant", ["cluster", "namespaced", "helm"])
def test_rendered_install_applies_to_the_local_cluster(cluster: Cluster, variant: str) -> None:
    writable = _writable_kinds(cluster)
    objects = _objects(variant)
    served = [o for o in objects if (o["apiVersion"], o["kind"]) in writable]
    skipped = {o["kind"] for o in objects} - {o["kind"] for o in served}
    assert skipped <= NOT_SERVED_LOCALLY, f"kinds neither applied nor known to be unserved: {skipped - NOT_SERVED_LOCALLY}"
    assert {o["kind"] for o in served} >= {"Service", "ConfigMap"}

    applied = _kubectl(cluster, "apply", "--validate=false", "-f", "-", stdin=yaml.safe_dump_all(served))
    assert applied.returncode == 0, applied.stderr
    assert "warning" not in applied.stderr.lower(), applied.stderr
    for obj in served:
        where = ["-n", obj["metadata"]["namespace"]] if "namespace" in obj["metadata"] else []
        got = _kubectl(cluster, "get", obj["kind"].lower(), obj["metadata"]["name"], *where, "-o", "yaml")
        assert got.returncode == 0, f"{ident(obj)}: {got.stderr}"
        live = yaml.safe_load(got.stdout)
        assert live["metadata"].get("labels", {}).items() >= obj["metadata"].get("labels", {}).items(), ident(obj)
        for field in ("spec", "data"):
            if field in obj:
                assert {k: live[field].get(k) for k in obj[field]} == obj[field], f"{ident(obj)} {field}"

    again = _kubectl(cluster, "apply", "--validate=false", "-f", "-", stdin=yaml.safe_dump_all(served))
    assert again.returncode == 0, again.stderr
    assert all(line.endswith("unchanged") for line in again.stdout.splitlines()), again.stdout


def test_shipped_crd_names_are_the_ones_the_local_cluster_serves(cluster: Cluster) -> None:
    shipped = {o["metadata"]["name"] for o in render("cluster") if o["kind"] == "CustomResourceDefinition"}
    done = _kubectl(cluster, "get", "crd", "-o", "name")
    assert done.returncode == 0, done.stderr
    assert {line.split("/", 1)[1] for line in done.stdout.split()} == shipped

