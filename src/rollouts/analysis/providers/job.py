"""The `job` metric provider: each measurement is a batch/v1 Job, as Argo Rollouts makes it.

With a store (the operator passes its `KubeStore`), the provider creates the Job through the Kubernetes API
(name `<run>.<metric>.<n>`, the metric's `provider.job.metadata` labels and annotations plus Argo's
`analysisrun.argoproj.io/*` keys, owned by the AnalysisRun), waits for its Complete or Failed condition, and
reports Successful or Failed with the condition's message. The cluster runs it: the local cluster's Job
controller, or a real cluster's. An operator restarted while a Job runs asks
for the same measurement under the same name, finds the Job it created and waits for it instead of creating
a second one. A cancelled measurement (terminated run, operator shutdown) deletes the Job (propagation
Background), which stops its pod. Jobs of finished measurements stay for `kubectl logs` / `describe`, the
last ten of each run (Argo's measurement history limit); deleting the run deletes them all.

Without a store (`rollouts analyze --once`, offline, no cluster), the same Job object runs here through the
`run_here` runner the command passes (the local cluster's own planner and attempt loop, see
rollouts.runtime.local.job_metric): same limits, retries and messages. This module does not import the
local cluster, so the operator, which always has a store, never reaches it.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Any, Protocol

from rollouts.analysis.outcome import MeasurementOutcome
from rollouts.analysis.providers.base import MeasureContext
from rollouts.spec.analysis import Metric
from rollouts.spec.job_status import DEADLINE_MESSAGE, UNRUNNABLE_REASONS, terminal_condition
from rollouts.store.protocol import AlreadyExists, JSONObject, NotFound, ObjectStore, StoreError

log = logging.getLogger(__name__)

__all__ = ["DEADLINE_MESSAGE", "JobMetricProvider", "LocalJobRunner", "job_manifest", "job_name", "job_outcome"]

JOB_NAME_KEY = "job-name"
MESSAGE_KEY = "message"
MAX_JOB_NAME = 63
RUN_NAME_ANNOTATION = "analysisrun.argoproj.io/name"
METRIC_NAME_ANNOTATION = "analysisrun.argoproj.io/metric-name"
RUN_UID_LABEL = "analysisrun.argoproj.io/uid"
# Jobs of finished measurements kept per run (Argo's default measurement history limit).
HISTORY_LIMIT = 10
# A store that keeps failing this many times in a row while a Job runs ends the measurement with an error.
MAX_STORE_FAILURES = 20


class LocalJobRunner(Protocol):
    """Runs a Job object here, without any store, to its end; returns its final status."""

    def __call__(self, job: JSONObject, folder: Path, *, base_env: Mapping[str, str], retry_delay: float,
                 default_grace: float) -> Awaitable[JSONObject]: ...


class JobMetricProvider:
    """Measures a metric by running a Job: on the cluster behind `store`, or here with `run_here`."""

    type_label = "Job"

    def __init__(self, store: ObjectStore | None = None, *, poll_seconds: float = 0.25,
                 retry_delay_seconds: float = 10.0, stop_grace_seconds: float = 5.0,
                 run_here: LocalJobRunner | None = None) -> None:
        self._store = store
        self._poll = poll_seconds
        # Only for Jobs run here (no store): the cluster's Job controller has its own settings.
        self._retry_delay = retry_delay_seconds
        self._grace = stop_grace_seconds
        self._run_here = run_here

    async def measure(self, metric: Metric, ctx: MeasureContext) -> MeasurementOutcome:
        name = job_name(ctx.run_name, metric.name, ctx.measurement_index)
        metadata = {JOB_NAME_KEY: name}
        if metric.provider.job is None:
            return _error(ctx, f"job {name}: metric {metric.name!r} has no provider.job section", metadata)
        if self._store is None:
            return await self._measure_here(metric, ctx, name)
        return await self._measure_on_cluster(self._store, metric, ctx, name)

    # --- on a cluster ---------------------------------------------------------------------------------

    async def _measure_on_cluster(self, store: ObjectStore, metric: Metric, ctx: MeasureContext,
                                  name: str) -> MeasurementOutcome:
        metadata = {JOB_NAME_KEY: name}
        try:
            run_uid = await asyncio.to_thread(_run_uid, store, ctx)
            job = await asyncio.to_thread(_create_or_find, store, job_manifest(metric, ctx, name, run_uid), run_uid)
        except StoreError as exc:
            return _error(ctx, f"job {name}: cannot create it: {exc}", metadata)
        try:
            status = await self._wait(store, ctx.namespace, name, str(job["metadata"].get("uid") or ""))
        except asyncio.CancelledError:
            # Terminated or shutting down: the Job goes, and with it its pod.
            await asyncio.to_thread(_delete_quietly, store, ctx.namespace, name)
            raise
        except _Gone as exc:
            return _error(ctx, f"job {name}: {exc}", metadata)
        if run_uid:
            await asyncio.to_thread(_collect_old_jobs, store, ctx.namespace, run_uid)
        return job_outcome(name, status, ctx)

    async def _wait(self, store: ObjectStore, namespace: str, name: str, uid: str) -> JSONObject:
        failures = 0
        while True:
            try:
                job = await asyncio.to_thread(store.get, "Job", namespace, name)
                failures = 0
            except NotFound:
                raise _Gone("deleted before it completed") from None
            except StoreError as exc:
                failures += 1
                if failures >= MAX_STORE_FAILURES:
                    raise _Gone(f"cannot read it: {exc}") from exc
                log.warning("job %s/%s: cannot read it (%s); trying again", namespace, name, exc)
            else:
                if uid and job["metadata"].get("uid") != uid:
                    raise _Gone("deleted and created again by someone else before it completed")
                if terminal_condition(job) is not None:
                    return dict(job.get("status") or {})
            await asyncio.sleep(self._poll)

    # --- here, without a cluster ----------------------------------------------------------------------

    async def _measure_here(self, metric: Metric, ctx: MeasureContext, name: str) -> MeasurementOutcome:
        if self._run_here is None:
            return _error(ctx, f"job {name}: no cluster to run it on (job metrics run as batch/v1 Jobs: measure "
                               "them under the operator, or with `rollouts analyze`)", {JOB_NAME_KEY: name})
        manifest = job_manifest(metric, ctx, name, "")
        with tempfile.TemporaryDirectory(prefix="rollouts-job-") as scratch:
            status = await self._run_here(manifest, Path(scratch), base_env=ctx.environment(),
                                          retry_delay=self._retry_delay, default_grace=self._grace)
        return job_outcome(name, status, ctx)


class _Gone(Exception):
    """The Job disappeared (or cannot be read) before it completed."""


def job_manifest(metric: Metric, ctx: MeasureContext, name: str, run_uid: str) -> JSONObject:
    """The batch/v1 Job a measurement runs as (Argo's shape: its labels, annotations and owner)."""
    provider = metric.provider.job
    if provider is None:
        raise ValueError(f"metric {metric.name!r} has no provider.job section")
    labels = dict(provider.metadata.labels) if provider.metadata else {}
    annotations = dict(provider.metadata.annotations) if provider.metadata else {}
    annotations.update({RUN_NAME_ANNOTATION: ctx.run_name, METRIC_NAME_ANNOTATION: metric.name})
    meta: JSONObject = {"name": name, "namespace": ctx.namespace, "annotations": annotations}
    if run_uid:
        labels[RUN_UID_LABEL] = run_uid
        meta["ownerReferences"] = [{"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun", "name": ctx.run_name,
                                    "uid": run_uid, "controller": True, "blockOwnerDeletion": True}]
    meta["labels"] = labels
    spec = provider.spec.model_dump(by_alias=True, exclude_none=True, mode="json")
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec}


