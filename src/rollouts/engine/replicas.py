"""Replica and weight arithmetic: surge/unavailability budgets, the closest canary/stable split of a basic
canary, and the pod counts a traffic-routed canary needs for a weight.

Pure integer maths; no models beyond the numbers handed in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rollouts.spec.intorstr import IntOrStr, resolve_int_or_percent
from rollouts.spec.rollout import DEFAULT_MAX_SURGE, DEFAULT_MAX_UNAVAILABLE


@dataclass(frozen=True, kw_only=True)
class Pool:
    """A ReplicaSet as the maths sees it: desired count and how many of its pods are available."""

    name: str
    replicas: int
    available: int


def surge_and_unavailable(
    replicas: int, max_surge: IntOrStr | None, max_unavailable: IntOrStr | None
) -> tuple[int, int]:
    """Absolute maxSurge (rounded up) and maxUnavailable (rounded down); both zero means one unavailable
    (Argo's `resolveFenceposts`), and maxUnavailable never exceeds the replicas (Argo's `MaxUnavailable`)."""
    surge = resolve_int_or_percent(max_surge, replicas, round_up=True, default=DEFAULT_MAX_SURGE)
    unavailable = resolve_int_or_percent(
        max_unavailable, replicas, round_up=False, default=DEFAULT_MAX_UNAVAILABLE
    )
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return max(surge, 0), max(min(unavailable, replicas), 0)


def closest_split(replicas: int, weight: int, max_surge: int, max_weight: int = 100) -> tuple[int, int]:
    """(canary, stable) pod counts whose ratio is closest to `weight` for a canary without traffic routing.

    Candidates use `replicas` pods in total, or one more when surging is allowed; on equal distance the
    earlier candidate wins, which rounds ties up. A weight strictly between 0 and the maximum never
    leaves either side with zero pods unless there is only one pod and no surge.
    """
    if replicas <= 0:
        return 0, 0
    if weight >= max_weight:
        return replicas, 0
    if weight <= 0:
        return 0, replicas
    zero_ok = replicas == 1 and max_surge == 0
    totals = [replicas] + ([replicas + 1] if max_surge > 0 else [])
    best: tuple[int, int] | None = None
    best_delta = math.inf
    for total in totals:
        exact = weight * total / max_weight
        for canary in (math.ceil(exact), math.floor(exact)):
            if not zero_ok and (canary == 0 or canary >= total):
                continue
            delta = abs(canary * max_weight / total - weight)
            if delta < best_delta - 1e-12:
                best, best_delta = (canary, total - canary), delta
    if best is None:
        return 0, replicas
    return best


def share(weight: int, replicas: int, max_weight: int) -> int:
    """Pods needed to carry `weight` out of `max_weight` of the traffic (rounded up)."""
    if weight <= 0 or replicas <= 0:
        return 0
    return min(replicas, math.ceil(weight * replicas / max_weight - 1e-9))


def with_min_pods(count: int, min_pods: int | None, replicas: int) -> int:
    """A non-zero count raised to minPodsPerReplicaSet (never above the rollout's replicas)."""
    if count <= 0 or not min_pods:
        return count
    return max(count, min(min_pods, replicas))


def basic_canary_counts(
    *,
    replicas: int,
    target_new: int,
    target_stable: int,
    max_surge: int,
    max_unavailable: int,
    new: Pool,
    stable: Pool | None,
    others: Sequence[Pool],
) -> tuple[int, int, dict[str, int]]:
    """One move of a basic canary toward (target_new, target_stable), as Argo's
    CalculateReplicaCountsForBasicCanary decides it. Returns the new count for the canary, the stable,
    and each other ReplicaSet.

    Scale-ups share the surge room, the stable first. While other ReplicaSets still have pods only they
    are scaled down (their unavailable pods at once, then as the availability budget allows, newest
    first). Then the side that must shrink does so within the budget, counting the other side's desired
    replicas as available (so a crash-looping side cannot wedge the move), and an over-surged pair is
    pulled back within maxSurge.
    """
    new_count = new.replicas
    stable_count = stable.replicas if stable is not None else 0
    if stable is None:
        target_new, target_stable = replicas, 0
    allowed = replicas + max_surge
    total = new.replicas + (stable.replicas if stable is not None else 0) + sum(o.replicas for o in others)
    room = allowed - total
    if stable is not None and stable.replicas < target_stable and room > 0:
        step = min(target_stable - stable.replicas, room)
        stable_count = stable.replicas + step
        room -= step
    if new.replicas < target_new and room > 0:
        new_count = min(new.replicas + room, target_new)

    other_counts = _scale_down_others(replicas, max_unavailable, new, stable, others)
    if sum(o.replicas for o in others) > 0:
        return new_count, stable_count, other_counts

    min_available = replicas - max_unavailable
    increasing = target_new >= new.replicas
    to_scale_down = _for_scale_down(new, not increasing) + (
        _for_scale_down(stable, increasing) if stable is not None else 0
    )
    if to_scale_down <= min_available:
        return new_count, stable_count, other_counts
    budget = to_scale_down - min_available
    if not increasing:
        if new.replicas > target_new:
            new_count = max(target_new, new.replicas - budget)
        new_count, stable_count = _within_limits(new, stable, new_count, stable_count, allowed, min_available)
    elif stable is not None:
        if stable.replicas > target_stable:
            stable_count = max(target_stable, stable.replicas - budget)
        stable_count, new_count = _within_limits(stable, new, stable_count, new_count, allowed, min_available)
    return new_count, stable_count, other_counts


def _for_scale_down(pool: Pool, ignore_availability: bool) -> int:
    """Argo's GetReplicasForScaleDown: the pods a side may count toward availability when scaling down."""
    if pool.replicas < pool.available or ignore_availability:
        return pool.replicas
    return pool.available


def _within_limits(
    drain: Pool, adjust: Pool | None, drain_count: int, adjust_count: int, allowed: int, min_available: int
) -> tuple[int, int]:
    """Argo's adjustReplicaWithinLimits: pull the pair back within maxSurge, giving the adjusted side back
    what availability needs, and take the rest from the draining side."""
    if adjust is None:
        return drain_count, adjust_count
    over = max(0, adjust_count + drain_count - allowed)
    available = min(drain.available, drain_count)
    adjust_count -= over
    available += min(adjust.available, adjust_count)
    lost = max(0, adjust.available - adjust_count)
    needed = max(0, min_available - available)
    adjust_count += min(lost, needed)
    over = max(0, adjust_count + drain_count - allowed)
    return drain_count - over, adjust_count


def _scale_down_others(
    replicas: int, max_unavailable: int, new: Pool, stable: Pool | None, others: Sequence[Pool]
) -> dict[str, int]:
    """Other ReplicaSets go to zero: unavailable pods at once (Argo's cleanupUnhealthyReplicas), available
    ones as far as the availability budget allows, newest first (`others` comes oldest first; Argo's
    scaleDownOldReplicaSetsForCanary walks them by revision, newest first)."""
    counts = {o.name: o.replicas for o in others}
    pools = [new, *([stable] if stable is not None else []), *others]
    budget = sum(min(p.available, p.replicas) for p in pools) - (replicas - max_unavailable)
    for other in reversed(others):
        available = min(other.available, other.replicas)
        keep = available
        if budget > 0:
            gone = min(budget, available)
            keep -= gone
            budget -= gone
        counts[other.name] = keep
    return counts
