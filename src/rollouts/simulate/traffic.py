"""Simulated requests for `rollouts simulate` and bench/decision.py: per-tick request, error and slow
counts of each version, drawn from a seeded random.Random (so a scenario replays identically).

Errors per tick are Binomial(requests, errorRate). Latency is lognormal, fitted to the version's p50 and
p95: median = p50, sigma = ln(p95 / p50) / 1.6449 (the standard normal's 95th percentile); the share of
requests slower than a threshold T is then 1 - Phi(ln(T / p50) / sigma), and slow counts per tick are
Binomial(requests, that share). Counting slow requests directly (rather than drawing every latency) keeps
an hour of simulated traffic at thousands of requests per second cheap.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

_Z95 = 1.6448536269514722


def binomial(rng: random.Random, n: int, p: float) -> int:
    """A Binomial(n, p) draw, exact, in O(n * min(p, 1 - p)) by skipping over geometric gaps."""
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    if p > 0.5:
        return n - binomial(rng, n, 1.0 - p)
    log_q = math.log1p(-p)
    count, position = 0, 0
    while True:
        # The gap before the next success is Geometric(p): floor(ln U / ln(1 - p)).
        position += int(math.log(1.0 - rng.random()) / log_q) + 1
        if position > n:
            return count
        count += 1


@dataclass(frozen=True)
class LatencyModel:
    """A lognormal latency distribution given by its median and 95th percentile, in milliseconds."""

    p50_ms: float
    p95_ms: float

    def __post_init__(self) -> None:
        if not 0 < self.p50_ms <= self.p95_ms:
            raise ValueError(f"latencyMs: need 0 < p50 <= p95, got p50 {self.p50_ms}, p95 {self.p95_ms}")

    @property
    def sigma(self) -> float:
        return math.log(self.p95_ms / self.p50_ms) / _Z95

    def share_slower_than(self, threshold_ms: float) -> float:
        if threshold_ms <= 0:
            return 1.0
        if self.sigma == 0:
            return 1.0 if self.p50_ms > threshold_ms else 0.0
        z = math.log(threshold_ms / self.p50_ms) / self.sigma
        return 0.5 * math.erfc(z / math.sqrt(2.0))

    def quantile_ms(self, q: float) -> float:
        from statistics import NormalDist

        return self.p50_ms * math.exp(self.sigma * NormalDist().inv_cdf(q))


@dataclass(frozen=True)
class VersionTraffic:
    error_rate: float
    latency: LatencyModel


def split_requests(rng: random.Random, total: int, canary_percent: float) -> tuple[int, int]:
    """(canary, stable) requests of `total` routed with the canary at `canary_percent` (each request
    independently, as a weighted router does)."""
    canary = binomial(rng, total, min(max(canary_percent, 0.0), 100.0) / 100.0)
    return canary, total - canary
