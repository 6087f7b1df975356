"""`rollouts controller`: runs the controller and the local runtime in the foreground until Ctrl-C or
SIGTERM. One per home: a second one refuses to start and names the process holding it."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from rollouts.cli.common import HOME_OPTION, fail
from rollouts.cli.main import app

if TYPE_CHECKING:
    import asyncio


@app.command()
def controller(
    home: str | None = HOME_OPTION,
    images: Path | None = typer.Option(None, "--images", help="Image map (default $ROLLOUTS_HOME/images.yaml)."),
    prometheus_address: str | None = typer.Option(
        None, "--prometheus-address", help="Query this Prometheus instead of the address in the templates."),
    probe_period: float = typer.Option(1.0, "--probe-period", help="Seconds between readiness probes."),
    metrics_address: str = typer.Option(
        "127.0.0.1:8090", "--metrics-address",
        help="HOST:PORT for /metrics and /healthz (port 0 picks a free one; an empty value serves neither)."),
    metrics_allowed_hosts: list[str] = typer.Option(  # noqa: B008 - typer's option declaration
        [], "--metrics-allowed-hosts",
        help="Host names /metrics and /healthz also answer to (comma-separated or repeated; * for any), "
             "for a Prometheus scraping a non-loopback address."),
    dashboard_address: str = typer.Option(
        "", "--dashboard-address",
        help="HOST:PORT to serve the web dashboard on, e.g. 127.0.0.1:3100 (default: not served)."),
    notifications_config: Path | None = typer.Option(
        None, "--notifications-config",
        help="Notification services and templates (YAML); default: the argo-rollouts-notification-configmap."),
    max_pods: int = typer.Option(
        110, "--max-pods", min=1,
        help="Most pods run on this host at once, as the kubelet's maxPods; the rest stay Pending with a Warning."),
    log_format: str = typer.Option("json", "--log-format", help="json or text."),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error."),
) -> None:
    """Run the controller with the local runtime (pods as processes, ingress proxy) on this host."""
    import asyncio

    from rollouts.controller.logs import configure
    from rollouts.controller.metrics_http import parse_allowed_hosts, parse_metrics_address
    from rollouts.controller.service import run_controller
    from rollouts.netaddr import AddressError
    from rollouts.store.home import rollouts_home
    from rollouts.store.lock import LockHeld

    configure(log_level, log_format)
    if metrics_address:
        try:
            parse_metrics_address(metrics_address)
            allowed_hosts = parse_allowed_hosts(metrics_allowed_hosts)
        except AddressError as exc:
            fail(str(exc))
    folder = rollouts_home(home)
    companions = [_dashboard(folder, dashboard_address)] if dashboard_address else []
    try:
        asyncio.run(run_controller(folder, images=images, prometheus_address=prometheus_address,
                                   probe_period=probe_period, metrics_address=metrics_address or None,
                                   companions=companions, notifications_config=notifications_config,
                                   metrics_allowed_hosts=allowed_hosts if metrics_address else frozenset(),
                                   max_pods=max_pods))
    except (LockHeld, AddressError, OSError) as exc:
        fail(str(exc))


def _dashboard(home: Path, address: str) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    """The dashboard served beside the loop (its token: $ROLLOUTS_DASHBOARD_TOKEN or HOME/dashboard.token)."""
    from rollouts.api.server import build_server, parse_address, serve_until
    from rollouts.api.token import TokenError, resolve_token
    from rollouts.netaddr import AddressError

    try:
        host, port = parse_address(address)
    except AddressError as exc:
        fail(str(exc))
    try:
        token, _ = resolve_token(home)
    except TokenError as exc:
        fail(f"--dashboard-address: {exc}")
    return lambda stop: serve_until(build_server(home, host, port, token), stop)
