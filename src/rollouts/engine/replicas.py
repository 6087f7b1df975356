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
    """One move of a basic canary toward (target_new, target_stable), within the surge and availability
    budgets. Returns the new count for the canary, the stable, and each other ReplicaSet.

    Scale-ups take surge room (the side that must grow for the move first); scale-downs spend the
    availability budget, other ReplicaSets first (oldest first), then the side that must shrink.
    """
    counts = {new.name: new.replicas}
    available = {new.name: min(new.available, new.replicas)}
    if stable is not None:
        counts[stable.name] = stable.replicas
        available[stable.name] = min(stable.available, stable.replicas)
    for other in others:
        counts[other.name] = other.replicas
        available[other.name] = min(other.available, other.replicas)
    targets = {new.name: target_new}
    if stable is not None:
        targets[stable.name] = target_stable
    increasing = target_new >= new.replicas

    room = replicas + max_surge - sum(counts.values())
    grow_order = [new, stable] if increasing else [stable, new]
    for pool in grow_order:
        if pool is None:
            continue
        want = targets[pool.name] - counts[pool.name]
        if want > 0 and room > 0:
            step = min(want, room)
            counts[pool.name] += step
            room -= step

    budget = sum(available.values()) - (replicas - max_unavailable)
    shrink: list[tuple[Pool, int]] = [(o, 0) for o in others]
    sides = [stable, new] if increasing else [new, stable]
    shrink += [(p, targets[p.name]) for p in sides if p is not None]
    for pool, target in shrink:
        current = counts[pool.name]
        if current <= target:
            continue
        # Unavailable pods can go without touching the budget; available ones only while it lasts.
        free = current - available[pool.name]
        lowest = max(target, current - free - max(budget, 0))
        if lowest >= current:
            continue
        # Scaling down removes not-yet-available pods first.
        lost = available[pool.name] - min(available[pool.name], lowest)
        budget -= lost
        available[pool.name] -= lost
        counts[pool.name] = lowest
    stable_count = counts[stable.name] if stable is not None else 0
    return counts[new.name], stable_count, {o.name: counts[o.name] for o in others}
