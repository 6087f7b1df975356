"""`rollouts dashboard`: serves the web dashboard for a home in the foreground (the controller can serve it
too, with --dashboard-address). `--show-token` prints the token that mutations need."""

from __future__ import annotations

from pathlib import Path

import typer

from rollouts.cli.common import HOME_OPTION, fail
from rollouts.cli.main import app


@app.command()
def dashboard(
    port: int = typer.Option(3100, "--port", "-p", help="Port to listen on."),
    address: str = typer.Option("127.0.0.1", "--address", help="Address to listen on; anything but loopback "
                                                                 "also requires the token for reading."),
    show_token: bool = typer.Option(False, "--show-token", help="Print the dashboard token and exit."),
    token_file: Path | None = typer.Option(None, "--token-file", help="Read the token from this file "
                                           "(default: $ROLLOUTS_DASHBOARD_TOKEN, else HOME/dashboard.token)."),
    home: str | None = HOME_OPTION,
) -> None:
    """Serve the web dashboard: rollouts live, with actions behind a bearer token."""
    import asyncio
    import signal

    from rollouts.api.server import build_server, serve_until
    from rollouts.api.token import TokenError, read_needs_token, resolve_token
    from rollouts.store.home import rollouts_home

    folder = rollouts_home(home)
    try:
        token, source = resolve_token(folder, token_file)
    except TokenError as exc:
        fail(str(exc))
    if show_token:
        typer.echo(token)
        return
    if not 0 <= port <= 65535:
        fail(f"--port: {port} is not between 0 and 65535")
    shown = f"[{address}]" if ":" in address else address
    typer.echo(f"dashboard: http://{shown}:{port}/  (actions need the token from {source}; "
               "rollouts dashboard --show-token prints it)")
    if read_needs_token(address):
        typer.echo(f"{address} is not a loopback address: reading needs the token too", err=True)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve_until(build_server(folder, address, port, token), stop)

    try:
        asyncio.run(run())
    except OSError as exc:
        fail(str(exc))
