"""A rollout's release history as `rollouts history` shows it: each remembered revision with its images,
creation time, outcome and cause, oldest first (as `kubectl rollout history` lists them). Outcomes the
controller does not record are derived here: a revision replaced while still current was superseded; the
revision live when an `undo` re-released an older template was rolled back; an undo to the template that
was still the stable version is a fast rollback, promoted at once (no step runs, so no completion event);
an aborted revision that was retried and is progressing again is current. The CLI (`rollouts history`)
and the dashboard API both show this."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rollouts.store.protocol import Revision
from rollouts.views.model import _ToDict


@dataclass(frozen=True)
class HistoryEntry(_ToDict):
    revision: int
    pod_hash: str
    images: dict[str, str]
    created: str
    updated: str
    outcome: str  # current, promoted, aborted, rolled back, superseded
    cause: str
    live: bool  # the rollout's current pod template


def _fast_rollback_of(ordered: list[Revision], i: int) -> Revision | None:
    """The revision whose template revision `i` re-released while it was still the stable one: the latest
    promoted revision before `i` has the same pod template hash (Argo's "Rollback to stable ReplicaSets")."""
    promoted = [r for r in ordered[:i] if r.outcome == "promoted"]
    if promoted and promoted[-1].pod_hash == ordered[i].pod_hash:
        return promoted[-1]
    return None


def history(revisions: list[Revision], rollout: dict[str, Any] | None) -> list[HistoryEntry]:
    """The entries oldest first."""
    status = (rollout or {}).get("status") or {}
    current_hash = status.get("currentPodHash")
    ordered = sorted(revisions, key=lambda r: r.revision)
    entries: list[HistoryEntry] = []
    for i, rev in enumerate(ordered):
        later = ordered[i + 1] if i + 1 < len(ordered) else None
        outcome = rev.outcome.replace("-", " ")
        cause = rev.cause
        stable_again = _fast_rollback_of(ordered, i) if outcome == "current" else None
        if later is None and stable_again is not None and status.get("stableRS") != rev.pod_hash:
            stable_again = None  # the live revision: the rollout's status says whether it is the stable one
        if stable_again is not None:
            outcome = "promoted"
            cause = cause or f"fast rollback: revision {stable_again.revision}'s template was still the stable version"
        if (later is None and outcome == "aborted" and rev.pod_hash == current_hash and not status.get("abort")
                and status.get("phase") != "Degraded"):
            # Retried after the abort (status.abort cleared): the release is running again.
            outcome = "current"
            cause = f"retried after an abort ({rev.cause})" if rev.cause else "retried after an abort"
        if later is not None:
            earlier_same = next((r for r in ordered[:i] if r.pod_hash == later.pod_hash), None)
            if earlier_same is not None:
                undo = f"rolled back to revision {earlier_same.revision} (re-released as revision {later.revision})"
                if outcome == "aborted":
                    cause = f"{cause}; {undo}" if cause else undo
                else:
                    outcome, cause = "rolled back", undo
            elif outcome == "current":
                outcome = "superseded"
                cause = cause or f"replaced by revision {later.revision} before it was promoted"
        entries.append(HistoryEntry(revision=rev.revision, pod_hash=rev.pod_hash, images=dict(rev.images),
                                    created=rev.created_at, updated=rev.updated_at, outcome=outcome, cause=cause,
                                    live=bool(current_hash) and rev.pod_hash == current_hash and later is None))
    return entries
