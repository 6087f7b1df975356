"""Release metrics per rollout from its remembered revisions and events, in the DORA sense: deployment
frequency, lead time (new revision to completed), change failure rate (aborted releases over all releases)
and time to restore (abort to the next completed release).

Pure: the caller reads the store and passes `now`; nothing here reads a clock or does I/O."""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

_REVISION = re.compile(r"\brevision (\d+)\b")
_WINDOW = re.compile(r"(\d+)([wdhms])")
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
SPARK = "▁▂▃▄▅▆▇█"


class RevisionRecord(Protocol):
    """What the report needs of a stored revision (store.protocol.Revision has it)."""

    @property
    def revision(self) -> int: ...

    @property
    def created_at(self) -> str: ...

    @property
    def outcome(self) -> str: ...

    @property
    def updated_at(self) -> str: ...


@dataclass(frozen=True)
class Release:
    revision: int
    started: datetime
    completed: datetime | None
    aborted: datetime | None

    @property
    def lead_time(self) -> float | None:
        return (self.completed - self.started).total_seconds() if self.completed else None


@dataclass(frozen=True)
class Summary:
    median: float | None
    mean: float | None

    @staticmethod
    def of(values: Sequence[float]) -> Summary:
        if not values:
            return Summary(None, None)
        return Summary(statistics.median(values), statistics.fmean(values))


@dataclass(frozen=True)
class ReleaseReport:
    namespace: str
    rollout: str
    service: str
    releases: int
    completed: int
    aborted: int
    deployment_frequency: float  # releases per day
    lead_time: Summary  # seconds
    change_failure_rate: float | None
    time_to_restore: Summary  # seconds
    unrestored: int  # aborts not followed by a completed release yet
    daily: tuple[int, ...]  # releases started per day, oldest first

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace, "rollout": self.rollout, "service": self.service,
            "releases": self.releases, "completed": self.completed, "aborted": self.aborted,
            "deploymentFrequencyPerDay": self.deployment_frequency,
            "leadTimeSeconds": {"median": self.lead_time.median, "mean": self.lead_time.mean},
            "changeFailureRate": self.change_failure_rate,
            "timeToRestoreSeconds": {"median": self.time_to_restore.median, "mean": self.time_to_restore.mean},
            "unrestored": self.unrestored,
            "daily": list(self.daily),
        }


def parse_window(text: str) -> timedelta:
    """`30d`, `2w`, `12h`, `1d12h`: the report's look-back window."""
    parts = _WINDOW.findall(text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise ValueError(f"--since: {text!r} is not a window (use a form like 30d, 2w, 12h or 1d12h)")
    seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"--since: {text!r} must be longer than zero")
    return timedelta(seconds=seconds)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _occurrences(event: Mapping[str, Any]) -> list[datetime]:
    """When an event happened; an aggregated event (count > 1) happened first and last at least."""
    first = event.get("firstTimestamp") or (event.get("metadata") or {}).get("creationTimestamp")
    if not first:
        return []
    times = [parse_time(first)]
    last = event.get("lastTimestamp")
    if int(event.get("count") or 1) > 1 and last and last != first:
        times.append(parse_time(last))
    return times


def _revision_events(events: Iterable[Mapping[str, Any]], reason: str) -> list[tuple[datetime, int | None]]:
    found = []
    for event in events:
        if event.get("reason") != reason:
            continue
        match = _REVISION.search(str(event.get("message") or ""))
        for when in _occurrences(event):
            found.append((when, int(match.group(1)) if match else None))
    return sorted(found, key=lambda item: item[0])


def build_releases(revisions: Sequence[RevisionRecord], events: Iterable[Mapping[str, Any]]) -> list[Release]:
    """Each revision with when it completed and when it was aborted (first time each), from the events,
    or from the revision's recorded outcome when the events were pruned."""
    events = list(events)
    completions = _revision_events(events, "RolloutCompleted")
    aborts = _revision_events(events, "RolloutAborted")
    releases = []
    for rev in sorted(revisions, key=lambda r: r.revision):
        started = parse_time(rev.created_at)
        completed = next((t for t, n in completions if n == rev.revision and t >= started), None)
        aborted = next((t for t, n in aborts if n == rev.revision and t >= started), None)
        if completed is None and rev.outcome == "promoted":
            completed = parse_time(rev.updated_at)
        if aborted is None and rev.outcome == "aborted":
            aborted = parse_time(rev.updated_at)
        releases.append(Release(rev.revision, started, completed, aborted))
    return releases


def assess_releases(
    namespace: str,
    rollout: str,
    releases: Sequence[Release],
    *,
    since: timedelta,
    now: datetime,
    service: str = "",
) -> ReleaseReport:
    start = now - since
    window = [r for r in releases if start <= r.started <= now]
    completed = [r for r in window if r.completed is not None]
    aborted = [r for r in window if r.aborted is not None]
    lead_times = [r.lead_time for r in completed if r.lead_time is not None]
    # Restored when any release completes after the abort: a retry, a fix or an undo.
    completions = sorted(r.completed for r in releases if r.completed is not None)
    restores, unrestored = [], 0
    for release in aborted:
        assert release.aborted is not None
        after = next((t for t in completions if t >= release.aborted), None)
        if after is None:
            unrestored += 1
        else:
            restores.append((after - release.aborted).total_seconds())
    days = max(since.total_seconds() / 86400, 1e-9)
    buckets = max(1, min(int(-(-since.total_seconds() // 86400)), 60))
    daily = [0] * buckets
    for release in window:
        age_days = int((now - release.started).total_seconds() // 86400)
        if age_days < buckets:
            daily[buckets - 1 - age_days] += 1
    return ReleaseReport(
        namespace=namespace,
        rollout=rollout,
        service=service,
        releases=len(window),
        completed=len(completed),
        aborted=len(aborted),
        deployment_frequency=len(window) / days,
        lead_time=Summary.of(lead_times),
        change_failure_rate=len(aborted) / len(window) if window else None,
        time_to_restore=Summary.of(restores),
        unrestored=unrestored,
        daily=tuple(daily),
    )


def sparkline(values: Sequence[int]) -> str:
    top = max(values, default=0)
    if top <= 0:
        return SPARK[0] * len(values)
    steps = len(SPARK) - 1
    return "".join(SPARK[0] if v <= 0 else SPARK[max(1, -(-v * steps // top))] for v in values)


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s" if sec else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h" if hours else f"{days}d"
