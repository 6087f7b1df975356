"""What the plugins that read request traffic (`rollouts/traffic`, `rollouts/sequential`) share: the local
traffic source they read, the callbacks the controller binds, and a base class that resolves which service
and revision to measure (`Scope`) and whether to ask Prometheus instead of the local statistics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from rollouts.analysis.outcome import MeasurementOutcome
from rollouts.analysis.providers.base import MeasureContext
from rollouts.analysis.providers.prometheus import ADDRESS_ENV_VARS, PrometheusMetricProvider
from rollouts.analysis.providers.run_target import RunTarget, RunTargetLookup
from rollouts.spec.analysis import Metric, MetricProvider, PrometheusProvider


class TrafficWindow(Protocol):
    """What a window of local traffic statistics offers (runtime.local.traffic.WindowStats)."""

    @property
    def requests(self) -> int: ...

    @property
    def errors(self) -> int: ...

    @property
    def success_rate(self) -> float | None: ...

    @property
    def error_rate(self) -> float | None: ...

    def quantile(self, q: float) -> float | None: ...


class TrafficSource(Protocol):
    """Local per-version request statistics (runtime.local.traffic.TrafficStats)."""

    def window(
        self, namespace: str, service: str, version: str | Sequence[str], seconds: float, now: float | None = None,
        *, pod_hash: str | None = None, not_before: float | None = None,
    ) -> TrafficWindow: ...

    def since(
        self, namespace: str, service: str, version: str | Sequence[str], start: float, now: float | None = None,
        *, pod_hash: str | None = None,
    ) -> TrafficWindow: ...

    def first_seen(
        self, namespace: str, service: str, version: str | Sequence[str], *, pod_hash: str | None = None
    ) -> float | None: ...

    def request_rate(self, namespace: str, service: str, now: float | None = None) -> float | None: ...


ReleaseStart = Callable[[str, str, str], "float | None"]
DefaultService = Callable[[MeasureContext], "str | None"]

# Fewer requests than this in a gate's window and the measurement is Inconclusive, never Successful.
DEFAULT_MIN_REQUESTS = 50


@dataclass(frozen=True)
class Scope:
    """Which traffic one measurement reads: the service, the revision under test of each version (when
    the run belongs to a rollout of that service) and the run's start (nothing before it counts)."""

    service: str
    target: RunTarget | None = None
    not_before: float | None = None

    def pod_hash(self, version: str) -> str | None:
        if self.target is None or self.target.service != self.service:
            return None  # another service than the rollout's: its pods are not the rollout's revision
        return self.target.pod_hash(version)


class TrafficPlugin:
    """Reads local stats when bound, else Prometheus; subclasses set `field` (their config's path)."""

    type_label = "RPCPlugin"
    field: ClassVar[str]

    def __init__(
        self,
        *,
        stats: TrafficSource | None = None,
        clock: Callable[[], float] = time.time,
        release_start: ReleaseStart | None = None,
        default_service: DefaultService | None = None,
        run_target: RunTargetLookup | None = None,
        prometheus: PrometheusMetricProvider | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._stats = stats
        self._clock = clock
        self._release_start = release_start
        self._default_service = default_service
        self._run_target = run_target
        self._prometheus = prometheus or PrometheusMetricProvider()
        self._sleep = sleep

    async def _wait_until(self, due: float) -> None:
        """Sleep until the clock reads `due` (re-read after each nap: the clock is injectable)."""
        while (left := due - self._clock()) > 0:
            await self._sleep(min(left, 1.0))

    def _scope(self, configured: str | None, ctx: MeasureContext) -> Scope | None:
        """The service (the config's `service`, else the argument `service-name`, else the owning rollout's,
        else the `default_service` callback's) with the run's revision and start; None without a service."""
        target = self._run_target(ctx) if self._run_target is not None else None
        service = configured or ctx.args.get("service-name") or (target.service if target else None)
        if not service and self._default_service is not None:
            service = self._default_service(ctx)
        if not service:
            return None
        started = ctx.run_started_at.timestamp() if ctx.run_started_at is not None else None
        return Scope(service=service, target=target, not_before=started)

    def _service(self, configured: str | None, ctx: MeasureContext) -> str | None:
        scope = self._scope(configured, ctx)
        return scope.service if scope else None

    def _no_service(self, ctx: MeasureContext) -> MeasurementOutcome:
        return ctx.error(f"{self.field}.service is not set and no service could be inferred: set it, e.g. "
                         'service: "{{args.service-name}}"')

    def _prometheus_address(self, prometheus: Mapping[str, Any] | None, ctx: MeasureContext) -> str | None:
        """The config's `prometheus.address`; without local stats, else the address in the environment."""
        if prometheus is not None and prometheus.get("address"):
            return str(prometheus["address"]).rstrip("/")
        if self._stats is None:
            env = ctx.environment()
            for name in ADDRESS_ENV_VARS:
                if env.get(name):
                    return env[name].rstrip("/")
        return None

    def _no_source(self, ctx: MeasureContext) -> MeasurementOutcome:
        return ctx.error(f"{self.field}: no local traffic statistics here (not the local runtime) and no "
                         f"Prometheus: set {self.field}.prometheus.address or {ADDRESS_ENV_VARS[0]}")

    def _prometheus_metric(self, metric: Metric, prometheus: Mapping[str, Any] | None, address: str,
                           promql: str) -> Metric:
        """`promql` as a Prometheus metric with the config's other `prometheus` settings; ValueError if invalid."""
        spec = dict(prometheus or {})
        spec.update(address=address, query=promql)
        return Metric(name=metric.name, provider=MetricProvider(prometheus=PrometheusProvider.model_validate(spec)))
