"""Deadlines, history, restarts, invalid specs, and Argo's abort-retry-promote e2e scenario."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from rollouts.engine import intents
from rollouts.engine.reconcile import reconcile
from rollouts.engine.types import DeleteAnalysisRun, DeleteReplicaSet, EvictPod, Observed
from rollouts.engine.world import World
from rollouts.spec.analysis import AnalysisTemplate

from .builders import T0, TEMPLATE, deployed, rollout, traffic, update, world


def status(w: World):  # type: ignore[no-untyped-def]
    assert w.rollout.status is not None
    return w.rollout.status


def test_abort_retry_promote_event_sequence() -> None:
    """Argo's e2e TestRolloutAbortRetryPromote (rollout-basic: 1 replica, setWeight 50, pause {})."""
    w = world(rollout(replicas=1, steps=[{"setWeight": 50}, {"pause": {}}]))
    w.run(until=lambda x: x.phase == "Healthy")
    update(w)
    w.run(until=lambda x: x.phase == "Paused" and status(x).current_step_index == 1)
    w.patch(intents.abort(w.rollout))
    w.run(until=lambda x: x.phase == "Degraded")
    assert status(w).message == "RolloutAborted: Rollout aborted update to revision 2"
    w.patch(intents.retry(w.rollout))
    w.run(until=lambda x: x.phase == "Paused")
    assert status(w).current_step_index == 1
    w.patch(intents.promote(w.rollout))
    w.run(until=lambda x: x.phase == "Healthy")
    assert w.event_reasons() == [
        "RolloutUpdated", "NewReplicaSetCreated", "ScalingReplicaSet", "RolloutCompleted",
        "RolloutUpdated", "NewReplicaSetCreated", "RolloutNotCompleted", "ScalingReplicaSet", "RolloutStepCompleted",
        "RolloutPaused", "ScalingReplicaSet", "RolloutAborted",
        "ScalingReplicaSet", "RolloutStepCompleted", "RolloutPaused",
        "RolloutResumed", "RolloutStepCompleted", "ScalingReplicaSet", "RolloutCompleted",
    ]
    messages = [e.message for e in w.events]
    assert messages[-1].endswith("Completed all 2 canary steps")
    assert messages[-1].startswith("Rollout completed update to revision 2 (")
    assert messages[11] == "Rollout aborted update to revision 2"
    assert messages[9] == "Rollout is paused (CanaryPauseStep)" and messages[15] == "Rollout is resumed"
    assert messages[6].startswith("Rollout not completed, started update to revision 2 (")
    assert messages[16] == "Rollout step 2/2 completed (pause)"


def test_abort_retry_timed_pause_event_sequence_matches_argo_e2e() -> None:
    """Argo's e2e TestRolloutAbortRetryPromote as written (pause: {duration: 3s}); Argo's list minus
    RolloutAddedToInformer and the RolloutNotCompleted of the initial deploy."""
    w = world(rollout(replicas=1, steps=[{"setWeight": 50}, {"pause": {"duration": "3s"}}]))
    w.run(until=lambda x: x.phase == "Healthy")
    update(w)
    w.run(until=lambda x: x.phase == "Paused" and status(x).current_step_index == 1)
    w.patch(intents.abort(w.rollout))
    w.run(until=lambda x: x.phase == "Degraded")
    w.patch(intents.retry(w.rollout))
    w.run(until=lambda x: x.phase == "Paused")
    assert w.run(until=lambda x: x.phase == "Healthy" and status(x).stable_rs == status(x).current_pod_hash)
    assert w.event_reasons() == [
        "RolloutUpdated", "NewReplicaSetCreated", "ScalingReplicaSet", "RolloutCompleted",
        "RolloutUpdated", "NewReplicaSetCreated", "RolloutNotCompleted", "ScalingReplicaSet", "RolloutStepCompleted",
        "RolloutPaused", "ScalingReplicaSet", "RolloutAborted",
        "ScalingReplicaSet", "RolloutStepCompleted", "RolloutPaused",
        "RolloutStepCompleted", "RolloutResumed", "ScalingReplicaSet", "RolloutCompleted",
    ]
    assert [e.message for e in w.events if e.reason == "RolloutStepCompleted"][-1] == (
        "Rollout step 2/2 completed (pause: 3s)")


