"""`rollouts doctor`: the runbook's pre-release checklist as one command. Each check prints one line
`PASS|WARN|FAIL|SKIP name: detail`; the exit code is 1 when any check failed (a WARN, such as a gate within
noise of the live baseline, does not fail it).

Everything it reads comes through the Kubernetes API of the cluster the usual rules select (see
`rollouts.cli.connection`); its `cluster` line names that cluster and says whether it answers. Unlike
the other verbs, doctor only looks: it never starts the local cluster."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from rollouts.cli.common import (
    CONTEXT_OPTION,
    HOME_OPTION,
    KUBECONFIG_OPTION,
    NAMESPACE_OPTION,
    namespace_or_default,
)
from rollouts.cli.main import app

if TYPE_CHECKING:
    from rollouts.kube.client import KubeStore
    from rollouts.spec.analysis import AnalysisRun
    from rollouts.spec.rollout import Rollout, RolloutAnalysis
    from rollouts.store.protocol import ObjectStore

TRAFFIC_PLUGIN = "rollouts/traffic"
GATE_TIMEOUT = 30.0


@dataclass(frozen=True)
class Check:
    verdict: str  # PASS, WARN, FAIL or SKIP
    name: str
    detail: str

    def line(self) -> str:
        return f"{self.verdict} {self.name}: {self.detail}"


def check_controller(home: Path) -> Check:
    """Running = the lock file names a live process (the holder clears it when it stops)."""
    from rollouts.cli.home_controller import find
    from rollouts.store.lock import LOCK_FILE

    start = f"start it: rollouts controller --home {home}"
    try:
        text = (home / LOCK_FILE).read_text().strip()
    except OSError:
        text = ""
    if not text.isdigit():
        return Check("FAIL", "controller", f"not running on {home} ({start})")
    pid = int(text)
    if not (Path("/proc") / str(pid)).exists():
        return Check("FAIL", "controller", f"pid {pid} in the lock file is gone ({start})")
    if find(home) is None:
        return Check("FAIL", "controller", f"pid {pid} in the lock file is not a controller")
    return Check("PASS", "controller", f"running (pid {pid}) on {home}")


def check_healthz(address: str | None, home: Path | None = None) -> Check:
    """Probes /healthz at `address`, else at the address of the controller running on `home`."""
    import httpx

    source = ""
    if not address and home is not None:
        from rollouts.cli.home_controller import find, healthz_address

        running = find(home)
        if running is None:
            return Check("SKIP", "controller-health", "no controller runs on this home")
        if running.metrics_address is None:
            return Check("SKIP", "controller-health", f"the controller (pid {running.pid}) serves no /healthz "
                         "(started with an empty --metrics-address)")
        address = healthz_address(running)
        if address is None:
            return Check("FAIL", "controller-health", f"the controller (pid {running.pid}) answers /healthz on "
                         "none of its ports (pass --controller-address HOST:PORT)")
        source = f" (the address of pid {running.pid})"
    if not address:
        return Check("SKIP", "controller-health", "no controller address (pass --controller-address HOST:PORT)")
    url = address if address.startswith("http") else f"http://{address}"
    try:
        response = httpx.get(url.rstrip("/") + "/healthz", timeout=3)
    except httpx.HTTPError as exc:
        return Check("FAIL", "controller-health", f"{url}/healthz{source}: {exc}")
    verdict = "PASS" if response.status_code == 200 else "FAIL"
    return Check(verdict, "controller-health", f"{url}/healthz{source} answered {response.status_code}")


def _cluster_config(home: Path) -> tuple[str, Any]:
    """The line naming the cluster in use, and its `ClusterConfig` (None when there is nothing to reach yet).
    The same choice `open_store` makes, minus starting the local cluster."""
    from rollouts.cli import connection
    from rollouts.kube.config import ConfigError, load_config, local_kubeconfig_path

    kubeconfig, context = connection.selected.kubeconfig, connection.selected.context
    described = connection.in_use(str(home))
    local = connection.local_home(str(home), kubeconfig, context)
    try:
        if local is not None:
            path = local_kubeconfig_path(local)
            return described, load_config(path, context) if path.is_file() else None
        return described, load_config(kubeconfig, context)
    except ConfigError:
        return described, None


def check_cluster(home: Path) -> tuple[Check, KubeStore | None]:
    """Which cluster the verbs use and whether its API answers (`/version`); the store when it does."""
    from rollouts.kube.client import KubeStore
    from rollouts.store.protocol import StoreError

    described, config = _cluster_config(home)
    if config is None:
        return Check("FAIL", "cluster", f"{described} (start it: rollouts cluster up --home {home})"), None
    store = KubeStore(config, timeout=5)
    try:
        version = store.request("GET", "/version")
    except StoreError as exc:
        store.close()
        return Check("FAIL", "cluster", f"{described} does not answer: {exc}"), None
    git = version.get("gitVersion") if isinstance(version, dict) else None
    return Check("PASS", "cluster", f"{described} answers (Kubernetes {git or 'version unknown'})"), store


def _gate_analyses(rollout: Rollout) -> list[RolloutAnalysis]:
    strategy = rollout.spec.strategy
    if strategy.canary is not None:
        found: list[RolloutAnalysis] = [s.analysis for s in strategy.canary.steps or [] if s.analysis]
        if strategy.canary.analysis is not None:
            found.append(strategy.canary.analysis)
        return found
    if strategy.blue_green is not None:
        return [a for a in (strategy.blue_green.pre_promotion_analysis,
                            strategy.blue_green.post_promotion_analysis) if a is not None]
    return []


def _template(store: ObjectStore, namespace: str, name: str, cluster: bool) -> dict[str, Any] | None:
    from rollouts.store.protocol import NotFound

    try:
        return store.get("ClusterAnalysisTemplate" if cluster else "AnalysisTemplate",
                         "" if cluster else namespace, name)
    except NotFound:
        return None


def check_templates(store: ObjectStore, namespace: str, rollouts: list[Rollout]) -> tuple[Check, list[dict[str, Any]]]:
    """Every template a rollout refers to is present, and every template of the namespace (and cluster) is
    valid by the lint rules. Returns the referenced templates (all of them when no rollout refers to any)."""
    from rollouts.cli.patching import lint_object

    present = store.list("AnalysisTemplate", namespace) + store.list("ClusterAnalysisTemplate")
    wanted = {(ref.template_name, bool(ref.cluster_scope)) for r in rollouts
              for a in _gate_analyses(r) for ref in a.templates}
    missing = sorted(n for n, cluster in wanted if _template(store, namespace, n, cluster) is None)
    if missing:
        return Check("FAIL", "analysis-templates", f"missing in {namespace}: {', '.join(missing)} (apply them: "
                     f"rollouts apply -f FILE -n {namespace}, e.g. infra/rollouts/analysis-templates.yaml)"), []
    if not present:
        return Check("FAIL", "analysis-templates", f'none in namespace "{namespace}" (apply them: rollouts apply '
                     f"-f FILE -n {namespace})"), []
    for doc in present:
        problems = lint_object(store, doc)
        if problems:
            return Check("FAIL", "analysis-templates", problems[0].format()), present
    referenced = [d for n, cluster in sorted(wanted) if (d := _template(store, namespace, n, cluster))]
    names = ", ".join(d["metadata"]["name"] for d in present)
    used = f"; {len(referenced)} used by the rollouts" if rollouts else ""
    return Check("PASS", "analysis-templates", f"{len(present)} valid ({names}){used}"), referenced or present


def _prometheus_addresses(docs: list[dict[str, Any]]) -> list[str]:
    found: list[str] = []
    for doc in docs:
        for metric in (doc.get("spec") or {}).get("metrics") or []:
            address = ((metric.get("provider") or {}).get("prometheus") or {}).get("address")
            if address and address not in found:
                found.append(address)
    return found


def check_prometheus(docs: list[dict[str, Any]], override: str | None, store: ObjectStore | None = None,
                     namespace: str = "default") -> Check:
    """Each Prometheus the templates query answers /-/healthy; with `store`, a cluster Service name
    (prometheus.prometheus.svc) is reached through the local cluster's listener, as the gates reach it."""
    import httpx

    from rollouts.kube.dns import ClusterResolver, ResolveError

    addresses = _prometheus_addresses(docs)
    if not addresses:
        return Check("SKIP", "prometheus", "no analysis template queries Prometheus")
    targets = [override] if override else addresses
    resolver = ClusterResolver(store) if store is not None else None
    for address in targets:
        url = address.rstrip("/") + "/-/healthy"
        try:
            resolved = resolver.resolve(url, namespace) if resolver is not None else None
            headers = {"Host": resolved.host} if resolved is not None and resolved.host else {}
            response = httpx.get(resolved.url if resolved is not None else url, timeout=3, headers=headers)
        except ResolveError as exc:
            return Check("FAIL", "prometheus", f"{exc} ({_prometheus_hint(override)})")
        except httpx.HTTPError as exc:
            return Check("FAIL", "prometheus", f"{url}: {type(exc).__name__}: {exc} ({_prometheus_hint(override)})")
        if response.status_code != 200:
            return Check("FAIL", "prometheus", f"{url} answered {response.status_code}")
    return Check("PASS", "prometheus", ", ".join(targets) + " healthy")


