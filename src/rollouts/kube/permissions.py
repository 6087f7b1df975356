"""The Kubernetes API calls the operator is allowed to make: one table of (API group, resource, verbs).

This table is the single source of the operator's RBAC. The install manifests
(`deploy/kubernetes`: the ClusterRole, the controller-namespace Role and the namespaced overlay's Role)
are checked against it by `tests/deploy`, so a rule can be neither missing nor extra. When the operator
exists, its tests assert that every call it makes against a cluster is covered here, which closes the loop:
operator calls == this table == the manifests.

Scope says where a permission is needed:
- `managed`: in every namespace whose Rollouts the controller reconciles (cluster-wide in a cluster
  install, the one namespace with `--namespace`);
- `own`: only in the controller's own namespace (leader-election leases).
Cluster-scoped resources (ClusterAnalysisTemplates) can only be granted by a ClusterRole, so a namespaced
install cannot read them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Scope = Literal["managed", "own"]



@dataclass(frozen=True)
class Permission:
    """Verbs on one resource (or subresource, as `rollouts/status`) of one API group ("" is core)."""

    api_group: str
    resource: str
    verbs: tuple[str, ...]
    why: str
    scope: Scope = "managed"
    cluster_scoped: bool = False


PERMISSIONS: tuple[Permission, ...] = (
    # Objects the operator caches (informers: list + watch) are read from the cache, so `get` is only granted
    # where a call needs it: the re-read after a 409 on a write carrying a resourceVersion (status updates),
    # and the kinds it does not cache (Secrets, ConfigMaps other than release history, Leases).
    Permission("argoproj.io", "rollouts", ("get", "list", "watch"),
               "reconcile Rollouts (re-read after a conflicting status update)"),
    Permission("argoproj.io", "rollouts/status", ("update",),
               "write the Rollout's phase, steps, conditions and ReplicaSet hashes"),
    # Only checked where the OwnerReferencesPermissionEnforcement admission plugin is on (OpenShift):
    # setting blockOwnerDeletion on an object owned by a Rollout needs update on its finalizers.
    Permission("argoproj.io", "rollouts/finalizers", ("update",),
               "own ReplicaSets and AnalysisRuns with blockOwnerDeletion under OwnerReferencesPermissionEnforcement"),
    Permission("argoproj.io", "analysisruns", ("get", "list", "watch", "create", "patch", "delete"),
               "start analysis for steps and background analysis, terminate and garbage-collect runs"),
    Permission("argoproj.io", "analysisruns/status", ("update",),
               "record measurements and the run's phase"),
    Permission("argoproj.io", "analysisruns/finalizers", ("update",),
               "own Jobs of job metrics with blockOwnerDeletion under OwnerReferencesPermissionEnforcement"),
    Permission("argoproj.io", "analysistemplates", ("list", "watch"), "resolve templateName references"),
    Permission("argoproj.io", "clusteranalysistemplates", ("list", "watch"),
               "resolve clusterScope template references", cluster_scoped=True),
    Permission("apps", "replicasets", ("list", "watch", "create", "patch", "delete"),
               "create, scale, relabel and retire the stable, canary and preview ReplicaSets"),
    Permission("", "pods", ("list", "watch", "delete"),
               "count ready pods, and delete them for spec.restartAt restarts"),
    Permission("", "services", ("list", "watch", "patch"),
               "point the stable, canary, active and preview Services' selectors at a ReplicaSet hash"),
    Permission("networking.k8s.io", "ingresses", ("list", "watch", "create", "patch"),
               "weight traffic with a canary Ingress beside the stable one (owned by the Rollout)"),
    Permission("batch", "jobs", ("list", "watch", "create", "delete"),
               "run job metrics and stop the Job of a cancelled measurement"),
    Permission("", "events", ("create", "patch"), "report what the controller did on the Rollout (patch: a repeat)"),
    Permission("", "configmaps", ("get", "list", "watch", "create", "update"),
               "notification services and templates; each Rollout's release history ConfigMap "
               "(<rollout>.rollout-history, cached: list and watch of the ConfigMaps labelled "
               "rollouts.argoproj.io/history-of; get re-reads one after a conflicting write)"),
    Permission("", "secrets", ("get",), "secretKeyRef analysis args and notification credentials"),
    Permission("coordination.k8s.io", "leases", ("get", "create", "update"),
               "leader election between the controller's replicas", scope="own"),
)


Triple = tuple[str, str, str]


def triples(permissions: Iterable[Permission] = PERMISSIONS) -> set[Triple]:
    """Each permission as (api_group, resource, verb) triples: the form RBAC rules are compared in."""
    return {(p.api_group, p.resource, verb) for p in permissions for verb in p.verbs}


def for_scope(scope: Scope, *, cluster_scoped: bool | None = None) -> tuple[Permission, ...]:
    """The permissions needed in one scope, optionally only the cluster-scoped or namespaced ones."""
    return tuple(p for p in PERMISSIONS if p.scope == scope
                 and (cluster_scoped is None or p.cluster_scoped == cluster_scoped))


def rule_triples(rules: Iterable[dict[str, object]]) -> set[Triple]:
    """The (api_group, resource, verb) triples an RBAC rules list grants (no wildcards are expected:
    a `*` is returned as is so that a comparison with the table fails and names it)."""
    found: set[Triple] = set()
    for rule in rules:
        groups = rule.get("apiGroups") or []
        resources = rule.get("resources") or []
        verbs = rule.get("verbs") or []
        if not (isinstance(groups, list) and isinstance(resources, list) and isinstance(verbs, list)):
            raise TypeError(f"RBAC rule {rule!r}: apiGroups, resources and verbs must be lists")
        found.update((str(g), str(r), str(v)) for g in groups for r in resources for v in verbs)
    return found
