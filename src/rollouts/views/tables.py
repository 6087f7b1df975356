"""kubectl-style tables of stored objects (one row per object) and their `-o name` form, plus the Endpoints
kubectl would show, derived from each Service's selector and its ready pods' local ports."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from rollouts.store.protocol import CLUSTER_SCOPED_KINDS
from rollouts.views.ages import age
from rollouts.views.info import POD_HASH_LABEL, PORT_ANNOTATION, analysis_run_info, pod_info
from rollouts.views.model import RolloutInfo

Obj = dict[str, Any]

GROUPS = {
    "Rollout": "argoproj.io", "AnalysisRun": "argoproj.io", "AnalysisTemplate": "argoproj.io",
    "ClusterAnalysisTemplate": "argoproj.io", "Experiment": "argoproj.io", "ReplicaSet": "apps",
    "Ingress": "networking.k8s.io",
}


def object_name(kind: str, name: str) -> str:
    """`rollout.argoproj.io/x`, `pod/x`: what `get -o name` prints."""
    group = GROUPS.get(kind)
    return f"{kind.lower()}.{group}/{name}" if group else f"{kind.lower()}/{name}"


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _age(obj: Obj, now: datetime) -> str:
    return age(_meta(obj).get("creationTimestamp"), now)


def _ready_pod(pod: Obj) -> bool:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return bool(statuses) and all(cs.get("ready") for cs in statuses) and not _meta(pod).get("deletionTimestamp")


def endpoints_for(service: Obj, pods: list[Obj]) -> Obj:
    """The v1 Endpoints of a Service: its selector's ready pods, each at its own address and local port."""
    meta = _meta(service)
    selector = (service.get("spec") or {}).get("selector") or {}
    subsets = []
    for pod in sorted(pods, key=lambda p: str(_meta(p).get("name"))):
        labels = _meta(pod).get("labels") or {}
        if not selector or any(labels.get(k) != v for k, v in selector.items()) or not _ready_pod(pod):
            continue
        port = (_meta(pod).get("annotations") or {}).get(PORT_ANNOTATION)
        if not port:
            continue
        ip = (pod.get("status") or {}).get("podIP") or "127.0.0.1"
        subsets.append({"addresses": [{"ip": ip, "targetRef": {"kind": "Pod", "name": _meta(pod)["name"],
                                                                           "namespace": meta.get("namespace")}}],
                        "ports": [{"port": int(port), "protocol": "TCP"}]})
    return {
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"),
                     "creationTimestamp": meta.get("creationTimestamp"), "labels": dict(meta.get("labels") or {})},
        "subsets": subsets,
    }


def _endpoint_text(ep: Obj) -> str:
    addresses = [f"{a['ip']}:{p['port']}" for s in ep.get("subsets") or [] for a in s.get("addresses") or []
                 for p in s.get("ports") or []]
    if not addresses:
        return "<none>"
    return ",".join(addresses[:3]) + (f" + {len(addresses) - 3} more..." if len(addresses) > 3 else "")


def _local_port(obj: Obj) -> str:
    port = (_meta(obj).get("annotations") or {}).get(PORT_ANNOTATION)
    return f"127.0.0.1:{port}" if port else "<pending>"


def _service_ports(svc: Obj) -> str:
    ports = (svc.get("spec") or {}).get("ports") or []
    return ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports) or "<none>"


def _pod_row(pod: Obj, now: datetime, wide: bool) -> list[str]:
    info = pod_info(pod, now)
    row = [info.name, info.ready, info.status, str(info.restarts), info.age]
    if wide:
        row += [(pod.get("status") or {}).get("podIP") or "127.0.0.1", str(info.port or "<none>"), (_meta(pod).get("labels") or {}).get(
            POD_HASH_LABEL, "<none>")]
    return row


def _ingress_hosts(ing: Obj) -> str:
    hosts = [str(r.get("host")) for r in (ing.get("spec") or {}).get("rules") or [] if r.get("host")]
    return ",".join(hosts) or "*"


