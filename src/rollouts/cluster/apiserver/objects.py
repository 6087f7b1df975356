"""Kubernetes object semantics over the store, one synchronous call per API verb.

What the store does not do itself lives here: URL/body consistency, admission, status only through
/status for kinds that have the subresource, unconditional PUT, strategic merge and apply, finalizers
and deletionTimestamp, propagationPolicy (Orphan), namespace contents, the /scale subresource and
namespaces created on first use, and CustomResourceDefinitions (checked, given a status, registering
their kinds; deleting one deletes its objects). Every read-modify-write runs inside one store transaction.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rollouts.cluster.apiserver import admission, customresources
from rollouts.cluster.apiserver.crds import custom_resource_definitions
from rollouts.cluster.apiserver.customresources import CRD_KIND
from rollouts.cluster.apiserver.errors import ApiError, bad_request, invalid, unsupported_media_type
from rollouts.cluster.apiserver.patches import server_side_apply, strategic_merge
from rollouts.cluster.apiserver.resources import ARGO_GROUP, BY_KIND, CLUSTER_SCOPED, Registry, Resource
from rollouts.cluster.store import SQLiteStore
from rollouts.store.patch import json_patch, merge_patch
from rollouts.store.protocol import AlreadyExists, Conflict, NotFound

JSONObject = dict[str, Any]

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/json-patch+json": "json",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+json": "apply",
}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Rehearsal(Exception):
    """Raised inside a transaction to roll a dry run back."""


class Objects:
    """The verbs of the API over one store; `warnings` of the last write are returned with each result."""

    def __init__(self, store: SQLiteStore, clock: Callable[[], str] = _now, registry: Registry | None = None) -> None:
        self.store = store
        self._now = clock
        self.registry = registry or Registry()
        store.cluster_scoped |= CLUSTER_SCOPED

    # ---- custom resource definitions -------------------------------------------------------------

    def seed_definitions(self) -> None:
        """Store the CRDs of Argo's built-in kinds when missing, so they list and apply like any CRD."""
        for crd in custom_resource_definitions():
            try:
                self.store.get(CRD_KIND, "", crd["metadata"]["name"])
            except NotFound:
                meta = {k: crd["metadata"][k] for k in ("name", "labels", "annotations")}
                # As if applied: `kubectl apply` of the shipped CRDs then patches them without warning
                # that they were not created declaratively.
                applied = {k: crd[k] for k in ("apiVersion", "kind", "spec")} | {"metadata": {"name": meta["name"]}}
                meta["annotations"] = {LAST_APPLIED: json.dumps(applied, sort_keys=True, separators=(",", ":"))}
                try:
                    self.store.create({**crd, "metadata": meta})
                except AlreadyExists:
                    pass  # another server process on the same store was first

    def reload_definitions(self) -> None:
        """Rebuild the custom kinds from the stored CRDs (after a CRD write, at start, on an unknown path)."""
        custom: dict[str, tuple[Resource, ...]] = {}
        for crd in self.store.list(CRD_KIND):
            if not customresources.check(crd, []):
                custom[crd["metadata"]["name"]] = customresources.resources(crd)
        self.registry.replace(custom)
        self.store.cluster_scoped |= {r.kind for rs in custom.values() for r in rs if not r.namespaced}

    # ---- reads -----------------------------------------------------------------------------------

    def get(self, res: Resource, namespace: str | None, name: str) -> JSONObject:
        return self.store.get(res.kind, namespace or "", name)

    def list_with_version(self, res: Resource, namespace: str | None, labels: str | None,
             fields: str | None) -> tuple[list[JSONObject], int]:
        return self.store.list_with_version(res.kind, namespace, labels, fields)

    # ---- create ----------------------------------------------------------------------------------

    def _incoming(self, res: Resource, namespace: str | None, body: Any, name: str | None = None) -> JSONObject:
        if not isinstance(body, dict):
            raise bad_request(f"the request body must be a {res.kind} object (a JSON mapping)")
        obj: JSONObject = copy.deepcopy(body)
        if obj.setdefault("kind", res.kind) != res.kind:
            raise bad_request(f'the body\'s kind "{obj["kind"]}" does not match the resource {res.qualified} '
                              f'(kind {res.kind})')
        if obj.setdefault("apiVersion", res.api_version) != res.api_version:
            raise bad_request(f'the body\'s apiVersion "{obj["apiVersion"]}" does not match {res.qualified} '
                              f"(apiVersion {res.api_version})")
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request(f"{res.kind}.metadata: must be a mapping")
        if res.namespaced:
            given = meta.get("namespace")
            if given and namespace and given != namespace:
                raise bad_request(f'the namespace of the provided object ("{given}") does not match the '
                                  f'namespace sent on the request ("{namespace}")')
            meta["namespace"] = namespace or given or "default"
        else:
            meta.pop("namespace", None)
        if name is not None and meta.get("name") not in (None, name):
            raise bad_request(f'the name of the object ("{meta.get("name")}") does not match the name on the URL '
                              f'("{name}")')
        if name is not None:
            meta["name"] = name
        return obj

    def _admit(self, res: Resource, obj: JSONObject) -> list[str]:
        errors, warnings = admission.review(obj)
        if res.kind == CRD_KIND:
            errors = errors + customresources.check(obj, self.store.list(CRD_KIND))
            obj["status"] = customresources.status(obj, self._now())
        if errors:
            raise invalid(res, str(obj["metadata"].get("name") or obj["metadata"].get("generateName") or ""),
                          errors)
        return warnings

    def ensure_namespace(self, namespace: str) -> None:
        # Convenience over kube-apiserver: a namespace is created on its first object instead of a 404.
        try:
            self.store.get("Namespace", "", namespace)
        except NotFound:
            self.store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace},
                               "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})

    def rehearse(self, verb: Callable[..., Any], *args: Any) -> Any:
        """Run a verb as `dryRun=All` does: everything checked and computed, then rolled back."""
        outcome: list[Any] = []
        try:
            with self.store.transaction():
                outcome.append(verb(*args))
                raise _Rehearsal
        except _Rehearsal:
            return outcome[0]

    def create(self, res: Resource, namespace: str | None, body: Any) -> tuple[JSONObject, list[str]]:
        obj = self._incoming(res, namespace, body)
        if res.status and res.kind != "Namespace":
            obj.pop("status", None)  # written through /status only, as for kube-apiserver
        elif res.kind == "Namespace":
            obj["status"] = {"phase": "Active"}
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            obj["metadata"].pop(key, None)
        warnings = self._admit(res, obj)
        with self.store.transaction():
            if res.namespaced:
                self.ensure_namespace(obj["metadata"]["namespace"])
            return self.store.create(obj), warnings

    # ---- update ----------------------------------------------------------------------------------

    def _write(self, res: Resource, stored: JSONObject, new: JSONObject, sub: str | None) -> tuple[JSONObject, list[str]]:
        """Store `new` over `stored` (same resourceVersion, checked by the caller) through the right door."""
        if res.kind == CRD_KIND and sub is None and (changed := customresources.immutable_changes(stored, new)):
            raise invalid(res, str(stored["metadata"]["name"]), changed)
        meta = new["metadata"]
        meta["resourceVersion"] = stored["metadata"]["resourceVersion"]
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            if key in stored["metadata"]:
                meta[key] = stored["metadata"][key]
            else:
                meta.pop(key, None)
        warnings: list[str] = []
        if sub == "status":
            result = self.store.update_status(new)
        else:
            warnings = self._admit(res, new)
            result = self.store.update(new)
            if (not res.status or res.kind == CRD_KIND) and new.get("status") != result.get("status"):
                # Kinds without a status subresource take status with the rest of the object.
                result = self.store.update_status({**result, "status": new.get("status")})
        if result["metadata"].get("deletionTimestamp") and not result["metadata"].get("finalizers"):
            # The last finalizer is gone: the deletion that was waiting for it completes now.
            self.store.delete(res.kind, result["metadata"].get("namespace", ""), result["metadata"]["name"])
        return result, warnings

    @staticmethod
    def _check_precondition(stored: JSONObject, given: Any) -> None:
        current = stored["metadata"]["resourceVersion"]
        if given not in (None, "") and str(given) != str(current):
            meta = stored["metadata"]
            raise Conflict(stored["kind"], meta.get("namespace", ""), meta["name"], str(given), str(current))

    def update(self, res: Resource, namespace: str | None, name: str, body: Any,
               sub: str | None = None) -> tuple[JSONObject, list[str]]:
        """PUT: with metadata.resourceVersion a conditional update (409 when stale), without one unconditional."""
        obj = self._incoming(res, namespace, body, name)
        with self.store.transaction():
            stored = self.get(res, namespace, name)
            self._check_precondition(stored, obj["metadata"].get("resourceVersion"))
            return self._write(res, stored, obj, sub)

    # ---- patch -----------------------------------------------------------------------------------

    def patch(self, res: Resource, namespace: str | None, name: str, content_type: str, patch: Any,
              sub: str | None = None, manager: str = "", force: bool = False) -> tuple[JSONObject, list[str]]:
        kind = PATCH_TYPES.get(content_type)
        if kind is None:
            raise unsupported_media_type(f'the body of the request was in an unknown format: "{content_type}" '
                                         f"(accepted: {', '.join(PATCH_TYPES)})")
        if kind == "strategic" and (res.group == ARGO_GROUP or res.custom):
            raise unsupported_media_type("strategic merge patch is not supported for custom resources; "
                                         "use --type merge or --type json")
        if kind == "apply" and not manager:
            raise bad_request("PATCH with an apply patch requires fieldManager (e.g. ?fieldManager=kubectl)")
        if kind in ("merge", "strategic", "apply") and not isinstance(patch, dict):
            raise bad_request(f"a {kind} patch must be a JSON object")
        if kind == "json" and not isinstance(patch, list):
            raise bad_request("a JSON patch must be a list of operations")
        with self.store.transaction():
            try:
                stored = self.get(res, namespace, name)
            except NotFound:
                if kind != "apply":
                    raise
                obj = self._incoming(res, namespace, patch, name)
                applied = server_side_apply({}, obj, manager, self._now())
                return self.create(res, namespace, applied)
            if kind == "merge":
                patched = merge_patch(stored, patch)
            elif kind == "json":
                patched = json_patch(stored, patch)
            elif kind == "strategic":
                patched = strategic_merge(stored, patch)
            else:
                applied = self._incoming(res, namespace, patch, name)
                applied["metadata"].pop("resourceVersion", None)
                patched = server_side_apply(stored, applied, manager, self._now())
            if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
                raise bad_request(f'patching {res.kind} "{name}" must leave an object with metadata')
            if patched.get("kind") != res.kind or patched["metadata"].get("name") != name:
                raise bad_request(f'patching {res.kind} "{name}" may not change kind or metadata.name')
            self._check_precondition(stored, patched["metadata"].get("resourceVersion"))
            return self._write(res, stored, patched, sub)

    # ---- scale -----------------------------------------------------------------------------------

    @staticmethod
    def scale_of(res: Resource, obj: JSONObject) -> JSONObject:
        spec, status, meta = obj.get("spec") or {}, obj.get("status") or {}, obj["metadata"]
        if res.kind == "Rollout":
            current, selector = status.get("HPAReplicas", status.get("replicas", 0)), status.get("selector", "")
        elif res.custom:
            spec_path, status_path, selector_path = res.scale_paths
            replicas = _at(obj, spec_path)
            spec = {"replicas": replicas if isinstance(replicas, int) else 0}
            current, selector = _at(obj, status_path), _at(obj, selector_path) if selector_path else ""
        else:
            labels = (spec.get("selector") or {}).get("matchLabels") or {}
            current, selector = status.get("replicas", 0), ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in meta},
            "spec": {"replicas": spec.get("replicas", 1)},
            "status": {"replicas": current or 0, "selector": selector or ""},
        }

    def write_scale(self, res: Resource, namespace: str | None, name: str,
                    change: Callable[[JSONObject], Any]) -> JSONObject:
        """Apply `change` (a PUT body or a patch) to the Scale view and store the new spec.replicas."""
        with self.store.transaction():
            stored = self.get(res, namespace, name)
            scale = change(self.scale_of(res, stored))
            if not isinstance(scale, dict):
                raise bad_request("a Scale must be a JSON object")
            self._check_precondition(stored, (scale.get("metadata") or {}).get("resourceVersion"))
            replicas = (scale.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise invalid(res, name, [("spec.replicas", f"{replicas!r} must be a whole number, 0 or more")])
            new = copy.deepcopy(stored)
            _put(new, res.scale_paths[0] if res.custom else ".spec.replicas", replicas)
            result, _ = self._write(res, stored, new, None)
            return self.scale_of(res, result)

    # ---- delete ----------------------------------------------------------------------------------

    def delete(self, res: Resource, namespace: str | None, name: str, options: JSONObject) -> JSONObject:
        """Delete (cascading to owned objects unless propagationPolicy is Orphan); with finalizers, only
        mark it with deletionTimestamp and leave the rest to whoever removes the last finalizer."""
        policy = options.get("propagationPolicy") or "Background"
        if policy not in ("Background", "Foreground", "Orphan"):
            raise bad_request(f'propagationPolicy: "{policy}" is not one of Background, Foreground, Orphan')
        pre = options.get("preconditions") or {}
        with self.store.transaction():
            stored = self.get(res, namespace, name)
            meta = stored["metadata"]
            self._check_precondition(stored, pre.get("resourceVersion"))
            if pre.get("uid") and pre["uid"] != meta.get("uid"):
                raise ApiError(409, "Conflict", f'Precondition failed: UID in precondition: {pre["uid"]}, UID in '
                                                f'object meta: {meta.get("uid")}')
            if res.kind == CRD_KIND and customresources.is_built_in(stored):
                raise ApiError(405, "MethodNotAllowed", f'customresourcedefinitions "{name}" describes a kind '
                                                        "built into this server; it cannot be deleted")
            if meta.get("finalizers"):
                if meta.get("deletionTimestamp"):
                    return stored
                marked = copy.deepcopy(stored)
                marked["metadata"]["deletionTimestamp"] = self._now()
                marked["metadata"]["deletionGracePeriodSeconds"] = 0
                return self.store.update(marked)
            if policy == "Orphan":
                self._orphan_dependents(meta["uid"])
            if res.kind == "Namespace":
                self._delete_namespace_contents(name)
            if res.kind == CRD_KIND:
                self._delete_custom_objects(stored)
            return self.store.delete(res.kind, meta.get("namespace", ""), name)

    def _dependents(self, uid: str) -> list[JSONObject]:
        found = []
        for other in self.registry.stored:
            for obj in self.store.list(other.kind):
                if any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or []):
                    found.append(obj)
        return found

    def _orphan_dependents(self, uid: str) -> None:
        for obj in self._dependents(uid):
            new = copy.deepcopy(obj)
            new["metadata"]["ownerReferences"] = [r for r in obj["metadata"]["ownerReferences"] if r.get("uid") != uid]
            self.store.update(new)

    def _delete_namespace_contents(self, namespace: str) -> None:
        for other in self.registry.stored:
            if other.namespaced:
                for obj in self.store.list(other.kind, namespace):
                    try:
                        self.store.delete(other.kind, namespace, obj["metadata"]["name"])
                    except NotFound:
                        pass  # already removed with its owner

    def _delete_custom_objects(self, crd: JSONObject) -> None:
        kind = ((crd.get("spec") or {}).get("names") or {}).get("kind")
        if not isinstance(kind, str) or kind in BY_KIND:
            return
        for obj in self.store.list(kind):
            try:
                self.store.delete(kind, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
            except NotFound:
                pass  # removed with its owner

    def delete_collection(self, res: Resource, namespace: str | None, labels: str | None, fields: str | None,
                          options: JSONObject) -> list[JSONObject]:
        deleted = []
        with self.store.transaction():
            for obj in self.store.list(res.kind, namespace, labels, fields):
                if res.kind == CRD_KIND and customresources.is_built_in(obj):
                    continue  # `kubectl delete crd --all` removes the registered ones; built-in kinds stay
                try:
                    deleted.append(self.delete(res, obj["metadata"].get("namespace"), obj["metadata"]["name"],
                                               {"propagationPolicy": options.get("propagationPolicy")}))
                except NotFound:
                    pass  # an owner listed before it went away
        return deleted



def _at(obj: Any, json_path: str) -> Any:
    for part in json_path.strip(".").split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def _put(obj: JSONObject, json_path: str, value: Any) -> None:
    *parents, last = json_path.strip(".").split(".")
    for part in parents:
        obj = obj.setdefault(part, {})
    obj[last] = value
