"""Argo's rollback window: whether going back to an older ReplicaSet skips the steps and analysis."""

from __future__ import annotations

from collections.abc import Sequence

from rollouts.engine.context import Context
from rollouts.engine.types import ReplicaSetObservation


def _age(rs: ReplicaSetObservation) -> tuple[float, int]:
    """Order of creation: the creation time (Argo compares CreationTimestamp), the revision as the
    tie-breaker and when a shell did not observe the time."""
    created = rs.created_at.timestamp() if rs.created_at is not None else float("-inf")
    return (created, rs.revision)


def created_before(a: ReplicaSetObservation, b: ReplicaSetObservation) -> bool:
    """Whether ReplicaSet `a` was created before `b` (Argo's CreationTimestamp.Before)."""
    return _age(a) < _age(b)


def rollback_within_window(
    revisions: int | None,
    new_rs: ReplicaSetObservation,
    stable_rs: ReplicaSetObservation,
    replica_sets: Sequence[ReplicaSetObservation],
) -> bool:
    """Argo's `isRollbackWithinWindow`: the template goes back to a ReplicaSet created before the stable
    one, and fewer than `revisions` (rollbackWindow.revisions) ReplicaSets were created between the two.
    Creation time, not the revision number: an undo relabels the old ReplicaSet as the newest revision,
    so after one undo revision numbers no longer say which version is older."""
    if not revisions or revisions <= 0:
        return False
    if _age(new_rs) >= _age(stable_rs):
        return False
    between = sum(1 for rs in replica_sets if _age(new_rs) < _age(rs) < _age(stable_rs))
    return between < revisions


def current_rollback_within_window(ctx: Context) -> bool:
    """`rollback_within_window` for the rollout's current new and stable ReplicaSets."""
    window = ctx.rollout.spec.rollback_window
    if window is None or ctx.new_rs is None or ctx.stable_rs is None or ctx.new_rs is ctx.stable_rs:
        return False
    return rollback_within_window(window.revisions, ctx.new_rs, ctx.stable_rs, ctx.observed.replica_sets)
