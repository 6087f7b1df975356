"""Prometheus service discovery served by the local cluster's API: /prometheus-sd/v1/{role} answers Prometheus'
`http_sd_configs` with the targets its Kubernetes discovery (`kubernetes_sd_configs`) would find, carrying
the same `__meta_kubernetes_*` labels, so the usual `kubernetes-pods` relabelling applies unchanged.

Why not Kubernetes discovery itself: Debian's prometheus is built without it (its NEWS: "Kubernetes support
has been completely removed"), and that is the Prometheus this project runs. HTTP discovery is in every
build, and asking the API (bearer token, TLS, as any client) keeps the store the only source of truth.

Roles (as Kubernetes discovery's):
- `pod`: one target per declared container port (`podIP:containerPort`), or one per container without
  ports (`podIP`); pods without an IP are left out;
- `endpoints`: one target per address and port of every Endpoints object, ready or not
  (`__meta_kubernetes_endpoint_ready`), with the Service's labels and annotations, and the pod's when the
  address points at one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from rollouts.cluster.apiserver.errors import ApiError

PATH = "/prometheus-sd/v1/{role}"
ROLES = ("pod", "endpoints")
META = "__meta_kubernetes_"
_INVALID = re.compile(r"[^a-zA-Z0-9_]")

Lister = Callable[[str], list[dict[str, Any]]]


def sanitize(name: str) -> str:
    """A Kubernetes label or annotation key as a Prometheus label name part (Prometheus' SanitizeLabelName)."""
    return _INVALID.sub("_", name)


def _mapped(prefix: str, values: dict[str, Any] | None) -> dict[str, str]:
    """`<prefix>_<key>` = value and `<prefix>present_<key>` = "true" for each key, as Kubernetes discovery."""
    out: dict[str, str] = {}
    for key, value in (values or {}).items():
        name = sanitize(str(key))
        out[f"{prefix}_{name}"] = str(value)
        out[f"{prefix}present_{name}"] = "true"
    return out


def _ready(pod: dict[str, Any]) -> str:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return "true" if condition.get("status") == "True" else "false"
    return "unknown"


def _pod_labels(pod: dict[str, Any]) -> dict[str, str]:
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    labels = {
        f"{META}namespace": str(meta.get("namespace", "")),
        f"{META}pod_name": str(meta.get("name", "")),
        f"{META}pod_ip": str(status.get("podIP") or ""),
        f"{META}pod_ready": _ready(pod),
        f"{META}pod_phase": str(status.get("phase") or ""),
        f"{META}pod_node_name": str((pod.get("spec") or {}).get("nodeName") or ""),
        f"{META}pod_host_ip": str(status.get("hostIP") or ""),
        f"{META}pod_uid": str(meta.get("uid", "")),
        **_mapped(f"{META}pod_label", meta.get("labels")),
        **_mapped(f"{META}pod_annotation", meta.get("annotations")),
    }
    for owner in meta.get("ownerReferences") or []:
        if owner.get("controller"):
            labels[f"{META}pod_controller_kind"] = str(owner.get("kind", ""))
            labels[f"{META}pod_controller_name"] = str(owner.get("name", ""))
    return labels


def pod_targets(pods: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Target groups of the `pod` role."""
    groups = []
    for pod in pods:
        ip = (pod.get("status") or {}).get("podIP")
        if not ip:
            continue
        shared = _pod_labels(pod)
        for container in (pod.get("spec") or {}).get("containers") or []:
            about = {**shared, f"{META}pod_container_name": str(container.get("name", "")),
                     f"{META}pod_container_image": str(container.get("image", "")),
                     f"{META}pod_container_init": "false"}
            ports = container.get("ports") or []
            if not ports:
                groups.append({"targets": [str(ip)], "labels": about})
            for port in ports:
                number = port.get("containerPort")
                groups.append({"targets": [f"{ip}:{number}"], "labels": {
                    **about, f"{META}pod_container_port_name": str(port.get("name") or ""),
                    f"{META}pod_container_port_number": str(number),
                    f"{META}pod_container_port_protocol": str(port.get("protocol") or "TCP")}})
    return groups


def endpoints_targets(endpoints: Iterable[dict[str, Any]], services: Iterable[dict[str, Any]],
                      pods: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Target groups of the `endpoints` role."""
    by_service = {((s.get("metadata") or {}).get("namespace"), (s.get("metadata") or {}).get("name")): s
                  for s in services}
    by_pod = {((p.get("metadata") or {}).get("namespace"), (p.get("metadata") or {}).get("name")): p for p in pods}
    groups = []
    for obj in endpoints:
        meta = obj.get("metadata") or {}
        namespace, name = meta.get("namespace", ""), meta.get("name", "")
        shared = {f"{META}namespace": str(namespace), f"{META}endpoints_name": str(name),
                  **_mapped(f"{META}endpoints_label", meta.get("labels"))}
        service = by_service.get((namespace, name))
        if service is not None:
            smeta = service.get("metadata") or {}
            shared.update({f"{META}service_name": str(name),
                           **_mapped(f"{META}service_label", smeta.get("labels")),
                           **_mapped(f"{META}service_annotation", smeta.get("annotations"))})
        for subset in obj.get("subsets") or []:
            for key, ready in (("addresses", "true"), ("notReadyAddresses", "false")):
                for address in subset.get(key) or []:
                    about = {**shared, f"{META}endpoint_ready": ready}
                    ref = address.get("targetRef") or {}
                    if ref.get("kind") and ref.get("name"):
                        about[f"{META}endpoint_address_target_kind"] = str(ref["kind"])
                        about[f"{META}endpoint_address_target_name"] = str(ref["name"])
                    pod = by_pod.get((ref.get("namespace") or namespace, ref.get("name"))) \
                        if ref.get("kind") == "Pod" else None
                    if pod is not None:
                        about.update(_pod_labels(pod))
                    for port in subset.get("ports") or []:
                        groups.append({"targets": [f"{address.get('ip')}:{port.get('port')}"], "labels": {
                            **about, f"{META}endpoint_port_name": str(port.get("name") or ""),
                            f"{META}endpoint_port_protocol": str(port.get("protocol") or "TCP")}})
    return groups


def targets(role: str, lister: Lister) -> list[dict[str, Any]]:
    if role == "pod":
        return pod_targets(lister("Pod"))
    return endpoints_targets(lister("Endpoints"), lister("Service"), lister("Pod"))


def add_routes(app: web.Application, lister: Lister) -> None:
    """GET /prometheus-sd/v1/{pod|endpoints}: the answer Prometheus' http_sd_configs reads (JSON list)."""

    async def handle(request: web.Request) -> web.Response:
        role = request.match_info["role"]
        if role not in ROLES:
            raise ApiError(404, "NotFound", f"prometheus-sd role {role!r} does not exist: the roles are "
                           f"{', '.join(ROLES)}")
        return web.Response(text=json.dumps(targets(role, lister)), content_type="application/json")

    app.router.add_get(PATH, handle)
