"""Kubernetes REST conventions of the local API server, over real HTTPS with httpx: discovery, auth,
Status errors, object semantics, the status subresource, selectors, paging, tables, CRDs, scale, logs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from rollouts.cluster.apiserver.app import LIST_SNAPSHOTS
from tests.cluster.conftest import ROLLOUT_API, Cluster, rollout

RO = f"{ROLLOUT_API}/namespaces/default/rollouts"
CM = "/api/v1/namespaces/default/configmaps"


def _configmap(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels or {}},
            "data": data}


# ---- discovery and auth -------------------------------------------------------------------------------


def test_discovery_version_and_groups(cluster: Cluster) -> None:
    with cluster.http() as http:
        assert http.get("/version").json()["major"] == "1"
        assert http.get("/api").json()["versions"] == ["v1"]
        groups = {g["name"] for g in http.get("/apis").json()["groups"]}
        assert {"apps", "argoproj.io", "batch", "networking.k8s.io", "coordination.k8s.io",
                "apiextensions.k8s.io"} <= groups
        assert http.get("/apis/argoproj.io").json()["preferredVersion"]["version"] == "v1alpha1"


@pytest.mark.parametrize(
    ("group_version", "name", "short", "namespaced", "subresources"),
    [
        ("argoproj.io/v1alpha1", "rollouts", ["ro"], True, {"rollouts/status", "rollouts/scale"}),
        ("argoproj.io/v1alpha1", "analysisruns", ["ar"], True, {"analysisruns/status"}),
        ("argoproj.io/v1alpha1", "analysistemplates", ["at"], True, set()),
        ("argoproj.io/v1alpha1", "clusteranalysistemplates", ["cat"], False, set()),
        ("v1", "pods", ["po"], True, {"pods/status", "pods/log"}),
        ("v1", "namespaces", ["ns"], False, {"namespaces/status"}),
        ("apps/v1", "replicasets", ["rs"], True, {"replicasets/status", "replicasets/scale"}),
    ],
    ids=["rollouts", "analysisruns", "analysistemplates", "clusteranalysistemplates", "pods", "namespaces",
         "replicasets"],
)
def test_discovery_resource_list_has_verbs_short_names_and_subresources(
    cluster: Cluster, group_version: str, name: str, short: list[str], namespaced: bool, subresources: set[str]
) -> None:
    path = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    with cluster.http() as http:
        listed = {r["name"]: r for r in http.get(path).json()["resources"]}
    assert listed[name]["shortNames"] == short
    assert listed[name]["namespaced"] is namespaced
    assert {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"} <= set(
        listed[name]["verbs"])
    assert {n for n in listed if n.startswith(name + "/")} == subresources


@pytest.mark.parametrize("token", [None, "wrong-token"], ids=["no-token", "wrong-token"])
def test_unauthorized_without_the_kubeconfig_token(cluster: Cluster, token: str | None) -> None:
    with cluster.http(token) as http:
        answer = http.get("/api/v1/namespaces")
        assert http.get("/healthz").status_code == 200
    assert answer.status_code == 401
    assert answer.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                             "message": "Unauthorized", "reason": "Unauthorized", "code": 401}


# ---- errors and object semantics ------------------------------------------------------------------------


def test_errors_are_status_objects_with_reasons_and_codes(cluster: Cluster) -> None:
    with cluster.http() as http:
        assert http.post(CM, json=_configmap("errors-cm")).status_code == 201
        cases = {
            "NotFound": http.get(f"{CM}/absent"),
            "AlreadyExists": http.post(CM, json=_configmap("errors-cm")),
            "BadRequest": http.get(CM, params={"labelSelector": "a in (b"}),
            "Unknown resource": http.get("/api/v1/namespaces/default/widgets"),
            "Outside its namespace": http.get("/api/v1/configmaps/errors-cm"),
        }
    codes = {reason: (answer.status_code, answer.json()["reason"]) for reason, answer in cases.items()}
    assert codes == {"NotFound": (404, "NotFound"), "AlreadyExists": (409, "AlreadyExists"),
                     "BadRequest": (400, "BadRequest"), "Unknown resource": (404, "NotFound"),
                     "Outside its namespace": (404, "NotFound")}
    assert cases["NotFound"].json()["details"] == {"kind": "configmaps", "name": "absent"}


def test_stale_put_is_409_conflict(cluster: Cluster) -> None:
    with cluster.http() as http:
        first = http.post(CM, json=_configmap("stale-cm", x="1")).json()
        fresh = dict(first, data={"x": "2"})
        assert http.put(f"{CM}/stale-cm", json=fresh).status_code == 200
        stale = dict(first, data={"x": "3"})
        answer = http.put(f"{CM}/stale-cm", json=stale)
        unconditional = dict(first, data={"x": "4"})
        unconditional["metadata"] = {k: v for k, v in first["metadata"].items() if k != "resourceVersion"}
        forced = http.put(f"{CM}/stale-cm", json=unconditional)
    assert (answer.status_code, answer.json()["reason"]) == (409, "Conflict")
    assert forced.status_code == 200 and forced.json()["data"] == {"x": "4"}


def test_invalid_rollout_is_422_with_field_causes_and_nothing_stored(cluster: Cluster) -> None:
    bad = rollout("invalid-ro")
    bad["spec"]["strategy"]["canary"]["steps"][0]["setWeight"] = 140
    with cluster.http() as http:
        answer = http.post(RO, json=bad)
        after = http.get(f"{RO}/invalid-ro")
    assert answer.status_code == 422
    status = answer.json()
    assert status["reason"] == "Invalid"
    assert {"reason": "FieldValueInvalid", "field": "spec.strategy.canary.steps[0].setWeight",
            "message": "140 is not between 0 and 100"} in status["details"]["causes"]
    assert "spec.strategy.canary.steps[0].setWeight: 140 is not between 0 and 100" in status["message"]
    assert after.status_code == 404


def test_invalid_update_changes_nothing(cluster: Cluster) -> None:
    with cluster.http() as http:
        created = http.post(RO, json=rollout("invalid-update-ro")).json()
        bad = json.loads(json.dumps(created))
        bad["spec"]["strategy"]["canary"]["steps"][0]["setWeight"] = -5
        answer = http.put(f"{RO}/invalid-update-ro", json=bad)
        after = http.get(f"{RO}/invalid-update-ro").json()
    assert answer.status_code == 422
    assert after["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


def test_object_semantics_uid_timestamp_and_generation_on_spec_changes_only(cluster: Cluster) -> None:
    with cluster.http() as http:
        created = http.post(RO, json=rollout("gen-ro")).json()
        meta = created["metadata"]
        assert meta["uid"] and meta["creationTimestamp"].endswith("Z") and meta["generation"] == 1
        labelled = http.patch(f"{RO}/gen-ro", json={"metadata": {"labels": {"team": "a"}}},
                              headers={"Content-Type": "application/merge-patch+json"}).json()
        status = http.patch(f"{RO}/gen-ro/status", json={"status": {"phase": "Healthy"}},
                            headers={"Content-Type": "application/merge-patch+json"}).json()
        spec = http.patch(f"{RO}/gen-ro", json={"spec": {"replicas": 5}},
                          headers={"Content-Type": "application/merge-patch+json"}).json()
    assert labelled["metadata"]["generation"] == 1
    assert status["metadata"]["generation"] == 1 and status["status"] == {"phase": "Healthy"}
    assert spec["metadata"]["generation"] == 2
    assert int(spec["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])


def test_status_only_through_the_status_subresource(cluster: Cluster) -> None:
    body = rollout("status-ro")
    body["status"] = {"phase": "Degraded"}
    with cluster.http() as http:
        created = http.post(RO, json=body).json()
        main = http.put(f"{RO}/status-ro", json=dict(created, status={"phase": "Healthy"})).json()
        through_status = http.put(f"{RO}/status-ro/status",
                                  json=dict(main, status={"phase": "Paused"}, spec={"replicas": 9})).json()
        # A ConfigMap-like kind without the subresource has no /status at all.
        missing = http.get(f"{CM}/anything/status")
    assert "status" not in created
    assert "status" not in main
    assert through_status["status"] == {"phase": "Paused"} and through_status["spec"]["replicas"] == 2
    assert missing.status_code == 404


def test_namespace_created_on_first_object_and_body_namespace_must_match(cluster: Cluster) -> None:
    with cluster.http() as http:
        created = http.post("/api/v1/namespaces/team-x/configmaps", json=_configmap("ns-cm"))
        namespace = http.get("/api/v1/namespaces/team-x")
        wrong = dict(_configmap("ns-cm2"))
        wrong["metadata"]["namespace"] = "other"
        mismatch = http.post("/api/v1/namespaces/team-x/configmaps", json=wrong)
    assert created.status_code == 201 and created.json()["metadata"]["namespace"] == "team-x"
    assert namespace.json()["status"] == {"phase": "Active"}
    assert mismatch.status_code == 400


# ---- list ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def labelled(cluster: Cluster) -> None:
    objects = [
        _configmap("sel-a", {"app": "web", "tier": "front"}),
        _configmap("sel-b", {"app": "web", "tier": "back"}),
        _configmap("sel-c", {"app": "db"}),
        _configmap("sel-d", {"other": "x"}),
    ]
    with cluster.http() as http:
        for obj in objects:
            assert http.post("/api/v1/namespaces/selectors/configmaps", json=obj).status_code == 201


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", ["sel-a", "sel-b"]),
        ("app==db", ["sel-c"]),
        ("app!=web", ["sel-c", "sel-d"]),
        ("tier in (front,side)", ["sel-a"]),
        ("app notin (web)", ["sel-c", "sel-d"]),
        ("tier", ["sel-a", "sel-b"]),
        ("!tier", ["sel-c", "sel-d"]),
        ("app=web,tier=back", ["sel-b"]),
    ],
    ids=["equals", "double-equals", "not-equals", "in", "notin", "exists", "not-exists", "and"],
)
def test_list_label_selector(cluster: Cluster, labelled: None, selector: str, expected: list[str]) -> None:
    with cluster.http() as http:
        found = http.get("/api/v1/namespaces/selectors/configmaps", params={"labelSelector": selector}).json()
    assert [i["metadata"]["name"] for i in found["items"]] == expected


@pytest.mark.parametrize(
    ("path", "selector", "expected"),
    [
        ("/api/v1/configmaps", "metadata.name=sel-c", ["sel-c"]),
        ("/api/v1/configmaps", "metadata.namespace=selectors,metadata.name!=sel-a", ["sel-b", "sel-c", "sel-d"]),
        ("/api/v1/namespaces/selectors/pods", "status.phase=Running", ["pod-running"]),
        ("/api/v1/namespaces/selectors/events", "involvedObject.name=pod-running", ["pod-running"]),
    ],
    ids=["metadata.name", "metadata.namespace", "status.phase", "involvedObject.name"],
)
def test_list_field_selector(cluster: Cluster, labelled: None, path: str, selector: str, expected: list[str]) -> None:
    for name, phase in (("pod-running", "Running"), ("pod-pending", "Pending")):
        try:
            cluster.store.get("Pod", "selectors", name)
        except Exception:
            cluster.store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "selectors"},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}, "status": {"phase": phase}})
            cluster.store.record_event({"kind": "Pod", "name": name, "namespace": "selectors"}, "Normal", "Started",
                                       f"{name} started")
    with cluster.http() as http:
        found = http.get(path, params={"fieldSelector": selector}).json()
    names = [i["metadata"]["name"] if i["kind"] != "Event" else i["involvedObject"]["name"] for i in found["items"]]
    assert names == expected


def test_list_paging_with_limit_and_continue_keeps_the_first_pages_version(cluster: Cluster) -> None:
    def read_pages(http: Any, namespace: str, between: Callable[[], None]) -> tuple[list[list[str]], set[str]]:
        pages, token, versions = [], None, set()
        while True:
            params = {"limit": "3", **({"continue": token} if token else {})}
            page = http.get(f"/api/v1/namespaces/{namespace}/configmaps", params=params).json()
            pages.append([i["metadata"]["name"] for i in page["items"]])
            versions.add(page["metadata"]["resourceVersion"])
            token = page["metadata"].get("continue")
            if not token:
                return pages, versions
            if len(pages) == 1:
                assert page["metadata"]["remainingItemCount"] == 4
                between()

    with cluster.http() as http:
        for namespace in ("paging", "paging-evicted"):
            for n in range(7):
                http.post(f"/api/v1/namespaces/{namespace}/configmaps", json=_configmap(f"page-{n}"))

        def change() -> None:
            http.post("/api/v1/namespaces/paging/configmaps", json=_configmap("page-9"))
            http.put("/api/v1/namespaces/paging/configmaps/page-4", json={**_configmap("page-4"), "data": {"k": "new"}})

        # The next pages are cut from the first page's snapshot, as kube-apiserver serves them: what changed
        # in between comes through a watch from the list's resourceVersion.
        pages, versions = read_pages(http, "paging", change)
        assert pages == [["page-0", "page-1", "page-2"], ["page-3", "page-4", "page-5"], ["page-6"]]
        assert len(versions) == 1
        whole = http.get("/api/v1/namespaces/paging/configmaps").json()
        assert int(whole["metadata"]["resourceVersion"]) > int(versions.pop())
        assert "page-9" in [i["metadata"]["name"] for i in whole["items"]]

        def crowd_out() -> None:
            # More paged lists begun than the server keeps snapshots of: this one's is dropped, and its next
            # pages continue over the current contents, still after the last key served.
            http.post("/api/v1/namespaces/paging-evicted/configmaps", json=_configmap("page-9"))
            for n in range(LIST_SNAPSHOTS + 1):
                http.get("/api/v1/namespaces/paging/configmaps", params={"limit": "1", "labelSelector": f"n!={n}"})

        pages, versions = read_pages(http, "paging-evicted", crowd_out)
        assert pages == [["page-0", "page-1", "page-2"], ["page-3", "page-4", "page-5"], ["page-6", "page-9"]]
        assert len(versions) == 1


# ---- tables, CRDs, scale, logs --------------------------------------------------------------------------

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def test_table_response_uses_argo_printer_columns(cluster: Cluster) -> None:
    with cluster.http() as http:
        http.post(RO, json=rollout("table-ro", replicas=3))
        table = http.get(RO, headers={"Accept": TABLE}, params={"fieldSelector": "metadata.name=table-ro"}).json()
        single = http.get(f"{RO}/table-ro", headers={"Accept": TABLE}).json()
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Desired", "Current", "Up-to-date",
                                                               "Available", "Age"]
    cells = table["rows"][0]["cells"]
    assert cells[:2] == ["table-ro", 3] and cells[5].endswith("s")
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert single["rows"][0]["cells"][0] == "table-ro"


def test_crd_list_has_argo_kinds_with_printer_columns(cluster: Cluster) -> None:
    with cluster.http() as http:
        crds = http.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions").json()
        one = http.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/rollouts.argoproj.io").json()
        write = http.delete("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/rollouts.argoproj.io")
        watch = http.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                         params={"watch": "1", "timeoutSeconds": "1"})
    assert {c["metadata"]["name"] for c in crds["items"]} >= {
        "rollouts.argoproj.io", "analysisruns.argoproj.io", "analysistemplates.argoproj.io",
        "clusteranalysistemplates.argoproj.io", "experiments.argoproj.io"}
    version = one["spec"]["versions"][0]
    assert version["subresources"]["scale"]["specReplicasPath"] == ".spec.replicas"
    assert [c["name"] for c in version["additionalPrinterColumns"]][:2] == ["Desired", "Current"]
    # Argo's kinds are built in: their CRDs stay; the list is watchable like any stored kind.
    assert write.status_code == 405 and "built into this server" in write.json()["message"]
    assert watch.status_code == 200 and '"rollouts.argoproj.io"' in watch.text


def test_rollout_scale_subresource(cluster: Cluster) -> None:
    with cluster.http() as http:
        http.post(RO, json=rollout("scale-ro", replicas=2))
        scale = http.get(f"{RO}/scale-ro/scale").json()
        patched = http.patch(f"{RO}/scale-ro/scale", json={"spec": {"replicas": 4}},
                             headers={"Content-Type": "application/merge-patch+json"}).json()
        put = http.put(f"{RO}/scale-ro/scale", json=dict(patched, spec={"replicas": 1}))
        negative = http.put(f"{RO}/scale-ro/scale", json={"spec": {"replicas": -1}})
        after = http.get(f"{RO}/scale-ro").json()
    assert (scale["kind"], scale["spec"]) == ("Scale", {"replicas": 2})
    assert patched["spec"] == {"replicas": 4}
    assert put.status_code == 200 and after["spec"]["replicas"] == 1
    assert negative.status_code == 422


def test_pod_log_and_tail(cluster: Cluster) -> None:
    cluster.store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "log-pod"},
                          "spec": {"containers": [{"name": "c", "image": "i"}]}})
    (cluster.home / "logs").mkdir(exist_ok=True)
    (cluster.home / "logs" / "log-pod.log").write_text("one\ntwo\nthree\n")
    with cluster.http() as http:
        whole = http.get("/api/v1/namespaces/default/pods/log-pod/log")
        tail = http.get("/api/v1/namespaces/default/pods/log-pod/log", params={"tailLines": "1"})
    assert whole.text == "one\ntwo\nthree\n"
    assert tail.text == "three\n"


def test_pod_log_follow_streams_appended_lines(cluster: Cluster) -> None:
    cluster.store.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "follow-pod"},
                          "spec": {"containers": [{"name": "c", "image": "i"}]}})
    (cluster.home / "logs").mkdir(exist_ok=True)
    path = cluster.home / "logs" / "follow-pod.log"
    path.write_text("first\n")
    seen = []
    with cluster.http() as http, http.stream("GET", "/api/v1/namespaces/default/pods/follow-pod/log",
                                             params={"follow": "true"}) as stream:
        for line in stream.iter_lines():
            seen.append(line)
            if line == "first":
                with path.open("a") as out:
                    out.write("second\n")
            if line == "second":
                break
    assert seen == ["first", "second"]


def test_dry_run_all_checks_and_changes_nothing(cluster: Cluster) -> None:
    merge = {"Content-Type": "application/merge-patch+json"}
    with cluster.http() as http:
        rehearsed = http.post(CM, json=_configmap("dry-cm"), params={"dryRun": "All"})
        absent = http.get(f"{CM}/dry-cm")
        stored = http.post(CM, json=_configmap("dry-cm", x="1")).json()
        patched = http.patch(f"{CM}/dry-cm", json={"data": {"x": "2"}}, headers=merge, params={"dryRun": "All"})
        deleted = http.delete(f"{CM}/dry-cm", params={"dryRun": "All"})
        after = http.get(f"{CM}/dry-cm").json()
        invalid = http.post(RO, json={**rollout("dry-ro"), "spec": {}}, params={"dryRun": "All"})
    assert rehearsed.status_code == 201 and absent.status_code == 404
    assert patched.json()["data"] == {"x": "2"} and deleted.status_code == 200
    assert after["data"] == {"x": "1"}
    assert after["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
    assert invalid.status_code == 422


def test_openapi_v3_declares_field_validation_for_every_kind(cluster: Cluster) -> None:
    with cluster.http() as http:
        root = http.get("/openapi/v3").json()["paths"]
        doc = http.get("/" + root["apis/argoproj.io/v1alpha1"]["serverRelativeURL"].lstrip("/")).json()
        missing = http.get("/openapi/v3/apis/nosuch.io/v1")
        v2 = http.get("/openapi/v2")
    assert {"api/v1", "apis/apps/v1", "apis/argoproj.io/v1alpha1"} <= set(root)
    patch = doc["paths"]["/apis/argoproj.io/v1alpha1/namespaces/{namespace}/rollouts/{name}"]["patch"]
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "argoproj.io", "version": "v1alpha1",
                                                        "kind": "Rollout"}
    assert missing.status_code == 404 and v2.status_code == 404


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"{not json"),
        ("application/json", b"[" * 100_000 + b"]" * 100_000),
        ("application/apply-patch+yaml", b"a: &x [1, 2]\nb: [*x, *x, *x]\n"),
    ],
    ids=["malformed-json", "deeply-nested-json", "yaml-aliases"],
)
def test_hostile_bodies_are_400_bad_request(cluster: Cluster, content_type: str, body: bytes) -> None:
    with cluster.http() as http:
        answer = http.patch(f"{CM}/anything", params={"fieldManager": "t"}, content=body,
                            headers={"Content-Type": content_type})
    assert (answer.status_code, answer.json()["reason"]) == (400, "BadRequest")


def test_invalid_name_is_422_with_the_metadata_name_cause(cluster: Cluster) -> None:
    with cluster.http() as http:
        answer = http.post(CM, json=_configmap("Bad_Name"))
    status = answer.json()
    assert (answer.status_code, status["reason"]) == (422, "Invalid")
    assert [c["field"] for c in status["details"]["causes"]] == ["metadata.name"]


def _counter(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_by_verb_resource_and_code_and_writes_are_logged(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    created = 'apiserver_request_total{code="201",group="",resource="configmaps",subresource="",verb="create"}'
    missing = 'apiserver_request_total{code="404",group="",resource="configmaps",subresource="",verb="get"}'
    with caplog.at_level("INFO", logger="rollouts.cluster.apiserver.app"), cluster.http() as http:
        before = http.get("/metrics").text
        http.post(CM, json=_configmap("metrics-cm"))
        http.get(f"{CM}/metrics-cm")
        http.get(f"{CM}/metrics-absent")
        after = http.get("/metrics").text
        anonymous = cluster.http(None).get("/metrics")
    assert _counter(after, created) == _counter(before, created) + 1
    assert _counter(after, missing) == _counter(before, missing) + 1
    assert anonymous.status_code == 401
    assert any("create configmaps default/metrics-cm -> 201" in r.getMessage() for r in caplog.records)
