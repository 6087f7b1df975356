"""`reconcile(rollout, observed, now) -> Decision`: the whole controller logic as one pure function.

Order of a pass (as Argo's rollout/sync.go): validate; find the new/stable/old ReplicaSets and detect an
update; react to the operator's intents written into the status (retry, promote --full, resume, abort);
run the strategy (canary.py or bluegreen.py); restart pods; prune history; then compute counters,
conditions, the phase and when to look again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from rollouts.engine import analysis as an
from rollouts.engine import conditions as c
from rollouts.engine.adoption import find_adoptable
from rollouts.engine.bluegreen import reconcile_blue_green
from rollouts.engine.canary import reconcile_canary
from rollouts.engine.context import Context
from rollouts.engine.hashing import (
    POD_TEMPLATE_HASH_LABEL,
    argo_steps_hash,
    pod_template_hash,
    replica_set_name,
    steps_hash,
)
from rollouts.engine.rollback import created_before, rollback_within_window
from rollouts.engine.steps import current_step
from rollouts.engine.types import (
    CreateReplicaSet,
    Decision,
    DeleteReplicaSet,
    EmitEvent,
    EvictPod,
    Observed,
    ReplicaSetObservation,
    SetReplicaSetRevision,
)
from rollouts.engine.validation import validate
from rollouts.spec.rollout import (
    DEFAULT_PROGRESS_DEADLINE_SECONDS,
    DEFAULT_REVISION_HISTORY_LIMIT,
    BlueGreenStatus,
    CanaryStatus,
    Rollout,
    RolloutStatus,
)


def reconcile(rollout: Rollout, observed: Observed, now: datetime) -> Decision:
    """The next status and the actions that move the world toward what `rollout` asks for."""
    errors = validate(rollout, observed)
    if errors:
        return _invalid(rollout, errors, now)
    ctx = Context.start(rollout, observed, now)
    ctx.conditions = c.without_condition(ctx.conditions, c.INVALID_SPEC)
    reconcile_revision(ctx)
    reconcile_intents(ctx)
    if ctx.canary is not None:
        reconcile_canary(ctx)
    else:
        reconcile_blue_green(ctx)
    reconcile_restart(ctx)
    reconcile_history(ctx)
    return _finish(ctx)


# --- revisions -------------------------------------------------------------------------------------


def reconcile_revision(ctx: Context) -> None:
    """Find (or create) the ReplicaSet of the current template, the stable one and the rest; reset the
    step state when the template or the steps changed; re-label an adopted ReplicaSet."""
    rollout = ctx.rollout
    template = rollout.spec.template
    assert template is not None
    prev = ctx.prev
    ctx.pod_hash = pod_template_hash(template, prev.collision_count)
    step_hash = steps_hash(ctx.canary.steps) if ctx.canary is not None else None
    max_revision = max((rs.revision for rs in ctx.observed.replica_sets), default=0)

    new_rs = next((rs for rs in ctx.observed.replica_sets if rs.pod_hash == ctx.pod_hash), None)
    if new_rs is None:
        # A ReplicaSet another controller (Argo) named after its own hash: adopt it, keeping its hash,
        # so Services, the canary Ingress and status.currentPodHash/stableRS keep selecting its pods.
        new_rs = find_adoptable(ctx.observed.replica_sets, template)
        if new_rs is not None:
            ctx.pod_hash = new_rs.pod_hash
    stable_rs = None
    if prev.stable_rs:
        stable_rs = next((rs for rs in ctx.observed.replica_sets if rs.pod_hash == prev.stable_rs), None)
    template_changed = prev.current_pod_hash != ctx.pod_hash
    # A status Argo's controller wrote carries its own steps hash: the same steps, not a change.
    steps_changed = (
        ctx.canary is not None
        and prev.current_step_hash is not None
        and prev.current_step_hash != step_hash
        and prev.current_step_hash != argo_steps_hash(ctx.canary.steps)
    )
    adopted = new_rs is not None and template_changed

    if new_rs is None:
        revision = max_revision + 1
        name = replica_set_name(ctx.name, ctx.pod_hash)
        labels = dict(template.metadata.labels)
        labels[POD_TEMPLATE_HASH_LABEL] = ctx.pod_hash
        rs_template = template.model_copy(
            update={"metadata": template.metadata.model_copy(update={"labels": labels})}
        )
        new_rs = ReplicaSetObservation(
            name=name,
            pod_hash=ctx.pod_hash,
            revision=revision,
            template=rs_template,
            replicas=0,
            created_at=ctx.now,
        )
        ctx.created = CreateReplicaSet(
            name=name, pod_hash=ctx.pod_hash, revision=revision, template=rs_template, replicas=0
        )
        ctx.act(ctx.created)
        ctx.by_name[name] = new_rs
        ctx.desired[name] = 0
        ctx.revisions[name] = revision
        ctx.deadlines[name] = None
        if template_changed:
            ctx.event(c.ROLLOUT_UPDATED, f"Rollout updated to revision {revision}")
        ctx.event(c.NEW_RS_CREATED, f"Created ReplicaSet {name} (revision {revision})")
    elif adopted and new_rs.revision < max_revision:
        # Going back to an older template: that ReplicaSet becomes the newest revision.
        ctx.revisions[new_rs.name] = max_revision + 1
        ctx.act(SetReplicaSetRevision(name=new_rs.name, revision=max_revision + 1))
        ctx.event(c.ROLLOUT_UPDATED, f"Rollout updated to revision {max_revision + 1}")

    ctx.new_rs = new_rs
    ctx.stable_rs = new_rs if stable_rs is not None and stable_rs.name == new_rs.name else stable_rs
    ctx.others = [
        rs
        for rs in ctx.observed.replica_sets
        if rs.name != new_rs.name and (stable_rs is None or rs.name != stable_rs.name)
    ]

    if template_changed or steps_changed:
        ctx.updated = True
        ctx.pause_conditions = []
        ctx.controller_pause = False
        ctx.abort = False
        ctx.aborted_at = None
        ctx.promote_full = False
        ctx.step_run = None
        ctx.background_run = None
        ctx.pre_run = None
        ctx.post_run = None
        ctx.check_point = False
        ctx.current_step_index = 0
        if stable_rs is not None:
            _fast_track(ctx, adopted)
    if ctx.canary is not None:
        if ctx.current_step_index is None:
            ctx.current_step_index = 0
        ctx.current_step_index = min(max(ctx.current_step_index, 0), len(ctx.steps))
    ctx.step_hash = step_hash


def _fast_track(ctx: Context, adopted: bool) -> None:
    """Skip steps, pauses and analysis for the rollbacks Argo fast-tracks."""
    new_rs, stable_rs = ctx.new_rs, ctx.stable_rs
    assert new_rs is not None
    if stable_rs is new_rs:
        if ctx.canary is not None:
            ctx.current_step_index = len(ctx.steps)
            ctx.status_event(c.SKIP_STEPS, c.SKIP_STEPS_MESSAGE)
        return
    if not adopted or stable_rs is None:
        return
    older = created_before(new_rs, stable_rs)
    if ctx.blue_green is not None and older and ctx.in_future(new_rs.scale_down_deadline) and new_rs.replicas > 0:
        # A previous stable still scaled up within its scale-down delay: switch straight back, no pause or
        # analysis. Only a ReplicaSet older than the stable (Argo's isRollback): a never-promoted preview
        # waiting out its delay must go through its analysis again.
        ctx.fast_track = True
        ctx.fast_track_reason = "Fast rollback"
        ctx.promote_full = True
        return
    if _rollback_within_window(ctx, new_rs, stable_rs):
        ctx.fast_track = True
        ctx.fast_track_reason = "Rollback within window"
        ctx.promote_full = True
        if ctx.canary is not None:
            ctx.current_step_index = len(ctx.steps)
        ctx.status_event(c.SKIP_STEPS, c.SKIP_STEPS_WINDOW_MESSAGE)


def _rollback_within_window(ctx: Context, new_rs: ReplicaSetObservation, stable_rs: ReplicaSetObservation) -> bool:
    window = ctx.rollout.spec.rollback_window
    revisions = window.revisions if window is not None else None
    return rollback_within_window(revisions, new_rs, stable_rs, ctx.observed.replica_sets)


# --- operator intents ------------------------------------------------------------------------------


def reconcile_intents(ctx: Context) -> None:
    """React to what `kubectl argo rollouts` (or Argo CD) wrote: retry, promote --full, resume, abort."""
    if not ctx.abort and ctx.aborted_at is not None:
        # retry: the abort was cleared by the operator.
        ctx.retried = True
        ctx.aborted_at = None
        ctx.step_run = None
        ctx.background_run = None
        ctx.pre_run = None
        ctx.post_run = None
        ctx.check_point = False
        if ctx.canary is not None and not ctx.fully_promoted:
            ctx.current_step_index = 0
    if ctx.promote_full:
        if ctx.fully_promoted:
            ctx.promote_full = False
        else:
            ctx.pause_conditions = []
            ctx.controller_pause = False
            ctx.abort = False
            ctx.aborted_at = None
            ctx.current_step_index = len(ctx.steps)
    if ctx.controller_pause and not ctx.pause_conditions:
        # Someone removed our pause conditions: that is a resume (promote, or Argo CD's resume action).
        ctx.resumed = True
        ctx.controller_pause = False
        ctx.status_event(c.ROLLOUT_RESUMED, c.RESUMED_MESSAGE)
    if ctx.abort and ctx.aborted_at is None and not ctx.fully_promoted:
        cause = ""
        progressing = c.find(ctx.conditions, c.PROGRESSING)
        if progressing is not None and progressing.reason == c.TIMED_OUT:
            cause = progressing.message
        ctx.abort = False
        ctx.start_abort(cause)


# --- restart ---------------------------------------------------------------------------------------


def reconcile_restart(ctx: Context) -> None:
    """Evict pods created before spec.restartAt, at most maxUnavailable at a time: stable pods first,
    then the current ReplicaSet's, then the rest oldest first; record restartedAt when none is left."""
    restart_at = ctx.rollout.spec.restart_at
    if restart_at is None:
        return
    if restart_at > ctx.now:
        ctx.requeue_at(restart_at)
        return
    if ctx.restarted_at is not None and ctx.restarted_at >= restart_at:
        return
    rank: dict[str, tuple[int, int]] = {}
    if ctx.stable_rs is not None:
        rank[ctx.stable_rs.pod_hash] = (0, 0)
    if ctx.new_rs is not None:
        rank.setdefault(ctx.new_rs.pod_hash, (1, 0))
    for rs in ctx.others_by_age():
        rank.setdefault(rs.pod_hash, (2, ctx.revisions.get(rs.name, rs.revision)))
    pods = [p for p in ctx.observed.pods if p.pod_hash in rank]
    stale = [p for p in pods if p.created_at < restart_at]
    if not stale:
        ctx.restarted_at = restart_at
        return
    _, max_unavailable = ctx.surge_unavailable()
    wanted = sum(ctx.desired.get(rs.name, 0) for rs in ctx.by_name.values())
    ready = sum(1 for p in pods if p.ready)
    budget = max(max_unavailable, 1) - max(wanted - ready, 0)
    stale.sort(key=lambda p: (rank[p.pod_hash], p.created_at, p.name))
    for pod in stale[: max(budget, 0)]:
        ctx.act(EvictPod(name=pod.name))