def check_gate_noise(objects: list[dict[str, Any]], prometheus_address: str | None, lookback: str = "7d",
                     store: ObjectStore | None = None) -> Check:
    """Fixed-threshold gates a healthy release would often fail at the live baseline (`rollouts gate check`'s
    estimate): a WARN, not a FAIL, since the setup works; the gate is what is likely to cry wolf. With
    `store`, a cluster Service name in an address reaches it as check_prometheus does."""
    from rollouts.analysis.gate_noise import noisy_gates
    from rollouts.kube.dns import ClusterResolver

    try:
        found = noisy_gates(objects, prometheus_address=prometheus_address, lookback=lookback,
                            resolver=ClusterResolver(store) if store is not None else None)
    except Exception as exc:  # noqa: BLE001 - an estimate that cannot be made is not a broken setup
        return Check("SKIP", "gate-noise", f"no estimate: {type(exc).__name__}: {exc}")
    if not found:
        return Check("PASS", "gate-noise", "no fixed-threshold gate within noise of the live baseline")
    worst = max(found, key=lambda gate: gate.release_probability)
    more = f" (and {len(found) - 1} more; rollouts lint lists them)" if len(found) > 1 else ""
    return Check("WARN", "gate-noise", f"{worst.kind}/{worst.template} {worst.path}: {worst.message}{more}")


