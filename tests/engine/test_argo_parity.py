"""Flows where the engine must decide as Argo's controller does (issue: Argo parity), each run in the
in-memory world: progress deadline exemptions, halted scaling, the rollback window, skipped pause steps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from rollouts.engine import intents
from rollouts.engine.canary import at_desired_counts
from rollouts.engine.context import Context
from rollouts.engine.replicas import surge_and_unavailable
from rollouts.engine.rollback import rollback_within_window
from rollouts.engine.steps import describe_step, pause_seconds
from rollouts.engine.types import (
    EvictPod,
    Observed,
    PodObservation,
    ReplicaSetObservation,
    ScaleReplicaSet,
    SetCanaryWeight,
)
from rollouts.engine.world import World, successful_after
from rollouts.spec.pod import PodTemplateSpec
from rollouts.spec.rollout import CanaryStep, Rollout, RolloutPause

from .builders import deployed, rollout, traffic, update

ANALYSIS = {"analysis": {"templates": [{"templateName": "success-rate"}]}}


def status(w: World):  # type: ignore[no-untyped-def]
    assert w.rollout.status is not None
    return w.rollout.status


def healthy_on_new(w: World) -> bool:
    s = status(w)
    return w.phase == "Healthy" and s.stable_rs == s.current_pod_hash


def step_runs(w: World) -> int:
    return sum(1 for r in w.runs.values() if r.metadata.labels.get("rollout-type") == "Step")


# --- 1. analysis and pause steps do not count against progressDeadlineSeconds -----------------------


@pytest.mark.parametrize("basic", [True, False], ids=["basic", "traffic-routed"])
def test_step_analysis_longer_than_progress_deadline_is_not_aborted(basic: bool) -> None:
    canary = {} if basic else traffic()
    ro = rollout(replicas=2, steps=[{"setWeight": 50}, ANALYSIS, {"setWeight": 100}], canary=canary,
                 progressDeadlineSeconds=600, progressDeadlineAbort=True)
    w = deployed(ro, outcome=successful_after(12 * 60))
    update(w)
    assert w.run(until=healthy_on_new, max_seconds=3600)
    assert "ProgressDeadlineExceeded" not in w.event_reasons() and "RolloutAborted" not in w.event_reasons()


def test_progress_deadline_still_counts_on_a_set_weight_step() -> None:
    ro = rollout(replicas=2, steps=[{"setWeight": 50}, ANALYSIS], progressDeadlineSeconds=60,
                 progressDeadlineAbort=True)
    w = deployed(ro)
    w.ready_after = timedelta(hours=1)
    update(w)
    assert w.run(until=lambda x: bool(status(x).abort), max_seconds=300)


# --- 2. spec.paused and an Inconclusive pause freeze canary scaling (haltProgress) -------------------


def test_paused_canary_replica_counts_do_not_change_while_paused() -> None:
    """A 10-replica basic canary paused mid-step keeps its ReplicaSet counts (it moved 8/5 -> 5/5)."""
    w = deployed(rollout(replicas=10, steps=[{"setWeight": 50}, {"pause": {}}]))
    w.ready_after = timedelta(seconds=30)
    update(w)
    w.settle()
    before = {rev: desired for rev, (desired, _) in w.counts().items()}
    assert before == {1: 8, 2: 5}  # mid-way through the step (stable not scaled down yet)
    w.patch(intents.pause(w.rollout))
    for _ in range(10):
        w.advance(60)
        w.settle()
        assert {rev: desired for rev, (desired, _) in w.counts().items()} == before
    assert w.phase == "Paused"
    w.patch(intents.resume(w.rollout))
    assert w.run(until=lambda x: x.phase == "Paused" and status(x).current_step_index == 1)
    assert w.counts()[2] == (5, 5)


def test_inconclusive_analysis_pause_freezes_scaling() -> None:
    ro = rollout(replicas=4, steps=[{"setWeight": 50}, {"setWeight": 75}],
                 canary={"analysis": {"templates": [{"templateName": "success-rate"}]}})
    w = deployed(ro, outcome=lambda run, elapsed: "Inconclusive")
    w.ready_after = timedelta(seconds=30)
    update(w)
    w.run(until=lambda x: x.phase == "Paused", max_seconds=600)
    assert [p.reason for p in status(w).pause_conditions or []] == ["InconclusiveAnalysisRun"]
    before = w.counts()
    assert {rev: desired for rev, (desired, _) in before.items()} == {1: 3, 2: 1}  # mid-way to 2/2
    scaled = []
    for _ in range(5):
        w.advance(60)
        d = w.settle()
        scaled += [a for a in d.actions if isinstance(a, ScaleReplicaSet)]
    assert w.counts() == {rev: (before[rev][0], before[rev][0]) for rev in before} and not scaled


def test_abort_of_a_paused_canary_still_rolls_back() -> None:
    """Deliberate difference (docs/argo-compatibility.md): abort is not halted by spec.paused."""
    w = deployed(rollout(replicas=4, steps=[{"setWeight": 50}, {"pause": {}}]))
    update(w)
    w.run(until=lambda x: x.phase == "Paused")
    w.patch(intents.pause(w.rollout))
    w.patch(intents.abort(w.rollout))
    w.run()
    assert w.counts()[2] == (0, 0) and w.counts()[1] == (4, 4)


# --- 3. rollbackWindow by ReplicaSet creation time ---------------------------------------------------

_NOW = datetime(2026, 1, 1, tzinfo=UTC)
_TEMPLATE = PodTemplateSpec.model_validate({"spec": {"containers": [{"name": "a", "image": "a"}]}})


def _rs(name: str, minutes_ago: int, revision: int) -> ReplicaSetObservation:
    return ReplicaSetObservation(name=name, pod_hash=name, revision=revision, template=_TEMPLATE, replicas=1,
                                 created_at=_NOW - timedelta(minutes=minutes_ago))


# Argo's TestRollbackWindow (rollout/sync_test.go): foo-4 is the oldest, foo the newest. Revision numbers
# are shuffled on purpose: only the creation time decides.
_SETS = [_rs("foo-4", 5, 9), _rs("foo-3", 4, 2), _rs("foo-2", 3, 7), _rs("foo-1", 2, 1), _rs("foo", 0, 3)]


@pytest.mark.parametrize(
    ("stable", "new", "window", "within"),
    [(0, 1, 1, False), (1, 0, 1, True), (2, 0, 2, True), (3, 0, 2, False), (4, 3, 1, True), (4, 3, 0, False)],
    ids=["newer-is-not-a-rollback", "adjacent", "one-between-window-2", "two-between-window-2",
         "newest-to-previous", "window-0"],
)
def test_rollback_window_by_creation_time(stable: int, new: int, window: int, within: bool) -> None:
    assert rollback_within_window(window, _SETS[new], _SETS[stable], _SETS) is within


def _released(w: World, image: str) -> None:
    update(w, image)
    w.settle()
    while not healthy_on_new(w):
        w.run(until=lambda x: healthy_on_new(x) or x.phase == "Paused", max_seconds=3600)
        if w.phase == "Paused":
            w.patch(intents.promote(w.rollout))


def test_rerelease_after_undo_runs_its_steps() -> None:
    """v1 -> v2, undo to v1 (fast-tracked within the window), then v2 again: that is a new release and runs
    every step and analysis (it skipped them all when decided by revision numbers)."""
    w = deployed(rollout(replicas=2, steps=[{"setWeight": 50}, ANALYSIS, {"pause": {}}],
                         rollbackWindow={"revisions": 1}))
    _released(w, "app:2")
    runs = step_runs(w)
    update(w, "app:1")
    w.settle()
    assert w.run(until=healthy_on_new)
    assert step_runs(w) == runs and "Rollback within window" in w.events[-1].message + "".join(
        e.message for e in w.events if e.reason == "RolloutCompleted")
    update(w, "app:2")
    w.run(until=lambda x: x.phase == "Paused" or healthy_on_new(x))
    assert w.phase == "Paused" and status(w).current_step_index == 2 and step_runs(w) == runs + 1
    update(w, "app:3")
    w.run(until=lambda x: x.phase == "Paused" or healthy_on_new(x))
    assert w.phase == "Paused" and step_runs(w) == runs + 2


def test_second_undo_within_window_is_fast_tracked() -> None:
    """v1, v2, v3; undo to v2; undo to v1: v1 is older than the stable v2 with nothing created between,
    so Argo fast-tracks it (by revision numbers it ran every step)."""
    w = deployed(rollout(replicas=2, steps=[{"setWeight": 50}, ANALYSIS, {"pause": {}}],
                         rollbackWindow={"revisions": 1}))
    _released(w, "app:2")
    _released(w, "app:3")
    runs = step_runs(w)
    update(w, "app:2")
    w.settle()
    assert w.run(until=healthy_on_new)
    update(w, "app:1")
    w.settle()
    assert w.run(until=healthy_on_new)
    assert step_runs(w) == runs
    done = [e.message for e in w.events if e.reason == "RolloutCompleted"]
    assert done[-2:] == [m for m in done[-2:] if m.endswith("Rollback within window")]


# --- 4. promote --skip-current-step on a pause step ----------------------------------------------------


@pytest.mark.parametrize(
    "after",
    [{"setWeight": 75}, ANALYSIS, None],
    ids=["next-set-weight", "next-analysis", "last-step"],
)
def test_skip_current_step_on_pause_step_moves_on(after: dict | None) -> None:  # type: ignore[type-arg]
    steps = [{"setWeight": 25}, {"pause": {}}] + ([after] if after else [])
    w = deployed(rollout(replicas=4, steps=steps, canary=traffic()))
    update(w)
    w.run(until=lambda x: x.phase == "Paused")
    assert status(w).current_step_index == 1
    w.patch(intents.promote(w.rollout, skip_current_step=True))
    assert w.run(until=healthy_on_new, max_seconds=3600)
    assert not status(w).pause_conditions


# --- orphan analysis runs ------------------------------------------------------------------------------


def _with_steps(steps: list[dict]) -> Callable[[Rollout], Rollout]:  # type: ignore[type-arg]
    def change(ro: Rollout) -> Rollout:
        body = ro.model_dump(by_alias=True, exclude_none=True, mode="json")
        body["spec"]["strategy"]["canary"]["steps"] = steps
        return Rollout.model_validate(body)

    return change


@pytest.mark.parametrize(
    ("background", "new_steps"),
    [(False, [{"setWeight": 100}]), (False, [{"setWeight": 50}, {"pause": {}}]), (True, [{"setWeight": 100}])],
    ids=["bypass-with-set-weight-100", "analysis-step-removed", "background-run-after-steps-change"],
)
def test_orphan_analysis_run_terminated_when_step_removed(background: bool, new_steps: list[dict]) -> None:  # type: ignore[type-arg]
    canary = {"analysis": {"templates": [{"templateName": "success-rate"}]}} if background else {}
    w = deployed(rollout(replicas=2, steps=[{"setWeight": 50}, ANALYSIS, {"pause": {}}], canary=canary),
                 outcome=successful_after(3600))
    update(w)
    w.run(until=lambda x: step_runs(x) == 1, max_seconds=600)
    running = [name for name, r in w.runs.items() if r.status is not None and r.status.phase == "Running"]
    assert running
    w.edit(_with_steps(new_steps))
    w.run(until=lambda x: x.phase in ("Healthy", "Paused"), max_seconds=600)
    for name in running:
        run = w.runs[name]
        assert run.spec.terminate and run.status is not None and run.status.phase != "Running", name


# --- 6. dynamicStableScale abort steps back through the setWeight steps -------------------------------


def test_dynamic_stable_scale_abort_steps_back_through_set_weights() -> None:
    """Argo's GetDesiredCanaryWeight on abort: 80 -> 50 -> 20 -> 0, the stable growing one step at a time
    (it used to jump to 10 pods at once: a surge of 8 pods)."""
    steps = [{"setWeight": 20}, {"setWeight": 50}, {"setWeight": 80}, {"pause": {}}]
    w = deployed(rollout(replicas=10, steps=steps, canary=traffic(dynamicStableScale=True)))
    update(w)
    w.run(until=lambda x: x.phase == "Paused")
    assert {rev: d for rev, (d, _) in w.counts().items()} == {1: 2, 2: 8} and w.canary_weight == 80
    seen = len(w.events)
    w.patch(intents.abort(w.rollout))
    w.run()
    weights = [e.message for e in w.events[seen:] if e.reason == "TrafficWeightUpdated"]
    assert weights == [f"Traffic weight updated from {a} to {b}" for a, b in ((80, 50), (50, 20), (20, 0))]
    stable_ups = [e.message.rsplit(" from ", 1)[1] for e in w.events[seen:]
                  if e.reason == "ScalingReplicaSet" and "revision 1" in e.message]
    assert stable_ups == ["2 to 5", "5 to 8", "8 to 10"]
    assert w.counts() == {1: (10, 10), 2: (0, 0)} and w.phase == "Degraded"


# --- 9. promote --full with traffic routing --------------------------------------------------------------


@pytest.mark.parametrize(
    ("dynamic", "expected"),
    [(False, [0]), (True, [100, 0])],
    ids=["weight-held-until-switch", "dynamic-stable-scale-ramps-with-available-pods"],
)
def test_promote_full_with_traffic_routing_weights(dynamic: bool, expected: list[int]) -> None:
    extra = {"dynamicStableScale": True} if dynamic else {}
    w = deployed(rollout(replicas=4, steps=[{"setWeight": 25}, {"pause": {}}], canary=traffic(**extra)))
    update(w)
    w.run(until=lambda x: x.phase == "Paused")
    assert w.canary_weight == 25
    w.ready_after = timedelta(seconds=10)
    seen = len(w.events)
    w.patch(intents.promote(w.rollout, full=True))
    assert w.run(until=healthy_on_new)
    moves = [int(e.message.rsplit(" ", 1)[1]) for e in w.events[seen:] if e.reason == "TrafficWeightUpdated"]
    assert moves == expected


# --- 8 and 11. what `get rollout`, events and Argo CD show -------------------------------------------------


def _bg(**extra: object) -> dict[str, object]:
    return {"activeService": "active", "previewService": "preview", **extra}


def test_blue_green_post_promotion_messages_follow_argo() -> None:
    """CalculateRolloutPhase: "waiting for analysis to complete" while the post-promotion run is missing or
    unfinished (they were swapped)."""
    w = deployed(rollout(replicas=2, blue_green=_bg(postPromotionAnalysis={"templates": [{"templateName": "success-rate"}]})),
                 outcome=successful_after(60))
    update(w)
    w.run(until=lambda x: x.selectors.get("active") == status(x).current_pod_hash)
    assert status(w).message == "waiting for analysis to complete"
    assert w.run(until=healthy_on_new)


def test_blue_green_abort_after_switch_emits_switch_service() -> None:
    w = deployed(rollout(replicas=2, blue_green=_bg(postPromotionAnalysis={"templates": [{"templateName": "success-rate"}]})),
                 outcome=lambda run, elapsed: None)
    old = status(w).current_pod_hash
    update(w)
    w.run(until=lambda x: x.selectors.get("active") == status(x).current_pod_hash)
    new = status(w).current_pod_hash
    w.patch(intents.abort(w.rollout))
    w.run(until=lambda x: x.phase == "Degraded")
    switches = [e.message for e in w.events if e.reason == "SwitchService"]
    assert switches[-1] == f"Switched selector for service 'active' from '{new}' to '{old}'"


@pytest.mark.parametrize(
    ("step", "text"),
    [
        ({"setWeight": 20}, "setWeight: 20"),
        ({"pause": {}}, "pause"),
        ({"pause": {"duration": "30s"}}, "pause: 30s"),
        ({"pause": {"duration": 30}}, "pause: 30"),
        ({"analysis": {"templates": [{"templateName": "a"}]}}, "analysis"),
        ({"experiment": {"templates": []}}, "experiment"),
        ({"setCanaryScale": {"weight": 10}}, "setCanaryScale{weight: 10}"),
        ({"setCanaryScale": {"matchTrafficWeight": True}}, "setCanaryScale{matchTrafficWeight: true}"),
        ({"setCanaryScale": {"replicas": 3}}, "setCanaryScale{replicas: 3}"),
        ({"setHeaderRoute": {"name": "h"}}, "setHeaderRoute: h"),
        ({"setMirrorRoute": {"name": "m"}}, "setMirrorRoute: m"),
        ({"plugin": {"name": "p"}}, "plugin: p"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_step_strings_are_argo_canary_step_string(step: dict, text: str) -> None:  # type: ignore[type-arg]
    assert describe_step(CanaryStep.model_validate(step)) == text


@pytest.mark.parametrize(
    ("how", "reason"),
    [("promote-full", "Full promotion requested"), ("steps", "Completed all 2 canary steps")],
)
def test_completion_reasons(how: str, reason: str) -> None:
    w = deployed(rollout(replicas=2, steps=[{"setWeight": 50}, {"pause": {}}]))
    update(w)
    w.run(until=lambda x: x.phase == "Paused")
    w.patch(intents.promote(w.rollout, full=how == "promote-full"))
    assert w.run(until=healthy_on_new)
    assert [e.message for e in w.events if e.reason == "RolloutCompleted"][-1].endswith(f": {reason}")


def test_promote_on_pause_step_announces_the_step() -> None:
    w = deployed(rollout(replicas=2, steps=[{"setWeight": 50}, {"pause": {}}, {"setWeight": 75}, {"pause": {}}]))
    update(w)
    w.run(until=lambda x: x.phase == "Paused")
    w.patch(intents.promote(w.rollout))
    w.run(until=lambda x: x.phase == "Paused" and status(x).current_step_index == 3)
    assert "Rollout step 2/4 completed (pause)" in [e.message for e in w.events if e.reason == "RolloutStepCompleted"]


# --- 12. small arithmetic ----------------------------------------------------------------------------------


def test_set_canary_scale_weight_is_relative_to_max_traffic_weight() -> None:
    """Argo's trafficWeightToReplicas: weight 500 of maxTrafficWeight 1000 is half the pods (it was 10/10)."""
    canary = traffic()
    canary["trafficRouting"] = {**canary["trafficRouting"], "maxTrafficWeight": 1000}
    steps = [{"setCanaryScale": {"weight": 500}}, {"setWeight": 100}, {"pause": {}}]
    w = deployed(rollout(replicas=10, steps=steps, canary=canary))
    update(w)
    w.run(until=lambda x: status(x).current_step_index == 1)
    assert w.counts()[2] == (5, 5)


