"""Merge patch (RFC 7386 appendix A) and JSON patch (RFC 6902 appendix A), pure and through the store."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollouts.cluster.store import SQLiteStore
from rollouts.store.patch import json_equal, json_patch, merge_patch
from rollouts.store.protocol import Conflict, Invalid

MERGE_CASES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(
    ("target", "patch", "expected"), MERGE_CASES, ids=[f"rfc7386-{i + 1}" for i in range(15)]
)
def test_merge_patch_rfc_examples(target: Any, patch: Any, expected: Any) -> None:
    before = copy.deepcopy(target)
    assert merge_patch(target, patch) == expected
    assert target == before


JSON_CASES = [
    (
        "A.1-add-member",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux"}],
        {"baz": "qux", "foo": "bar"},
    ),
    (
        "A.2-add-element",
        {"foo": ["bar", "baz"]},
        [{"op": "add", "path": "/foo/1", "value": "qux"}],
        {"foo": ["bar", "qux", "baz"]},
    ),
    ("A.3-remove-member", {"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    (
        "A.4-remove-element",
        {"foo": ["bar", "qux", "baz"]},
        [{"op": "remove", "path": "/foo/1"}],
        {"foo": ["bar", "baz"]},
    ),
    (
        "A.5-replace",
        {"baz": "qux", "foo": "bar"},
        [{"op": "replace", "path": "/baz", "value": "boo"}],
        {"baz": "boo", "foo": "bar"},
    ),
    (
        "A.6-move-value",
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
    ),
    (
        "A.7-move-element",
        {"foo": ["all", "grass", "cows", "eat"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
        {"foo": ["all", "cows", "eat", "grass"]},
    ),
    (
        "A.8-test-ok",
        {"baz": "qux", "foo": ["a", 2, "c"]},
        [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
        {"baz": "qux", "foo": ["a", 2, "c"]},
    ),
    (
        "A.10-add-nested",
        {"foo": "bar"},
        [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
        {"foo": "bar", "child": {"grandchild": {}}},
    ),
    (
        "A.11-ignore-extra",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
        {"foo": "bar", "baz": "qux"},
    ),
    ("A.14-escapes", {"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
    (
        "A.16-add-array",
        {"foo": ["bar"]},
        [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
        {"foo": ["bar", ["abc", "def"]]},
    ),
    ("copy", {"a": {"b": 1}}, [{"op": "copy", "from": "/a", "path": "/c"}], {"a": {"b": 1}, "c": {"b": 1}}),
    ("replace-root", {"a": 1}, [{"op": "replace", "path": "", "value": [1]}], [1]),
    ("replace-element", {"a": [1, 2, 3]}, [{"op": "replace", "path": "/a/1", "value": 9}], {"a": [1, 9, 3]}),
]


@pytest.mark.parametrize(
    ("doc", "ops", "expected"), [c[1:] for c in JSON_CASES], ids=[c[0] for c in JSON_CASES]
)
def test_json_patch_rfc_examples(doc: Any, ops: list[dict[str, Any]], expected: Any) -> None:
    before = copy.deepcopy(doc)
    assert json_patch(doc, ops) == expected
    assert doc == before


JSON_ERRORS = [
    ("A.9-test-fails", {"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}], "differs"),
    (
        "A.12-missing-parent",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz/bat", "value": "qux"}],
        "does not exist",
    ),
    ("A.15-string-vs-number", {"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}], "differs"),
    ("remove-missing", {"a": 1}, [{"op": "remove", "path": "/b"}], "does not exist"),
    ("replace-missing", {"a": 1}, [{"op": "replace", "path": "/b", "value": 1}], "does not exist"),
    ("index-out-of-range", {"a": [1]}, [{"op": "add", "path": "/a/5", "value": 1}], "out of range"),
    ("leading-zero", {"a": [1, 2]}, [{"op": "remove", "path": "/a/01"}], "not a valid array index"),
    ("move-into-child", {"a": {"b": {}}}, [{"op": "move", "from": "/a", "path": "/a/b/c"}], "into itself"),
    ("unknown-op", {}, [{"op": "frob", "path": "/a"}], 'op "frob" is not one of'),
    ("missing-value", {}, [{"op": "add", "path": "/a"}], 'missing "value"'),
    ("bad-pointer", {}, [{"op": "add", "path": "a", "value": 1}], 'must be empty or start with "/"'),
    ("true-is-not-1", {"a": 1}, [{"op": "test", "path": "/a", "value": True}], "differs"),
]


@pytest.mark.parametrize(
    ("doc", "ops", "message"), [c[1:] for c in JSON_ERRORS], ids=[c[0] for c in JSON_ERRORS]
)
def test_json_patch_errors(doc: Any, ops: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(Invalid, match=message):
        json_patch(doc, ops)


def test_json_patch_is_all_or_nothing() -> None:
    doc = {"a": 1}
    with pytest.raises(Invalid):
        json_patch(doc, [{"op": "add", "path": "/b", "value": 2}, {"op": "test", "path": "/a", "value": 3}])
    assert doc == {"a": 1}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=4), json_values, max_size=5)


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    return value


@given(json_objects, json_objects)
def test_merge_patch_is_idempotent(target: dict[str, Any], patch: dict[str, Any]) -> None:
    once = merge_patch(target, patch)
    assert merge_patch(once, patch) == once
    # Non-object members replace, null members delete.
    for key, value in patch.items():
        if value is None:
            assert key not in once
        elif not isinstance(value, dict):
            assert json_equal(once[key], value)
        elif not isinstance(target.get(key), dict):
            assert once[key] == _strip_nulls(value)


@given(json_objects, st.text(max_size=4), json_values)
def test_json_add_then_remove_round_trips(doc: dict[str, Any], key: str, value: Any) -> None:
    doc.pop(key, None)
    pointer = "/" + key.replace("~", "~0").replace("/", "~1")
    added = json_patch(doc, [{"op": "add", "path": pointer, "value": value}])
    assert json_equal(added[key], value)
    assert json_patch(added, [{"op": "remove", "path": pointer}]) == doc


# ---- through the store --------------------------------------------------------------------------


def test_store_merge_patch_changes_spec_and_generation(store: SQLiteStore, make_rollout) -> None:
    store.create(make_rollout("web"))
    patched = store.patch("Rollout", "default", "web", {"spec": {"replicas": 5, "paused": True}})
    assert patched["spec"]["replicas"] == 5 and patched["spec"]["paused"] is True
    assert patched["metadata"]["generation"] == 2
    patched = store.patch("Rollout", "default", "web", {"metadata": {"labels": {"x": "y"}}})
    assert patched["metadata"]["labels"] == {"app": "web", "x": "y"}
    assert patched["metadata"]["generation"] == 2


def test_store_json_patch(store: SQLiteStore, make_rollout) -> None:
    store.create(make_rollout("web"))
    ops = [
        {"op": "test", "path": "/spec/template/spec/containers/0/image", "value": "web:1"},
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "web:2"},
    ]
    patched = store.patch("Rollout", "default", "web", ops, patch_type="json")
    assert patched["spec"]["template"]["spec"]["containers"][0]["image"] == "web:2"
    with pytest.raises(Invalid, match="differs"):
        store.patch("Rollout", "default", "web", ops, patch_type="json")


def test_store_patch_accepts_json_text(store: SQLiteStore, make_rollout) -> None:
    store.create(make_rollout("web"))
    assert store.patch("Rollout", "default", "web", '{"spec": {"replicas": 1}}')["spec"]["replicas"] == 1


def test_patch_ignores_status_unless_subresource(store: SQLiteStore, make_rollout) -> None:
    store.create(make_rollout("web"))
    ignored = store.patch(
        "Rollout", "default", "web", {"status": {"phase": "Healthy"}, "spec": {"replicas": 2}}
    )
    assert "status" not in ignored
    status = store.patch(
        "Rollout",
        "default",
        "web",
        {"status": {"phase": "Healthy"}, "spec": {"replicas": 9}},
        subresource="status",
    )
    assert status["status"] == {"phase": "Healthy"}
    assert status["spec"]["replicas"] == 2
    assert status["metadata"]["generation"] == 2


def test_patch_resource_version_is_a_precondition(store: SQLiteStore, make_rollout) -> None:
    obj = store.create(make_rollout("web"))
    store.patch("Rollout", "default", "web", {"spec": {"replicas": 2}})
    with pytest.raises(Conflict, match='rollouts "web"'):
        store.patch(
            "Rollout",
            "default",
            "web",
            {"metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]}, "spec": {"replicas": 9}},
        )
    assert store.get("Rollout", "default", "web")["spec"]["replicas"] == 2


def test_patch_may_not_rename(store: SQLiteStore, make_rollout) -> None:
    store.create(make_rollout("web"))
    with pytest.raises(Invalid, match="may not change kind or metadata.name"):
        store.patch("Rollout", "default", "web", {"metadata": {"name": "other"}})


def _deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def _doubling(copies: int) -> list[dict[str, Any]]:
    return [{"op": "add", "path": "/x", "value": ["a" * 1000]}] + [
        {"op": "copy", "from": "/x", "path": "/x/-"} for _ in range(copies)
    ]


HOSTILE_PATCHES = [
    ("merge-deep", "merge", {"spec": _deep(5000)}, "the merge patch is nested deeper than 100 levels"),
    ("json-deep-value", "json", [{"op": "add", "path": "/x", "value": _deep(5000)}],
     "the json patch is nested deeper than 102 levels"),
    ("copy-doubling", "json", _doubling(64), "json patch operation 11 (copy of \"/x\"): the copies would add"),
    ("copy-into-itself", "json", [{"op": "copy", "from": "", "path": "/a"}] * 400, "the copies would add"),
    ("copy-whole-document", "json", [{"op": "copy", "from": "", "path": f"/k{i}"} for i in range(40)],
     "the copies would add more than 50000 values or 1 MiB"),
    ("nesting-adds", "json", [{"op": "add", "path": "/a" * (i + 1), "value": {}} for i in range(300)],
     "the patched document is nested deeper than 200 levels"),
]


@pytest.mark.parametrize(("patch_type", "patch", "message"), [c[1:] for c in HOSTILE_PATCHES],
                         ids=[c[0] for c in HOSTILE_PATCHES])
def test_patch_size_and_depth_are_bounded(patch_type: str, patch: Any, message: str) -> None:
    import time

    doc = {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v" * 100}}
    start = time.monotonic()
    with pytest.raises(Invalid) as raised:
        merge_patch(doc, patch) if patch_type == "merge" else json_patch(doc, patch)
    assert time.monotonic() - start < 1.0
    assert message in str(raised.value)
    assert doc == {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v" * 100}}


def test_a_few_copies_of_a_small_value_are_fine() -> None:
    from rollouts.jsonbounds import measure

    doc = json_patch({"x": ["a"]}, _doubling(10)[1:])
    assert len(doc["x"]) == 11
    assert measure(doc["x"], "x")[0] == 2**11  # each copy doubled it
