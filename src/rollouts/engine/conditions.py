"""Status conditions, the phase/message calculation and the exact reason/message strings Argo uses.

Tools that read Argo's status (Argo CD health checks, `kubectl argo rollouts status`, dashboards) parse
these strings, so they are kept identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rollouts.spec.rollout import RolloutCondition, RolloutSpec, RolloutStatus

# condition types
PROGRESSING = "Progressing"
AVAILABLE = "Available"
PAUSED = "Paused"
HEALTHY = "Healthy"
COMPLETED = "Completed"
INVALID_SPEC = "InvalidSpec"

# reasons
NEW_RS_CREATED = "NewReplicaSetCreated"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
ROLLOUT_PAUSED = "RolloutPaused"
ROLLOUT_RESUMED = "RolloutResumed"
ROLLOUT_RETRY = "RolloutRetry"
ROLLOUT_ABORTED = "RolloutAborted"
TIMED_OUT = "ProgressDeadlineExceeded"
ROLLOUT_COMPLETED = "RolloutCompleted"
ROLLOUT_HEALTHY = "RolloutHealthy"
AVAILABLE_REASON = "AvailableReason"
INVALID_SPEC_REASON = "InvalidSpec"

# event reasons (besides the ones above)
ROLLOUT_UPDATED = "RolloutUpdated"
ROLLOUT_STEP_COMPLETED = "RolloutStepCompleted"
ROLLOUT_NOT_COMPLETED = "RolloutNotCompleted"
SCALING_REPLICA_SET = "ScalingReplicaSet"
TRAFFIC_WEIGHT_UPDATED = "TrafficWeightUpdated"
SKIP_STEPS = "SkipSteps"
SWITCH_SERVICE = "SwitchService"

# pause condition reasons
PAUSE_CANARY_STEP = "CanaryPauseStep"
PAUSE_BLUE_GREEN = "BlueGreenPause"
PAUSE_INCONCLUSIVE_ANALYSIS = "InconclusiveAnalysisRun"

# messages
PAUSED_MESSAGE = "Rollout is paused"
RESUMED_MESSAGE = "Rollout is resumed"
RETRY_MESSAGE = "Retrying Rollout after abort"
AVAILABLE_MESSAGE = "Rollout has minimum availability"
NOT_AVAILABLE_MESSAGE = "Rollout does not have minimum availability"
HEALTHY_MESSAGE = "Rollout is healthy"
NOT_HEALTHY_MESSAGE = "Rollout is not healthy"
SKIP_STEPS_MESSAGE = "Rollback to stable ReplicaSets"
SKIP_STEPS_WINDOW_MESSAGE = "Rollback to active ReplicaSets within RollbackWindow"


def new_rs_created_message(rs_name: str) -> str:
    return f'Created new replica set "{rs_name}"'


def rs_progressing_message(rs_name: str) -> str:
    return f'ReplicaSet "{rs_name}" is progressing.'


def rs_completed_message(rs_name: str) -> str:
    return f'ReplicaSet "{rs_name}" has successfully progressed.'


def rs_timed_out_message(rs_name: str) -> str:
    return f'ReplicaSet "{rs_name}" has timed out progressing.'


def aborted_message(revision: int, cause: str = "") -> str:
    text = f"Rollout aborted update to revision {revision}"
    return f"{text}: {cause}" if cause else text


def not_completed_message(revision: int, pod_hash: str) -> str:
    return f"Rollout not completed, started update to revision {revision} ({pod_hash})"


def completed_message(revision: int, pod_hash: str, how: str) -> str:
    return f"Rollout completed update to revision {revision} ({pod_hash}): {how}"


def scaling_message(rs_name: str, revision: int, old: int, new: int) -> str:
    direction = "up" if new > old else "down"
    return f"Scaled {direction} ReplicaSet {rs_name} (revision {revision}) from {old} to {new}"


def find(conditions: Sequence[RolloutCondition] | None, ctype: str) -> RolloutCondition | None:
    for cond in conditions or ():
        if cond.type == ctype:
            return cond
    return None


def with_condition(
    conditions: list[RolloutCondition],
    ctype: str,
    status: str,
    reason: str,
    message: str,
    now: datetime,
    *,
    touch: bool = False,
) -> list[RolloutCondition]:
    """Conditions with one type set. Times move only when something changed (or `touch` says progress
    was made), so reconciling an unchanged rollout leaves its status byte-identical."""
    def updated(transition: datetime | None) -> RolloutCondition:
        return RolloutCondition(type=ctype, status=status, reason=reason, message=message,
                                last_update_time=now, last_transition_time=transition)

    out: list[RolloutCondition] = []
    found = False
    for cond in conditions:
        if cond.type != ctype:
            out.append(cond)
            continue
        found = True
        same = cond.status == status and cond.reason == reason and cond.message == message
        if same and not touch:
            out.append(cond)
            continue
        out.append(updated(cond.last_transition_time if cond.status == status else now))
    if not found:
        out.append(updated(now))
    return out


def without_condition(conditions: list[RolloutCondition], ctype: str) -> list[RolloutCondition]:
    return [c for c in conditions if c.type != ctype]


def restart_pending(spec: RolloutSpec, status: RolloutStatus, now: datetime | None = None) -> bool:
    if spec.restart_at is None:
        return False
    if now is not None and spec.restart_at > now:
        return False
    return status.restarted_at is None or status.restarted_at < spec.restart_at


def generation_observed(observed: str | None, generation: int) -> bool:
    """Argo's isGenerationObserved: a legacy non-numeric observedGeneration (a v0.9 hash) counts as
    observed, and so does a numeric hash larger than the generation."""
    if observed is None:
        return False
    try:
        number = int(observed)
    except ValueError:
        return True
    return number >= generation


def rollout_phase(
    spec: RolloutSpec, status: RolloutStatus, generation: int | None = None, now: datetime | None = None
) -> tuple[str, str]:
    """(phase, message), first matching rule wins, in Argo's order."""
    if generation is not None and not generation_observed(status.observed_generation, generation):
        return "Progressing", "waiting for rollout spec update to be observed"
    if status.controller_pause and not status.pause_conditions:
        return "Progressing", "waiting for rollout to unpause"
    for cond in status.conditions or ():
        if cond.type == INVALID_SPEC and cond.status == "True":
            return "Degraded", f"{INVALID_SPEC_REASON}: {cond.message}"
        if cond.type == PROGRESSING and cond.reason in (ROLLOUT_ABORTED, TIMED_OUT):
            return "Degraded", f"{cond.reason}: {cond.message}"
    if spec.paused:
        return "Paused", "manually paused"
    for pause in status.pause_conditions or ():
        return "Paused", pause.reason
    if restart_pending(spec, status, now):
        return "Progressing", "rollout is restarting"
    replicas = spec.replicas if spec.replicas is not None else 1
    updated = status.updated_replicas or 0
    available = status.available_replicas or 0
    if updated < replicas:
        return "Progressing", "more replicas need to be updated"
    if available < updated:
        return "Progressing", "updated replicas are still becoming available"
    blue_green = spec.strategy.blue_green
    canary = spec.strategy.canary
    current = status.current_pod_hash
    if blue_green is not None:
        bg = status.blue_green
        active = bg.active_selector if bg is not None else None
        if not active or active != current:
            return "Progressing", "active service cutover pending"
        if not status.stable_rs or status.stable_rs != current:
            # Argo's waitingForBlueGreenPostPromotionAnalysis: the post-promotion run is missing or
            # unfinished; otherwise what is left is post-promotion verification.
            post = bg.post_promotion_analysis_run_status if bg is not None else None
            finished = post is not None and post.status in ("Successful", "Failed", "Error", "Inconclusive")
            if blue_green.post_promotion_analysis is not None and not finished:
                return "Progressing", "waiting for analysis to complete"
            return "Progressing", "waiting for post-promotion verification to complete"
    elif canary is not None:
        if canary.traffic_routing is None and (status.replicas or 0) > updated:
            return "Progressing", "old replicas are pending termination"
        if not status.stable_rs or status.stable_rs != current:
            return "Progressing", "waiting for all steps to complete"
    return "Healthy", ""
