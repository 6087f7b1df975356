"""TrafficStats: windows, status classes, quantiles and bounded memory, against known inputs."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rollouts.runtime.local.traffic import TrafficStats

T0 = 1_700_000_000.0


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_window_counts_only_recent_seconds() -> None:
    stats = TrafficStats(clock=FakeClock())
    for i in range(120):  # one request per second for two minutes, every 10th a 500
        stats.record("ns", "svc", "canary", 500 if i % 10 == 0 else 200, 0.01, at=T0 + i)
    now = T0 + 119.5
    last_minute = stats.window("ns", "svc", "canary", 60, now)
    assert (last_minute.requests, last_minute.errors) == (60, 6)
    assert last_minute.success_rate == pytest.approx(0.9)
    assert last_minute.error_rate == pytest.approx(0.1)
    assert last_minute.by_class == {"2xx": 54, "5xx": 6}
    assert stats.window("ns", "svc", "canary", 10, now).requests == 10
    assert stats.window("ns", "svc", "stable", 60, now).requests == 0
    assert stats.window("ns", "svc", "stable", 60, now).success_rate is None
    assert stats.window("ns", "svc", "canary", 60, T0 + 500).p95 is None


def test_status_classes() -> None:
    stats = TrafficStats(clock=FakeClock())
    for status in (101, 200, 204, 302, 404, 499, 500, 503, 999):
        stats.record("ns", "svc", "stable", status, 0.001, at=T0)
    window = stats.window("ns", "svc", "stable", 1, T0)
    assert window.by_class == {"1xx": 1, "2xx": 2, "3xx": 1, "4xx": 2, "5xx": 2, "other": 1}
    assert window.errors == 2


def test_versions_can_be_summed() -> None:
    stats = TrafficStats(clock=FakeClock())
    stats.record("ns", "svc", "stable", 200, 0.1, at=T0)
    stats.record("ns", "svc", "active", 500, 0.1, at=T0)
    both = stats.window("ns", "svc", ("stable", "active"), 5, T0)
    assert (both.requests, both.errors) == (2, 1)


def test_quantiles_match_known_distribution() -> None:
    stats = TrafficStats(clock=FakeClock())
    # 1..1000 ms, shuffled: p50 = 500 ms, p95 = 950 ms, p99 = 990 ms (nearest rank).
    latencies = [ms / 1000 for ms in range(1, 1001)]
    random.Random(7).shuffle(latencies)
    for i, latency in enumerate(latencies):
        stats.record("ns", "svc", "canary", 200, latency, at=T0 + i % 30)
    window = stats.window("ns", "svc", "canary", 60, T0 + 30)
    assert window.p50 == pytest.approx(0.500, rel=0.02)
    assert window.p95 == pytest.approx(0.950, rel=0.02)
    assert window.p99 == pytest.approx(0.990, rel=0.02)
    assert window.quantile(1.0) == pytest.approx(1.0, rel=0.02)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(min_value=0.0005, max_value=30.0), min_size=1, max_size=300),
       st.sampled_from([0.5, 0.9, 0.95, 0.99]))
def test_quantile_is_within_two_percent_of_nearest_rank(values: list[float], q: float) -> None:
    stats = TrafficStats(clock=FakeClock())
    for v in values:
        stats.record("ns", "svc", "canary", 200, v, at=T0)
    got = stats.window("ns", "svc", "canary", 1, T0).quantile(q)
    ordered = sorted(values)
    rank = max(1, -(-int(q * 1_000_000) * len(values) // 1_000_000))
    assert got == pytest.approx(ordered[rank - 1], rel=0.02)


def test_old_buckets_are_dropped() -> None:
    clock = FakeClock()
    stats = TrafficStats(clock=clock, horizon=60, coarse_horizon=600)
    for i in range(2000):
        stats.record("ns", "svc", "canary", 200, 0.01, at=T0 + i)
    series = stats._series[("ns", "svc", "canary", "")]
    assert len(series.seconds) <= 60
    assert len(series.minutes) <= 11
    assert stats.window("ns", "svc", "canary", 3600, T0 + 1999).requests == 60


def test_since_counts_across_minutes_and_reports_truncation() -> None:
    stats = TrafficStats(clock=FakeClock(), horizon=60, coarse_horizon=3600)
    for i in range(600):  # ten minutes, one request per second, 5xx every 100th
        stats.record("ns", "svc", "canary", 500 if i % 100 == 0 else 200, 0.01, at=T0 - T0 % 60 + i)
    start = T0 - T0 % 60
    total = stats.since("ns", "svc", "canary", start, start + 599)
    assert (total.requests, total.errors, total.complete) == (600, 6, True)
    later = stats.since("ns", "svc", "canary", start + 300, start + 599)
    assert (later.requests, later.errors) == (300, 3)
    assert stats.since("ns", "svc", "canary", start - 7200, start + 599).complete is False


def test_request_rate_and_first_seen() -> None:
    clock = FakeClock(T0 + 100)
    stats = TrafficStats(clock=clock, horizon=600)
    for i in range(100):
        stats.record("ns", "svc", "stable", 200, 0.01, at=T0 + i)
        stats.record("ns", "svc", "canary", 200, 0.01, at=T0 + i)
    assert stats.first_seen("ns", "svc", "canary") == T0
    assert stats.first_seen("ns", "svc", "preview") is None
    # 200 requests over the 100 s since the first one (shorter than the 600 s horizon).
    assert stats.request_rate("ns", "svc") == pytest.approx(2.0)
    assert stats.request_rate("ns", "other") is None
    assert stats.totals("ns", "svc", "canary") == (100, 0)


# --- windows clipped to the revision and the run (20.2) ---------------------------------------------------


def _blue_green_preview_traffic() -> TrafficStats:
    """Continuous preview traffic across a release: 503s before the new pods were ready (no pod served
    them), the old revision's answers while the preview still pointed at it, then the new revision's."""
    stats = TrafficStats(clock=FakeClock())
    for i in range(30):
        stats.record("ns", "app", "preview", 200, 0.01, at=T0 + i, pod_hash="old")
    for i in range(30, 40):
        stats.record("ns", "app", "preview", 503, 0.0, at=T0 + i, served=False)
    for i in range(40, 100):
        stats.record("ns", "app", "preview", 500 if i % 20 == 0 else 200, 0.01, at=T0 + i, pod_hash="new")
    return stats


# (id, window seconds, pod_hash, not_before, expected (requests, errors))
CLIPPED_WINDOWS = [
    ("any-pod-excludes-unserved-503s", 100, None, None, (90, 3)),
    ("revision-under-test-only", 100, "new", None, (60, 3)),
    ("old-revision-only", 100, "old", None, (30, 0)),
    ("clipped-to-run-start", 100, "new", T0 + 80, (20, 1)),
    ("run-start-mid-second-skips-that-second", 100, "new", T0 + 79.5, (20, 1)),
    ("run-start-in-the-future-counts-nothing", 100, "new", T0 + 500, (0, 0)),
]


@pytest.mark.parametrize(("seconds", "pod_hash", "not_before", "expected"), [c[1:] for c in CLIPPED_WINDOWS],
                         ids=[c[0] for c in CLIPPED_WINDOWS])
def test_window_counts_only_the_revision_under_test_inside_the_run(
    seconds: float, pod_hash: str | None, not_before: float | None, expected: tuple[int, int]
) -> None:
    stats = _blue_green_preview_traffic()
    window = stats.window("ns", "app", "preview", seconds, T0 + 99.5, pod_hash=pod_hash, not_before=not_before)
    assert (window.requests, window.errors) == expected


def test_unserved_503s_count_for_the_service_not_for_a_revision() -> None:
    stats = _blue_green_preview_traffic()
    assert stats.since("ns", "app", "preview", T0, T0 + 99.5).errors == 3
    assert stats.since("ns", "app", "preview", T0, T0 + 99.5, pod_hash="new").requests == 60
    assert stats.first_seen("ns", "app", "preview", pod_hash="new") == T0 + 40
    assert stats.request_rate("ns", "app", T0 + 99.5) == pytest.approx(100 / 99.5)
    assert stats.totals("ns", "app", "preview") == (100, 13)
    assert stats.keys() == [("ns", "app", "preview")]
