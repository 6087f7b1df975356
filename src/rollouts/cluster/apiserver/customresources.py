"""CustomResourceDefinitions as the server reads them: checking one, the custom kinds it registers, and the
status the server writes on it (names accepted, Established).

A CRD of one of Argo's five kinds registers nothing: those kinds are built in, with our admission, and
applying their CRDs again only stores the object.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from rollouts.cluster.apiserver.resources import BY_KIND, BY_PATH, Resource

JSONObject = dict[str, Any]
CRD_KIND = "CustomResourceDefinition"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_KIND = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")


def _names(spec: JSONObject) -> JSONObject:
    names = spec.get("names")
    return names if isinstance(names, dict) else {}


def is_built_in(crd: JSONObject) -> bool:
    """Whether the CRD describes a kind this server has built in (Argo's, or any table kind)."""
    spec = crd.get("spec") or {}
    kind = _names(spec).get("kind")
    found = BY_KIND.get(str(kind))
    return found is not None and found.group == spec.get("group")


def check(crd: JSONObject, others: Iterable[JSONObject]) -> list[tuple[str, str]]:
    """(field path, message) for what would make the CRD unservable; `others` are the stored CRDs."""
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return [("spec", "required: group, names, scope and versions")]
    errors: list[tuple[str, str]] = []
    group, names = spec.get("group"), _names(spec)
    name = (crd.get("metadata") or {}).get("name")
    if not isinstance(group, str) or "." not in group:
        errors.append(("spec.group", f"{group!r} must be a DNS subdomain with at least one dot (e.g. example.com)"))
    plural, kind = names.get("plural"), names.get("kind")
    if not isinstance(plural, str) or not _DNS_LABEL.match(plural):
        errors.append(("spec.names.plural", f"{plural!r} must be a lowercase DNS label (e.g. widgets)"))
    if not isinstance(kind, str) or not _KIND.match(kind):
        errors.append(("spec.names.kind", f"{kind!r} must be a CamelCase identifier (e.g. Widget)"))
    if isinstance(plural, str) and isinstance(group, str) and name != f"{plural}.{group}":
        errors.append(("metadata.name", f'must be spec.names.plural + "." + spec.group ("{plural}.{group}")'))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        errors.append(("spec.scope", f"{spec.get('scope')!r} must be Namespaced or Cluster"))
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions or not all(isinstance(v, dict) for v in versions):
        errors.append(("spec.versions", "must list at least one version (name, served, storage)"))
    else:
        for i, version in enumerate(versions):
            if not isinstance(version.get("name"), str) or not _DNS_LABEL.match(version["name"]):
                errors.append((f"spec.versions[{i}].name", f"{version.get('name')!r} must be a lowercase DNS "
                                                          "label (e.g. v1)"))
        if sum(1 for v in versions if v.get("storage")) != 1:
            errors.append(("spec.versions", "exactly one version must have storage: true"))
    for key in ("shortNames", "categories"):
        listed = names.get(key)
        if listed is not None and not (isinstance(listed, list) and all(isinstance(n, str) for n in listed)):
            errors.append((f"spec.names.{key}", "must be a list of strings"))
    if errors or is_built_in(crd):
        return errors
    assert isinstance(kind, str) and isinstance(versions, list)
    # Objects are stored by kind, so a kind has one home: neither a built-in one nor another CRD's.
    taken = BY_KIND.get(kind)
    if taken is not None:
        errors.append(("spec.names.kind", f'"{kind}" is already served by this server as {taken.qualified}'))
    if any((group, v.get("name"), plural) in BY_PATH for v in versions if isinstance(v, dict)):
        errors.append(("spec.names.plural", f'"{plural}.{group}" is already a built-in resource'))
    for other in others:
        if (other.get("metadata") or {}).get("name") == name:
            continue
        if _names(other.get("spec") or {}).get("kind") == kind and not is_built_in(other):
            errors.append(("spec.names.kind", f'"{kind}" is already registered by CRD '
                                              f'"{(other.get("metadata") or {}).get("name")}"'))
    return errors


def immutable_changes(stored: JSONObject, new: JSONObject) -> list[tuple[str, str]]:
    """Changes an update of a CRD may not make: its objects are stored under its kind, in its scope."""
    before: JSONObject = stored.get("spec") or {}
    after: JSONObject = new["spec"] if isinstance(new.get("spec"), dict) else {}
    errors = []
    if after.get("scope") != before.get("scope"):
        errors.append(("spec.scope", f"field is immutable (was {before.get('scope')!r})"))
    if _names(after).get("kind") != _names(before).get("kind"):
        errors.append(("spec.names.kind", f"field is immutable here (was {_names(before).get('kind')!r}): "
                                          "delete the CRD and create it again"))
    return errors


def _scale_paths(scale: Any) -> tuple[str, str, str]:
    scale = scale if isinstance(scale, dict) else {}
    return (str(scale.get("specReplicasPath") or ".spec.replicas"),
            str(scale.get("statusReplicasPath") or ".status.replicas"), str(scale.get("labelSelectorPath") or ""))


def resources(crd: JSONObject) -> tuple[Resource, ...]:
    """The custom kinds a (checked) CRD registers: one per served version; none for built-in kinds."""
    if is_built_in(crd):
        return ()
    spec = crd["spec"]
    names = _names(spec)
    found = []
    for version in spec["versions"]:
        if not version.get("served", True):
            continue
        sub = version.get("subresources") or {}
        columns = tuple(c for c in version.get("additionalPrinterColumns") or []
                        if isinstance(c, dict) and c.get("name") and c.get("jsonPath"))
        found.append(Resource(
            spec["group"], str(version["name"]), names["kind"], names["plural"], spec["scope"] == "Namespaced",
            tuple(str(s) for s in names.get("shortNames") or []), status="status" in sub, scale="scale" in sub,
            categories=tuple(str(c) for c in names.get("categories") or []), custom=True,
            printer_columns=columns, scale_paths=_scale_paths(sub.get("scale"))))
    return tuple(found)


def status(crd: JSONObject, when: str) -> JSONObject:
    """What the server writes in the CRD's status once it serves it."""
    spec = crd.get("spec") or {}
    names = dict(_names(spec))
    names.setdefault("singular", str(names.get("kind", "")).lower())
    names.setdefault("listKind", f"{names.get('kind', '')}List")
    stored = [v.get("name") for v in spec.get("versions") or [] if isinstance(v, dict) and v.get("storage")]
    previous = {c.get("type"): c for c in (crd.get("status") or {}).get("conditions") or [] if isinstance(c, dict)}

    def condition(kind: str, reason: str, message: str) -> JSONObject:
        since = (previous.get(kind) or {}).get("lastTransitionTime") or when
        return {"type": kind, "status": "True", "reason": reason, "message": message, "lastTransitionTime": since}
    return {"acceptedNames": names, "storedVersions": stored,
            "conditions": [condition("NamesAccepted", "NoConflicts", "no conflicts found"),
                           condition("Established", "InitialNamesAccepted", "the initial names have been accepted")]}

