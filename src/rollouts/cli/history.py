"""`rollouts history NAME`: every remembered revision of a rollout, oldest first, with its images, creation
time, outcome (current, promoted, aborted, rolled back, superseded) and cause."""

from __future__ import annotations

import json

import typer

from rollouts.cli.common import (
    CONTEXT_OPTION,
    HOME_OPTION,
    KUBECONFIG_OPTION,
    NAMESPACE_OPTION,
    fail,
    namespace_or_default,
    open_store,
    rollout_name,
)
from rollouts.cli.main import app


@app.command()
def history(
    name: str = typer.Argument(..., help="Rollout name."),
    output: str | None = typer.Option(None, "--output", "-o", help="json for machine-readable output."),
    namespace: str | None = NAMESPACE_OPTION,
    home: str | None = HOME_OPTION,
    kubeconfig: str | None = KUBECONFIG_OPTION,
    kube_context: str | None = CONTEXT_OPTION,
) -> None:
    """Show a rollout's release history, oldest revision first (text and JSON in the same order)."""
    from rollouts.cli.show import not_found
    from rollouts.store.protocol import NotFound
    from rollouts.views.history import history as build
    from rollouts.views.tree import align

    if output not in (None, "json"):
        fail(f'--output: "{output}" is not one of json')
    ns = namespace_or_default(namespace)
    name = rollout_name(name)
    store = open_store(home)
    try:
        obj = store.get("Rollout", ns, name)
    except NotFound:
        fail(not_found("Rollout", ns, name))
    entries = build(store.list_revisions(ns, name), obj)
    if output == "json":
        typer.echo(json.dumps([e.to_dict() for e in entries], indent=2))
        return
    if not entries:
        typer.echo(f"rollout '{name}' has no recorded revisions yet", err=True)
        return
    rows = [("REVISION", "IMAGES", "CREATED", "OUTCOME", "CAUSE")]
    for e in entries:  # oldest first, as `kubectl rollout history` and the JSON output
        images = ",".join(f"{k}={v}" for k, v in sorted(e.images.items()))
        rows.append((f"{e.revision}{' *' if e.live else ''}", images, e.created, e.outcome, e.cause))
    for line in align(rows):
        typer.echo(line)
