"""The canary strategy as a flat list of steps run in order on every pass:

initial deploy -> promotion -> analysis -> replicas -> traffic + services -> step progression.

Basic canaries approximate the step weight with pod ratios (within maxSurge/maxUnavailable); traffic-
routed canaries size the canary for the weight and move the weight only once the canary is ready.
"""

from __future__ import annotations

from datetime import timedelta

from rollouts.engine import analysis as an
from rollouts.engine import conditions as c
from rollouts.engine.context import Context
from rollouts.engine.hashing import POD_TEMPLATE_HASH_LABEL
from rollouts.engine.replicas import (
    Pool,
    basic_canary_counts,
    closest_split,
    share,
    with_min_pods,
)
from rollouts.engine.rollback import current_rollback_within_window
from rollouts.engine.steps import (
    canary_scale_at,
    current_step,
    describe_step,
    header_routes_at,
    pause_seconds,
    previous_set_weight,
    set_weight_at,
)
from rollouts.engine.types import RemoveHeaderRoute, ReplicaSetObservation, SetCanaryWeight, SetHeaderRoute
from rollouts.spec.rollout import (
    DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS,
    DEFAULT_SCALE_DOWN_DELAY_SECONDS,
    CanaryStep,
    PauseCondition,
    TrafficWeights,
    WeightDestination,
)


def reconcile_canary(ctx: Context) -> None:
    if ctx.stable_rs is None:
        reconcile_initial_deploy(ctx)
    reconcile_promotion(ctx)
    reconcile_canary_analysis(ctx)
    reconcile_canary_replicas(ctx)
    lowering = ctx.traffic_routed and desired_weight(ctx) < ctx.observed.canary_weight
    if lowering:
        reconcile_traffic(ctx)
        reconcile_canary_services(ctx)
    else:
        reconcile_canary_services(ctx)
        reconcile_traffic(ctx)
    reconcile_steps(ctx)


def reconcile_initial_deploy(ctx: Context) -> None:
    """No stable ReplicaSet yet: the first template is stable at once; steps and analysis are skipped."""
    assert ctx.new_rs is not None
    ctx.stable_rs = ctx.new_rs
    ctx.stable_hash = ctx.pod_hash
    ctx.current_step_index = len(ctx.steps)
    ctx.others = [rs for rs in ctx.others if rs.name != ctx.new_rs.name]
    ctx.status_event(c.ROLLOUT_COMPLETED, c.completed_message(ctx.revision, ctx.pod_hash, "Initial deploy"))


def reconcile_promotion(ctx: Context) -> None:
    """All steps done and the canary fully available: it becomes the stable ReplicaSet."""
    if ctx.fully_promoted:
        ctx.promote_full = False
        return
    new_rs, old = ctx.new_rs, ctx.stable_rs
    assert new_rs is not None and old is not None
    if ctx.aborted or ctx.index < len(ctx.steps) or holding_pauses(ctx):
        return
    if ctx.rollout.spec.paused and not ctx.promote_full:
        return
    if not ctx.saturated(new_rs):
        return
    dynamic = ctx.canary is not None and bool(ctx.canary.dynamic_stable_scale)
    holds_weight = ctx.promote_full and not dynamic
    if ctx.traffic_routed and ctx.replicas > 0 and ctx.observed.canary_weight != ctx.max_weight and not holds_weight:
        return
    how = f"Completed all {len(ctx.steps)} canary steps" if ctx.steps else "Completed update"
    if ctx.fast_track:
        how = ctx.fast_track_reason or "Fast rollback"
    elif ctx.promote_full and current_rollback_within_window(ctx):
        # The fast track of a rollback within the window runs as a full promotion.
        how = "Rollback within window"
    elif ctx.promote_full:
        how = "Full promotion requested"
    ctx.stable_rs = new_rs
    ctx.stable_hash = ctx.pod_hash
    ctx.others = [old, *ctx.others]
    ctx.promote_full = False
    ctx.promoted_now = True
    # Argo's promoteStable clears the pause conditions (a skipped pause step's is still there).
    ctx.pause_conditions = []
    ctx.controller_pause = False
    if ctx.traffic_routed:
        assert ctx.canary is not None
        delay = ctx.canary.scale_down_delay_seconds
        if delay is None:
            delay = DEFAULT_SCALE_DOWN_DELAY_SECONDS
        if delay > 0 and ctx.desired.get(old.name, 0) > 0:
            ctx.set_deadline(old, ctx.after(delay))
    ctx.status_event(c.ROLLOUT_COMPLETED, c.completed_message(ctx.revision, ctx.pod_hash, how))


