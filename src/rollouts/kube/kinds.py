"""Every kind the product uses, mapped to where the Kubernetes API serves it.

Standard library only, so the CLI's hot path can build URLs without importing a Kubernetes client.
"""

from __future__ import annotations

from dataclasses import dataclass

ARGO = "argoproj.io"


@dataclass(frozen=True)
class Kind:
    kind: str
    group: str  # "" for the core group
    version: str
    plural: str
    namespaced: bool = True
    status: bool = False  # writes to .status go through /status
    scale: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        """The REST path: /api/v1/namespaces/NS/pods/NAME/status; no namespace lists across all of them."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base


KINDS: dict[str, Kind] = {k.kind: k for k in (
    Kind("Namespace", "", "v1", "namespaces", namespaced=False, status=True),
    Kind("Pod", "", "v1", "pods", status=True),
    Kind("Service", "", "v1", "services", status=True),
    Kind("Endpoints", "", "v1", "endpoints"),
    Kind("ConfigMap", "", "v1", "configmaps"),
    Kind("Secret", "", "v1", "secrets"),
    Kind("Event", "", "v1", "events"),
    Kind("ReplicaSet", "apps", "v1", "replicasets", status=True, scale=True),
    Kind("Deployment", "apps", "v1", "deployments", status=True, scale=True),
    Kind("Ingress", "networking.k8s.io", "v1", "ingresses", status=True),
    Kind("Job", "batch", "v1", "jobs", status=True),
    Kind("Lease", "coordination.k8s.io", "v1", "leases"),
    Kind("Rollout", ARGO, "v1alpha1", "rollouts", status=True, scale=True),
    Kind("AnalysisRun", ARGO, "v1alpha1", "analysisruns", status=True),
    Kind("AnalysisTemplate", ARGO, "v1alpha1", "analysistemplates"),
    Kind("ClusterAnalysisTemplate", ARGO, "v1alpha1", "clusteranalysistemplates", namespaced=False),
    Kind("Experiment", ARGO, "v1alpha1", "experiments", status=True),
)}


class UnknownKind(KeyError):
    def __str__(self) -> str:
        return f"unknown kind {self.args[0]!r}; known kinds: {', '.join(sorted(KINDS))}"


def kind_of(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise UnknownKind(name) from None