def job_outcome(name: str, status: Mapping[str, Any], ctx: MeasureContext) -> MeasurementOutcome:
    """The measurement a finished Job's status stands for: Complete is Successful, Failed is Failed with the
    condition's message, and a Job the cluster could not run at all is an Error saying why."""
    metadata = {JOB_NAME_KEY: name}
    condition = terminal_condition({"status": status})
    if condition is None:
        return _error(ctx, f"job {name}: ended without a Complete or Failed condition", metadata)
    if condition["type"] == "Complete":
        return MeasurementOutcome(phase="Successful", metadata=metadata)
    message = str(condition.get("message") or condition.get("reason") or "failed")
    if condition.get("reason") in UNRUNNABLE_REASONS:
        return _error(ctx, f"job {name}: {message}", metadata)
    text = ctx.redact(message)
    # The reason is the measurement's message; it stays in the metadata too for `describe`.
    return MeasurementOutcome(phase="Failed", message=text, metadata={**metadata, MESSAGE_KEY: text})


def _run_uid(store: ObjectStore, ctx: MeasureContext) -> str:
    """The AnalysisRun's uid (the Job's owner); empty for a run that is not in the store."""
    try:
        run = store.get("AnalysisRun", ctx.namespace, ctx.run_name)
    except NotFound:
        return ""
    return str(run["metadata"].get("uid") or "")


