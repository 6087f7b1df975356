"""`meta.k8s.io/v1` Table responses: the columns `kubectl get` prints, computed on the server.

Argo's kinds use their CRDs' printer columns, custom kinds the additionalPrinterColumns of the CRD that
registered them; built-in kinds a subset of kube-apiserver's columns.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rollouts.cluster.apiserver.crds import PRINTER_COLUMNS
from rollouts.humanize import human_duration

JSONObject = dict[str, Any]
Cell = Callable[[JSONObject, datetime], Any]


def _age_of(stamp: Any, now: datetime) -> str:
    if not isinstance(stamp, str) or not stamp:
        return "<unknown>"
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    return human_duration((now - when).total_seconds())


def _path(obj: Any, json_path: str) -> Any:
    for part in json_path.strip(".").split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _age(obj: JSONObject, now: datetime) -> str:
    return _age_of((obj.get("metadata") or {}).get("creationTimestamp"), now)


def _age_at(json_path: str) -> Cell:
    return lambda obj, now: _age_of(_path(obj, json_path), now)


def _get(json_path: str, default: Any = None) -> Cell:
    return lambda obj, now: _fallback(_path(obj, json_path), default)


def _fallback(value: Any, default: Any) -> Any:
    return default if value is None else value


def _pod_ready(obj: JSONObject, now: datetime) -> str:
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    total = len((obj.get("spec") or {}).get("containers") or []) or len(statuses)
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _restarts(obj: JSONObject, now: datetime) -> int:
    return sum(int(s.get("restartCount") or 0) for s in (obj.get("status") or {}).get("containerStatuses") or [])


def _ports(obj: JSONObject, now: datetime) -> str:
    ports = (obj.get("spec") or {}).get("ports") or []
    return ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports) or "<none>"


def _hosts(obj: JSONObject, now: datetime) -> str:
    rules = (obj.get("spec") or {}).get("rules") or []
    return ",".join(r.get("host") or "*" for r in rules) or "*"


def _endpoints(obj: JSONObject, now: datetime) -> str:
    found = [f"{a.get('ip')}:{p.get('port')}" for s in obj.get("subsets") or []
             for a in s.get("addresses") or [] for p in s.get("ports") or [{}]]
    return ",".join(found) or "<none>"


def _event_object(obj: JSONObject, now: datetime) -> str:
    ref = obj.get("involvedObject") or {}
    return f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}"


def _count(field: str) -> Cell:
    return lambda obj, now: len(obj.get(field) or {})


def _completions(obj: JSONObject, now: datetime) -> str:
    return f"{(obj.get('status') or {}).get('succeeded', 0)}/{(obj.get('spec') or {}).get('completions', 1)}"


def _deployment_ready(obj: JSONObject, now: datetime) -> str:
    return f"{(obj.get('status') or {}).get('readyReplicas', 0)}/{(obj.get('spec') or {}).get('replicas', 1)}"


def _role_ref(obj: JSONObject, now: datetime) -> str:
    ref = obj.get("roleRef") or {}
    return f"{ref.get('kind', '')}/{ref.get('name', '')}"


def _or_na(json_path: str) -> Cell:
    return lambda obj, now: _fallback(_path(obj, json_path), "N/A")


_S, _I = "string", "integer"
BUILT_IN: dict[str, list[tuple[str, str, Cell]]] = {
    "Pod": [("Ready", _S, _pod_ready), ("Status", _S, _get(".status.phase", "Pending")),
            ("Restarts", _I, _restarts)],
    "ReplicaSet": [("Desired", _I, _get(".spec.replicas", 1)), ("Current", _I, _get(".status.replicas", 0)),
                   ("Ready", _I, _get(".status.readyReplicas", 0))],
    "Service": [("Type", _S, _get(".spec.type", "ClusterIP")), ("Cluster-IP", _S, _get(".spec.clusterIP", "<none>")),
                ("External-IP", _S, lambda o, n: "<none>"), ("Port(s)", _S, _ports)],
    "Endpoints": [("Endpoints", _S, _endpoints)],
    "ConfigMap": [("Data", _I, _count("data"))],
    "Secret": [("Type", _S, _get(".type", "Opaque")), ("Data", _I, _count("data"))],
    "Namespace": [("Status", _S, _get(".status.phase", "Active"))],
    "Ingress": [("Class", _S, _get(".spec.ingressClassName", "<none>")), ("Hosts", _S, _hosts),
                ("Address", _S, lambda o, n: ""), ("Ports", _S, lambda o, n: "80")],
    "Job": [("Completions", _S, _completions)],
    "Lease": [("Holder", _S, _get(".spec.holderIdentity", ""))],
    "Deployment": [("Ready", _S, _deployment_ready), ("Up-to-date", _I, _get(".status.updatedReplicas", 0)),
                   ("Available", _I, _get(".status.availableReplicas", 0))],
    "ServiceAccount": [("Secrets", _I, lambda o, n: len(o.get("secrets") or []))],
    "RoleBinding": [("Role", _S, _role_ref)],
    "ClusterRoleBinding": [("Role", _S, _role_ref)],
    "PodDisruptionBudget": [("Min Available", _S, _or_na(".spec.minAvailable")),
                            ("Max Unavailable", _S, _or_na(".spec.maxUnavailable")),
                            ("Allowed Disruptions", _I, _get(".status.disruptionsAllowed", 0))],
}


def _printer(defined: list[dict[str, str]] | tuple[dict[str, Any], ...]) -> list[tuple[str, str, Cell]]:
    """Columns from a CRD's additionalPrinterColumns (dates shown as ages, as kubectl does)."""
    columns: list[tuple[str, str, Cell]] = [("Name", _S, _get(".metadata.name"))]
    for col in defined:
        if col.get("type") == "date":
            columns.append((str(col["name"]), _S, _age_at(str(col["jsonPath"]))))
        else:
            columns.append((str(col["name"]), str(col.get("type", _S)), _get(str(col["jsonPath"]))))
    return columns


