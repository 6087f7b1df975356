"""setHeaderRoute `prefix` matches become the canary Ingress's `canary-by-header-pattern`: the prefix is
literal text (escaped), so the local router (RE2) sends exactly the requests whose header starts with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rollouts.cluster.store import SQLiteStore
from rollouts.controller.apply import apply_action
from rollouts.engine import types as t
from rollouts.runtime.local.routing import build_table, choose_backend
from rollouts.spec.rollout import HeaderRoutingMatch, Rollout, StringMatch

NGINX = "nginx.ingress.kubernetes.io"
STABLE_INGRESS: dict[str, Any] = {
    "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
    "metadata": {"name": "shop", "namespace": "ns"},
    "spec": {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
        "service": {"name": "shop-stable", "port": {"number": 80}}}}]}}]},
}
ROLLOUT = Rollout.model_validate({
    "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "shop", "namespace": "ns"},
    "spec": {"selector": {"matchLabels": {"app": "shop"}},
             "template": {"metadata": {"labels": {"app": "shop"}}, "spec": {"containers": [{"name": "shop", "image": "shop:1"}]}},
             "strategy": {"canary": {"canaryService": "shop-canary", "stableService": "shop-stable",
                                     "trafficRouting": {"nginx": {"stableIngress": "shop"}}}}},
})


@pytest.mark.parametrize(
    ("prefix", "header", "to_canary"),
    [("a.b", "a.b-123", True), ("a.b", "axb-123", False), ("v(2", "v(2)", True), ("v(2", "v2", False),
     ("1+1", "1+1=2", True), ("1+1", "11", False), ("[beta]", "[beta] user", True), ("[beta]", "b", False),
     ("x", "yx", False), ("a\\d", "a\\d!", True), ("a\\d", "a1", False), ("$^", "$^", True)],
    ids=["dot-literal", "dot-not-any-char", "paren-routes", "paren-literal", "plus-literal", "plus-not-repeat",
         "brackets-literal", "brackets-not-a-class", "anchored-at-start", "backslash-literal",
         "backslash-not-a-digit-class", "anchors-literal"],
)
def test_set_header_route_prefix_is_a_literal_prefix(tmp_path: Path, prefix: str, header: str,
                                                     to_canary: bool) -> None:
    with SQLiteStore(tmp_path / "state.db") as store:
        store.create(STABLE_INGRESS)
        route = t.SetHeaderRoute(name="beta", match=(
            HeaderRoutingMatch(header_name="X-Beta", header_value=StringMatch(prefix=prefix)),))
        apply_action(store, ROLLOUT, route)
        ingresses = store.list("Ingress", "ns")
    canary = next(i for i in ingresses if i["metadata"]["name"] != "shop")
    annotations = canary["metadata"]["annotations"]
    assert annotations[f"{NGINX}/canary-by-header"] == "X-Beta"
    table = build_table(ingresses)
    assert not table.problems  # a prefix with `(` once made the pattern invalid
    backend = choose_backend(table, None, "/", {"X-Beta": header}, {}, 0.5)
    assert backend is not None and backend.version == ("canary" if to_canary else "stable"), (
        annotations[f"{NGINX}/canary-by-header-pattern"])


def test_set_header_route_regex_is_kept_as_written(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "state.db") as store:
        store.create(STABLE_INGRESS)
        route = t.SetHeaderRoute(name="beta", match=(
            HeaderRoutingMatch(header_name="X-Beta", header_value=StringMatch(regex="^a.b$")),))
        apply_action(store, ROLLOUT, route)
        ingresses = store.list("Ingress", "ns")
    canary = next(i for i in ingresses if i["metadata"]["name"] != "shop")
    assert canary["metadata"]["annotations"][f"{NGINX}/canary-by-header-pattern"] == "^a.b$"
    table = build_table(ingresses)
    assert choose_backend(table, None, "/", {"X-Beta": "axb"}, {}, 0.5).version == "canary"  # type: ignore[union-attr]
