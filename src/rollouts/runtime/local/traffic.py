"""Per-version request statistics of the local ingress, kept in memory for the traffic metric provider.

Keyed by (namespace, service, version, pod-template hash), where service is the stable Ingress's logical
service name, version is `stable`, `canary` (through the ingress) or whatever a Service listener is labelled
with (`active`, `preview`), and the hash is that of the pod that served the request ("" when the caller does
not know it). Requests no pod served (503: no ready endpoint; 502: none accepted the connection) are kept
apart: they count for the service as a whole (`request_rate`) but never in a version's window, so a revision
is not charged for the time it had no ready pod. Windows can be limited to one hash (the revision under
test) and clipped to a start time (the analysis run's start). Two rings per key, both bounded:
- one bucket per second for `horizon` seconds (default 35 minutes): requests by status class and a sparse
  latency histogram with geometric buckets 2 % wide, so quantiles are within about 1 % of the true value;
- one bucket per minute for `coarse_horizon` seconds (default 24 hours): request and 5xx counts only, so
  "errors since the release started" works for releases longer than the fine horizon.

Thread-safe (one lock); the clock is injectable.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from rollouts.traffic_window import WindowStats, bucket_of

DEFAULT_HORIZON_SECONDS = 35 * 60
DEFAULT_COARSE_HORIZON_SECONDS = 24 * 3600


STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "other")

Clock = Callable[[], float]
StatsKey = tuple[str, str, str]
# (namespace, service, version, pod hash); the hash is None for requests no pod served.
_SeriesKey = tuple[str, str, str, str | None]


def _status_class(status: int) -> int:
    return status // 100 - 1 if 100 <= status < 600 else 5


@dataclass
class _Second:
    at: int
    classes: list[int] = field(default_factory=lambda: [0] * len(STATUS_CLASSES))
    latency: Counter[int] = field(default_factory=Counter)


@dataclass
class _Minute:
    at: int
    requests: int = 0
    errors: int = 0


_Bucket = TypeVar("_Bucket", "_Second", "_Minute")


@dataclass
class _Series:
    seconds: deque[_Second] = field(default_factory=deque)
    minutes: deque[_Minute] = field(default_factory=deque)
    first_seen: float | None = None
    total_requests: int = 0
    total_errors: int = 0


class TrafficStats:
    """In-memory request counters and latency histograms per (namespace, service, version)."""

    def __init__(
        self,
        *,
        clock: Clock = time.time,
        horizon: float = DEFAULT_HORIZON_SECONDS,
        coarse_horizon: float = DEFAULT_COARSE_HORIZON_SECONDS,
    ) -> None:
        self._clock = clock
        self.horizon = int(horizon)
        self.coarse_horizon = int(coarse_horizon)
        self._series: dict[_SeriesKey, _Series] = {}
        self._lock = threading.Lock()

    def record(
        self,
        namespace: str,
        service: str,
        version: str,
        status: int,
        duration: float,
        *,
        at: float | None = None,
        pod_hash: str = "",
        served: bool = True,
    ) -> None:
        """Count one finished request (`duration` in seconds) at time `at` (default: now), served by a pod
        of `pod_hash`; `served=False` when no pod answered it (the proxy's own 502/503)."""
        now = self._clock() if at is None else at
        second, minute = int(math.floor(now)), int(math.floor(now / 60))
        klass = _status_class(status)
        key: _SeriesKey = (namespace, service, version, pod_hash if served else None)
        with self._lock:
            series = self._series.setdefault(key, _Series())
            if series.first_seen is None or now < series.first_seen:
                series.first_seen = now
            series.total_requests += 1
            series.total_errors += int(klass == 4)
            fine = _slot(series.seconds, second, _Second)
            fine.classes[klass] += 1
            fine.latency[bucket_of(duration)] += 1
            coarse = _slot(series.minutes, minute, _Minute)
            coarse.requests += 1
            coarse.errors += int(klass == 4)
            self._prune(series, now)

    def window(
        self,
        namespace: str,
        service: str,
        version: str | Sequence[str],
        seconds: float,
        now: float | None = None,
        *,
        pod_hash: str | None = None,
        not_before: float | None = None,
    ) -> WindowStats:
        """Requests of one version (or the sum of several) in the last `seconds` up to `now`, in whole
        seconds: the window covers the `ceil(seconds)` one-second buckets ending with the current one.

        pod_hash: only requests served by pods of this hash (None: by any pod). not_before: only whole
        seconds that start at or after this time (a request from before it is never counted)."""
        now = self._clock() if now is None else now
        last = int(math.floor(now))
        span = max(1, math.ceil(seconds))
        first = last - span + 1
        if not_before is not None:
            first = max(first, math.ceil(not_before))
        classes = [0] * len(STATUS_CLASSES)
        latency: Counter[int] = Counter()
        with self._lock:
            for series in self._matching(namespace, service, version, pod_hash):
                for bucket in series.seconds:
                    if first <= bucket.at <= last:
                        for i, count in enumerate(bucket.classes):
                            classes[i] += count
                        latency.update(bucket.latency)
        requests = sum(classes)
        return WindowStats(
            start=float(min(first, last + 1)),
            end=float(last + 1),
            requests=requests,
            errors=classes[4],
            by_class={name: classes[i] for i, name in enumerate(STATUS_CLASSES) if classes[i]},
            latency_counts=tuple(sorted(latency.items())),
            complete=span <= self.horizon,
        )

    def since(
        self,
        namespace: str,
        service: str,
        version: str | Sequence[str],
        start: float,
        now: float | None = None,
        *,
        pod_hash: str | None = None,
    ) -> WindowStats:
        """Cumulative request and 5xx counts from `start` to `now` (of pods of `pod_hash` when given).

        Whole minutes are counted from the per-minute ring (so `start` is rounded down to its minute);
        `complete` is False when `start` is older than what the ring keeps. No latency in this answer."""
        now = self._clock() if now is None else now
        first, last = int(math.floor(start / 60)), int(math.floor(now / 60))
        requests = errors = 0
        with self._lock:
            for series in self._matching(namespace, service, version, pod_hash):
                for bucket in series.minutes:
                    if first <= bucket.at <= last:
                        requests += bucket.requests
                        errors += bucket.errors
        complete = now - start <= self.coarse_horizon
        return WindowStats(
            start=first * 60.0,
            end=now,
            requests=requests,
            errors=errors,
            by_class={"5xx": errors} if errors else {},
            complete=complete,
        )

    def first_seen(
        self, namespace: str, service: str, version: str | Sequence[str], *, pod_hash: str | None = None
    ) -> float | None:
        """When this process first counted a request a pod of the version(s) served; None if never."""
        with self._lock:
            seen = [s.first_seen for s in self._matching(namespace, service, version, pod_hash) if s.first_seen]
        return min(seen) if seen else None

    def request_rate(self, namespace: str, service: str, now: float | None = None) -> float | None:
        """Requests per second to the service (all versions) over the fine horizon, or over the time since
        the first request when that is shorter (so a young service's rate is not diluted). None when the
        service has served nothing in the horizon."""
        now = self._clock() if now is None else now
        last = int(math.floor(now))
        first = last - self.horizon + 1
        requests = 0
        oldest: float | None = None
        with self._lock:
            for (ns, svc, _, _), series in self._series.items():
                if (ns, svc) != (namespace, service):
                    continue
                for bucket in series.seconds:
                    if first <= bucket.at <= last:
                        requests += sum(bucket.classes)
                if series.first_seen is not None:
                    oldest = series.first_seen if oldest is None else min(oldest, series.first_seen)
        if requests == 0 or oldest is None:
            return None
        span = min(float(self.horizon), max(1.0, now - oldest))
        return requests / span

    def keys(self) -> list[StatsKey]:
        with self._lock:
            return sorted({key[:3] for key in self._series})

    def totals(self, namespace: str, service: str, version: str) -> tuple[int, int]:
        """(requests, 5xx) counted since this process started, whether a pod served them or not."""
        requests = errors = 0
        with self._lock:
            for key, series in self._series.items():
                if key[:3] == (namespace, service, version):
                    requests += series.total_requests
                    errors += series.total_errors
        return requests, errors

    def _matching(
        self, namespace: str, service: str, version: str | Sequence[str], pod_hash: str | None = None
    ) -> Iterable[_Series]:
        """The series a pod served (of `pod_hash` when given); the caller holds the lock."""
        versions = (version,) if isinstance(version, str) else tuple(version)
        for (ns, svc, v, served_by), series in self._series.items():
            if (ns, svc) != (namespace, service) or v not in versions or served_by is None:
                continue
            if pod_hash is None or served_by == pod_hash:
                yield series

    def _prune(self, series: _Series, now: float) -> None:
        oldest_second = int(math.floor(now)) - self.horizon
        while series.seconds and series.seconds[0].at <= oldest_second:
            series.seconds.popleft()
        oldest_minute = int(math.floor((now - self.coarse_horizon) / 60))
        while series.minutes and series.minutes[0].at <= oldest_minute:
            series.minutes.popleft()


def _slot(ring: deque[_Bucket], at: int, make: Callable[[int], _Bucket]) -> _Bucket:
    """The bucket for time `at`, appended when new. Buckets stay sorted; a late sample (clock stepped back,
    or `at` given explicitly) is inserted in order."""
    if ring and ring[-1].at == at:
        return ring[-1]
    if not ring or ring[-1].at < at:
        ring.append(make(at))
        return ring[-1]
    for i, bucket in enumerate(ring):
        if bucket.at == at:
            return bucket
        if bucket.at > at:
            ring.insert(i, make(at))
            return ring[i]
    ring.append(make(at))
    return ring[-1]
