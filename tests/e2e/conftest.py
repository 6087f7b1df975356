"""Fixtures shared by the end-to-end tests: a controller process on a temporary home, stopped afterwards
with a check that no pod process outlives it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import ControllerProcess, demo_service_pids, wait_until


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[ControllerProcess]:
    ctl = ControllerProcess(tmp_path / "home")
    ctl.start()
    try:
        yield ctl
    finally:
        ctl.stop()
    wait_until(lambda: not demo_service_pids(), 20, "every pod process to exit")
