"""What every store-backed verb shares: the --home and --namespace options, opening the store, and
turning failures into one line on stderr."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, NoReturn

import typer

if TYPE_CHECKING:
    from rollouts.store.sqlite import SQLiteStore

HOME_OPTION = typer.Option(None, "--home", envvar="ROLLOUTS_HOME", help="State folder (default ~/.rollouts).")
NAMESPACE_OPTION = typer.Option(None, "--namespace", "-n", help="Namespace (default: $ROLLOUTS_NAMESPACE or default).")


def namespace_or_default(namespace: str | None) -> str:
    return namespace or os.environ.get("ROLLOUTS_NAMESPACE") or "default"


def namespace_for(kind: str, namespace: str | None) -> str:
    """The namespace an object of `kind` lives in: "" for cluster-scoped kinds."""
    from rollouts.store.protocol import CLUSTER_SCOPED_KINDS

    return "" if kind in CLUSTER_SCOPED_KINDS else namespace_or_default(namespace)


def open_store(home: str | None) -> SQLiteStore:
    from rollouts.store.home import database_path, rollouts_home
    from rollouts.store.sqlite import SQLiteStore

    return SQLiteStore(database_path(rollouts_home(home)))


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def split_kind_name(kind: str, name: str | None) -> tuple[str, str | None]:
    """Accepts `rollout NAME`, `rollout/NAME` and `rollouts.argoproj.io/NAME` (kubectl's forms)."""
    from rollouts.spec.kinds import UnknownKindError, resolve_resource

    if name is None and "/" in kind:
        kind, name = kind.split("/", 1)
    resolved = resolve_resource(kind)
    if name is not None and "/" in name:
        # `describe analysisrun $(get analysisrun -o name | head -1)`: the name carries its kind again.
        prefix, rest = name.split("/", 1)
        if resolve_resource(prefix) != resolved:
            raise UnknownKindError(f'"{name}" is a {resolve_resource(prefix)}, not a {resolved}')
        name = rest
    return resolved, name


def rollout_name(name: str) -> str:
    """`NAME`, `rollout/NAME` or `rollout.argoproj.io/NAME` -> NAME."""
    if "/" in name:
        kind, _, rest = name.partition("/")
        kind_name, _ = split_kind_name(kind, rest)
        if kind_name != "Rollout":
            fail(f"{name!r} is a {kind_name}, not a Rollout")
        return rest
    return name
