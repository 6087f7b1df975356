"""The JSON form of traffic statistics served under the cluster's /traffic/v1 paths, both ways, so the
cluster (which counts) and the operator (which reads) agree on one encoding.

A window is `{"start", "end", "requests", "errors", "byClass", "latency", "complete"}` where `latency` is the
histogram as `[[upper_bound_seconds, count], ...]` in ascending order (Prometheus' `le` reading of
TrafficStats' geometric buckets). Decoding maps each bound back to its bucket, so quantiles computed from a
decoded window equal those of the original."""

from __future__ import annotations

import math
from typing import Any

from rollouts.runtime.local.traffic import _GROWTH, _LOG_GROWTH, _MIN_LATENCY, WindowStats


def bucket_upper_bound(index: int) -> float:
    """The upper bound in seconds of latency bucket `index` (bucket 0 also holds everything below it)."""
    return _MIN_LATENCY * _GROWTH ** (index + 1)


def bucket_of_upper_bound(bound: float) -> int:
    """The bucket whose upper bound is `bound` (the inverse of `bucket_upper_bound`)."""
    if not bound > 0 or not math.isfinite(bound):
        raise ValueError(f"latency bound {bound!r} is not a positive number of seconds")
    return max(0, round(math.log(bound / _MIN_LATENCY) / _LOG_GROWTH) - 1)


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
