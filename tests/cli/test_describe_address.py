"""`describe analysisrun` shows the Prometheus address the measurements really queried: the controller's
--prometheus-address override (or the environment) rather than the template's address."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from tests.cli.fixtures import open_home
from tests.providers.conftest import Reply, ScriptedServer, _handler

Cli = Callable[..., Result]
TEMPLATE_ADDRESS = "http://prometheus.monitoring.svc:9090"


@pytest.fixture
def prometheus() -> Iterator[ScriptedServer]:
    import threading

    scripted = ScriptedServer()
    scripted.routes["/api/v1/query"] = Reply(body={"status": "success", "data": {
        "resultType": "vector", "result": [{"metric": {}, "value": [1700000000, "0.999"]}]}})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(scripted))
    httpd.daemon_threads = True
    scripted.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield scripted
    scripted.release.set()
    httpd.shutdown()
    httpd.server_close()


def _run(address: str | None) -> dict[str, Any]:
    prometheus: dict[str, Any] = {"query": "sum(up)"}
    if address is not None:
        prometheus["address"] = address
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
            "metadata": {"name": "gate-run", "namespace": "default"},
            "spec": {"metrics": [{"name": "success-rate", "count": 1, "successCondition": "result[0] > 0.99",
                                  "provider": {"prometheus": prometheus}}]}}


def _measured(run_obj: dict[str, Any], override: str | None) -> dict[str, Any]:
    """The run after the controller's executor measured it once, with `override` as --prometheus-address."""
    from rollouts.analysis.executor import AnalysisExecutor
    from rollouts.spec.analysis import AnalysisRun

    async def drive() -> AnalysisRun:
        executor = AnalysisExecutor(prometheus_address=override)
        run = AnalysisRun.model_validate(run_obj)
        try:
            for _ in range(200):
                run, _delay = executor.step(run, datetime.now(UTC))
                if run.status is not None and run.status.phase in ("Successful", "Failed", "Error"):
                    return run
                await executor.wait_any(0.05)
            raise AssertionError("the run did not finish")
        finally:
            await executor.close()

    return asyncio.run(drive()).model_dump(by_alias=True, exclude_none=True, mode="json")


@pytest.mark.parametrize("case", ["override", "environment", "template"])
def test_describe_analysisrun_shows_prometheus_address_actually_used(
        home: Path, cli: Cli, prometheus: ScriptedServer, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    if case == "override":
        measured = _measured(_run(TEMPLATE_ADDRESS), override=prometheus.url)
        expected = f"Address:  {prometheus.url} (queried; the template says {TEMPLATE_ADDRESS})"
    elif case == "environment":
        monkeypatch.setenv("ROLLOUTS_PROMETHEUS_ADDRESS", prometheus.url)
        measured = _measured(_run(None), override=None)
        expected = f"Address:  {prometheus.url} (queried; the template gives none)"
    else:
        measured = _measured(_run(prometheus.url), override=None)
        expected = f"Address:  {prometheus.url}"
    assert measured["status"]["phase"] == "Successful", measured["status"]
    assert prometheus.seen, "the measurement did not reach the Prometheus the test serves"
    with open_home(home) as store:
        store.create({k: v for k, v in measured.items() if k != "status"})
        store.patch("AnalysisRun", "default", "gate-run", {"status": measured["status"]}, subresource="status")
    text = cli("describe", "analysisrun", "gate-run").output
    address_lines = [line.strip() for line in text.splitlines() if line.strip().startswith("Address:")]
    assert [" ".join(line.split()) for line in address_lines] == [" ".join(expected.split())], text
