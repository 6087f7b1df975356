"""The `job` metric provider on the local runtime: the Job's pod template's first container runs as a
local process (its `command` + `args`, exec'd directly, never through a shell). Exit 0 is Successful,
anything else Failed; `activeDeadlineSeconds` bounds the whole Job, retries included (`backoffLimit`).
A cancelled measurement (terminated run, controller shutdown) kills the process group before the
cancellation propagates.

Owned jobs: with a `state_dir` (the controller passes HOME/jobs) each job keeps a folder there with its
pid file, output and exit status (written by job_runner.py, the job's parent). A controller killed while a
job runs leaves the job running; the next controller asking for the same measurement (same run, metric
and measurement number) finds it there and waits for it instead of starting a second copy. The job's
environment carries ROLLOUTS_JOB=<folder name> so it can be told apart in `ps e`."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import time
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
MARKER_ENV = "ROLLOUTS_JOB"
STATE_FILE = "job.json"
RUNNER = str(Path(__file__).with_name("job_runner.py"))
# How often a job started by an earlier controller is checked for its end (it is not our child).
ADOPTED_POLL_SECONDS = 0.2


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

    def __init__(self, *, retry_delay_seconds: float = 10.0, stop_grace_seconds: float = 5.0,
                 state_dir: Path | None = None) -> None:
        # Kubernetes waits 10s, 20s, 40s, ... (capped at 6m) between failed pods of one Job.
        self._retry_delay = retry_delay_seconds
        self._grace = stop_grace_seconds
        self._state_dir = state_dir

    async def measure(self, metric: Metric, ctx: MeasureContext) -> MeasurementOutcome:
        name = job_name(ctx.run_name, metric.name, ctx.measurement_index)
        metadata = {JOB_NAME_KEY: name}
        try:
            if metric.provider.job is None:
                raise JobSpecError(f"metric {metric.name!r} has no provider.job section")
            plan = plan_job(metric.provider.job, ctx, default_grace=self._grace)
        except JobSpecError as exc:
            return _error(ctx, f"job {name}: {exc}", metadata)
        if self._state_dir is None:
            with tempfile.TemporaryDirectory(prefix="rollouts-job-") as scratch:
                return await self._run(plan, name, Path(scratch), ctx, metadata)
        folder = self._state_dir / job_folder(ctx.namespace, name)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            return await self._run(plan, name, folder, ctx, metadata)
        finally:
            # Measured, failed or cancelled: the job's process is gone, nothing is left to find again.
            # (A controller killed meanwhile never gets here: the folder stays for the next one.)
            shutil.rmtree(folder, ignore_errors=True)

    async def _run(
        self, plan: _Plan, name: str, scratch: Path, ctx: MeasureContext, metadata: dict[str, str]
    ) -> MeasurementOutcome:
        loop = asyncio.get_running_loop()
        found = _read_state(scratch)
        started_wall = float(str(found["started_at"])) if found else time.time()
        first = int(str(found["attempt"])) if found else 1
        # The deadline counts from the job's start, also when an earlier controller started it.
        deadline_at = None if plan.deadline is None else loop.time() + plan.deadline - (time.time() - started_wall)
        workdir = scratch / "work"
        workdir.mkdir(exist_ok=True)
        for attempt in range(first, plan.attempts + 1):
            remaining = None if deadline_at is None else deadline_at - loop.time()
            if remaining is not None and remaining <= 0:
                if found:
                    _signal_group(int(str(found["pid"])), signal.SIGKILL)
                return _failed(ctx, DEADLINE_MESSAGE, metadata)
            try:
                result = None
                if found and attempt == first:
                    result = await _resume(found, scratch, attempt, remaining, plan.grace)
                if result is None:
                    result = await _attempt(plan, plan.working_dir or str(workdir), scratch, attempt, remaining,
                                            started_wall)
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


async def _attempt(plan: _Plan, cwd: str, scratch: Path, attempt: int, timeout: float | None,
                   started_wall: float) -> _Exit:
    stdout_path, stderr_path = scratch / f"stdout.{attempt}", scratch / f"stderr.{attempt}"
    status_path = scratch / f"exit.{attempt}"
    status_path.unlink(missing_ok=True)
    env = {**plan.env, MARKER_ENV: scratch.name}
    # Output goes to files, not pipes: a grandchild keeping a pipe open can then never stall us.
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, RUNNER, str(status_path), *plan.argv, stdin=asyncio.subprocess.DEVNULL, stdout=out,
            stderr=err, env=env, cwd=cwd, start_new_session=True,
        )
    _write_state(scratch, {"pid": proc.pid, "ticks": _start_ticks(proc.pid), "attempt": attempt,
                           "started_at": started_wall})
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
    return _status(status_path, stderr_path)


def _status(status_path: Path, stderr_path: Path) -> _Exit:
    """What job_runner.py recorded; raises OSError when the command could not be started."""
    try:
        status = json.loads(status_path.read_text())
    except (OSError, ValueError):
        # The runner itself was killed (SIGKILL to the group): the job ended the same way.
        return _Exit(code=-signal.SIGKILL, stderr=_read_tail(stderr_path))
    if "error" in status:
        raise OSError(int(status.get("errno") or 0), str(status["error"]))
    return _Exit(code=int(status["code"]), stderr=_read_tail(stderr_path))


async def _resume(found: dict[str, object], scratch: Path, attempt: int, timeout: float | None,
                  grace: float) -> _Exit | None:
    """The attempt an earlier controller started: its recorded end, or wait for it (polling: it is not our
    child). None when it is gone without a trace, and must be started again."""
    status_path, stderr_path = scratch / f"exit.{attempt}", scratch / f"stderr.{attempt}"
    pid, ticks = int(str(found["pid"])), found.get("ticks")
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    log.info("job %s: found running from an earlier controller (pid %d); waiting for it", scratch.name, pid)
    try:
        while not status_path.exists() and _alive(pid, ticks):
            if deadline is not None and loop.time() >= deadline:
                await _stop_group(pid, ticks, grace)
                return _Exit(code=None, stderr=_read_tail(stderr_path))
            await asyncio.sleep(ADOPTED_POLL_SECONDS)
    except BaseException:
        await _stop_group(pid, ticks, grace)
        raise
    if not status_path.exists():
        return None
    _signal_group(pid, signal.SIGKILL)
    return _status(status_path, stderr_path)


async def _stop_group(pid: int, ticks: object, grace: float) -> None:
    """`_stop` for a process that is not our child."""
    _signal_group(pid, signal.SIGTERM)
    end = time.monotonic() + grace
    while _alive(pid, ticks) and time.monotonic() < end:
        await asyncio.sleep(0.05)
    _signal_group(pid, signal.SIGKILL)


def _start_ticks(pid: int) -> int | None:
    """The process's start time (clock ticks since boot, /proc/PID/stat field 22): with the pid it tells
    the process apart from a later one that got the same pid. None where there is no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[19])


def _alive(pid: int, ticks: object) -> bool:
    if ticks is not None:
        return _start_ticks(pid) == ticks
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_state(folder: Path, state: dict[str, object]) -> None:
    tmp = folder / f"{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(state))
    os.replace(tmp, folder / STATE_FILE)


def _read_state(folder: Path) -> dict[str, object] | None:
    try:
        state = json.loads((folder / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and {"pid", "attempt", "started_at"} <= state.keys() else None


def job_folder(namespace: str, name: str) -> str:
    """The job's folder under the state dir: its name made safe for a path, and a digest keeping it unique."""
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:12]
    return f"{re.sub(r'[^A-Za-z0-9.-]', '_', name)[:80]}-{digest}"


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