def _prometheus_hint(override: str | None) -> str:
    """How to get a Prometheus to answer: install it when the machine has none, else start or point to one."""
    import shutil

    if shutil.which("prometheus") is None:
        from rollouts.cluster.prometheus import missing_line

        return missing_line()
    if override:
        return "is it running there?"
    return "start it, or pass --prometheus-address to use another one"


def _uses_traffic_plugin(doc: dict[str, Any]) -> bool:
    return any(TRAFFIC_PLUGIN in ((m.get("provider") or {}).get("plugin") or {})
               for m in (doc.get("spec") or {}).get("metrics") or [])


async def _measure(run: AnalysisRun, prometheus_address: str | None,
                   store: ObjectStore | None = None) -> AnalysisRun:
    """One measurement per metric within GATE_TIMEOUT. With `store`, the providers resolve cluster Service
    names (http://prometheus.prometheus.svc:9090) through its Services' local listeners for the time of
    the measurement, as check_prometheus and `rollouts gate check` reach the same address; the host's own
    resolver knows no such name."""
    import asyncio

    from rollouts.analysis.executor import AnalysisExecutor
    from rollouts.controller.clock import SystemClock
    from rollouts.kube.dns import ClusterResolver, current_resolver, set_resolver
    from rollouts.runtime.local.job_metric import local_job_provider

    clock = SystemClock()
    executor = AnalysisExecutor(prometheus_address=prometheus_address, providers={"job": local_job_provider()})
    deadline = asyncio.get_running_loop().time() + GATE_TIMEOUT
    previous = current_resolver()
    if store is not None:
        set_resolver(ClusterResolver(store))
    try:
        while True:
            run, delay = executor.step(run, clock.now())
            if run.status is not None and run.status.phase in ("Successful", "Failed", "Error", "Inconclusive"):
                return run
            # One finished measurement per metric answers the question; an error need not be retried.
            results = run.status.metric_results if run.status is not None else []
            if results and len(results) == len(run.spec.metrics) and all(
                    r.measurements and r.measurements[-1].phase != "Running" for r in results):
                return run
            if asyncio.get_running_loop().time() > deadline:
                return run
            await executor.wait_any(min(delay if delay is not None else 1.0, 1.0))
    finally:
        set_resolver(previous)
        await executor.close()


