"""The local cluster's Job controller (batch/v1): every Job in the store without a terminal condition is run
to completion as local processes, and its status is written back as Kubernetes' Job controller does.

One Job: its pod template's first container runs (its `command` + `args` exec'd as a list, never through a
shell; without a command the image is resolved as pods' images are, through the image map), one attempt
at a time, retried up to `spec.backoffLimit` times (Kubernetes' default 6) after 10 s, 20 s, 40 s ... (capped
at 6 min), the whole bounded by `activeDeadlineSeconds`. Status: startTime, active, succeeded / failed
counts, completionTime, and a Complete or Failed condition (reasons BackoffLimitExceeded, DeadlineExceeded,
and, for a Job this host cannot run at all, InvalidJobSpec / ImageNotResolvable / StartError) whose message
carries the last lines of the failed attempt's stderr. Each attempt is also a Pod object (labels job-name and
controller-uid, owned by the Job) whose log is the attempt's output, so `kubectl logs` finds it. A finished
Job with `ttlSecondsAfterFinished` is deleted that long after it finished, as Kubernetes does.

Containment: a Job's process starts in its own working folder, HOME/jobs/<job>-<uid>/work/, whatever its
manifest says. Manifest paths are container paths and are read inside that folder: `workingDir: /app` is
work/app (created), a `..` in it is refused; only `emptyDir` volumes are honoured (their mountPath, read
the same way, is a folder under work/), every other volume source (hostPath above all), volumeDevices and
subPathExpr are refused with a message naming the field; `$(VAR)` is not expanded in paths (nor is it by
Kubernetes). Only the host's own image map may name a folder outside (its `workingDir`).

Jobs outlive the cluster process: an attempt runs under job_runner.py in its own session, with no tie to
its parent, and keeps its pid, output and exit status in a state folder, HOME/jobs/<job>-<uid>/. A cluster
started again finds the attempt there and waits for it instead of starting a second one. A Job deleted
(with or without the cluster running) has its process group killed and its folder and logs removed. A
clean close of the controller stops the attempts it runs (a Job still unfinished then runs again on the
next start). The same planner and attempt loop run a Job without any store (`run_job_locally`), for
`rollouts analyze --once`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rollouts.runtime.local.images import ImageMapError, ImageNotResolvable, ImageResolver
from rollouts.runtime.local.supervisor import INHERITED_ENV, INHERITED_PREFIXES
from rollouts.spec.job_status import (
    BACKOFF_MESSAGE,
    BACKOFF_REASON,
    DEADLINE_MESSAGE,
    DEADLINE_REASON,
    IMAGE_REASON,
    INVALID_REASON,
    START_REASON,
    terminal_condition,
)
from rollouts.spec.pod import Container, JobSpec
from rollouts.store.protocol import Conflict, Expired, JSONObject, NotFound, ObjectStore

log = logging.getLogger(__name__)

DEFAULT_BACKOFF_LIMIT = 6
RETRY_DELAY_SECONDS = 10.0
MAX_BACKOFF_SECONDS = 360.0
DEFAULT_GRACE_SECONDS = 30.0
# A closing controller (clean cluster shutdown) gives each running attempt at most this long to stop.
CLOSE_GRACE_SECONDS = 5.0
STDERR_TAIL_BYTES = 16_384
TAIL_LINES = 10
TAIL_WIDTH = 2000
# How often an attempt started by an earlier cluster process is checked for its end (it is not our child).
ADOPTED_POLL_SECONDS = 0.2
# The controller lists Jobs again at least this often, also when no change arrives.
RESYNC_SECONDS = 2.0


JOB_NAME_LABEL = "job-name"
CONTROLLER_UID_LABEL = "controller-uid"
BATCH_JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
BATCH_CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
LOG_ANNOTATION = "rollouts.io/log"
# Job pods keep their own pid keys: they are not the ReplicaSet pods the pod supervisor re-adopts.
PID_ANNOTATION = "rollouts.io/job-pid"
PID_START_ANNOTATION = "rollouts.io/job-pid-start"
MARKER_ENV = "ROLLOUTS_JOB"  # in every attempt's environment: the name of its Job's folder
JOB_POD_IP = "127.0.0.1"  # a Job's attempts have no address of their own: the host's loopback
STATE_FILE = "job.json"
STATE_DIR = "jobs"
FIELD = "spec.template.spec.containers[0]"
RUNNER = str(Path(__file__).resolve().parents[2] / "analysis" / "providers" / "job_runner.py")

_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


class JobSpecError(ValueError):
    """A Job this host cannot run; the text says what to change, `reason` is the condition's reason."""

    def __init__(self, message: str, reason: str = INVALID_REASON) -> None:
        super().__init__(message)
        self.reason = reason


# --- planning: from a JobSpec to a local process --------------------------------------------------------


