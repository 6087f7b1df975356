"""`rollouts controller` passes its local-cluster flags to the cluster it starts: --no-prometheus starts the
cluster without the Prometheus pod, and the default runs it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rollouts.cli import commands  # noqa: F401  (registers the verbs)
from rollouts.cli.main import app
from rollouts.cluster.apiserver import server
from rollouts.cluster.runtime_options import RuntimeOptions


@pytest.fixture(autouse=True)
def logging_restored() -> Iterator[None]:
    """`rollouts controller` configures the process' logging (a handler on the stderr CliRunner captures, and
    closes): put it back, or every later test's log lines go to a closed stream."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    chatty = {name: logging.getLogger(name).level for name in ("httpx", "httpx2", "httpcore")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved in chatty.items():
        logging.getLogger(name).setLevel(saved)


@pytest.mark.parametrize(("flags", "prometheus"), [([], True), (["--no-prometheus"], False),
                                                   (["--prometheus"], True)],
                         ids=["default", "no-prometheus", "prometheus"])
def test_controller_passes_the_prometheus_flag_to_the_cluster_it_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: list[str], prometheus: bool) -> None:
    started: list[RuntimeOptions] = []

    def start_background(home: Path, *args: Any, runtime: RuntimeOptions, **kwargs: Any) -> Any:
        started.append(runtime)
        raise RuntimeError("not started in this test")

    monkeypatch.setattr(server, "start_background", start_background)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    result = CliRunner().invoke(app, ["controller", "--home", str(tmp_path / "home"), "--metrics-address", "", *flags])
    assert result.exit_code != 0 and "cannot start the local cluster" in result.output
    assert [options.prometheus for options in started] == [prometheus]
