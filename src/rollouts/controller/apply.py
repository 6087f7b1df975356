"""Carries out the engine's actions against the store, idempotently: applying an action twice leaves
the same objects as applying it once, so a controller that dies between two writes can simply redo them."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import Any

from rollouts.controller.objects import (
    HEADER_ROUTES_ANNOTATION,
    MANAGED_BY_ANNOTATION,
    NGINX_PREFIX,
    POD_HASH_LABEL,
    REVISION_ANNOTATION,
    SCALE_DOWN_DEADLINE_ANNOTATION,
    canary_ingress_name,
    format_time,
    header_routes,
    owner_reference,
    replica_set_object,
)
from rollouts.controller.observe import observe_revision
from rollouts.engine import types as t
from rollouts.spec.rollout import Rollout
from rollouts.store.protocol import AlreadyExists, NotFound, ObjectStore, Outcome


class ActionFailed(Exception):
    """An action that cannot be carried out as asked (a Service or Ingress that does not exist)."""


def _images(template: dict[str, Any]) -> dict[str, str]:
    return {c.get("name", ""): c.get("image", "") for c in template.get("spec", {}).get("containers", [])}


def _nginx(rollout: Rollout) -> tuple[str, str, dict[str, str], dict[str, str]]:
    canary = rollout.spec.strategy.canary
    routing = canary.traffic_routing if canary else None
    if routing is None or routing.nginx is None or canary is None:
        raise ActionFailed(f"Rollout/{rollout.name}: traffic weights need spec.strategy.canary.trafficRouting.nginx")
    nginx = routing.nginx
    stable = nginx.stable_ingress or (nginx.stable_ingresses or [""])[0]
    prefix = nginx.annotation_prefix or NGINX_PREFIX
    additional = {f"{prefix}/{k}": v for k, v in (nginx.additional_ingress_annotations or {}).items()}
    return stable, prefix, additional, dict(nginx.canary_ingress_annotations or {})


def _ensure_canary_ingress(store: ObjectStore, rollout: Rollout) -> dict[str, Any]:
    """The `<rollout>-<stable>-canary` Ingress: a clone of the stable one pointing at the canary Service."""
    stable_name, prefix, additional, extra = _nginx(rollout)
    name = canary_ingress_name(rollout, stable_name)
    try:
        return store.get("Ingress", rollout.namespace, name)
    except NotFound:
        pass
    try:
        stable = store.get("Ingress", rollout.namespace, stable_name)
    except NotFound as exc:
        raise ActionFailed(
            f"Rollout/{rollout.name}: spec.strategy.canary.trafficRouting.nginx.stableIngress: "
            f"Ingress {stable_name!r} not found in namespace {rollout.namespace} (apply it first)"
        ) from exc
    canary = rollout.spec.strategy.canary
    assert canary is not None
    spec = copy.deepcopy(stable.get("spec") or {})
    for rule in spec.get("rules") or []:
        for path in (rule.get("http") or {}).get("paths") or []:
            backend = (path.get("backend") or {}).get("service") or {}
            if backend.get("name") == canary.stable_service:
                backend["name"] = canary.canary_service
    annotations = {
        **{k: v for k, v in (stable["metadata"].get("annotations") or {}).items() if not k.startswith(prefix)},
        **additional,
        **extra,
        f"{prefix}/canary": "true",
        f"{prefix}/canary-weight": "0",
        MANAGED_BY_ANNOTATION: rollout.name,
    }
    annotations.pop(HEADER_ROUTES_ANNOTATION, None)
    obj = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": name,
            "namespace": rollout.namespace,
            "labels": dict(stable["metadata"].get("labels") or {}),
            "annotations": annotations,
            "ownerReferences": [owner_reference(rollout)],
        },
        "spec": spec,
    }
    try:
        return store.create(obj)
    except AlreadyExists:
        return store.get("Ingress", rollout.namespace, name)


def _set_header_routes(store: ObjectStore, rollout: Rollout, routes: dict[str, Any]) -> None:
    ingress = _ensure_canary_ingress(store, rollout)
    _, prefix, additional, _ = _nginx(rollout)
    annotations: dict[str, str | None] = {HEADER_ROUTES_ANNOTATION: json.dumps(routes, sort_keys=True)}
    # NGINX has one header rule per canary Ingress: the first managed route wins, else the manifest's own
    # canary-by-header annotations come back.
    header, value = additional.get(f"{prefix}/canary-by-header"), additional.get(f"{prefix}/canary-by-header-value")
    pattern = additional.get(f"{prefix}/canary-by-header-pattern")
    for matches in routes.values():
        if matches:
            first = matches[0]
            header = first["headerName"]
            string_match = first.get("headerValue") or {}
            value = string_match.get("exact")
            # A prefix is literal text: escaped, so `a.b` does not match `axb` and `(` is not a syntax error
            # (backslash escapes mean the same in RE2, our router's engine, and in NGINX's PCRE).
            prefix_match = string_match.get("prefix")
            pattern = string_match.get("regex") or (f"^{re.escape(prefix_match)}.*" if prefix_match else None)
            break
    annotations[f"{prefix}/canary-by-header"] = header
    annotations[f"{prefix}/canary-by-header-value"] = value
    annotations[f"{prefix}/canary-by-header-pattern"] = pattern
    store.patch("Ingress", rollout.namespace, ingress["metadata"]["name"], {"metadata": {"annotations": annotations}})


# The controller's own condition about a failed reconcile (controller.loop.RECONCILE_ERROR): written when a
# decision could not be carried out, so the same decision taken again reads it; not part of what it decides on.
_RECONCILE_ERROR = "ReconcileError"


def decision_basis(rollout: Rollout) -> str:
    """A digest of the stored status a decision starts from: what tells one decision from another.

    Not the resourceVersion: another client's write (an annotation, a label) makes a new version of the same
    status, and the decision taken again from it is the same one. A new decision starts from a new status (the
    one its predecessor wrote), or says something else (a new revision's events name it); the same event said
    again later, from a new status, counts again. Two decisions saying the same from one status are one."""
    status = rollout.status.to_dict() if rollout.status is not None else {}
    if status.get("conditions"):
        status["conditions"] = [c for c in status["conditions"] if c.get("type") != _RECONCILE_ERROR]
    text = json.dumps(status, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def apply_action(store: ObjectStore, rollout: Rollout, action: t.Action) -> None:
    ns = rollout.namespace
    match action:
        case t.CreateReplicaSet():
            obj = replica_set_object(rollout, name=action.name, pod_hash=action.pod_hash,
                                     revision=action.revision, template=action.template, replicas=action.replicas)
            try:
                store.create(obj)
            except AlreadyExists:
                store.patch("ReplicaSet", ns, action.name, {"spec": {"replicas": action.replicas}})
            store.record_revision(ns, rollout.name, action.revision, action.pod_hash,
                                  _images(obj["spec"]["template"]), obj["spec"]["template"])
        case t.ScaleReplicaSet():
            store.patch("ReplicaSet", ns, action.name, {"spec": {"replicas": action.replicas}})
        case t.SetReplicaSetRevision():
            store.patch("ReplicaSet", ns, action.name,
                        {"metadata": {"annotations": {REVISION_ANNOTATION: str(action.revision)}}})
            rs = store.get("ReplicaSet", ns, action.name)
            store.record_revision(ns, rollout.name, action.revision, rs["metadata"]["labels"].get(POD_HASH_LABEL, ""),
                                  _images(rs["spec"]["template"]), rs["spec"]["template"])
        case t.SetScaleDownDeadline():
            deadline = format_time(action.deadline) if action.deadline else None
            store.patch("ReplicaSet", ns, action.name,
                        {"metadata": {"annotations": {SCALE_DOWN_DEADLINE_ANNOTATION: deadline}}})
        case t.DeleteReplicaSet():
            try:
                store.delete("ReplicaSet", ns, action.name)
            except NotFound:
                pass
        case t.SetServiceSelector():
            try:
                store.patch("Service", ns, action.service,
                            {"spec": {"selector": {POD_HASH_LABEL: action.pod_hash}},
                             "metadata": {"annotations": {MANAGED_BY_ANNOTATION: rollout.name}}})
            except NotFound as exc:
                raise ActionFailed(f"Rollout/{rollout.name}: Service {action.service!r} not found in "
                                   f"namespace {ns} (apply it first)") from exc
        case t.SetCanaryWeight():
            ingress = _ensure_canary_ingress(store, rollout)
            _, prefix, _, _ = _nginx(rollout)
            store.patch("Ingress", ns, ingress["metadata"]["name"],
                        {"metadata": {"annotations": {f"{prefix}/canary-weight": str(action.weight)}}})
        case t.SetHeaderRoute():
            routes = header_routes(_ensure_canary_ingress(store, rollout))
            routes[action.name] = [m.to_dict() for m in action.match]
            _set_header_routes(store, rollout, routes)
        case t.RemoveHeaderRoute():
            routes = header_routes(_ensure_canary_ingress(store, rollout))
            routes.pop(action.name, None)
            _set_header_routes(store, rollout, routes)
        case t.CreateAnalysisRun():
            run = action.run.to_dict()
            try:
                created = store.create(run)
            except AlreadyExists:
                pass
            else:
                # An API server drops status on create (it is the /status subresource's): a run born
                # already finished (it cannot be measured, and says why) gets its status written next.
                if run.get("status") and not created.get("status"):
                    store.update_status({**created, "status": run["status"]})
        case t.TerminateAnalysisRun():
            try:
                store.patch("AnalysisRun", ns, action.name, {"spec": {"terminate": True}})
            except NotFound:
                pass
        case t.DeleteAnalysisRun():
            try:
                store.delete("AnalysisRun", ns, action.name)
            except NotFound:
                pass
        case t.EvictPod():
            try:
                store.delete("Pod", ns, action.name)
            except NotFound:
                pass
        case t.EmitEvent():
            # What the decision started from: a store may name the event after it, so that the decision taken
            # again (its status write refused or unanswered, the operator restarted) is not reported twice.
            involved = {"kind": "Rollout", "namespace": ns, "name": rollout.name, "uid": rollout.metadata.uid,
                        "apiVersion": rollout.api_version, "decision": decision_basis(rollout)}
            store.record_event(involved, action.type, action.reason, action.message)
        case _:
            raise ActionFailed(f"unknown action {action!r}")


_OUTCOMES: dict[str, Outcome] = {"RolloutCompleted": "promoted", "RolloutAborted": "aborted"}


def record_outcome(store: ObjectStore, rollout: Rollout, current_pod_hash: str | None, event: t.EmitEvent) -> None:
    """Keeps the release history that `history` and `report` read in step with the rollout's events."""
    outcome = _OUTCOMES.get(event.reason)
    if outcome is None or not current_pod_hash:
        return
    revision = observe_revision(store, rollout.namespace, rollout.name, current_pod_hash)
    if revision is None:
        return
    try:
        store.set_revision_outcome(rollout.namespace, rollout.name, revision, outcome, event.message)
    except NotFound:
        pass