def check_gates(store: ObjectStore, rollout: Rollout, prometheus_address: str | None) -> Check:
    """The rollout's first gate, measured once against the stable version (as `analyze --once` does)."""
    import asyncio

    from rollouts.analysis.args import ArgsError, rollout_argument_values
    from rollouts.cli.analysis import build_standalone_run

    name = f"gates {rollout.name}"
    analyses = _gate_analyses(rollout)
    if not analyses:
        return Check("SKIP", name, "the rollout has no analysis")
    stable = rollout.status.stable_rs if rollout.status else None
    if not stable:
        return Check("SKIP", name, "no stable version yet")
    gate = analyses[0]
    docs = [d for ref in gate.templates
            if (d := _template(store, rollout.namespace or "", ref.template_name, bool(ref.cluster_scope)))]
    measurable = [d for d in docs if not _uses_traffic_plugin(d)]
    if not measurable:
        return Check("SKIP", name, f"{TRAFFIC_PLUGIN} metrics are measured inside the controller only")
    try:
        args = rollout_argument_values(gate.args, rollout, stable_hash=stable, latest_hash=stable)
    except ArgsError as exc:
        return Check("FAIL", name, str(exc))
    try:
        run = build_standalone_run(measurable, {a.name: a.value or "" for a in args}, once=True,
                                   namespace=rollout.namespace or "default")
    except typer.Exit:
        return Check("FAIL", name, "the gate's templates need arguments the rollout does not give")
    final = asyncio.run(_measure(run, prometheus_address, store))
    results = final.status.metric_results if final.status else []
    last = {r.name: r.measurements[-1] for r in results if r.measurements}
    passed = len(last) == len(final.spec.metrics) and all(m.phase == "Successful" for m in last.values())
    parts = []
    for metric, measurement in last.items():
        text = f"{metric} {measurement.phase}"
        if measurement.value is not None:
            text += f" value={measurement.value}"
        if measurement.message and measurement.phase != "Successful":
            text += f" ({measurement.message[:200]})"
        parts.append(text)
    detail = f"stable {stable}: " + ("; ".join(parts) or f"no measurement within {GATE_TIMEOUT:.0f}s")
    return Check("PASS" if passed else "FAIL", name, detail)


def run_checks(home: Path, namespace: str, rollout_name: str | None, prometheus_address: str | None,
               controller_address: str | None, lookback: str = "7d") -> list[Check]:
    from rollouts import __version__
    from rollouts.spec.rollout import Rollout
    from rollouts.store.protocol import NotFound, StoreError

    cluster, store = check_cluster(home)
    checks = [check_controller(home), Check("PASS", "version", f"rollouts v{__version__}"), cluster,
              check_healthz(controller_address, home)]
    if store is None:
        return checks  # nothing below can be read without the API
    try:
        if rollout_name is not None:
            try:
                stored = [store.get("Rollout", namespace, rollout_name)]
            except NotFound as exc:
                return [*checks, Check("FAIL", "rollout", str(exc))]
        else:
            stored = store.list("Rollout", namespace)
        rollouts = [Rollout.model_validate(o) for o in stored]
        template_check, docs = check_templates(store, namespace, rollouts)
        prometheus = check_prometheus(docs, prometheus_address, store, namespace)
        checks += [template_check, prometheus]
        if prometheus.verdict == "PASS":
            checks.append(check_gate_noise([*stored, *docs], prometheus_address, lookback, store))
        if template_check.verdict == "PASS":
            checks += [check_gates(store, r, prometheus_address) for r in rollouts]
    except StoreError as exc:
        checks.append(Check("FAIL", "cluster", f"the API failed while reading: {exc}"))
    finally:
        store.close()
    return checks


@app.command()
def doctor(
    rollout: str | None = typer.Argument(None, help="Check this rollout's gates only (default: all)."),
    prometheus_address: str | None = typer.Option(
        None, "--prometheus-address", help="Query this Prometheus instead of the address in the templates."),
    controller_address: str | None = typer.Option(
        None, "--controller-address", envvar="ROLLOUTS_CONTROLLER_ADDRESS",
        help="HOST:PORT of the controller's metrics listener, to probe /healthz (default: the address of the "
             "controller running on the home)."),
    lookback: str = typer.Option(
        "7d", "--lookback", help="How much of the stable version's traffic the gate-noise estimate reads."),
    namespace: str | None = NAMESPACE_OPTION,
    home: str | None = HOME_OPTION,
    kubeconfig: str | None = KUBECONFIG_OPTION,
    kube_context: str | None = CONTEXT_OPTION,
) -> None:
    """Pre-release checklist: cluster, controller, templates, Prometheus and the stable version's gates."""
    from rollouts.cli.common import rollout_name
    from rollouts.store.home import rollouts_home

    folder = rollouts_home(home)
    name = rollout_name(rollout) if rollout else None
    checks = run_checks(folder, namespace_or_default(namespace), name, prometheus_address, controller_address,
                        lookback)
    for check in checks:
        typer.echo(check.line())
    raise typer.Exit(1 if any(c.verdict == "FAIL" for c in checks) else 0)