def test_progress_deadline_exceeded() -> None:
    w = deployed(rollout(replicas=2, steps=[{"setWeight": 50}], progressDeadlineSeconds=60))
    w.ready_after = timedelta(hours=1)
    update(w)
    w.run(until=lambda x: x.phase == "Degraded", max_seconds=120)
    s = status(w)
    assert s.message is not None and s.message.startswith("ProgressDeadlineExceeded: ReplicaSet \"app-")
    assert s.message.endswith('" has timed out progressing.') and not s.abort
    assert "ProgressDeadlineExceeded" in w.event_reasons()


def test_paused_time_does_not_count_toward_progress_deadline() -> None:
    w = deployed(rollout(replicas=2, steps=[{"setWeight": 50}, {"pause": {}}], progressDeadlineSeconds=60))
    update(w)
    w.run(until=lambda x: x.phase == "Paused")
    w.advance(3600)
    w.settle()
    assert w.phase == "Paused"
    w.patch(intents.promote(w.rollout))
    assert w.run(until=lambda x: x.phase == "Healthy" and status(x).stable_rs == status(x).current_pod_hash)


def test_progress_deadline_abort() -> None:
    w = deployed(rollout(replicas=2, steps=[{"setWeight": 50}], progressDeadlineSeconds=30,
                         progressDeadlineAbort=True))
    w.ready_after = timedelta(hours=1)
    update(w)
    w.run(until=lambda x: bool(status(x).abort) and status(x).aborted_at is not None, max_seconds=120)
    assert status(w).message == (
        'RolloutAborted: Rollout aborted update to revision 2: ReplicaSet "'
        f'{w.replica_set(2).name}" has timed out progressing.'  # type: ignore[union-attr]
    )


def test_revision_history_limit_deletes_oldest() -> None:
    w = deployed(rollout(replicas=1, steps=[], revisionHistoryLimit=1))
    deleted: list[str] = []
    for image in ("app:2", "app:3", "app:4"):
        update(w, image)
        before = set(w.replica_sets)
        w.run(until=lambda x: x.phase == "Healthy" and status(x).stable_rs == status(x).current_pod_hash)
        w.settle()
        deleted += sorted(before - set(w.replica_sets))
    assert sorted(rs.revision for rs in w.replica_sets.values()) == [3, 4]
    assert len(deleted) == 2


def test_analysis_run_history_keeps_five_each() -> None:
    runs = []
    from rollouts.spec.analysis import AnalysisRun

    for i in range(8):
        for phase in ("Successful", "Failed"):
            runs.append(AnalysisRun.model_validate({
                "metadata": {"name": f"old-{phase}-{i}", "creationTimestamp": (T0 + timedelta(minutes=i)).isoformat()},
                "status": {"phase": phase},
            }))
    w = deployed(rollout(replicas=1))
    observed = w.observe()
    observed = Observed(**{**observed.__dict__, "analysis_runs": tuple(runs)})
    d = reconcile(w.rollout, observed, w.now)
    deleted = sorted(a.name for a in d.actions if isinstance(a, DeleteAnalysisRun))
    assert deleted == sorted([f"old-{p}-{i}" for p in ("Successful", "Failed") for i in range(3)])


def test_restart_evicts_in_order_within_max_unavailable() -> None:
    w = deployed(rollout(replicas=4, steps=[{"setWeight": 50}, {"pause": {}}],
                         canary={"maxUnavailable": 1, "maxSurge": 1}))
    update(w)
    w.run(until=lambda x: x.phase == "Paused")
    w.advance(60)
    w.patch(intents.restart(w.rollout, w.now))
    d = w.reconcile()
    evicted = [a.name for a in d.actions if isinstance(a, EvictPod)]
    stable_name = w.replica_set(1).name  # type: ignore[union-attr]
    assert len(evicted) == 1 and evicted[0].startswith(stable_name)
    assert d.status.phase == "Paused"
    w.run(until=lambda x: status(x).restarted_at is not None, max_seconds=600)
    assert all(p.created_at >= w.rollout.spec.restart_at for p in w.observe().pods)  # type: ignore[operator]
    assert w.phase == "Paused"


