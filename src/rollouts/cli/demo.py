"""`rollouts demo`: a self-contained tour. A controller on a temporary home (or --home), the demo rollout
behind the ingress, steady load, then a good release promoted through SLO gates and a bad one rolled back
by its failing gate. Exit 0 when both ended as expected, 1 otherwise, 130 when interrupted."""

from __future__ import annotations

import typer

from rollouts.cli.main import app


@app.command()
def demo(
    home: str | None = typer.Option(None, "--home", help="Use this folder as the home (default: a temporary one)."),
    prometheus: bool = typer.Option(
        False, "--prometheus", help="Measure the gates with PromQL through a real Prometheus (needs the binary)."),
    rate: float = typer.Option(50.0, "--rate", min=1.0, max=500.0, help="Requests per second of the load."),
) -> None:
    """Run a canary demo end to end: a good release is promoted, a bad one is rolled back automatically."""
    import asyncio
    import logging
    import shutil
    import signal
    import tempfile
    import time
    from pathlib import Path

    from rich.console import Console
    from rich.live import Live

    from rollouts.demo.prometheus import DemoPrometheus, PrometheusUnavailable, find_binary, free_port
    from rollouts.demo.runner import DemoRunner, DemoStopped, ReleaseResult
    from rollouts.demo.view import render, summary_line
    from rollouts.store.home import rollouts_home
    from rollouts.store.lock import LockHeld

    binary = None
    if prometheus:
        try:
            binary = find_binary()
        except PrometheusUnavailable as exc:
            typer.echo(f"rollouts demo --prometheus: {exc}", err=True)
            raise typer.Exit(2) from None
    server: DemoPrometheus | None = None
    metrics_port: int | None = None

    folder = rollouts_home(home) if home else Path(tempfile.mkdtemp(prefix="rollouts-demo-"))
    log_file = folder / "demo.log"
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    console = Console()
    started = time.monotonic()
    code = 1
    error = ""
    results: tuple[ReleaseResult, ...] = ()

    async def main() -> None:
        nonlocal results
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        with Live(console=console, refresh_per_second=4, transient=False) as live:
            runner = DemoRunner(folder, stop=stop, rate=rate, on_update=lambda s: live.update(render(s)),
                                prometheus_address=server.address if server else None,
                                proxy_metrics_port=metrics_port)
            results = await runner.run()

    try:
        if binary is not None:
            # Started inside the try so that the finally below stops it whatever happens next.
            metrics_port = free_port()
            server = DemoPrometheus(binary, f"127.0.0.1:{metrics_port}")
            server.start()
        asyncio.run(main())
        code = 0 if results and all(r.as_expected for r in results) else 1
    except DemoStopped as exc:
        error, code = str(exc), 130 if str(exc) == "interrupted" else 1
    except LockHeld as exc:
        error = str(exc)
    except PrometheusUnavailable as exc:
        error, code = f"--prometheus: {exc}", 2
    finally:
        if server is not None:
            server.stop()
        root.removeHandler(handler)
        handler.close()
        if home is None:
            shutil.rmtree(folder, ignore_errors=True)

    typer.echo("")  # the live panel's last frame ends without a newline when output is not a terminal
    for result in results:
        typer.echo(summary_line(result))
    if error:
        typer.echo(f"demo stopped: {error}", err=True)
    where = f"; home and log kept in {folder}" if home else ""
    typer.echo(f"demo finished in {time.monotonic() - started:.1f}s with exit code {code}{where}")
    raise typer.Exit(code)
