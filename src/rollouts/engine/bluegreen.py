"""The blue/green strategy as a flat list of steps run in order on every pass:

initial deploy -> analysis -> abort | promoted | (preview -> pre-promotion analysis -> pause -> full scale
-> active switch -> post-promotion analysis -> mark stable).

`status.blueGreen.scaleUpPreviewCheckPoint` records that the cutover was approved (pre-promotion
analysis passed and any pause was released), so the preview can be scaled to full size.
"""

from __future__ import annotations

from datetime import timedelta

from rollouts.engine import analysis as an
from rollouts.engine import conditions as c
from rollouts.engine.canary import abort_delay_elapsed, retire_others
from rollouts.engine.context import Context
from rollouts.engine.hashing import POD_TEMPLATE_HASH_LABEL
from rollouts.engine.rollback import current_rollback_within_window
from rollouts.spec.rollout import (
    DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS,
    DEFAULT_SCALE_DOWN_DELAY_SECONDS,
    RolloutAnalysis,
)


def reconcile_blue_green(ctx: Context) -> None:
    if ctx.stable_rs is None:
        reconcile_initial_deploy(ctx)
    reconcile_bg_analysis(ctx)
    if ctx.fully_promoted:
        reconcile_promoted(ctx)
    elif ctx.aborted:
        reconcile_bg_abort(ctx)
    else:
        reconcile_preview(ctx)
        if ctx.active_selector != ctx.pod_hash:
            reconcile_cutover(ctx)
        else:
            reconcile_post_promotion(ctx)


def _delay(ctx: Context) -> int:
    assert ctx.blue_green is not None
    delay = ctx.blue_green.scale_down_delay_seconds
    return DEFAULT_SCALE_DOWN_DELAY_SECONDS if delay is None else delay


def preview_target(ctx: Context) -> int:
    assert ctx.blue_green is not None
    count = ctx.blue_green.preview_replica_count
    if ctx.promote_full or ctx.check_point or count is None:
        return ctx.replicas
    return min(count, ctx.replicas)


def reconcile_initial_deploy(ctx: Context) -> None:
    assert ctx.new_rs is not None
    ctx.stable_rs = ctx.new_rs
    ctx.stable_hash = ctx.pod_hash
    ctx.others = [rs for rs in ctx.others if rs.name != ctx.new_rs.name]
    ctx.status_event(c.ROLLOUT_COMPLETED, c.completed_message(ctx.revision, ctx.pod_hash, "Initial deploy"))


def reconcile_bg_analysis(ctx: Context) -> None:
    """Pre-promotion runs once the preview is ready and before the switch; post-promotion after it."""
    bg, new_rs = ctx.blue_green, ctx.new_rs
    assert bg is not None and new_rs is not None
    runs = ctx.runs_by_name()
    live = not ctx.fully_promoted and not ctx.aborted and not ctx.promote_full and not ctx.fast_track
    switched = ctx.active_selector == ctx.pod_hash
    target = preview_target(ctx)
    preview_ready = new_rs.replicas == target and new_rs.available >= target and target > 0
    kinds: tuple[tuple[str, RolloutAnalysis | None, an.RunRef, bool], ...] = (
        ("pre_run", bg.pre_promotion_analysis, an.RunRef(an.PRE_PROMOTION, "-pre"), not switched),
        ("post_run", bg.post_promotion_analysis, an.RunRef(an.POST_PROMOTION, "-post"), switched),
    )
    for attr, analysis, ref, when in kinds:
        status = getattr(ctx, attr)
        tracked = runs.get(status.name) if status is not None else None
        want = analysis is not None and live and when
        if tracked is not None and (
            not want or tracked.metadata.labels.get(POD_TEMPLATE_HASH_LABEL) != ctx.pod_hash
        ):
            an.terminate(ctx, tracked)
            if not ctx.aborted:
                setattr(ctx, attr, None)
            tracked = None
        elif tracked is None and not want and not ctx.aborted:
            setattr(ctx, attr, None)
        if not want:
            continue
        assert analysis is not None
        if tracked is None:
            ready = preview_ready if attr == "pre_run" else True
            if ready and not ctx.rollout.spec.paused and not ctx.controller_pause:
                setattr(ctx, attr, an.create_run(ctx, analysis, ref))
        else:
            an.consume_run(ctx, ref, attr, tracked, analysis)
            if ctx.aborted:
                live = False


def reconcile_promoted(ctx: Context) -> None:
    """Steady state: the stable ReplicaSet is full size and both Services select it."""
    bg, new_rs = ctx.blue_green, ctx.new_rs
    assert bg is not None and new_rs is not None
    target = ctx.replicas
    if ctx.rollout.spec.paused and new_rs.replicas == 0 and ctx.desired.get(new_rs.name, 0) == 0:
        target = 0
    ctx.set_deadline(new_rs, None)
    ctx.scale(new_rs, target)
    ctx.point_service(bg.active_service, ctx.pod_hash)
    ctx.point_service(bg.preview_service, ctx.pod_hash)
    ctx.active_selector = ctx.pod_hash
    ctx.preview_selector = ctx.pod_hash if bg.preview_service else None
    ctx.check_point = False
    ctx.promote_full = False
    retire_others(ctx, _delay(ctx))


