"""A minimal OpenAPI v3 discovery (`/openapi/v3` and one document per group-version).

It declares, for each kind, the create/update/patch operations with the `fieldValidation` query
parameter and an open object schema. That is what kubectl checks to hand validation to the server
(it then sends `fieldValidation=Strict` instead of validating against schemas itself), so `kubectl
apply -f` works without `--validate=false`. It is not a schema of the kinds: our admission validates.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from rollouts.cluster.apiserver.resources import Registry, Resource

JSONObject = dict[str, Any]


def _prefix(group: str, version: str) -> str:
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _gvk(r: Resource) -> JSONObject:
    return {"group": r.group, "version": r.version, "kind": r.kind}


def _schema_name(r: Resource) -> str:
    return f"{r.group or 'core'}.{r.version}.{r.kind}"


def _operation(r: Resource, action: str) -> JSONObject:
    params = [{"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
              for name in ("dryRun", "fieldManager", "fieldValidation")]
    ref = {"$ref": f"#/components/schemas/{_schema_name(r)}"}
    body = {"content": {"application/json": {"schema": ref}}}
    if action == "patch":
        body = {"content": {t: {"schema": {"type": "object"}} for t in (
            "application/json-patch+json", "application/merge-patch+json",
            "application/strategic-merge-patch+json", "application/apply-patch+yaml")}}
    return {"operationId": f"{action}{r.kind}", "parameters": params, "requestBody": body,
            "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}},
            "x-kubernetes-action": action, "x-kubernetes-group-version-kind": _gvk(r)}


def document(registry: Registry, group: str, version: str) -> JSONObject | None:
    found = [r for r in registry.all if r.group == group and r.version == version]
    if not found:
        return None
    paths: JSONObject = {}
    schemas: JSONObject = {}
    for r in found:
        base = "/" + _prefix(group, version) + ("/namespaces/{namespace}" if r.namespaced else "")
        paths[f"{base}/{r.plural}"] = {"post": _operation(r, "post")}
        paths[f"{base}/{r.plural}/{{name}}"] = {"put": _operation(r, "put"), "patch": _operation(r, "patch")}
        # No x-kubernetes-group-version-kind on the schema: kubectl would then compute apply patches from
        # it; without one it uses its built-in types (strategic merge) or a merge patch for Argo's kinds.
        schemas[_schema_name(r)] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {"openapi": "3.0.0", "info": {"title": "rollouts local cluster", "version": version},
            "paths": paths, "components": {"schemas": schemas}}


def root(registry: Registry) -> JSONObject:
    seen: dict[str, str] = {}
    for r in registry.all:
        key = _prefix(r.group, r.version)
        doc = document(registry, r.group, r.version)
        digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16].upper()
        seen[key] = f"/openapi/v3/{key}?hash={digest}"
    return {"paths": {key: {"serverRelativeURL": url} for key, url in seen.items()}}
