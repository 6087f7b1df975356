"""Patch types the store does not know: strategic merge patch for built-in kinds' keyed lists, and the
simplified server-side apply built on it. Pure functions over JSON documents.

Server-side apply here merges the applied configuration into the live object (maps recursively, keyed
lists by their key, other lists replaced). It records the manager in managedFields but does not track
field ownership: there are no apply conflicts, and a field dropped from a manager's configuration is not
removed from the object (the real field manager removes it). docs/local-cluster.md says so.
"""

from __future__ import annotations

import copy
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


def server_side_apply(live: dict[str, Any], applied: dict[str, Any], manager: str, when: str) -> dict[str, Any]:
    """The live object with `applied` merged in and `manager` recorded in managedFields (once)."""
    merged = strategic_merge(live, applied)
    meta = merged.setdefault("metadata", {})
    fields = [m for m in meta.get("managedFields") or [] if isinstance(m, dict)]
    if not any(m.get("manager") == manager and m.get("operation") == "Apply" for m in fields):
        fields.append({"manager": manager, "operation": "Apply", "apiVersion": applied.get("apiVersion", ""),
                       "time": when, "fieldsType": "FieldsV1", "fieldsV1": {}})
    meta["managedFields"] = fields
    return merged
