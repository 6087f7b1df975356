"""`rollouts gate check`: for every fixed-threshold metric of an AnalysisTemplate, how often it would roll
back a healthy release at the stable version's real traffic, and what regression it catches in its window.

One line per metric. The arithmetic is rollouts.analysis.noise (binomial over the window's request count,
then the run's count/failureLimit), the metric's shape rollouts.analysis.gate_shape, the traffic
rollouts.analysis.gate_baseline (Prometheus, or --error-rate/--slow-share and --rps by hand). A template
address that names a cluster Service (http://prometheus.prometheus.svc:9090) reaches it through the home's
local cluster while that runs, as `rollouts analyze` does. A rollouts/traffic gate with no Prometheus
given reads the local cluster's own ingress-proxy counters instead (rollouts.analysis.gate_local), when
the selected cluster is a local one that is running (it is never started for this). --canary-weight
given once per gate judges each gated step of a canary-scoped metric at its own weight.

Exit codes: 0 every gate is within the false-rollback target, 1 at least one gate rolls back healthy
releases more often than --target, 2 bad input (file, template, argument, no threshold metric),
3 no gate flagged but the traffic of at least one could not be read (Prometheus unreachable, no data).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer

from rollouts.cli.main import app

if TYPE_CHECKING:
    from rollouts.analysis.gate_baseline import Baseline
    from rollouts.analysis.gate_shape import GateShape
    from rollouts.kube.client import KubeStore
    from rollouts.kube.traffic import ClusterTrafficSource

gate_app = typer.Typer(help="Check analysis gates against the service's real traffic.", no_args_is_help=True)
app.add_typer(gate_app, name="gate")

EXIT_OK, EXIT_FLAGGED, EXIT_INPUT, EXIT_NO_BASELINE = 0, 1, 2, 3


@dataclass(frozen=True)
class ManualBaseline:
    error_rate: float | None
    slow_share: float | None
    rps: float | None


def check_line(shape: GateShape, baseline: Baseline, *, gates: int, target: float,
               canary_weight: float | Sequence[float]) -> tuple[str, bool]:
    """The report line of one metric and whether it is flagged (rollouts.analysis.gate_noise)."""
    from rollouts.analysis.gate_noise import check_line as judged

    line, flagged, _ = judged(shape, baseline, gates=gates, target=target, canary_weight=canary_weight)
    return line, flagged


class ProxyCounters:
    """What the baselines read on the local cluster, set up on first use and never starting a cluster: its
    cluster DNS for Service names in the templates' addresses (`names`), and its traffic API (`source`,
    None when the selected cluster is not a running local one, or does not serve /traffic/v1)."""

    def __init__(self, docs: list[dict[str, Any]], prometheus_address: str | None) -> None:
        self._docs, self._prometheus_address = docs, prometheus_address
        self._store: KubeStore | None = None
        self._source: ClusterTrafficSource | None = None
        self._tried = False
        self._close_dns: Callable[[], None] | None = None
        self._named = False

    def names(self) -> None:
        """Install the cluster DNS once (as `rollouts analyze` does; it says so when the cluster is down)."""
        if not self._named:
            self._named = True
            from rollouts.cli.analysis import _local_cluster_dns

            self._close_dns = _local_cluster_dns(None, self._docs, self._prometheus_address)

    def source(self) -> ClusterTrafficSource | None:
        if not self._tried:
            self._tried = True
            self._connect()
        return self._source

    def _connect(self) -> None:
        import os
        from pathlib import Path

        from rollouts.cli.connection import recorded_running, selected
        from rollouts.kube.client import KubeStore
        from rollouts.kube.config import ConfigError, load_config, local_kubeconfig_path
        from rollouts.kube.traffic import ClusterTrafficSource
        from rollouts.store.protocol import StoreError

        try:
            if selected.kubeconfig or selected.context or os.environ.get("KUBECONFIG"):
                config = load_config(kubeconfig=selected.kubeconfig, context=selected.context)
            else:
                folder = Path(os.environ.get("ROLLOUTS_HOME") or "~/.rollouts").expanduser()
                if not (recorded_running(folder) and local_kubeconfig_path(folder).is_file()):
                    return
                config = load_config(local_kubeconfig_path(folder))
            self._store = KubeStore(config, timeout=10)
            self._source = ClusterTrafficSource.probe(self._store)
        except (ConfigError, OSError, RuntimeError, StoreError) as exc:
            typer.echo(f"note: the local cluster's proxy counters are not readable: {exc}", err=True)
            self._source = None

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        if self._close_dns is not None:
            self._close_dns()


@gate_app.command("check")
def check_command(
    files: list[str] = typer.Option(..., "--filename", "-f", help="AnalysisTemplate file(s)."),
    template: str | None = typer.Option(None, "--template", help="Only this template (default: all in the files)."),
    arguments: list[str] = typer.Option([], "--argument", "-a", help="Template argument NAME=VALUE."),
    lookback: str = typer.Option("7d", "--lookback", help="Look-back of the stable traffic (PromQL duration)."),
    prometheus_address: str | None = typer.Option(
        None, "--prometheus-address", help="Query this Prometheus instead of the address in the templates."),
    gates: int = typer.Option(1, "--gates", min=1, help="Gated steps per release (the runbook's plan has 4)."),
    canary_weight: list[float] = typer.Option(
        [10.0], "--canary-weight", min=0.1, max=100.0,
        help="Canary traffic percent, for metrics that measure only the canary's pods: once for every gate, "
             "or once per gate in step order (as many as --gates)."),
    target: float = typer.Option(0.01, "--target", min=0.0, max=1.0,
                                 help="Flag gates that roll back more healthy releases than this share."),
    error_rate: float | None = typer.Option(None, "--error-rate", min=0.0, max=1.0,
                                            help="Baseline error rate by hand (skips Prometheus for rate gates)."),
    slow_share: float | None = typer.Option(None, "--slow-share", min=0.0, max=1.0,
                                            help="Baseline share slower than the latency bound, by hand."),
    rps: float | None = typer.Option(None, "--rps", min=0.0, help="Service requests per second by hand."),
) -> None:
    """Say, per fixed-threshold metric, how often it rolls back a healthy release and what it can catch.

    Exit 0 all within --target, 1 a gate is flagged, 2 bad input, 3 some traffic could not be read."""
    from rollouts.analysis.gate_shape import prom_duration
    from rollouts.cli.analysis import _parse_args
    from rollouts.spec.loader import load_paths

    loaded = load_paths(files)
    problems = [p for p in loaded.problems if p.severity == "error"]
    if problems:
        for problem in problems:
            typer.echo(problem.format(), err=True)
        raise typer.Exit(EXIT_INPUT)
    docs = [o.data for o in loaded.objects if o.kind in ("AnalysisTemplate", "ClusterAnalysisTemplate")]
    if template is not None:
        docs = [d for d in docs if (d.get("metadata") or {}).get("name") == template]
    if not docs:
        names = ", ".join(str((o.data.get("metadata") or {}).get("name")) for o in loaded.objects
                          if o.kind in ("AnalysisTemplate", "ClusterAnalysisTemplate"))
        typer.echo(f"error: no AnalysisTemplate {template or ''} in the given files"
                   + (f" (found: {names})" if names else ""), err=True)
        raise typer.Exit(EXIT_INPUT)
    try:
        lookback_seconds = prom_duration(lookback)
        cli_args = _parse_args(arguments)
    except ValueError as exc:
        typer.echo(f"error: --lookback: {exc}", err=True)
        raise typer.Exit(EXIT_INPUT) from None
    if len(canary_weight) not in (1, gates):
        typer.echo(f"error: --canary-weight: {len(canary_weight)} weights for --gates {gates} (give one, or one "
                   "per gate)", err=True)
        raise typer.Exit(EXIT_INPUT)
    manual = ManualBaseline(error_rate, slow_share, rps)
    counters = ProxyCounters(docs, prometheus_address)
    try:
        judged, flagged, unavailable = _check_all(docs, cli_args, manual, prometheus_address, lookback,
                                                  lookback_seconds, gates=gates, target=target,
                                                  canary_weight=canary_weight, counters=counters)
    finally:
        counters.close()
    if not judged:
        typer.echo("error: no metric with a fixed threshold on a success rate, error rate or latency quantile",
                   err=True)
        raise typer.Exit(EXIT_INPUT)
    raise typer.Exit(EXIT_FLAGGED if flagged else EXIT_NO_BASELINE if unavailable else EXIT_OK)


def _check_all(docs: list[dict[str, Any]], cli_args: dict[str, str], manual: ManualBaseline,
               prometheus_address: str | None, lookback: str, lookback_seconds: float, *, gates: int,
               target: float, canary_weight: list[float], counters: ProxyCounters) -> tuple[int, int, int]:
    """Print one line per metric; (metrics judged, flagged, without a baseline)."""
    from rollouts.analysis.gate_shape import NotAGate, gate_shape
    from rollouts.spec.analysis import AnalysisTemplate

    judged = flagged = unavailable = 0
    for doc in docs:
        spec = AnalysisTemplate.model_validate({**doc, "kind": "AnalysisTemplate"})
        defaults = {a.name: a.value for a in spec.spec.args or [] if a.value is not None}
        args = {**defaults, **cli_args}
        for metric in spec.spec.metrics:
            label = f"{spec.metadata.name}/{metric.name}" if len(docs) > 1 else metric.name
            try:
                shape = gate_shape(metric, args)
            except (NotAGate, ValueError) as exc:
                typer.echo(f"{label}: skipped: {str(exc).split(': ', 1)[-1]}")
                continue
            judged += 1
            try:
                baseline = _baseline(shape, manual, prometheus_address, lookback, lookback_seconds,
                                     spec.metadata.namespace or "default", counters)
            except RuntimeError as exc:
                unavailable += 1
                typer.echo(f"{label}: no baseline: {exc}")
                continue
            line, is_flagged = check_line(shape, baseline, gates=gates, target=target, canary_weight=canary_weight)
            flagged += is_flagged
            typer.echo(f"{spec.metadata.name}/{line}" if len(docs) > 1 else line)
    return judged, flagged, unavailable


def _baseline(shape: GateShape, manual: ManualBaseline, address: str | None, lookback: str,
              lookback_seconds: float, namespace: str, counters: ProxyCounters) -> Baseline:
    from rollouts.analysis.gate_baseline import Baseline, BaselineUnavailable, prometheus_baseline
    from rollouts.analysis.gate_local import proxy_baseline
    from rollouts.analysis.gate_noise import connectable
    from rollouts.analysis.gate_shape import TrafficMetric
    from rollouts.kube.dns import ResolveError, current_resolver
    from rollouts.store.protocol import StoreError

    by_hand = manual.slow_share if shape.quantile is not None else manual.error_rate
    if by_hand is not None and manual.rps is not None:
        return Baseline(by_hand, manual.rps, "given")
    where = address or shape.address
    if where is None and isinstance(shape.source, TrafficMetric):
        source = counters.source()
        if source is None:
            raise BaselineUnavailable("no Prometheus address and no running local cluster whose proxy counts "
                                      "the traffic (give --prometheus-address, or --error-rate and --rps)")
        try:
            found = proxy_baseline(shape, source, namespace, lookback, lookback_seconds)
        except StoreError as exc:
            raise BaselineUnavailable(f"the local cluster's proxy counters: {exc}") from None
    elif where is None:
        raise BaselineUnavailable("no Prometheus address (give --prometheus-address, or --error-rate and --rps)")
    else:
        counters.names()
        try:
            reached = connectable(where, namespace, current_resolver())
        except ResolveError as exc:
            raise BaselineUnavailable(str(exc)) from None
        found = prometheus_baseline(shape, reached, lookback, lookback_seconds)
    return Baseline(found.bad_share if by_hand is None else by_hand,
                    found.rps if manual.rps is None else manual.rps, found.source)
