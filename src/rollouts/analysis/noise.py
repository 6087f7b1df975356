"""How often a fixed-threshold gate rolls back a healthy release, and what regression it can catch.

Pure arithmetic, no I/O. A threshold gate ("success rate >= 99.5 % over 5m, every 1m, 5 times,
failureLimit 1") looks at about `n` requests per measurement window and fails the measurement when more
than `limit x requests` of them are bad (errors, or requests slower than a latency bound). For a release
exactly as good as the stable version, each request is bad with the stable version's probability `p`: the
bad count of a window of n requests is Binomial(n, p). The request count itself varies (arrivals are
Poisson), and that matters at a threshold: 600 requests at 99.5 % tolerate 3 errors, 599 only 2. So
the window's good and bad counts are taken as independent Poisson(n (1 - p)) and Poisson(n p) counts
(Poisson arrivals split by p), and a measurement fails with
    P(fail) = sum over b of P(bad = b) * P(good <= largest good count at which b is too many).

The run fails when more than `failureLimit` of its `count` measurements fail (Argo's rule; failures need
not be consecutive). When the windows do not overlap (window <= interval) the measurements are
independent and the run-level probability is exact (a small dynamic programme over failures so far and,
with consecutiveSuccessLimit, the current run of successes). When they overlap (a 5m rate read every
minute), consecutive measurements share most of their requests and are strongly correlated: the traffic
is then cut into blocks of gcd(window, interval), and the run is replayed over seeded draws of every
block's counts from those exact distributions, which keeps the correlation and stays reproducible.

A release of G gated steps is rolled back by chance with probability 1 - (1 - P(run fails))^G.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from dataclasses import dataclass, replace

# Monte Carlo replays of a run with overlapping windows; the standard error of a probability is then at
# most 0.5 / sqrt(_REPLAYS), about 0.35 points.
_REPLAYS = 20_000
_MAX_DRAWS = 2_000_000
_DETECTION_POWER = 0.90
_BISECTION_REPLAYS = 4_000


@dataclass(frozen=True)
class WindowGate:
    """A threshold gate in counts: each measurement fails when the bad share of its window of `requests`
    requests is above `bad_share_limit` (or at it too, with `fails_at_equal`)."""

    requests: int
    bad_share_limit: float
    fails_at_equal: bool = False
    count: int = 1
    failure_limit: int = 0
    window_seconds: float = 60.0
    interval_seconds: float = 60.0
    consecutive_success_limit: int = 0

    def __post_init__(self) -> None:
        if self.requests < 0 or self.count < 1 or self.failure_limit < 0:
            raise ValueError(f"WindowGate: need requests >= 0, count >= 1, failureLimit >= 0, got {self}")

    @property
    def max_bad(self) -> int:
        return max_bad_allowed(self.requests, self.bad_share_limit, fails_at_equal=self.fails_at_equal)


def max_bad_allowed(requests: int, bad_share_limit: float, *, fails_at_equal: bool) -> int:
    """The largest bad count a window of `requests` may hold and still pass.

    The measurement fails when bad / requests > limit (or >= limit with `fails_at_equal`). The product is
    rounded to 9 decimals first so that 1 - 0.995 (0.0050000000000000044) times 1,000 counts as 5.
    """
    edge = round(requests * bad_share_limit, 9)
    if fails_at_equal:
        return max(math.ceil(edge) - 1, -1)
    return math.floor(edge)


def _poisson_pmf(mean: float, lo: int, hi: int) -> list[float]:
    """Poisson(mean) probabilities of lo..hi, by recurrence from the mode (no overflow at large means)."""
    if mean <= 0:
        return [1.0 if k == 0 else 0.0 for k in range(lo, hi + 1)]
    mode = min(max(int(mean), lo), hi)
    log_mode = mode * math.log(mean) - mean - math.lgamma(mode + 1)
    out = [0.0] * (hi - lo + 1)
    out[mode - lo] = math.exp(log_mode)
    for k in range(mode + 1, hi + 1):
        out[k - lo] = out[k - lo - 1] * mean / k
    for k in range(mode - 1, lo - 1, -1):
        out[k - lo] = out[k - lo + 1] * (k + 1) / mean
    return out


class _PoissonTable:
    """A Poisson(mean) distribution over its bulk (+- 12 standard deviations): probabilities, CDF and
    seeded inverse-CDF draws."""

    def __init__(self, mean: float) -> None:
        sd = math.sqrt(max(mean, 0.0))
        self.lo = max(0, int(mean - 12 * sd - 5))
        self.hi = int(mean + 12 * sd + 5)
        pmf = _poisson_pmf(mean, self.lo, self.hi)
        total = sum(pmf) or 1.0
        self.pmf = [x / total for x in pmf]
        self.cdf = list(itertools.accumulate(self.pmf))

    def cdf_at(self, k: int) -> float:
        if k < self.lo:
            return 0.0
        return self.cdf[min(k, self.hi) - self.lo]

    def draw(self, u: float) -> int:
        return self.lo + min(bisect.bisect_left(self.cdf, u), len(self.cdf) - 1)


def measurement_fail_probability(p: float, gate: WindowGate) -> float:
    """P(one measurement fails): good and bad requests of the window are independent Poisson counts
    (Poisson arrivals split by the bad share), the window fails when bad > max_bad_allowed(good + bad).

    The request count's own noise matters: at 600 requests a 99.5 % gate tolerates 3 errors, at 599 only 2.
    """
    if gate.requests <= 0:
        return 0.0
    bad, good = _PoissonTable(gate.requests * p), _PoissonTable(gate.requests * (1 - p))
    total = 0.0
    for b in range(bad.lo, bad.hi + 1):
        weight = bad.pmf[b - bad.lo]
        if weight < 1e-15:
            continue
        # The window fails for every good count g with max_bad_allowed(g + b) < b; max_bad grows with g,
        # so those g form a prefix 0..g_max: find its end by bisection.
        lo, hi = -1, good.hi
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if mid >= 0 and max_bad_allowed(mid + b, gate.bad_share_limit, fails_at_equal=gate.fails_at_equal) < b:
                lo = mid
            else:
                hi = mid - 1
        total += weight * good.cdf_at(lo)
    return min(total, 1.0)


def _run_fails_independent(p_fail: float, gate: WindowGate) -> float:
    # states: (failures so far, current consecutive successes) -> probability; absorbing outcomes summed.
    states: dict[tuple[int, int], float] = {(0, 0): 1.0}
    failed = 0.0
    for _ in range(gate.count):
        nxt: dict[tuple[int, int], float] = {}
        for (fails, streak), prob in states.items():
            if fails + 1 > gate.failure_limit:
                failed += prob * p_fail
            else:
                nxt[(fails + 1, 0)] = nxt.get((fails + 1, 0), 0.0) + prob * p_fail
            streak_ok = streak + 1
            if gate.consecutive_success_limit and streak_ok >= gate.consecutive_success_limit:
                continue  # the run succeeded
            nxt[(fails, streak_ok)] = nxt.get((fails, streak_ok), 0.0) + prob * (1 - p_fail)
        states = nxt
    return failed


def _blocks(gate: WindowGate) -> tuple[int, int, int]:
    """(block seconds, blocks per window, blocks per interval) for overlapping windows."""
    window, interval = round(gate.window_seconds), round(gate.interval_seconds)
    block = math.gcd(window, interval) or 1
    return block, max(window // block, 1), max(interval // block, 1)


def _run_fails_overlapping(p: float, gate: WindowGate, seed: int, replays: int) -> float:
    _, per_window, per_interval = _blocks(gate)
    block_mean = gate.requests / per_window
    bad_table, good_table = _PoissonTable(block_mean * p), _PoissonTable(block_mean * (1 - p))
    n_blocks = (gate.count - 1) * per_interval + per_window
    replays = max(1000, min(replays, _MAX_DRAWS // n_blocks))
    rng = random.Random(seed)
    failed_runs = 0
    limit, at_equal = gate.bad_share_limit, gate.fails_at_equal
    for _ in range(replays):
        bad = [bad_table.draw(rng.random()) for _ in range(n_blocks)]
        good = [good_table.draw(rng.random()) for _ in range(n_blocks)]
        fails = streak = 0
        for j in range(gate.count):
            start = j * per_interval
            b = sum(bad[start:start + per_window])
            if b > max_bad_allowed(b + sum(good[start:start + per_window]), limit, fails_at_equal=at_equal):
                fails, streak = fails + 1, 0
                if fails > gate.failure_limit:
                    failed_runs += 1
                    break
            else:
                streak += 1
                if gate.consecutive_success_limit and streak >= gate.consecutive_success_limit:
                    break
    return failed_runs / replays


def run_fail_probability(p: float, gate: WindowGate, *, seed: int = 19, replays: int = _REPLAYS) -> float:
    """P(the run fails) when every request is bad with probability `p` (a healthy release: the stable
    version's rate)."""
    if gate.requests == 0:
        return 0.0
    if gate.window_seconds <= gate.interval_seconds or gate.count == 1:
        return _run_fails_independent(measurement_fail_probability(p, gate), gate)
    return _run_fails_overlapping(p, gate, seed, replays)


def release_fail_probability(run_probability: float, gates: int) -> float:
    """P(at least one of `gates` independent step gates fails)."""
    return 1.0 - (1.0 - run_probability) ** max(gates, 1)


def detectable_bad_share(gate: WindowGate, baseline: float, *, power: float = _DETECTION_POWER) -> float | None:
    """The smallest bad share of requests the gate fails with probability >= `power`, or None when even
    all-bad traffic would not do it (no requests)."""
    def fails(p: float) -> bool:
        # Common random numbers (one seed) keep the estimate monotone in p, as bisection needs.
        return run_fail_probability(p, gate, replays=_BISECTION_REPLAYS) >= power

    if gate.requests == 0 or not fails(1.0):
        return None
    lo = min(max(baseline, 0.0), 1.0)
    if fails(lo):
        return lo
    # Bracket from just above the limit (where a regression becomes visible) outwards, then bisect to 1 %.
    hi = min(max(gate.bad_share_limit, lo) * 1.1 + 1e-4, 1.0)
    while not fails(hi):
        lo, hi = hi, min(hi * 1.5, 1.0)
    while hi - lo > max(1e-6, 0.01 * hi):
        mid = (lo + hi) / 2
        if fails(mid):
            hi = mid
        else:
            lo = mid
    return hi


@dataclass(frozen=True)
class Suggestion:
    bad_share_limit: float
    release_probability: float


def loosest_safe_limit(gate: WindowGate, baseline: float, *, gates: int, target: float,
                       step: float = 0.0005) -> Suggestion | None:
    """The smallest bad-share limit above the gate's, on a grid of `step`, at which a healthy release is
    rolled back with probability <= `target`; None when none up to 50 % bad does."""
    current_limit = gate.bad_share_limit
    limit = math.floor(round(current_limit / step, 9)) * step
    while limit <= 0.5:
        candidate = replace(gate, bad_share_limit=limit)
        rough = run_fail_probability(baseline, candidate, replays=_BISECTION_REPLAYS)
        if release_fail_probability(rough, gates) <= target and limit > current_limit + 1e-12:
            prob = release_fail_probability(run_fail_probability(baseline, candidate), gates)
            return Suggestion(round(limit, 6), prob)
        limit += step
    return None


__all__ = [
    "Suggestion",
    "WindowGate",
    "detectable_bad_share",
    "loosest_safe_limit",
    "max_bad_allowed",
    "measurement_fail_probability",
    "release_fail_probability",
    "run_fail_probability",
]
