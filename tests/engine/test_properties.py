"""Invariants over random step lists, readiness delays, analysis outcomes and operator actions."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollouts.engine import intents
from rollouts.engine.reconcile import reconcile
from rollouts.engine.types import Decision, Observed, SetCanaryWeight
from rollouts.engine.world import Outcome, World
from rollouts.spec.analysis import AnalysisRun

from .builders import deployed, rollout, traffic, update

ANALYSIS = {"analysis": {"templates": [{"templateName": "success-rate"}]}}

step = st.one_of(
    st.integers(0, 100).map(lambda w: {"setWeight": w}),
    st.just({"pause": {}}),
    st.integers(1, 90).map(lambda s: {"pause": {"duration": s}}),
    st.just(ANALYSIS),
)
verb = st.sampled_from(["promote", "abort", "retry", "full", "pause", "resume", "wait"])


def random_outcome(seed: int, phases: list[str]) -> Any:
    rng = random.Random(seed)
    verdicts: dict[str, tuple[str, float]] = {}

    def outcome(run: AnalysisRun, elapsed: float) -> Outcome:
        name = run.metadata.name or ""
        if name not in verdicts:
            verdicts[name] = (rng.choice(phases), rng.uniform(0, 120))
        phase, after = verdicts[name]
        return phase if elapsed >= after else None

    return outcome


class Checked:
    """Drives a world while checking every decision the engine makes."""

    def __init__(self, w: World) -> None:
        self.w = w
        self.decisions = 0

    def check(self, d: Decision, obs: Observed) -> None:
        w = self.w
        top = 100
        canary = w.rollout.spec.strategy.canary
        if canary is not None and canary.traffic_routing is not None:
            top = canary.traffic_routing.max_traffic_weight or 100
        new_hash = d.status.current_pod_hash
        new_available = sum(rs.available for rs in obs.replica_sets if rs.pod_hash == new_hash)
        for action in d.actions:
            if isinstance(action, SetCanaryWeight):
                assert 0 <= action.weight <= top
                if action.weight > 0:
                    assert new_available > 0, "weight sent to a canary without available pods"
        weights = d.status.canary.weights if d.status.canary is not None else None
        if weights is not None:
            assert 0 <= weights.canary.weight <= top and weights.canary.weight + weights.stable.weight == top
        if self.decisions % 7 == 0:
            assert reconcile(w.rollout, obs, w.now) == d, "same input gave a different output"
        self.decisions += 1

    def settle(self) -> None:
        w = self.w
        for _ in range(300):
            before = w.rollout.status
            obs = w.observe()
            d = reconcile(w.rollout, obs, w.now)
            self.check(d, obs)
            w.apply(d)
            if not d.actions and d.status == before:
                again = reconcile(w.rollout, w.observe(), w.now)
                assert not again.actions, "a fixed point emitted actions"
                return
        raise AssertionError("no fixed point after 300 passes")

    def run_for(self, seconds: float) -> None:
        w = self.w
        end = w.now + timedelta(seconds=seconds)
        while True:
            self.settle()
            wake = w.next_wakeup()
            if wake is None or wake > end:
                if seconds < 1e8:
                    w.advance_to(end)
                    self.settle()
                return
            w.advance_to(wake)

    def run_out(self) -> None:
        """Until nothing can happen by itself any more (bounded)."""
        for _ in range(2000):
            self.settle()
            wake = self.w.next_wakeup()
            if wake is None:
                return
            self.w.advance_to(wake)
        raise AssertionError("the rollout never went quiet")


def apply_verb(w: World, name: str) -> None:
    ro = w.rollout
    patch = {
        "promote": lambda: intents.promote(ro),
        "abort": lambda: intents.abort(ro),
        "retry": lambda: intents.retry(ro),
        "full": lambda: intents.promote(ro, full=True),
        "pause": lambda: intents.pause(ro),
        "resume": lambda: intents.resume(ro),
    }.get(name)
    if patch is not None:
        w.patch(patch())


def quiet_state_is_explained(w: World) -> None:
    s = w.rollout.status
    assert s is not None
    promoted = s.stable_rs == s.current_pod_hash
    if w.phase == "Healthy":
        assert promoted
        return
    assert w.phase in ("Paused", "Degraded"), f"stuck in {w.phase}: {s.message}"
    if w.phase == "Paused":
        assert s.pause_conditions or w.rollout.spec.paused


scenario = st.fixed_dictionaries(
    {
        "steps": st.lists(step, min_size=1, max_size=6),
        "replicas": st.integers(1, 6),
        "routed": st.booleans(),
        "background": st.booleans(),
        "ready_after": st.floats(1, 40),
        "seed": st.integers(0, 10_000),
        "phases": st.sampled_from(
            [["Successful"], ["Successful", "Failed"], ["Successful", "Inconclusive"],
             ["Successful", "Failed", "Inconclusive", "Error"]]
        ),
        "ops": st.lists(st.tuples(st.floats(0, 300), verb), max_size=5),
    }
)


def build(sc: dict[str, Any]) -> World:
    canary: dict[str, Any] = traffic() if sc["routed"] else {}
    if sc["background"]:
        canary["analysis"] = {"templates": [{"templateName": "success-rate"}]}
    ro = rollout(replicas=sc["replicas"], steps=sc["steps"], canary=canary)
    return deployed(ro, ready_after=sc["ready_after"], outcome=random_outcome(sc["seed"], sc["phases"]))


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(scenario)
def test_random_canary_invariants(sc: dict[str, Any]) -> None:
    w = build(sc)
    update(w)
    checked = Checked(w)
    for delay, name in sc["ops"]:
        checked.run_for(delay)
        apply_verb(w, name)
    checked.run_out()
    quiet_state_is_explained(w)


@SETTINGS
@given(scenario)
def test_abort_converges_to_stable(sc: dict[str, Any]) -> None:
    w = build(sc)
    update(w)
    checked = Checked(w)
    for delay, name in sc["ops"]:
        checked.run_for(delay)
        if name != "retry" and name != "full":
            apply_verb(w, name)
    s = w.rollout.status
    assert s is not None
    if s.stable_rs == s.current_pod_hash:
        return
    w.patch(intents.abort(w.rollout))
    checked.run_out()
    s = w.rollout.status
    assert s is not None
    assert w.canary_weight == 0
    stable = next(rs for rs in w.observe().replica_sets if rs.pod_hash == s.stable_rs)
    assert stable.replicas == sc["replicas"] and stable.available == sc["replicas"]
    canary = next(rs for rs in w.observe().replica_sets if rs.pod_hash == s.current_pod_hash)
    assert canary.replicas == 0
    assert w.phase == "Degraded" or (w.phase == "Paused" and w.rollout.spec.paused)


@SETTINGS
@given(scenario, st.randoms(use_true_random=False))
def test_observation_order_does_not_matter(sc: dict[str, Any], rnd: random.Random) -> None:
    """The engine's decision does not depend on the order the shell lists what it observed."""
    w = build(sc)
    update(w)
    checked = Checked(w)
    checked.run_for(sc["ops"][0][0] if sc["ops"] else 30)
    obs = w.observe()
    sets = list(obs.replica_sets)
    runs = list(obs.analysis_runs)
    pods = list(obs.pods)
    rnd.shuffle(sets)
    rnd.shuffle(runs)
    rnd.shuffle(pods)
    shuffled = Observed(**{**obs.__dict__, "replica_sets": tuple(sets), "analysis_runs": tuple(runs),
                           "pods": tuple(pods)})
    a = reconcile(w.rollout, obs, w.now)
    b = reconcile(w.rollout, shuffled, w.now)
    assert a.status == b.status
    assert sorted(x.describe() for x in a.actions) == sorted(x.describe() for x in b.actions)
