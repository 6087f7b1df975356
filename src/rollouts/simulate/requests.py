"""The simulated requests of a `rollouts simulate` scenario with a `traffic` model, and the measurements of
the `rollouts/traffic` and `rollouts/sequential` metrics taken from them. Pure: seeded randomness, no clock.

Time is cut into one-second ticks after the release (tick k covers [k, k + 1) s). For every tick the
service receives `rps` requests (the fraction of a non-whole rate as one more request with that
probability); each goes to the canary with the canary's weight in percent (a weighted router decides per
request), errors are Binomial(requests, errorRate) of the image that served them. Slow requests (for the
latency test) are drawn lazily per latency threshold from the image's lognormal, with a random stream of
their own, so adding a latency metric does not change the error counts. A measurement at time t counts
the ticks that ended by t.

The measurements use the providers' own config parsing and, for the sequential judge, the same verdict
function, so a template that works here means the same in a cluster.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rollouts.analysis.outcome import MeasurementOutcome
from rollouts.analysis.providers import sequential as seq_provider
from rollouts.analysis.providers import traffic as traffic_provider
from rollouts.analysis.providers.prometheus import format_float
from rollouts.analysis.sequential import ArmCounts, assess_sequential
from rollouts.simulate.traffic import LatencyModel, VersionTraffic, binomial, split_requests
from rollouts.spec.analysis import Metric

TRAFFIC_PLUGIN = traffic_provider.PLUGIN_NAME
SEQUENTIAL_PLUGIN = seq_provider.PLUGIN_NAME
SIMULATED_PLUGINS = (TRAFFIC_PLUGIN, SEQUENTIAL_PLUGIN)


@dataclass(frozen=True)
class Routing:
    """Who serves the service's traffic during a tick: the canary's image and weight (percent), the stable
    image. No canary (None, weight 0) before the release, after an abort and after full promotion."""

    stable_image: str
    canary_image: str | None = None
    canary_weight: float = 0.0


@dataclass
class _Arm:
    """Per-tick counts of one version (canary or stable), with prefix sums for ranges."""

    requests: list[int] = field(default_factory=lambda: [0])  # cumulative, requests[k] = sum of ticks < k
    errors: list[int] = field(default_factory=lambda: [0])
    per_tick: list[tuple[int, str | None]] = field(default_factory=list)  # (requests, image)

    def add(self, requests: int, errors: int, image: str | None) -> None:
        self.requests.append(self.requests[-1] + requests)
        self.errors.append(self.errors[-1] + errors)
        self.per_tick.append((requests, image))


class TrafficLedger:
    """The requests every tick of the simulation served, per version."""

    def __init__(self, rps: float, versions: Mapping[str, VersionTraffic], seed: int) -> None:
        self.rps = rps
        self.versions = dict(versions)
        self.seed = seed
        self._rng = random.Random(seed)
        self.canary = _Arm()
        self.stable = _Arm()
        self.first_canary_tick: int | None = None
        self._slow: dict[tuple[str, float], list[int]] = {}
        self._slow_rng: dict[float, random.Random] = {}

    @property
    def ticks(self) -> int:
        return len(self.canary.per_tick)

    def version(self, image: str) -> VersionTraffic:
        try:
            return self.versions[image]
        except KeyError:
            raise LookupError(f"traffic.versions: no entry for image {image!r} "
                              f"(given: {', '.join(sorted(self.versions))})") from None

    def generate_until(self, seconds: float, routing: Routing) -> None:
        """Ticks up to `seconds` (exclusive of a partial last second), all routed by `routing`."""
        whole, frac = int(self.rps), self.rps - int(self.rps)
        for _ in range(self.ticks, max(int(math.floor(seconds + 1e-9)), 0)):
            total = whole + (1 if frac and self._rng.random() < frac else 0)
            weight = routing.canary_weight if routing.canary_image is not None else 0.0
            to_canary, to_stable = split_requests(self._rng, total, weight)
            canary_errors = 0
            if routing.canary_image is not None:
                canary_errors = binomial(self._rng, to_canary, self.version(routing.canary_image).error_rate)
                if to_canary and self.first_canary_tick is None:
                    self.first_canary_tick = self.ticks
            stable_errors = binomial(self._rng, to_stable, self.version(routing.stable_image).error_rate)
            self.canary.add(to_canary, canary_errors, routing.canary_image)
            self.stable.add(to_stable, stable_errors, routing.stable_image)

    def _range(self, start: float, end: float) -> tuple[int, int]:
        first = min(max(int(math.ceil(start - 1e-9)), 0), self.ticks)
        last = min(max(int(math.floor(end + 1e-9)), first), self.ticks)
        return first, last

    def counts(self, arm_name: str, start: float, end: float) -> tuple[int, int]:
        """(requests, errors) of "canary" or "stable" in the ticks inside [start, end)."""
        arm = self.canary if arm_name == "canary" else self.stable
        a, b = self._range(start, end)
        return arm.requests[b] - arm.requests[a], arm.errors[b] - arm.errors[a]

    def slow(self, arm_name: str, start: float, end: float, threshold_ms: float) -> int:
        """Requests of the version slower than `threshold_ms` in the ticks inside [start, end)."""
        cumulative = self._slow.setdefault((arm_name, threshold_ms), [0])
        rng = self._slow_rng.setdefault(threshold_ms, random.Random(f"{self.seed}/slow/{threshold_ms!r}"))
        # Both arms of a threshold share one stream; extending both in lockstep keeps the draws replayable.
        for name in ("canary", "stable"):
            other = self._slow.setdefault((name, threshold_ms), [0])
            source = self.canary if name == "canary" else self.stable
            for requests, image in source.per_tick[len(other) - 1:]:
                share = self.version(image).latency.share_slower_than(threshold_ms) if image else 0.0
                other.append(other[-1] + binomial(rng, requests, share))
        a, b = self._range(start, end)
        return cumulative[b] - cumulative[a]

    def latency_at(self, arm_name: str, start: float, end: float) -> LatencyModel | None:
        """The latency model of the image that last served the version inside [start, end)."""
        arm = self.canary if arm_name == "canary" else self.stable
        a, b = self._range(start, end)
        for requests, image in reversed(arm.per_tick[a:b]):
            if requests and image is not None:
                return self.version(image).latency
        return None

    def totals(self, arm_name: str) -> tuple[int, int]:
        arm = self.canary if arm_name == "canary" else self.stable
        return arm.requests[-1], arm.errors[-1]


def simulated_plugin(metric: Metric) -> str | None:
    """The plugin of `metric` whose values simulated requests can give, or None."""
    plugin = metric.provider.plugin or {}
    return next((name for name in SIMULATED_PLUGINS if name in plugin), None)


def measurement_ready_at(metric: Metric, run_started: float) -> float | None:
    """When a due measurement of `metric` can be taken, in seconds after the release: a rollouts/traffic
    metric waits (in flight) until its whole window lies inside the run, as the provider does on local
    statistics; None when it need not wait (other plugins, or a config error the measurement will report)."""
    raw = (metric.provider.plugin or {}).get(TRAFFIC_PLUGIN)
    if raw is None:
        return None
    try:
        query = traffic_provider.parse_config(raw)
    except traffic_provider.ConfigError:
        return None
    return traffic_provider.window_inside_run_at(run_started, query)


def measure_from_traffic(
    ledger: TrafficLedger, metric: Metric, now: float, run_started: float
) -> MeasurementOutcome:
    """The measurement of a rollouts/traffic or rollouts/sequential metric at `now` (seconds after the
    release) for a run that started at `run_started`."""
    plugin = metric.provider.plugin or {}
    try:
        if SEQUENTIAL_PLUGIN in plugin:
            return _sequential(ledger, plugin[SEQUENTIAL_PLUGIN], now, run_started)
        return _traffic(ledger, plugin.get(TRAFFIC_PLUGIN), now, run_started)
    except (seq_provider.ConfigError, traffic_provider.ConfigError, ValueError) as exc:
        return MeasurementOutcome(error=str(exc))


def _sequential(ledger: TrafficLedger, raw: Any, now: float, run_started: float) -> MeasurementOutcome:
    query = seq_provider.parse_config(raw)
    start = run_started
    if query.since == "release" and ledger.first_canary_tick is not None:
        start = float(ledger.first_canary_tick)
    arms = []
    for arm in ("canary", "stable"):
        requests, errors = ledger.counts(arm, start, now)
        events = errors if query.test == "errors" else ledger.slow(arm, start, now, query.threshold_ms)
        arms.append(ArmCounts(requests, events))
    budget = None
    if query.since == "release" and query.settings.max_samples is not None:
        budget = ledger.counts("canary", run_started, now)[0]
    verdict = assess_sequential(arms[0], arms[1], query.settings, budget_requests=budget)
    meta = {"service": "simulated", "test": query.test, "since": query.since, "start": format_float(start)}
    return seq_provider.verdict_outcome(verdict, meta)


def _traffic(ledger: TrafficLedger, raw: Any, now: float, run_started: float) -> MeasurementOutcome:
    query = traffic_provider.parse_config(raw)
    if query.version == "preview":
        raise ValueError(f"{traffic_provider.FIELD}.version: preview traffic is not simulated; give this "
                         "metric scenario `analysis` values")
    arm = "canary" if query.version == "canary" else "stable"
    where = f"{query.version} of the simulated service"
    meta = {"service": "simulated", "version": query.version, "window": query.window}
    if query.metric == "error-budget-burn":
        if ledger.first_canary_tick is None and arm == "canary":
            thin = traffic_provider.too_few_requests(0, query, f"served by the {where}", meta)
            return thin or _no_data(f"the {query.version} has served no request yet", meta)
        start = float(ledger.first_canary_tick or 0)
        requests, errors = ledger.counts(arm, start, now)
        meta.update(requests=str(requests), errors=str(errors))
        thin = traffic_provider.too_few_requests(requests, query, f"served by the {where} since its release", meta)
        if thin is not None:
            return thin
        budget = (1 - query.slo) * ledger.rps * query.budget_seconds
        return _number(errors / budget, meta)
    # As the provider's local statistics: nothing from before the run counts.
    start = max(now - query.window_seconds, run_started)
    span = f"in the last {query.window}"
    if run_started > now - query.window_seconds:
        span = f"since the run started ({round(max(now - run_started, 0.0))}s ago)"
    requests, errors = ledger.counts(arm, start, now)
    meta.update(requests=str(requests), errors=str(errors))
    if query.metric == "request-count":
        return _number(float(requests), meta)
    thin = traffic_provider.too_few_requests(requests, query, f"to the {where} {span}", meta)
    if thin is not None:
        return thin
    if requests == 0:
        return _no_data(f"no requests to the {query.version} {span}", meta)
    if query.metric == "success-rate":
        return _number(1 - errors / requests, meta)
    if query.metric == "error-rate":
        return _number(errors / requests, meta)
    latency = ledger.latency_at(arm, start, now)
    assert latency is not None  # requests > 0 in the window
    return _number(latency.quantile_ms(_quantile(query)) / 1000.0, meta)


def _quantile(query: traffic_provider.TrafficQuery) -> float:
    if query.quantile is not None:
        return query.quantile
    return int(query.metric.removeprefix("latency-p")) / 100


def _number(value: float, meta: dict[str, str]) -> MeasurementOutcome:
    value = round(value, 6)
    return MeasurementOutcome(value=value, printed=format_float(value), metadata=meta)


def _no_data(reason: str, meta: dict[str, str]) -> MeasurementOutcome:
    return MeasurementOutcome(value=None, printed="", metadata={**meta, traffic_provider.NO_DATA_KEY: reason})
