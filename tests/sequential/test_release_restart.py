"""`since: release` across step gates and a controller restart: the test's start is read back from the
measurement metadata stored in the release's AnalysisRuns, so a fresh provider (no memory of the canary's
first request) continues the same test and its counts keep accumulating; also through the executor with
the runs stored in SQLite, as the controller keeps them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from rollouts.analysis.executor import AnalysisExecutor
from rollouts.analysis.providers.base import MeasureContext
from rollouts.analysis.providers.sequential import SequentialMetricProvider
from rollouts.analysis.sequential.release_start import release_start_of, store_release_start
from rollouts.cluster.store import SQLiteStore
from rollouts.spec.analysis import AnalysisRun, Metric
from tests.sequential.test_restart import RUN_START, SecondStats

RELEASE_START = RUN_START  # the canary's first request (stats count from here)
GATE2_START = RELEASE_START + 300
METRIC = Metric.model_validate({"name": "seq", "provider": {"plugin": {"rollouts/sequential": {
    "test": "errors", "alpha": 0.01, "minSamples": 100, "since": "release"}}}})


class FirstSeenStats(SecondStats):
    """Remembers the canary's first request, as the local stats do in memory (lost on a restart)."""

    def __init__(self, first: float | None) -> None:
        super().__init__()
        self.first = first

    def first_seen(self, namespace: str, service: str, version: object, **scope: object) -> float | None:
        return self.first


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _run(name: str, started: float, phase: str, starts: list[str], revision: str = "abc") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "shop", "labels": {"rollouts-pod-template-hash": revision},
                         "ownerReferences": [{"kind": "Rollout", "name": "shop"}]},
            "status": {"phase": phase, "startedAt": _iso(started), "metricResults": [{"name": "seq", "measurements": [
                {"phase": "Inconclusive", "metadata": {"since": "release", "start": s}} for s in starts]}]}}


def _ctx(run: str, started: float) -> MeasureContext:
    return MeasureContext(namespace="shop", run_name=run, metric_name="seq", measurement_index=1,
                          run_started_at=datetime.fromtimestamp(started, UTC), args={"service-name": "shop"},
                          owner="shop", labels={"rollouts-pod-template-hash": "abc"})


def _measure(provider: SequentialMetricProvider, ctx: MeasureContext) -> tuple[dict[str, Any], dict[str, str]]:
    outcome = asyncio.run(provider.measure(METRIC, ctx))
    assert outcome.error is None and isinstance(outcome.value, dict), outcome.error
    return outcome.value, dict(outcome.metadata)


def test_since_release_survives_a_controller_restart_between_step_gates() -> None:
    runs: list[dict[str, Any]] = []
    # Gate 1, before the restart: the start is the canary's first request, recorded in the metadata.
    before = SequentialMetricProvider(stats=FirstSeenStats(RELEASE_START), clock=lambda: RELEASE_START + 4,  # type: ignore[arg-type]
                                      stored_start=store_release_start(lambda kind, ns: runs))
    value, meta = _measure(before, _ctx("shop-abc-2", RELEASE_START))
    assert meta["since"] == "release" and float(meta["start"]) == RELEASE_START
    runs.append(_run("shop-abc-2", RELEASE_START, "Successful", [meta["start"]]))
    # The controller restarts; gate 2's run starts 5 minutes later. The new process has no first request
    # in memory: the stored metadata gives the same start, and the counts cover the whole release.
    after = SequentialMetricProvider(stats=FirstSeenStats(None), clock=lambda: GATE2_START + 10,  # type: ignore[arg-type]
                                     stored_start=store_release_start(lambda kind, ns: runs))
    value, meta = _measure(after, _ctx("shop-abc-4", GATE2_START))
    assert float(meta["start"]) == RELEASE_START
    assert value["canaryRequests"] == 20 * 310 and value["canaryEvents"] == (20 * 310 * 3) // 100


def test_without_the_stored_start_a_restart_starts_the_release_test_over() -> None:
    # What the stored start prevents: the fallback is the new run's start.
    provider = SequentialMetricProvider(stats=FirstSeenStats(None), clock=lambda: GATE2_START + 10)  # type: ignore[arg-type]
    value, meta = _measure(provider, _ctx("shop-abc-4", GATE2_START))
    assert float(meta["start"]) == GATE2_START and value["canaryRequests"] == 200


