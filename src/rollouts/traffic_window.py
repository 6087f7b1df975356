"""Requests served in a time window (`WindowStats`), the latency buckets it counts in, and its JSON form
under the local cluster's /traffic/v1 paths, so the cluster (which counts) and the operator and `gate check`
(which read) share one model and one encoding without importing each other.

Latency buckets are geometric, 2 % wide: bucket i holds [MIN * GROWTH**i, MIN * GROWTH**(i+1)); values below
MIN land in bucket 0, so quantiles are within about 1 % of the true value.

A window's JSON form is `{"start", "end", "requests", "errors", "byClass", "latency", "complete"}` where
`latency` is the histogram as `[[upper_bound_seconds, count], ...]` in ascending order (Prometheus' `le`
reading of the buckets). Decoding maps each bound back to its bucket, so quantiles computed from a decoded
window equal those of the original."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

MIN_LATENCY = 1e-5
GROWTH = 1.02
LOG_GROWTH = math.log(GROWTH)
MAX_BUCKET = int(math.log(3600 / MIN_LATENCY) / LOG_GROWTH)


def bucket_of(seconds: float) -> int:
    """The latency bucket a request of `seconds` is counted in."""
    if seconds <= MIN_LATENCY:
        return 0
    return min(int(math.log(seconds / MIN_LATENCY) / LOG_GROWTH), MAX_BUCKET)


def bucket_value(index: int) -> float:
    # Geometric middle of the bucket: the relative error is at most half the bucket width.
    return MIN_LATENCY * GROWTH ** (index + 0.5)


@dataclass(frozen=True)
class WindowStats:
    """Requests served in a time window. Rates and quantiles are None when there were no requests."""

    start: float
    end: float
    requests: int = 0
    errors: int = 0
    by_class: dict[str, int] = field(default_factory=dict)
    latency_counts: tuple[tuple[int, int], ...] = ()
    complete: bool = True

    @property
    def success_rate(self) -> float | None:
        return None if self.requests == 0 else (self.requests - self.errors) / self.requests

    @property
    def error_rate(self) -> float | None:
        return None if self.requests == 0 else self.errors / self.requests

    @property
    def p50(self) -> float | None:
        return self.quantile(0.50)

    @property
    def p95(self) -> float | None:
        return self.quantile(0.95)

    @property
    def p99(self) -> float | None:
        return self.quantile(0.99)

    def quantile(self, q: float) -> float | None:
        """The q-quantile of latency in seconds (nearest rank), None without latency samples."""
        total = sum(count for _, count in self.latency_counts)
        if total == 0:
            return None
        rank = max(1, math.ceil(min(max(q, 0.0), 1.0) * total))
        seen = 0
        for index, count in self.latency_counts:
            seen += count
            if seen >= rank:
                return bucket_value(index)
        return bucket_value(self.latency_counts[-1][0])


def bucket_upper_bound(index: int) -> float:
    """The upper bound in seconds of latency bucket `index` (bucket 0 also holds everything below it)."""
    return MIN_LATENCY * GROWTH ** (index + 1)


def bucket_of_upper_bound(bound: float) -> int:
    """The bucket whose upper bound is `bound` (the inverse of `bucket_upper_bound`)."""
    if not bound > 0 or not math.isfinite(bound):
        raise ValueError(f"latency bound {bound!r} is not a positive number of seconds")
    return max(0, round(math.log(bound / MIN_LATENCY) / LOG_GROWTH) - 1)


def window_to_json(stats: WindowStats) -> dict[str, Any]:
    return {
        "start": stats.start,
        "end": stats.end,
        "requests": stats.requests,
        "errors": stats.errors,
        "byClass": dict(stats.by_class),
        "latency": [[bucket_upper_bound(index), count] for index, count in stats.latency_counts],
        "complete": stats.complete,
    }


def window_from_json(data: dict[str, Any]) -> WindowStats:
    """A WindowStats from its JSON form; ValueError (naming the field) when a field is malformed."""
    try:
        latency = tuple((bucket_of_upper_bound(float(bound)), int(count)) for bound, count in data.get("latency") or [])
        return WindowStats(
            start=float(data["start"]),
            end=float(data["end"]),
            requests=int(data.get("requests") or 0),
            errors=int(data.get("errors") or 0),
            by_class={str(k): int(v) for k, v in (data.get("byClass") or {}).items()},
            latency_counts=latency,
            complete=bool(data.get("complete", True)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"traffic window: {exc!r} in {sorted(data) if isinstance(data, dict) else data!r}; "
                         "expected start, end, requests, errors, byClass, latency, complete") from None