@pytest.mark.parametrize(
    ("replicas", "surge", "unavailable", "expected"),
    [(3, 0, "100%", (0, 3)), (2, 1, 5, (1, 2)), (0, 0, 0, (0, 0))],
    ids=["percent-above-replicas", "count-above-replicas", "zero-replicas"],
)
def test_max_unavailable_capped_at_replicas(replicas: int, surge: object, unavailable: object,
                                            expected: tuple[int, int]) -> None:
    assert surge_and_unavailable(replicas, surge, unavailable) == expected  # type: ignore[arg-type]


# --- 10. weights move only when the stable can take its share; abort deadline after stable is full -------


def test_abort_weight_waits_for_stable_pods_and_deadline_after_stable_full() -> None:
    """checkReplicasAvailable: with 3 of 4 stable pods restarting, an abort keeps weight 50 until the stable
    has the pods for all the traffic; the canary's abort scale-down deadline starts only then."""
    w = deployed(rollout(replicas=4, steps=[{"setWeight": 50}, {"pause": {}}], canary=traffic()))
    update(w)
    w.run(until=lambda x: x.phase == "Paused")
    assert w.canary_weight == 50
    stable = w.replica_set(1)
    assert stable is not None
    for pod in list(stable.pods)[:3]:
        w._apply(EvictPod(name=pod.name))
    w._observed = None
    w.patch(intents.abort(w.rollout))
    d = w.reconcile()
    assert w.canary_weight == 50 and not any(isinstance(a, SetCanaryWeight) for a in d.actions)
    assert w.replica_set(2).deadline is None  # type: ignore[union-attr]
    w.advance(5)
    w.settle()
    assert w.canary_weight == 0
    deadline = w.replica_set(2).deadline  # type: ignore[union-attr]
    assert deadline is not None and deadline == w.now + timedelta(seconds=30)


