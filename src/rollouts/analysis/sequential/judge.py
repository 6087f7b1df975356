"""The verdict of one sequential measurement, from cumulative counts of the canary and the stable version.

In order:
1. Hard-outage guard: the canary's event rate (errors, or slow requests) is at least `guard_rate` (20 %)
   with at least `guard_min_events` (3) events, or every one of at least 3 canary requests failed. A
   regression at once, whatever the sample size: an outage needs no statistics. A healthy canary at 0.5 %
   errors trips it with probability below 1e-6.
2. Fewer than `min_samples` canary requests: undecided (too early to judge; the guard still watches).
3. No stable traffic to compare with: undecided.
4. The e-value of evalue.py (the Beta mixture, or the one-sided grid of `alternatives`) reaches 1/alpha and the canary's rate is above the stable one: a regression.
   By Ville's inequality a healthy canary is flagged with probability at most alpha over the whole run,
   however often it is measured.
5. `max_samples` set and reached without a regression: decided healthy. An anytime-valid test never
   proves the null; the sample budget is where the operator accepts "not detectably worse" (a 4x error
   regression at 0.5 % is found after about 800 canary requests on average with the defaults read every
   10 s, about 550 as the shipped sequential-gate reads it, see docs/analysis.md).
6. Otherwise undecided.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rollouts.analysis.sequential.evalue import (
    DEFAULT_PRIOR_STRENGTH,
    canary_share,
    log_e_value,
    log_e_value_ratios,
)

DEFAULT_ALPHA = 0.01
DEFAULT_MIN_SAMPLES = 100
DEFAULT_GUARD_RATE = 0.2
DEFAULT_GUARD_MIN_EVENTS = 3
_ALL_FAILED_MIN_REQUESTS = 3


@dataclass(frozen=True)
class ArmCounts:
    """Requests one version served and how many were events (errors, or slower than the threshold)."""

    requests: int
    events: int

    def __post_init__(self) -> None:
        if self.requests < 0 or self.events < 0 or self.events > self.requests:
            raise ValueError(f"counts must satisfy 0 <= events <= requests, got {self.events}/{self.requests}")

    @property
    def rate(self) -> float | None:
        return None if self.requests == 0 else self.events / self.requests


@dataclass(frozen=True)
class SequentialSettings:
    alpha: float = DEFAULT_ALPHA
    min_samples: int = DEFAULT_MIN_SAMPLES
    max_samples: int | None = None
    guard_rate: float = DEFAULT_GUARD_RATE
    guard_min_events: int = DEFAULT_GUARD_MIN_EVENTS
    prior_strength: float = DEFAULT_PRIOR_STRENGTH
    event: str = "errors"
    # Rate ratios of the one-sided grid e-value (evalue.log_e_value_ratios); empty: the Beta mixture.
    alternatives: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha {self.alpha!r} is not between 0 and 1 (exclusive)")
        if self.min_samples < 0:
            raise ValueError(f"min_samples {self.min_samples!r} is negative")
        if self.max_samples is not None and self.max_samples < 1:
            raise ValueError(f"max_samples {self.max_samples!r} must be at least 1")
        if not 0 < self.guard_rate <= 1:
            raise ValueError(f"guard_rate {self.guard_rate!r} is not in (0, 1]")
        if self.guard_min_events < 1:
            raise ValueError(f"guard_min_events {self.guard_min_events!r} must be at least 1")
        if self.prior_strength <= 0:
            raise ValueError(f"prior_strength {self.prior_strength!r} must be positive")
        if any(not r > 1.0 for r in self.alternatives):
            raise ValueError(f"alternatives {self.alternatives!r} must all be rate ratios above 1")

    @property
    def threshold(self) -> float:
        """The e-value that declares a regression: 1/alpha."""
        return 1.0 / self.alpha


@dataclass(frozen=True)
class Verdict:
    regression: bool
    decided: bool
    e_value: float
    canary: ArmCounts
    stable: ArmCounts
    reason: str

    def to_result(self) -> dict[str, object]:
        """The map a metric condition sees as `result` (camelCase keys like the rest of the API)."""
        return {
            "regression": self.regression,
            "decided": self.decided,
            "eValue": _finite(self.e_value),
            "canaryErrorRate": self.canary.rate,
            "stableErrorRate": self.stable.rate,
            "canaryRequests": self.canary.requests,
            "stableRequests": self.stable.requests,
            "canaryEvents": self.canary.events,
            "stableEvents": self.stable.events,
            "reason": self.reason,
        }


def _finite(value: float) -> float:
    # JSON (and the stored measurement) has no infinity.
    return min(value, 1e300)


def _pct(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate * 100:.3g} %"


def assess_guard(canary: ArmCounts, settings: SequentialSettings) -> str | None:
    """Why the canary is a hard outage, or None."""
    if canary.requests >= _ALL_FAILED_MIN_REQUESTS and canary.events == canary.requests:
        return f"guard: all {canary.requests} canary requests were {settings.event}"
    rate = canary.rate
    if rate is not None and canary.events >= settings.guard_min_events and rate >= settings.guard_rate:
        return (f"guard: canary {settings.event} rate {_pct(rate)} >= {_pct(settings.guard_rate)} "
                f"({canary.events}/{canary.requests})")
    return None


def assess_sequential(
    canary: ArmCounts,
    stable: ArmCounts,
    settings: SequentialSettings = SequentialSettings(),  # noqa: B008 - frozen, never mutated
    *,
    budget_requests: int | None = None,
) -> Verdict:
    """The verdict for cumulative counts. `budget_requests` is what `max_samples` is compared with
    (default: the canary's requests), so a gate can have its own budget inside a longer test."""
    share = canary_share(canary.requests, stable.requests)
    e_value = 1.0
    if share is not None:
        if settings.alternatives:
            log_e = log_e_value_ratios(canary.events, stable.events, share, settings.alternatives)
        else:
            log_e = log_e_value(canary.events, stable.events, share, prior_strength=settings.prior_strength)
        e_value = math.exp(min(log_e, 700.0))

    def verdict(regression: bool, decided: bool, reason: str) -> Verdict:
        return Verdict(regression, decided, e_value, canary, stable, reason)

    guard = assess_guard(canary, settings)
    if guard is not None:
        return verdict(True, True, guard)
    if canary.requests < settings.min_samples:
        return verdict(False, False, f"waiting for minSamples: {canary.requests}/{settings.min_samples} "
                                     "canary requests")
    if share is None:
        return verdict(False, False, "no stable requests to compare with")
    worse = (canary.rate or 0.0) > (stable.rate or 0.0)
    rates = f"canary {_pct(canary.rate)} vs stable {_pct(stable.rate)}"
    if e_value >= settings.threshold and worse:
        return verdict(True, True, f"regression: e-value {e_value:.3g} >= {settings.threshold:g} ({rates})")
    used = canary.requests if budget_requests is None else budget_requests
    if settings.max_samples is not None and used >= settings.max_samples:
        return verdict(False, True, f"healthy: {used} canary requests (maxSamples {settings.max_samples}) "
                                    f"without a regression ({rates})")
    return verdict(False, False, f"undecided: e-value {e_value:.3g} < {settings.threshold:g} ({rates})")
