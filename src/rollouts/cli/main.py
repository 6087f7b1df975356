"""The `rollouts` command: global options and the verbs. Each verb imports its implementation lazily so
that `rollouts get rollout X` starts fast."""

from __future__ import annotations

import typer

from rollouts import __version__

app = typer.Typer(
    name="rollouts",
    help="Progressive delivery: canary and blue/green releases gated by SLO analysis.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Progressive delivery: canary and blue/green releases gated by SLO analysis."""


@app.command()
def version(short: bool = typer.Option(False, "--short", help="Print only the version number.")) -> None:
    """Print the version of rollouts."""
    typer.echo(__version__ if short else f"rollouts: v{__version__}")


def main() -> None:
    """Console-script entry point: errors are one line on stderr unless --debug asks for the traceback."""
    import sys

    from rollouts.cli import commands  # noqa: F401  (registers the verbs on `app`)

    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a verb's unexpected failure: say what it was, not where
        if debug:
            raise
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"error: {message} (run with --debug for details)", file=sys.stderr)
        sys.exit(1)
