"""`rollouts lint`: check manifests (files, directories, stdin) for what this project and Argo refuse."""

from __future__ import annotations

from typing import Annotated

import typer

from rollouts.cli.main import app

_FILES = typer.Option(
    "--filename", "-f", help="Manifest file or directory (recursive); '-' reads stdin. Repeatable."
)
_OUTPUT = typer.Option("--output", "-o", help="Output format: text or json.")


@app.command()
def lint(
    filename: Annotated[list[str] | None, _FILES] = None,
    more: Annotated[list[str] | None, typer.Argument(metavar="FILE", help="More files or directories "
                                                     "(`lint -f a.yaml b.yaml` checks both).")] = None,
    output: Annotated[str, _OUTPUT] = "text",
) -> None:
    """Check manifests: one line per problem, `ok` per valid object; exit 1 when any error is found."""
    if output not in ("text", "json"):
        typer.echo(f'--output: "{output}" is not a format (use text or json)', err=True)
        raise typer.Exit(2)
    files = [*(filename or []), *(more or [])]
    if not files:
        raise typer.BadParameter("give at least one file: -f FILE [FILE]...", param_hint="'-f' / '--filename'")
    from rollouts.cli.lint_report import run_lint

    code = run_lint(files, output)
    raise typer.Exit(code)