# --- analysis --------------------------------------------------------------------------------------


def reconcile_canary_analysis(ctx: Context) -> None:
    """Create, read and retire the current step's run and the background run."""
    assert ctx.canary is not None
    runs = ctx.runs_by_name()
    in_update = not ctx.fully_promoted
    index = ctx.index
    step = current_step(ctx.steps, index)

    want_step = (
        in_update and not ctx.aborted and not ctx.promote_full and step is not None and step.analysis is not None
    )
    tracked = runs.get(ctx.step_run.name) if ctx.step_run is not None else None
    if tracked is not None:
        labels = tracked.metadata.labels
        belongs = labels.get(an.STEP_INDEX_LABEL) == str(index) and labels.get(POD_TEMPLATE_HASH_LABEL) == ctx.pod_hash
        if not want_step or not belongs:
            an.terminate(ctx, tracked)
            if not ctx.aborted:
                ctx.step_run = None
            tracked = None
    elif not want_step and not ctx.aborted:
        ctx.step_run = None
    if want_step:
        assert step is not None and step.analysis is not None
        ref = an.RunRef(an.STEP, f"-{index}", index)
        if tracked is None:
            if not ctx.rollout.spec.paused and not holding_pauses(ctx):
                ctx.step_run = an.create_run(ctx, step.analysis, ref)
        else:
            an.consume_run(ctx, ref, "step_run", tracked, step.analysis)

    background = ctx.canary.analysis
    start = (background.starting_step or 0) if background is not None else 0
    want_bg = (
        background is not None
        and in_update
        and not ctx.aborted
        and not ctx.promote_full
        and not ctx.fast_track
        and index >= start
    )
    tracked = runs.get(ctx.background_run.name) if ctx.background_run is not None else None
    if tracked is not None and (
        not want_bg or tracked.metadata.labels.get(POD_TEMPLATE_HASH_LABEL) != ctx.pod_hash
    ):
        an.terminate(ctx, tracked)
        if not ctx.aborted:
            ctx.background_run = None
        tracked = None
    elif tracked is None and not want_bg and not ctx.aborted:
        ctx.background_run = None
    if want_bg:
        assert background is not None
        ref = an.RunRef(an.BACKGROUND, "")
        if tracked is None:
            if not ctx.rollout.spec.paused:
                ctx.background_run = an.create_run(ctx, background, ref)
        else:
            an.consume_run(ctx, ref, "background_run", tracked, background)


# --- replicas --------------------------------------------------------------------------------------


def halt_reason(ctx: Context) -> str:
    """Why the canary and stable ReplicaSets must not be scaled now (Argo's `haltProgress`): the
    operator paused the rollout, or an Inconclusive analysis did. Empty when scaling may go on."""
    if ctx.rollout.spec.paused:
        return "user paused"
    if ctx.pause_condition(an.PAUSE_INCONCLUSIVE) is not None:
        return "inconclusive analysis"
    return ""


def reconcile_canary_replicas(ctx: Context) -> None:
    """Scale the canary, stable and older ReplicaSets toward the current step; while progress is halted
    the targets are still computed (the weight and step checks read them) but nothing is scaled."""
    # Deliberate difference: an abort is not halted by spec.paused (Argo's is), so the rollback an
    # operator asked for happens even on a paused rollout (docs/argo-compatibility.md).
    halted = not ctx.fully_promoted and not ctx.aborted and bool(halt_reason(ctx))
    ctx.frozen = halted
    try:
        _reconcile_canary_replicas(ctx)
    finally:
        ctx.frozen = False


def _reconcile_canary_replicas(ctx: Context) -> None:
    new_rs = ctx.new_rs
    assert new_rs is not None and ctx.canary is not None
    n = ctx.replicas
    if ctx.fully_promoted:
        target = n
        if ctx.rollout.spec.paused and new_rs.replicas == 0 and ctx.desired.get(new_rs.name, 0) == 0:
            target = 0
        ctx.target_new, ctx.target_stable = target, 0
        ctx.set_deadline(new_rs, None)
        if ctx.traffic_routed:
            ctx.scale(new_rs, target)
            retire_others(ctx, _scale_down_delay(ctx))
        else:
            _apply_basic(ctx, target, 0, include_stable=False)
        return
    stable = ctx.stable_rs
    assert stable is not None
    ctx.set_deadline(stable, None)
    if ctx.traffic_routed:
        _traffic_routed_replicas(ctx)
    else:
        weight = 0 if ctx.aborted else set_weight_at(ctx.steps, ctx.index, 100)
        surge, _ = ctx.surge_unavailable()
        target_new, target_stable = closest_split(n, weight, surge)
        _apply_basic(ctx, target_new, target_stable, include_stable=True)


