"""Where a `since: release` sequential test started, read back from Kubernetes objects so the test survives
a controller restart.

Every measurement of `rollouts/sequential` records its test's start in its metadata (`start`, Unix
seconds, and `since`), which the controller stores in the AnalysisRun's status. The start of a release's
test is the earliest `start` with `since: release` among the measurements of the AnalysisRuns that belong
to the same rollout (ownerReference) and revision (`rollouts-pod-template-hash` label), the current run
included: the first step gate's run fixes it, and every later gate (and a restarted controller) finds it
there and recomputes the counts from it. Runs that ended Failed, Error or Inconclusive end a release
attempt: only runs started after the last such run count (a retried rollout starts a new test).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rollouts.analysis.providers.base import MeasureContext

log = logging.getLogger(__name__)

POD_HASH_LABEL = "rollouts-pod-template-hash"
_ENDED_ATTEMPT = frozenset({"Failed", "Error", "Inconclusive"})

ListRuns = Callable[[str], Iterable[Mapping[str, Any]]]
StoredStart = Callable[[MeasureContext], "float | None"]


def store_release_start(list_objects: Callable[..., Iterable[Mapping[str, Any]]]) -> StoredStart:
    """A lookup over a store's `list(kind, namespace)` (e.g. `store.list`)."""

    def lookup(ctx: MeasureContext) -> float | None:
        try:
            runs = list(list_objects("AnalysisRun", ctx.namespace))
        except Exception as exc:  # noqa: BLE001 - a store problem must not fail the measurement
            log.debug("run %s/%s: AnalysisRuns not readable: %s", ctx.namespace, ctx.run_name, exc)
            return None
        return release_start_of(runs, ctx)

    return lookup


def release_start_of(runs: Iterable[Mapping[str, Any]], ctx: MeasureContext) -> float | None:
    """The stored start of the release test `ctx`'s run belongs to, or None when none is recorded."""
    revision = ctx.labels.get(POD_HASH_LABEL)
    siblings = [run for run in runs if _same_release(run, ctx, revision)]
    siblings.sort(key=_started)
    attempt_start = ""
    for run in siblings:
        if _name(run) != ctx.run_name and _map(run.get("status")).get("phase") in _ENDED_ATTEMPT:
            attempt_start = _started(run) + "\x7f"  # strictly later runs only
    starts = [start for run in siblings if _started(run) >= attempt_start or _name(run) == ctx.run_name
              for start in _recorded_starts(run, ctx.metric_name)]
    return min(starts) if starts else None


def _same_release(run: Mapping[str, Any], ctx: MeasureContext, revision: str | None) -> bool:
    if _name(run) == ctx.run_name:
        return True
    if not ctx.owner or not revision:
        return False  # a standalone run, or no revision to match: only the run itself
    meta = _map(run.get("metadata"))
    owners = {str(_map(ref).get("name")) for ref in meta.get("ownerReferences") or []
              if _map(ref).get("kind") == "Rollout"}
    return ctx.owner in owners and _map(meta.get("labels")).get(POD_HASH_LABEL) == revision


def _recorded_starts(run: Mapping[str, Any], metric_name: str) -> list[float]:
    starts = []
    for result in _map(run.get("status")).get("metricResults") or []:
        if _map(result).get("name") != metric_name:
            continue
        for measurement in _map(result).get("measurements") or []:
            metadata = _map(_map(measurement).get("metadata"))
            if metadata.get("since") != "release":
                continue
            try:
                start = float(metadata.get("start", "nan"))
            except (TypeError, ValueError):
                continue
            if math.isfinite(start):
                starts.append(start)
    return starts


def _started(run: Mapping[str, Any]) -> str:
    # RFC 3339 UTC timestamps sort as strings; a run not started yet sorts last.
    return str(_map(run.get("status")).get("startedAt") or "~")


def _name(run: Mapping[str, Any]) -> str:
    return str(_map(run.get("metadata")).get("name") or "")


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
