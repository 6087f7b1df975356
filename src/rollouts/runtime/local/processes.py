"""Recognising a process again after the process that started it has gone: its pid plus its start time
(field 22 of /proc/PID/stat, clock ticks since boot), so a pid the kernel recycled for another program is
never mistaken for a pod. Used to re-adopt pods when the local cluster restarts, and by `rollouts cluster
down` to stop every recorded pod and job process even when the cluster process was killed."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

PID_ANNOTATION = "rollouts.io/pid"
PID_START_ANNOTATION = "rollouts.io/pid-start"
# A Job attempt's Pod records its runner's process under keys of its own (the Job controller adopts it).
JOB_PID_ANNOTATION = "rollouts.io/job-pid"
JOB_PID_START_ANNOTATION = "rollouts.io/job-pid-start"


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot; None when no such (non-zombie) process exists."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself contain spaces or parentheses.
    fields = raw[raw.rfind(")") + 2:].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    try:
        return int(fields[19])  # field 22 overall: 3 is fields[0]
    except ValueError:
        return None


def alive(pid: int | None, started: int | None) -> bool:
    """Whether `pid` is still the process that started at `started` (no /proc: whether the pid exists)."""
    if pid is None or pid <= 0:
        return False
    if not Path("/proc/self/stat").exists():
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    found = start_time(pid)
    return found is not None and (started is None or found == started)


def recorded(annotations: dict[str, str] | None, pid_key: str = PID_ANNOTATION,
             start_key: str = PID_START_ANNOTATION) -> tuple[int, int | None] | None:
    """(pid, start time) recorded in an object's annotations, or None."""
    notes = annotations or {}
    try:
        pid = int(notes[pid_key])
    except (KeyError, ValueError):
        return None
    try:
        started: int | None = int(notes[start_key])
    except (KeyError, ValueError):
        started = None
    return pid, started


def signal_group(pid: int, sig: int) -> None:
    """Signal the process group `pid` leads (pods and jobs run in sessions of their own)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def marked(key: str, value: str) -> list[tuple[int, int | None]]:
    """(pid, start time) of every process group leader whose environment holds `key=value` (Linux /proc;
    processes of other users, whose environment cannot be read, are not ours)."""
    wanted = f"{key}={value}".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        try:
            with open(f"/proc/{pid}/environ", "rb") as environ:
                variables = environ.read().split(b"\0")
            leader = os.getpgid(pid) == pid
        except OSError:
            continue
        if leader and wanted in variables:
            found.append((pid, start_time(pid)))
    return found


def stop_all(processes: Iterable[tuple[int, int | None]], grace: float = 10.0, poll: float = 0.05) -> int:
    """SIGTERM the group of every live process, SIGKILL those still alive after `grace` seconds; returns how
    many were alive. Processes that are not (or no longer) the recorded ones are never signalled."""
    live = [(pid, started) for pid, started in processes if alive(pid, started)]
    for pid, _ in live:
        signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    waiting = list(live)
    while waiting and time.monotonic() < deadline:
        for pid, _ in waiting:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)  # reap it if it happens to be our child
        waiting = [(pid, started) for pid, started in waiting if alive(pid, started)]
        if waiting:
            time.sleep(poll)
    for pid, started in waiting:
        if alive(pid, started):
            signal_group(pid, signal.SIGKILL)
    # What the group leader left in its group goes too, as a container's children do.
    for pid, _ in live:
        signal_group(pid, signal.SIGKILL)
    return len(live)
