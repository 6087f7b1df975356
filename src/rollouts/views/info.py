"""Builds the view model from store objects: a Rollout with its ReplicaSets, Pods, AnalysisRuns and Events.

The store is read once per kind (one namespace, or all) so listing many rollouts stays cheap. Ages are
computed from the `now` given, never from the clock here."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rollouts.store.protocol import NotFound, ObjectStore
from rollouts.views import glyphs
from rollouts.views.ages import age, human_duration, parse_time
from rollouts.views.model import (
    AnalysisRunInfo,
    EventInfo,
    ImageInfo,
    MeasurementInfo,
    MetricInfo,
    PodInfo,
    ReplicaSetInfo,
    RevisionInfo,
    RolloutInfo,
    StepInfo,
)

POD_HASH_LABEL = "rollouts-pod-template-hash"
REVISION_ANNOTATION = "rollout.argoproj.io/revision"
SCALE_DOWN_DEADLINE_ANNOTATION = "scale-down-deadline"
PORT_ANNOTATION = "rollouts.io/port"
ROLLOUT_TYPE_LABEL = "rollout-type"

Obj = dict[str, Any]


class RolloutNotFound(LookupError):
    def __init__(self, namespace: str, name: str) -> None:
        self.namespace, self.name = namespace, name
        super().__init__(f'rollouts.argoproj.io "{name}" not found in namespace "{namespace}"')


@dataclass
class _Snapshot:
    """The objects of one namespace (or all), grouped by owner for quick lookup."""

    rollouts: list[Obj]
    replica_sets: dict[tuple[str, str], list[Obj]] = field(default_factory=lambda: defaultdict(list))
    pods: dict[tuple[str, str], list[Obj]] = field(default_factory=lambda: defaultdict(list))
    runs: dict[tuple[str, str], list[Obj]] = field(default_factory=lambda: defaultdict(list))
    events: dict[tuple[str, str], list[Obj]] = field(default_factory=lambda: defaultdict(list))


def _meta(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _owner(obj: Obj, kind: str) -> str | None:
    for ref in _meta(obj).get("ownerReferences") or []:
        if ref.get("kind") == kind:
            return str(ref.get("name"))
    return None


def _snapshot(store: ObjectStore, namespace: str | None, rollouts: list[Obj], *, events: bool) -> _Snapshot:
    snap = _Snapshot(rollouts=rollouts)
    names = {(_meta(r).get("namespace") or "default", _meta(r).get("name", "")) for r in rollouts}
    ns_filter = namespace

    def ns_of(obj: Obj) -> str:
        return str(_meta(obj).get("namespace") or "default")

    for rs in store.list("ReplicaSet", ns_filter):
        owner = _owner(rs, "Rollout")
        if owner and (ns_of(rs), owner) in names:
            snap.replica_sets[(ns_of(rs), owner)].append(rs)
    for pod in store.list("Pod", ns_filter):
        owner = _owner(pod, "ReplicaSet")
        if owner:
            snap.pods[(ns_of(pod), owner)].append(pod)
    for run in store.list("AnalysisRun", ns_filter):
        owner = _owner(run, "Rollout")
        if owner and (ns_of(run), owner) in names:
            snap.runs[(ns_of(run), owner)].append(run)
    if events:
        for ns, name in names:
            for ev in store.list("Event", ns, field_selector=f"involvedObject.name={name}"):
                if (ev.get("involvedObject") or {}).get("kind") == "Rollout":
                    snap.events[(ns, name)].append(ev)
    return snap


def rollout_info(
    store: ObjectStore, namespace: str, name: str, now: datetime | None = None, *, events: bool = True
) -> RolloutInfo:
    """The view of one rollout; `RolloutNotFound` when there is none by that name."""
    try:
        obj = store.get("Rollout", namespace, name)
    except NotFound:
        raise RolloutNotFound(namespace, name) from None
    snap = _snapshot(store, namespace, [obj], events=events)
    return _build(obj, snap, now or datetime.now(UTC))


def list_rollout_infos(
    store: ObjectStore, namespace: str | None, now: datetime | None = None, *, events: bool = False
) -> list[RolloutInfo]:
    """Views of every rollout of a namespace (None: all namespaces), ordered by namespace and name."""
    rollouts = store.list("Rollout", namespace)
    snap = _snapshot(store, namespace, rollouts, events=events)
    moment = now or datetime.now(UTC)
    return [_build(obj, snap, moment) for obj in rollouts]


# ---- pieces ------------------------------------------------------------------------------------------


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _images(template: Obj) -> list[str]:
    spec = template.get("spec") or {}
    return [str(c.get("image", "")) for c in (spec.get("containers") or []) if c.get("image")]


def _pod_status(pod: Obj) -> str:
    if _meta(pod).get("deletionTimestamp"):
        return "Terminating"
    status = pod.get("status") or {}
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        for key in ("waiting", "terminated"):
            reason = (state.get(key) or {}).get("reason")
            if reason:
                return str(reason)
    return str(status.get("phase") or "Pending")


def pod_info(pod: Obj, now: datetime) -> PodInfo:
    status = pod.get("status") or {}
    containers = (pod.get("spec") or {}).get("containers") or []
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for cs in statuses if cs.get("ready"))
    restarts = sum(_int(cs.get("restartCount")) for cs in statuses)
    text = _pod_status(pod)
    port = (_meta(pod).get("annotations") or {}).get(PORT_ANNOTATION)
    created = _meta(pod).get("creationTimestamp")
    return PodInfo(
        name=str(_meta(pod).get("name", "")), status=text, icon=glyphs.pod_icon(text),
        ready=f"{ready}/{max(len(containers), len(statuses))}", restarts=restarts, age=age(created, now),
        created=created, port=_int(port) if port else None,
    )


def _replica_set_info(rs: Obj, pods: list[Obj], flags: dict[str, bool], now: datetime) -> ReplicaSetInfo:
    meta = _meta(rs)
    spec_replicas = _int((rs.get("spec") or {}).get("replicas"), 1)
    status = rs.get("status") or {}
    replicas = _int(status.get("replicas"))
    available = _int(status.get("availableReplicas"))
    pod_infos = tuple(sorted((pod_info(p, now) for p in pods), key=lambda p: p.name))
    if spec_replicas == 0 and not pod_infos:
        state = "ScaledDown"
    elif any(p.icon in (glyphs.BAD, glyphs.WARNING) for p in pod_infos) and available < spec_replicas:
        state = "Degraded"
    elif available < spec_replicas or replicas != spec_replicas:
        state = "Progressing"
    else:
        state = "Healthy"
    annotations = meta.get("annotations") or {}
    return ReplicaSetInfo(
        name=str(meta.get("name", "")), status=state, icon=glyphs.replica_set_icon(state),
        revision=_int(annotations.get(REVISION_ANNOTATION)),
        pod_hash=str((meta.get("labels") or {}).get(POD_HASH_LABEL, "")),
        replicas=replicas, available=available,
        scale_down_deadline=annotations.get(SCALE_DOWN_DEADLINE_ANNOTATION) or None,
        images=tuple(_images((rs.get("spec") or {}).get("template") or {})),
        age=age(meta.get("creationTimestamp"), now), created=meta.get("creationTimestamp"), pods=pod_infos,
        **flags,
    )


def _metric_info(result: Obj) -> MetricInfo:
    phase = str(result.get("phase") or "")
    return MetricInfo(
        name=str(result.get("name", "")), phase=phase, icon=glyphs.analysis_icon(phase),
        successful=_int(result.get("successful")), failed=_int(result.get("failed")),
        inconclusive=_int(result.get("inconclusive")), error=_int(result.get("error")),
        message=result.get("message"),
        measurements=tuple(
            MeasurementInfo(phase=str(m.get("phase", "")), value=m.get("value"), message=m.get("message"),
                            started_at=m.get("startedAt"), finished_at=m.get("finishedAt"))
            for m in result.get("measurements") or []
        ),
    )


def analysis_run_info(run: Obj, revision: int, now: datetime) -> AnalysisRunInfo:
    meta = _meta(run)
    status = run.get("status") or {}
    phase = str(status.get("phase") or "Pending")
    metrics = tuple(_metric_info(r) for r in status.get("metricResults") or [])
    return AnalysisRunInfo(
        name=str(meta.get("name", "")), phase=phase, icon=glyphs.analysis_icon(phase), revision=revision,
        kind=str((meta.get("labels") or {}).get(ROLLOUT_TYPE_LABEL, "")),
        successful=sum(m.successful for m in metrics), failed=sum(m.failed for m in metrics),
        inconclusive=sum(m.inconclusive for m in metrics), error=sum(m.error for m in metrics),
        message=status.get("message"), age=age(meta.get("creationTimestamp"), now),
        created=meta.get("creationTimestamp"), metrics=metrics,
    )


def _step_description(step: Obj) -> tuple[str, str]:
    if not step:
        return "unknown", "unknown"
    kind, value = next(iter(step.items()))
    if kind == "setWeight":
        return kind, f"setWeight: {value}"
    if kind == "pause":
        duration = (value or {}).get("duration") if isinstance(value, dict) else None
        return kind, f"pause: {duration}" if duration is not None else "pause"
    if kind == "analysis" and isinstance(value, dict):
        names = ",".join(str(t.get("templateName") or t.get("clusterTemplateName") or "?")
                         for t in value.get("templates") or [])
        return kind, f"analysis: {names}"
    if isinstance(value, dict) and "weight" in value:
        return kind, f"{kind}: {value['weight']}"
    return kind, kind


def _steps(steps: list[Obj], index: int | None, finished: bool) -> tuple[StepInfo, ...]:
    result = []
    for i, step in enumerate(steps):
        kind, text = _step_description(step)
        if index is None or i < index or finished:
            state = "done" if index is not None and (i < index or finished) else "pending"
        elif i == index:
            state = "current"
        else:
            state = "pending"
        result.append(StepInfo(index=i, kind=kind, description=text, state=state))
    return tuple(result)


def _set_weight(steps: list[Obj], index: int | None, aborted: bool) -> int:
    if aborted:
        return 0
    if index is None or index >= len(steps):
        return 100
    for i in range(index, -1, -1):
        if "setWeight" in steps[i]:
            return _int(steps[i]["setWeight"])
    return 0


def _event_info(ev: Obj, now: datetime) -> EventInfo:
    last = ev.get("lastTimestamp") or ev.get("firstTimestamp") or _meta(ev).get("creationTimestamp")
    return EventInfo(type=str(ev.get("type", "")), reason=str(ev.get("reason", "")),
                     message=str(ev.get("message", "")), count=_int(ev.get("count"), 1), age=age(last, now),
                     last_timestamp=last)


def _run_revision(run: Obj, by_hash: dict[str, int], rollout_name: str) -> int:
    meta = _meta(run)
    annotated = (meta.get("annotations") or {}).get(REVISION_ANNOTATION)
    if annotated:
        return _int(annotated)
    pod_hash = (meta.get("labels") or {}).get(POD_HASH_LABEL)
    if pod_hash in by_hash:
        return by_hash[str(pod_hash)]
    # <rollout>-<hash>-<revision>[-suffix]
    rest = str(meta.get("name", ""))[len(rollout_name) + 1:].split("-")
    return _int(rest[1]) if len(rest) > 1 else 0


def _build(obj: Obj, snap: _Snapshot, now: datetime) -> RolloutInfo:
    meta = _meta(obj)
    name, namespace = str(meta.get("name", "")), str(meta.get("namespace") or "default")
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    strategy_spec = spec.get("strategy") or {}
    blue_green = "blueGreen" in strategy_spec
    canary_spec = strategy_spec.get("canary") or {}
    steps: list[Obj] = list(canary_spec.get("steps") or []) if not blue_green else []
    stable_hash = status.get("stableRS")
    current_hash = status.get("currentPodHash")
    bg_status = status.get("blueGreen") or {}
    active_hash, preview_hash = bg_status.get("activeSelector"), bg_status.get("previewSelector")

    replica_sets = []
    for rs in snap.replica_sets.get((namespace, name), []):
        pod_hash = (_meta(rs).get("labels") or {}).get(POD_HASH_LABEL)
        stable = bool(pod_hash) and pod_hash == stable_hash
        flags = {
            "stable": stable,
            "canary": not blue_green and bool(pod_hash) and pod_hash == current_hash and not stable,
            "active": blue_green and bool(pod_hash) and pod_hash == active_hash,
            "preview": blue_green and bool(pod_hash) and pod_hash == preview_hash and pod_hash != active_hash,
        }
        pods = snap.pods.get((namespace, str(_meta(rs).get("name"))), [])
        replica_sets.append(_replica_set_info(rs, pods, flags, now))
    by_hash = {rs.pod_hash: rs.revision for rs in replica_sets}
    runs = [analysis_run_info(run, _run_revision(run, by_hash, name), now)
            for run in snap.runs.get((namespace, name), [])]

    revisions = []
    for number in sorted({rs.revision for rs in replica_sets} | {r.revision for r in runs}, reverse=True):
        revisions.append(RevisionInfo(
            revision=number,
            replica_sets=tuple(sorted((rs for rs in replica_sets if rs.revision == number), key=lambda r: r.name)),
            analysis_runs=tuple(sorted((r for r in runs if r.revision == number), key=lambda r: r.name)),
        ))

    tags: dict[str, set[str]] = {}
    for shown in sorted(replica_sets, key=lambda r: -r.revision):
        rs_tags = {t for t in ("stable", "canary", "active", "preview") if getattr(shown, t)}
        if rs_tags:
            for image in shown.images:
                tags.setdefault(image, set()).update(rs_tags)
    images = tuple(ImageInfo(image=image, tags=tuple(sorted(t))) for image, t in tags.items())
    if not images:
        template_images = _images(spec.get("template") or {})
        images = tuple(ImageInfo(image=image, tags=()) for image in template_images)

    phase = str(status.get("phase") or "Progressing")
    message = str(status.get("message") or "")
    if not status.get("phase"):
        message = message or "waiting for rollout spec update to be observed"
    index = status.get("currentStepIndex")
    index = _int(index) if index is not None else (0 if steps else None)
    aborted = bool(status.get("abort"))
    step = f"{index}/{len(steps)}" if steps and not blue_green else None
    set_weight: int | None = None
    actual_weight: int | None = None
    if not blue_green:
        set_weight = _set_weight(steps, index if steps else None, aborted)
        weights = (status.get("canary") or {}).get("weights") or {}
        if not aborted and (not steps or index is None or index >= len(steps)):
            actual_weight = 100  # no step left: the release is complete (Argo shows 100, whatever the RSs)
        elif weights.get("canary") is not None:
            actual_weight = _int((weights.get("canary") or {}).get("weight"))
        else:
            total = sum(rs.available for rs in replica_sets)
            current = sum(rs.available for rs in replica_sets if rs.pod_hash == current_hash)
            actual_weight = current * 100 // total if total else 0
    events = tuple(sorted((_event_info(ev, now) for ev in snap.events.get((namespace, name), [])),
                          key=lambda e: e.last_timestamp or ""))
    containers = tuple({"name": str(c.get("name", "")), "image": str(c.get("image", ""))}
                       for c in ((spec.get("template") or {}).get("spec") or {}).get("containers") or [])
    finished = bool(steps) and index is not None and index >= len(steps)
    return RolloutInfo(
        name=name, namespace=namespace, status=phase, icon=glyphs.rollout_icon(phase), message=message,
        strategy="BlueGreen" if blue_green else "Canary", step=step, set_weight=set_weight,
        actual_weight=actual_weight, desired=_int(spec.get("replicas"), 1), current=_int(status.get("replicas")),
        updated=_int(status.get("updatedReplicas")), ready=_int(status.get("readyReplicas")),
        available=_int(status.get("availableReplicas")), generation=meta.get("generation"),
        restarted_at=status.get("restartedAt"), age=age(meta.get("creationTimestamp"), now),
        created=meta.get("creationTimestamp"), images=images, containers=containers,
        revisions=tuple(revisions), steps=_steps(steps, index if steps else None, finished), events=events,
        labels=dict(meta.get("labels") or {}),
    )


def scale_down_info(deadline: str | None, now: datetime) -> str | None:
    """`delay:3h59m` until an old ReplicaSet's scale-down deadline, `delay:passed` after it."""
    when = parse_time(deadline)
    if when is None:
        return None
    remaining = (when - now).total_seconds()
    return f"delay:{human_duration(remaining)}" if remaining > 0 else "delay:passed"