@pytest.mark.parametrize(
    ("stable_available", "older_available", "done"),
    [(0, 0, True), (2, 0, True), (2, 1, False)],
    ids=["stable-created-not-available", "stable-available", "older-pods-still-available"],
)
def test_step_completion_needs_stable_created_not_available(stable_available: int, older_available: int,
                                                            done: bool) -> None:
    """AtDesiredReplicaCountsForCanary: the stable's desired pods must exist, not be available (a restarting
    stable no longer holds the step); a basic canary's older ReplicaSets must have no available pods."""
    ro = rollout(replicas=4, steps=[{"setWeight": 50}])
    sets = (
        ReplicaSetObservation(name="new", pod_hash="n", revision=3, template=_TEMPLATE, replicas=2, available=2),
        ReplicaSetObservation(name="stable", pod_hash="s", revision=2, template=_TEMPLATE, replicas=2,
                              available=stable_available),
        ReplicaSetObservation(name="older", pod_hash="o", revision=1, template=_TEMPLATE, replicas=0,
                              available=older_available),
    )
    pods = tuple(PodObservation(name=f"s{i}", pod_hash="s", created_at=_NOW, ready=i < stable_available)
                 for i in range(2))
    ctx = Context.start(ro, Observed(replica_sets=sets, pods=pods), _NOW)
    ctx.new_rs, ctx.stable_rs, ctx.others = sets[0], sets[1], [sets[2]]
    ctx.target_new, ctx.target_stable = 2, 2
    assert at_desired_counts(ctx) is done


