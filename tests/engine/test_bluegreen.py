"""Blue/green behaviours, one scenario per behaviour."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rollouts.engine import intents
from rollouts.engine.world import World, failed_after, successful_after

from .builders import deployed, rollout, update

ANALYSIS = {"templates": [{"templateName": "success-rate"}]}


def bg(**extra: Any) -> dict[str, Any]:
    return {"activeService": "active", "previewService": "preview", **extra}


def status(w: World):  # type: ignore[no-untyped-def]
    assert w.rollout.status is not None
    return w.rollout.status


def healthy_on_new(w: World) -> bool:
    s = status(w)
    return w.phase == "Healthy" and s.stable_rs == s.current_pod_hash


def scenario_initial_deploy_points_both_services() -> None:
    w = deployed(rollout(replicas=3, blue_green=bg()))
    h = status(w).current_pod_hash
    assert w.selectors == {"active": h, "preview": h}
    assert status(w).blue_green.active_selector == h  # type: ignore[union-attr]
    assert "Initial deploy" in w.events[-1].message or any("Initial deploy" in e.message for e in w.events)


def scenario_auto_promotion_switches_when_ready() -> None:
    w = deployed(rollout(replicas=3, blue_green=bg()))
    old = status(w).current_pod_hash
    update(w)
    w.settle()
    new = status(w).current_pod_hash
    assert w.selectors == {"active": old, "preview": new}
    assert w.phase == "Progressing"
    assert w.run(until=healthy_on_new)
    assert w.selectors == {"active": new, "preview": new}
    assert "SwitchService" in w.event_reasons()
    assert w.counts()[1] == (3, 3)  # kept for scaleDownDelaySeconds
    w.advance(30)
    w.settle()
    assert w.counts()[1] == (0, 0)


def scenario_preview_replica_count_and_manual_promotion() -> None:
    w = deployed(rollout(replicas=3, blue_green=bg(previewReplicaCount=1, autoPromotionEnabled=False)))
    update(w)
    w.run(until=lambda x: x.phase == "Paused")
    assert status(w).message == "BlueGreenPause" and w.counts() == {1: (3, 3), 2: (1, 1)}
    assert w.selectors["active"] == status(w).stable_rs
    w.patch(intents.promote(w.rollout))
    assert w.run(until=healthy_on_new)
    assert w.counts()[2] == (3, 3)
    assert w.selectors["active"] == status(w).current_pod_hash


def scenario_auto_promotion_seconds() -> None:
    w = deployed(rollout(replicas=2, blue_green=bg(autoPromotionSeconds=20)))
    update(w)
    w.run(until=lambda x: x.phase == "Paused")
    paused_at = w.now
    assert w.run(until=lambda x: x.selectors["active"] == status(x).current_pod_hash)
    assert (w.now - paused_at).total_seconds() == pytest.approx(20)


def scenario_pre_promotion_analysis_blocks_switch() -> None:
    w = deployed(rollout(replicas=2, blue_green=bg(prePromotionAnalysis=ANALYSIS)), outcome=successful_after(60))
    old = status(w).current_pod_hash
    update(w)
    w.run(until=lambda x: bool(x.runs))
    (name,) = w.runs
    assert name.endswith("-pre") and w.runs[name].metadata.labels["rollout-type"] == "PrePromotion"
    w.advance(30)
    w.settle()
    assert w.selectors["active"] == old
    assert w.run(until=healthy_on_new)


def scenario_pre_promotion_failure_aborts_keeps_active() -> None:
    w = deployed(rollout(replicas=2, blue_green=bg(prePromotionAnalysis=ANALYSIS)), outcome=failed_after(10))
    old = status(w).current_pod_hash
    update(w)
    w.run(until=lambda x: x.phase == "Degraded")
    assert w.selectors["active"] == old
    assert "Blue/green pre-promotion analysis phase error/failed" in (status(w).message or "")
    w.run(max_seconds=60)
    assert w.counts()[2] == (0, 0)


def scenario_post_promotion_failure_switches_back() -> None:
    w = deployed(rollout(replicas=2, blue_green=bg(postPromotionAnalysis=ANALYSIS)), outcome=failed_after(10))
    old = status(w).current_pod_hash
    update(w)
    w.run(until=lambda x: x.selectors["active"] == status(x).current_pod_hash)
    assert status(w).message == "waiting for analysis to complete"
    w.run(until=lambda x: x.phase == "Degraded")
    assert w.selectors["active"] == old and status(w).stable_rs == old
    assert "Blue/green post-promotion analysis phase error/failed" in (status(w).message or "")


def scenario_abort_and_retry() -> None:
    w = deployed(rollout(replicas=2, blue_green=bg(autoPromotionEnabled=False, abortScaleDownDelaySeconds=10)))
    update(w)
    w.run(until=lambda x: x.phase == "Paused")
    w.patch(intents.abort(w.rollout))
    w.run(until=lambda x: x.phase == "Degraded")
    w.run(max_seconds=30)
    assert w.counts()[2] == (0, 0) and w.phase == "Degraded"
    w.patch(intents.retry(w.rollout))
    w.run(until=lambda x: x.phase == "Paused")
    assert w.counts()[2] == (2, 2)
    w.patch(intents.promote(w.rollout))
    assert w.run(until=healthy_on_new)


def scenario_promote_full_skips_analysis() -> None:
    w = deployed(rollout(replicas=2, blue_green=bg(prePromotionAnalysis=ANALYSIS)), outcome=lambda r, t: None)
    update(w)
    w.run(until=lambda x: bool(x.runs))
    w.patch(intents.promote(w.rollout, full=True))
    assert w.run(until=healthy_on_new)
    (run,) = w.runs.values()
    assert run.spec.terminate


def scenario_fast_rollback_within_scale_down_delay() -> None:
    w = deployed(rollout(replicas=2, blue_green=bg(scaleDownDelaySeconds=600, prePromotionAnalysis=ANALYSIS)))
    update(w)
    assert w.run(until=healthy_on_new)
    runs = len(w.runs)
    update(w, "app:1")
    assert w.run(until=healthy_on_new, max_seconds=5)
    assert len(w.runs) == runs and w.counts()[3] == (2, 2)


SCENARIOS = {
    name.removeprefix("scenario_"): fn for name, fn in dict(globals()).items() if name.startswith("scenario_")
}


@pytest.mark.parametrize("scenario", list(SCENARIOS.values()), ids=list(SCENARIOS))
def test_blue_green_behaviour(scenario: Callable[[], None]) -> None:
    scenario()
