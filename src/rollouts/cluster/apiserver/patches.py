"""Patch types the store does not know: strategic merge patch for built-in kinds' keyed lists, and the
simplified server-side apply built on it. Pure functions over JSON documents.

Server-side apply here merges the applied configuration into the live object (maps recursively, keyed
lists by their key, other lists replaced) and records, per manager, the fields it applied (managedFields,
FieldsV1 format). A field a manager applied before and leaves out now is removed, as the real field
manager does; but ownership is not shared or contested: there are no apply conflicts, and fields set by
other writes (update, patch) are not tracked. docs/local-cluster.md says so.
"""

from __future__ import annotations

import copy
import json
from typing import Any

# Patch merge keys of the built-in kinds' lists (Kubernetes' `patchMergeKey` tags), by field name.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
}
# Lists of scalars Kubernetes merges as sets (`patchStrategy:"merge"` on a primitive list).
MERGED_SCALAR_LISTS = frozenset({"finalizers"})


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        # Container ports merge on containerPort, Service ports on port.
        sample = next((i for i in items if isinstance(i, dict)), {})
        return "containerPort" if "containerPort" in sample else "port"
    return MERGE_KEYS.get(field)


def strategic_merge(original: Any, patch: Any) -> Any:
    """Apply a strategic merge patch (with `$patch`, `$deleteFromPrimitiveList/` and `$retainKeys`)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    result: dict[str, Any] = copy.deepcopy(original) if isinstance(original, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue  # ordering hints: the merged order (originals first, then additions) is kept
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list) and isinstance(value, list):
                result[field] = [item for item in result[field] if item not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            merged = strategic_merge(result.get(key), value)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        else:
            result[key] = value
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(field: str, original: Any, patch: list[Any]) -> list[Any]:
    if field in MERGED_SCALAR_LISTS and isinstance(original, list):
        return list(original) + [item for item in patch if item not in original]
    key = _merge_key(field, patch + (original if isinstance(original, list) else []))
    if key is None or not isinstance(original, list):
        if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
            return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and i.get("$patch") == "delete")]
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    result = copy.deepcopy(original)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            result.append(copy.deepcopy(item))
            continue
        at = next((n for n, old in enumerate(result) if isinstance(old, dict) and old.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if at is not None:
                del result[at]
        elif at is None:
            result.append({k: copy.deepcopy(v) for k, v in item.items() if k != "$patch"})
        else:
            result[at] = strategic_merge(result[at], item)
    return result


FieldSet = dict[str, Any]

# Identity fields: owned by nobody, never removed by apply.
_IDENTITY = {"apiVersion", "kind"}
_IDENTITY_META = {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                  "managedFields"}


def _item_key(field: str, item: Any, items: list[Any]) -> str | None:
    key = _merge_key(field, items)
    if key is None or not isinstance(item, dict) or key not in item:
        return None
    return "k:" + json.dumps({key: item[key]}, separators=(",", ":"))


def field_set(obj: Any, parent: str = "") -> FieldSet:
    """The fields of an applied configuration, in Kubernetes' FieldsV1 shape (f:name, k:{key} entries)."""
    if not isinstance(obj, dict):
        return {}
    out: FieldSet = {}
    for name, value in obj.items():
        if (not parent and name in _IDENTITY) or (parent == "metadata" and name in _IDENTITY_META):
            continue
        if isinstance(value, dict):
            out[f"f:{name}"] = field_set(value, name)
        elif isinstance(value, list) and value and all(_item_key(name, i, value) for i in value):
            out[f"f:{name}"] = {_item_key(name, i, value): {".": {}, **field_set(i, name)} for i in value}
        else:
            out[f"f:{name}"] = {}
    return out


def _prune(live: Any, before: FieldSet, now: FieldSet, field: str = "") -> Any:
    """`live` without what `before` owned and `now` no longer does."""
    if isinstance(live, dict):
        result = dict(live)
        for entry, owned in before.items():
            if not entry.startswith("f:"):
                continue
            name = entry[2:]
            if name not in result:
                continue
            if entry not in now:
                del result[name]
            elif owned and now[entry]:
                result[name] = _prune(result[name], owned, now[entry], name)
        return result
    if isinstance(live, list):
        kept = []
        for item in live:
            key = _item_key(field, item, live)
            if key is not None and key in before and key not in now:
                continue
            if key is not None and key in before:
                item = _prune(item, before[key], now[key], field)
            kept.append(item)
        return kept
    return live


def server_side_apply(live: dict[str, Any], applied: dict[str, Any], manager: str, when: str) -> dict[str, Any]:
    """The live object with `applied` merged in, the manager's dropped fields removed, and its field set
    recorded in managedFields."""
    fields = [m for m in (live.get("metadata") or {}).get("managedFields") or [] if isinstance(m, dict)]
    mine = next((m for m in fields if m.get("manager") == manager and m.get("operation") == "Apply"), None)
    now = field_set(applied)
    before: FieldSet = (mine or {}).get("fieldsV1") or {}
    merged = strategic_merge(_prune(copy.deepcopy(live), before, now), applied)
    meta = merged.setdefault("metadata", {})
    entry = {"manager": manager, "operation": "Apply", "apiVersion": applied.get("apiVersion", ""),
             "time": when if mine is None or before != now else mine.get("time", when),
             "fieldsType": "FieldsV1", "fieldsV1": now}
    meta["managedFields"] = [entry if m is mine else m for m in fields] if mine else [*fields, entry]
    return merged
