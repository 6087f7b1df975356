"""The `rollouts` command: global options and the verbs. Each verb imports its implementation lazily so
that `rollouts get rollout X` starts fast."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rollouts import __version__

if TYPE_CHECKING:
    import typer

_app: Any = None
app: typer.Typer  # built lazily by __getattr__ below


def _build_app() -> typer.Typer:
    import typer

    from rollouts.cli.common import CONTEXT_OPTION, HOME_OPTION, KUBECONFIG_OPTION
    from rollouts.cli.conventions import RolloutsGroup

    app = typer.Typer(
        name="rollouts",
        cls=RolloutsGroup,  # one-line usage errors, `--flag=false`, Examples in every help
        help="Progressive delivery: canary and blue/green releases gated by SLO analysis.",
        no_args_is_help=True,
        add_completion=True,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def _root(
        kubeconfig: str | None = typer.Option(None, "--kubeconfig", help="Kubeconfig file for every verb."),
        context: str | None = typer.Option(None, "--context", help="Kubeconfig context for every verb."),
    ) -> None:
        """Progressive delivery: canary and blue/green releases gated by SLO analysis."""
        from rollouts.cli.connection import remember

        remember(kubeconfig, context, reset=True)  # a verb's own --kubeconfig/--context override these

    @app.command()
    def version(
        short: bool = typer.Option(False, "--short", help="Print only the version number."),
        home: str | None = HOME_OPTION,
        kubeconfig: str | None = KUBECONFIG_OPTION,
        kube_context: str | None = CONTEXT_OPTION,
    ) -> None:
        """Print the version of rollouts and which cluster the verbs would use."""
        if short:
            typer.echo(__version__)
            return
        from rollouts.cli.connection import in_use

        typer.echo(f"rollouts: v{__version__}")
        typer.echo(f"cluster: {in_use(home)}")

    return app


def __getattr__(name: str) -> typer.Typer:
    # `app` is built on first use so the fast path of main() never imports typer (and the pydantic it loads).
    global _app
    if name == "app":
        if _app is None:
            _app = _build_app()
        return _app  # type: ignore[no-any-return]
    raise AttributeError(name)


def main() -> None:
    """Console-script entry point: errors are one line on stderr unless --debug asks for the traceback."""
    import sys

    from rollouts.cli.fast import run_fast

    code = run_fast(sys.argv[1:])  # `get rollout NAME` without loading every verb
    if code is not None:
        sys.exit(code)
    from rollouts.cli import (
        cluster,  # noqa: F401  (rollouts cluster up|down|status|kubeconfig)
        commands,  # noqa: F401  (registers the verbs on `app`)
        gate,  # noqa: F401  (rollouts gate check)
    )

    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    try:
        __getattr__("app")(prog_name="rollouts")  # also under `python -m rollouts`
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a verb's unexpected failure: say what it was, not where
        if debug:
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"error: {message} (run with --debug for details)", file=sys.stderr)
        sys.exit(1)
