"""The executor hands providers the run's owner and labels, so traffic plugins can infer the rollout's
service and revision (13.7, 20.2)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from rollouts.analysis.executor import AnalysisExecutor
from rollouts.analysis.outcome import MeasurementOutcome
from rollouts.analysis.providers.base import MeasureContext
from rollouts.spec.analysis import AnalysisRun, Metric

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class _Capture:
    type_label = "RPCPlugin"

    def __init__(self) -> None:
        self.contexts: list[MeasureContext] = []

    async def measure(self, metric: Metric, ctx: MeasureContext) -> MeasurementOutcome:
        self.contexts.append(ctx)
        return MeasurementOutcome(value=1.0, printed="1")


def _run(owner_kind: str | None) -> AnalysisRun:
    meta: dict[str, Any] = {"name": "shop-abc-2-1", "namespace": "default", "uid": "u1",
                            "labels": {"rollouts-pod-template-hash": "abc"}}
    if owner_kind:
        meta["ownerReferences"] = [{"apiVersion": "argoproj.io/v1alpha1", "kind": owner_kind, "name": "shop",
                                    "uid": "r1", "controller": True}]
    return AnalysisRun.model_validate({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun", "metadata": meta,
        "spec": {"metrics": [{"name": "gate", "successCondition": "result == 1",
                              "provider": {"plugin": {"rollouts/traffic": {"metric": "success-rate"}}}}]},
    })


@pytest.mark.parametrize(("owner_kind", "owner"), [("Rollout", "shop"), ("Experiment", None), (None, None)],
                         ids=["rollout-owner", "other-owner", "standalone"])
def test_measure_context_carries_the_owning_rollout_and_run_labels(owner_kind: str | None,
                                                                   owner: str | None) -> None:
    capture = _Capture()

    async def go() -> None:
        executor = AnalysisExecutor(providers={"rollouts/traffic": capture})
        executor.step(_run(owner_kind), NOW)
        await executor.wait_any(5)
        await executor.close()

    asyncio.run(go())
    assert [c.owner for c in capture.contexts] == [owner]
    assert capture.contexts[0].labels == {"rollouts-pod-template-hash": "abc"}
