"""Replica/weight arithmetic, hashing and the phase calculation, table-driven."""

from __future__ import annotations

import pytest

from rollouts.engine import conditions as c
from rollouts.engine.hashing import SAFE_ALPHABET, pod_template_hash, steps_hash
from rollouts.engine.replicas import (
    Pool,
    basic_canary_counts,
    closest_split,
    share,
    surge_and_unavailable,
    with_min_pods,
)
from rollouts.spec.rollout import CanaryStep, RolloutSpec, RolloutStatus

from .builders import rollout, with_image


@pytest.mark.parametrize(
    ("replicas", "weight", "surge", "expected"),
    [
        (10, 41, 3, (4, 6)),
        (1, 50, 1, (1, 1)),
        (1, 50, 0, (1, 0)),
        (5, 20, 2, (1, 4)),
        (4, 25, 1, (1, 3)),
        (10, 0, 3, (0, 10)),
        (10, 100, 3, (10, 0)),
        (2, 50, 1, (1, 1)),
        (3, 50, 1, (2, 2)),
        (0, 50, 1, (0, 0)),
    ],
    ids=["41pct-of-10", "half-of-1-surge", "half-of-1-no-surge", "20pct-of-5", "25pct-of-4", "zero",
         "full", "half-of-2", "half-of-3-ties-up", "no-replicas"],
)
def test_closest_split(replicas: int, weight: int, surge: int, expected: tuple[int, int]) -> None:
    assert closest_split(replicas, weight, surge) == expected


@pytest.mark.parametrize(
    ("replicas", "surge", "unavailable", "expected"),
    [
        (4, None, None, (1, 1)),
        (10, None, None, (3, 2)),
        (1, None, None, (1, 0)),
        (3, 0, 0, (0, 1)),
        (10, "50%", 2, (5, 2)),
    ],
    ids=["defaults-4", "defaults-10", "defaults-1", "both-zero-means-one-unavailable", "explicit"],
)
def test_surge_and_unavailable(replicas: int, surge: object, unavailable: object, expected: tuple[int, int]) -> None:
    assert surge_and_unavailable(replicas, surge, unavailable) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("weight", "replicas", "top", "expected"),
    [(10, 4, 100, 1), (25, 4, 100, 1), (50, 4, 100, 2), (75, 4, 100, 3), (100, 4, 100, 4), (0, 4, 100, 0),
     (1, 10, 1000, 1), (500, 10, 1000, 5)],
    ids=["10", "25", "50", "75", "100", "0", "max-1000-small", "max-1000-half"],
)
def test_traffic_share_rounds_up(weight: int, replicas: int, top: int, expected: int) -> None:
    assert share(weight, replicas, top) == expected


def test_min_pods_floor_capped_by_replicas() -> None:
    assert with_min_pods(1, 2, 5) == 2
    assert with_min_pods(0, 2, 5) == 0
    assert with_min_pods(1, 9, 3) == 3


@pytest.mark.parametrize(
    ("new", "stable", "target", "expected"),
    [
        # surge room 1: the canary gets one pod, the stable keeps its 4 (no budget: maxUnavailable 1 but
        # the canary's pod is not available yet... the stable may lose one).
        (Pool(name="n", replicas=0, available=0), Pool(name="s", replicas=4, available=4), (2, 2), (1, 3)),
        # abort: canary shrinks to 0 once the stable is complete.
        (Pool(name="n", replicas=2, available=2), Pool(name="s", replicas=2, available=2), (0, 4), (1, 3)),
        (Pool(name="n", replicas=1, available=1), Pool(name="s", replicas=4, available=4), (0, 4), (0, 4)),
    ],
    ids=["scale-up-within-surge", "abort-stable-grows-first", "abort-canary-drops"],
)
def test_basic_canary_counts(new: Pool, stable: Pool, target: tuple[int, int], expected: tuple[int, int]) -> None:
    got_new, got_stable, _ = basic_canary_counts(
        replicas=4, target_new=target[0], target_stable=target[1], max_surge=1, max_unavailable=1,
        new=new, stable=stable, others=[],
    )
    assert (got_new, got_stable) == expected


def test_basic_counts_never_break_availability() -> None:
    # 4 replicas, maxUnavailable 0: nothing available can be removed until replacements are available.
    got = basic_canary_counts(
        replicas=4, target_new=4, target_stable=0, max_surge=1, max_unavailable=0,
        new=Pool(name="n", replicas=1, available=0), stable=Pool(name="s", replicas=4, available=4), others=[],
    )
    assert got[:2] == (1, 4)


def test_pod_template_hash_is_stable_and_safe() -> None:
    a = rollout().spec.template
    b = rollout().spec.template
    assert a is not None and b is not None
    h = pod_template_hash(a)
    assert h == pod_template_hash(b)
    assert len(h) == 10 and set(h) <= set(SAFE_ALPHABET)
    changed = with_image(rollout(), "app:2").spec.template
    assert changed is not None and pod_template_hash(changed) != h
    assert pod_template_hash(a, 1) != h


def test_steps_hash_changes_with_steps() -> None:
    one = [CanaryStep(set_weight=10)]
    two = [CanaryStep(set_weight=20)]
    assert steps_hash(one) == steps_hash([CanaryStep(set_weight=10)])
    assert steps_hash(one) != steps_hash(two)


def _spec(**strategy: object) -> RolloutSpec:
    return RolloutSpec.model_validate({"replicas": 2, "strategy": strategy or {"canary": {}}})


