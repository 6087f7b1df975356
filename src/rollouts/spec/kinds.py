"""The kinds this project reads: (apiVersion, kind) -> model, parsing a plain object into its model, and the
resource names (plurals, short names) the CLI accepts."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from rollouts.spec.analysis import AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate
from rollouts.spec.core import ConfigMap, Ingress, Secret, Service
from rollouts.spec.experiment import Experiment
from rollouts.spec.rollout import Rollout

ARGO_API_VERSION = "argoproj.io/v1alpha1"

KINDS: dict[tuple[str, str], type[BaseModel]] = {
    (ARGO_API_VERSION, "Rollout"): Rollout,
    (ARGO_API_VERSION, "AnalysisTemplate"): AnalysisTemplate,
    (ARGO_API_VERSION, "ClusterAnalysisTemplate"): ClusterAnalysisTemplate,
    (ARGO_API_VERSION, "AnalysisRun"): AnalysisRun,
    (ARGO_API_VERSION, "Experiment"): Experiment,
    ("v1", "Service"): Service,
    ("v1", "Secret"): Secret,
    ("v1", "ConfigMap"): ConfigMap,
    ("networking.k8s.io/v1", "Ingress"): Ingress,
}

# apiVersion each known kind is served at (for "did you mean" on a wrong apiVersion).
API_VERSION_OF: dict[str, str] = {kind: api for api, kind in KINDS}

# Kubernetes kinds that commonly sit next to rollouts in a manifest directory: recognised, not used here.
FOREIGN_KINDS: frozenset[str] = frozenset(
    {
        "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod", "Job", "CronJob", "Namespace",
        "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "HorizontalPodAutoscaler",
        "PodDisruptionBudget", "NetworkPolicy", "PersistentVolumeClaim", "IngressClass", "Endpoints",
        "EndpointSlice", "CustomResourceDefinition", "LimitRange", "ResourceQuota",
    }
)

# Configuration documents of this project that may sit in a manifest folder but are not objects to store
# (the local runtime's image map, given to `rollouts controller --images`).
LOCAL_CONFIG_KINDS: frozenset[tuple[str, str]] = frozenset({("rollouts.io/v1alpha1", "ImageMap")})

# Resource names the CLI accepts -> canonical kind. Plurals, singulars, short names, case-insensitive.
RESOURCE_NAMES: dict[str, str] = {}
_RESOURCES: dict[str, tuple[str, ...]] = {
    "Rollout": ("rollout", "rollouts", "ro"),
    "AnalysisRun": ("analysisrun", "analysisruns", "ar"),
    "AnalysisTemplate": ("analysistemplate", "analysistemplates", "at"),
    "ClusterAnalysisTemplate": ("clusteranalysistemplate", "clusteranalysistemplates", "cat"),
    "Service": ("service", "services", "svc"),
    "Ingress": ("ingress", "ingresses", "ing"),
    "Secret": ("secret", "secrets"),
    "ConfigMap": ("configmap", "configmaps", "cm"),
    "Experiment": ("experiment", "experiments", "exp"),
    "ReplicaSet": ("replicaset", "replicasets", "rs"),
    "Pod": ("pod", "pods", "po"),
    "Endpoints": ("endpoints", "ep"),
    "Event": ("event", "events", "ev"),
}
for _kind, _names in _RESOURCES.items():
    for _name in _names:
        RESOURCE_NAMES[_name] = _kind


class UnknownKindError(ValueError):
    """An object whose apiVersion/kind is not one this project reads."""


def resolve_resource(name: str) -> str:
    """The kind a CLI resource name stands for (`ro` -> Rollout); also accepts `kind.group` forms."""
    key = name.strip().lower()
    if key in RESOURCE_NAMES:
        return RESOURCE_NAMES[key]
    base = key.split(".", 1)[0]
    if base in RESOURCE_NAMES:
        return RESOURCE_NAMES[base]
    valid = ", ".join(sorted({names[-1] if len(names) > 2 else names[0] for names in _RESOURCES.values()}))
    raise UnknownKindError(f'unknown resource type "{name}" (valid: {valid})')


def model_for(api_version: str, kind: str) -> type[BaseModel]:
    """The model of an (apiVersion, kind), or UnknownKindError saying what would be valid."""
    model = KINDS.get((api_version, kind))
    if model is not None:
        return model
    if kind in API_VERSION_OF:
        raise UnknownKindError(
            f'apiVersion "{api_version}" is not served for {kind} (use {API_VERSION_OF[kind]})'
        )
    known = ", ".join(sorted(API_VERSION_OF))
    raise UnknownKindError(f'unknown kind "{kind}" (known kinds: {known})')


def parse_object(data: dict[str, Any], *, strict: bool = False) -> BaseModel:
    """The model for a plain manifest object (pydantic's ValidationError when fields are wrong).

    `strict` refuses what Kubernetes' API server refuses too, such as a quoted number for an integer field.
    """
    api_version = data.get("apiVersion")
    kind = data.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        raise UnknownKindError("apiVersion and kind are required strings")
    model = model_for(api_version, kind)
    if strict:
        import json

        return model.model_validate_json(json.dumps(data, default=str), strict=True)
    return model.model_validate(data)
