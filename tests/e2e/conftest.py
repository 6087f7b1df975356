"""Fixtures shared by the end-to-end tests: a controller process on a temporary home, stopped afterwards
with a check that none of the pod processes it started outlives it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import ControllerProcess, wait_until
from tests.e2e.processes import descendants, living


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[ControllerProcess]:
    ctl = ControllerProcess(tmp_path / "home")
    ctl.start()
    pods: set[int] = set()
    try:
        yield ctl
    finally:
        if ctl.process is not None and ctl.process.poll() is None:
            pods = descendants(ctl.process.pid)
        ctl.stop()
    wait_until(lambda: not living(pods), 20, "every pod process to exit")