@pytest.mark.parametrize(
    ("spec", "status", "expected"),
    [
        (_spec(), RolloutStatus(controller_pause=True), ("Progressing", "waiting for rollout to unpause")),
        (_spec(), RolloutStatus.model_validate(
            {"conditions": [{"type": "Progressing", "status": "False", "reason": "RolloutAborted",
                             "message": "Rollout aborted update to revision 2"}]}),
         ("Degraded", "RolloutAborted: Rollout aborted update to revision 2")),
        (_spec(), RolloutStatus.model_validate(
            {"conditions": [{"type": "InvalidSpec", "status": "True", "reason": "InvalidSpec", "message": "x"}]}),
         ("Degraded", "InvalidSpec: x")),
        (RolloutSpec.model_validate({"replicas": 2, "paused": True, "strategy": {"canary": {}}}), RolloutStatus(),
         ("Paused", "manually paused")),
        (_spec(), RolloutStatus.model_validate(
            {"pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2026-01-01T00:00:00Z"}],
             "controllerPause": True}), ("Paused", "CanaryPauseStep")),
        (_spec(), RolloutStatus(updated_replicas=1, available_replicas=2),
         ("Progressing", "more replicas need to be updated")),
        (_spec(), RolloutStatus(updated_replicas=2, available_replicas=1),
         ("Progressing", "updated replicas are still becoming available")),
        (_spec(), RolloutStatus(updated_replicas=2, available_replicas=2, replicas=3, current_pod_hash="a",
                                stable_rs="a"), ("Progressing", "old replicas are pending termination")),
        (_spec(), RolloutStatus(updated_replicas=2, available_replicas=2, replicas=2, current_pod_hash="b",
                                stable_rs="a"), ("Progressing", "waiting for all steps to complete")),
        (_spec(blueGreen={"activeService": "a"}), RolloutStatus.model_validate(
            {"updatedReplicas": 2, "availableReplicas": 2, "currentPodHash": "b", "stableRS": "a",
             "blueGreen": {"activeSelector": "a"}}), ("Progressing", "active service cutover pending")),
        (_spec(), RolloutStatus(updated_replicas=2, available_replicas=2, replicas=2, current_pod_hash="a",
                                stable_rs="a"), ("Healthy", "")),
        # Argo's rolloututil_test (CalculateRolloutPhase): post-promotion analysis missing / running / done.
        (_spec(blueGreen={"activeService": "a", "postPromotionAnalysis": {"templates": [{"templateName": "t"}]}}),
         RolloutStatus.model_validate({"updatedReplicas": 2, "availableReplicas": 2, "currentPodHash": "b",
                                       "stableRS": "a", "blueGreen": {"activeSelector": "b"}}),
         ("Progressing", "waiting for analysis to complete")),
        (_spec(blueGreen={"activeService": "a", "postPromotionAnalysis": {"templates": [{"templateName": "t"}]}}),
         RolloutStatus.model_validate({"updatedReplicas": 2, "availableReplicas": 2, "currentPodHash": "b",
                                       "stableRS": "a", "blueGreen": {"activeSelector": "b",
                                       "postPromotionAnalysisRunStatus": {"name": "r", "status": "Running"}}}),
         ("Progressing", "waiting for analysis to complete")),
        (_spec(blueGreen={"activeService": "a", "postPromotionAnalysis": {"templates": [{"templateName": "t"}]}}),
         RolloutStatus.model_validate({"updatedReplicas": 2, "availableReplicas": 2, "currentPodHash": "b",
                                       "stableRS": "a", "blueGreen": {"activeSelector": "b",
                                       "postPromotionAnalysisRunStatus": {"name": "r", "status": "Successful"}}}),
         ("Progressing", "waiting for post-promotion verification to complete")),
        (_spec(blueGreen={"activeService": "a"}),
         RolloutStatus.model_validate({"updatedReplicas": 2, "availableReplicas": 2, "currentPodHash": "b",
                                       "stableRS": "a", "blueGreen": {"activeSelector": "b"}}),
         ("Progressing", "waiting for post-promotion verification to complete")),
    ],
    ids=["unpause-pending", "aborted", "invalid", "manual-pause", "pause-condition", "updating",
         "becoming-available", "old-pending-termination", "steps-pending", "bg-cutover-pending", "healthy",
         "bg-post-analysis-missing", "bg-post-analysis-running", "bg-post-analysis-done", "bg-no-post-analysis"],
)
def test_rollout_phase(spec: RolloutSpec, status: RolloutStatus, expected: tuple[str, str]) -> None:
    assert c.rollout_phase(spec, status) == expected


@pytest.mark.parametrize(
    ("observed", "generation", "seen"),
    [("3", 3, True), ("2", 3, False), ("abc123hash", 3, True), ("9", 3, True), (None, 3, False)],
    ids=["same", "behind", "legacy-hash", "numeric-hash-above", "never-observed"],
)
def test_generation_observed_like_argo(observed: str | None, generation: int, seen: bool) -> None:
    """Argo's isGenerationObserved: a v0.9 hash in observedGeneration does not leave the rollout
    "waiting for rollout spec update to be observed" forever."""
    assert c.generation_observed(observed, generation) is seen
    status = RolloutStatus(observed_generation=observed, updated_replicas=2, available_replicas=2, replicas=2,
                           current_pod_hash="a", stable_rs="a")
    expected = ("Healthy", "") if seen else ("Progressing", "waiting for rollout spec update to be observed")
    assert c.rollout_phase(_spec(), status, generation) == expected