def test_restart_is_progressing_when_not_paused() -> None:
    w = deployed(rollout(replicas=2))
    w.advance(10)
    w.patch(intents.restart(w.rollout, w.now))
    d = w.reconcile()
    assert d.status.phase == "Progressing" and d.status.message == "rollout is restarting"
    assert sum(isinstance(a, EvictPod) for a in d.actions) == 1


def test_scheduled_restart_requeues() -> None:
    w = deployed(rollout(replicas=2))
    w.patch(intents.restart(w.rollout, w.now + timedelta(seconds=90)))
    d = w.reconcile()
    assert d.requeue_after == pytest.approx(90) and not d.actions


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"strategy": {"canary": {}, "blueGreen": {"activeService": "a"}}}, "Multiple Strategies can not be listed"),
        ({"strategy": {"canary": {"steps": [{"setWeight": 140}]}}},
         "spec.strategy.canary.steps[0].setWeight: SetWeight needs to be between 0 and 100"),
        ({"strategy": {"canary": {"steps": [{"setCanaryScale": {"replicas": 1}}]}}},
         "SetCanaryScale requires TrafficRouting to be set"),
        ({"strategy": {"canary": {"trafficRouting": {"nginx": {"stableIngress": "x"}}}}},
         "Canary service and Stable service must to be set to use Traffic Routing"),
        ({"strategy": {"canary": {"steps": [{"analysis": {"templates": [{"templateName": "nope"}]}}]}}},
         'spec.strategy.canary.steps[0].analysis.templates: AnalysisTemplate "nope" not found'),
        ({"strategy": {"canary": {"steps": [{"analysis": {"templates": [{"templateName": "forever"}]}}]}}},
         "runs indefinitely. Invalid value for count"),
        ({"strategy": {"canary": {"maxSurge": 0, "maxUnavailable": 0}}}, "MaxSurge and MaxUnavailable both can not be zero"),
        ({"strategy": {"canary": {"maxSurge": "0%", "maxUnavailable": 0}}}, "MaxSurge and MaxUnavailable both can not be zero"),
        ({"replicas": 10**12, "strategy": {"canary": {}}},
         "spec.replicas: 1000000000000 is out of range (at most 2147483647"),
        ({"strategy": {"canary": {"steps": [{"pause": {"duration": "9999999999h"}}]}}},
         "spec.strategy.canary.steps[0].pause.duration: 9999999999h is longer than 2147483647 seconds"),
        ({"progressDeadlineSeconds": 2**40, "strategy": {"canary": {}}}, "spec.progressDeadlineSeconds: 1099511627776"),
    ],
    ids=["two-strategies", "weight-out-of-range", "canary-scale-needs-routing", "routing-needs-services",
         "missing-template", "unbounded-step-metric", "surge-and-unavailable-zero", "surge-zero-percent",
         "replicas-beyond-int32", "pause-beyond-int32-seconds", "deadline-beyond-int32"],
)
def test_invalid_spec_is_degraded_without_actions(spec: dict[str, Any], message: str) -> None:
    ro = rollout()
    body = ro.model_dump(by_alias=True, exclude_none=True, mode="json")
    body["spec"].update(spec)
    from rollouts.spec.rollout import Rollout

    forever = AnalysisTemplate.model_validate({
        "metadata": {"name": "forever"},
        "spec": {"metrics": [{"name": "m", "interval": "1m", "provider": {"prometheus": {"query": "up"}}}]},
    })
    observed = Observed(analysis_templates={"success-rate": TEMPLATE, "forever": forever})
    d = reconcile(Rollout.model_validate(body), observed, T0)
    assert d.actions == () and d.status.phase == "Degraded"
    assert d.status.message is not None and d.status.message.startswith('InvalidSpec: The Rollout "app" is invalid: ')
    assert message in d.status.message
    cond = [c for c in d.status.conditions or [] if c.type == "InvalidSpec"]
    assert cond and cond[0].status == "True"


