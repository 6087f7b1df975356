"""Shared test fixtures: where the shared reference data lives, and skip rules for missing tools."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_dir() -> Path | None:
    """The read-only shared folder beside the project (Argo's examples and CRDs), if present."""
    env = os.environ.get("ROLLOUTS_SHARED")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared")
    for candidate in candidates:
        if (candidate / "argo-examples").is_dir():
            return candidate
    return None


@pytest.fixture(scope="session")
def shared() -> Path:
    found = shared_dir()
    if found is None:
        pytest.skip("../shared (Argo examples and CRDs) is absent; set ROLLOUTS_SHARED to its path")
    return found


def require_tool(name: str, install_hint: str) -> str:
    """The path of an external program; in CI a missing one is a failure, elsewhere a skip that says how to get it."""
    path = shutil.which(name)
    if path:
        return path
    if os.environ.get("CI") == "true":
        pytest.fail(f"{name} is not installed in CI: .ci/run must install it ({install_hint})")
    pytest.skip(f"{name} is not installed: {install_hint}")


@pytest.fixture(autouse=True)
def _cluster_selection_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI remembers a verb's --kubeconfig/--context for the rest of its process: each test starts with
    none remembered, whatever a CLI invocation in an earlier test on the same worker chose."""
    from rollouts.cli import connection

    monkeypatch.setattr(connection, "selected", connection.Selection())
