"""`apply`, `create` and `delete`: writing manifests to the store, validated with the lint rules first so
that an invalid manifest changes nothing."""

from __future__ import annotations

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
    split_kind_name,
)
from rollouts.cli.main import app

if TYPE_CHECKING:
    from rollouts.store.protocol import ObjectStore


def _manifests(files: list[str], namespace: str | None) -> list[dict[str, Any]]:
    """The objects to write, validated (on any error: fail, nothing written), placed in their namespace and
    without a status (the controller owns that)."""
    placed = [_place(obj, namespace_or_default(namespace)) for obj in _load_valid(files)]
    return [{k: v for k, v in obj.items() if k != "status"} for obj in placed]


def _load_valid(files: list[str]) -> list[dict[str, Any]]:
    from rollouts.spec.loader import load_paths
    from rollouts.spec.validation import validate

    loaded = load_paths(files)
    problems = list(loaded.problems) + [p for p in validate(loaded) if p not in loaded.problems]
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        for problem in errors:
            typer.echo(problem.format(), err=True)
        fail(f"{len(errors)} problem(s) found; nothing was changed")
    from rollouts.spec.kinds import KINDS

    # Only kinds with a model are stored; the rest (an image map, a Deployment beside the rollouts) are
    # left out, as lint's warnings already said.
    return [obj.data for obj in loaded.objects if (obj.api_version, obj.kind) in KINDS]


def _check_references(objects: list[dict[str, Any]], store: ObjectStore) -> None:
    """Fails (nothing written) when a templateName names no template in the input or the store."""
    from rollouts.cli.references import missing_templates

    problems = missing_templates(objects, store)
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        fail(f"{len(problems)} problem(s) found; nothing was changed")


def _place(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    meta = dict(obj.get("metadata") or {})
    meta["namespace"] = namespace_for(str(obj.get("kind")), meta.get("namespace") or namespace)
    return {**obj, "metadata": meta}


def _ref(obj: dict[str, Any]) -> str:
    kind = str(obj.get("kind", "")).lower()
    return f"{kind}/{obj['metadata'].get('name')}"


@app.command()
def apply(
    filename: list[str] = typer.Option(..., "--filename", "-f", help="Manifest file or folder; '-' for stdin."),
    namespace: str | None = NAMESPACE_OPTION,
    home: str | None = HOME_OPTION,
    kubeconfig: str | None = KUBECONFIG_OPTION,
    kube_context: str | None = CONTEXT_OPTION,
) -> None:
    """Create or update objects from manifests (validated first: on any error nothing is written)."""
    from rollouts.store.protocol import Conflict, NotFound

    objects = _manifests(filename, namespace)
    store = open_store(home)
    _check_references(objects, store)
    with store.transaction():
        for obj in objects:
            meta = obj["metadata"]
            try:
                current = store.get(obj["kind"], meta["namespace"], meta["name"])
            except NotFound:
                store.create(obj)
                typer.echo(f"{_ref(obj)} created")
                continue
            merged_meta = {**current["metadata"], **{k: v for k, v in meta.items() if k != "resourceVersion"}}
            if merged_meta == current["metadata"] and all(
                current.get(k) == v for k, v in obj.items() if k != "metadata"
            ):
                typer.echo(f"{_ref(obj)} unchanged")
                continue
            desired = {**current, **obj, "metadata": merged_meta}
            try:
                store.update(desired)
            except Conflict as exc:
                fail(str(exc))
            typer.echo(f"{_ref(obj)} configured")


@app.command()
def create(
    kind: str | None = typer.Argument(None, help="'analysisrun' with --from; omit with -f."),
    filename: list[str] = typer.Option([], "--filename", "-f", help="Manifest file or folder; '-' for stdin."),
    from_template: str | None = typer.Option(None, "--from", help="analysisrun: the template to run."),
    cluster: bool = typer.Option(False, "--global", help="analysisrun: --from names a ClusterAnalysisTemplate."),
    arguments: list[str] = typer.Option([], "--argument", "-a", help="analysisrun: argument NAME=VALUE."),
    run_name: str | None = typer.Option(None, "--name", help="analysisrun: its name (default TEMPLATE-xxxxx)."),
    namespace: str | None = NAMESPACE_OPTION,
    home: str | None = HOME_OPTION,
    kubeconfig: str | None = KUBECONFIG_OPTION,
    kube_context: str | None = CONTEXT_OPTION,
) -> None:
    """Create objects from manifests (fails if one already exists), or an analysis run from a template."""
    from rollouts.store.protocol import AlreadyExists

    if kind is not None:
        from rollouts.spec.kinds import UnknownKindError, resolve_resource

        try:
            resolved = resolve_resource(kind)
        except UnknownKindError as exc:
            fail(str(exc))
        if resolved != "AnalysisRun" or not from_template or filename:
            fail("use `create -f FILE`, or `create analysisrun --from TEMPLATE [-a NAME=VALUE]`")
        from rollouts.cli.analysisruns import create_analysisrun

        create_analysisrun(from_template, cluster, arguments, run_name, namespace_or_default(namespace), home)
        return
    if not filename:
        fail("-f FILE is required (or: create analysisrun --from TEMPLATE)")
    objects = _manifests(filename, namespace)
    store = open_store(home)
    _check_references(objects, store)
    with store.transaction():
        for obj in objects:
            try:
                store.create(obj)
            except AlreadyExists as exc:
                fail(str(exc))
            typer.echo(f"{_ref(obj)} created")


@app.command()
def delete(
    kind: str = typer.Argument(..., help="Resource type (rollout, analysistemplate, ...) or TYPE/NAME."),
    name: str | None = typer.Argument(None, help="Object name."),
    namespace: str | None = NAMESPACE_OPTION,
    home: str | None = HOME_OPTION,
    kubeconfig: str | None = KUBECONFIG_OPTION,
    kube_context: str | None = CONTEXT_OPTION,
) -> None:
    """Delete an object (and what it owns: a Rollout's ReplicaSets, pods and analysis runs)."""
    from rollouts.store.protocol import NotFound

    kind_name, object_name = split_kind_name(kind, name)
    if not object_name:
        fail("a name is required: rollouts delete TYPE NAME")
    ns = namespace_for(kind_name, namespace)
    store = open_store(home)
    try:
        store.delete(kind_name, ns, object_name)
    except NotFound as exc:
        fail(str(exc))
    typer.echo(f"{kind_name.lower()}/{object_name} deleted")
