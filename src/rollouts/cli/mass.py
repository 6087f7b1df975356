"""`abort --all`: the runbook's mass rollback as one command, one line per rollout and an exit code that
says whether every abort was written."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from rollouts.store.protocol import ObjectStore


def abort_all(store: ObjectStore, namespace: str | None) -> int:
    """Abort every rollout of `namespace` (None: all namespaces); 0 when all succeeded, 1 otherwise."""
    from rollouts.api.actions import write_patch
    from rollouts.engine import intents
    from rollouts.spec.rollout import Rollout
    from rollouts.store.protocol import StoreError

    objects = store.list("Rollout", namespace)
    if not objects:
        where = f'namespace "{namespace}"' if namespace is not None else "any namespace"
        typer.echo(f"No rollouts found in {where}.", err=True)
        return 0
    failed = 0
    for obj in objects:
        meta = obj["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        label = f"{ns}/{name}" if namespace is None else name
        try:
            patch = intents.abort(Rollout.model_validate(obj))
            write_patch(store, ns, name, patch)
        except (intents.IntentError, StoreError, ValueError) as exc:
            failed += 1
            typer.echo(f"{label}: failed: {str(exc).splitlines()[0]}")
            continue
        typer.echo(f"{label}: {patch.message}")
    return 1 if failed else 0
