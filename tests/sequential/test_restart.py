"""The sequential provider after a controller restart: a fresh provider instance given the same counts and
the run's stored start (ctx.run_started_at) reaches the same verdict; service-name from ctx.args."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from rollouts.analysis.outcome import MeasurementOutcome
from rollouts.analysis.providers.base import MeasureContext
from rollouts.analysis.providers.sequential import SequentialMetricProvider
from rollouts.spec.analysis import Metric

RUN_START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC).timestamp()


@dataclass
class _Window:
    requests: int
    errors: int


class SecondStats:
    """Per-second traffic since RUN_START: the canary serves 20 requests/s at 3 errors per 100, the stable
    180/s at 1 per 200. Counts depend only on the [start, now) asked for, as stored counters would."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, float, float]] = []

    def _counts(self, version: str, start: float, now: float) -> _Window:
        seconds = max(int(now - max(start, RUN_START)), 0)
        if version == "canary":
            return _Window(20 * seconds, (20 * seconds * 3) // 100)
        return _Window(180 * seconds, (180 * seconds) // 200)

    def window(self, namespace: str, service: str, version: object, seconds: float, now: float | None = None,
               **scope: object) -> _Window:
        assert now is not None
        self.asked.append((service, now - seconds, now))
        return self._counts(str(version), now - seconds, now)

    def since(self, namespace: str, service: str, version: object, start: float, now: float | None = None,
              **scope: object) -> _Window:
        assert now is not None
        self.asked.append((service, start, now))
        return self._counts(str(version), start, now)

    def first_seen(self, namespace: str, service: str, version: object, **scope: object) -> float | None:
        return None

    def request_rate(self, namespace: str, service: str, now: float | None = None) -> float | None:
        return None


METRIC = Metric.model_validate({"name": "seq", "provider": {"plugin": {"rollouts/sequential": {
    "test": "errors", "alpha": 0.01, "minSamples": 100, "since": "run"}}}})


def _ctx(run_started_at: datetime | None, args: dict[str, str] | None = None) -> MeasureContext:
    return MeasureContext(namespace="shop", run_name="shop-abc-2-3", metric_name="seq", measurement_index=1,
                          run_started_at=run_started_at, args=args or {"service-name": "shop"})


def _measure(provider: SequentialMetricProvider, ctx: MeasureContext) -> MeasurementOutcome:
    return asyncio.run(provider.measure(METRIC, ctx))


def _provider(stats: SecondStats, now: float) -> SequentialMetricProvider:
    return SequentialMetricProvider(stats=stats, clock=lambda: now)  # type: ignore[arg-type]


def _value(outcome: MeasurementOutcome) -> dict[str, Any]:
    assert outcome.error is None, outcome.error
    assert isinstance(outcome.value, dict)
    return outcome.value


START = datetime.fromtimestamp(RUN_START, UTC)


def test_a_fresh_provider_with_the_stored_run_start_reaches_the_same_verdict() -> None:
    stats = SecondStats()
    clock = [RUN_START + 4]
    running_provider = SequentialMetricProvider(stats=stats, clock=lambda: clock[0])  # type: ignore[arg-type]
    assert _value(_measure(running_provider, _ctx(START)))["decided"] is False
    clock[0] = RUN_START + 120
    running = _value(_measure(running_provider, _ctx(START)))
    # The controller restarts: a new provider instance, same stored counts and run start.
    restarted = _value(_measure(_provider(SecondStats(), RUN_START + 120), _ctx(START)))
    assert running == restarted
    assert (restarted["regression"], restarted["decided"]) == (True, True)
    assert restarted["canaryRequests"] == 2400 and restarted["canaryEvents"] == 72


def test_without_a_run_start_a_restart_would_start_the_test_over() -> None:
    # What ctx.run_started_at prevents: the fallback start is this process's first measurement.
    fresh = _value(_measure(_provider(SecondStats(), RUN_START + 120), _ctx(None)))
    assert fresh["canaryRequests"] <= 20 and fresh["decided"] is False


@pytest.mark.parametrize(
    ("args", "config_service", "expected"),
    [({"service-name": "shop"}, None, "shop"), ({"service-name": "shop"}, "cart", "cart")],
    ids=["from-args", "config-wins"],
)
def test_service_comes_from_the_config_else_the_service_name_arg(
    args: dict[str, str], config_service: str | None, expected: str
) -> None:
    stats = SecondStats()
    config: dict[str, Any] = {"since": "run"}
    if config_service:
        config["service"] = config_service
    metric = Metric.model_validate({"name": "seq", "provider": {"plugin": {"rollouts/sequential": config}}})
    outcome = asyncio.run(_provider(stats, RUN_START + 60).measure(metric, _ctx(START, args)))
    assert outcome.metadata["service"] == expected and {s for s, _, _ in stats.asked} == {expected}