@dataclass(frozen=True)
class JobPlan:
    """What one Job runs: the argv (never a shell string), its environment, where, and its limits."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    working_dir: str | None  # a host folder the image map names; None: inside the working folder
    deadline: float | None
    attempts: int
    grace: float
    container: str
    image: str
    # Inside the working folder: where the process starts (relative, "" for the folder itself), and the
    # folders emptyDir volumes are mounted at.
    work_subdir: str = ""
    mounts: tuple[str, ...] = ()


def expand_references(text: str, values: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion in command, args and env values: unknown references stay as
    written, `$$` stands for a literal `$`."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return values.get(match.group(1), match.group(0))

    return _REFERENCE.sub(substitute, text)


def plan_job(spec: JobSpec | Mapping[str, Any], *, images: ImageResolver | None,
             default_grace: float = DEFAULT_GRACE_SECONDS) -> JobPlan:
    """The plan for a Job's spec; raises JobSpecError (with the field path and what would be valid)."""
    if not isinstance(spec, JobSpec):
        try:
            spec = JobSpec.model_validate(spec)
        except ValidationError as exc:
            raise JobSpecError(f"spec is not a valid batch/v1 JobSpec: {exc}") from exc
    pod = spec.template.spec
    if not pod.containers:
        raise JobSpecError("spec.template.spec.containers is empty: give one container to run")
    container = pod.containers[0]
    if container.env_from:
        raise JobSpecError(f"{FIELD}.envFrom cannot be resolved locally: list the variables in env with values")
    defined: dict[str, str] = {}
    for i, var in enumerate(container.env or []):
        if var.value_from is not None:
            raise JobSpecError(f"{FIELD}.env[{i}] ({var.name}) uses valueFrom, which cannot be resolved "
                               "locally: give it a value (analysis args can carry secrets into it)")
        defined[var.name] = expand_references(var.value or "", defined)
    argv, env, working_dir = _command(container, defined, images)
    work_subdir = ""
    if container.working_dir is not None:
        # The manifest's own workingDir: a path inside the job's working folder, never a host folder.
        work_subdir, working_dir = contained_path(container.working_dir, f"{FIELD}.workingDir"), None
    mounts = _mounts(pod.volumes or [], container)
    deadline = spec.active_deadline_seconds or pod.active_deadline_seconds
    if deadline is not None and deadline <= 0:
        raise JobSpecError(f"spec.activeDeadlineSeconds: {deadline} must be positive")
    backoff = DEFAULT_BACKOFF_LIMIT if spec.backoff_limit is None else spec.backoff_limit
    if backoff < 0:
        raise JobSpecError(f"spec.backoffLimit: {backoff} must not be negative")
    if working_dir and not os.path.isdir(working_dir):
        working_dir = None  # an image path that does not exist here: run in a scratch directory
    grace = pod.termination_grace_period_seconds
    return JobPlan(argv=argv, env=env, working_dir=working_dir, deadline=float(deadline) if deadline else None,
                   attempts=backoff + 1, grace=float(grace) if grace is not None else default_grace,
                   container=container.name, image=container.image or "", work_subdir=work_subdir,
                   mounts=mounts)


def contained_path(path: str, field: str) -> str:
    """A container path from the manifest as a path relative to the job's working folder (`/app` and `app`
    are both work/app); raises JobSpecError for a `..` (which could climb out) or a NUL byte."""
    if "\x00" in path:
        raise JobSpecError(f"{field}: {path!r} holds a NUL byte")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise JobSpecError(f"{field}: {path!r} uses '..': a job runs inside its own working folder here, so "
                           "give a path without '..' (e.g. /workspace or work/data)")
    return "/".join(parts)


def _mounts(volumes: list[dict[str, Any]], container: Container) -> tuple[str, ...]:
    """The folders emptyDir volumes are mounted at (inside the working folder); anything that would reach a
    host path, or that the local runtime cannot provide, is refused with the field that asks for it."""
    empty: set[str] = set()
    for i, volume in enumerate(volumes):
        name = str(volume.get("name") or "")
        sources = sorted(k for k in volume if k != "name")
        if sources != ["emptyDir"]:
            what = ", ".join(sources) or "no source"
            raise JobSpecError(
                f"spec.template.spec.volumes[{i}] ({name}): {what} is not honoured by the local runtime (a job "
                "runs in its own working folder and cannot reach host paths): use an emptyDir volume or none")
        empty.add(name)
    if container.volume_devices:
        raise JobSpecError(f"{FIELD}.volumeDevices: devices are not honoured by the local runtime: remove them")
    mounts: list[str] = []
    for i, mount in enumerate(container.volume_mounts or []):
        field = f"{FIELD}.volumeMounts[{i}]"
        name = str(mount.get("name") or "")
        if name not in empty:
            raise JobSpecError(f"{field}: volume {name!r} is not an emptyDir volume of the pod: mount only "
                               "emptyDir volumes listed in spec.template.spec.volumes")
        if "subPathExpr" in mount:
            raise JobSpecError(f"{field}.subPathExpr is not honoured by the local runtime: use subPath")
        where = contained_path(str(mount.get("mountPath") or ""), f"{field}.mountPath")
        contained_path(str(mount.get("subPath") or ""), f"{field}.subPath")
        if not where:
            raise JobSpecError(f"{field}.mountPath: give a folder, not the container's root")
        mounts.append(where)
    return tuple(mounts)


