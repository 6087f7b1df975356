"""The local pod supervisor: each pod is one process with its own loopback address (127.1.x.y, from an
AddressPool), listening there on the first containerPort its manifest declares (else on a free port), with
its own process group, a log file, a readiness probe, and Kubernetes-like restart behaviour. The process finds
its address and port in POD_IP and PORT.

It runs inside one asyncio loop. Processes are started from an argv (never a shell) in a new session, so a
pod's whole process group is signalled on deletion, with their output going straight to their log files.
Two modes:
- attached (default): on Linux each pod asks the kernel for SIGTERM when its parent goes away
  (PR_SET_PDEATHSIG), so a SIGKILLed host process leaves no pods behind. This signal follows the *thread*
  that started the pod: host the supervisor on a loop whose thread lives as long as the supervisor.
- detached (the local cluster): pods outlive the supervisor's process, as containers outlive a kubelet
  restart. Each pod's pid and process start time are in its state (`pid`, `pid_start`) for the caller to
  record; `adopt_pod` takes such a process over again after a restart. An adopted process is not our child:
  its exit is noticed by polling /proc, and its exit code is unknown.

Restart policy `Always` (the Rollout default): a process that exits is restarted after a back-off of
1 s, 2 s, 4 s ... capped at 30 s, and the pod reports `CrashLoopBackOff` while it waits; a run of 60 s or
more resets the back-off. `OnFailure`/`Never` end in `Succeeded`/`Failed` the way Kubernetes does.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import re
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from rollouts.runtime.local.addresses import POD_NETWORK, AddressPool
from rollouts.runtime.local.images import (
    ImageMapError,
    ImageNotResolvable,
    ImageResolver,
    ResolvedCommand,
)
from rollouts.runtime.local.ports import DeclaredPorts, declared_ports, listen_port
from rollouts.runtime.local.probes import (
    DEFAULT_PROBE_PERIOD,
    ProbePlan,
    ReadinessTracker,
    check_once,
    plan_readiness,
)
from rollouts.runtime.local.processes import alive, start_time
from rollouts.spec.pod import Container

log = logging.getLogger(__name__)

DEFAULT_GRACE_SECONDS = 30.0
# A pod's log is rotated past this size, keeping this many files in all (the kubelet's defaults).
LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_MAX_FILES = 5
# Until a pod is first ready, probe at least this often so a fast-starting pod is routable quickly.
STARTUP_PROBE_INTERVAL = 0.2
# Host variables a local pod inherits; everything else comes from the manifest, so the controller's own
# environment (say, an ERROR_RATE used for something else) cannot leak into a demo version.
INHERITED_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "VIRTUAL_ENV",
    "SYSTEMROOT",
)
INHERITED_PREFIXES = ("LC_", "PYTHON")
# The local cluster whose pod a process is (its home folder), in the process' environment.
OWNER_ENV = "ROLLOUTS_CLUSTER_HOME"

_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$")
_PR_SET_PDEATHSIG = 1
# How often the exit of an adopted process (not our child, so no wait()) is looked for.
ADOPTED_POLL_SECONDS = 0.2


class PodPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True)
class PodState:
    """A snapshot of one local pod."""

    name: str
    namespace: str
    labels: Mapping[str, str]
    container: str
    image: str | None
    port: int
    phase: PodPhase
    ready: bool
    restarts: int
    created_at: datetime
    log_path: Path
    pid: int | None = None
    reason: str | None = None  # CrashLoopBackOff, ImageNotResolvable, StartError, Completed, Error
    message: str | None = None
    started_at: datetime | None = None
    ready_since: datetime | None = None
    exit_code: int | None = None
    terminating: bool = False
    pid_start: int | None = None  # the process's start time (clock ticks since boot), with pid
    adopted: bool = False  # the running process was started by an earlier supervisor
    ip: str = "127.0.0.1"  # the pod's own address (status.podIP); its process listens on ip:port
    container_ports: DeclaredPorts = ()  # the first container's declared ports (name, number, protocol)


ChangeCallback = Callable[[PodState], object]


@dataclass
class _Pod:
    state: PodState
    container: Container
    grace: float
    restart_policy: str
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    grace_override: float | None = None
    process: asyncio.subprocess.Process | None = None
    task: asyncio.Task[None] | None = None


def _libc_prctl() -> Callable[[int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    prctl = libc.prctl
    return lambda option, arg: int(prctl(option, arg, 0, 0, 0))


_PRCTL = _libc_prctl()


def _die_with_parent(parent_pid: int) -> Callable[[], None] | None:
    """A preexec hook that asks for SIGTERM when the parent dies (Linux only)."""
    prctl = _PRCTL
    if prctl is None:
        return None

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        # The parent may have died between fork and prctl; then nobody would ever signal us.
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _runtime_env(state: PodState) -> dict[str, str]:
    """What the runtime tells every pod's process, over its manifest's env: where to listen."""
    return {"PORT": str(state.port), "POD_IP": state.ip}


def _free_port(host: str, port: int) -> int | None:
    """`port` (0: any) if it can be bound on `host` now, else None."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return None
        return int(sock.getsockname()[1])


