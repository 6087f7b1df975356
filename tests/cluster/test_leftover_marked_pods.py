"""`cluster down` after a SIGKILLed cluster stops a pod process the store never recorded (the cluster died between
starting it and writing its pid): the process names its cluster's home in its environment."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from rollouts.cluster.leftovers import stop_leftovers
from rollouts.runtime.local.supervisor import OWNER_ENV

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def _spawn(owner: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(SLEEPER, env={**os.environ, OWNER_ENV: str(owner.resolve())}, start_new_session=True)


def _wait_gone(process: subprocess.Popen[bytes], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return True
        time.sleep(0.02)
    return False


def test_unrecorded_pod_process_of_this_home_is_stopped_and_another_homes_is_not(tmp_path: Path) -> None:
    home, other = tmp_path / "home", tmp_path / "other"
    home.mkdir()
    other.mkdir()
    ours, theirs = _spawn(home), _spawn(other)
    try:
        assert stop_leftovers(home, grace=2.0) >= 1
        assert _wait_gone(ours), "the unrecorded pod process of this home is still running"
        assert theirs.poll() is None, "another home's pod process was stopped"
    finally:
        for process in (ours, theirs):
            process.kill()
            process.wait(5)
