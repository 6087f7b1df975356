"""CustomResourceDefinitions registered by applying them: discovery, the generic verbs on their objects
(patch types, watch, /status, /scale, printer columns), conflicts and invalid definitions, deletion removing
the kind and its objects, registration surviving a restart, Argo's built-in CRDs applied again, and the
same through kubectl and lightkube."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, KubeConfig
from lightkube.generic_resource import create_namespaced_resource

from tests.cluster.conftest import Cluster, rollout, start_cluster
from tests.conftest import require_tool

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
WIDGETS = "/apis/example.com/v1/namespaces/default/widgets"
MERGE = {"Content-Type": "application/merge-patch+json"}
JSON_PATCH = {"Content-Type": "application/json-patch+json"}
STRATEGIC = {"Content-Type": "application/strategic-merge-patch+json"}
APPLY = {"Content-Type": "application/apply-patch+yaml"}
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def crd(plural: str, kind: str, group: str = "example.com", scope: str = "Namespaced",
        **version: Any) -> dict[str, Any]:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": scope,
                     "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": kind + "List",
                               "shortNames": [plural[:2] + "x"]},
                     "versions": [{"name": "v1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": {"type": "object",
                                                                  "x-kubernetes-preserve-unknown-fields": True}},
                                   **version}]}}


WIDGET_CRD = crd("widgets", "Widget", subresources={"status": {}, "scale": {
    "specReplicasPath": ".spec.size", "statusReplicasPath": ".status.size", "labelSelectorPath": ".status.sel"}},
    additionalPrinterColumns=[{"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                              {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}])


def widget(name: str, size: int = 1) -> dict[str, Any]:
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name}, "spec": {"size": size}}


@pytest.fixture(scope="module")
def widgets(cluster: Cluster) -> Cluster:
    with cluster.http() as http:
        done = http.post(CRDS, json=WIDGET_CRD)
        assert done.status_code == 201, done.text
    return cluster


def test_crd_registration_lists_its_resource_in_discovery(widgets: Cluster) -> None:
    with widgets.http() as http:
        groups = {g["name"]: g for g in http.get("/apis").json()["groups"]}
        listing = {r["name"]: r for r in http.get("/apis/example.com/v1").json()["resources"]}
        stored = http.get(f"{CRDS}/widgets.example.com").json()
    assert groups["example.com"]["preferredVersion"]["groupVersion"] == "example.com/v1"
    assert listing["widgets"]["kind"] == "Widget" and listing["widgets"]["namespaced"] is True
    assert listing["widgets"]["shortNames"] == ["wix"] and set(listing) == {"widgets", "widgets/status",
                                                                         "widgets/scale"}
    conditions = {c["type"]: c["status"] for c in stored["status"]["conditions"]}
    assert conditions["Established"] == "True" and stored["status"]["acceptedNames"]["kind"] == "Widget"


def test_custom_objects_are_served_with_every_patch_type_but_strategic(widgets: Cluster) -> None:
    with widgets.http() as http:
        created = http.post(WIDGETS, json=widget("w-patch"))
        merged = http.patch(f"{WIDGETS}/w-patch", json={"spec": {"color": "red"}}, headers=MERGE).json()
        jsoned = http.patch(f"{WIDGETS}/w-patch", json=[{"op": "replace", "path": "/spec/size", "value": 2}],
                            headers=JSON_PATCH).json()
        strategic = http.patch(f"{WIDGETS}/w-patch", json={"spec": {"size": 3}}, headers=STRATEGIC)
        applied = http.patch(f"{WIDGETS}/w-applied", params={"fieldManager": "test"},
                             content=json.dumps(widget("w-applied", 4)), headers=APPLY)
        listed = http.get(WIDGETS).json()
        put = http.put(f"{WIDGETS}/w-patch", json={**jsoned, "spec": {"size": 9}}).json()
    assert created.status_code == 201, created.text
    assert merged["spec"] == {"size": 1, "color": "red"} and jsoned["spec"] == {"size": 2, "color": "red"}
    assert strategic.status_code == 415
    assert applied.status_code in (200, 201) and applied.json()["spec"] == {"size": 4}
    assert listed["kind"] == "WidgetList" and {"w-patch", "w-applied"} <= {i["metadata"]["name"]
                                                                         for i in listed["items"]}
    assert put["spec"] == {"size": 9} and put["metadata"]["generation"] == 4


def test_custom_status_scale_and_printer_columns_come_from_the_crd(widgets: Cluster) -> None:
    with widgets.http() as http:
        http.post(WIDGETS, json={**widget("w-sub", 2), "status": {"size": 7}})
        status = http.patch(f"{WIDGETS}/w-sub/status", json={"status": {"size": 2, "sel": "app=w"}},
                            headers=MERGE).json()
        scale = http.get(f"{WIDGETS}/w-sub/scale").json()
        scaled = http.put(f"{WIDGETS}/w-sub/scale", json={**scale, "spec": {"replicas": 6}}).json()
        after = http.get(f"{WIDGETS}/w-sub").json()
        table = http.get(f"{WIDGETS}/w-sub", headers={"Accept": TABLE}).json()
    assert status["status"] == {"size": 2, "sel": "app=w"}
    assert scale["spec"] == {"replicas": 2} and scale["status"] == {"replicas": 2, "selector": "app=w"}
    assert scaled["spec"] == {"replicas": 6} and after["spec"]["size"] == 6
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Size", "Age"]
    assert table["rows"][0]["cells"][:2] == ["w-sub", 6]


def test_custom_objects_are_watched(widgets: Cluster) -> None:
    with widgets.http() as http:
        start = http.get(WIDGETS).json()["metadata"]["resourceVersion"]
        http.post(WIDGETS, json=widget("w-watch"))
        http.delete(f"{WIDGETS}/w-watch")
        events = http.get(WIDGETS, params={"watch": "1", "resourceVersion": start, "timeoutSeconds": "1"})
    seen = [(e["type"], e["object"]["metadata"]["name"]) for e in map(json.loads, events.text.splitlines())]
    assert [s for s in seen if s[1] == "w-watch"] == [("ADDED", "w-watch"), ("DELETED", "w-watch")]


@pytest.mark.parametrize(("body", "field"), [
    (crd("gadgets", "Rollout"), "spec.names.kind"),
    (crd("ingresses", "Gadget", group="networking.k8s.io"), "spec.names.plural"),
    (crd("wadgets", "Widget"), "spec.names.kind"),
    ({**crd("things", "Thing"), "metadata": {"name": "wrong.example.com"}}, "metadata.name"),
    (crd("things", "Thing", scope="Everywhere"), "spec.scope"),
    (crd("Things", "Thing"), "spec.names.plural"),
    (crd("things", "Thing", group="nodots"), "spec.group"),
    (crd("things", "Thing", name=None), "spec.versions[0].name"),
    (crd("things", "Thing", storage=False), "spec.versions"),
], ids=["kind-built-in", "plural-built-in", "kind-of-another-crd", "name-not-plural-group", "scope", "plural-case",
        "group-without-dot", "version-without-name", "no-storage-version"])
def test_crd_that_cannot_be_served_is_422_naming_the_field(widgets: Cluster, body: dict[str, Any],
                                                           field: str) -> None:
    with widgets.http() as http:
        done = http.post(CRDS, json=body)
        missing = http.get(f"{CRDS}/{body['metadata']['name']}")
    assert done.status_code == 422, done.text
    assert field in [c["field"] for c in done.json()["details"]["causes"]]
    assert missing.status_code == 404


@pytest.mark.parametrize(("change", "field"), [
    ({"spec": {"scope": "Cluster"}}, "spec.scope"),
    ({"spec": {"names": {"kind": "Wodget"}}}, "spec.names.kind"),
], ids=["scope", "kind"])
def test_crd_scope_and_kind_are_immutable(widgets: Cluster, change: dict[str, Any], field: str) -> None:
    with widgets.http() as http:
        done = http.patch(f"{CRDS}/widgets.example.com", json=change, headers=MERGE)
        kept = http.get(f"{CRDS}/widgets.example.com").json()
    assert done.status_code == 422 and [c["field"] for c in done.json()["details"]["causes"]] == [field]
    assert kept["spec"]["scope"] == "Namespaced" and kept["spec"]["names"]["kind"] == "Widget"


def test_deleting_a_crd_removes_its_resource_and_objects(widgets: Cluster) -> None:
    with widgets.http() as http:
        assert http.post(CRDS, json=crd("gizmos", "Gizmo")).status_code == 201
        gizmos = "/apis/example.com/v1/namespaces/default/gizmos"
        assert http.post(gizmos, json={"apiVersion": "example.com/v1", "kind": "Gizmo",
                                       "metadata": {"name": "g1"}}).status_code == 201
        deleted = http.delete(f"{CRDS}/gizmos.example.com")
        after = http.get(gizmos)
        listing = {r["name"] for r in http.get("/apis/example.com/v1").json()["resources"]}
    assert deleted.status_code == 200 and after.status_code == 404
    assert "gizmos" not in listing and "widgets" in listing
    assert widgets.store.list("Gizmo") == []


def test_deleting_every_crd_keeps_argos_built_in_ones(tmp_path: Path) -> None:
    fresh, stop = start_cluster(tmp_path)
    try:
        with fresh.http() as http:
            assert http.post(CRDS, json=crd("gizmos", "Gizmo")).status_code == 201
            deleted = http.delete(CRDS)
            left = {c["metadata"]["name"] for c in http.get(CRDS).json()["items"]}
    finally:
        stop()
    assert deleted.status_code == 200 and [c["metadata"]["name"] for c in deleted.json()["items"]] == [
        "gizmos.example.com"]
    assert left == {"rollouts.argoproj.io", "analysisruns.argoproj.io", "analysistemplates.argoproj.io",
                    "clusteranalysistemplates.argoproj.io", "experiments.argoproj.io"}


def test_argo_crds_applied_again_change_nothing_and_keep_admission(widgets: Cluster) -> None:
    with widgets.http() as http:
        shipped = http.get(f"{CRDS}/rollouts.argoproj.io").json()
        again = copy.deepcopy(shipped)
        again["spec"]["versions"][0]["additionalPrinterColumns"] = []
        replaced = http.put(f"{CRDS}/rollouts.argoproj.io", json=again)
        listing = {r["name"] for r in http.get("/apis/argoproj.io/v1alpha1").json()["resources"]}
        bad = rollout("ro-admitted")
        bad["spec"]["strategy"] = {"canary": {"steps": [{"setWeight": 500}]}}
        refused = http.post("/apis/argoproj.io/v1alpha1/namespaces/default/rollouts", json=bad)
        deleted = http.delete(f"{CRDS}/rollouts.argoproj.io")
    assert replaced.status_code == 200, replaced.text
    assert {"rollouts", "rollouts/status", "rollouts/scale", "analysisruns"} <= listing
    assert refused.status_code == 422 and deleted.status_code == 405


def test_cluster_scoped_custom_resource(widgets: Cluster) -> None:
    with widgets.http() as http:
        assert http.post(CRDS, json=crd("realms", "Realm", scope="Cluster")).status_code == 201
        created = http.post("/apis/example.com/v1/realms", json={"apiVersion": "example.com/v1", "kind": "Realm",
                                                                   "metadata": {"name": "r1", "namespace": "x"}})
        inside = http.get("/apis/example.com/v1/namespaces/default/realms/r1")
    assert created.status_code == 201 and "namespace" not in created.json()["metadata"]
    assert inside.status_code == 404


def test_registered_crds_survive_a_restart(tmp_path: Path) -> None:
    first, stop = start_cluster(tmp_path)
    with first.http() as http:
        assert http.post(CRDS, json=WIDGET_CRD).status_code == 201
        assert http.post(WIDGETS, json=widget("w-kept", 5)).status_code == 201
    stop()
    second, stop = start_cluster(tmp_path)
    try:
        with second.http() as http:
            kept = http.get(f"{WIDGETS}/w-kept")
            crds = {c["metadata"]["name"] for c in http.get(CRDS).json()["items"]}
    finally:
        stop()
    assert kept.status_code == 200 and kept.json()["spec"] == {"size": 5}
    assert crds == {"widgets.example.com", "rollouts.argoproj.io", "analysisruns.argoproj.io",
                    "analysistemplates.argoproj.io", "clusteranalysistemplates.argoproj.io",
                    "experiments.argoproj.io"}


@pytest.fixture(scope="module")
def kubectl_env(widgets: Cluster) -> Iterator[dict[str, str]]:
    require_tool("kubectl", "apt-get install kubernetes-client (Debian)")
    yield {**os.environ, "KUBECONFIG": str(widgets.kubeconfig), "HOME": str(widgets.home)}


def _kubectl(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(["kubectl", *args], env=env, input=stdin, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def test_kubectl_apply_registers_a_crd_and_serves_its_objects(widgets: Cluster, kubectl_env: dict[str, str]) -> None:
    sprocket = crd("sprockets", "Sprocket", additionalPrinterColumns=[
        {"name": "Teeth", "type": "integer", "jsonPath": ".spec.teeth"}])
    assert "created" in _kubectl(kubectl_env, "apply", "-f", "-", stdin=json.dumps(sprocket))
    resources = _kubectl(kubectl_env, "api-resources", "--api-group", "example.com", "--no-headers")
    assert ["sprockets", "spx", "example.com/v1", "true", "Sprocket"] in [r.split() for r in resources.splitlines()]
    obj = {"apiVersion": "example.com/v1", "kind": "Sprocket", "metadata": {"name": "s1"}, "spec": {"teeth": 12}}
    assert "sprocket.example.com/s1 created" in _kubectl(kubectl_env, "apply", "-f", "-", stdin=json.dumps(obj))
    assert "unchanged" in _kubectl(kubectl_env, "apply", "-f", "-", stdin=json.dumps(obj))
    obj["spec"]["teeth"] = 14
    assert "configured" in _kubectl(kubectl_env, "apply", "-f", "-", stdin=json.dumps(obj))
    rows = [line.split() for line in _kubectl(kubectl_env, "get", "spx").splitlines()]
    assert rows[0] == ["NAME", "TEETH"] and rows[1] == ["s1", "14"]
    assert "unchanged" in _kubectl(kubectl_env, "apply", "-f", "-", stdin=json.dumps(sprocket))
    _kubectl(kubectl_env, "delete", "crd", "sprockets.example.com")
    done = subprocess.run(["kubectl", "get", "sprockets"], env=kubectl_env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0 and "sprockets" in done.stderr


def test_lightkube_serves_a_registered_custom_resource(widgets: Cluster) -> None:
    Widget = create_namespaced_resource("example.com", "v1", "Widget", "widgets")
    client = Client(config=KubeConfig.from_file(widgets.kubeconfig))
    try:
        created = client.create(Widget(metadata={"name": "w-lk"}, spec={"size": 3}))  # type: ignore[call-arg]
        got = client.get(Widget, "w-lk")
        names = [w.metadata.name for w in client.list(Widget)]  # type: ignore[union-attr]
        client.delete(Widget, "w-lk")
    finally:
        client.close()
    assert created.spec == {"size": 3} and got.metadata.uid == created.metadata.uid  # type: ignore[attr-defined,union-attr]
    assert "w-lk" in names