def _command(container: Container, defined: dict[str, str],
             images: ImageResolver | None) -> tuple[tuple[str, ...], dict[str, str], str | None]:
    if container.command:
        argv = tuple(expand_references(part, defined) for part in [*container.command, *(container.args or [])])
        return argv, dict(defined), container.working_dir
    image = container.image or "(no image)"
    if images is None:
        raise JobSpecError(
            f"{FIELD} ({container.name}) has no command, so image {image} would decide what runs, and "
            f"images cannot be run locally here: set {FIELD}.command (and args) to a program on this machine, "
            'e.g. command: ["python3", "-c", "..."]', IMAGE_REASON)
    try:
        resolved = images.resolve(container)
    except (ImageNotResolvable, ImageMapError) as exc:
        raise JobSpecError(f"{FIELD} ({container.name}) has no command, and {exc}", IMAGE_REASON) from exc
    return resolved.argv, {**resolved.env, **defined}, resolved.working_dir


def base_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The host variables a Job's process inherits: the same few a pod does (PATH, HOME, LC_*, PYTHON*...)."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items() if k in INHERITED_ENV or k.startswith(INHERITED_PREFIXES)}


# --- one Job's attempts ----------------------------------------------------------------------------------


@dataclass
class Attempt:
    """One attempt of a Job: the pod it shows as, and how it ended (None while it runs)."""

    number: int
    pod: str
    log_path: Path
    started_at: str
    pid: int | None = None
    ticks: int | None = None
    exit_code: int | None = None  # negative: killed by that signal
    finished_at: str | None = None


# What the attempt loop reports after each change: the Job's status and the attempt it concerns.
Publish = Callable[[JSONObject, Attempt | None], Awaitable[None]]


