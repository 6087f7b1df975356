"""Metrics listeners outside any pod (the operator's /metrics, the local ingress proxy's) published through the
Kubernetes API as a selector-less Service with hand-kept Endpoints, the way Kubernetes represents services that
run outside the cluster, so a Prometheus discovering Endpoints finds them. Works over any `ObjectStore`: the
local cluster's own store, or the operator's client of whatever API it talks to."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from rollouts.store.protocol import AlreadyExists, NotFound, ObjectStore

# The operator's metrics Service, as deploy/kubernetes/base/controller/service.yaml (kustomize namespace rollouts).
CONTROLLER_NAMESPACE = "rollouts"
CONTROLLER_METRICS_SERVICE = "rollouts-metrics"
CONTROLLER_METRICS_LABELS = {"app.kubernetes.io/name": "rollouts", "app.kubernetes.io/part-of": "rollouts",
                             "app.kubernetes.io/component": "metrics"}


@dataclass(frozen=True)
class MetricsEndpoint:
    """A metrics listener registered as a selector-less Service with hand-kept Endpoints (as Kubernetes
    Services for things outside the cluster are)."""

    namespace: str
    service: str
    labels: dict[str, str]
    port: int  # the Service's port (what a ServiceMonitor would name)


CONTROLLER_METRICS = MetricsEndpoint(CONTROLLER_NAMESPACE, CONTROLLER_METRICS_SERVICE,
                                     dict(CONTROLLER_METRICS_LABELS), 8090)


def ensure_namespace(store: ObjectStore, name: str) -> None:
    try:
        store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    except AlreadyExists:
        pass


def labels_match(current: dict[str, Any], labels: dict[str, str]) -> bool:
    return all((current["metadata"].get("labels") or {}).get(k) == v for k, v in labels.items())


def ensure_service(store: ObjectStore, obj: dict[str, Any]) -> None:
    """Create the Service, or set the selector, ports and labels it must have (what the cluster filled in,
    such as a cluster IP, stays)."""
    meta = obj["metadata"]
    try:
        current = store.get("Service", meta["namespace"], meta["name"])
    except NotFound:
        store.create({**obj, "spec": {k: v for k, v in obj["spec"].items() if v is not None}})
        return
    spec = current.get("spec") or {}
    wanted = {k: obj["spec"].get(k) for k in ("selector", "ports")}
    if all(spec.get(k) == v for k, v in wanted.items()) and labels_match(current, meta["labels"]):
        return
    store.patch("Service", meta["namespace"], meta["name"], {"metadata": {"labels": meta["labels"]}, "spec": wanted})


def ensure_endpoints(store: ObjectStore, obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    try:
        current = store.get("Endpoints", meta["namespace"], meta["name"])
    except NotFound:
        store.create(obj)
        return
    if current.get("subsets") == obj["subsets"] and labels_match(current, meta["labels"]):
        return
    store.patch("Endpoints", meta["namespace"], meta["name"],
                {"metadata": {"labels": meta["labels"]}, "subsets": obj["subsets"]})


def _listening(subset: dict[str, Any]) -> bool:
    """Whether a registered metrics listener still accepts connections (its process may have been killed)."""
    addresses, ports = subset.get("addresses") or [], subset.get("ports") or []
    if not addresses or not ports:
        return False
    try:
        with socket.create_connection((str(addresses[0].get("ip")), int(ports[0].get("port"))), timeout=0.5):
            return True
    except (OSError, ValueError):
        return False


def _subset_of(subset: dict[str, Any]) -> str:
    return str(((subset.get("addresses") or [{}])[0].get("targetRef") or {}).get("name") or "")


def register_metrics(store: ObjectStore, endpoint: MetricsEndpoint, host: str, port: int, target: str) -> None:
    """Make `endpoint`'s Service exist and its Endpoints list host:port as the address of `target` (its
    targetRef name: several operators each have theirs). Addresses of other targets stay while their
    listener still answers; those of killed processes go."""
    ensure_namespace(store, endpoint.namespace)
    meta = {"name": endpoint.service, "namespace": endpoint.namespace, "labels": endpoint.labels}
    ensure_service(store, {"apiVersion": "v1", "kind": "Service", "metadata": meta,
                            "spec": {"selector": None,
                                     "ports": [{"name": "metrics", "port": endpoint.port, "protocol": "TCP"}]}})
    try:
        current = store.get("Endpoints", endpoint.namespace, endpoint.service).get("subsets") or []
    except NotFound:
        current = []
    others = [s for s in current if _subset_of(s) not in ("", target) and _listening(s)]
    mine = {"addresses": [{"ip": host, "targetRef": {"kind": "Process", "name": target}}],
            "ports": [{"name": "metrics", "port": port, "protocol": "TCP"}]}
    subsets = sorted([*others, mine], key=_subset_of)
    ensure_endpoints(store, {"apiVersion": "v1", "kind": "Endpoints", "metadata": dict(meta), "subsets": subsets})


def unregister_metrics(store: ObjectStore, endpoint: MetricsEndpoint, target: str) -> None:
    """Take `target`'s address out of `endpoint`'s Endpoints (a process stopping cleanly)."""
    try:
        obj = store.get("Endpoints", endpoint.namespace, endpoint.service)
    except NotFound:
        return
    kept = [s for s in obj.get("subsets") or [] if _subset_of(s) != target]
    if kept != (obj.get("subsets") or []):
        store.patch("Endpoints", endpoint.namespace, endpoint.service, {"subsets": kept})
