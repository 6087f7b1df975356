"""A decision that started an AnalysisRun and whose status write was lost (refused as stale, unanswered) is
taken again: the run it started is taken on, not started a second time under a collision name."""

from __future__ import annotations

from rollouts.engine import reconcile
from rollouts.engine.types import CreateAnalysisRun, TerminateAnalysisRun
from rollouts.engine.world import World, successful_after

from .builders import deployed, rollout, update

ANALYSIS = {"analysis": {"templates": [{"templateName": "success-rate"}]}}


def _lose_the_status_of_the_pass_that_starts_a_run(w: World) -> None:
    for _ in range(200):
        before = w.rollout
        decision = reconcile(w.rollout, w.observe(), w.now)
        w.apply(decision)
        if any(isinstance(a, CreateAnalysisRun) for a in decision.actions):
            w.rollout = before  # its actions were carried out, its status never stored
            return
        if not decision.actions and decision.status == before.status:
            w.advance_to(w.next_wakeup() or w.now)
    raise AssertionError("no pass started an analysis run")


def _actions(w: World) -> list[object]:
    seen: list[object] = []
    original = w.apply

    def spy(decision):  # type: ignore[no-untyped-def]
        seen.extend(decision.actions)
        original(decision)
    w.apply = spy  # type: ignore[method-assign]
    assert w.run(until=lambda x: x.phase == "Healthy" and x.rollout.status is not None
                 and x.rollout.status.stable_rs == x.rollout.status.current_pod_hash)
    return seen


def test_a_step_run_started_by_a_decision_whose_status_was_lost_is_taken_on() -> None:
    w = deployed(rollout(steps=[{"setWeight": 50}, ANALYSIS, {"setWeight": 75}]), outcome=successful_after(30))
    update(w)
    _lose_the_status_of_the_pass_that_starts_a_run(w)
    later = _actions(w)
    assert not [a for a in later if isinstance(a, CreateAnalysisRun | TerminateAnalysisRun)], later
    assert len(w.runs) == 1 and all(r.status and r.status.phase == "Successful" for r in w.runs.values())


def test_a_run_of_the_same_name_being_terminated_is_not_taken_on() -> None:
    # The run of that name is being terminated (an abort came in between): the step gets a new one.
    w = deployed(rollout(steps=[{"setWeight": 50}, ANALYSIS, {"setWeight": 75}]), outcome=successful_after(30))
    update(w)
    _lose_the_status_of_the_pass_that_starts_a_run(w)
    (name,) = w.runs
    w.runs[name] = w.runs[name].model_copy(update={"spec": w.runs[name].spec.model_copy(update={"terminate": True})})
    later = _actions(w)
    created = [a.run.metadata.name for a in later if isinstance(a, CreateAnalysisRun)]
    assert created == [f"{name}.1"], created