@dataclass
class JobExecution:
    """Runs one Job's attempts to the end, resuming what an earlier process left in `folder`.

    `status` is the Job's stored status (counts and startTime carry over); `publish` is called after every
    change with the new status. Cancelling `run()` stops the running attempt's process group (SIGTERM, then
    SIGKILL after the grace period) before the cancellation propagates."""

    name: str
    uid: str
    plan: JobPlan
    folder: Path
    publish: Publish
    log_path: Callable[[str], Path]
    status: JSONObject = field(default_factory=dict)
    base_env: Mapping[str, str] = field(default_factory=base_environment)
    retry_delay: float = RETRY_DELAY_SECONDS
    # Set by a controller closing: stopping an attempt then takes at most this long.
    max_grace: float | None = None

    @property
    def grace(self) -> float:
        return self.plan.grace if self.max_grace is None else min(self.plan.grace, self.max_grace)

    async def run(self) -> JSONObject:
        """The final status (with its Complete or Failed condition)."""
        loop = asyncio.get_running_loop()
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        found = read_state(self.folder)
        if found is not None and found.get("uid") != self.uid:
            _kill_recorded(found)
            found = None
        if found is not None and isinstance(found.get("final"), dict):
            # Ended before its final status could be written: write it now rather than run it again.
            await self.publish(dict(found["final"]), None)
            return dict(found["final"])
        status = dict(self.status)
        status.setdefault("startTime", _now())
        status["failed"] = max(int(status.get("failed") or 0), int((found or {}).get("failed") or 0))
        started_wall = _parse_time(status["startTime"]) or time.time()
        deadline_at = None if self.plan.deadline is None else loop.time() + self.plan.deadline - (
            time.time() - started_wall)
        resume = found if found is not None and not found.get("finished") else None
        number = int(found["attempt"]) + (0 if resume else 1) if found else status["failed"] + 1
        while True:
            remaining = None if deadline_at is None else deadline_at - loop.time()
            if remaining is not None and remaining <= 0:
                if resume is not None:
                    _kill_recorded(resume)
                return await self._finish(status, "Failed", DEADLINE_REASON, DEADLINE_MESSAGE, None)
            attempt: Attempt | None = None
            if resume is not None:
                attempt = await self._resume(resume, status, remaining)
                resume = None
            if attempt is None:
                try:
                    attempt = await self._start(number, status, remaining)
                except (OSError, ValueError) as exc:  # ValueError: a NUL byte in an argument or variable
                    return await self._finish(status, "Failed", START_REASON, self._start_error(exc), None)
            if attempt.exit_code is None:  # stopped at the deadline
                return await self._finish(status, "Failed", DEADLINE_REASON, DEADLINE_MESSAGE, attempt)
            if attempt.exit_code == 0:
                status["succeeded"] = 1
                return await self._finish(status, "Complete", "", "", attempt)
            status["failed"] = int(status["failed"]) + 1
            self._save(attempt, finished=True, failed=status["failed"])
            detail = f"pod {attempt.pod} {describe_exit(attempt.exit_code)} (attempt {attempt.number} of " \
                     f"{self.plan.attempts})"
            stderr = read_tail(self.folder / f"stderr.{attempt.number}")
            if stderr:
                detail += f"; last lines of stderr:\n{stderr}"
            if status["failed"] >= self.plan.attempts:
                return await self._finish(status, "Failed", BACKOFF_REASON, f"{BACKOFF_MESSAGE}: {detail}", attempt)
            status["active"] = 0
            await self.publish(dict(status), attempt)
            delay = min(self.retry_delay * 2 ** (int(status["failed"]) - 1), MAX_BACKOFF_SECONDS)
            if deadline_at is not None and loop.time() + delay >= deadline_at:
                await asyncio.sleep(max(deadline_at - loop.time(), 0))
                return await self._finish(status, "Failed", DEADLINE_REASON, DEADLINE_MESSAGE, None)
            await asyncio.sleep(delay)
            number = attempt.number + 1

    def _working_folder(self) -> Path:
        """work/ (and the workingDir and mounts inside it), created; raises ValueError if one of them
        resolves outside work/ (a symlink an earlier attempt left there)."""
        scratch = self.folder / "work"
        scratch.mkdir(exist_ok=True)
        root = scratch.resolve()
        for sub in (*self.plan.mounts, self.plan.work_subdir):
            target = scratch / sub
            target.mkdir(parents=True, exist_ok=True)
            if not target.resolve().is_relative_to(root):
                raise ValueError(f"{FIELD}: {sub!r} resolves outside the job's working folder {root} "
                                 "(a symbolic link): refused")
        return scratch / self.plan.work_subdir

    def _start_error(self, exc: OSError | ValueError) -> str:
        program = self.plan.argv[0]
        hint = ""
        if "/" in program and not os.path.isabs(program):
            hint = (" (a relative path is looked up from workingDir: use an absolute path or set "
                    f"{FIELD}.workingDir to an existing local directory)")
        return f"cannot start {program!r}: {getattr(exc, 'strerror', None) or exc}{hint}"

    async def _start(self, number: int, status: JSONObject, timeout: float | None) -> Attempt:
        pod = f"{self.name}-{''.join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))}"
        attempt = Attempt(number=number, pod=pod, log_path=self.log_path(pod), started_at=_now())
        exit_path, stderr_path = self.folder / f"exit.{number}", self.folder / f"stderr.{number}"
        exit_path.unlink(missing_ok=True)
        stderr_path.unlink(missing_ok=True)
        workdir = self.plan.working_dir
        if workdir is None:
            workdir = str(self._working_folder())
        # POD_IP as pods get it (and as the attempt's Pod shows it): a job that serves anything listens on
        # the loopback, as every server of the local cluster does unless told otherwise.
        env = {**self.base_env, "HOSTNAME": pod, "PYTHONUNBUFFERED": "1", "POD_IP": JOB_POD_IP, **self.plan.env,
               MARKER_ENV: self.folder.name}
        attempt.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Output goes to files, not pipes: the attempt then does not depend on this process staying alive.
        with open(attempt.log_path, "ab") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, RUNNER, str(exit_path), str(stderr_path), *self.plan.argv,
                stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out, env=env, cwd=workdir,
                start_new_session=True,
            )
        attempt.pid, attempt.ticks = proc.pid, start_ticks(proc.pid)
        self._save(attempt, finished=False, failed=int(status["failed"]))
        status["active"] = 1
        await self.publish(dict(status), attempt)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            await _stop_child(proc, self.grace)
            _raise_if_cancelling()
            return self._ended(attempt, None)
        except BaseException:
            await _stop_child(proc, self.grace)
            raise
        # The pod is gone once its main process ends: so are the processes it left behind.
        signal_group(proc.pid, signal.SIGKILL)
        try:
            code = _exit_code(exit_path)
        except OSError:
            # The command could not be started: the attempt's pod ends Failed before the Job does.
            self._ended(attempt, 128)
            await self.publish(dict(status), attempt)
            raise
        return self._ended(attempt, code)

    async def _resume(self, found: JSONObject, status: JSONObject, timeout: float | None) -> Attempt | None:
        """The attempt an earlier process started: its recorded end, or wait for it (polling: it is not our
        child). None when it is gone without a trace and must be started again."""
        number = int(found["attempt"])
        exit_path = self.folder / f"exit.{number}"
        pod = str(found.get("pod") or f"{self.name}-attempt{number}")
        attempt = Attempt(number=number, pod=pod, log_path=self.log_path(pod),
                          started_at=str(found.get("started_at") or _now()), pid=int(found["pid"]),
                          ticks=found.get("ticks"))
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        if not exit_path.exists() and alive(attempt.pid or 0, attempt.ticks):
            log.info("job %s: attempt %d found running (pid %s); waiting for it", self.name, number, attempt.pid)
            status["active"] = 1
            await self.publish(dict(status), attempt)
        try:
            while not exit_path.exists() and alive(attempt.pid or 0, attempt.ticks):
                if deadline is not None and loop.time() >= deadline:
                    await stop_group(attempt.pid or 0, attempt.ticks, self.grace)
                    return self._ended(attempt, None)
                await asyncio.sleep(ADOPTED_POLL_SECONDS)
        except BaseException:
            await stop_group(attempt.pid or 0, attempt.ticks, self.grace)
            raise
        if not exit_path.exists():
            return None
        signal_group(attempt.pid or 0, signal.SIGKILL)
        return self._ended(attempt, _exit_code(exit_path))

    def _ended(self, attempt: Attempt, code: int | None) -> Attempt:
        attempt.exit_code, attempt.finished_at = code, _now()
        return attempt

    def _save(self, attempt: Attempt, *, finished: bool, failed: int) -> None:
        state = read_state(self.folder) or {}
        pods = [p for p in state.get("pods") or [] if p != attempt.pod] + [attempt.pod]
        write_state(self.folder, {"uid": self.uid, "name": self.name, "attempt": attempt.number, "pid": attempt.pid,
                                  "ticks": attempt.ticks, "pod": attempt.pod, "started_at": attempt.started_at,
                                  "finished": finished, "failed": failed, "pods": pods,
                                  "logs": sorted({*(state.get("logs") or []), str(attempt.log_path)})})

    async def _finish(self, status: JSONObject, kind: str, reason: str, message: str,
                      attempt: Attempt | None) -> JSONObject:
        now = _now()
        status["active"] = 0
        if kind == "Complete":
            status["completionTime"] = now
        status["conditions"] = [{"type": kind, "status": "True", "lastProbeTime": now, "lastTransitionTime": now,
                                 "reason": reason, "message": message}]
        if attempt is not None:
            self._save(attempt, finished=True, failed=int(status.get("failed") or 0))
        state = read_state(self.folder)
        if state is not None:
            write_state(self.folder, {**state, "final": status})
        await self.publish(dict(status), attempt)
        return status


