"""One runtime per home: a second local cluster process for a home that one already runs exits at once
(two would each start the ReplicaSets' pods, and `cluster down` could stop only one), and a start that
loses that race uses the winner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rollouts.cluster.apiserver.server import EXIT_ALREADY_RUNNING, start_background, status, stop_background


def test_second_cluster_process_for_a_home_exits_and_the_first_keeps_serving(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    first = start_background(home)
    try:
        second = subprocess.run([sys.executable, "-m", "rollouts.cluster.apiserver.server", "--home", str(home)],
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == EXIT_ALREADY_RUNNING, second.stdout + second.stderr
        assert "another local cluster process already runs" in second.stderr
        assert status(home) == first
    finally:
        assert stop_background(home)
    assert status(home) is None