def _apply_basic(ctx: Context, target_new: int, target_stable: int, *, include_stable: bool) -> None:
    new_rs, stable = ctx.new_rs, ctx.stable_rs
    assert new_rs is not None
    ctx.target_new, ctx.target_stable = target_new, target_stable
    surge, unavailable = ctx.surge_unavailable()

    def pool(rs: ReplicaSetObservation) -> Pool:
        desired = ctx.desired.get(rs.name, rs.replicas)
        return Pool(name=rs.name, replicas=desired, available=min(rs.available, desired))

    new_count, stable_count, others = basic_canary_counts(
        replicas=ctx.replicas,
        target_new=target_new,
        target_stable=target_stable,
        max_surge=surge,
        max_unavailable=unavailable,
        new=pool(new_rs),
        stable=pool(stable) if include_stable and stable is not None else None,
        others=[pool(rs) for rs in ctx.others_by_age()],
    )
    if include_stable and stable is not None:
        if target_stable > ctx.desired.get(stable.name, 0):
            ctx.scale(stable, stable_count)
            ctx.scale(new_rs, new_count)
        else:
            ctx.scale(new_rs, new_count)
            ctx.scale(stable, stable_count)
    else:
        ctx.scale(new_rs, new_count)
    for rs in ctx.others_by_age():
        ctx.scale(rs, others[rs.name])


def _traffic_routed_replicas(ctx: Context) -> None:
    canary = ctx.canary
    new_rs, stable = ctx.new_rs, ctx.stable_rs
    assert canary is not None and new_rs is not None and stable is not None
    n, top = ctx.replicas, ctx.max_weight
    applied = ctx.observed.canary_weight
    dynamic = bool(canary.dynamic_stable_scale)
    if ctx.aborted:
        target_stable = n
        current = ctx.desired.get(new_rs.name, 0)
        explicit_delay = canary.abort_scale_down_delay_seconds is not None
        if dynamic:
            # Step back through the setWeight steps (Argo's CalculateReplicaCountsForTrafficRoutedCanary
            # on abort): the stable grows for the weight coming back, the canary keeps the pods for the
            # weight it still carries; no surge of a fully scaled stable at once.
            weight = abort_step_weight(ctx)
            target_new = with_min_pods(max(share(weight, n, top), share(applied, n, top)),
                                       canary.min_pods_per_replica_set, n)
            target_stable = with_min_pods(max(share(top - weight, n, top), share(top - applied, n, top)),
                                          canary.min_pods_per_replica_set, n)
        if not dynamic or explicit_delay:
            delay = canary.abort_scale_down_delay_seconds
            if delay is None:
                delay = DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS
            if not dynamic:
                target_new = current
            if delay > 0 and current > 0:
                # The deadline is set once the stable can serve everything (Argo's reconcileNewReplicaSet);
                # the canary keeps its pods until then.
                ready = stable.available >= n
                target_new = 0 if abort_delay_elapsed(ctx, new_rs, delay, start=ready) else current
    else:
        ctx.set_deadline(new_rs, None)
        weight = top if ctx.promote_full else set_weight_at(ctx.steps, ctx.index, top)
        scale = canary_scale_at(ctx.steps, ctx.index) if ctx.index < len(ctx.steps) else None
        if scale is not None and not ctx.promote_full:
            # Argo's trafficWeightToReplicas: the weight is out of maxTrafficWeight.
            target_new = scale.replicas if scale.replicas is not None else share(scale.weight or 0, n, top)
        else:
            target_new = share(weight, n, top)
        target_stable = n
        if dynamic:
            target_stable = max(share(top - weight, n, top), share(top - applied, n, top))
        target_new = with_min_pods(target_new, canary.min_pods_per_replica_set, n)
        target_stable = with_min_pods(target_stable, canary.min_pods_per_replica_set, n)
    ctx.target_new, ctx.target_stable = target_new, target_stable
    if target_stable >= ctx.desired.get(stable.name, 0):
        ctx.scale(stable, target_stable)
        ctx.scale(new_rs, target_new)
    else:
        ctx.scale(new_rs, target_new)
        ctx.scale(stable, target_stable)
    retire_others(ctx, _scale_down_delay(ctx))


