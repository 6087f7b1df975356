"""Label and field selectors: table-driven parsing and matching, and their use in store.list."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollouts.cluster.store import SQLiteStore
from rollouts.store.protocol import Invalid
from rollouts.store.selectors import label_selector_from_spec, parse_field_selector, parse_label_selector

LABELS = {"app": "web", "tier": "frontend", "example.com/team": "blue", "empty": ""}

LABEL_CASES = [
    ("empty-matches-all", "", True),
    ("equals", "app=web", True),
    ("double-equals", "app==web", True),
    ("equals-other-value", "app=api", False),
    ("equals-missing-key", "zone=a", False),
    ("not-equals", "app!=api", True),
    ("not-equals-same", "app!=web", False),
    ("not-equals-missing-key-matches", "zone!=a", True),
    ("exists", "tier", True),
    ("exists-missing", "zone", False),
    ("not-exists", "!zone", True),
    ("not-exists-present", "!tier", False),
    ("in", "tier in (frontend,backend)", True),
    ("in-miss", "tier in (backend, db)", False),
    ("in-missing-key", "zone in (a)", False),
    ("notin", "tier notin (backend)", True),
    ("notin-hit", "tier notin (backend,frontend)", False),
    ("notin-missing-key-matches", "zone notin (a)", True),
    ("prefixed-key", "example.com/team=blue", True),
    ("empty-value", "empty=", True),
    ("empty-value-in-set", "empty in (,x)", True),
    ("and-all", "app=web,tier!=backend,!zone,example.com/team", True),
    ("and-one-fails", "app=web,tier=backend", False),
    ("whitespace", "  app = web ,  tier  in ( frontend )  ", True),
]


@pytest.mark.parametrize(
    ("selector", "expected"), [c[1:] for c in LABEL_CASES], ids=[c[0] for c in LABEL_CASES]
)
def test_label_selector_matching(selector: str, expected: bool) -> None:
    assert parse_label_selector(selector).matches(LABELS) is expected


LABEL_ERRORS = [
    ("dangling-comma", "app=web,", "expected a label key"),
    ("double-operator", "app==!web", "expected"),
    ("in-without-paren", "app in web", "expected '\\(' after 'in'"),
    ("unclosed-set", "app in (a,b", "expected ',' or '\\)'"),
    ("bad-key", "-app=web", 'key "-app" must be'),
    ("bad-prefix", "Example.com/team=x", 'key prefix "Example.com"'),
    ("long-value", "app=" + "v" * 64, "value"),
    ("bad-value", "app=we b", "expected ',' between requirements"),
    ("lone-bang", "!", "a label key after '!'"),
]


@pytest.mark.parametrize(
    ("selector", "message"), [c[1:] for c in LABEL_ERRORS], ids=[c[0] for c in LABEL_ERRORS]
)
def test_label_selector_errors(selector: str, message: str) -> None:
    with pytest.raises(Invalid, match=message) as info:
        parse_label_selector(selector)
    assert selector in str(info.value)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"matchLabels": {"b": "2", "a": "1"}}, "a=1,b=2"),
        ({"matchExpressions": [{"key": "t", "operator": "In", "values": ["x", "y"]}]}, "t in (x,y)"),
        ({"matchExpressions": [{"key": "t", "operator": "NotIn", "values": ["x"]}]}, "t notin (x)"),
        ({"matchExpressions": [{"key": "t", "operator": "Exists"}]}, "t"),
        ({"matchExpressions": [{"key": "t", "operator": "DoesNotExist"}]}, "!t"),
    ],
    ids=["match-labels-sorted", "in", "notin", "exists", "does-not-exist"],
)
def test_label_selector_from_spec(spec: dict, expected: str) -> None:
    rendered = label_selector_from_spec(spec)
    assert rendered == expected
    parse_label_selector(rendered)


label_text = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)


@given(st.dictionaries(label_text, label_text, max_size=4), label_text, label_text)
def test_equality_and_inequality_are_complements(labels: dict[str, str], key: str, value: str) -> None:
    eq = parse_label_selector(f"{key}={value}").matches(labels)
    ne = parse_label_selector(f"{key}!={value}").matches(labels)
    assert eq is (labels.get(key) == value)
    assert eq is not ne


EVENT = {
    "metadata": {"name": "e1", "namespace": "ns"},
    "involvedObject": {"kind": "Rollout", "name": "web"},
    "reason": "RolloutPaused",
    "type": "Normal",
}

FIELD_CASES = [
    ("name", "metadata.name=e1", True),
    ("name-double-equals", "metadata.name==e1", True),
    ("name-miss", "metadata.name=e2", False),
    ("involved-name", "involvedObject.name=web", True),
    ("involved-kind", "involvedObject.kind=Rollout", True),
    ("involved-kind-miss", "involvedObject.kind=AnalysisRun", False),
    ("not-equal", "reason!=RolloutAborted", True),
    ("and", "involvedObject.name=web,type=Warning", False),
    ("missing-field-is-empty", "status.phase=", True),
]


@pytest.mark.parametrize(
    ("selector", "expected"), [c[1:] for c in FIELD_CASES], ids=[c[0] for c in FIELD_CASES]
)
def test_field_selector_matching(selector: str, expected: bool) -> None:
    assert parse_field_selector(selector).matches(EVENT) is expected


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("spec.replicas=3", 'field "spec.replicas" is not supported; valid fields: metadata.name'),
        ("metadata.name", "is not of the form field=value"),
    ],
    ids=["unsupported-field", "no-operator"],
)
def test_field_selector_errors(selector: str, message: str) -> None:
    with pytest.raises(Invalid, match=message):
        parse_field_selector(selector)


def _names(objs: list[dict]) -> list[str]:
    return [o["metadata"]["name"] for o in objs]


def test_store_list_filters(store: SQLiteStore, make_rollout) -> None:
    for name, ns, labels in [
        ("a", "default", {"app": "a", "tier": "web"}),
        ("b", "default", {"app": "b", "tier": "db"}),
        ("c", "prod", {"app": "c", "tier": "web"}),
        ("d", "prod", {}),
    ]:
        obj = make_rollout(name, namespace=ns)
        obj["metadata"]["labels"] = labels
        store.create(obj)
    store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {}})
    assert _names(store.list("Rollout")) == ["a", "b", "c", "d"]
    assert _names(store.list("Rollout", "prod")) == ["c", "d"]
    assert _names(store.list("Rollout", label_selector="tier=web")) == ["a", "c"]
    assert _names(store.list("Rollout", label_selector="tier!=web")) == ["b", "d"]
    assert _names(store.list("Rollout", label_selector="!tier")) == ["d"]
    assert _names(store.list("Rollout", "default", label_selector="tier in (web,db)")) == ["a", "b"]
    assert _names(store.list("Rollout", field_selector="metadata.name=c")) == ["c"]
    assert _names(store.list("Rollout", "default", field_selector="metadata.name=c")) == []
    assert store.list("Secret") == []
    objs, version = store.list_with_version("Rollout", "prod")
    assert _names(objs) == ["c", "d"] and version == store.current_version() == 5
