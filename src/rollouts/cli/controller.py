"""`rollouts controller`: runs the operator in the foreground until Ctrl-C or SIGTERM.

Which cluster: `--kubeconfig F [--context C]`, `$KUBECONFIG`, or the service account when run in a pod
(any cluster, as kubectl and controller-runtime choose it); else the local cluster of the home (`--home`,
`$ROLLOUTS_HOME`), started in the background with the runtime flags (`--images`, `--probe-period`,
`--max-pods`, `--proxy-metrics-port`) when it is not running. The operator reaches either only through the Kubernetes API; the local cluster's process runs the pods, so
stopping or killing the operator leaves them serving. One operator per home: a second one refuses to
start and names the process holding it."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from rollouts.cli.common import HOME_OPTION, fail
from rollouts.cli.main import app

if TYPE_CHECKING:
    import asyncio

    from rollouts.kube.config import ClusterConfig


@app.command()
def controller(
    home: str | None = HOME_OPTION,
    kubeconfig: Path | None = typer.Option(
        None, "--kubeconfig", help="Kubeconfig of the cluster to operate (default: $KUBECONFIG, else the local "
                                   "cluster of the home, started when it is not running)."),
    context: str | None = typer.Option(None, "--context", help="Context of the kubeconfig to use."),
    images: Path | None = typer.Option(
        None, "--images", help="Image map for the local cluster it starts (default $ROLLOUTS_HOME/images.yaml)."),
    prometheus_address: str | None = typer.Option(
        None, "--prometheus-address", help="Query this Prometheus instead of the address in the templates."),
    probe_period: float = typer.Option(
        1.0, "--probe-period", help="Seconds between readiness probes (of the local cluster it starts)."),
    metrics_address: str = typer.Option(
        "127.0.0.1:8090", "--metrics-address",
        help="HOST:PORT for /metrics and /healthz (port 0 picks a free one; an empty value serves neither)."),
    metrics_allowed_hosts: list[str] = typer.Option(  # noqa: B008 - typer's option declaration
        [], "--metrics-allowed-hosts",
        help="Host names /metrics and /healthz also answer to (comma-separated or repeated; * for any), "
             "for a Prometheus scraping a non-loopback address."),
    proxy_metrics_port: int | None = typer.Option(
        None, "--proxy-metrics-port", min=0, max=65535,
        help="Port of the ingress proxy's nginx_ingress_controller_* series, for the local cluster it starts."),
    dashboard_address: str = typer.Option(
        "", "--dashboard-address",
        help="HOST:PORT to serve the web dashboard on, e.g. 127.0.0.1:3100 (default: not served)."),
    notifications_config: Path | None = typer.Option(
        None, "--notifications-config",
        help="Notification services and templates (YAML); default: the argo-rollouts-notification-configmap."),
    prometheus: bool = typer.Option(
        True, "--prometheus/--no-prometheus",
        help="Run Debian's prometheus as a pod of the local cluster it starts (when installed), scraping the pods, "
             "the ingress proxy and this controller."),
    max_pods: int = typer.Option(
        110, "--max-pods", min=1,
        help="Most pods the local cluster it starts runs at once, as the kubelet's maxPods; the rest stay "
             "Pending with a Warning."),
    namespace: str | None = typer.Option(
        None, "--namespace", help="Operate only the rollouts of this namespace (default: every namespace)."),
    instance_id: str | None = typer.Option(
        None, "--instance-id",
        help="Operate only objects labelled argo-rollouts.argoproj.io/controller-instance-id=ID (default: only "
             "objects without that label), so several controllers can share a cluster."),
    leader_elect: bool | None = typer.Option(
        None, "--leader-elect/--no-leader-elect",
        help="Act only while holding the argo-rollouts-controller-lock Lease (15 s lease, 10 s renew, 2 s retry); "
             "default: on for a configured cluster, off for the home's local cluster (its lock allows one operator)."),
    leader_election_namespace: str | None = typer.Option(
        None, "--leader-election-namespace",
        help="Namespace of the Lease (default: $POD_NAMESPACE, else the kubeconfig context's namespace)."),
    workers: int = typer.Option(2, "--workers", min=1, max=64, help="Keys reconciled at once per queue."),
    log_format: str = typer.Option("json", "--log-format", help="json or text."),
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning or error."),
) -> None:
    """Run the operator against a Kubernetes API (by default the home's local cluster)."""
    import asyncio

    from rollouts.controller.logs import configure
    from rollouts.controller.metrics_http import parse_allowed_hosts, parse_metrics_address
    from rollouts.controller.service import Scope, run_controller
    from rollouts.kube.client import KubeStore
    from rollouts.netaddr import AddressError
    from rollouts.store.home import rollouts_home
    from rollouts.store.lock import HomeLock, LockHeld
    from rollouts.store.protocol import StoreError

    configure(log_level, log_format)
    allowed_hosts: frozenset[str] = frozenset()
    if metrics_address:
        try:
            host, port = parse_metrics_address(metrics_address)
            allowed_hosts = parse_allowed_hosts(metrics_allowed_hosts)
        except AddressError as exc:
            fail(str(exc))
        _check_listenable(metrics_address, host, port)
    folder = rollouts_home(home)
    # The dashboard's address and token are checked before any cluster is started; it opens its store on
    # the cluster chosen below only when it runs.
    chosen: list[ClusterConfig] = []
    companions = [_dashboard(folder, dashboard_address, lambda: chosen[0])] if dashboard_address else []
    remote = (kubeconfig is not None or context is not None or bool(os.environ.get("KUBECONFIG"))
              or _in_a_pod())
    if remote:
        config = _configured(kubeconfig, context)
        lock_home = None
    else:
        try:
            HomeLock(folder).acquire().release()  # refuse before starting anything when an operator runs here
        except LockHeld as exc:
            fail(str(exc))
        config = _local_cluster(folder, images=images, probe_period=probe_period, max_pods=max_pods,
                                proxy_metrics_port=proxy_metrics_port, prometheus=prometheus)
        lock_home = folder
    typer.echo(f"cluster: {config.describe()}", err=True)
    if metrics_address:
        typer.echo(f"metrics: http://{metrics_address}/metrics (and /healthz)", err=True)
    chosen.append(config)
    elect = remote if leader_elect is None else leader_elect
    lease_namespace = leader_election_namespace or os.environ.get("POD_NAMESPACE") or config.namespace or "default"
    scope = Scope(namespace=namespace or None, instance_id=instance_id or None,
                  lease_namespace=lease_namespace if elect else None, workers=workers,
                  **({"identity": os.environ["POD_NAME"]} if os.environ.get("POD_NAME") else {}))
    store = KubeStore(config, user_agent=f"rollouts-controller/{scope.identity}")
    try:
        asyncio.run(run_controller(store, home=lock_home, prometheus_address=prometheus_address,
                                   metrics_address=metrics_address or None, companions=companions,
                                   notifications_config=notifications_config,
                                   metrics_allowed_hosts=allowed_hosts, scope=scope))
    except (LockHeld, AddressError, OSError, StoreError) as exc:
        fail(str(exc))
    finally:
        store.close()
        # The interpreter's last collection walks the whole heap (every cached object): 1-2 s on a quiet
        # machine, 10 s and more on a loaded one, after the Lease was already released. Frozen objects are
        # skipped by it; the process is about to exit.
        gc.freeze()


def _in_a_pod() -> bool:
    """Running in a Kubernetes pod with a service account: that cluster is the one to operate."""
    from rollouts.kube.config import SERVICE_ACCOUNT_DIR

    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and (SERVICE_ACCOUNT_DIR / "token").is_file()


def _check_listenable(address: str, host: str, port: int) -> None:
    """Fail before starting a local cluster when the metrics port is taken (the operator could not serve)."""
    import socket

    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp's listener does
        try:
            probe.bind((host.strip("[]") or "0.0.0.0", port))
        except OSError as exc:
            fail(f"--metrics-address {address}: cannot listen ({exc.strerror or exc}); choose another HOST:PORT")


def _configured(kubeconfig: Path | None, context: str | None) -> ClusterConfig:
    from rollouts.kube.config import ConfigError, load_config

    try:
        return load_config(kubeconfig, context)
    except ConfigError as exc:
        fail(str(exc))


def _local_cluster(home: Path, *, images: Path | None, probe_period: float, max_pods: int,
                   proxy_metrics_port: int | None, prometheus: bool = True) -> ClusterConfig:
    """The home's local cluster, started in the background with these runtime flags when not running."""
    from rollouts.cluster.apiserver.kubeconfig import kubeconfig_path
    from rollouts.cluster.apiserver.server import start_background, status
    from rollouts.cluster.runtime_options import RuntimeOptions
    from rollouts.kube.config import ConfigError, load_config

    home.mkdir(parents=True, exist_ok=True)
    running = status(home)
    if running is None:
        options = RuntimeOptions(images=images, probe_period=probe_period, max_pods=max_pods,
                                 ingress_metrics_port=proxy_metrics_port, prometheus=prometheus)
        try:
            running = start_background(home, runtime=options)
        except (OSError, RuntimeError) as exc:
            fail(f"cannot start the local cluster of {home}: {exc}")
        typer.echo(f"local cluster started: {running.url} (pid {running.pid}); rollouts cluster down --home "
                   f"{home} stops it and its pods", err=True)
    else:
        typer.echo(f"local cluster already running: {running.url} (pid {running.pid}); its runtime flags stay "
                   "as it was started with", err=True)
    try:
        return load_config(kubeconfig_path(home))
    except ConfigError as exc:
        fail(str(exc))


def _dashboard(home: Path, address: str,
               config: Callable[[], ClusterConfig]) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    """The dashboard served beside the loop over the operator's cluster (its own KubeStore on `config()`;
    its token: $ROLLOUTS_DASHBOARD_TOKEN or HOME/dashboard.token)."""
    from rollouts.api.server import build_server, parse_address, serve_until
    from rollouts.api.token import TokenError, resolve_token
    from rollouts.kube.client import KubeStore
    from rollouts.netaddr import AddressError

    try:
        host, port = parse_address(address)
    except AddressError as exc:
        fail(str(exc))
    try:
        token, _ = resolve_token(home)
    except TokenError as exc:
        fail(f"--dashboard-address: {exc}")
    return lambda stop: serve_until(build_server(lambda: KubeStore(config()), host, port, token), stop)
