"""The kinds the local API server serves: group, version, plural, scope, short names and subresources.

One table of built-in kinds, plus the custom kinds registered by applying CustomResourceDefinitions (a
`Registry` per server), drives discovery, URL routing, OpenAPI and Table columns, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ARGO_GROUP = "argoproj.io"
RBAC_GROUP = "rbac.authorization.k8s.io"
CRD_GROUP = "apiextensions.k8s.io"

VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Resource:
    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    status: bool = False  # a /status subresource: status is written only there
    scale: bool = False  # a /scale subresource (autoscaling/v1 Scale)
    log: bool = False  # Pod /log
    categories: tuple[str, ...] = ()
    custom: bool = False  # registered by a CustomResourceDefinition: served generically
    # For custom kinds: the CRD's additionalPrinterColumns and its scale subresource's paths.
    printer_columns: tuple[dict[str, Any], ...] = field(default=(), hash=False, compare=False)
    scale_paths: tuple[str, str, str] = (".spec.replicas", ".status.replicas", "")

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def verbs(self) -> tuple[str, ...]:
        return VERBS

    @property
    def qualified(self) -> str:
        """How Kubernetes names the resource in messages: `rollouts.argoproj.io`, `pods`."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


ALL = ("all",)  # the category `kubectl get all` lists, on the kinds kube-apiserver puts in it


def _core(kind: str, plural: str, *short: str, status: bool = False, namespaced: bool = True,
          log: bool = False, categories: tuple[str, ...] = ()) -> Resource:
    return Resource("", "v1", kind, plural, namespaced, tuple(short), status, log=log, categories=categories)


RESOURCES: tuple[Resource, ...] = (
    _core("Namespace", "namespaces", "ns", status=True, namespaced=False),
    _core("Pod", "pods", "po", status=True, log=True, categories=ALL),
    _core("Service", "services", "svc", status=True, categories=ALL),
    _core("Endpoints", "endpoints", "ep"),
    _core("ConfigMap", "configmaps", "cm"),
    _core("Secret", "secrets"),
    _core("Event", "events", "ev"),
    Resource("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), status=True, scale=True, categories=ALL),
    Resource("networking.k8s.io", "v1", "Ingress", "ingresses", True, ("ing",), status=True),
    Resource("batch", "v1", "Job", "jobs", True, (), status=True, categories=ALL),
    Resource("coordination.k8s.io", "v1", "Lease", "leases", True, ()),
    Resource(ARGO_GROUP, "v1alpha1", "Rollout", "rollouts", True, ("ro",), status=True, scale=True),
    Resource(ARGO_GROUP, "v1alpha1", "AnalysisRun", "analysisruns", True, ("ar",), status=True),
    Resource(ARGO_GROUP, "v1alpha1", "AnalysisTemplate", "analysistemplates", True, ("at",)),
    Resource(ARGO_GROUP, "v1alpha1", "ClusterAnalysisTemplate", "clusteranalysistemplates", False, ("cat",)),
    Resource(ARGO_GROUP, "v1alpha1", "Experiment", "experiments", True, ("exp",), status=True),
    # Stored only: no controller acts on them (no pods for a Deployment, no RBAC enforcement).
    _core("ServiceAccount", "serviceaccounts", "sa"),
    Resource("apps", "v1", "Deployment", "deployments", True, ("deploy",), status=True, scale=True, categories=ALL),
    Resource(RBAC_GROUP, "v1", "ClusterRole", "clusterroles", False),
    Resource(RBAC_GROUP, "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    Resource(RBAC_GROUP, "v1", "Role", "roles", True),
    Resource(RBAC_GROUP, "v1", "RoleBinding", "rolebindings", True),
    Resource("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True, ("pdb",), status=True),
    Resource(CRD_GROUP, "v1", "CustomResourceDefinition", "customresourcedefinitions", False, ("crd", "crds"),
             status=True),
)

BY_PATH: dict[tuple[str, str, str], Resource] = {(r.group, r.version, r.plural): r for r in RESOURCES}
BY_KIND: dict[str, Resource] = {r.kind: r for r in RESOURCES}
CLUSTER_SCOPED: frozenset[str] = frozenset(r.kind for r in RESOURCES if not r.namespaced)


class Registry:
    """The built-in kinds and, per CRD name, the custom kinds that CRD registered."""

    def __init__(self) -> None:
        self._custom: dict[str, tuple[Resource, ...]] = {}
        self._rebuild()

    def _rebuild(self) -> None:
        self.all: tuple[Resource, ...] = RESOURCES + tuple(r for rs in self._custom.values() for r in rs)
        self._by_path = {(r.group, r.version, r.plural): r for r in self.all}
        self._by_kind = {r.kind: r for r in self.all}

    def replace(self, custom: dict[str, tuple[Resource, ...]]) -> None:
        self._custom = dict(custom)
        self._rebuild()

    def custom_names(self) -> dict[str, tuple[Resource, ...]]:
        return dict(self._custom)

    def by_path(self, group: str, version: str, plural: str) -> Resource | None:
        return self._by_path.get((group, version, plural))

    def by_kind(self, kind: str) -> Resource | None:
        return self._by_kind.get(kind)

    @property
    def stored(self) -> tuple[Resource, ...]:
        return self.all

    def group_versions(self) -> dict[str, list[str]]:
        """Named groups (not core) -> their versions, in table order."""
        out: dict[str, list[str]] = {}
        for r in self.all:
            if r.group and r.version not in out.setdefault(r.group, []):
                out[r.group].append(r.version)
        return out

    def resources_of(self, group: str, version: str) -> list[Resource]:
        return [r for r in self.all if r.group == group and r.version == version]
