"""Canary behaviours, one scenario per behaviour (ids name it), run in the in-memory world."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rollouts.engine import intents
from rollouts.engine.types import (
    CreateAnalysisRun,
    RemoveHeaderRoute,
    SetCanaryWeight,
    SetHeaderRoute,
    SetScaleDownDeadline,
    TerminateAnalysisRun,
)
from rollouts.engine.world import World, failed_after, successful_after

from .builders import deployed, rollout, traffic, update, world

ANALYSIS = {"analysis": {"templates": [{"templateName": "success-rate"}]}}


def status(w: World):  # type: ignore[no-untyped-def]
    assert w.rollout.status is not None
    return w.rollout.status


def paused(w: World) -> bool:
    return w.phase == "Paused"


def healthy_on_new(w: World) -> bool:
    s = status(w)
    return w.phase == "Healthy" and s.stable_rs == s.current_pod_hash


def all_actions(w: World, run: Callable[[], object]) -> list[object]:
    """Every action the engine asked for while `run` executes."""
    seen: list[object] = []
    original = w.apply

    def spy(decision):  # type: ignore[no-untyped-def]
        seen.extend(decision.actions)
        original(decision)

    w.apply = spy  # type: ignore[method-assign]
    try:
        run()
    finally:
        w.apply = original  # type: ignore[method-assign]
    return seen


def scenario_initial_deploy() -> None:
    ro = rollout(replicas=3, steps=[{"setWeight": 50}, {"pause": {}}],
                 canary={"analysis": {"templates": [{"templateName": "success-rate"}]}})
    w = world(ro)
    d = w.reconcile()
    assert [e.reason for e in d.events] == [
        "RolloutUpdated", "NewReplicaSetCreated", "ScalingReplicaSet", "RolloutCompleted"]
    assert d.events[-1].message.endswith("Initial deploy")
    s = d.status
    assert s.stable_rs == s.current_pod_hash and s.current_step_index == 2
    assert not any(isinstance(a, CreateAnalysisRun) for a in d.actions)
    assert s.phase == "Progressing" and s.message == "updated replicas are still becoming available"
    w.run(until=lambda x: x.phase == "Healthy")
    assert w.counts() == {1: (3, 3)} and not w.runs


def scenario_update_starts_steps() -> None:
    w = deployed(rollout(replicas=1, steps=[{"setWeight": 50}, {"pause": {}}]))
    update(w)
    d = w.reconcile()
    assert [e.reason for e in d.events] == [
        "RolloutUpdated", "NewReplicaSetCreated", "RolloutNotCompleted", "ScalingReplicaSet"]
    assert d.events[0].message == "Rollout updated to revision 2"
    assert d.events[3].message.startswith("Scaled up ReplicaSet app-") and d.events[3].message.endswith(
        "(revision 2) from 0 to 1")
    assert d.status.current_step_index == 0 and d.status.stable_rs != d.status.current_pod_hash
    assert d.status.phase == "Progressing"


def scenario_set_weight_basic_closest_split() -> None:
    w = deployed(rollout(replicas=10, steps=[{"setWeight": 41}, {"pause": {}}]))
    update(w)
    w.run(until=paused)
    assert w.counts() == {1: (6, 6), 2: (4, 4)}
    assert [e.message for e in w.events if e.reason == "RolloutStepCompleted"] == [
        "Rollout step 1/2 completed (setWeight: 41)"]


def scenario_pause_indefinite() -> None:
    w = deployed(rollout(steps=[{"setWeight": 50}, {"pause": {}}]))
    update(w)
    w.run(until=paused)
    s = status(w)
    assert s.message == "CanaryPauseStep" and s.controller_pause
    assert [p.reason for p in s.pause_conditions or []] == ["CanaryPauseStep"]
    w.advance(3600)
    d = w.settle()
    assert d.status.phase == "Paused" and d.requeue_after is None or d.requeue_after and d.requeue_after > 0


def scenario_pause_duration_requeues_at_expiry() -> None:
    w = deployed(rollout(steps=[{"setWeight": 50}, {"pause": {"duration": "1m"}}, {"setWeight": 80}]))
    update(w)
    w.run(until=paused)
    assert w.last is not None and w.last.requeue_after == pytest.approx(60.0)
    start = w.now
    assert w.run(until=lambda x: (status(x).current_step_index or 0) >= 2)
    assert (w.now - start).total_seconds() == pytest.approx(60.0)
    assert "Rollout step 2/3 completed (pause: 1m)" in [e.message for e in w.events]


def scenario_analysis_step_successful_advances() -> None:
    w = deployed(rollout(steps=[{"setWeight": 50}, ANALYSIS, {"pause": {}}]), outcome=successful_after(30))
    update(w)
    w.run(until=paused)
    run = w.runs[f"app-{status(w).current_pod_hash}-2-1"]
    assert run.metadata.labels["rollout-type"] == "Step" and run.metadata.labels["step-index"] == "1"
    assert run.metadata.owner_references and run.metadata.owner_references[0].name == "app"
    assert status(w).current_step_index == 2
    assert "AnalysisRunSuccessful" in w.event_reasons()


def scenario_analysis_step_failed_aborts() -> None:
    w = deployed(rollout(steps=[{"setWeight": 50}, ANALYSIS, {"pause": {}}]), outcome=failed_after(10))
    update(w)
    w.run(until=lambda x: x.phase == "Degraded")
    s = status(w)
    assert s.abort and s.current_step_index == 0
    assert s.message == (
        "RolloutAborted: Rollout aborted update to revision 2: Step-based analysis phase error/failed: "
        'Metric "success-rate" assessed Failed due to failed (1) > failureLimit (0)')
    aborted = [e for e in w.events if e.reason == "RolloutAborted"]
    assert aborted and aborted[0].type == "Warning"
    w.run()
    assert w.counts() == {1: (1, 1), 2: (0, 0)}


def scenario_analysis_step_inconclusive_pauses_and_promote_skips() -> None:
    w = deployed(rollout(steps=[{"setWeight": 50}, ANALYSIS, {"setWeight": 75}]),
                 outcome=lambda run, t: "Inconclusive")
    update(w)
    w.run(until=paused)
    s = status(w)
    assert s.message == "InconclusiveAnalysisRun" and s.controller_pause
    w.patch(intents.promote(w.rollout))
    assert status(w).current_step_index == 2 and not status(w).controller_pause
    assert w.run(until=healthy_on_new)
    assert len(w.runs) == 1


def scenario_resume_reruns_inconclusive_analysis() -> None:
    outcomes = iter(["Inconclusive", "Successful"])
    verdicts: dict[str, str] = {}

    def outcome(run, elapsed):  # type: ignore[no-untyped-def]
        name = run.metadata.name
        if name not in verdicts:
            verdicts[name] = next(outcomes)
        return verdicts[name]

    w = deployed(rollout(steps=[{"setWeight": 50}, ANALYSIS, {"setWeight": 75}]), outcome=outcome)
    update(w)
    w.run(until=paused)
    w.patch(intents.resume(w.rollout))
    assert status(w).current_step_index == 1
    assert w.run(until=healthy_on_new)
    assert sorted(verdicts.values()) == ["Inconclusive", "Successful"]
    assert any(name.endswith("-1.1") for name in verdicts)


def scenario_set_canary_scale() -> None:
    steps = [{"setCanaryScale": {"replicas": 3}}, {"setWeight": 10}, {"pause": {}},
             {"setCanaryScale": {"matchTrafficWeight": True}}, {"pause": {}}]
    w = deployed(rollout(replicas=10, steps=steps, canary=traffic()))
    update(w)
    w.run(until=paused)
    assert w.counts() == {1: (10, 10), 2: (3, 3)} and w.canary_weight == 10
    w.patch(intents.promote(w.rollout))
    w.run(until=lambda x: paused(x) and status(x).current_step_index == 4)
    assert w.counts() == {1: (10, 10), 2: (1, 1)}


def scenario_set_header_route() -> None:
    steps = [{"setWeight": 20},
             {"setHeaderRoute": {"name": "header", "match": [{"headerName": "X-Canary",
                                                               "headerValue": {"exact": "yes"}}]}},
             {"pause": {}}]
    w = deployed(rollout(replicas=5, steps=steps, canary=traffic()))
    update(w)
    seen = all_actions(w, lambda: w.run(until=paused))
    assert any(isinstance(a, SetHeaderRoute) and a.name == "header" for a in seen)
    assert w.header_routes["header"][0].header_name == "X-Canary"
    w.patch(intents.promote(w.rollout))
    seen = all_actions(w, lambda: w.run(until=healthy_on_new))
    assert any(isinstance(a, RemoveHeaderRoute) for a in seen) and not w.header_routes


def scenario_background_analysis_starting_step() -> None:
    bg = {"analysis": {"templates": [{"templateName": "success-rate"}], "startingStep": 2}}
    w = deployed(rollout(replicas=2, steps=[{"setWeight": 50}, {"pause": {"duration": 10}}, {"pause": {}}],
                         canary=bg), outcome=lambda run, t: None)
    assert not w.runs  # never on the initial deploy
    update(w)
    w.run(until=lambda x: status(x).current_step_index == 1)
    assert not w.runs
    w.run(until=lambda x: paused(x) and status(x).current_step_index == 2)
    (name,) = w.runs
    assert w.runs[name].metadata.labels["rollout-type"] == "Background"
    assert name == f"app-{status(w).current_pod_hash}-2"
    w.patch(intents.promote(w.rollout))
    seen = all_actions(w, lambda: w.run(until=healthy_on_new))
    assert TerminateAnalysisRun(name=name) in seen


def scenario_background_analysis_failure_aborts() -> None:
    bg = {"analysis": {"templates": [{"templateName": "success-rate"}]}}
    w = deployed(rollout(replicas=2, steps=[{"setWeight": 50}, {"pause": {}}], canary=bg),
                 outcome=failed_after(20))
    update(w)
    w.run(until=lambda x: x.phase == "Degraded")
    assert "Background analysis phase error/failed: Metric" in (status(w).message or "")


def scenario_traffic_weight_waits_for_available_canary() -> None:
    w = deployed(rollout(replicas=4, steps=[{"setWeight": 50}, {"pause": {}}], canary=traffic()),
                 ready_after=30)
    update(w)
    w.settle()
    assert w.counts()[2] == (2, 0) and w.canary_weight == 0
    assert status(w).canary and status(w).canary.weights and status(w).canary.weights.canary.weight == 0
    w.run(until=paused)
    assert w.canary_weight == 50 and status(w).canary.weights.stable.weight == 50  # type: ignore[union-attr]
    assert w.counts() == {1: (4, 4), 2: (2, 2)}


def scenario_dynamic_stable_scale() -> None:
    steps = [{"setWeight": 25}, {"pause": {}}, {"setWeight": 75}, {"pause": {}}]
    w = deployed(rollout(replicas=4, steps=steps, canary=traffic(dynamicStableScale=True)))
    update(w)
    w.run(until=paused)
    assert w.counts() == {1: (3, 3), 2: (1, 1)}
    w.patch(intents.promote(w.rollout))
    w.run(until=lambda x: paused(x) and status(x).current_step_index == 3)
    assert w.counts() == {1: (1, 1), 2: (3, 3)} and w.canary_weight == 75
    w.patch(intents.abort(w.rollout))
    w.run(until=lambda x: x.canary_weight == 0 and x.counts()[2][0] == 0)
    assert w.counts()[1] == (4, 4)


def scenario_min_pods_per_replica_set() -> None:
    w = deployed(rollout(replicas=10, steps=[{"setWeight": 5}, {"pause": {}}],
                         canary=traffic(minPodsPerReplicaSet=2)))
    update(w)
    w.run(until=paused)
    assert w.counts()[2] == (2, 2)


def scenario_scale_down_delay() -> None:
    w = deployed(rollout(replicas=2, steps=[{"setWeight": 50}], canary=traffic(scaleDownDelaySeconds=60)))
    update(w)
    seen = all_actions(w, lambda: w.run(until=healthy_on_new))
    deadline = [a for a in seen if isinstance(a, SetScaleDownDeadline) and a.deadline is not None]
    assert deadline and w.counts()[1] == (2, 2)
    assert w.last is not None and w.last.requeue_after is not None and w.last.requeue_after <= 60
    promoted_at = deadline[0].deadline
    w.run(until=lambda x: x.counts()[1][0] == 0)
    assert w.now == promoted_at


@pytest.mark.parametrize("delay", [30, 0], ids=["abort-delay-30", "abort-delay-0-keeps"])
def test_abort_scale_down_delay(delay: int) -> None:
    w = deployed(rollout(replicas=2, steps=[{"setWeight": 50}, {"pause": {}}],
                         canary=traffic(abortScaleDownDelaySeconds=delay)))
    update(w)
    w.run(until=paused)
    w.patch(intents.abort(w.rollout))
    w.settle()
    assert w.canary_weight == 0 and w.phase == "Degraded"
    assert w.selectors["app-canary"] == status(w).stable_rs
    assert w.counts()[2] == (1, 1)
    w.run(max_seconds=120)
    assert w.counts()[2] == ((0, 0) if delay else (1, 1))


def scenario_abort_basic_canary_rolls_back() -> None:
    w = deployed(rollout(replicas=4, steps=[{"setWeight": 50}, {"pause": {}}]))
    update(w)
    w.run(until=paused)
    w.patch(intents.abort(w.rollout))
    w.run()
    assert w.counts() == {1: (4, 4), 2: (0, 0)} and w.phase == "Degraded"
    assert status(w).current_step_index == 0 and not status(w).pause_conditions


def scenario_rollback_to_stable_skips_steps() -> None:
    w = deployed(rollout(replicas=2, steps=[{"setWeight": 50}, {"pause": {}}]))
    update(w)
    w.run(until=paused)
    update(w, "app:1")
    d = w.reconcile()
    assert "SkipSteps" in [e.reason for e in d.events]
    assert [e.message for e in d.events if e.reason == "SkipSteps"] == ["Rollback to stable ReplicaSets"]
    assert d.status.current_step_index == 2
    w.run(until=lambda x: x.phase == "Healthy")
    # The stable ReplicaSet was re-labelled as revision 3.
    assert w.counts() == {3: (2, 2), 2: (0, 0)}


@pytest.mark.parametrize("window", [None, 3], ids=["outside-window-runs-steps", "within-window-fast-tracked"])
def test_rollback_window(window: int | None) -> None:
    extra = {"rollbackWindow": {"revisions": window}} if window else {}
    w = deployed(rollout(replicas=1, steps=[ANALYSIS, {"pause": {}}], **extra))
    update(w)
    w.run(until=paused)
    w.patch(intents.promote(w.rollout))
    w.run(until=healthy_on_new)
    runs_before = len(w.runs)
    update(w, "app:1")
    w.run(until=lambda x: healthy_on_new(x) or paused(x))
    if window:
        assert healthy_on_new(w) and len(w.runs) == runs_before
    else:
        assert paused(w) and len(w.runs) == runs_before + 1


def scenario_spec_paused_blocks_steps() -> None:
    w = deployed(rollout(replicas=2, steps=[{"setWeight": 50}, {"setWeight": 100}]))
    w.patch(intents.pause(w.rollout))
    update(w)
    w.run()
    assert w.phase == "Paused" and status(w).message == "manually paused"
    assert status(w).current_step_index == 0 and w.counts()[2] == (0, 0)  # Argo: nothing scales while paused
    w.patch(intents.resume(w.rollout))
    assert w.run(until=healthy_on_new)


def scenario_promote_skips_running_step() -> None:
    w = deployed(rollout(replicas=2, steps=[{"setWeight": 50}, ANALYSIS, {"pause": {}}]),
                 outcome=lambda run, t: None)
    update(w)
    w.run(until=lambda x: status(x).current_step_index == 1 and bool(x.runs))
    (name,) = w.runs
    w.patch(intents.promote(w.rollout))
    seen = all_actions(w, lambda: w.run(until=paused))
    assert TerminateAnalysisRun(name=name) in seen and status(w).current_step_index == 2


def scenario_promote_full() -> None:
    w = deployed(rollout(replicas=4, steps=[{"setWeight": 25}, ANALYSIS, {"pause": {}}], canary=traffic()),
                 outcome=lambda run, t: None)
    update(w)
    w.run(until=lambda x: bool(x.runs))
    w.patch(intents.promote(w.rollout, full=True))
    weights: list[int] = []
    seen = all_actions(w, lambda: w.run(until=healthy_on_new))
    weights = [a.weight for a in seen if isinstance(a, SetCanaryWeight)]
    # Argo's PromoteFull branch: the weight holds at 25 until the stable switches to the canary.
    assert weights == [0]
    assert any(isinstance(a, TerminateAnalysisRun) for a in seen)
    assert not status(w).promote_full and len(w.runs) == 1


SCENARIOS = {
    name.removeprefix("scenario_"): fn for name, fn in dict(globals()).items() if name.startswith("scenario_")
}


@pytest.mark.parametrize("scenario", list(SCENARIOS.values()), ids=list(SCENARIOS))
def test_canary_behaviour(scenario: Callable[[], None]) -> None:
    scenario()