@pytest.mark.parametrize(
    ("runs", "expected"),
    [
        ([_run("shop-abc-2", 100, "Successful", ["90.5"]), _run("shop-abc-4", 400, "Running", ["90.5"])], 90.5),
        ([_run("shop-abc-4", 400, "Running", ["350"])], 350.0),
        ([_run("shop-abc-2", 100, "Failed", ["90"]), _run("shop-abc-4", 400, "Running", [])], None),
        ([_run("shop-abc-1", 50, "Successful", ["40"]), _run("shop-abc-2", 100, "Failed", ["40"]),
          _run("shop-abc-3", 300, "Successful", ["290"])], 290.0),
        ([_run("shop-xyz-2", 100, "Successful", ["90"], revision="xyz")], None),
        ([], None),
    ],
    ids=["earlier-gate-of-the-release", "own-run-after-restart", "failed-attempt-ends-the-test",
         "retry-after-abort-starts-anew", "other-revision-ignored", "nothing-stored"],
)
def test_release_start_is_the_earliest_recorded_in_the_release_attempt(
    runs: list[dict[str, Any]], expected: float | None
) -> None:
    assert release_start_of(runs, _ctx("shop-abc-4", 400)) == expected


def _stored_run(name: str, started: float) -> dict[str, Any]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
            "metadata": {"name": name, "namespace": "shop", "labels": {"rollouts-pod-template-hash": "abc"},
                         "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                                              "name": "shop", "uid": "r1"}]},
            "spec": {"args": [{"name": "service-name", "value": "shop"}],
                     "metrics": [{"name": "seq", "interval": "10s", "count": 60, "inconclusiveLimit": 60,
                                  "successCondition": "result.decided && !result.regression",
                                  "failureCondition": "result.regression",
                                  "provider": {"plugin": {"rollouts/sequential": {
                                      "test": "errors", "minSamples": 100, "since": "release"}}}}]},
            "status": {"phase": "Running", "startedAt": _iso(started)}}


def _executor_measures(store: Any, name: str, provider: SequentialMetricProvider, now: float) -> dict[str, Any]:
    """One measurement of the stored run by a fresh executor (a controller process), stored back."""
    async def go() -> dict[str, Any]:
        executor = AnalysisExecutor(providers={"rollouts/sequential": provider})
        obj = store.get("AnalysisRun", "shop", name)
        at = datetime.fromtimestamp(now, UTC)
        run, _ = executor.step(AnalysisRun.model_validate(obj), at)
        await executor.wait_any(5.0)
        run, _ = executor.step(run, at)
        await executor.close()
        assert run.status is not None
        store.update_status({**dict(obj), "status": run.status.to_dict()})
        return dict(store.get("AnalysisRun", "shop", name))

    return asyncio.run(go())


def test_since_release_continues_across_an_executor_restart_with_runs_in_sqlite(tmp_path: Any) -> None:
    with SQLiteStore(tmp_path / "state.db") as store:
        store.create(_stored_run("shop-abc-2", RELEASE_START))
        lookup = store_release_start(store.list)
        first = SequentialMetricProvider(stats=FirstSeenStats(RELEASE_START), clock=lambda: RELEASE_START + 4,  # type: ignore[arg-type]
                                         stored_start=lookup)
        stored = _executor_measures(store, "shop-abc-2", first, RELEASE_START + 4)
        metadata = stored["status"]["metricResults"][0]["measurements"][0]["metadata"]
        assert float(metadata["start"]) == RELEASE_START
        # A new controller process: new executor, new provider without the first request in memory.
        store.create(_stored_run("shop-abc-4", GATE2_START))
        second = SequentialMetricProvider(stats=FirstSeenStats(None), clock=lambda: GATE2_START + 10,  # type: ignore[arg-type]
                                          stored_start=store_release_start(store.list))
        stored = _executor_measures(store, "shop-abc-4", second, GATE2_START + 10)
        measurement = stored["status"]["metricResults"][0]["measurements"][0]
        assert float(measurement["metadata"]["start"]) == RELEASE_START
        assert '"canaryRequests":6200' in measurement["value"]
