"""Fixtures shared by the end-to-end tests: a controller process on a temporary home, stopped afterwards
with a check that none of the pod processes it started outlives it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import ControllerProcess


@pytest.fixture
def controller(tmp_path: Path) -> Iterator[ControllerProcess]:
    ctl = ControllerProcess(tmp_path / "home")
    ctl.start()
    try:
        yield ctl
    finally:
        ctl.stop_leaving_no_pods()
