"""Release history as Kubernetes objects: one bounded ConfigMap per Rollout, `<rollout>.rollout-history`.

Both stores keep history here (`SQLiteStore` and `KubeStore` call these functions through their own
get/create/update), so history written through either is read by the other, and `history`, `undo` and
`report` work on any cluster. The ConfigMap is labelled with the rollout's name and owned by the Rollout
when it exists (garbage-collected with it). Encoding: `data["revision-N"]` is the JSON of one entry
(revision, pod_hash, images, template, created_at, outcome, cause, updated_at); the newest
`HISTORY_LIMIT` revisions are kept.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Mapping
from typing import Any

from rollouts.store.protocol import (
    OUTCOMES,
    AlreadyExists,
    Conflict,
    Invalid,
    JSONObject,
    NotFound,
    ObjectStore,
    Revision,
)

HISTORY_LIMIT = 20  # revisions kept per Rollout
HISTORY_SUFFIX = ".rollout-history"
HISTORY_LABEL = "rollouts.argoproj.io/history-of"
_KEY = "revision-"
_ATTEMPTS = 10  # optimistic concurrency: a 409 re-reads and re-applies the change

Change = Callable[[dict[int, JSONObject]], JSONObject]


def config_map_name(rollout: str) -> str:
    return rollout + HISTORY_SUFFIX


def decode(config_map: Mapping[str, Any] | None) -> dict[int, JSONObject]:
    """revision number -> entry; keys or values that are not ours are skipped."""
    out: dict[int, JSONObject] = {}
    for key, text in ((config_map or {}).get("data") or {}).items():
        if not key.startswith(_KEY):
            continue
        try:
            entry = json.loads(text)
            number = int(key[len(_KEY):])
        except (TypeError, ValueError):
            continue
        if isinstance(entry, dict):
            out[number] = entry
    return out


def encode(revisions: Mapping[int, Mapping[str, Any]]) -> dict[str, str]:
    """The ConfigMap's data for the newest HISTORY_LIMIT revisions."""
    kept = sorted(revisions)[-HISTORY_LIMIT:]
    return {f"{_KEY}{n}": json.dumps(dict(revisions[n]), sort_keys=True) for n in kept}


def to_revision(namespace: str, rollout: str, entry: Mapping[str, Any]) -> Revision:
    return Revision(namespace=namespace, rollout=rollout, revision=int(entry["revision"]),
                    pod_hash=str(entry.get("pod_hash", "")), images=dict(entry.get("images") or {}),
                    template=dict(entry.get("template") or {}), created_at=str(entry.get("created_at", "")),
                    outcome=str(entry.get("outcome", "current")), cause=str(entry.get("cause", "")),
                    updated_at=str(entry.get("updated_at", "")))


def check_outcome(outcome: str) -> None:
    if outcome not in OUTCOMES:
        raise Invalid(f'revision outcome "{outcome}" is not one of {", ".join(OUTCOMES)}')


def read(store: ObjectStore, namespace: str, rollout: str) -> JSONObject | None:
    try:
        return store.get("ConfigMap", namespace, config_map_name(rollout))
    except NotFound:
        return None


def _owner(store: ObjectStore, namespace: str, rollout: str) -> JSONObject | None:
    try:
        found = store.get("Rollout", namespace, rollout)
    except NotFound:
        return None
    return {"apiVersion": found.get("apiVersion", "argoproj.io/v1alpha1"), "kind": "Rollout", "name": rollout,
            "uid": found["metadata"].get("uid", ""), "blockOwnerDeletion": True}


def write(store: ObjectStore, namespace: str, rollout: str, change: Change) -> Revision:
    """Apply `change` (which edits the revisions in place and returns the entry it is about) and store
    the result; re-read and retry on a concurrent write."""
    for _ in range(_ATTEMPTS):
        config_map = read(store, namespace, rollout)
        revisions = decode(config_map)
        chosen = change(revisions)
        data = encode(revisions)
        try:
            if config_map is None:
                meta: JSONObject = {"name": config_map_name(rollout), "namespace": namespace,
                                    "labels": {HISTORY_LABEL: rollout}}
                owner = _owner(store, namespace, rollout)
                if owner:
                    meta["ownerReferences"] = [owner]
                store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data})
            else:
                config_map["data"] = data
                # A history ConfigMap made without the label (by hand) gets it: the operator's cache of
                # history ConfigMaps selects by it.
                labels = config_map.setdefault("metadata", {}).setdefault("labels", None) or {}
                labels.setdefault(HISTORY_LABEL, rollout)
                config_map["metadata"]["labels"] = labels
                store.update(config_map)
            return to_revision(namespace, rollout, chosen)
        except (Conflict, AlreadyExists):
            continue
    raise Conflict("ConfigMap", namespace, config_map_name(rollout), "", "changing")


def record(store: ObjectStore, namespace: str, rollout: str, revision: int, pod_hash: str,
           images: Mapping[str, str], template: Mapping[str, Any], outcome: str, cause: str, now: str) -> Revision:
    """Remember (or refresh) one revision; created_at is kept on refresh."""
    check_outcome(outcome)
    images_copy, template_copy = json.loads(json.dumps(dict(images))), json.loads(json.dumps(dict(template)))

    def change(revisions: dict[int, JSONObject]) -> JSONObject:
        created = (revisions.get(int(revision)) or {}).get("created_at", now)
        entry = {"revision": int(revision), "pod_hash": pod_hash, "images": images_copy,
                 "template": template_copy, "created_at": created, "outcome": outcome, "cause": cause,
                 "updated_at": now}
        revisions[int(revision)] = entry
        return entry

    return write(store, namespace, rollout, change)


def set_outcome(store: ObjectStore, namespace: str, rollout: str, revision: int, outcome: str, cause: str,
                now: str) -> Revision:
    check_outcome(outcome)

    def change(revisions: dict[int, JSONObject]) -> JSONObject:
        if int(revision) not in revisions:
            raise NotFound("Rollout", namespace, rollout, detail=f" with revision {revision} in history")
        revisions[int(revision)].update(outcome=outcome, cause=cause, updated_at=now)
        return revisions[int(revision)]

    return write(store, namespace, rollout, change)


def list_all(store: ObjectStore, namespace: str, rollout: str) -> builtins.list[Revision]:
    """Every remembered revision, oldest first."""
    revisions = decode(read(store, namespace, rollout))
    return [to_revision(namespace, rollout, revisions[n]) for n in sorted(revisions)]


def merge_legacy(store: ObjectStore, namespace: str, rollout: str, entries: builtins.list[JSONObject]) -> None:
    """Fold revisions kept elsewhere (SQLite's old revisions table) into the ConfigMap; entries already in
    the ConfigMap win."""

    def change(revisions: dict[int, JSONObject]) -> JSONObject:
        for entry in entries:
            revisions.setdefault(int(entry["revision"]), entry)
        return revisions[max(revisions)]

    if entries:
        write(store, namespace, rollout, change)