def _progressing(w: World) -> tuple[str, str, str]:
    cond = next(c for c in status(w).conditions or [] if c.type == "Progressing")
    return cond.status, cond.reason, cond.message


def test_retry_and_resume_conditions_follow_argo() -> None:
    """checkPausedConditions: retry sets Progressing Unknown/RolloutRetry, resume Unknown/RolloutResumed; the
    Paused condition keeps reason RolloutPaused and only flips to False."""
    w = deployed(rollout(replicas=2, steps=[{"setWeight": 50}, {"pause": {}}, {"setWeight": 75}]))
    update(w)
    w.run(until=lambda x: x.phase == "Paused")
    w.patch(intents.abort(w.rollout))
    w.run(until=lambda x: x.phase == "Degraded")
    w.patch(intents.retry(w.rollout))
    w.reconcile()
    assert _progressing(w) == ("Unknown", "RolloutRetry", "Retrying Rollout after abort")
    w.run(until=lambda x: x.phase == "Paused")
    w.patch(intents.promote(w.rollout))
    w.reconcile()
    assert _progressing(w)[:2] == ("Unknown", "RolloutResumed")
    paused = next(c for c in status(w).conditions or [] if c.type == "Paused")
    assert (paused.status, paused.reason, paused.message) == ("False", "RolloutPaused", "Rollout is paused")
    assert w.run(until=healthy_on_new)


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [("30", 30), (30, 30), ("1500ms", 1), ("1m30s", 90), ("soon", None), (None, None), ("-5s", None)],
    ids=["digit-string", "int", "fraction-dropped", "go-duration", "unparsable-indefinite", "indefinite",
         "negative"],
)
def test_pause_duration_seconds_as_argo(duration: str | int | None, seconds: int | None) -> None:
    """Argo's RolloutPause.DurationSeconds: int32 whole seconds; unparsable means indefinite (-1)."""
    assert pause_seconds(RolloutPause(duration=duration)) == seconds


def test_blue_green_preview_within_scale_down_delay_is_not_fast_tracked() -> None:
    """Argo's isFastRollback needs a rollback (a ReplicaSet older than the stable): going back to a preview
    that was never promoted, while it waits out its scale-down delay, runs its pre-promotion analysis again."""
    analysis = {"templates": [{"templateName": "success-rate"}]}
    w = deployed(rollout(replicas=2, blue_green=_bg(prePromotionAnalysis=analysis, autoPromotionEnabled=False)),
                 outcome=successful_after(20))
    update(w, "app:2")
    w.run(until=lambda x: x.phase == "Paused")
    update(w, "app:3")
    w.settle()
    preview = w.replica_set(2)
    assert preview is not None and preview.deadline is not None and preview.replicas > 0
    pre_runs = sum(1 for r in w.runs.values() if r.metadata.labels.get("rollout-type") == "PrePromotion")
    update(w, "app:2")
    w.run(until=lambda x: x.phase == "Paused" or healthy_on_new(x))
    assert w.phase == "Paused" and not healthy_on_new(w)
    assert sum(1 for r in w.runs.values() if r.metadata.labels.get("rollout-type") == "PrePromotion") > pre_runs
