"""Builds the engine's view of the world (Observed) for one rollout from the objects in the store."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from rollouts.controller.objects import (
    NGINX_PREFIX,
    POD_HASH_LABEL,
    REVISION_ANNOTATION,
    SCALE_DOWN_DEADLINE_ANNOTATION,
    canary_ingress_name,
    header_routes,
    owned_by,
    parse_time,
)
from rollouts.controller.parsed import ModelCache
from rollouts.engine.types import Observed, PodObservation, ReplicaSetObservation
from rollouts.spec.analysis import AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate
from rollouts.spec.pod import PodTemplateSpec
from rollouts.spec.rollout import HeaderRoutingMatch, Rollout
from rollouts.store.protocol import NotFound, ObjectStore


def _replica_set(obj: dict[str, Any], cache: ModelCache) -> ReplicaSetObservation:
    meta = obj["metadata"]
    status = obj.get("status") or {}
    annotations = meta.get("annotations") or {}
    return ReplicaSetObservation(
        name=meta["name"],
        pod_hash=(meta.get("labels") or {}).get(POD_HASH_LABEL, ""),
        revision=int(annotations.get(REVISION_ANNOTATION, "0") or 0),
        template=cache.parse(PodTemplateSpec, obj, "spec.template", obj["spec"].get("template") or {}),
        replicas=int(obj["spec"].get("replicas") or 0),
        ready=int(status.get("readyReplicas") or 0),
        available=int(status.get("availableReplicas") or 0),
        created=int(status.get("replicas") or 0),
        created_at=parse_time(meta.get("creationTimestamp")),
        scale_down_deadline=parse_time(annotations.get(SCALE_DOWN_DEADLINE_ANNOTATION)),
    )


def _pod(obj: dict[str, Any]) -> PodObservation:
    meta = obj["metadata"]
    conditions = (obj.get("status") or {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    created = parse_time(meta.get("creationTimestamp"))
    assert created is not None, "the store stamps creationTimestamp on every object"
    return PodObservation(
        name=meta["name"], pod_hash=(meta.get("labels") or {}).get(POD_HASH_LABEL, ""),
        created_at=created, ready=ready,
    )


def _templates(store: ObjectStore, namespace: str, cache: ModelCache) -> tuple[
        dict[str, AnalysisTemplate], dict[str, ClusterAnalysisTemplate]]:
    # A template that does not parse is left out: the engine then reports it as missing, by name.
    templates: dict[str, AnalysisTemplate] = {}
    for obj in store.list("AnalysisTemplate", namespace):
        try:
            templates[obj["metadata"]["name"]] = cache.parse(AnalysisTemplate, obj)
        except ValidationError:
            continue
    cluster: dict[str, ClusterAnalysisTemplate] = {}
    for obj in store.list("ClusterAnalysisTemplate", ""):
        try:
            cluster[obj["metadata"]["name"]] = cache.parse(ClusterAnalysisTemplate, obj)
        except ValidationError:
            continue
    return templates, cluster


def _selector_hash(store: ObjectStore, namespace: str, service: str | None) -> str | None:
    if not service:
        return None
    try:
        obj = store.get("Service", namespace, service)
    except NotFound:
        return None
    return ((obj.get("spec") or {}).get("selector") or {}).get(POD_HASH_LABEL)


def canary_ingress(store: ObjectStore, rollout: Rollout) -> dict[str, Any] | None:
    """The canary Ingress the controller maintains for an NGINX-routed canary, if it exists yet."""
    canary = rollout.spec.strategy.canary
    nginx = canary.traffic_routing.nginx if canary and canary.traffic_routing else None
    if nginx is None:
        return None
    stable = nginx.stable_ingress or next(iter(nginx.stable_ingresses or []), None)
    if not stable:
        return None
    try:
        return store.get("Ingress", rollout.namespace, canary_ingress_name(rollout, stable))
    except NotFound:
        return None


def observe_revision(store: ObjectStore, namespace: str, rollout: str, pod_hash: str) -> int | None:
    """The revision annotation of the rollout's ReplicaSet for `pod_hash` (None: there is no such ReplicaSet)."""
    for rs in store.list("ReplicaSet", namespace, label_selector=f"{POD_HASH_LABEL}={pod_hash}"):
        meta = rs["metadata"]
        if any(ref.get("kind") == "Rollout" and ref.get("name") == rollout for ref in meta.get("ownerReferences") or []):
            return int((meta.get("annotations") or {}).get(REVISION_ANNOTATION, "0") or 0)
    return None


def observe_rollout(store: ObjectStore, rollout: Rollout, cache: ModelCache | None = None) -> Observed:
    """`cache` (the controller's, kept across passes) hands back the same models for unchanged objects."""
    cache = cache if cache is not None else ModelCache()
    namespace = rollout.namespace
    replica_sets = tuple(
        _replica_set(obj, cache) for obj in store.list("ReplicaSet", namespace) if owned_by(obj, rollout)
    )
    hashes = {rs.pod_hash for rs in replica_sets}
    pods = tuple(
        _pod(obj) for obj in store.list("Pod", namespace)
        if (obj["metadata"].get("labels") or {}).get(POD_HASH_LABEL) in hashes
        and obj["metadata"].get("deletionTimestamp") is None
    )
    runs = tuple(
        cache.parse(AnalysisRun, obj) for obj in store.list("AnalysisRun", namespace) if owned_by(obj, rollout)
    )
    templates, cluster_templates = _templates(store, namespace, cache)

    weight = 0
    routes: dict[str, tuple[HeaderRoutingMatch, ...]] = {}
    ingress = canary_ingress(store, rollout)
    if ingress is not None:
        annotations = ingress["metadata"].get("annotations") or {}
        weight = int(annotations.get(f"{NGINX_PREFIX}/canary-weight", "0") or 0)
        for name, matches in header_routes(ingress).items():
            routes[name] = tuple(HeaderRoutingMatch.model_validate(m) for m in matches)

    strategy = rollout.spec.strategy
    services: list[str | None] = []
    if strategy.canary:
        services += [strategy.canary.canary_service, strategy.canary.stable_service]
    if strategy.blue_green:
        services += [strategy.blue_green.active_service, strategy.blue_green.preview_service]
    selectors = {s: _selector_hash(store, namespace, s) for s in services if s}

    return Observed(
        replica_sets=replica_sets,
        pods=pods,
        analysis_runs=runs,
        analysis_templates=templates,
        cluster_analysis_templates=cluster_templates,
        canary_weight=weight,
        header_routes=routes,
        service_selectors=selectors,
    )