def abort_delay_elapsed(ctx: Context, rs: ReplicaSetObservation, delay: int, *, start: bool = True) -> bool:
    """Whether the aborted update's ReplicaSet may scale down: its deadline (now + `delay`) is set on
    the first pass where `start` holds; until it passes the answer is False and the pass requeues for it."""
    deadline = ctx.deadline(rs)
    if deadline is None:
        if not start:
            return False
        deadline = ctx.now + timedelta(seconds=delay)
        ctx.set_deadline(rs, deadline)
    if deadline <= ctx.now:
        return True
    ctx.requeue_at(deadline)
    return False


def abort_step_weight(ctx: Context) -> int:
    """Argo's GetDesiredCanaryWeight on a dynamicStableScale abort: the highest setWeight whose pod count
    is below what the canary still runs (the pods the stable does not yet cover), 0 when none is."""
    new_rs, stable, canary = ctx.new_rs, ctx.stable_rs, ctx.canary
    assert new_rs is not None and stable is not None and canary is not None
    n, top = ctx.replicas, ctx.max_weight
    expected = n - stable.available
    running = expected if canary.abort_scale_down_delay_seconds else max(expected, new_rs.available)
    for step in reversed(ctx.steps):
        if step.set_weight is not None and share(step.set_weight, n, top) < running:
            return step.set_weight
    return 0


def abort_weight(ctx: Context) -> int:
    """Argo's calculateDesiredWeightOnAbortOrStableRollback for dynamicStableScale: the weight steps down
    only as far as the available stable pods can take, and never goes back up."""
    stable = ctx.stable_rs
    assert stable is not None
    n, top, current = ctx.replicas, ctx.max_weight, ctx.observed.canary_weight
    if n <= 0:
        return 0
    desired = abort_step_weight(ctx)
    stable_share = top * min(stable.available, n) // n
    expected = max(0, top - stable_share)
    if desired <= 0:
        return min(expected, current)
    if stable_share < top - desired:
        return current
    return min(desired, current)


def _scale_down_delay(ctx: Context) -> int:
    delay = ctx.canary.scale_down_delay_seconds if ctx.canary is not None else None
    return DEFAULT_SCALE_DOWN_DELAY_SECONDS if delay is None else delay


def retire_others(ctx: Context, delay: int) -> None:
    """Scale down ReplicaSets that are neither new nor stable: at once when no Service sends them
    traffic, otherwise after `delay` seconds (scaleDownDelaySeconds), keeping at most
    scaleDownDelayRevisionLimit of them waiting."""
    strategy = ctx.canary if ctx.canary is not None else ctx.blue_green
    limit = strategy.scale_down_delay_revision_limit if strategy is not None else None
    selected = set(ctx.observed.service_selectors.values())
    waiting: list[ReplicaSetObservation] = []
    for rs in ctx.others_by_age():
        if ctx.desired.get(rs.name, 0) == 0:
            continue
        deadline = ctx.deadline(rs)
        if deadline is None:
            if delay > 0 and rs.pod_hash in selected:
                ctx.set_deadline(rs, ctx.after(delay))
                ctx.requeue_in(delay)
                waiting.append(rs)
            else:
                ctx.scale(rs, 0)
        elif deadline <= ctx.now:
            ctx.scale(rs, 0)
        else:
            ctx.requeue_at(deadline)
            waiting.append(rs)
    if limit is not None:
        for rs in waiting[: max(len(waiting) - limit, 0)]:
            ctx.scale(rs, 0)


# --- services and traffic --------------------------------------------------------------------------


def reconcile_canary_services(ctx: Context) -> None:
    canary, new_rs, stable = ctx.canary, ctx.new_rs, ctx.stable_rs
    assert canary is not None and new_rs is not None and stable is not None
    canary_hash = stable.pod_hash if ctx.aborted or ctx.fully_promoted else new_rs.pod_hash
    ctx.point_service(canary.stable_service, stable.pod_hash)
    ctx.point_service(canary.canary_service, canary_hash)


