"""`rollouts lint`: check manifests (files, directories, stdin) for what this project and Argo refuse."""

from __future__ import annotations

from typing import Annotated

import typer

from rollouts.cli.main import app

_FILES = typer.Option(
    "--filename", "-f", help="Manifest file or directory (recursive); '-' reads stdin. Repeatable."
)
_OUTPUT = typer.Option("--output", "-o", help="Output format: text or json.")
_PROMETHEUS = typer.Option("--prometheus-address", help="Estimate threshold gates against this Prometheus "
                           "instead of the templates' addresses.")
_LOOKBACK = typer.Option("--lookback", help="Look-back of the live baseline for threshold gates (PromQL duration).")
_GATE_CHECK = typer.Option("--gate-check/--no-gate-check",
                           help="Warn about threshold gates within noise of the live baseline (needs a Prometheus).")


@app.command()
def lint(
    filename: Annotated[list[str] | None, _FILES] = None,
    more: Annotated[list[str] | None, typer.Argument(metavar="FILE", help="More files or directories "
                                                     "(`lint -f a.yaml b.yaml` checks both).")] = None,
    output: Annotated[str, _OUTPUT] = "text",
    prometheus_address: Annotated[str | None, _PROMETHEUS] = None,
    lookback: Annotated[str, _LOOKBACK] = "7d",
    gate_check: Annotated[bool, _GATE_CHECK] = True,
) -> None:
    """Check manifests: one line per problem, `ok` per valid object; exit 1 when any error is found.

    Fixed-threshold gates of AnalysisTemplates that would roll back more than 1 % of healthy releases at
    the live baseline get a warning, as `rollouts gate check` computes it, when a Prometheus answers."""
    if output not in ("text", "json"):
        typer.echo(f'--output: "{output}" is not a format (use text or json)', err=True)
        raise typer.Exit(2)
    files = [*(filename or []), *(more or [])]
    if not files:
        raise typer.BadParameter("give at least one file: -f FILE [FILE]...", param_hint="'-f' / '--filename'")
    from rollouts.cli.lint_report import GateCheck, run_lint

    code = run_lint(files, output, gates=GateCheck(prometheus_address, lookback, gate_check))
    raise typer.Exit(code)
