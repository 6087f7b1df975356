"""The rollout's side of analysis: naming and creating runs, reading their phase back into the status,
terminating runs that no longer apply, and garbage-collecting old runs (5 successful / 5 unsuccessful).

Which run kinds exist and what their outcomes do is decided by the strategy modules; this module only
provides the mechanics shared by canary and blue/green.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rollouts.analysis.runs import build_analysis_run
from rollouts.engine.context import Context
from rollouts.engine.hashing import POD_TEMPLATE_HASH_LABEL
from rollouts.engine.types import CreateAnalysisRun, DeleteAnalysisRun, EventType, TerminateAnalysisRun
from rollouts.spec.analysis import AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate
from rollouts.spec.rollout import (
    DEFAULT_ANALYSIS_RUN_HISTORY,
    AnalysisTemplateRef,
    RolloutAnalysis,
    RolloutAnalysisRunStatus,
)

PAUSE_INCONCLUSIVE = "InconclusiveAnalysisRun"
ROLLOUT_TYPE_LABEL = "rollout-type"
STEP_INDEX_LABEL = "step-index"

STEP = "Step"
BACKGROUND = "Background"
PRE_PROMOTION = "PrePromotion"
POST_PROMOTION = "PostPromotion"

COMPLETED = frozenset({"Successful", "Failed", "Error", "Inconclusive"})
UNSUCCESSFUL = frozenset({"Failed", "Error", "Inconclusive"})

# How abort causes name each kind of run.
ABORT_CAUSE_PREFIX = {
    STEP: "Step-based",
    BACKGROUND: "Background",
    PRE_PROMOTION: "Blue/green pre-promotion",
    POST_PROMOTION: "Blue/green post-promotion",
}


class MissingTemplate(LookupError):
    """An analysis reference naming a template that does not exist."""


def phase_of(run: AnalysisRun | None) -> str:
    if run is None or run.status is None:
        return ""
    return run.status.phase


def resolve_templates(
    refs: Sequence[AnalysisTemplateRef],
    namespaced: Mapping[str, AnalysisTemplate],
    cluster: Mapping[str, ClusterAnalysisTemplate],
) -> list[AnalysisTemplate | ClusterAnalysisTemplate]:
    """The templates a reference list names, with the templates they include, each once."""
    out: list[AnalysisTemplate | ClusterAnalysisTemplate] = []
    seen: set[tuple[bool, str]] = set()
    queue: list[tuple[bool, str]] = [(bool(r.cluster_scope), r.template_name) for r in refs]
    while queue:
        is_cluster, name = queue.pop(0)
        if (is_cluster, name) in seen:
            continue
        seen.add((is_cluster, name))
        found: AnalysisTemplate | ClusterAnalysisTemplate | None = (
            cluster.get(name) if is_cluster else namespaced.get(name)
        )
        if found is None:
            kind = "ClusterAnalysisTemplate" if is_cluster else "AnalysisTemplate"
            raise MissingTemplate(f'{kind} "{name}" not found')
        out.append(found)
        for nested in found.spec.templates or ():
            queue.append((bool(nested.cluster_scope), nested.template_name))
    return out


@dataclass(frozen=True)
class RunRef:
    """Where a run kind's status lives and how it is named."""

    kind: str
    suffix: str
    step_index: int | None = None


def _started_before(ctx: Context, existing: AnalysisRun | None, run: AnalysisRun) -> bool:
    """Whether `existing`, holding the name `run` would take, is that same run started by an earlier pass
    whose status never said so (its status write refused as stale, or unanswered): this rollout's, not
    finished, not being terminated, same labels and spec. Argo's collision check on create does the same."""
    if existing is None or phase_of(existing) in COMPLETED or existing.spec.terminate:
        return False
    uid = ctx.rollout.metadata.uid or ""
    if not any(o.uid == uid and o.controller for o in existing.metadata.owner_references or ()):
        return False
    if any(existing.metadata.labels.get(k) != v for k, v in run.metadata.labels.items()):
        return False
    return existing.spec.to_dict() == run.spec.to_dict()


def create_run(ctx: Context, analysis: RolloutAnalysis, ref: RunRef) -> RolloutAnalysisRunStatus:
    """Start a run for `analysis`; returns the status entry that now tracks it. Named after the revision and
    the run's kind, with a collision counter after a name already taken (an earlier run of the same step)."""
    assert ctx.new_rs is not None
    templates = resolve_templates(
        analysis.templates, ctx.observed.analysis_templates, ctx.observed.cluster_analysis_templates
    )
    labels = {ROLLOUT_TYPE_LABEL: ref.kind, POD_TEMPLATE_HASH_LABEL: ctx.pod_hash}
    if ref.step_index is not None:
        labels[STEP_INDEX_LABEL] = str(ref.step_index)
    stable = ctx.stable_rs.pod_hash if ctx.stable_rs is not None else None

    def build(name: str) -> AnalysisRun:
        return build_analysis_run(
            rollout=ctx.rollout,
            name=name,
            templates=templates,
            analysis=analysis,
            stable_hash=stable,
            latest_hash=ctx.pod_hash,
            labels=labels,
            now=ctx.now,
        )

    base = f"{ctx.name}-{ctx.pod_hash}-{ctx.revision}{ref.suffix}"
    observed = ctx.runs_by_name()
    name, n = base, 0
    while name in ctx.run_names:
        if _started_before(ctx, observed.get(name), build(name)):
            ctx.requeue_in(0)
            return RolloutAnalysisRunStatus(name=name, status="", message="")  # its phase is read next pass
        n += 1
        name = f"{base}.{n}"
    run = build(name)
    ctx.run_names.add(name)
    ctx.act(CreateAnalysisRun(run=run))
    ctx.requeue_in(0)
    # The phase is read back from the observed run; "" until then (an Error run shows up next pass).
    return RolloutAnalysisRunStatus(name=name, status="", message="")