# --- history ---------------------------------------------------------------------------------------


def reconcile_history(ctx: Context) -> None:
    """Delete scaled-down old ReplicaSets beyond revisionHistoryLimit and old AnalysisRuns beyond 5/5."""
    limit = ctx.rollout.spec.revision_history_limit
    if limit is None:
        limit = DEFAULT_REVISION_HISTORY_LIMIT
    idle = [
        rs
        for rs in ctx.others_by_age()
        if rs.replicas == 0 and ctx.desired.get(rs.name, 0) == 0 and rs.available == 0
    ]
    for rs in idle[: max(len(idle) - limit, 0)]:
        ctx.act(DeleteReplicaSet(name=rs.name))
    keep = {
        s.name for s in (ctx.step_run, ctx.background_run, ctx.pre_run, ctx.post_run) if s is not None
    }
    an.terminate_orphans(ctx, keep)
    an.collect_garbage(ctx, keep)


# --- status ----------------------------------------------------------------------------------------


def _invalid(rollout: Rollout, errors: list[str], now: datetime) -> Decision:
    prev = rollout.status or RolloutStatus()
    # Argo reports the first error, in the API server's wording for an invalid object.
    message = f'The Rollout "{rollout.name}" is invalid: {errors[0]}'
    conds = c.with_condition(
        list(prev.conditions or ()), c.INVALID_SPEC, "True", c.INVALID_SPEC_REASON, message, now
    )
    generation = rollout.metadata.generation
    status = prev.model_copy(
        update={
            "conditions": conds,
            "phase": "Degraded",
            "message": f"{c.INVALID_SPEC_REASON}: {message}",
            "observed_generation": str(generation) if generation is not None else prev.observed_generation,
        }
    )
    return Decision(status=status, actions=(), requeue_after=None)