def _raise_if_cancelling() -> None:
    """Python 3.11's wait_for may report a cancellation that coincides with its timeout as the timeout."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _exit_code(exit_path: Path) -> int:
    """What job_runner.py recorded; raises OSError when the command could not be started."""
    try:
        status = json.loads(exit_path.read_text())
    except (OSError, ValueError):
        # The runner itself was killed (SIGKILL to the group): the attempt ended the same way.
        return -signal.SIGKILL
    if "error" in status:
        raise OSError(int(status.get("errno") or 0), str(status["error"]))
    return int(status["code"])


async def run_job_locally(job: Mapping[str, Any], folder: Path, *, images: ImageResolver | None = None,
                          base_env: Mapping[str, str] | None = None, retry_delay: float = RETRY_DELAY_SECONDS,
                          default_grace: float = DEFAULT_GRACE_SECONDS) -> JSONObject:
    """Run a Job object here without any store, to the end; its final status. A malformed Job ends Failed
    with an unrunnable reason, as on the cluster. `folder` keeps the attempts' state and output; an attempt
    recorded there by an earlier process is waited for rather than started again."""
    meta = job.get("metadata") or {}
    name = str(meta.get("name") or "job")
    try:
        plan = plan_job(job.get("spec") or {}, images=images, default_grace=default_grace)
    except JobSpecError as exc:
        return _unrunnable(exc)

    async def keep(status: JSONObject, attempt: Attempt | None) -> None:
        return None

    execution = JobExecution(name=name, uid=str(meta.get("uid") or "local"), plan=plan, folder=folder,
                             publish=keep, log_path=lambda pod: folder / f"{pod}.log",
                             base_env=base_environment() if base_env is None else base_env,
                             retry_delay=retry_delay)
    return await execution.run()


def _unrunnable(exc: JobSpecError) -> JSONObject:
    now = _now()
    return {"startTime": now, "active": 0, "failed": 0, "conditions": [{
        "type": "Failed", "status": "True", "lastProbeTime": now, "lastTransitionTime": now,
        "reason": exc.reason, "message": str(exc)}]}


# --- the controller -------------------------------------------------------------------------------------


class JobController:
    """Keeps every unfinished Job of the store running (see the module docstring). `start()` runs its own
    loop on the store's change feed; `close()` stops it and the attempts it runs."""

    def __init__(self, store: ObjectStore, home: Path, *, images: ImageResolver | None = None,
                 retry_delay: float = RETRY_DELAY_SECONDS, resync_seconds: float = RESYNC_SECONDS,
                 default_grace: float = DEFAULT_GRACE_SECONDS) -> None:
        self.store = store
        self.state_dir = home / STATE_DIR
        self.logs_dir = home / "logs"
        self.images = images or ImageResolver()
        self.retry_delay = retry_delay
        self.resync_seconds = resync_seconds
        self.default_grace = default_grace
        self._running: dict[str, asyncio.Task[bool]] = {}
        # Jobs whose attempt loop ended here (their final status is written, a stale list must not restart
        # them), and loops of deleted Jobs still stopping their process.
        self._done: set[str] = set()
        self._stopping: dict[str, asyncio.Task[bool]] = {}
        self._executions: dict[str, JobExecution] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._closing = False

    async def start(self) -> None:
        self._closing = False
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._loop(), name="job-controller")

    async def _loop(self) -> None:
        # The flag as well as the cancellation: Python 3.11's wait_for (inside watch_async) can turn a
        # cancellation that coincides with its timeout into a TimeoutError, which would be lost.
        while not self._closing:
            try:
                jobs, version = self.store.list_with_version("Job")
                await self.sync(jobs)
                with contextlib.suppress(Expired):
                    await self.store.watch_async(version, kinds={"Job"}, timeout=self.resync_seconds)
            except asyncio.CancelledError:
                raise
            except Exception:  # never fatal: the next pass tries again
                log.exception("job controller: pass failed")
                await asyncio.sleep(1.0)

    async def sync(self, jobs: list[JSONObject] | None = None) -> None:
        """Start what is unfinished, stop what was deleted, clean up after Jobs that are gone."""
        jobs = self.store.list("Job") if jobs is None else jobs
        present = {str(j["metadata"].get("uid")): j for j in jobs}
        for uid, task in list(self._running.items()):
            if task.done():
                del self._running[uid]
                if not task.cancelled() and task.exception() is None and task.result():
                    self._done.add(uid)  # else it failed before its final status: the next pass tries again
            elif uid not in present:
                log.info("job %s deleted: stopping its process", task.get_name())
                # Not awaited: a process taking its grace period to stop must not hold up the other Jobs.
                task.cancel()
                del self._running[uid]
                self._stopping[uid] = task
                task.add_done_callback(functools.partial(self._stopped, uid))
        self._done &= set(present)
        for uid, job in present.items():
            if uid not in self._running and uid not in self._done and terminal_condition(job) is None:
                self._running[uid] = asyncio.create_task(self._run(job), name=f"job:{job['metadata']['name']}")
            elif uid not in self._running:
                self._expire(job)
        self._collect(set(present))

    def _expire(self, job: JSONObject) -> None:
        """Kubernetes' TTL-after-finished controller: a finished Job with `ttlSecondsAfterFinished` is deleted
        that many seconds after its Complete or Failed condition (its Pods go with it)."""
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        condition = terminal_condition(job)
        if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 0 or condition is None:
            return
        finished_at = _parse_time(condition.get("lastTransitionTime"))
        if finished_at is None or time.time() < finished_at + ttl:
            return
        meta = job["metadata"]
        log.info("job %s/%s: finished %ds ago, past its ttlSecondsAfterFinished: deleted", meta.get("namespace"),
                 meta["name"], int(time.time() - finished_at))
        with contextlib.suppress(NotFound, Conflict):  # gone already, or changed since: the next pass looks again
            self.store.delete("Job", meta.get("namespace") or "default", meta["name"],
                              resource_version=meta.get("resourceVersion"))

    def _stopped(self, uid: str, _task: asyncio.Task[bool]) -> None:
        self._stopping.pop(uid, None)

    def _collect(self, present: set[str]) -> None:
        """Folders (and pod logs) of Jobs no longer in the store: kill what still runs, remove the rest."""
        if not self.state_dir.is_dir():
            return
        for folder in self.state_dir.iterdir():
            state = read_state(folder)
            uid = state.get("uid") if state is not None else None
            if state is None or uid is None or uid in present or uid in self._running or uid in self._stopping:
                continue  # not a cluster Job's folder, or still in use
            _kill_recorded(state)
            remove_job_files(folder, state)

    async def _run(self, job: JSONObject) -> bool:
        """Run one Job to its end; True once its final status is written (or it is gone)."""
        meta = job["metadata"]
        namespace, name, uid = meta.get("namespace") or "default", meta["name"], str(meta.get("uid"))
        folder = self.state_dir / job_folder(namespace, name, uid)
        job = self._default_selector(job)
        try:
            plan = plan_job(job.get("spec") or {}, images=self.images, default_grace=self.default_grace)
        except JobSpecError as exc:
            log.warning("job %s/%s cannot run here: %s", namespace, name, exc)
            with contextlib.suppress(NotFound):
                self._write_status(job, _unrunnable(exc))
            return True

        announced: set[str] = set()

        async def publish(status: JSONObject, attempt: Attempt | None) -> None:
            self._write_status(job, status)
            if attempt is not None:
                self._write_pod(job, plan, attempt)
                if attempt.pod not in announced:
                    announced.add(attempt.pod)
                    self._event(job, "Normal", "SuccessfulCreate", f"Created pod: {attempt.pod}")
            condition = terminal_condition({"status": status})
            if condition is not None and condition["type"] == "Complete":
                self._event(job, "Normal", "Completed", "Job completed")
            elif condition is not None:
                reason = str(condition.get("reason") or "Failed")
                # Kubernetes' own words for the back-off; the stderr tail stays in the condition.
                self._event(job, "Warning", reason,
                            BACKOFF_MESSAGE if reason == BACKOFF_REASON else str(condition.get("message") or ""))

        execution = JobExecution(name=name, uid=uid, plan=plan, folder=folder, publish=publish,
                                 log_path=lambda pod: self.logs_dir / f"{pod}.log",
                                 status=dict(job.get("status") or {}), retry_delay=self.retry_delay)
        self._executions[uid] = execution
        try:
            await execution.run()
            return True
        except asyncio.CancelledError:
            # Deleted, or the controller closing: the process is stopped; nothing is left to find again.
            with contextlib.suppress(OSError):
                shutil.rmtree(folder / "work", ignore_errors=True)
                state = read_state(folder)
                if state is not None and not self._exists(job):
                    remove_job_files(folder, state)
                elif state is not None:
                    # Closing: the next start runs the attempt again rather than finding a dead one.
                    state["finished"], state["pid"] = True, None
                    write_state(folder, state)
            raise
        except NotFound:
            return True  # deleted while we wrote its status: the next pass cleans up
        except Exception:
            log.exception("job %s/%s: the attempt loop failed", namespace, name)
            return False
        finally:
            self._executions.pop(uid, None)

    def _default_selector(self, job: JSONObject) -> JSONObject:
        """What kube-apiserver adds to a Job on create: a selector on its uid and the matching pod template
        labels (`kubectl logs job/NAME` finds the Job's pods through them)."""
        spec = job.get("spec") or {}
        if spec.get("selector") or spec.get("manualSelector"):
            return job
        meta = job["metadata"]
        uid = str(meta.get("uid"))
        labels = {BATCH_CONTROLLER_UID_LABEL: uid, CONTROLLER_UID_LABEL: uid, BATCH_JOB_NAME_LABEL: meta["name"],
                  JOB_NAME_LABEL: meta["name"]}
        patch = {"spec": {"selector": {"matchLabels": {BATCH_CONTROLLER_UID_LABEL: uid}},
                          "template": {"metadata": {"labels": labels}}}}
        try:
            return self.store.patch("Job", meta.get("namespace") or "default", meta["name"], patch)
        except NotFound:
            return job
        except Exception:  # the defaults are a convenience: the Job runs without them
            log.exception("job %s: cannot add its selector", meta["name"])
            return job

    def _event(self, job: JSONObject, type: str, reason: str, message: str) -> None:
        """An Event on the Job, as Kubernetes' Job controller records them (`kubectl describe job`)."""
        meta = job["metadata"]
        involved = {"apiVersion": "batch/v1", "kind": "Job", "namespace": meta.get("namespace") or "default",
                    "name": meta["name"], "uid": meta.get("uid", "")}
        try:
            self.store.record_event(involved, type, reason, message, source="job-controller")
        except Exception:  # an event is best effort: never stop the Job for it
            log.exception("cannot record the event for job %s", meta["name"])

    def _exists(self, job: JSONObject) -> bool:
        meta = job["metadata"]
        try:
            found = self.store.get("Job", meta.get("namespace") or "default", meta["name"])
        except NotFound:
            return False
        except Exception:
            return True
        return bool(found["metadata"].get("uid") == meta.get("uid"))

    def _write_status(self, job: JSONObject, status: JSONObject) -> None:
        meta = job["metadata"]
        self.store.patch("Job", meta.get("namespace") or "default", meta["name"], {"status": status},
                         subresource="status")

    def _write_pod(self, job: JSONObject, plan: JobPlan, attempt: Attempt) -> None:
        """The attempt as a Pod owned by the Job: created when it starts, its status updated when it ends."""
        meta = job["metadata"]
        namespace, uid = meta.get("namespace") or "default", str(meta.get("uid"))
        status = pod_status(plan, attempt)
        annotations = {LOG_ANNOTATION: str(attempt.log_path)}
        if attempt.pid is not None:
            annotations[PID_ANNOTATION] = str(attempt.pid)
            if attempt.ticks is not None:
                annotations[PID_START_ANNOTATION] = str(attempt.ticks)
        labels = {**(((job.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels", {}),
                  JOB_NAME_LABEL: meta["name"], BATCH_JOB_NAME_LABEL: meta["name"],
                  CONTROLLER_UID_LABEL: uid, BATCH_CONTROLLER_UID_LABEL: uid}
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": attempt.pod, "namespace": namespace, "labels": labels, "annotations": annotations,
                            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
                                                 "uid": uid, "controller": True, "blockOwnerDeletion": True}]},
               "spec": {"restartPolicy": "Never", "containers": [{"name": plan.container, "image": plan.image}]},
               "status": status}
        try:
            self.store.get("Pod", namespace, attempt.pod)
        except NotFound:
            with contextlib.suppress(Exception):
                self.store.create(pod)
            return
        with contextlib.suppress(NotFound):
            self.store.patch("Pod", namespace, attempt.pod, {"metadata": {"annotations": annotations}})
            self.store.patch("Pod", namespace, attempt.pod, {"status": status}, subresource="status")

    async def close(self, grace_seconds: float | None = CLOSE_GRACE_SECONDS) -> None:
        """Stop the loop and every attempt this controller runs (each after its grace period, at most
        `grace_seconds`: a cluster shutting down does not wait a Job's 30 s default)."""
        self._closing = True
        for execution in self._executions.values():
            execution.max_grace = grace_seconds
        tasks = [t for t in [self._loop_task, *self._running.values(), *self._stopping.values()] if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._running.clear()
        self._loop_task = None


def pod_status(plan: JobPlan, attempt: Attempt) -> JSONObject:
    """The Kubernetes-shaped status of one attempt's pod."""
    state: dict[str, Any]
    if attempt.finished_at is None:
        phase, state = "Running", {"running": {"startedAt": attempt.started_at}}
    else:
        code = attempt.exit_code
        phase = "Succeeded" if code == 0 else "Failed"
        exit_code = 137 if code is None else (128 - code if code < 0 else code)
        reason = "Completed" if code == 0 else (DEADLINE_REASON if code is None else "Error")
        state = {"terminated": {"exitCode": exit_code, "reason": reason, "startedAt": attempt.started_at,
                                "finishedAt": attempt.finished_at}}
    return {"phase": phase, "podIP": JOB_POD_IP, "startTime": attempt.started_at,
            "conditions": [{"type": "Ready", "status": "True" if phase == "Running" else "False"}],
            "containerStatuses": [{"name": plan.container, "image": plan.image, "ready": phase == "Running",
                                   "restartCount": 0, "state": state}]}


def stop_job_processes(home: Path) -> int:
    """Kill every Job attempt recorded under HOME/jobs (for `rollouts cluster down` when the cluster process
    is gone); returns how many process groups were signalled."""
    folder_root = home / STATE_DIR
    if not folder_root.is_dir():
        return 0
    count = 0
    for folder in folder_root.iterdir():
        state = read_state(folder)
        if state is not None and "uid" in state and _kill_recorded(state):
            count += 1
            state["finished"], state["pid"] = True, None
            write_state(folder, state)
    return count


# --- state folders and processes ------------------------------------------------------------------------


def job_folder(namespace: str, name: str, uid: str = "") -> str:
    """A Job's folder under HOME/jobs: its name made safe for a path, and a digest keeping it unique."""
    digest = hashlib.sha256(f"{namespace}/{name}/{uid}".encode()).hexdigest()[:12]
    return f"{re.sub(r'[^A-Za-z0-9.-]', '_', name)[:80]}-{digest}"


def write_state(folder: Path, state: Mapping[str, Any]) -> None:
    tmp = folder / f"{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(state))
    os.replace(tmp, folder / STATE_FILE)


def read_state(folder: Path) -> JSONObject | None:
    try:
        state = json.loads((folder / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and {"attempt", "pid"} <= state.keys() else None


def remove_job_files(folder: Path, state: Mapping[str, Any]) -> None:
    for path in state.get("logs") or []:
        with contextlib.suppress(OSError):
            Path(path).unlink()
    shutil.rmtree(folder, ignore_errors=True)


def _kill_recorded(state: Mapping[str, Any]) -> bool:
    pid = state.get("pid")
    if not isinstance(pid, int) or state.get("finished") or not alive(pid, state.get("ticks")):
        return False
    signal_group(pid, signal.SIGKILL)
    return True


def start_ticks(pid: int) -> int | None:
    """The process's start time (clock ticks since boot, /proc/PID/stat field 22): with the pid it tells
    the process apart from a later one that got the same pid. None where there is no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[19])


def alive(pid: int, ticks: object) -> bool:
    if pid <= 0:
        return False
    if ticks is not None:
        return start_ticks(pid) == ticks
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_group(pgid: int, sig: signal.Signals) -> None:
    if pgid <= 0:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def stop_group(pid: int, ticks: object, grace: float) -> None:
    """SIGTERM a process group that is not our child, SIGKILL it after `grace` seconds."""
    signal_group(pid, signal.SIGTERM)
    end = time.monotonic() + grace
    while alive(pid, ticks) and time.monotonic() < end:
        await asyncio.sleep(0.05)
    signal_group(pid, signal.SIGKILL)


async def _stop_child(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM the process group, SIGKILL it after `grace` seconds (at once if we are cancelled again)."""
    signal_group(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        pass
    finally:
        signal_group(proc.pid, signal.SIGKILL)
    await proc.wait()


def read_tail(path: Path) -> str:
    """The last lines of a (possibly long) output file, for messages; empty when there is none."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(size - STDERR_TAIL_BYTES, 0))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    kept = "\n".join(text.rstrip().splitlines()[-TAIL_LINES:])
    return kept if len(kept) <= TAIL_WIDTH else "..." + kept[-TAIL_WIDTH:]


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
