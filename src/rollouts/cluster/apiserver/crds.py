"""The CustomResourceDefinition objects the server lists for Argo's kinds (apiextensions.k8s.io/v1).

Names, scope, subresources and printer columns are Argo's (from its published CRDs); the schema is an
open object, because validation happens in our admission, not from the CRD schema.
"""

from __future__ import annotations

import uuid
from typing import Any

from rollouts.cluster.apiserver.resources import ARGO_GROUP, RESOURCES, Resource

_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
        "description": "Time since resource was created"}
_PHASE = {"name": "Status", "type": "string", "jsonPath": ".status.phase"}

PRINTER_COLUMNS: dict[str, list[dict[str, str]]] = {
    "Rollout": [
        {"name": "Desired", "type": "integer", "jsonPath": ".spec.replicas",
         "description": "Number of desired pods"},
        {"name": "Current", "type": "integer", "jsonPath": ".status.replicas",
         "description": "Total number of non-terminated pods targeted by this rollout"},
        {"name": "Up-to-date", "type": "integer", "jsonPath": ".status.updatedReplicas",
         "description": "Total number of non-terminated pods targeted by this rollout that have the desired "
                        "template spec"},
        {"name": "Available", "type": "integer", "jsonPath": ".status.availableReplicas",
         "description": "Total number of available pods (ready for at least minReadySeconds)"},
        _AGE,
    ],
    "AnalysisRun": [{**_PHASE, "description": "AnalysisRun status"}, _AGE],
    "Experiment": [{**_PHASE, "description": "Experiment status"}, _AGE],
    "AnalysisTemplate": [_AGE],
    "ClusterAnalysisTemplate": [_AGE],
}

# A fixed creation time: the definitions are part of the server, not objects someone created.
_CREATED = "2026-01-01T00:00:00Z"


def _crd(resource: Resource) -> dict[str, Any]:
    name = f"{resource.plural}.{resource.group}"
    subresources: dict[str, Any] = {}
    if resource.status:
        subresources["status"] = {}
    if resource.scale:
        subresources["scale"] = {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.HPAReplicas",
                                 "labelSelectorPath": ".status.selector"}
    names: dict[str, Any] = {"plural": resource.plural, "singular": resource.singular, "kind": resource.kind,
                             "listKind": resource.kind + "List"}
    if resource.short_names:
        names["shortNames"] = list(resource.short_names)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name, "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)), "resourceVersion": "1",
                     "generation": 1, "creationTimestamp": _CREATED, "labels": {}, "annotations": {}},
        "spec": {
            "group": resource.group,
            "names": names,
            "scope": "Namespaced" if resource.namespaced else "Cluster",
            "versions": [{
                "name": resource.version, "served": True, "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                "subresources": subresources,
                "additionalPrinterColumns": PRINTER_COLUMNS.get(resource.kind, [_AGE]),
            }],
        },
        "status": {"acceptedNames": names, "storedVersions": [resource.version],
                   "conditions": [{"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                                   "lastTransitionTime": _CREATED, "message": "the initial names have been accepted"}]},
    }


def custom_resource_definitions() -> list[dict[str, Any]]:
    return [_crd(r) for r in RESOURCES if r.group == ARGO_GROUP]
