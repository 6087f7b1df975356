"""What every store-backed verb shares: the --home, --kubeconfig, --context and --namespace options,
opening the store (a `KubeStore` on the cluster they select, see `rollouts.cli.connection`), and turning
failures into one line on stderr."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, NoReturn

import typer

if TYPE_CHECKING:
    from rollouts.kube.client import KubeStore


def _remember_kubeconfig(value: str | None) -> str | None:
    from rollouts.cli.connection import remember

    remember(kubeconfig=value)
    return value


def _remember_context(value: str | None) -> str | None:
    from rollouts.cli.connection import remember

    remember(context=value)
    return value


HOME_OPTION = typer.Option(None, "--home", envvar="ROLLOUTS_HOME",
                           help="State folder (default ~/.rollouts); alone, it selects that home's local cluster.")
# Taken by every verb and by the root command; the values reach open_store through cli.connection.
KUBECONFIG_OPTION = typer.Option(None, "--kubeconfig", callback=_remember_kubeconfig, expose_value=False,
                                 help="Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, the local cluster).")
CONTEXT_OPTION = typer.Option(None, "--context", callback=_remember_context, expose_value=False,
                              help="Kubeconfig context to use instead of its current-context.")
NAMESPACE_OPTION = typer.Option(None, "--namespace", "-n", help="Namespace (default: $ROLLOUTS_NAMESPACE or default).")


def namespace_or_default(namespace: str | None) -> str:
    return namespace or os.environ.get("ROLLOUTS_NAMESPACE") or "default"


def namespace_for(kind: str, namespace: str | None) -> str:
    """The namespace an object of `kind` lives in: "" for cluster-scoped kinds."""
    from rollouts.store.protocol import CLUSTER_SCOPED_KINDS

    return "" if kind in CLUSTER_SCOPED_KINDS else namespace_or_default(namespace)


def open_store(home: str | None) -> KubeStore:
    """A `KubeStore` on the cluster this invocation selects; the home's local cluster is started when it is
    the one selected and is down. A kubeconfig that cannot be used is one error line, exit 1."""
    from rollouts.cli.connection import connect
    from rollouts.kube.config import ConfigError

    try:
        return connect(home)
    except (ConfigError, RuntimeError, OSError) as exc:
        fail(str(exc))


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
