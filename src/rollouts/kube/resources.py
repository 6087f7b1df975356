"""lightkube classes for every kind in `kinds.KINDS`: Argo's kinds as lightkube generic resources
(Rollout with `.Status` and `.Scale`, AnalysisRun with `.Status`, AnalysisTemplate,
ClusterAnalysisTemplate, Experiment) and lightkube's own models for the built-in kinds.

Importing this module imports lightkube (about 0.5 s in a fresh process), so the CLI's hot path uses
`kinds` and `client` instead; the informers and leader election, long-lived, use this.
"""

from __future__ import annotations

from typing import Any

from lightkube.core.resource import Resource
from lightkube.generic_resource import create_global_resource, create_namespaced_resource
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


def resource_for(kind: str) -> type[Resource]:
    """The lightkube class of one of our kind names; `UnknownKind` names the valid ones."""
    kind_of(kind)
    return RESOURCES[kind]  # type: ignore[no-any-return]


__all__ = ["KINDS", "Kind", "RESOURCES", "Rollout", "AnalysisRun", "AnalysisTemplate",
           "ClusterAnalysisTemplate", "Experiment", "resource_for"]