def _create_or_find(store: ObjectStore, manifest: JSONObject, run_uid: str) -> JSONObject:
    """Create the Job; one already there (an earlier operator created it) is taken over when the same run owns it."""
    meta = manifest["metadata"]
    try:
        return store.create(manifest)
    except AlreadyExists:
        found = store.get("Job", meta["namespace"], meta["name"])
    owners = [ref.get("uid") for ref in found["metadata"].get("ownerReferences") or [] if ref.get("controller")]
    if run_uid and owners != [run_uid]:
        raise AlreadyExistsElsewhere(f'jobs "{meta["name"]}" already exists and is not owned by analysisrun '
                                     f'"{meta["ownerReferences"][0]["name"]}" (uid {run_uid})')
    log.info("job %s/%s: created earlier, waiting for it", meta["namespace"], meta["name"])
    return found


class AlreadyExistsElsewhere(StoreError):
    """A Job of the measurement's name exists but belongs to something else."""


def _delete_quietly(store: ObjectStore, namespace: str, name: str) -> None:
    try:
        store.delete("Job", namespace, name)  # KubeStore deletes with propagationPolicy Background
    except NotFound:
        pass
    except StoreError as exc:
        log.warning("job %s/%s: cannot delete it: %s", namespace, name, exc)


def _collect_old_jobs(store: ObjectStore, namespace: str, run_uid: str, limit: int = HISTORY_LIMIT) -> None:
    """Delete the run's oldest Jobs beyond `limit`, as Argo's job provider does."""
    try:
        jobs = store.list("Job", namespace, label_selector=f"{RUN_UID_LABEL}={run_uid}")
    except StoreError as exc:
        log.warning("jobs of analysisrun %s: cannot list them: %s", run_uid, exc)
        return
    jobs.sort(key=lambda j: (str(j["metadata"].get("creationTimestamp") or ""), _index(j)))
    for job in jobs[: max(len(jobs) - limit, 0)]:
        _delete_quietly(store, namespace, job["metadata"]["name"])


def _index(job: JSONObject) -> int:
    tail = str(job["metadata"]["name"]).rpartition(".")[2]
    return int(tail) if tail.isdigit() else 0


def _error(ctx: MeasureContext, message: str, metadata: dict[str, str]) -> MeasurementOutcome:
    return MeasurementOutcome(phase="Error", error=ctx.redact(message), metadata=dict(metadata))


def job_name(run_name: str, metric_name: str, index: int) -> str:
    """`<run>.<metric>.<n>`, the metric name shortened so that the whole fits Kubernetes' 63 characters."""
    room = MAX_JOB_NAME - len(run_name) - len(str(index)) - 2
    return f"{run_name}.{metric_name[:max(room, 1)]}.{index}"

