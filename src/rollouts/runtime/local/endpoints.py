"""core/v1 Endpoints for every Service, as Kubernetes' endpoints controller keeps them: one object named after
its Service listing the pods its selector matches, ready ones under `addresses`, the others under
`notReadyAddresses`, so `kubectl get endpoints` and `kubectl describe service` show what the listener
balances over. Each local pod has its own address (status.podIP) and serves each Service port on the
targetPort resolved against its containerPorts; pods serving the same ports share a subset. Endpoints whose
Service is gone are deleted (Kubernetes sets no owner on them either). Written only when they change."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from rollouts.runtime.local.ports import resolve_port
from rollouts.runtime.local.supervisor import PodState
from rollouts.store.protocol import AlreadyExists, NotFound, ObjectStore

log = logging.getLogger(__name__)

# Set by Kubernetes' endpoints controller; lets us tell our Endpoints from ones a user applied.
MANAGED_BY_LABEL = "endpoints.kubernetes.io/managed-by"
MANAGED_BY = "rollouts-local-runtime"


def _address(state: PodState) -> dict[str, Any]:
    return {"ip": state.ip, "targetRef": {"kind": "Pod", "namespace": state.namespace, "name": state.name}}


def target_ports(service: dict[str, Any], state: PodState) -> list[dict[str, Any]]:
    """The Service's ports as the pod serves them: each `targetPort` (default: the port) resolved against the
    pod's declared containerPorts (a named one to its number)."""
    out = []
    for p in (service.get("spec") or {}).get("ports") or [{}]:
        ref = p.get("targetPort", p.get("port"))
        out.append({**({"name": p["name"]} if p.get("name") else {}),
                    "port": resolve_port(ref, state.container_ports, state.port),
                    "protocol": p.get("protocol", "TCP")})
    return out


def subsets_for(service: dict[str, Any], pods: Iterable[PodState]) -> list[dict[str, Any]]:
    """The subsets of a Service's Endpoints: the pods its selector matches at their own addresses, grouped by
    the ports they serve (pods of one template share a subset), addresses sorted by pod name."""
    meta = service["metadata"]
    selector = (service.get("spec") or {}).get("selector") or {}
    subsets: list[dict[str, Any]] = []
    by_ports: dict[str, dict[str, Any]] = {}
    for state in sorted(pods, key=lambda s: s.name):
        if state.namespace != meta["namespace"] or state.terminating or state.pid is None:
            continue
        if any(state.labels.get(k) != v for k, v in selector.items()):
            continue
        ports = target_ports(service, state)
        group = repr(ports)
        subset = by_ports.get(group)
        if subset is None:
            subset = by_ports[group] = {"ports": ports}
            subsets.append(subset)
        subset.setdefault("addresses" if state.ready else "notReadyAddresses", []).append(_address(state))
    # Key order as the API server shows it.
    return [{k: subset[k] for k in ("addresses", "notReadyAddresses", "ports") if k in subset} for subset in subsets]


class EndpointsSync:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self._written: dict[tuple[str, str], list[dict[str, Any]]] = {}

    def sync(self, services: list[dict[str, Any]], pods: list[PodState]) -> None:
        wanted: set[tuple[str, str]] = set()
        for svc in services:
            meta = svc["metadata"]
            if not (svc.get("spec") or {}).get("selector"):
                continue
            key = (meta["namespace"], meta["name"])
            wanted.add(key)
            subsets = subsets_for(svc, pods)
            if self._written.get(key) == subsets:
                continue
            try:
                self._write(key, meta, subsets)
            except Exception:  # best effort: never stop the Services from being served
                log.exception("Endpoints %s/%s: cannot write", *key)
                continue
            self._written[key] = subsets
        for key in [k for k in self._written if k not in wanted]:
            del self._written[key]
            self._delete(key)

    def forget_orphans(self, services: list[dict[str, Any]]) -> None:
        """At start-up: delete our Endpoints whose Service went while no runtime ran."""
        present = {(s["metadata"]["namespace"], s["metadata"]["name"]) for s in services}
        for obj in self.store.list("Endpoints"):
            meta = obj["metadata"]
            key = (meta["namespace"], meta["name"])
            if key not in present and (meta.get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY:
                self._delete(key)

    def _write(self, key: tuple[str, str], service_meta: dict[str, Any], subsets: list[dict[str, Any]]) -> None:
        labels = {**(service_meta.get("labels") or {}), MANAGED_BY_LABEL: MANAGED_BY}
        try:
            self.store.create({"apiVersion": "v1", "kind": "Endpoints",
                               "metadata": {"name": key[1], "namespace": key[0], "labels": labels},
                               "subsets": subsets})
        except AlreadyExists:
            self.store.patch("Endpoints", key[0], key[1], {"metadata": {"labels": labels}, "subsets": subsets})

    def _delete(self, key: tuple[str, str]) -> None:
        try:
            obj = self.store.get("Endpoints", *key)
            if (obj["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY:
                self.store.delete("Endpoints", *key)
        except NotFound:
            pass
        except Exception:
            log.exception("Endpoints %s/%s: cannot delete", *key)
