"""`rollouts dashboard`: serves the web dashboard in the foreground over the Kubernetes API of the cluster
the usual rules select (`--kubeconfig`/`--context`/$KUBECONFIG, else the home's local cluster, started
if it is down); the controller can serve it too, with --dashboard-address. The token every data call
needs belongs to the home (a 0600 file) unless given otherwise.

What is printed holds no token by default: whatever captures the command's output (a terminal recorder, a CI
log, a process supervisor's journal) would otherwise hold a key to the rollouts' actions. The address line
says where the token is; `--open` opens the page in a browser with the token in its fragment (`#token=...`,
which a browser never sends to the server) through a 0600 file that redirects to it, so the token is not on
the browser's command line either (Jupyter's way); `--show-token` prints the token alone and `--show-url` the
address with it, for who asks."""

from __future__ import annotations

import html
import json
import os
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
    show_url: bool = typer.Option(False, "--show-url", help="Print the address with the token in its fragment "
                                  "(#token=...) instead of without it: keep that output private."),
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
    address_url = f"http://{shown}:{port}/"
    link = page_url(address_url, token)
    if show_url:
        typer.echo(f"dashboard: {link}  (the token, from {source}, is in the fragment: keep this address private)")
    else:
        typer.echo(f"dashboard: {address_url}  (the token is in {source}: `rollouts dashboard --show-token` "
                   "prints it, `--open` opens the page with it)")
    typer.echo(f"cluster: {store.config.describe()}")
    if not is_loopback(address):
        typer.echo(f"{address} is not a loopback address: others can reach the dashboard (with the token)", err=True)
    if open_browser:
        import webbrowser

        opener = write_opener(folder, link)
        # An argument list, never a shell command; the browser is given the file, not the token.
        if not webbrowser.open(opener.as_uri()):
            typer.echo(f"no browser could be started: open {opener} in one (it holds the token)", err=True)

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


OPENER_FILE = "dashboard-open.html"


def write_opener(home: Path, link: str) -> Path:
    """HOME/dashboard-open.html, 0600: a page that sends the browser on to `link` (the address with the token in
    its fragment). Given to the browser instead of `link`, it keeps the token off the browser's command line,
    which other users of the host can read."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / OPENER_FILE
    target = json.dumps(link).replace("<", "\\u003c")  # no `</script>` can end the script early
    page = ("<!doctype html><meta charset=utf-8><title>rollouts dashboard</title>"
            f"<script>location.replace({target})</script>"
            f'<p><a href="{html.escape(link)}">Open the rollouts dashboard</a></p>\n')
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(page)
    os.chmod(path, 0o600)  # exactly 0600 whatever the umask or an older file's mode
    return path