def at_desired_counts(ctx: Context, *, exact_stable: bool = True) -> bool:
    """Argo's AtDesiredReplicaCountsForCanary: the canary runs what the step needs with those pods
    available; the stable has its desired pods created (not necessarily available); a basic canary's
    older ReplicaSets have no available pods left. A dynamically scaled stable is not checked (it only
    shrinks after the weight moved); `exact_stable=False` skips the stable check likewise."""
    new_rs, stable = ctx.new_rs, ctx.stable_rs
    assert new_rs is not None
    want_new, want_stable = ctx.target_new, ctx.target_stable
    if not (
        new_rs.replicas == want_new
        and ctx.desired.get(new_rs.name, 0) == want_new
        and new_rs.available >= want_new
    ):
        return False
    dynamic = ctx.traffic_routed and ctx.canary is not None and bool(ctx.canary.dynamic_stable_scale)
    if exact_stable and not dynamic and stable is not None and stable is not new_rs:
        created = stable.created
        if created is None:
            created = sum(1 for pod in ctx.observed.pods if pod.pod_hash == stable.pod_hash)
        if not (stable.replicas == want_stable and ctx.desired.get(stable.name, 0) == want_stable
                and created == want_stable):
            return False
    if not ctx.traffic_routed:
        return all(rs.available == 0 and ctx.desired.get(rs.name, 0) == 0 for rs in ctx.others)
    return True