def _finish(ctx: Context) -> Decision:
    rollout = ctx.rollout
    spec = rollout.spec
    prev = ctx.prev
    new_rs = ctx.new_rs
    assert new_rs is not None
    all_rs = list(ctx.by_name.values())
    replicas_total = sum(ctx.desired.get(rs.name, 0) for rs in all_rs)
    updated = ctx.desired.get(new_rs.name, 0)
    ready = sum(min(rs.ready, ctx.desired.get(rs.name, 0)) for rs in all_rs)
    if ctx.blue_green is not None:
        active = next((rs for rs in all_rs if rs.pod_hash == ctx.active_selector), None)
        available = min(active.available, ctx.desired.get(active.name, 0)) if active is not None else 0
    else:
        available = sum(min(rs.available, ctx.desired.get(rs.name, 0)) for rs in all_rs)

    canary_status = prev.canary
    if ctx.canary is not None and (
        prev.canary is None
        or prev.canary.current_step_analysis_run_status is not ctx.step_run
        or prev.canary.current_background_analysis_run_status is not ctx.background_run
        or prev.canary.weights is not ctx.weights
    ):
        canary_status = (prev.canary or CanaryStatus()).model_copy(
            update={
                "current_step_analysis_run_status": ctx.step_run,
                "current_background_analysis_run_status": ctx.background_run,
                "weights": ctx.weights,
            }
        )
    bg_status = prev.blue_green
    if ctx.blue_green is not None:
        bg_status = (prev.blue_green or BlueGreenStatus()).model_copy(
            update={
                "active_selector": ctx.active_selector,
                "preview_selector": ctx.preview_selector,
                "scale_up_preview_check_point": ctx.check_point or None,
                "pre_promotion_analysis_run_status": ctx.pre_run,
                "post_promotion_analysis_run_status": ctx.post_run,
            }
        )
    selector = spec.selector.match_labels if spec.selector is not None else {}
    selector_labels = dict(selector)
    if ctx.blue_green is not None and ctx.active_selector:
        selector_labels[POD_TEMPLATE_HASH_LABEL] = ctx.active_selector
    selector_text = ",".join(f"{k}={v}" for k, v in sorted(selector_labels.items())) or None

    _set_conditions(ctx, updated=updated, ready=ready, available=available)
    generation = rollout.metadata.generation
    status = prev.model_copy(
        update={
            "abort": ctx.abort or None,
            "aborted_at": ctx.aborted_at if ctx.abort else None,
            "pause_conditions": ctx.pause_conditions or None,
            "controller_pause": ctx.controller_pause or None,
            "current_pod_hash": ctx.pod_hash,
            "current_step_hash": ctx.step_hash,
            "current_step_index": ctx.current_step_index if ctx.canary is not None and ctx.steps else None,
            "replicas": replicas_total,
            "updated_replicas": updated,
            "ready_replicas": ready,
            "available_replicas": available,
            "hpa_replicas": replicas_total,
            "selector": selector_text,
            "observed_generation": str(generation) if generation is not None else prev.observed_generation,
            "conditions": ctx.conditions,
            "canary": canary_status,
            "blue_green": bg_status,
            "stable_rs": ctx.stable_hash,
            "restarted_at": ctx.restarted_at,
            "promote_full": ctx.promote_full or None,
        }
    )
    phase, message = c.rollout_phase(spec, status, generation, ctx.now)
    healthy = phase == "Healthy"
    ctx.conditions = c.with_condition(
        ctx.conditions,
        c.HEALTHY,
        "True" if healthy else "False",
        c.ROLLOUT_HEALTHY,
        c.HEALTHY_MESSAGE if healthy else c.NOT_HEALTHY_MESSAGE,
        ctx.now,
    )
    status = status.model_copy(
        update={"conditions": ctx.conditions, "phase": phase, "message": message or None}
    )
    if status == prev and not ctx.actions and not ctx.status_events:
        status = prev
    actions = tuple(ctx.actions) + tuple(ctx.status_events)
    return Decision(status=status, actions=actions, requeue_after=ctx.requeue)


