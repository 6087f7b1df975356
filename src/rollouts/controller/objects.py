"""Names, labels and the shapes of the objects the controller keeps in the store (ReplicaSets, Pods,
the canary Ingress), shared by observe and apply so the two can never disagree."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from rollouts.engine.hashing import POD_TEMPLATE_HASH_LABEL as POD_HASH_LABEL
from rollouts.spec.pod import PodTemplateSpec
from rollouts.spec.rollout import Rollout

REVISION_ANNOTATION = "rollout.argoproj.io/revision"
SCALE_DOWN_DEADLINE_ANNOTATION = "scale-down-deadline"
MANAGED_BY_ANNOTATION = "argo-rollouts.argoproj.io/managed-by-rollouts"
HEADER_ROUTES_ANNOTATION = "rollouts.io/header-routes"
NGINX_PREFIX = "nginx.ingress.kubernetes.io"


def owner_reference(rollout: Rollout) -> dict[str, Any]:
    return {
        "apiVersion": rollout.api_version,
        "kind": "Rollout",
        "name": rollout.name,
        "uid": rollout.metadata.uid or "",
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned_by(obj: dict[str, Any], rollout: Rollout) -> bool:
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    uid = rollout.metadata.uid
    return any(ref.get("kind") == "Rollout" and (ref.get("uid") == uid or ref.get("name") == rollout.name)
               for ref in refs)


def replica_set_object(
    rollout: Rollout, *, name: str, pod_hash: str, revision: int, template: PodTemplateSpec, replicas: int
) -> dict[str, Any]:
    """A ReplicaSet owned by the rollout, labelled with its pod-template hash as Argo does."""
    template_dict = template.to_dict()
    labels = dict(template_dict.get("metadata", {}).get("labels") or {})
    labels[POD_HASH_LABEL] = pod_hash
    template_dict.setdefault("metadata", {})["labels"] = labels
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": rollout.namespace,
            "labels": labels,
            "annotations": {REVISION_ANNOTATION: str(revision)},
            "ownerReferences": [owner_reference(rollout)],
        },
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels}, "template": template_dict},
        "status": {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0},
    }


def canary_ingress_name(rollout: Rollout, stable_ingress: str) -> str:
    """Argo's name for the Ingress it clones from the stable one."""
    return f"{rollout.name}-{stable_ingress}-canary"


def format_time(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def header_routes(ingress: dict[str, Any] | None) -> dict[str, Any]:
    if not ingress:
        return {}
    raw = ingress.get("metadata", {}).get("annotations", {}).get(HEADER_ROUTES_ANNOTATION)
    try:
        return dict(json.loads(raw)) if raw else {}
    except (ValueError, TypeError):
        return {}
