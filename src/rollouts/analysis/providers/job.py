"""The `job` metric provider on the local runtime: the Job's pod template's first container runs as a
local process (its `command` + `args`, exec'd directly, never through a shell). Exit 0 is Successful,
anything else Failed; `activeDeadlineSeconds` bounds the whole Job, retries included (`backoffLimit`).
A cancelled measurement (terminated run) kills the process group before the cancellation propagates."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rollouts.analysis.outcome import MeasurementOutcome
from rollouts.analysis.providers.base import MeasureContext, tail
from rollouts.spec.analysis import JobProvider, Metric

log = logging.getLogger(__name__)

JOB_NAME_KEY = "job-name"
MESSAGE_KEY = "message"
DEADLINE_MESSAGE = "Job was active longer than specified deadline"
MAX_JOB_NAME = 63
MAX_BACKOFF_SECONDS = 360.0
STDERR_TAIL_BYTES = 16_384
FIELD = "provider.job.spec.template.spec.containers[0]"


class JobSpecError(ValueError):
    """A Job the local runner cannot start; the text says what to change."""


@dataclass(frozen=True)
class _Plan:
    argv: list[str]
    env: dict[str, str]
    working_dir: str | None
    deadline: float | None
    attempts: int
    grace: float


@dataclass(frozen=True)
class _Exit:
    code: int | None  # None: stopped at the deadline
    stderr: str


class JobMetricProvider:
    """Measures a metric by running a Job's container as a local process."""

    type_label = "Job"

    def __init__(self, *, retry_delay_seconds: float = 10.0, stop_grace_seconds: float = 5.0) -> None:
        # Kubernetes waits 10s, 20s, 40s, ... (capped at 6m) between failed pods of one Job.
        self._retry_delay = retry_delay_seconds
        self._grace = stop_grace_seconds

    async def measure(self, metric: Metric, ctx: MeasureContext) -> MeasurementOutcome:
        name = job_name(ctx.run_name, metric.name, ctx.measurement_index)
        metadata = {JOB_NAME_KEY: name}
        try:
            if metric.provider.job is None:
                raise JobSpecError(f"metric {metric.name!r} has no provider.job section")
            plan = plan_job(metric.provider.job, ctx, default_grace=self._grace)
        except JobSpecError as exc:
            return _error(ctx, f"job {name}: {exc}", metadata)
        with tempfile.TemporaryDirectory(prefix="rollouts-job-") as scratch:
            return await self._run(plan, name, Path(scratch), ctx, metadata)

    async def _run(
        self, plan: _Plan, name: str, scratch: Path, ctx: MeasureContext, metadata: dict[str, str]
    ) -> MeasurementOutcome:
        loop = asyncio.get_running_loop()
        deadline_at = None if plan.deadline is None else loop.time() + plan.deadline
        workdir = scratch / "work"
        workdir.mkdir()
        for attempt in range(1, plan.attempts + 1):
            remaining = None if deadline_at is None else deadline_at - loop.time()
            if remaining is not None and remaining <= 0:
                return _failed(ctx, DEADLINE_MESSAGE, metadata)
            try:
                result = await _attempt(plan, plan.working_dir or str(workdir), scratch, attempt, remaining)
            except OSError as exc:
                hint = ""
                if "/" in plan.argv[0] and not os.path.isabs(plan.argv[0]):
                    hint = " (a relative path is looked up from workingDir: use an absolute path or set " \
                           f"{FIELD}.workingDir to an existing local directory)"
                return _error(ctx, f"job {name}: cannot start {plan.argv[0]!r}: {exc.strerror or exc}{hint}",
                              metadata)
            if result.code is None:
                return _failed(ctx, DEADLINE_MESSAGE, metadata)
            if result.code == 0:
                return MeasurementOutcome(phase="Successful", metadata=dict(metadata))
            message = f"job {name} failed: {_describe_exit(result.code)}"
            if result.stderr:
                message += f"; last lines of stderr:\n{result.stderr}"
            log.info("%s (attempt %d of %d)", ctx.redact(message), attempt, plan.attempts)
            if attempt == plan.attempts:
                return _failed(ctx, message, metadata)
            delay = min(self._retry_delay * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)
            if deadline_at is not None and loop.time() + delay >= deadline_at:
                await asyncio.sleep(max(deadline_at - loop.time(), 0))
                return _failed(ctx, DEADLINE_MESSAGE, metadata)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns")