def reconcile_bg_abort(ctx: Context) -> None:
    """The active Service stays on (or goes back to) the stable ReplicaSet; the preview ReplicaSet is
    scaled down after abortScaleDownDelaySeconds (0 keeps it)."""
    bg, new_rs, stable = ctx.blue_green, ctx.new_rs, ctx.stable_rs
    assert bg is not None and new_rs is not None and stable is not None
    ctx.set_deadline(stable, None)
    ctx.scale(stable, ctx.replicas)
    switched_from = ctx.observed.service_selectors.get(bg.active_service or "")
    ctx.point_service(bg.active_service, stable.pod_hash)
    if switched_from and switched_from != stable.pod_hash:
        ctx.status_event(c.SWITCH_SERVICE, _switch_message(bg.active_service or "", switched_from, stable.pod_hash))
    ctx.active_selector = stable.pod_hash
    delay = bg.abort_scale_down_delay_seconds
    if delay is None:
        delay = DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS
    current = ctx.desired.get(new_rs.name, 0)
    if delay > 0 and current > 0 and abort_delay_elapsed(ctx, new_rs, delay):
        ctx.scale(new_rs, 0)
    retire_others(ctx, _delay(ctx))


def reconcile_preview(ctx: Context) -> None:
    """Keep the stable (active) side at full size and bring the new ReplicaSet up behind the preview."""
    bg, new_rs, stable = ctx.blue_green, ctx.new_rs, ctx.stable_rs
    assert bg is not None and new_rs is not None and stable is not None
    ctx.set_deadline(stable, None)
    ctx.set_deadline(new_rs, None)
    ctx.scale(stable, ctx.replicas)
    ctx.point_service(bg.preview_service, ctx.pod_hash)
    ctx.preview_selector = ctx.pod_hash if bg.preview_service else None
    ctx.scale(new_rs, preview_target(ctx))
    retire_others(ctx, _delay(ctx))


def reconcile_cutover(ctx: Context) -> None:
    """Before the switch: wait for the preview, pre-promotion analysis and any pause; then scale to full
    size and point the active Service at the new ReplicaSet."""
    bg, new_rs, stable = ctx.blue_green, ctx.new_rs, ctx.stable_rs
    assert bg is not None and new_rs is not None and stable is not None
    ctx.point_service(bg.active_service, stable.pod_hash)
    ctx.active_selector = stable.pod_hash
    target = preview_target(ctx)
    if not (new_rs.replicas == target and new_rs.available >= target):
        return
    if not ctx.check_point and not ctx.promote_full:
        if bg.pre_promotion_analysis is not None and (ctx.pre_run is None or ctx.pre_run.status != "Successful"):
            return
        if ctx.pause_conditions and ctx.pause_condition(c.PAUSE_BLUE_GREEN) is None:
            return
        if ctx.rollout.spec.paused:
            return
        seconds = bg.auto_promotion_seconds or 0
        auto = bg.auto_promotion_enabled is not False
        if not auto or seconds > 0:
            cond = ctx.pause_condition(c.PAUSE_BLUE_GREEN)
            if cond is None:
                if not ctx.resumed:
                    ctx.add_pause(c.PAUSE_BLUE_GREEN)
                    if auto:
                        ctx.requeue_in(seconds)
                    return
            elif auto and cond.start_time + timedelta(seconds=seconds) <= ctx.now:
                ctx.remove_pause(c.PAUSE_BLUE_GREEN)
            else:
                if auto:
                    ctx.requeue_at(cond.start_time + timedelta(seconds=seconds))
                return
        ctx.check_point = True
        ctx.scale(new_rs, ctx.replicas)
        ctx.requeue_in(0)
        return
    if not ctx.saturated(new_rs):
        return
    if ctx.rollout.spec.paused and not ctx.promote_full:
        return
    ctx.point_service(bg.active_service, ctx.pod_hash)
    ctx.status_event(c.SWITCH_SERVICE, _switch_message(bg.active_service or "", stable.pod_hash, ctx.pod_hash))
    ctx.active_selector = ctx.pod_hash
    ctx.requeue_in(0)


def _switch_message(service: str, old: str, new: str) -> str:
    return f"Switched selector for service '{service}' from '{old}' to '{new}'"


def reconcile_post_promotion(ctx: Context) -> None:
    """After the switch: once post-promotion analysis passed, the new ReplicaSet becomes stable and the
    old one is scaled down after scaleDownDelaySeconds."""
    bg, new_rs, stable = ctx.blue_green, ctx.new_rs, ctx.stable_rs
    assert bg is not None and new_rs is not None and stable is not None
    ctx.point_service(bg.active_service, ctx.pod_hash)
    skip = ctx.promote_full or ctx.fast_track
    passed = ctx.post_run is not None and ctx.post_run.status == "Successful"
    if bg.post_promotion_analysis is not None and not skip and not passed:
        return
    how = "Completed blue-green update"
    if ctx.fast_track:
        how = ctx.fast_track_reason or "Fast rollback"
    elif ctx.promote_full and current_rollback_within_window(ctx):
        how = "Rollback within window"
    elif ctx.promote_full:
        how = "Full promotion requested"
    ctx.stable_rs = new_rs
    ctx.stable_hash = ctx.pod_hash
    ctx.others = [stable, *ctx.others]
    ctx.promote_full = False
    ctx.check_point = False
    ctx.promoted_now = True
    delay = _delay(ctx)
    if delay > 0 and ctx.desired.get(stable.name, 0) > 0:
        ctx.set_deadline(stable, ctx.after(delay))
        ctx.requeue_in(delay)
    else:
        ctx.scale(stable, 0)
    ctx.status_event(c.ROLLOUT_COMPLETED, c.completed_message(ctx.revision, ctx.pod_hash, how))