def _deadline_exempt(ctx: Context) -> bool:
    """Whether the time spent now does not count against progressDeadlineSeconds, as Argo's
    `isIndefiniteStep` and `isWaitingForReplicaSetScaleDown` decide: an analysis, pause or experiment
    step lasts as long as it needs, and so does waiting for an old ReplicaSet's scale-down delay."""
    step = current_step(ctx.steps, ctx.index) if ctx.canary is not None else None
    if step is not None and (step.analysis is not None or step.pause is not None or step.experiment is not None):
        return True
    if ctx.paused:
        return True
    return any(ctx.deadline(rs) is not None and ctx.desired.get(rs.name, 0) > 0 for rs in ctx.others)


def _set_conditions(ctx: Context, *, updated: int, ready: int, available: int) -> None:
    prev = ctx.prev
    new_rs = ctx.new_rs
    assert new_rs is not None
    now = ctx.now
    conds = ctx.conditions
    spec = ctx.rollout.spec
    progressing = c.find(conds, c.PROGRESSING)
    complete = ctx.fully_promoted and ctx.saturated(new_rs)

    if ctx.aborted:
        message = c.aborted_message(ctx.revision, ctx.abort_cause or "")
        if not ctx.aborted_now and progressing is not None and progressing.reason == c.ROLLOUT_ABORTED:
            message = progressing.message
        conds = c.with_condition(conds, c.PROGRESSING, "False", c.ROLLOUT_ABORTED, message, now)
    elif ctx.paused and not complete:
        conds = c.with_condition(conds, c.PROGRESSING, "Unknown", c.ROLLOUT_PAUSED, c.PAUSED_MESSAGE, now)
    elif complete:
        conds = c.with_condition(
            conds, c.PROGRESSING, "True", c.NEW_RS_AVAILABLE, c.rs_completed_message(new_rs.name), now
        )
    else:
        moved = (
            ctx.created is not None
            or ctx.resumed
            or ctx.retried
            or ctx.updated
            or ctx.step_changed
            or ctx.promoted_now
            or updated != (prev.updated_replicas or 0)
            or ready != (prev.ready_replicas or 0)
            or available != (prev.available_replicas or 0)
            or (ctx.current_step_index or 0) != (prev.current_step_index or 0)
        )
        stale_reasons = (c.ROLLOUT_PAUSED, c.ROLLOUT_ABORTED, c.NEW_RS_AVAILABLE)
        if ctx.created is not None:
            conds = c.with_condition(
                conds, c.PROGRESSING, "True", c.NEW_RS_CREATED, c.new_rs_created_message(new_rs.name), now
            )
        elif ctx.retried and progressing is not None and progressing.reason == c.ROLLOUT_ABORTED:
            # Argo's checkPausedConditions: Unknown while the retried update gets going.
            conds = c.with_condition(conds, c.PROGRESSING, "Unknown", c.ROLLOUT_RETRY, c.RETRY_MESSAGE, now)
        elif ctx.resumed and (progressing is None or progressing.reason == c.ROLLOUT_PAUSED):
            conds = c.with_condition(conds, c.PROGRESSING, "Unknown", c.ROLLOUT_RESUMED, c.RESUMED_MESSAGE, now)
        elif moved or progressing is None or progressing.reason in stale_reasons:
            conds = c.with_condition(
                conds,
                c.PROGRESSING,
                "True",
                c.RS_UPDATED,
                c.rs_progressing_message(new_rs.name),
                now,
                touch=True,
            )
        elif progressing.reason != c.TIMED_OUT and not _deadline_exempt(ctx):
            deadline_s = spec.progress_deadline_seconds
            if deadline_s is None:
                deadline_s = DEFAULT_PROGRESS_DEADLINE_SECONDS
            since = progressing.last_update_time or now
            expires = since + timedelta(seconds=deadline_s)
            if expires <= now:
                conds = c.with_condition(
                    conds, c.PROGRESSING, "False", c.TIMED_OUT, c.rs_timed_out_message(new_rs.name), now
                )
                ctx.status_event(c.TIMED_OUT, c.rs_timed_out_message(new_rs.name), "Warning")
                if spec.progress_deadline_abort and not ctx.fully_promoted:
                    ctx.abort = True
                    ctx.requeue_in(0)
            else:
                ctx.requeue_at(expires)
    if not ctx.aborted and not ctx.paused and not complete and not _deadline_exempt(ctx):
        cond = c.find(conds, c.PROGRESSING)
        if cond is not None and cond.status in ("True", "Unknown") and cond.last_update_time is not None:
            deadline_s = spec.progress_deadline_seconds
            if deadline_s is None:
                deadline_s = DEFAULT_PROGRESS_DEADLINE_SECONDS
            ctx.requeue_at(cond.last_update_time + timedelta(seconds=deadline_s))

    if available >= ctx.replicas:
        conds = c.with_condition(conds, c.AVAILABLE, "True", c.AVAILABLE_REASON, c.AVAILABLE_MESSAGE, now)
    else:
        conds = c.with_condition(
            conds, c.AVAILABLE, "False", c.AVAILABLE_REASON, c.NOT_AVAILABLE_MESSAGE, now
        )
    if ctx.paused:
        conds = c.with_condition(conds, c.PAUSED, "True", c.ROLLOUT_PAUSED, c.PAUSED_MESSAGE, now)
    elif c.find(conds, c.PAUSED) is not None:
        # Argo keeps reason and message and only flips the status.
        conds = c.with_condition(conds, c.PAUSED, "False", c.ROLLOUT_PAUSED, c.PAUSED_MESSAGE, now)
    done = ctx.fully_promoted
    before = c.find(conds, c.COMPLETED)
    conds = c.with_condition(
        conds,
        c.COMPLETED,
        "True" if done else "False",
        c.ROLLOUT_COMPLETED,
        c.ROLLOUT_COMPLETED,
        now,
    )
    if not done and before is not None and before.status == "True":
        # Argo's RolloutNotCompleted: an update started; told right after the ReplicaSet it created.
        _event_after_created(ctx, c.ROLLOUT_NOT_COMPLETED, c.not_completed_message(ctx.revision, ctx.pod_hash))
    resumed_now = any(e.reason == c.ROLLOUT_RESUMED for e in ctx.status_events)
    if prev.pause_conditions and not ctx.pause_conditions and not ctx.abort and not resumed_now:
        # A pause that ended on its own (a timed pause step, blue/green auto-promotion, promotion).
        ctx.status_event(c.ROLLOUT_RESUMED, c.RESUMED_MESSAGE)
    ctx.conditions = conds


def _event_after_created(ctx: Context, reason: str, message: str) -> None:
    event = EmitEvent(type="Normal", reason=reason, message=message)
    for i, action in enumerate(ctx.actions):
        if isinstance(action, EmitEvent) and action.reason == c.NEW_RS_CREATED:
            ctx.actions.insert(i + 1, event)
            return
    ctx.status_events.insert(0, event)
