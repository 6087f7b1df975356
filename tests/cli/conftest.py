"""A temp rollouts home with Argo's documented examples in its store, and a runner for the CLI on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.cli.fixtures import Clock, aborted_canary, open_home, paused_canary
from tests.cli.serving import serve, stop_all


@pytest.fixture(autouse=True)
def _stop_api_servers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The tests' own API servers are the clusters in use, whatever the shell's $KUBECONFIG points at
    # (subprocesses inherit this environment too).
    monkeypatch.delenv("KUBECONFIG", raising=False)
    yield
    stop_all()  # every API server a test of this folder started serves only that test


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    clock = Clock()
    store = open_home(tmp_path, clock)
    paused_canary(store, clock)
    aborted_canary(store, clock)
    store.close()
    serve(tmp_path)
    yield tmp_path


@pytest.fixture
def cli(home: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    from rollouts.cli import commands  # noqa: F401
    from rollouts.cli.main import app

    monkeypatch.setenv("ROLLOUTS_HOME", str(home))
    monkeypatch.delenv("ROLLOUTS_NAMESPACE", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)  # the home's own cluster, whatever the shell points at
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(app, list(args), catch_exceptions=False)

    return run