def desired_weight(ctx: Context) -> int:
    """The canary weight to apply now: the step's weight once the canary is ready for it (the previous
    step's weight until then), never more than the canary's available pods can take."""
    new_rs, stable = ctx.new_rs, ctx.stable_rs
    assert new_rs is not None
    top, n = ctx.max_weight, ctx.replicas
    if ctx.fully_promoted or n <= 0 or stable is None:
        return 0
    if ctx.aborted:
        if ctx.canary is not None and ctx.canary.dynamic_stable_scale:
            return abort_weight(ctx)
        return 0
    if new_rs.available <= 0:
        return 0
    if ctx.promote_full:
        # Argo's PromoteFull branch: a dynamically scaled stable hands over the weight as canary pods
        # become available; otherwise the current weight holds until the stable switches to the canary.
        if ctx.canary is not None and ctx.canary.dynamic_stable_scale:
            return min(top, new_rs.available * top // n)
        return ctx.observed.canary_weight
    weight = set_weight_at(ctx.steps, ctx.index, top)
    if not at_desired_counts(ctx, exact_stable=False):
        # Lowering is always safe; raising waits until the canary has the pods for it.
        weight = min(weight, previous_set_weight(ctx.steps, ctx.index))
    return max(0, min(weight, top))


def reconcile_traffic(ctx: Context) -> None:
    canary, new_rs, stable = ctx.canary, ctx.new_rs, ctx.stable_rs
    assert canary is not None and new_rs is not None and stable is not None
    if not ctx.traffic_routed:
        return
    weight = desired_weight(ctx)
    applied = ctx.observed.canary_weight
    if weight != applied and not stable_can_take(ctx, ctx.max_weight - weight):
        # Argo's checkReplicasAvailable: the weight moves only when the stable has the pods for its share.
        weight = applied
    if weight != applied:
        ctx.act(SetCanaryWeight(weight=weight))
        ctx.status_event(c.TRAFFIC_WEIGHT_UPDATED, f"Traffic weight updated from {applied} to {weight}")
    canary_hash = stable.pod_hash if ctx.aborted or ctx.fully_promoted else new_rs.pod_hash
    if not _same_weights(ctx.weights, weight, canary_hash, stable.pod_hash, ctx.max_weight):
        ctx.weights = _weights(ctx, weight, canary_hash, stable.pod_hash)
    routes = {} if ctx.aborted or ctx.fully_promoted else header_routes_at(ctx.steps, ctx.index)
    observed = ctx.observed.header_routes
    for name, match in routes.items():
        if tuple(observed.get(name, ())) != match:
            ctx.act(SetHeaderRoute(name=name, match=match))
    for name in observed:
        if name not in routes:
            ctx.act(RemoveHeaderRoute(name=name))


def stable_can_take(ctx: Context, weight: int) -> bool:
    """Whether the stable ReplicaSet has the available pods for `weight` of the traffic (rounded down,
    or replicaProgressThreshold of them)."""
    stable = ctx.stable_rs
    if stable is None or ctx.replicas <= 0:
        return False
    needed = weight * ctx.replicas // ctx.max_weight
    if stable.available >= needed:
        return True
    threshold = ctx.canary.replica_progress_threshold if ctx.canary is not None else None
    if threshold is None or needed <= 0:
        return False
    if threshold.type == "Pods":
        return stable.available >= min(threshold.value, needed)
    return stable.available >= -(-threshold.value * needed // 100)


def _same_weights(
    current: TrafficWeights | None, weight: int, canary_hash: str, stable_hash: str, top: int
) -> bool:
    return (
        current is not None
        and current.canary.weight == weight
        and current.canary.pod_template_hash == canary_hash
        and current.stable.weight == top - weight
        and current.stable.pod_template_hash == stable_hash
        and current.additional is None
        and current.verified is None
    )


def _weights(ctx: Context, weight: int, canary_hash: str, stable_hash: str) -> TrafficWeights:
    canary = ctx.canary
    assert canary is not None
    return TrafficWeights(
        canary=WeightDestination(
            weight=weight, service_name=canary.canary_service or "", pod_template_hash=canary_hash
        ),
        stable=WeightDestination(
            weight=ctx.max_weight - weight,
            service_name=canary.stable_service or "",
            pod_template_hash=stable_hash,
        ),
    )


# --- steps -----------------------------------------------------------------------------------------


def reconcile_steps(ctx: Context) -> None:
    """Complete the current step when its condition holds and move to the next one."""
    if ctx.fully_promoted or ctx.aborted or ctx.index >= len(ctx.steps):
        return
    if ctx.rollout.spec.paused and not ctx.promote_full:
        return
    step = ctx.steps[ctx.index]
    if step.pause is not None:
        _reconcile_pause_step(ctx, step)
        return
    if holding_pauses(ctx):
        return
    done = False
    if step.set_weight is not None or step.set_canary_scale is not None:
        done = at_desired_counts(ctx)
        if done and ctx.traffic_routed:
            done = ctx.observed.canary_weight == desired_weight(ctx)
    elif step.analysis is not None:
        done = ctx.step_run is not None and ctx.step_run.status == "Successful"
    elif step.set_header_route is not None or step.set_mirror_route is not None:
        done = True
    if done:
        complete_step(ctx, step)


def _reconcile_pause_step(ctx: Context, step: CanaryStep) -> None:
    assert step.pause is not None
    cond = ctx.pause_condition(c.PAUSE_CANARY_STEP)
    seconds = pause_seconds(step.pause)
    if cond is None:
        if ctx.resumed:
            # Argo announces the pause step that promote released like any completed step.
            complete_step(ctx, step)
        elif seconds == 0:
            complete_step(ctx, step)
        elif not ctx.pause_conditions:
            ctx.add_pause(c.PAUSE_CANARY_STEP)
            if seconds is not None:
                ctx.requeue_in(seconds)
        return
    if seconds is None:
        return
    expires = cond.start_time + timedelta(seconds=seconds)
    if expires <= ctx.now:
        ctx.remove_pause(c.PAUSE_CANARY_STEP)
        complete_step(ctx, step)
    else:
        ctx.requeue_at(expires)


def holding_pauses(ctx: Context) -> list[PauseCondition]:
    """The pause conditions that hold the current step. A CanaryPauseStep condition left from a pause
    step that `promote --skip-current-step` skipped does not hold a later non-pause step: as in Argo it is
    removed when that step completes (and it does not keep that step's analysis from starting)."""
    step = current_step(ctx.steps, ctx.index)
    stale = step is None or step.pause is None
    return [p for p in ctx.pause_conditions if not (stale and p.reason == c.PAUSE_CANARY_STEP)]


def complete_step(ctx: Context, step: CanaryStep, *, announce: bool = True) -> None:
    if ctx.pause_condition(c.PAUSE_CANARY_STEP) is not None:
        ctx.remove_pause(c.PAUSE_CANARY_STEP)
    index = ctx.index
    ctx.current_step_index = index + 1
    ctx.step_changed = True
    ctx.step_run = None
    if announce:
        ctx.status_event(
            c.ROLLOUT_STEP_COMPLETED,
            f"Rollout step {index + 1}/{len(ctx.steps)} completed ({describe_step(step)})",
        )
    ctx.requeue_in(0)
