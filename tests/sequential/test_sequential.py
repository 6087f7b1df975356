"""The sequential judge: e-value arithmetic, verdict order, false-alarm control under H0 (seeded
simulation), detection of clear regressions, and the rollouts/sequential provider on local counts."""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollouts.analysis.providers.base import MeasureContext
from rollouts.analysis.providers.sequential import ConfigError, SequentialMetricProvider, parse_config
from rollouts.analysis.sequential import ArmCounts, SequentialSettings, assess_sequential, log_e_value
from rollouts.simulate.traffic import binomial
from rollouts.spec.analysis import Metric


def test_e_value_is_one_without_events_and_grows_with_canary_events() -> None:
    assert log_e_value(0, 0, 0.1) == 0.0
    values = [log_e_value(x, 20, 0.1) for x in (2, 10, 20, 40)]
    assert values == sorted(values) and values[-1] > math.log(100)


@given(st.integers(0, 50), st.integers(0, 50), st.floats(0.01, 0.99))
def test_e_value_is_finite(x: int, y: int, share: float) -> None:
    assert math.isfinite(log_e_value(x, y, share))


@pytest.mark.parametrize(
    ("canary", "stable", "regression", "decided", "reason"),
    [
        ((20, 10), (180, 1), True, True, "guard"),
        ((3, 3), (30, 0), True, True, "guard: all 3"),
        ((50, 2), (450, 2), False, False, "waiting for minSamples"),
        ((200, 1), (0, 0), False, False, "no stable requests"),
        ((1000, 30), (9000, 45), True, True, "regression"),
        ((1000, 5), (9000, 45), False, False, "undecided"),
    ],
    ids=["outage-guard", "all-failed", "min-samples", "no-stable", "regression", "undecided"],
)
def test_verdicts(canary: tuple[int, int], stable: tuple[int, int], regression: bool, decided: bool,
                  reason: str) -> None:
    verdict = assess_sequential(ArmCounts(*canary), ArmCounts(*stable))
    assert (verdict.regression, verdict.decided) == (regression, decided)
    assert verdict.reason.startswith(reason)


def test_sample_budget_gives_a_healthy_verdict() -> None:
    settings = SequentialSettings(max_samples=2000)
    verdict = assess_sequential(ArmCounts(2000, 10), ArmCounts(18000, 90), settings)
    assert (verdict.regression, verdict.decided) == (False, True)
    result = verdict.to_result()
    assert result["canaryRequests"] == 2000 and result["stableErrorRate"] == 0.005


def _first_alarm(rng: random.Random, canary_rps: int, p_canary: float, ticks: int) -> int | None:
    cr = ce = sr = se = 0
    for tick in range(ticks):
        cr += canary_rps * 10
        ce += binomial(rng, canary_rps * 10, p_canary)
        sr += canary_rps * 90
        se += binomial(rng, canary_rps * 90, 0.005)
        if assess_sequential(ArmCounts(cr, ce), ArmCounts(sr, se)).regression:
            return tick
    return None


def test_false_alarm_rate_under_h0_is_at_most_alpha() -> None:
    rng = random.Random(12345)
    runs = 600
    alarms = sum(_first_alarm(rng, 20, 0.005, 60) is not None for _ in range(runs))
    # alpha 0.01; 3 standard errors of noise on 600 runs is about 1.2 %.
    assert alarms / runs <= 0.01 + 3 * math.sqrt(0.01 * 0.99 / runs)


@pytest.mark.parametrize(("p_canary", "max_ticks"), [(0.02, 30), (0.05, 6), (0.5, 1)], ids=["4x", "10x", "outage"])
def test_clear_regressions_are_detected(p_canary: float, max_ticks: int) -> None:
    rng = random.Random(7)
    ticks = [_first_alarm(rng, 20, p_canary, 120) for _ in range(40)]
    assert all(t is not None for t in ticks)
    assert sorted(t for t in ticks if t is not None)[int(0.9 * len(ticks))] < max_ticks


@pytest.mark.parametrize(
    ("config", "message"),
    [({"test": "p99"}, ".test: 'p99' is not one of errors, latency"),
     ({"alpha": 2}, ".alpha: 2 is not between 0 and 1"),
     ({"minSamples": -1}, ".minSamples: -1"),
     ({"bogus": 1}, "unknown key(s) bogus")],
    ids=["test", "alpha", "min-samples", "unknown"],
)
def test_config_errors_name_the_field(config: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match="provider.plugin.rollouts/sequential") as info:
        parse_config(config)
    assert message in str(info.value)


@dataclass
class _Window:
    requests: int
    errors: int
    latency_counts: tuple[tuple[int, int], ...] = ()
    complete: bool = True


@dataclass
class _Stats:
    arms: dict[str, _Window] = field(default_factory=dict)

    def window(self, namespace: str, service: str, version: object, seconds: float, now: float | None = None,
               **scope: object) -> _Window:
        return self.arms[str(version)]

    def since(self, namespace: str, service: str, version: object, start: float, now: float | None = None,
              **scope: object) -> _Window:
        return self.arms[str(version)]

    def first_seen(self, namespace: str, service: str, version: object, **scope: object) -> float | None:
        return 0.0

    def request_rate(self, namespace: str, service: str, now: float | None = None) -> float | None:
        return None


def _measure(stats: _Stats, config: dict[str, object]) -> object:
    provider = SequentialMetricProvider(stats=stats, clock=lambda: 100.0)  # type: ignore[arg-type]
    metric = Metric.model_validate({"name": "seq", "provider": {"plugin": {"rollouts/sequential": config}}})
    ctx = MeasureContext(namespace="ns", run_name="run", metric_name="seq", measurement_index=1)
    return asyncio.run(provider.measure(metric, ctx))


def test_provider_reports_a_regression_map_from_local_counts() -> None:
    outcome = _measure(_Stats({"canary": _Window(1000, 40), "stable": _Window(9000, 45)}), {"service": "shop"})
    value = outcome.value  # type: ignore[attr-defined]
    assert value["regression"] is True and value["decided"] is True
    assert value["canaryRequests"] == 1000 and value["canaryErrorRate"] == 0.04
    assert '"regression":true' in outcome.printed  # type: ignore[attr-defined]


def test_provider_latency_test_counts_slow_requests() -> None:
    # Bucket 600 is about 1e-5 * 1.02**600.5 = 1.45 s (slow at 500 ms); bucket 500 about 0.2 s (fast).
    canary = _Window(200, 0, ((500, 100), (600, 100)))
    stable = _Window(1800, 0, ((500, 1790), (600, 10)))
    outcome = _measure(_Stats({"canary": canary, "stable": stable}), {"service": "shop", "test": "latency"})
    value = outcome.value  # type: ignore[attr-defined]
    assert value["canaryEvents"] == 100 and value["stableEvents"] == 10 and value["regression"] is True


def test_provider_without_service_is_an_error() -> None:
    outcome = _measure(_Stats(), {})
    assert "service is not set" in (outcome.error or "")  # type: ignore[attr-defined]
