"""`rollouts controller`: runs the controller and the local runtime in the foreground until Ctrl-C or
SIGTERM. One per home: a second one refuses to start and names the process holding it."""

from __future__ import annotations

from pathlib import Path

import typer

from rollouts.cli.common import HOME_OPTION, fail
from rollouts.cli.main import app


@app.command()
def controller(
    home: str | None = HOME_OPTION,
    images: Path | None = typer.Option(None, "--images", help="Image map (default $ROLLOUTS_HOME/images.yaml)."),
    prometheus_address: str | None = typer.Option(
        None, "--prometheus-address", help="Query this Prometheus instead of the address in the templates."),
    probe_period: float = typer.Option(1.0, "--probe-period", help="Seconds between readiness probes."),
    log_format: str = typer.Option("json", "--log-format", help="json or text."),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error."),
) -> None:
    """Run the controller with the local runtime (pods as processes, ingress proxy) on this host."""
    import asyncio

    from rollouts.controller.logs import configure
    from rollouts.controller.service import run_controller
    from rollouts.store.home import rollouts_home
    from rollouts.store.lock import LockHeld

    configure(log_level, log_format)
    folder = rollouts_home(home)
    try:
        asyncio.run(run_controller(folder, images=images, prometheus_address=prometheus_address,
                                   probe_period=probe_period))
    except LockHeld as exc:
        fail(str(exc))
