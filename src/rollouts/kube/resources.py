"""lightkube classes for every kind in `kinds.KINDS`: Argo's kinds as lightkube generic resources
(Rollout with `.Status` and `.Scale`, AnalysisRun with `.Status`, AnalysisTemplate,
ClusterAnalysisTemplate, Experiment) and lightkube's own models for the built-in kinds.

`RAW` has untyped generic classes for all of them, which keep objects as the API sent them.

Importing this module imports lightkube (about 0.5 s in a fresh process), so the CLI's hot path uses
`kinds` and `client` instead; the informers and leader election, long-lived, use this.
"""

from __future__ import annotations

from typing import Any

from lightkube.core.resource import Resource
from lightkube.generic_resource import (
    GenericGlobalResource,
    GenericNamespacedResource,
    create_api_info,
    create_global_resource,
    create_namespaced_resource,
)
from lightkube.resources.apps_v1 import Deployment, ReplicaSet
from lightkube.resources.batch_v1 import Job
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import ConfigMap, Endpoints, Event, Namespace, Pod, Secret, Service
from lightkube.resources.networking_v1 import Ingress

from rollouts.kube.kinds import ARGO, KINDS, Kind, kind_of

Rollout = create_namespaced_resource(ARGO, "v1alpha1", "Rollout", "rollouts")
AnalysisRun = create_namespaced_resource(ARGO, "v1alpha1", "AnalysisRun", "analysisruns")
AnalysisTemplate = create_namespaced_resource(ARGO, "v1alpha1", "AnalysisTemplate", "analysistemplates")
ClusterAnalysisTemplate = create_global_resource(ARGO, "v1alpha1", "ClusterAnalysisTemplate",
                                                 "clusteranalysistemplates")
Experiment = create_namespaced_resource(ARGO, "v1alpha1", "Experiment", "experiments")

RESOURCES: dict[str, Any] = {
    "Namespace": Namespace, "Pod": Pod, "Service": Service, "Endpoints": Endpoints, "ConfigMap": ConfigMap,
    "Secret": Secret, "Event": Event, "ReplicaSet": ReplicaSet, "Deployment": Deployment, "Ingress": Ingress,
    "Job": Job, "Lease": Lease, "Rollout": Rollout, "AnalysisRun": AnalysisRun,
    "AnalysisTemplate": AnalysisTemplate, "ClusterAnalysisTemplate": ClusterAnalysisTemplate,
    "Experiment": Experiment,
}
assert set(RESOURCES) == set(KINDS), "kinds.KINDS and RESOURCES must list the same kinds"


def _unregistered_generic(k: Kind) -> Any:
    # For built-in kinds, a generic class that is NOT put in lightkube's global registry: registering it
    # (as create_namespaced_resource does) would make lightkube's codecs load every Pod, ReplicaSet...
    # as untyped objects for all code in the process.
    base = GenericNamespacedResource if k.namespaced else GenericGlobalResource
    return type(k.kind, (base,), {"_api_info": create_api_info(k.group, k.version, k.kind, k.plural)})


RAW: dict[str, Any] = {
    k.kind: RESOURCES[k.kind] if k.group == ARGO else _unregistered_generic(k) for k in KINDS.values()
}
"""Generic (untyped) lightkube classes for every kind: objects keep their JSON exactly, fields lightkube's
models do not know included (its typed models drop them), and decoding is cheaper. Informers use these."""


def raw_resource_for(kind: str) -> Any:
    kind_of(kind)
    return RAW[kind]


def resource_for(kind: str) -> type[Resource]:
    """The lightkube class of one of our kind names; `UnknownKind` names the valid ones."""
    kind_of(kind)
    return RESOURCES[kind]  # type: ignore[no-any-return]


__all__ = ["KINDS", "Kind", "RAW", "RESOURCES", "raw_resource_for", "Rollout", "AnalysisRun", "AnalysisTemplate",
           "ClusterAnalysisTemplate", "Experiment", "resource_for"]
