"""Shared test fixtures: where the shared reference data lives, skip rules for missing tools, and the order the
suite runs in (its slowest modules first, so that two xdist workers end together)."""

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


# The suite's slowest modules (each a real controller, cluster or Prometheus waiting out real gate intervals),
# longest first as measured with `pytest -n 2 --durations`: run first, they overlap each other and the
# thousands of quick tests fill in behind them. Collected last, as before, a 78 s test could start when the
# other worker had nothing left and run alone at the end. The rest of tests/e2e follows them, then every other
# test in collection order.
SLOW_FIRST = (
    "tests/e2e/test_demo.py",
    "tests/e2e/test_infra_runbook_prometheus.py",
    "tests/e2e/test_runbook.py",
    "tests/e2e/test_demo_prometheus.py",
    "tests/e2e/test_controller_restart.py",
    "tests/gate/test_gate_check_prometheus.py",
    "tests/gate/test_gate_check_local_cluster.py",
    "tests/e2e/test_leader_failover.py",
    "tests/e2e/test_adoption_e2e.py",
    "tests/e2e/test_apiserver_restart.py",
)
SLOW_DIRS = ("tests/e2e/",)


def _run_rank(item: pytest.Item) -> int:
    path = Path(str(item.fspath)).resolve()
    try:
        relative = path.relative_to(REPO).as_posix()
    except ValueError:
        return len(SLOW_FIRST) + 1
    if relative in SLOW_FIRST:
        return SLOW_FIRST.index(relative)
    return len(SLOW_FIRST) if relative.startswith(SLOW_DIRS) else len(SLOW_FIRST) + 1


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slowest modules first (a stable sort: every worker computes the same order, as xdist requires)."""
    missing = [name for name in SLOW_FIRST if not (REPO / name).is_file()]
    if missing:  # a renamed module would silently drop back to the end of the run
        raise pytest.UsageError(f"tests/conftest.py SLOW_FIRST names modules that do not exist: {missing}")
    items.sort(key=_run_rank)