def _columns(kind: str, custom: tuple[dict[str, Any], ...] | None = None) -> list[tuple[str, str, Cell]]:
    if custom is not None:
        return _printer(custom or ({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},))
    if kind == "Event":
        return [("Last Seen", _S, lambda o, n: _age_of(o.get("lastTimestamp"), n)), ("Type", _S, _get(".type", "")),
                ("Reason", _S, _get(".reason", "")), ("Object", _S, _event_object),
                ("Message", _S, _get(".message", ""))]
    if kind in ("CustomResourceDefinition", "ClusterRole", "Role"):
        return [("Name", _S, _get(".metadata.name")), ("Created At", "date", _get(".metadata.creationTimestamp"))]
    if kind in PRINTER_COLUMNS:
        return _printer(PRINTER_COLUMNS[kind])
    return [("Name", _S, _get(".metadata.name")), *BUILT_IN.get(kind, []), ("Age", _S, _age)]


def _partial(obj: JSONObject) -> JSONObject:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata") or {}}


def to_table(kind: str, objects: list[JSONObject], list_meta: JSONObject, include: str = "PartialObjectMetadata",
             now: datetime | None = None, columns: tuple[dict[str, Any], ...] | None = None) -> JSONObject:
    """A Table of `objects`; `include` is the includeObject parameter (None, Object, PartialObjectMetadata);
    `columns` the printer columns of a custom kind."""
    now = now or datetime.now(UTC)
    cells = _columns(kind, columns)
    rows = []
    for obj in objects:
        row: JSONObject = {"cells": [cell(obj, now) for _, _, cell in cells]}
        if include == "Object":
            row["object"] = obj
        elif include != "None":
            row["object"] = _partial(obj)
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": [
            {"name": name, "type": typ, "format": "name" if name == "Name" else "", "description": "", "priority": 0}
            for name, typ, _ in cells
        ],
        "rows": rows,
    }


def wants_table(accept: str) -> bool:
    """Whether the Accept header asks for a meta.k8s.io Table (kubectl get does)."""
    return any("as=Table" in part and "g=meta.k8s.io" in part for part in accept.split(","))
