"""core/v1 Endpoints kept by the local runtime for every Service with a selector: ready pods under
addresses, others under notReadyAddresses, one subset per pod (each has its own port); rewritten only when
they change; deleted with their Service (also one that went while no runtime ran)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rollouts.cluster.store import SQLiteStore
from rollouts.runtime.local.endpoints import MANAGED_BY, MANAGED_BY_LABEL, EndpointsSync
from rollouts.runtime.local.supervisor import PodPhase, PodState
from rollouts.store.protocol import NotFound


def pod(name: str, port: int, *, ready: bool = True, app: str = "shop", namespace: str = "default",
        terminating: bool = False, pid: int | None = 100) -> PodState:
    return PodState(name=name, namespace=namespace, labels={"app": app}, container="app", image="i:1", port=port,
                    phase=PodPhase.RUNNING, ready=ready, restarts=0, created_at=datetime.now(UTC),
                    log_path=Path("/dev/null"), pid=pid, terminating=terminating)


def service(name: str = "shop", selector: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": {"app": name} if selector is None else selector,
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


def _addresses(ep: dict[str, Any], key: str) -> list[tuple[str, int]]:
    return [(a["targetRef"]["name"], p["port"]) for s in ep["subsets"] for a in s.get(key) or [] for p in s["ports"]]


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    found = SQLiteStore(tmp_path / "state.db")
    for svc in (service(), service("bare", selector={})):
        found.create(svc)
    return found


@pytest.mark.parametrize(("pods", "ready", "not_ready"), [
    ([pod("shop-b", 2002), pod("shop-a", 2001)], [("shop-a", 2001), ("shop-b", 2002)], []),
    ([pod("shop-a", 2001), pod("shop-b", 2002, ready=False)], [("shop-a", 2001)], [("shop-b", 2002)]),
    ([pod("shop-a", 2001, terminating=True), pod("shop-c", 2003, pid=None, ready=False)], [], []),
    ([pod("cart-a", 2004, app="cart"), pod("shop-x", 2005, namespace="other")], [], []),
], ids=["ready-pods-by-name", "not-ready-apart", "terminating-and-not-started-left-out",
        "other-selector-and-namespace-left-out"])
def test_endpoints_kept_for_service_with_ready_pods(store: SQLiteStore, pods: list[PodState],
                                                    ready: list[tuple[str, int]],
                                                    not_ready: list[tuple[str, int]]) -> None:
    sync = EndpointsSync(store)
    sync.sync(store.list("Service"), pods)
    ep = store.get("Endpoints", "default", "shop")
    assert (_addresses(ep, "addresses"), _addresses(ep, "notReadyAddresses")) == (ready, not_ready)
    assert ep["metadata"]["labels"][MANAGED_BY_LABEL] == MANAGED_BY
    assert all(p["name"] == "http" for s in ep["subsets"] for p in s["ports"])
    with pytest.raises(NotFound):
        store.get("Endpoints", "default", "bare")  # no selector: Endpoints are the user's to manage


def test_endpoints_rewritten_only_on_change_and_deleted_with_their_service(store: SQLiteStore) -> None:
    sync = EndpointsSync(store)
    pods = [pod("shop-a", 2001)]
    sync.sync(store.list("Service"), pods)
    version = store.get("Endpoints", "default", "shop")["metadata"]["resourceVersion"]
    sync.sync(store.list("Service"), pods)
    assert store.get("Endpoints", "default", "shop")["metadata"]["resourceVersion"] == version
    sync.sync(store.list("Service"), [pod("shop-a", 2001, ready=False)])
    assert _addresses(store.get("Endpoints", "default", "shop"), "notReadyAddresses") == [("shop-a", 2001)]
    store.delete("Service", "default", "shop")
    sync.sync(store.list("Service"), pods)
    with pytest.raises(NotFound):
        store.get("Endpoints", "default", "shop")


def test_endpoints_of_a_service_deleted_while_no_runtime_ran_are_forgotten(store: SQLiteStore) -> None:
    EndpointsSync(store).sync(store.list("Service"), [pod("shop-a", 2001)])
    store.create({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "manual", "namespace": "default"},
                  "subsets": []})
    store.delete("Service", "default", "shop")
    EndpointsSync(store).forget_orphans(store.list("Service"))
    with pytest.raises(NotFound):
        store.get("Endpoints", "default", "shop")
    assert store.get("Endpoints", "default", "manual")  # not ours: left alone
