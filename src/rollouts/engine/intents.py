"""What each operator verb writes, as pure functions returning JSON merge patches.

These are the exact patches `kubectl argo rollouts` (and Argo CD's resource actions) apply, so the real
plugin and our CLI drive the engine the same way. The engine then reacts to the patched object:

- promote: `spec.paused=false` if set; then the first that applies of (a) the current step's analysis is
  Inconclusive and the controller paused: clear pause conditions and controllerPause and skip the step;
  (b) pause conditions exist: clear them (the engine completes the pause step or releases the blue/green
  pause); (c) a canary with steps left: clear them and skip the step in progress (its run is terminated).
- promote --full: `status.promoteFull=true` (plus unpause): skip every remaining step, pause and analysis.
- resume (Argo CD's "resume" action): clear `spec.paused` and `status.pauseConditions` only. Unlike
  promote it never moves `currentStepIndex`: on a pause step the engine treats the cleared condition as
  the pause completing; on an analysis step paused as Inconclusive the engine runs the analysis again
  (promote would skip it); on a step that is simply running, nothing is skipped.
- abort / retry: `status.abort` true / false. pause: `spec.paused=true`. restart: `spec.restartAt`.
- undo: the pod template of another revision, patched into `spec.template`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rollouts.engine.adoption import equal_ignore_hash
from rollouts.engine.hashing import template_without_hash_label
from rollouts.engine.types import ReplicaSetObservation
from rollouts.spec.pod import PodTemplateSpec
from rollouts.spec.rollout import Rollout


class IntentError(ValueError):
    """A verb that cannot apply to this rollout (the text is what the CLI prints)."""


@dataclass(frozen=True, kw_only=True)
class Patch:
    """JSON merge patches for the spec and for the status subresource (applied in that order)."""

    spec: Mapping[str, Any] | None = None
    status: Mapping[str, Any] | None = None
    message: str = ""

    def bodies(self) -> list[tuple[str, dict[str, Any]]]:
        """(subresource, body) pairs: "" for the object itself, "status" for the status subresource."""
        out: list[tuple[str, dict[str, Any]]] = []
        if self.spec is not None:
            out.append(("", {"spec": dict(self.spec)}))
        if self.status is not None:
            out.append(("status", {"status": dict(self.status)}))
        return out


@dataclass(frozen=True, kw_only=True)
class UndoResult:
    template: PodTemplateSpec | None
    revision: int
    message: str
    patch: Patch = field(default_factory=Patch)


def promote(rollout: Rollout, *, full: bool = False, skip_current_step: bool = False) -> Patch:
    spec_patch = {"paused": False} if rollout.spec.paused else None
    status = rollout.status
    canary = rollout.spec.strategy.canary
    name = rollout.name
    if full:
        if status is not None and status.current_pod_hash != status.stable_rs:
            return Patch(spec=spec_patch, status={"promoteFull": True}, message=f"rollout '{name}' fully promoted")
        return Patch(spec=spec_patch, message=f"rollout '{name}' fully promoted")
    steps = canary.steps or [] if canary is not None else []
    index = (status.current_step_index if status is not None else None) or 0
    if skip_current_step:
        if canary is None:
            raise IntentError("Cannot skip steps of a bluegreen rollout. Run without a flags")
        if not steps:
            raise IntentError("Cannot skip steps of a rollout without steps")
        return Patch(status={"currentStepIndex": min(index + 1, len(steps))}, message=f"rollout '{name}' promoted")
    message = f"rollout '{name}' promoted"
    if status is None:
        return Patch(spec=spec_patch, message=message)
    step_run = status.canary.current_step_analysis_run_status if status.canary is not None else None
    if canary is not None and step_run is not None and step_run.status == "Inconclusive" and status.controller_pause:
        return Patch(
            spec=spec_patch,
            status={"pauseConditions": None, "controllerPause": False, "currentStepIndex": index + 1},
            message=message,
        )
    if status.pause_conditions:
        return Patch(spec=spec_patch, status={"pauseConditions": None}, message=message)
    if canary is not None and steps and index < len(steps):
        return Patch(spec=spec_patch, status={"pauseConditions": None, "currentStepIndex": index + 1}, message=message)
    return Patch(spec=spec_patch, message=message)


def abort(rollout: Rollout) -> Patch:
    return Patch(status={"abort": True}, message=f"rollout '{rollout.name}' aborted")


def retry(rollout: Rollout) -> Patch:
    return Patch(status={"abort": False}, message=f"rollout '{rollout.name}' restarted")


def pause(rollout: Rollout) -> Patch:
    return Patch(spec={"paused": True}, message=f"rollout '{rollout.name}' paused")


def resume(rollout: Rollout) -> Patch:
    return Patch(spec={"paused": False}, status={"pauseConditions": None}, message=f"rollout '{rollout.name}' resumed")


def restart(rollout: Rollout, at: datetime) -> Patch:
    stamp = at.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Patch(spec={"restartAt": stamp}, message=f"rollout '{rollout.name}' restarts")


def undo(rollout: Rollout, replica_sets: Sequence[ReplicaSetObservation], to_revision: int = 0) -> UndoResult:
    """The template of revision `to_revision` (0: the previous revision) as a spec patch, or a
    "skipped rollback" message when the rollout already runs that template."""
    by_revision = sorted(replica_sets, key=lambda rs: rs.revision, reverse=True)
    if not by_revision:
        raise IntentError(f"no rollout history found for rollout {rollout.name!r}")
    if to_revision == 0:
        if len(by_revision) < 2:
            raise IntentError(f"no rollout history found for rollout {rollout.name!r}")
        target = by_revision[1]
    else:
        found = [rs for rs in by_revision if rs.revision == to_revision]
        if not found:
            raise IntentError(f"unable to find specified revision {to_revision} in history")
        target = found[0]
    template = template_without_hash_label(target.template)
    current = rollout.spec.template
    # Equality as adoption compares: a ReplicaSet Argo created (defaulted template) matches too.
    if current is not None and equal_ignore_hash(template, current):
        return UndoResult(
            template=None,
            revision=target.revision,
            message=f"skipped rollback (current template already matches revision {target.revision})",
        )
    return UndoResult(
        template=template,
        revision=target.revision,
        message=f"rollout '{rollout.name}' undo",
        patch=Patch(spec={"template": template.to_dict()}),
    )


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, Mapping):
        return patch
    out = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out


def apply_patch(rollout: Rollout, patch: Patch) -> Rollout:
    """The rollout after a patch (RFC 7386 merge semantics), as the API server would store it.

    A spec change bumps metadata.generation like Kubernetes does."""
    body = rollout.model_dump(by_alias=True, exclude_none=True, mode="json")
    for _, part in patch.bodies():
        body = _merge(body, part)
    if patch.spec is not None and body.get("spec") != rollout.model_dump(
        by_alias=True, exclude_none=True, mode="json"
    ).get("spec"):
        meta = body.setdefault("metadata", {})
        meta["generation"] = (rollout.metadata.generation or 1) + 1
    return Rollout.model_validate(body)
