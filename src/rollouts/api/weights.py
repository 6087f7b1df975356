"""The traffic weight of the current release over time, read back from the stored events, so that a page
opened mid-release draws the weight from the release's start rather than from the moment it was opened.

The release starts at its latest `RolloutUpdated` event ("Rollout updated to revision N"); every
`TrafficWeightUpdated` event after it ("Traffic weight updated from A to B") is one step of the line. Events
are bounded per object by the store, so a very long release may lose its earliest steps: the line then starts
at the oldest one kept."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field

from rollouts.api.models import ApiModel

RELEASE_STARTED = "RolloutUpdated"
WEIGHT_UPDATED = "TrafficWeightUpdated"
_WEIGHT = re.compile(r"\bfrom (\d{1,3}) to (\d{1,3})\b")


class WeightPoint(ApiModel):
    time: str = Field(description="when the weight took effect (RFC 3339)")
    weight: int = Field(description="the canary's traffic weight from then on, in percent")


class WeightHistory(ApiModel):
    started_at: str | None = Field(None, description="when the current release started (None: no release seen)")
    points: list[WeightPoint]


def _order(event: Mapping[str, Any]) -> tuple[str, int]:
    meta = event.get("metadata") or {}
    version = str(meta.get("resourceVersion") or "0")
    stamp = event.get("firstTimestamp") or meta.get("creationTimestamp") or event.get("lastTimestamp") or ""
    return str(stamp), int(version) if version.isdigit() else 0


def weight_history(events: Sequence[Mapping[str, Any]]) -> WeightHistory:
    """From the rollout's events (any order): the release start and each weight step since then. The
    first point is the release start at the weight it started from."""
    ordered = sorted(events, key=_order)
    start = None
    for index, event in enumerate(ordered):
        if event.get("reason") == RELEASE_STARTED:
            start = index
    if start is None:
        return WeightHistory(started_at=None, points=[])
    # A repeated "Rollout updated" bumps the count of one event: the release began at its last time.
    begun = ordered[start]
    started_at = str(begun.get("lastTimestamp") or _order(begun)[0])
    points: list[WeightPoint] = []
    for event in ordered[start + 1:]:
        if event.get("reason") != WEIGHT_UPDATED:
            continue
        found = _WEIGHT.search(str(event.get("message") or ""))
        if found is None:
            continue
        before, after = (min(int(v), 100) for v in found.groups())
        if not points:
            points.append(WeightPoint(time=started_at, weight=before))
        points.append(WeightPoint(time=_order(event)[0], weight=after))
    return WeightHistory(started_at=started_at, points=points)