def _rows(kind: str, obj: Obj, now: datetime, wide: bool) -> list[str]:
    meta = _meta(obj)
    name = str(meta.get("name", ""))
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if kind == "Rollout":
        row = [name, str(spec.get("replicas", 1)), str(status.get("replicas", 0)),
               str(status.get("updatedReplicas", 0)), str(status.get("availableReplicas", 0)), _age(obj, now)]
        return row + [str(status.get("phase") or ""), str(status.get("message") or "")] if wide else row
    if kind == "ReplicaSet":
        row = [name, str(spec.get("replicas", 1)), str(status.get("replicas", 0)),
               str(status.get("readyReplicas", 0)), _age(obj, now)]
        if wide:
            images = ",".join(c.get("image", "") for c in ((spec.get("template") or {}).get("spec") or {})
                              .get("containers") or [])
            row += [images, ",".join(f"{k}={v}" for k, v in ((spec.get("selector") or {}).get("matchLabels")
                                                                or {}).items())]
        return row
    if kind == "Pod":
        return _pod_row(obj, now, wide)
    if kind == "Service":
        row = [name, str(spec.get("type") or "ClusterIP"), "127.0.0.1", "<none>", _service_ports(obj),
               _local_port(obj), _age(obj, now)]
        if wide:
            row.append(",".join(f"{k}={v}" for k, v in (spec.get("selector") or {}).items()) or "<none>")
        return row
    if kind == "Ingress":
        return [name, str(spec.get("ingressClassName") or "<none>"), _ingress_hosts(obj), "127.0.0.1",
                _local_port(obj), _age(obj, now)]
    if kind == "Endpoints":
        return [name, _endpoint_text(obj), _age(obj, now)]
    if kind == "AnalysisRun":
        return [name, analysis_run_info(obj, 0, now).phase, _age(obj, now)]
    if kind == "Experiment":
        return [name, str(status.get("phase") or ""), _age(obj, now)]
    if kind == "Event":
        last = obj.get("lastTimestamp") or obj.get("firstTimestamp")
        ref = obj.get("involvedObject") or {}
        return [age(last, now), str(obj.get("type", "")), str(obj.get("reason", "")),
                f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}", str(obj.get("message", ""))]
    if kind == "Secret":
        return [name, str(obj.get("type") or "Opaque"), str(len(obj.get("data") or {}) +
                                                              len(obj.get("stringData") or {})), _age(obj, now)]
    if kind == "ConfigMap":
        return [name, str(len(obj.get("data") or {})), _age(obj, now)]
    return [name, _age(obj, now)]


HEADERS: dict[str, list[str]] = {
    "Rollout": ["NAME", "DESIRED", "CURRENT", "UP-TO-DATE", "AVAILABLE", "AGE"],
    "ReplicaSet": ["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
    "Pod": ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
    "Service": ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "LOCAL", "AGE"],
    "Ingress": ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"],
    "Endpoints": ["NAME", "ENDPOINTS", "AGE"],
    "AnalysisRun": ["NAME", "STATUS", "AGE"],
    "Experiment": ["NAME", "STATUS", "AGE"],
    "Event": ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
    "Secret": ["NAME", "TYPE", "DATA", "AGE"],
    "ConfigMap": ["NAME", "DATA", "AGE"],
}
WIDE_EXTRA: dict[str, list[str]] = {
    "Rollout": ["STATUS", "MESSAGE"], "ReplicaSet": ["IMAGES", "SELECTOR"], "Pod": ["IP", "PORT", "POD-HASH"],
    "Service": ["SELECTOR"],
}


def table_header(kind: str, *, wide: bool = False, all_namespaces: bool = False) -> list[str]:
    header = list(HEADERS.get(kind, ["NAME", "AGE"])) + (WIDE_EXTRA.get(kind, []) if wide else [])
    return (["NAMESPACE"] + header) if all_namespaces and kind not in CLUSTER_SCOPED_KINDS else header


def table_row(kind: str, obj: Obj, now: datetime, *, wide: bool = False, all_namespaces: bool = False) -> list[str]:
    row = _rows(kind, obj, now, wide)
    if all_namespaces and kind not in CLUSTER_SCOPED_KINDS:
        row = [str(_meta(obj).get("namespace") or "default"), *row]
    return row


LIST_HEADER = ["NAME", "STRATEGY", "STATUS", "STEP", "SET-WEIGHT", "READY", "DESIRED", "UP-TO-DATE", "AVAILABLE"]


def list_row(info: RolloutInfo, *, all_namespaces: bool = False) -> list[str]:
    """One line of `list rollouts`; blue/green shows `-` for step and weight; READY is ready/current (Argo)."""
    canary = info.strategy == "Canary"
    row = [info.name, info.strategy, info.status, (info.step or "-") if canary else "-",
           str(info.set_weight) if canary and info.set_weight is not None else "-",
           f"{info.ready}/{info.current}", str(info.desired), str(info.updated), str(info.available)]
    return [info.namespace, *row] if all_namespaces else row


RowFn = Callable[[Obj, datetime], list[str]]
