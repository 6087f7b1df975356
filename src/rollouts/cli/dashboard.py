"""`rollouts dashboard`: serves the web dashboard in the foreground over the Kubernetes API of the cluster
the usual rules select (`--kubeconfig`/`--context`/$KUBECONFIG, else the home's local cluster, started
if it is down); the controller can serve it too, with --dashboard-address. The token every data call
needs belongs to the home; the address printed carries it in its fragment (`#token=...`, which a browser
never sends to the server), `--open` opens it in a browser and `--show-token` prints the token alone."""

from __future__ import annotations

from pathlib import Path

import typer

from rollouts.cli.common import CONTEXT_OPTION, HOME_OPTION, KUBECONFIG_OPTION, fail, open_store
from rollouts.cli.main import app


@app.command()
def dashboard(
    port: int = typer.Option(3100, "--port", "-p", help="Port to listen on."),
    address: str = typer.Option("127.0.0.1", "--address", help="Address to listen on (loopback unless told "
                                                                 "otherwise; every data call needs the token)."),
    open_browser: bool = typer.Option(False, "--open", help="Open the dashboard (with its token) in a browser."),
    show_token: bool = typer.Option(False, "--show-token", help="Print the dashboard token and exit."),
    token_file: Path | None = typer.Option(None, "--token-file", help="Read the token from this file "
                                           "(default: $ROLLOUTS_DASHBOARD_TOKEN, else HOME/dashboard.token)."),
    home: str | None = HOME_OPTION,
    kubeconfig: str | None = KUBECONFIG_OPTION,
    kube_context: str | None = CONTEXT_OPTION,
) -> None:
    """Serve the web dashboard: rollouts live, with actions behind a bearer token."""
    import asyncio
    import signal

    from rollouts.api.server import build_server, page_url, serve_until
    from rollouts.api.token import TokenError, is_loopback, resolve_token
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
    # Opened now, not on the first request: a bad kubeconfig fails here, and a local cluster that has to be
    # started says so before the address line.
    store = open_store(home)
    shown = f"[{address}]" if ":" in address else address
    link = page_url(f"http://{shown}:{port}/", token)
    typer.echo(f"dashboard: {link}  (the token, from {source}, is in the fragment: keep this address private)")
    typer.echo(f"cluster: {store.config.describe()}")
    if not is_loopback(address):
        typer.echo(f"{address} is not a loopback address: others can reach the dashboard (with the token)", err=True)
    if open_browser:
        import webbrowser

        webbrowser.open(link)  # an argument list, never a shell command

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve_until(build_server(lambda: store, address, port, token), stop)

    try:
        asyncio.run(run())
    except OSError as exc:
        fail(str(exc))
