"""Stopping a CLI subprocess as Ctrl-C does, for the tests of verbs that run until interrupted (`logs -f`,
`port-forward`).

Why a helper: the tests waited 10 s for the process to end after SIGINT and otherwise raised TimeoutExpired
from their `finally`, which hid the assertion that had failed (if any), left the process running and said
nothing of where it was. On a machine loaded by a full parallel suite a `python -m rollouts` process takes
seconds to start and to finalize (measured 3-9 s to its first line and up to 1.7 s from SIGINT to exit at load
13 on 2 cores, and both grow with the load), so the wait is now generous; it ends as soon as the process
does. A process that still does not end is made to dump its threads' stacks (Python's faulthandler, turned
on by the environment `env()` gives) and the failure shows them."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

EXIT_SECONDS = 60.0
# How long such a process may take to print its first line on a loaded machine.
START_SECONDS = 60.0


def env(home: Path) -> dict[str, str]:
    """The environment of a CLI subprocess on `home`: unbuffered output, stacks dumped on SIGABRT."""
    return {**os.environ, "ROLLOUTS_HOME": str(home), "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}


def interrupt(proc: subprocess.Popen[str], timeout: float = EXIT_SECONDS) -> int:
    """SIGINT, then wait for the exit; returns the exit code. Fails with the process's stacks if it does not
    end within `timeout` (it is then killed)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)  # faulthandler writes every thread's stack to stderr, then it dies
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        stderr = proc.stderr.read() if proc.stderr is not None else ""
        raise AssertionError(f"{proc.args!r} still ran {timeout:g}s after SIGINT; its stacks:\n{stderr}") from None