def _utc_now() -> datetime:
    return datetime.now(UTC)


class PodSupervisor:
    """Runs pods as local processes. Create it anywhere; call its coroutines from one event loop."""

    def __init__(
        self,
        logs_dir: Path | str,
        *,
        images: ImageResolver | None = None,
        probe_period: float | None = DEFAULT_PROBE_PERIOD,
        on_change: ChangeCallback | None = None,
        clock: Callable[[], datetime] = _utc_now,
        host: str | None = None,
        addresses: AddressPool | None = None,
        backoff_initial: float = 1.0,
        backoff_cap: float = 30.0,
        backoff_reset_after: float = 60.0,
        inherit_env: tuple[str, ...] = INHERITED_ENV,
        log_max_bytes: int = LOG_MAX_BYTES,
        log_max_files: int = LOG_MAX_FILES,
        detached: bool = False,
        owner: str | None = None,
    ) -> None:
        self.logs_dir = Path(logs_dir)
        self.detached = detached
        # Written into every pod's environment (OWNER_ENV): a process started but not yet recorded in the
        # store when the cluster is SIGKILLed is still found by `cluster down` (rollouts.cluster.leftovers).
        self.owner = owner
        self.images = images or ImageResolver()
        self.probe_period = probe_period
        self.on_change = on_change
        self.clock = clock
        # `host`: every pod on that one address (each on its own port), as before pods had addresses.
        self.host = host
        self.addresses = addresses or AddressPool(POD_NETWORK)
        self.backoff_initial = backoff_initial
        self.backoff_cap = backoff_cap
        self.backoff_reset_after = backoff_reset_after
        self.inherit_env = inherit_env
        self.log_max_bytes = log_max_bytes
        self.log_max_files = log_max_files
        self._pods: dict[str, _Pod] = {}
        self._closed = False

    # -- queries ---------------------------------------------------------------------------------------

    def pods(self, namespace: str | None = None, selector: Mapping[str, str] | None = None) -> list[PodState]:
        """Current pods (oldest first), optionally of one namespace and matching every selector label."""
        out = []
        for pod in self._pods.values():
            state = pod.state
            if namespace is not None and state.namespace != namespace:
                continue
            if selector and any(state.labels.get(k) != v for k, v in selector.items()):
                continue
            out.append(state)
        return out

    def pod(self, name: str) -> PodState | None:
        pod = self._pods.get(name)
        return pod.state if pod else None

    # -- commands --------------------------------------------------------------------------------------

    async def ensure_pod(
        self,
        pod_name: str,
        labels: Mapping[str, str],
        container: Container,
        namespace: str = "default",
        *,
        termination_grace_seconds: float | None = None,
        restart_policy: str = "Always",
    ) -> PodState:
        """Start the pod unless one of that name exists (pods are immutable: a new template is a new name)."""
        if self._closed:
            raise RuntimeError("the pod supervisor is closed")
        existing = self._pods.get(pod_name)
        if existing is not None:
            if existing.state.namespace != namespace:
                raise ValueError(
                    f"pod {pod_name}: already exists in namespace {existing.state.namespace}, "
                    f"not {namespace}; local pod names are unique across namespaces"
                )
            return existing.state
        if not _NAME.match(pod_name):
            raise ValueError(
                f"pod name {pod_name!r} is not valid: use letters, digits, '-', '.', '_' "
                "(starting and ending with a letter or digit, at most 253 characters)"
            )
        if restart_policy not in ("Always", "OnFailure", "Never"):
            raise ValueError(
                f"pod {pod_name}: restartPolicy {restart_policy!r} is not Always, OnFailure or Never"
            )
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        ip, port = self._allocate_address(pod_name, listen_port(container))
        state = PodState(
            name=pod_name,
            namespace=namespace,
            labels=dict(labels),
            container=container.name,
            image=container.image,
            port=port,
            ip=ip,
            container_ports=declared_ports(container),
            phase=PodPhase.PENDING,
            ready=False,
            restarts=0,
            created_at=self.clock(),
            log_path=self.logs_dir / f"{pod_name}.log",
        )
        grace = (
            DEFAULT_GRACE_SECONDS if termination_grace_seconds is None else float(termination_grace_seconds)
        )
        pod = _Pod(state=state, container=container, grace=grace, restart_policy=restart_policy)
        self._pods[pod_name] = pod
        pod.task = asyncio.create_task(self._run(pod), name=f"pod:{pod_name}")
        self._notify(pod)
        return pod.state

    async def adopt_pod(
        self,
        pod_name: str,
        labels: Mapping[str, str],
        container: Container,
        namespace: str,
        *,
        port: int,
        pid: int | None,
        pid_start: int | None,
        ip: str | None = None,
        restarts: int = 0,
        created_at: datetime | None = None,
        started_at: datetime | None = None,
        termination_grace_seconds: float | None = None,
        restart_policy: str = "Always",
    ) -> PodState:
        """Take over a pod an earlier supervisor started: when `pid` is still that process (same start
        time), it is watched and probed again, not restarted; otherwise the pod restarts as after a crash
        (on the same address and port: `ip` is its recorded status.podIP, 127.0.0.1 for a pod recorded
        before pods had addresses)."""
        if self._closed:
            raise RuntimeError("the pod supervisor is closed")
        if pod_name in self._pods:
            return self._pods[pod_name].state
        running = alive(pid, pid_start)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        ip = ip or self.host or "127.0.0.1"
        if not self.addresses.reserve(ip) and ip in self.addresses:
            log.warning("pod %s: its recorded address %s is another pod's too", pod_name, ip)
        state = PodState(
            name=pod_name,
            namespace=namespace,
            labels=dict(labels),
            container=container.name,
            image=container.image,
            port=port,
            ip=ip,
            container_ports=declared_ports(container),
            phase=PodPhase.RUNNING if running else PodPhase.PENDING,
            ready=False,
            restarts=restarts,
            created_at=created_at or self.clock(),
            log_path=self.logs_dir / f"{pod_name}.log",
            pid=pid if running else None,
            pid_start=pid_start if running else None,
            started_at=started_at or self.clock(),
            adopted=running,
        )
        grace = (
            DEFAULT_GRACE_SECONDS if termination_grace_seconds is None else float(termination_grace_seconds)
        )
        pod = _Pod(state=state, container=container, grace=grace, restart_policy=restart_policy)
        self._pods[pod_name] = pod
        adopted = (pid, pid_start) if running and pid is not None else None
        pod.task = asyncio.create_task(self._run(pod, adopted=adopted, lost=not running),
                                       name=f"pod:{pod_name}")
        self._notify(pod)
        return pod.state

    async def delete_pod(self, name: str, grace_seconds: float | None = None) -> bool:
        """Stop a pod: SIGTERM to its process group, SIGKILL after the grace period (the pod's
        terminationGracePeriodSeconds unless given). Returns False if there was no such pod."""
        pod = self._pods.get(name)
        if pod is None:
            return False
        if grace_seconds is not None:
            pod.grace_override = grace_seconds
        if not pod.state.terminating:
            self._update(pod, terminating=True, ready=False, ready_since=None)
        pod.stop.set()
        if pod.task is not None:
            # Shielded so a caller's timeout cannot abandon a half-stopped process.
            await asyncio.shield(pod.task)
        if self._pods.get(name) is pod:
            del self._pods[name]
            self.addresses.release(pod.state.ip)
        return True

    async def close(self, grace_seconds: float | None = None) -> None:
        """Stop every pod (each with its own grace period unless one is given)."""
        self._closed = True
        await asyncio.gather(*(self.delete_pod(name, grace_seconds) for name in list(self._pods)))

    # -- internals -------------------------------------------------------------------------------------

    def _allocate_address(self, pod_name: str, declared: int | None) -> tuple[str, int]:
        """The pod's address and port: `declared` (its containerPort) on an address of its own where that
        port is free (another local cluster on this host may hold some addresses), else a free port."""
        if self.host is not None:
            taken = {pod.state.port for pod in self._pods.values()}
            for _ in range(50):
                port = _free_port(self.host, 0)
                if port is not None and port not in taken:
                    return self.host, port
            raise RuntimeError(f"pod {pod_name}: no free port on {self.host}")
        tried: list[str] = []
        for _ in range(64):
            ip = self.addresses.allocate()
            port = _free_port(ip, declared or 0)
            if port is not None:
                for other in tried:
                    self.addresses.release(other)
                return ip, port
            tried.append(ip)  # held until a free one is found, so the next try is another address
        for other in tried:
            self.addresses.release(other)
        raise RuntimeError(f"pod {pod_name}: no address of {self.addresses.network} has port {declared} free")

    def _update(self, pod: _Pod, **changes: object) -> None:
        before = pod.state
        pod.state = replace(before, **changes)  # type: ignore[arg-type]
        watched = ("phase", "ready", "reason", "pid", "restarts", "terminating")
        if any(getattr(before, f) != getattr(pod.state, f) for f in watched):
            self._notify(pod)

    def _notify(self, pod: _Pod) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(pod.state)
        except Exception:
            log.exception("pod %s: change callback failed", pod.state.name)

    def _env(self, pod: _Pod, resolved: ResolvedCommand) -> dict[str, str]:
        inherited = {
            k: v for k, v in os.environ.items() if k in self.inherit_env or k.startswith(INHERITED_PREFIXES)
        }
        defaults = {"HOSTNAME": pod.state.name, "PYTHONUNBUFFERED": "1", "POD_IP": pod.state.ip,
                    "POD_NAME": pod.state.name, "POD_NAMESPACE": pod.state.namespace}
        # What a manifest would take from the downward API; the demo service labels its metrics with it.
        if pod.state.labels.get("app"):
            defaults["POD_LABEL_APP"] = pod.state.labels["app"]
        env = {**inherited, **defaults, **resolved.env}
        if self.owner is not None:
            env[OWNER_ENV] = self.owner
        return env

    def _stopping(self, pod: _Pod) -> bool:
        return pod.stop.is_set()

    async def _wait_or_stop(self, pod: _Pod, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pod.stop.wait(), seconds)

    async def _run(self, pod: _Pod, adopted: tuple[int, int | None] | None = None, lost: bool = False) -> None:
        backoff = self.backoff_initial
        try:
            while not self._stopping(pod):
                if adopted is not None or lost:
                    # The process an earlier supervisor started: watch it until it ends (exit code unknown).
                    code = await self._watch_adopted(pod, *adopted) if adopted is not None else None
                    adopted, lost = None, False
                    if self._stopping(pod):
                        break
                    if code is None and pod.restart_policy == "Never":
                        self._update(pod, phase=PodPhase.FAILED, reason="Error",
                                     message="the process ended while not watched; exit code unknown")
                        return
                    self._update(pod, reason="CrashLoopBackOff",
                                 message=f"back-off {backoff:g}s restarting exited container (exit code unknown: "
                                         "it ended while the local cluster was not watching it, or after "
                                         "it restarted)")
                    await self._wait_or_stop(pod, backoff)
                    backoff = min(backoff * 2, self.backoff_cap)
                    continue
                try:
                    resolved = self.images.resolve(pod.container, extra_env=_runtime_env(pod.state))
                except (ImageNotResolvable, ImageMapError) as exc:
                    reason = (
                        "ImageNotResolvable" if isinstance(exc, ImageNotResolvable) else "ImageMapInvalid"
                    )
                    self._update(pod, phase=PodPhase.PENDING, reason=reason, message=str(exc))
                    # The map file is re-read on the next attempt, so fixing it heals the pod.
                    await self._wait_or_stop(pod, backoff)
                    backoff = min(backoff * 2, self.backoff_cap)
                    continue
                started = time.monotonic()
                code = await self._run_once(pod, resolved)
                if self._stopping(pod):
                    break
                if time.monotonic() - started >= self.backoff_reset_after:
                    backoff = self.backoff_initial
                if code == 0 and pod.restart_policy != "Always":
                    self._update(pod, phase=PodPhase.SUCCEEDED, reason="Completed", message=None)
                    return
                if code != 0 and pod.restart_policy == "Never":
                    self._update(pod, phase=PodPhase.FAILED, reason="Error", message=f"exit code {code}")
                    return
                why = (
                    f"could not start: {pod.state.message}"
                    if pod.state.reason == "StartError"
                    else f"exit code {code}"
                )
                self._update(
                    pod,
                    reason="CrashLoopBackOff",
                    message=f"back-off {backoff:g}s restarting exited container ({why})",
                )
                await self._wait_or_stop(pod, backoff)
                backoff = min(backoff * 2, self.backoff_cap)
        finally:
            process = pod.process
            if process is not None and process.returncode is None and not self.detached:
                # Cancelled without a clean stop (loop shutting down): leave nothing behind.
                _signal_group(process.pid, signal.SIGKILL)
            if pod.state.terminating and pod.state.phase in (PodPhase.PENDING, PodPhase.RUNNING):
                final = PodPhase.SUCCEEDED if pod.state.exit_code == 0 else PodPhase.FAILED
                self._update(pod, phase=final, pid=None, ready=False)

    async def _run_once(self, pod: _Pod, resolved: ResolvedCommand) -> int | None:
        """Run the container process once; returns its exit code (None if it could not start)."""
        restarted = pod.state.started_at is not None or pod.state.exit_code is not None
        env = self._env(pod, resolved)
        try:
            with open(pod.state.log_path, "ab") as log_file:
                process = await asyncio.create_subprocess_exec(
                    *resolved.argv,
                    env=env,
                    cwd=resolved.working_dir,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=None if self.detached else _die_with_parent(os.getpid()),
                )
        except (OSError, ValueError) as exc:  # ValueError: a NUL byte in argv or env
            self._update(pod, phase=PodPhase.RUNNING, reason="StartError", message=str(exc), exit_code=128)
            return 128
        pod.process = process
        self._update(
            pod,
            phase=PodPhase.RUNNING,
            pid=process.pid,
            pid_start=start_time(process.pid),
            adopted=False,
            reason=None,
            message=None,
            started_at=self.clock(),
            exit_code=None,
            restarts=pod.state.restarts + (1 if restarted else 0),
        )
        plan = plan_readiness(pod.container, pod.state.port, probe_period=self.probe_period, host=pod.state.ip)
        prober = asyncio.create_task(self._probe(pod, plan, env, resolved.working_dir))
        exited = asyncio.create_task(process.wait())
        stop = asyncio.create_task(pod.stop.wait())
        try:
            await asyncio.wait({exited, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not exited.done():
                await self._terminate(pod, process, exited)
            code = await exited
        finally:
            for task in (prober, stop, exited):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await prober
            if process.returncode is None:
                _signal_group(process.pid, signal.SIGKILL)
                await process.wait()
        # Children the process left in its group go with it, as a container's do.
        _signal_group(process.pid, signal.SIGKILL)
        pod.process = None
        self._update(pod, pid=None, pid_start=None, ready=False, ready_since=None, exit_code=code)
        return code

    async def _watch_adopted(self, pod: _Pod, pid: int, pid_start: int | None) -> int | None:
        """Watch a process that is not our child until it ends or the pod is deleted; None: exit unknown."""
        try:
            resolved = self.images.resolve(pod.container, extra_env=_runtime_env(pod.state))
            env, cwd = self._env(pod, resolved), resolved.working_dir
        except (ImageNotResolvable, ImageMapError):
            env, cwd = _runtime_env(pod.state), None  # only exec probes need them
        self._update(pod, phase=PodPhase.RUNNING, pid=pid, pid_start=pid_start, reason=None, message=None,
                     adopted=True)
        plan = plan_readiness(pod.container, pod.state.port, probe_period=self.probe_period, host=pod.state.ip)
        # The container has been up for a while: its initial delay is behind it.
        prober = asyncio.create_task(self._probe(pod, replace(plan, initial_delay=0.0), env, cwd))
        try:
            while alive(pid, pid_start):
                if pod.stop.is_set():
                    await self._terminate_adopted(pod, pid, pid_start)
                    break
                await self._wait_or_stop(pod, ADOPTED_POLL_SECONDS)
        finally:
            prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await prober
        _signal_group(pid, signal.SIGKILL)  # what it left in its group goes with it
        self._update(pod, pid=None, pid_start=None, ready=False, ready_since=None, exit_code=None, adopted=False)
        return None

    async def _terminate_adopted(self, pod: _Pod, pid: int, pid_start: int | None) -> None:
        grace = pod.grace if pod.grace_override is None else pod.grace_override
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + max(grace, 0.0)
        while alive(pid, pid_start) and time.monotonic() < deadline:
            await asyncio.sleep(min(ADOPTED_POLL_SECONDS, 0.05))
        if alive(pid, pid_start):
            log.info("pod %s: still running %gs after SIGTERM, sending SIGKILL", pod.state.name, grace)
            _signal_group(pid, signal.SIGKILL)

    async def _terminate(
        self, pod: _Pod, process: asyncio.subprocess.Process, exited: asyncio.Task[int]
    ) -> None:
        grace = pod.grace if pod.grace_override is None else pod.grace_override
        _signal_group(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(exited), max(grace, 0.0))
        except TimeoutError:
            log.info("pod %s: still running %gs after SIGTERM, sending SIGKILL", pod.state.name, grace)
            _signal_group(process.pid, signal.SIGKILL)

    def _bound_log(self, path: Path) -> None:
        """Rotate a pod's log past log_max_bytes, keeping log_max_files files in all (the kubelet's
        containerLogMaxSize 10Mi / containerLogMaxFiles 5): copy, then truncate in place, since the process
        keeps writing to its open (append-mode) file."""
        try:
            if path.stat().st_size <= self.log_max_bytes:
                return
            for index in range(self.log_max_files - 1, 1, -1):
                older = path.with_name(f"{path.name}.{index - 1}")
                if older.exists():
                    os.replace(older, path.with_name(f"{path.name}.{index}"))
            if self.log_max_files > 1:
                shutil.copyfile(path, path.with_name(f"{path.name}.1"))
            os.truncate(path, 0)
        except FileNotFoundError:
            return  # nothing written yet
        except OSError as exc:
            log.warning("pod log %s: cannot rotate: %s", path, exc)

    async def _probe(self, pod: _Pod, plan: ProbePlan, env: Mapping[str, str], cwd: str | None) -> None:
        tracker = ReadinessTracker(plan.success_threshold, plan.failure_threshold)
        if plan.initial_delay > 0:
            await asyncio.sleep(plan.initial_delay)
        ever_ready = False
        while True:
            self._bound_log(pod.state.log_path)
            ok = await check_once(plan, env, cwd)
            ready = tracker.observe(ok)
            ever_ready = ever_ready or ready
            if ready != pod.state.ready and not pod.state.terminating:
                self._update(pod, ready=ready, ready_since=self.clock() if ready else None)
            await asyncio.sleep(plan.period if ever_ready else min(plan.period, STARTUP_PROBE_INTERVAL))