async def _attempt(plan: _Plan, cwd: str, scratch: Path, attempt: int, timeout: float | None) -> _Exit:
    stdout_path, stderr_path = scratch / f"stdout.{attempt}", scratch / f"stderr.{attempt}"
    # Output goes to files, not pipes: a grandchild keeping a pipe open can then never stall us.
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        proc = await asyncio.create_subprocess_exec(
            *plan.argv, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=err, env=plan.env, cwd=cwd,
            start_new_session=True,
        )
    try:
        await asyncio.wait_for(proc.wait(), timeout)
    except TimeoutError:
        await _stop(proc, plan.grace)
        return _Exit(code=None, stderr=_read_tail(stderr_path))
    except BaseException:
        await _stop(proc, plan.grace)
        raise
    # The pod is gone once its main process ends: so are the processes it left behind.
    _signal_group(proc.pid, signal.SIGKILL)
    return _Exit(code=proc.returncode, stderr=_read_tail(stderr_path))


async def _stop(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM the process group, SIGKILL it after `grace` seconds (at once if we are cancelled again)."""
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        pass
    finally:
        _signal_group(proc.pid, signal.SIGKILL)
    await proc.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _read_tail(path: Path) -> str:
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(size - STDERR_TAIL_BYTES, 0))
        return tail(handle.read().decode(errors="replace"))


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _error(ctx: MeasureContext, message: str, metadata: dict[str, str]) -> MeasurementOutcome:
    return MeasurementOutcome(phase="Error", error=ctx.redact(message), metadata=dict(metadata))


def _failed(ctx: MeasureContext, message: str, metadata: dict[str, str]) -> MeasurementOutcome:
    # The reason is the measurement's message; it stays in the metadata too for `describe`.
    text = ctx.redact(message)
    return MeasurementOutcome(phase="Failed", message=text, metadata={**metadata, MESSAGE_KEY: text})


def job_name(run_name: str, metric_name: str, index: int) -> str:
    """`<run>.<metric>.<n>`, the metric name shortened so that the whole fits Kubernetes' 63 characters."""
    room = MAX_JOB_NAME - len(run_name) - len(str(index)) - 2
    return f"{run_name}.{metric_name[:max(room, 1)]}.{index}"


# --- from a JobSpec to a local process -----------------------------------------------------------------

_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand_references(text: str, values: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion in command, args and env values: unknown references stay as
    written, `$$` stands for a literal `$`."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return values.get(match.group(1), match.group(0))

    return _REFERENCE.sub(substitute, text)


def plan_job(job: JobProvider, ctx: MeasureContext, *, default_grace: float) -> _Plan:
    pod = job.spec.template.spec
    if not pod.containers:
        raise JobSpecError("provider.job.spec.template.spec.containers is empty: give one container to run")
    container = pod.containers[0]
    if not container.command:
        image = container.image or "(no image)"
        raise JobSpecError(
            f"{FIELD} ({container.name}) has no command, so image {image} would decide what runs, and "
            f"images cannot be run locally: set {FIELD}.command (and args) to a program on this machine, "
            'e.g. command: ["python3", "-c", "..."]'
        )
    if container.env_from:
        raise JobSpecError(
            f"{FIELD}.envFrom cannot be resolved locally: list the variables in env with values"
        )
    defined: dict[str, str] = {}
    for i, var in enumerate(container.env or []):
        if var.value_from is not None:
            raise JobSpecError(f"{FIELD}.env[{i}] ({var.name}) uses valueFrom, which cannot be resolved "
                               "locally: give it a value (analysis args can carry secrets into it)")
        defined[var.name] = expand_references(var.value or "", defined)
    argv = [expand_references(part, defined) for part in [*container.command, *(container.args or [])]]
    deadline = job.spec.active_deadline_seconds or pod.active_deadline_seconds
    if deadline is not None and deadline <= 0:
        raise JobSpecError(f"provider.job.spec.activeDeadlineSeconds: {deadline} must be positive")
    backoff = job.spec.backoff_limit or 0
    if backoff < 0:
        raise JobSpecError(f"provider.job.spec.backoffLimit: {backoff} must not be negative")
    working_dir = container.working_dir
    if working_dir and not os.path.isdir(working_dir):
        working_dir = None  # an image path that does not exist here: run in a scratch directory
    grace = pod.termination_grace_period_seconds
    return _Plan(
        argv=argv,
        env={**ctx.environment(), **defined},
        working_dir=working_dir,
        deadline=float(deadline) if deadline else None,
        attempts=backoff + 1,
        grace=float(grace) if grace is not None else default_grace,
    )
