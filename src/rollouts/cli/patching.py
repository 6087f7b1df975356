"""`patch` and `scale`: kubectl's in-place edits of a stored object. A patched object is checked with the
lint rules before it is written (the rules `apply` uses), so an invalid result changes nothing; the write
carries the resourceVersion that was read, so a concurrent change is reported as a conflict, not
overwritten. The patch text is untrusted: its size and nesting are bounded before it is decoded."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer

from rollouts.cli.common import (
    CONTEXT_OPTION,
    HOME_OPTION,
    KUBECONFIG_OPTION,
    NAMESPACE_OPTION,
    fail,
    namespace_for,
    namespace_or_default,
    open_store,
)
from rollouts.cli.main import app

if TYPE_CHECKING:
    from rollouts.spec.problems import Problem
    from rollouts.store.protocol import ObjectStore

# Kinds whose lint rules know the objects they reference: validated together with the patched object.
_NEIGHBOURS = ("Service", "Ingress", "AnalysisTemplate", "Secret", "ConfigMap")
ATTEMPTS = 5
MAX_PATCH_BYTES = 1024 * 1024
_SERVER_FIELDS = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields")


def resolve_kind_name(kind: str, name: str | None = None) -> tuple[str, str]:
    """`KIND NAME`, `KIND/NAME` or `kind.group/NAME` -> (Kind, name); a one-line error otherwise."""
    from rollouts.cli.common import split_kind_name
    from rollouts.spec.kinds import UnknownKindError

    try:
        kind_name, object_name = split_kind_name(kind, name)
    except UnknownKindError as exc:
        fail(str(exc))
    if not object_name:
        fail(f"a name is required: {kind} NAME or {kind}/NAME")
    return kind_name, object_name


def _manifest_form(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as a user would have written it: no status, no server-owned metadata."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _SERVER_FIELDS}
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": meta}


def lint_object(store: ObjectStore, obj: dict[str, Any]) -> list[Problem]:
    """Errors the lint rules find in `obj`, judged next to the objects of its namespace it may reference."""
    from rollouts.spec.kinds import FOREIGN_KINDS
    from rollouts.spec.loader import LoadedObject
    from rollouts.spec.validation import validate_objects

    if obj.get("kind") in FOREIGN_KINDS:
        return []  # runtime-owned kinds (Pod, ReplicaSet, Event) have no lint rules
    namespace = (obj.get("metadata") or {}).get("namespace") or ""
    meta = obj.get("metadata") or {}
    source = f"{str(obj.get('kind', '')).lower()}/{meta.get('name', '')}"
    target = LoadedObject(data=_manifest_form(obj), source=source, line=0)
    others = [
        LoadedObject(data=_manifest_form(o), source="store", line=0)
        for kind in _NEIGHBOURS for o in store.list(kind, namespace)
    ] + [LoadedObject(data=_manifest_form(o), source="store", line=0)
         for o in store.list("ClusterAnalysisTemplate")]
    checked = validate_objects([target, *others])
    return [p for p in checked[0].problems if p.is_error]


def _user_version(patch: Any, patch_type: str) -> bool:
    """Whether the patch itself pins metadata.resourceVersion (then a conflict is the user's answer)."""
    if patch_type == "merge":
        return isinstance(patch, dict) and "resourceVersion" in (patch.get("metadata") or {})
    return any(isinstance(op, dict) and str(op.get("path", "")).startswith("/metadata/resourceVersion")
               for op in patch or [])


def apply_patch(store: ObjectStore, kind: str, namespace: str, name: str, patch: Any, patch_type: str) -> bool:
    """Patch one object after checking the result; returns whether anything changed.

    The write is conditional on the version that was checked. The controller updates a rollout's status
    all the time, so a conflict caused by someone else is retried on the new version (as the API server
    does for a patch); a resourceVersion written in the patch itself is honoured and reported."""
    from rollouts.store.patch import json_patch, merge_patch
    from rollouts.store.protocol import Conflict, Invalid, NotFound

    pinned = _user_version(patch, patch_type)
    for attempt in range(ATTEMPTS):
        try:
            stored = store.get(kind, namespace, name)
        except NotFound as exc:
            fail(str(exc))
        try:
            patched = merge_patch(stored, patch) if patch_type == "merge" else json_patch(stored, patch)
        except Invalid as exc:
            fail(str(exc))
        if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
            fail(f'patching {kind} "{name}" must leave an object with a metadata mapping')
        if patched.get("kind") != kind or patched["metadata"].get("name") != name:
            fail(f'patching {kind} "{name}" may not change kind or metadata.name')
        was = stored["metadata"].get("namespace") or ""
        if (patched["metadata"].get("namespace") or "") != was:
            if not was:
                fail(f'patching {kind} "{name}" may not set metadata.namespace (a {kind} is cluster-scoped)')
            fail(f'patching {kind} "{name}" may not change metadata.namespace (it is "{was}"; to move the '
                 "object, delete it and apply it in the other namespace)")
        problems = lint_object(store, patched)
        if problems:
            for problem in problems:
                typer.echo(problem.format(), err=True)
            fail(f"{len(problems)} problem(s) in the patched {kind}; nothing was changed")
        patched["metadata"]["resourceVersion"] = patched["metadata"].get("resourceVersion") \
            or stored["metadata"]["resourceVersion"]
        try:
            written = store.update(patched)
        except Conflict as exc:
            if pinned or attempt == ATTEMPTS - 1:
                fail(str(exc))
            continue
        except Invalid as exc:
            fail(str(exc))
        return bool(written["metadata"]["resourceVersion"] != stored["metadata"]["resourceVersion"])
    raise AssertionError("unreachable")


def _decode_patch(text: str) -> Any:
    """The patch as JSON, refused first when too large or nested deeper than any manifest (the decoder
    recurses, so depth is checked on the text)."""
    from rollouts.jsonbounds import MAX_VALUE_DEPTH, TooLarge, check_text_depth

    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_PATCH_BYTES:
        fail(f"--patch is {size / 1024 / 1024:.1f} MiB; refused (the limit is {MAX_PATCH_BYTES // 1024 // 1024} MiB)")
    try:
        check_text_depth(text, "--patch", MAX_VALUE_DEPTH)
        return json.loads(text)
    except TooLarge as exc:
        fail(str(exc))
    except ValueError as exc:
        fail(f"--patch is not valid JSON: {exc}")


@app.command()
def patch(
    kind: str = typer.Argument(..., help="Resource type (rollout, service, ...) or TYPE/NAME."),
    name: str | None = typer.Argument(None, help="Object name."),
    patch_text: str = typer.Option(..., "--patch", "-p", help="The patch, as JSON."),
    patch_type: str = typer.Option("merge", "--type", help="merge (RFC 7386) or json (RFC 6902)."),
    namespace: str | None = NAMESPACE_OPTION,
    home: str | None = HOME_OPTION,
    kubeconfig: str | None = KUBECONFIG_OPTION,
    kube_context: str | None = CONTEXT_OPTION,
) -> None:
    """Change an object with a merge or JSON patch (checked with the lint rules before it is stored)."""
    if patch_type not in ("merge", "json"):
        fail(f'--type: "{patch_type}" is not a patch type (use merge or json)')
    kind_name, object_name = resolve_kind_name(kind, name)
    if patch_text.startswith("="):
        patch_text = patch_text[1:]  # kubectl's `-p='{...}'` spelling: click hands the short option "={...}"
    body = _decode_patch(patch_text)
    if patch_type == "merge" and not isinstance(body, dict):
        fail("--patch: a merge patch must be a JSON object, e.g. '{\"spec\":{\"replicas\":3}}'")
    if patch_type == "json" and not isinstance(body, list):
        fail("--patch: a json patch must be a list of operations, e.g. "
             "'[{\"op\":\"replace\",\"path\":\"/spec/replicas\",\"value\":3}]'")
    store = open_store(home)
    changed = apply_patch(store, kind_name, namespace_for(kind_name, namespace), object_name, body, patch_type)
    typer.echo(f"{kind_name.lower()}/{object_name} {'patched' if changed else 'patched (no change)'}")


@app.command()
def scale(
    kind: str = typer.Argument(..., help="rollout (or deployment, which scales the Rollout of that name)."),
    name: str | None = typer.Argument(None, help="Rollout name."),
    replicas: int = typer.Option(..., "--replicas", help="Desired number of pods."),
    namespace: str | None = NAMESPACE_OPTION,
    home: str | None = HOME_OPTION,
    kubeconfig: str | None = KUBECONFIG_OPTION,
    kube_context: str | None = CONTEXT_OPTION,
) -> None:
    """Set a rollout's replica count."""
    if "/" in kind and name is None:
        kind, name = kind.split("/", 1)
    if kind.split(".", 1)[0].lower() in ("deployment", "deployments", "deploy"):
        typer.echo(f'note: there are no Deployments here; scaling the Rollout "{name}"', err=True)
        kind = "rollout"
    kind_name, object_name = resolve_kind_name(kind, name)
    if kind_name != "Rollout":
        fail(f"{kind_name} cannot be scaled: only rollouts have replicas here")
    if replicas < 0:
        fail(f"--replicas: {replicas} is negative (use 0 or more)")
    store = open_store(home)
    apply_patch(store, "Rollout", namespace_or_default(namespace), object_name,
                {"spec": {"replicas": replicas}}, "merge")
    typer.echo(f"rollout/{object_name} scaled")