@pytest.mark.parametrize(
    "canary",
    [{"maxSurge": 0, "maxUnavailable": "25%"}, {"maxSurge": "0%", "maxUnavailable": 1}, {"maxUnavailable": 0}],
    ids=["surge-0-unavailable-25pct-of-3", "surge-0pct-unavailable-1", "unavailable-0-surge-default"],
)
def test_argo_valid_surge_unavailable_pairs_run(canary: dict[str, Any]) -> None:
    """Argo's invalidMaxSurgeMaxUnavailable tests the written values: 25% of 3 resolves to 0, and two
    resolved zeros mean one unavailable pod at run time (resolveFenceposts)."""
    w = deployed(rollout(replicas=3, steps=[{"setWeight": 50}], canary=canary))
    update(w)
    assert w.run(until=lambda x: x.phase == "Healthy" and status(x).stable_rs == status(x).current_pod_hash)
    assert not any(c.type == "InvalidSpec" for c in status(w).conditions or [])


def test_huge_pause_is_invalid_spec_not_a_reconcile_crash() -> None:
    w = deployed(rollout(replicas=1, steps=[{"pause": {"duration": "1h"}}]))
    w.edit(lambda r: rollout(replicas=1, steps=[{"pause": {"duration": "9999999999h"}}], image="app:2"))
    w.settle()
    assert w.phase == "Degraded" and "pause.duration" in (status(w).message or "")


def test_fixing_an_invalid_spec_recovers() -> None:
    w = world(rollout(steps=[{"setWeight": 140}]))
    w.settle()
    assert w.phase == "Degraded" and not w.replica_sets
    w.edit(lambda r: rollout(steps=[{"setWeight": 40}]))
    assert w.run(until=lambda x: x.phase == "Healthy")
    assert not any(c.type == "InvalidSpec" for c in status(w).conditions or [])


def test_same_input_same_output_and_fixed_point() -> None:
    w = deployed(rollout(replicas=3, steps=[{"setWeight": 30}, {"pause": {}}], canary=traffic()))
    update(w)
    w.run(until=lambda x: x.phase == "Paused")
    first = reconcile(w.rollout, w.observe(), w.now)
    second = reconcile(w.rollout, w.observe(), w.now)
    assert first == second
    assert first.actions == () and first.status == w.rollout.status


def test_delete_replica_set_action_names_an_old_revision() -> None:
    w = deployed(rollout(replicas=1, revisionHistoryLimit=0))
    update(w)
    seen: list[str] = []
    while True:
        d = w.reconcile()
        seen += [a.name for a in d.actions if isinstance(a, DeleteReplicaSet)]
        if not d.actions:
            wake = w.next_wakeup()
            if wake is None:
                break
            w.advance_to(wake)
    assert len(seen) == 1 and seen[0] not in w.replica_sets


@pytest.mark.parametrize("replicas", [0, 1], ids=["replicas-0", "replicas-1"])
def test_history_never_deletes_the_replica_set_the_stored_status_calls_stable(replicas: int) -> None:
    """The pass that promotes moves the old stable ReplicaSet among the others; if that pass deleted it and
    its status write were then refused (409), the stored status would name a deleted stable ReplicaSet and
    the next release would go to 100 % with no steps. It may go only once the new stable is stored."""
    w = deployed(rollout(replicas=replicas, steps=[], revisionHistoryLimit=0))
    for image in ("app:2", "app:3"):
        update(w, image)
        for _ in range(50):
            stored = w.rollout.status.stable_rs if w.rollout.status else None
            d = w.reconcile()
            doomed = {a.name for a in d.actions if isinstance(a, DeleteReplicaSet)}
            assert not any(rs.pod_hash == stored for name, rs in w.replica_sets.items() if name in doomed)
            if not d.actions:
                wake = w.next_wakeup()
                if wake is None:
                    break
                w.advance_to(wake)
        assert status(w).stable_rs == status(w).current_pod_hash
