"""`rollouts cluster up|down|status|kubeconfig`: the local cluster of a rollouts home (its API server and
its own controllers: pods as processes, Service listeners, the ingress proxy).

`up` starts it in the background (or in the foreground with --foreground) and prints where its
kubeconfig is; `down` stops it and every pod and job of the home; `status` says whether it answers;
`kubeconfig` prints the file.
"""

from __future__ import annotations

from pathlib import Path

import typer

from rollouts.cli.common import HOME_OPTION, fail
from rollouts.cli.main import app

cluster_app = typer.Typer(help="The local cluster: a Kubernetes API server over the home's store.",
                          no_args_is_help=True)
app.add_typer(cluster_app, name="cluster")


@cluster_app.command()
def up(
    foreground: bool = typer.Option(False, "--foreground", help="Serve in this process until Ctrl-C."),
    address: str = typer.Option("127.0.0.1", "--address", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(0, "--port", "-p", help="Port (default: the previous one if free, else any)."),
    images: str | None = typer.Option(None, "--images", help="Image -> command map for the pods (YAML)."),
    probe_period: float = typer.Option(1.0, "--probe-period", help="Readiness probe period (s) by default."),
    max_pods: int = typer.Option(110, "--max-pods", help="Pods this host runs at once; more stay Pending."),
    ingress_metrics_port: int | None = typer.Option(
        None, "--ingress-metrics-port", help="Serve the ingress proxy's ingress-nginx /metrics on this port."),
    no_runtime: bool = typer.Option(False, "--no-runtime", help="Serve the API only: run no pods or listeners."),
    prometheus: bool = typer.Option(
        True, "--prometheus/--no-prometheus",
        help="Run Debian's prometheus (when installed) as Service prometheus/prometheus:9090 of the cluster."),
    prometheus_scrape_interval: str = typer.Option(
        "2s", "--prometheus-scrape-interval", help="How often the cluster's Prometheus scrapes (e.g. 2s, 15s)."),
    home: str | None = HOME_OPTION,
) -> None:
    """Start the local cluster and print its kubeconfig's path."""
    from rollouts.cluster.apiserver.kubeconfig import kubeconfig_path
    from rollouts.cluster.apiserver.server import serve, start_background
    from rollouts.cluster.apiserver.server import status as server_status
    from rollouts.cluster.runtime_options import RuntimeOptions
    from rollouts.store.home import rollouts_home

    folder = rollouts_home(home)
    if not 0 <= port <= 65535:
        fail(f"--port: {port} is not between 0 and 65535")
    runtime = None if no_runtime else RuntimeOptions(
        images=Path(images).resolve() if images else None, probe_period=probe_period, max_pods=max_pods,
        ingress_metrics_port=ingress_metrics_port, prometheus=prometheus,
        prometheus_scrape_interval=prometheus_scrape_interval)
    if runtime is not None and runtime.problems():
        fail("; ".join(runtime.problems()))
    if runtime is not None and runtime.prometheus:
        _say_prometheus(folder)
    if address not in ("127.0.0.1", "::1", "localhost"):
        typer.echo(f"{address} is not a loopback address: anyone who can reach it and holds the token "
                   "from the kubeconfig can change every object", err=True)
    running = server_status(folder)
    if foreground and running is not None:
        fail(f"the local cluster of {folder} is already running at {running.url} (pid {running.pid}); "
             "rollouts cluster down stops it")
    if foreground:
        import asyncio

        typer.echo(f"kubeconfig: {kubeconfig_path(folder)} (written once the server listens; Ctrl-C stops it)")
        try:
            asyncio.run(serve(folder, address, port, runtime=runtime))
        except (OSError, ValueError) as exc:
            fail(str(exc))
        return
    try:
        running = start_background(folder, address, port, runtime=runtime)
    except (OSError, RuntimeError) as exc:
        fail(str(exc))
    typer.echo(f"local cluster: {running.url} (pid {running.pid})")
    typer.echo(f"kubeconfig: {kubeconfig_path(folder)}")
    typer.echo(f"  export KUBECONFIG={kubeconfig_path(folder)}")


def _say_prometheus(home: Path) -> None:
    from rollouts.cluster import prometheus

    if prometheus.find_binary() is None:
        typer.echo(prometheus.missing_line(), err=True)
        return
    typer.echo(f"prometheus: http://{prometheus.NAME}.{prometheus.NAMESPACE}.svc:{prometheus.PORT} (rollouts "
               f"port-forward -n {prometheus.NAMESPACE} svc/{prometheus.NAME} {prometheus.PORT}:{prometheus.PORT}); "
               f"data in {prometheus.folder(home)}")


@cluster_app.command()
def down(home: str | None = HOME_OPTION) -> None:
    """Stop the local cluster's API server."""
    from rollouts.cluster.apiserver.server import stop_background
    from rollouts.store.home import rollouts_home

    typer.echo("local cluster stopped" if stop_background(rollouts_home(home)) else "local cluster was not running")


@cluster_app.command()
def status(home: str | None = HOME_OPTION) -> None:
    """Say whether the local cluster's API server is running (exit code 1 when it is not)."""
    from rollouts.cluster.apiserver.kubeconfig import kubeconfig_path
    from rollouts.cluster.apiserver.server import status as server_status
    from rollouts.store.home import rollouts_home

    folder = rollouts_home(home)
    running = server_status(folder)
    if running is None:
        typer.echo("local cluster: not running (rollouts cluster up starts it)")
        raise typer.Exit(1)
    typer.echo(f"local cluster: running at {running.url} (pid {running.pid}); kubeconfig {kubeconfig_path(folder)}")
    typer.echo(_prometheus_status(folder, running.url))


def _prometheus_status(home: Path, url: str) -> str:
    """One line on the cluster's Prometheus pod, read from the API."""
    import ssl

    import httpx

    from rollouts.cluster import prometheus
    from rollouts.cluster.apiserver.kubeconfig import api_token
    from rollouts.cluster.apiserver.tls import CERT_FILE

    try:
        answer = httpx.get(f"{url}/api/v1/namespaces/{prometheus.NAMESPACE}/pods",
                           headers={"Authorization": f"Bearer {api_token(home)}"}, timeout=5,
                           verify=ssl.create_default_context(cafile=str(home / CERT_FILE)))
        answer.raise_for_status()
        pods = answer.json().get("items") or []
    except (httpx.HTTPError, OSError, ValueError) as exc:
        return f"prometheus: unknown ({exc})"
    for pod in pods:
        status = pod.get("status") or {}
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []):
            return (f"prometheus: ready (pod {pod['metadata']['name']} at {status.get('podIP')}); "
                    f"http://{prometheus.NAME}.{prometheus.NAMESPACE}.svc:{prometheus.PORT} in templates")
    if pods:
        return f"prometheus: pod {pods[0]['metadata']['name']} not ready ({(pods[0].get('status') or {}).get('phase')})"
    if prometheus.find_binary() is None:
        return "prometheus: not running. " + prometheus.missing_line()
    return "prometheus: not running (the cluster was started with --no-prometheus)"


@cluster_app.command()
def kubeconfig(
    path_only: bool = typer.Option(False, "--path", help="Print only the file's path (for KUBECONFIG=...)."),
    home: str | None = HOME_OPTION,
) -> None:
    """Print the local cluster's kubeconfig (context rollouts-local)."""
    from rollouts.cluster.apiserver.kubeconfig import kubeconfig_path
    from rollouts.store.home import rollouts_home

    path = kubeconfig_path(rollouts_home(home))
    if not path.exists():
        fail(f"{path} does not exist yet: rollouts cluster up writes it")
    typer.echo(str(path) if path_only else path.read_text(), nl=path_only)