def terminate(ctx: Context, run: AnalysisRun | None) -> None:
    if run is None or phase_of(run) in COMPLETED or run.spec.terminate:
        return
    name = run.metadata.name or ""
    if name in ctx.terminated:
        return
    ctx.terminated.add(name)
    ctx.act(TerminateAnalysisRun(name=name))


def terminate_orphans(ctx: Context, keep: set[str]) -> None:
    """Terminate every unfinished run the status no longer tracks, as Argo cancels its `otherArs`: a
    spec change that removed or bypassed a step (or the background analysis) leaves its run behind."""
    for run in ctx.observed.analysis_runs:
        if (run.metadata.name or "") not in keep:
            terminate(ctx, run)


def track(
    ctx: Context, ref: RunRef, status: RolloutAnalysisRunStatus | None, run: AnalysisRun
) -> RolloutAnalysisRunStatus:
    """The status entry for an observed run, with an `AnalysisRun<Phase>` event when its phase moved."""
    phase = phase_of(run)
    message = (run.status.message if run.status is not None else None) or ""
    previous = status.status if status is not None else ""
    if phase and phase != previous:
        etype: EventType = "Warning" if phase in ("Failed", "Error") else "Normal"
        ctx.status_event(
            f"AnalysisRun{phase}",
            f"{ref.kind} Analysis Run '{run.metadata.name}' Status New: '{phase}' Previous: '{previous}'",
            etype,
        )
    if (
        status is not None
        and status.name == run.metadata.name
        and status.status == phase
        and status.message == message
    ):
        return status
    return RolloutAnalysisRunStatus(name=run.metadata.name or "", status=phase, message=message)


def consume_run(
    ctx: Context, ref: RunRef, attr: str, run: AnalysisRun, analysis: RolloutAnalysis
) -> None:
    """Read a tracked run's phase into the status: Failed/Error abort the update, Inconclusive pauses
    it, and once the operator has resumed from that pause a new run replaces the inconclusive one."""
    before = getattr(ctx, attr)
    previous = before.status if before is not None else ""
    status = track(ctx, ref, before, run)
    setattr(ctx, attr, status)
    phase = status.status
    if phase in ("Failed", "Error"):
        ctx.start_abort(abort_cause(ref.kind, run))
    elif phase == "Inconclusive":
        if previous != "Inconclusive":
            ctx.add_pause(PAUSE_INCONCLUSIVE)
        elif ctx.pause_condition(PAUSE_INCONCLUSIVE) is None and not ctx.paused:
            setattr(ctx, attr, create_run(ctx, analysis, ref))


def abort_cause(kind: str, run: AnalysisRun) -> str:
    message = (run.status.message if run.status is not None else None) or ""
    cause = f"{ABORT_CAUSE_PREFIX[kind]} analysis phase error/failed"
    return f"{cause}: {message}" if message else cause


def collect_garbage(ctx: Context, keep: set[str]) -> None:
    """Delete completed runs beyond the history limits (newest kept); runs still referenced stay."""
    limits = ctx.rollout.spec.analysis
    keep_ok = DEFAULT_ANALYSIS_RUN_HISTORY
    keep_bad = DEFAULT_ANALYSIS_RUN_HISTORY
    if limits is not None:
        if limits.successful_run_history_limit is not None:
            keep_ok = limits.successful_run_history_limit
        if limits.unsuccessful_run_history_limit is not None:
            keep_bad = limits.unsuccessful_run_history_limit
    runs = ctx.observed.analysis_runs
    if len(runs) <= min(keep_ok, keep_bad):
        return
    good: list[AnalysisRun] = []
    bad: list[AnalysisRun] = []
    for run in runs:
        name = run.metadata.name or ""
        phase = phase_of(run)
        if name in keep or phase not in COMPLETED:
            continue
        (bad if phase in UNSUCCESSFUL else good).append(run)
    for group, limit in ((good, keep_ok), (bad, keep_bad)):
        if len(group) <= limit:
            continue
        group.sort(key=_age_key, reverse=True)
        for run in group[limit:]:
            ctx.act(DeleteAnalysisRun(name=run.metadata.name or ""))


def _age_key(run: AnalysisRun) -> tuple[float, str]:
    created = run.metadata.creation_timestamp
    return (created.timestamp() if created is not None else 0.0, run.metadata.name or "")
