"""`rollouts analyze` (run an AnalysisTemplate on its own) and `rollouts eval` (try a condition)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from rollouts.cli.common import HOME_OPTION
from rollouts.cli.main import app

if TYPE_CHECKING:
    from rollouts.spec.analysis import AnalysisRun

EXIT_BY_PHASE = {"Successful": 0, "Failed": 1, "Error": 2, "Inconclusive": 3}
# What an argument that names a ReplicaSet's pod-template hash is, for the message that asks for one.
HASH_ARG_HINT = ("{name} is the rollouts-pod-template-hash of the ReplicaSet to measure (a Rollout passes it "
                 "with valueFrom.podTemplateHashValue): the suffix of the ReplicaSet's name that "
                 "`rollouts get rollout <rollout> -n <namespace>` lists, or its rollouts-pod-template-hash label")


@app.command("eval")
def eval_command(
    expression: str = typer.Argument(..., help="A successCondition/failureCondition, e.g. 'result[0] >= 0.995'."),
    result: str = typer.Option("null", "--result", "-r", help="The provider's result as JSON, e.g. '[0.998]'."),
) -> None:
    """Evaluate a condition against a result: prints true or false (exit 0), or the error (exit 2)."""
    from rollouts.analysis.expr import ExprError, evaluate_condition
    from rollouts.jsonbounds import MAX_VALUE_DEPTH, TooLarge, check_text_depth

    try:
        # Checked on the text first: Python's decoder recurses, so a deep enough result would end in its
        # recursion error rather than in an answer.
        check_text_depth(result, "--result: the result", MAX_VALUE_DEPTH)
        value = json.loads(result)
    except TooLarge as exc:
        typer.echo(f"error: {exc} (a metric result is a number, a list or a shallow object)", err=True)
        raise typer.Exit(2) from None
    except ValueError as exc:
        typer.echo(f"error: --result is not JSON: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        outcome = evaluate_condition(expression, value)
    except ExprError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo("true" if outcome else "false")


def _parse_args(pairs: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            typer.echo(f"error: argument {pair!r} is not NAME=VALUE", err=True)
            raise typer.Exit(2)
        values[name] = value
    return values


def _template_name(doc: dict[str, Any]) -> str:
    return str((doc.get("metadata") or {}).get("name") or "")


def select_templates(docs: list[dict[str, Any]], names: list[str], files: list[str]) -> list[dict[str, Any]]:
    """The templates named by --template, in the order given (all of them without --template)."""
    if not names:
        return docs
    available = [_template_name(d) for d in docs]
    unknown = [n for n in names if n not in available]
    if unknown:
        typer.echo(f"error: no AnalysisTemplate or ClusterAnalysisTemplate named {', '.join(map(repr, unknown))} in "
                   f"{', '.join(files)}; the templates there: {', '.join(available)}", err=True)
        raise typer.Exit(2)
    return [d for name in dict.fromkeys(names) for d in docs if _template_name(d) == name]


def _check_metric_names(docs: list[dict[str, Any]]) -> None:
    """Templates merged into one run must not share metric names: say which do, and how to pick one."""
    owners: dict[str, list[str]] = {}
    for doc in docs:
        for metric in (doc.get("spec") or {}).get("metrics") or []:
            if isinstance(metric, dict) and metric.get("name"):
                owners.setdefault(str(metric["name"]), []).append(_template_name(doc))
    shared = {m: t for m, t in owners.items() if len(t) > 1}
    if shared:
        clashes = "; ".join(f"metric {m!r} in {', '.join(t)}" for m, t in shared.items())
        typer.echo(f"error: these templates cannot run as one AnalysisRun, their metrics share names ({clashes}): "
                   f"choose with --template NAME (repeatable), one of: "
                   f"{', '.join(_template_name(d) for d in docs)}", err=True)
        raise typer.Exit(2)


def _missing_args_message(missing: dict[str, list[str]], several: bool) -> str:
    names = list(missing)
    needed = "; ".join(f"{name} (declared by {', '.join(owners)})" for name, owners in missing.items())
    plural = len(names) > 1
    text = (f"error: the template argument{'s' if plural else ''} {needed} ha{'ve' if plural else 's'} no value: "
            "pass " + " ".join(f"-a {name}=VALUE" for name in names))
    hints = [HASH_ARG_HINT.format(name=n) for n in names if n.endswith("-hash")]
    hints.append("or take what a rollout's analysis passes with --rollout NAME -n NAMESPACE "
                 "(podTemplateHashValue Latest: its newest ReplicaSet, the canary during a release)")
    if several:
        hints.append("or measure only the templates that need no more with --template NAME")
    return text + "".join(f"\n  {hint}" for hint in hints)


def build_standalone_run(template_docs: list[dict[str, Any]], cli_args: dict[str, str], *,
                         once: bool, namespace: str) -> AnalysisRun:
    """An AnalysisRun made from templates and command-line arguments, as a rollout would make it."""
    from rollouts.analysis.args import ArgsError, flatten_template_args, merge_args
    from rollouts.spec.analysis import AnalysisRun, AnalysisRunSpec, Argument, Metric
    from rollouts.spec.kinds import parse_object
    from rollouts.spec.rollout import DryRun, MeasurementRetention

    metrics: list[Metric] = []
    arg_lists: list[list[Argument] | None] = []
    dry_run: list[DryRun] = []
    retention: list[MeasurementRetention] = []
    names: list[str | None] = []
    for doc in template_docs:
        template = parse_object(doc)
        spec = template.spec  # type: ignore[attr-defined]
        names.append(template.metadata.name)  # type: ignore[attr-defined]
        metrics.extend(spec.metrics)
        arg_lists.append(spec.args)
        dry_run.extend(spec.dry_run or [])
        retention.extend(spec.measurement_retention or [])
    if once:
        # One measurement per metric decides: what a template says right now, for an SLO check during an
        # incident. Failure and inconclusive tolerances would otherwise let a single bad reading pass.
        once_fields = {"count": 1, "interval": None, "initial_delay": None, "failure_limit": 0,
                       "inconclusive_limit": 0, "consecutive_success_limit": None}
        metrics = [m.model_copy(update=once_fields) for m in metrics]
    missing: dict[str, list[str]] = {}
    for template_name, declared in zip(names, arg_lists, strict=True):
        for arg in declared or []:
            if arg.value is None and arg.value_from is None and arg.name not in cli_args:
                missing.setdefault(arg.name, []).append(template_name or "template")
    for name in list(missing):
        # Another template may give the same argument a default (flatten_template_args keeps it).
        if any(a.name == name and (a.value is not None or a.value_from is not None)
               for declared in arg_lists for a in declared or []):
            del missing[name]
    if missing:
        typer.echo(_missing_args_message(missing, len(template_docs) > 1), err=True)
        raise typer.Exit(2)
    try:
        args = merge_args([Argument(name=k, value=v) for k, v in cli_args.items()], flatten_template_args(arg_lists))
    except ArgsError as exc:
        typer.echo(f"error: {exc} (pass it with -a NAME=VALUE)", err=True)
        raise typer.Exit(2) from None
    return AnalysisRun.model_validate({
        "metadata": {"name": "-".join(n or "template" for n in names) + "-analyze", "namespace": namespace,
                     "uid": "analyze"},
        "spec": AnalysisRunSpec(metrics=metrics, args=args, dry_run=dry_run or None,
                                measurement_retention=retention or None).to_dict(),
    })


@app.command("analyze")
def analyze_command(
    files: list[str] = typer.Option(..., "--filename", "-f", help="AnalysisTemplate file(s)."),
    templates: list[str] = typer.Option(
        [], "--template", "-t",
        help="Only this template of the files (repeatable: merged into one run, as a rollout merges them)."),
    arguments: list[str] = typer.Option([], "--argument", "-a", help="Template argument NAME=VALUE."),
    once: bool = typer.Option(False, "--once", help="Take one measurement of each metric and stop."),
    namespace: str = typer.Option("default", "--namespace", "-n", help="Namespace for Secret look-ups."),
    output: str = typer.Option("text", "--output", "-o", help="text or json (one object per measurement)."),
    prometheus_address: str | None = typer.Option(
        None, "--prometheus-address", help="Query this Prometheus instead of the address in the templates."),
    rollout: str | None = typer.Option(
        None, "--rollout", help="Take the arguments this Rollout's analysis passes (e.g. canary-hash); -a wins."),
    home: str | None = HOME_OPTION,
) -> None:
    """Run an AnalysisTemplate without a controller, printing each measurement and the final phase.

    Job metrics run here, no cluster needed: their Job's first container as a local process (its command, or
    its image through the image map), as the local cluster would run it.

    Addresses that name a cluster Service (http://prometheus.prometheus.svc:9090) reach it through the home's
    local cluster when it is running (it is never started for this).

    Exit 0 Successful, 1 Failed, 2 Error, 3 Inconclusive."""
    import asyncio

    from rollouts.spec.loader import load_paths

    loaded = load_paths(files)
    errors = [p for p in loaded.problems if p.severity == "error"]
    if errors:
        for problem in errors:
            typer.echo(problem.format(), err=True)
        raise typer.Exit(2)
    docs = [o.data for o in loaded.objects if o.kind in ("AnalysisTemplate", "ClusterAnalysisTemplate")]
    if not docs:
        typer.echo("error: no AnalysisTemplate or ClusterAnalysisTemplate in the given files", err=True)
        raise typer.Exit(2)
    docs = select_templates(docs, templates, files)
    _check_metric_names(docs)
    values = _parse_args(arguments)
    if rollout is not None:
        values = {**_rollout_args(home, namespace, rollout), **values}
    run = build_standalone_run(docs, values, once=once, namespace=namespace)
    close_dns = _local_cluster_dns(home, docs, prometheus_address)
    try:
        final = asyncio.run(_drive(run, output, prometheus_address))
    finally:
        if close_dns is not None:
            close_dns()
    phase = final.status.phase if final.status else "Error"
    message = (final.status.message if final.status else "") or ""
    if output == "json":
        typer.echo(json.dumps({"phase": phase, "message": message}))
    else:
        typer.echo(f"AnalysisRun {phase}" + (f": {message}" if message else ""))
    raise typer.Exit(EXIT_BY_PHASE.get(phase, 2))


def _rollout_args(home: str | None, namespace: str, name: str) -> dict[str, str]:
    """The arguments a Rollout's analyses pass (first definition of each name), resolved as the controller
    would resolve them now: podTemplateHashValue Latest is its newest ReplicaSet, Stable its stable one."""
    from rollouts.analysis.args import ArgsError, rollout_argument_values
    from rollouts.cli.common import fail, open_store, rollout_name
    from rollouts.spec.kinds import parse_object
    from rollouts.spec.rollout import AnalysisRunArgument, Rollout
    from rollouts.store.protocol import NotFound

    store = open_store(home)
    try:
        doc = store.get("Rollout", namespace, rollout_name(name))
    except NotFound as exc:
        fail(f"--rollout: {exc}", code=2)
    finally:
        store.close()
    parsed = parse_object(doc)
    if not isinstance(parsed, Rollout):  # the API answers for the kind asked; a guard for mypy and odd servers
        fail(f"--rollout: {namespace}/{name} is not a Rollout", code=2)
    strategy = parsed.spec.strategy
    analyses = []
    if strategy.canary is not None:
        analyses = [s.analysis for s in strategy.canary.steps or [] if s.analysis]
        analyses += [strategy.canary.analysis] if strategy.canary.analysis else []
    elif strategy.blue_green is not None:
        analyses = [a for a in (strategy.blue_green.pre_promotion_analysis,
                                strategy.blue_green.post_promotion_analysis) if a is not None]
    declared: dict[str, AnalysisRunArgument] = {}
    for analysis in analyses:
        for arg in analysis.args or []:
            declared.setdefault(arg.name, arg)
    status = parsed.status
    latest = status.current_pod_hash if status else None
    if not latest:
        fail(f"--rollout: rollout {namespace}/{name} has no ReplicaSet yet (status.currentPodHash is empty): "
             "its pod-template hashes cannot be read", code=2)
    try:
        resolved = rollout_argument_values(list(declared.values()), parsed, stable_hash=status.stable_rs if status
                                           else None, latest_hash=latest)
    except ArgsError as exc:
        fail(f"--rollout {name}: {exc}", code=2)
    return {a.name: a.value or "" for a in resolved}


def _cluster_addresses(docs: list[dict[str, Any]], prometheus_address: str | None) -> list[str]:
    """The provider URLs of the templates that name a cluster Service."""
    from urllib.parse import urlsplit

    from rollouts.kube.dns import cluster_name

    urls: list[str] = []
    for doc in docs:
        for metric in (doc.get("spec") or {}).get("metrics") or []:
            provider = (metric.get("provider") or {}) if isinstance(metric, dict) else {}
            if not prometheus_address:  # the override replaces every prometheus address
                urls.append(str((provider.get("prometheus") or {}).get("address") or ""))
            urls.append(str((provider.get("web") or {}).get("url") or ""))
    found = []
    for url in urls:
        try:
            named = bool(url) and cluster_name(urlsplit(url).hostname or "") is not None
        except ValueError:
            named = False
        if named and url not in found:
            found.append(url)
    return found


def _local_cluster_dns(home: str | None, docs: list[dict[str, Any]],
                       prometheus_address: str | None) -> Callable[[], None] | None:
    """Install cluster DNS over the home's local cluster when the templates name cluster Services and that
    cluster is the one selected and running; returns what removes it again. Nothing is started."""
    named = _cluster_addresses(docs, prometheus_address)
    if not named:
        return None
    from rollouts.cli.connection import recorded_running, selected
    from rollouts.kube.config import LOCAL_CONTEXT, load_config, local_kubeconfig_path

    if selected.kubeconfig or os.environ.get("KUBECONFIG") or selected.context not in (None, LOCAL_CONTEXT):
        return None  # another cluster is chosen: its Services have no local listeners to map names to
    folder = Path(home or os.environ.get("ROLLOUTS_HOME") or "~/.rollouts").expanduser()
    if not (recorded_running(folder) and local_kubeconfig_path(folder).is_file()):
        typer.echo(f"note: {named[0]} names a cluster Service, and the local cluster of {folder} is not running: "
                   "start it (`rollouts cluster up`) or pass --prometheus-address URL", err=True)
        return None
    from rollouts.kube.client import KubeStore
    from rollouts.kube.dns import ClusterResolver, set_resolver

    store = KubeStore(load_config(local_kubeconfig_path(folder)))
    set_resolver(ClusterResolver(store))

    def close() -> None:
        set_resolver(None)
        store.close()

    return close


async def _drive(run: AnalysisRun, output: str, prometheus_address: str | None) -> AnalysisRun:
    import asyncio

    from rollouts.analysis.executor import AnalysisExecutor
    from rollouts.controller.clock import SystemClock
    from rollouts.runtime.local.job_metric import local_job_provider

    clock = SystemClock()
    executor = AnalysisExecutor(prometheus_address=prometheus_address, providers={"job": local_job_provider()})
    shown: dict[str, int] = {}
    try:
        while True:
            run, delay = executor.step(run, clock.now())
            _print_new_measurements(run, shown, output)
            if run.status is not None and run.status.phase in EXIT_BY_PHASE:
                return run
            await executor.wait_any(min(delay if delay is not None else 1.0, 1.0))
            await asyncio.sleep(0)
    finally:
        await executor.close()


def _print_new_measurements(run: AnalysisRun, shown: dict[str, int], output: str) -> None:
    if run.status is None:
        return
    for result in run.status.metric_results:
        total = result.count + result.error
        seen = shown.get(result.name, 0)
        if total <= seen:
            continue
        for measurement in result.measurements[-(total - seen):]:
            if output == "json":
                typer.echo(json.dumps({"metric": result.name, "phase": measurement.phase,
                                       "value": measurement.value, "message": measurement.message,
                                       "finishedAt": measurement.finished_at.isoformat()
                                       if measurement.finished_at else None}))
            else:
                text = f"{result.name}: {measurement.phase}"
                if measurement.value is not None:
                    text += f" value={measurement.value}"
                if measurement.message:
                    text += f" ({measurement.message})"
                typer.echo(text)
        shown[result.name] = total
