"""Pure parts of the API server: strategic merge patch, Kubernetes' human durations, Table detection."""

from __future__ import annotations

from typing import Any

import pytest

from rollouts.cluster.apiserver.patches import server_side_apply, strategic_merge
from rollouts.cluster.apiserver.tables import human_duration, wants_table


@pytest.mark.parametrize(
    ("original", "patch", "expected"),
    [
        ({"a": 1, "b": 2}, {"b": None, "c": 3}, {"a": 1, "c": 3}),
        ({"spec": {"ports": [{"port": 80, "name": "http"}]}}, {"spec": {"ports": [{"port": 80, "name": "web"}]}},
         {"spec": {"ports": [{"port": 80, "name": "web"}]}}),
        ({"ports": [{"containerPort": 80}]}, {"ports": [{"containerPort": 81}]},
         {"ports": [{"containerPort": 80}, {"containerPort": 81}]}),
        ({"volumes": [{"name": "a"}, {"name": "b"}]}, {"volumes": [{"name": "a", "$patch": "delete"}]},
         {"volumes": [{"name": "b"}]}),
        ({"args": ["x", "y"]}, {"args": ["z"]}, {"args": ["z"]}),
        ({"finalizers": ["a"]}, {"finalizers": ["b"]}, {"finalizers": ["a", "b"]}),
        ({"finalizers": ["a", "b"]}, {"$deleteFromPrimitiveList/finalizers": ["a"]}, {"finalizers": ["b"]}),
        ({"m": {"x": 1, "y": 2}}, {"m": {"$patch": "replace", "z": 3}}, {"m": {"z": 3}}),
        ({"env": [{"name": "A"}]}, {"$setElementOrder/env": [{"name": "A"}], "env": [{"name": "A", "value": "1"}]},
         {"env": [{"name": "A", "value": "1"}]}),
    ],
    ids=["null-deletes", "service-ports-by-port", "container-ports-by-containerPort", "delete-directive",
         "unkeyed-list-replaced", "finalizers-merged", "delete-from-primitive-list", "replace-directive",
         "set-element-order-ignored"],
)
def test_strategic_merge(original: dict[str, Any], patch: dict[str, Any], expected: dict[str, Any]) -> None:
    assert strategic_merge(original, patch) == expected


def test_server_side_apply_records_the_manager_once() -> None:
    live = {"metadata": {"name": "x"}, "spec": {"a": 1}}
    once = server_side_apply(live, {"apiVersion": "v1", "spec": {"b": 2}}, "m", "2026-01-01T00:00:00Z")
    twice = server_side_apply(once, {"apiVersion": "v1", "spec": {"b": 3}}, "m", "2026-01-02T00:00:00Z")
    assert twice["spec"] == {"a": 1, "b": 3}
    assert [f["manager"] for f in twice["metadata"]["managedFields"]] == ["m"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(-5, "<invalid>"), (5, "5s"), (119, "119s"), (150, "2m30s"), (600, "10m"), (3 * 3600 + 60, "3h1m"),
     (30 * 3600, "30h"), (3 * 86400 + 3600, "3d1h"), (40 * 86400, "40d"), (800 * 86400, "2y70d")],
    ids=["negative", "seconds", "under-two-minutes", "minutes-seconds", "minutes", "hours-minutes", "hours",
         "days-hours", "days", "years-days"],
)
def test_human_duration_matches_kubernetes(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_wants_table_only_for_meta_tables() -> None:
    assert wants_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
    assert not wants_table("application/json")


# `kubectl create configmap k1 --from-literal=a=b` as kubectl 1.32 sends it.
KUBECTL_CONFIGMAP = bytes.fromhex(
    "6b387300 0a0f 0a027631 1209436f6e6669674d6170"  # envelope, typeMeta v1 ConfigMap
    "121c 0a12 0a026b31 1200 1a00 2200 2a00 3200 3800 4200"  # raw: metadata (name k1, empty fields)
    "1206 0a0161 120162"  # data: a=b
    "1a00 2200"  # contentEncoding, contentType
)


def test_protobuf_configmap_from_kubectl_decodes() -> None:
    from rollouts.cluster.apiserver.protobuf import decode

    assert decode(KUBECTL_CONFIGMAP) == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "k1"},
                                         "data": {"a": "b"}}


@pytest.mark.parametrize("body", [b"{}", b"k8s\x00\x0a\x09\x0a\x02v1\x12\x03Pod", b"k8s\x00\x0a\xff"],
                         ids=["not-an-envelope", "unsupported-kind", "truncated"])
def test_protobuf_refuses_what_it_cannot_read(body: bytes) -> None:
    from rollouts.cluster.apiserver.protobuf import ProtobufError, decode

    with pytest.raises(ProtobufError) as caught:
        decode(body)
    if b"Pod" in body:
        assert "Pod (v1) in protobuf is not supported" in str(caught.value)


def test_server_side_apply_removes_what_the_manager_dropped_and_keeps_other_writers_fields() -> None:
    first = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}},
             "spec": {"containers": [{"name": "app", "image": "i:1", "env": [{"name": "X"}, {"name": "Y"}]},
                                     {"name": "side", "image": "s:1"}]}}
    live = server_side_apply({}, first, "me", "t1")
    live["metadata"]["labels"]["other"] = "kept"  # written by someone else (a merge patch)
    second = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "1"}},
              "spec": {"containers": [{"name": "app", "image": "i:2", "env": [{"name": "X"}]}]}}
    result = server_side_apply(live, second, "me", "t2")
    assert result["metadata"]["labels"] == {"a": "1", "other": "kept"}
    assert result["spec"]["containers"] == [{"name": "app", "image": "i:2", "env": [{"name": "X"}]}]
    fields = result["metadata"]["managedFields"][0]["fieldsV1"]
    assert fields["f:spec"]["f:containers"] == {'k:{"name":"app"}': {".": {}, "f:name": {}, "f:image": {},
                                                                     "f:env": {'k:{"name":"X"}': {".": {},
                                                                                                  "f:name": {}}}}}
    again = server_side_apply(result, second, "me", "t3")
    assert again == result  # the same configuration again changes nothing, time included
