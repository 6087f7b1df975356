"""The patches each operator verb writes (section 3 of the reference), table-driven."""

from __future__ import annotations

from typing import Any

import pytest

from rollouts.engine import intents
from rollouts.spec.rollout import Rollout, RolloutStatus

from .builders import deployed, rollout, update


def with_status(ro: Rollout, **status: Any) -> Rollout:
    return ro.model_copy(update={"status": RolloutStatus.model_validate(status)})


CANARY = rollout(steps=[{"setWeight": 50}, {"analysis": {"templates": [{"templateName": "t"}]}}, {"pause": {}}])
PAUSED = CANARY.model_copy(update={"spec": CANARY.spec.model_copy(update={"paused": True})})
BG = rollout(blue_green={"activeService": "a"})
PAUSE_COND = [{"reason": "CanaryPauseStep", "startTime": "2026-01-01T00:00:00Z"}]


@pytest.mark.parametrize(
    ("ro", "kwargs", "spec", "status"),
    [
        (with_status(CANARY, currentStepIndex=1, controllerPause=True,
                     pauseConditions=[{"reason": "InconclusiveAnalysisRun", "startTime": "2026-01-01T00:00:00Z"}],
                     canary={"currentStepAnalysisRunStatus": {"name": "r", "status": "Inconclusive"}}),
         {}, None, {"pauseConditions": None, "controllerPause": False, "currentStepIndex": 2}),
        (with_status(CANARY, currentStepIndex=2, controllerPause=True, pauseConditions=PAUSE_COND),
         {}, None, {"pauseConditions": None}),
        (with_status(CANARY, currentStepIndex=1), {}, None, {"pauseConditions": None, "currentStepIndex": 2}),
        (with_status(PAUSED, currentStepIndex=0), {}, {"paused": False},
         {"pauseConditions": None, "currentStepIndex": 1}),
        (with_status(CANARY, currentStepIndex=3), {}, None, None),
        (with_status(BG, currentPodHash="b", stableRS="a"), {}, None, None),
        (with_status(BG, pauseConditions=[{"reason": "BlueGreenPause", "startTime": "2026-01-01T00:00:00Z"}]),
         {}, None, {"pauseConditions": None}),
        (with_status(CANARY, currentPodHash="b", stableRS="a"), {"full": True}, None, {"promoteFull": True}),
        (with_status(CANARY, currentPodHash="a", stableRS="a"), {"full": True}, None, None),
        (with_status(CANARY, currentStepIndex=1), {"skip_current_step": True}, None, {"currentStepIndex": 2}),
    ],
    ids=["inconclusive-step-skipped", "pause-conditions-cleared", "running-step-skipped",
         "manual-pause-unpaused-and-step-skipped", "steps-done-nothing", "bluegreen-unpause-only",
         "bluegreen-pause-released", "full", "full-when-already-stable", "skip-current-step"],
)
def test_promote_patch(ro: Rollout, kwargs: dict[str, Any], spec: Any, status: Any) -> None:
    patch = intents.promote(ro, **kwargs)
    assert patch.spec == spec and patch.status == status


@pytest.mark.parametrize(
    ("verb", "spec", "status"),
    [
        (intents.abort, None, {"abort": True}),
        (intents.retry, None, {"abort": False}),
        (intents.pause, {"paused": True}, None),
        (intents.resume, {"paused": False}, {"pauseConditions": None}),
    ],
    ids=["abort", "retry", "pause", "resume"],
)
def test_simple_verbs(verb: Any, spec: Any, status: Any) -> None:
    patch = verb(CANARY)
    assert patch.spec == spec and patch.status == status


def test_skip_current_step_refused_for_bluegreen() -> None:
    with pytest.raises(intents.IntentError, match="Cannot skip steps of a bluegreen rollout"):
        intents.promote(BG, skip_current_step=True)


def test_restart_writes_rfc3339() -> None:
    from datetime import UTC, datetime

    patch = intents.restart(CANARY, datetime(2026, 3, 4, 5, 6, 7, 890, tzinfo=UTC))
    assert patch.spec == {"restartAt": "2026-03-04T05:06:07Z"}


def test_apply_patch_clears_with_null_and_bumps_generation() -> None:
    ro = with_status(PAUSED, pauseConditions=PAUSE_COND, controllerPause=True)
    after = intents.apply_patch(ro, intents.resume(ro))
    assert after.spec.paused is False and after.status is not None and after.status.pause_conditions is None
    assert after.status.controller_pause is True
    assert after.metadata.generation == 2


def test_undo_to_previous_and_skip_when_equal() -> None:
    w = deployed(rollout(replicas=1))
    update(w)
    w.run(until=lambda x: x.phase == "Healthy" and x.rollout.status.stable_rs == x.rollout.status.current_pod_hash)  # type: ignore[union-attr]
    sets = w.observe().replica_sets
    result = intents.undo(w.rollout, sets)
    assert result.revision == 1 and result.template is not None
    assert result.template.spec.containers[0].image == "app:1"
    assert "rollouts-pod-template-hash" not in result.template.metadata.labels
    same = intents.undo(w.rollout, sets, to_revision=2)
    assert same.template is None
    assert same.message == "skipped rollback (current template already matches revision 2)"
    with pytest.raises(intents.IntentError, match="unable to find specified revision 7 in history"):
        intents.undo(w.rollout, sets, to_revision=7)
    w.patch(result.patch)
    assert w.run(until=lambda x: x.phase == "Healthy" and x.rollout.status.stable_rs == x.rollout.status.current_pod_hash)  # type: ignore[union-attr]
    assert {rs.revision for rs in w.replica_sets.values()} == {2, 3}
