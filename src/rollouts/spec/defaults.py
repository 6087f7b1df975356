"""Effective values of settings a manifest may leave unset (Argo's defaults), in one place."""

from __future__ import annotations

from rollouts.spec.analysis import DEFAULT_CONSECUTIVE_ERROR_LIMIT, DEFAULT_MEASUREMENTS_RETAINED, Metric
from rollouts.spec.duration import parse_duration
from rollouts.spec.intorstr import IntOrStr, resolve_int_or_percent
from rollouts.spec.rollout import (
    DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS,
    DEFAULT_ANALYSIS_RUN_HISTORY,
    DEFAULT_MAX_SURGE,
    DEFAULT_MAX_TRAFFIC_WEIGHT,
    DEFAULT_MAX_UNAVAILABLE,
    DEFAULT_PROGRESS_DEADLINE_SECONDS,
    DEFAULT_REPLICAS,
    DEFAULT_REVISION_HISTORY_LIMIT,
    DEFAULT_SCALE_DOWN_DELAY_SECONDS,
    BlueGreenStrategy,
    CanaryStrategy,
    Rollout,
)

DEFAULT_AUTO_PROMOTION_ENABLED = True
DEFAULT_AUTO_PROMOTION_SECONDS = 0
DEFAULT_MIN_READY_SECONDS = 0
DEFAULT_MIN_PODS_PER_REPLICA_SET = 1
DEFAULT_FAILURE_LIMIT = 0
DEFAULT_INCONCLUSIVE_LIMIT = 0
DEFAULT_CONSECUTIVE_SUCCESS_LIMIT = 0
DEFAULT_PROMETHEUS_TIMEOUT_SECONDS = 30
DEFAULT_WEB_TIMEOUT_SECONDS = 10


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def replicas(rollout: Rollout) -> int:
    return _or(rollout.spec.replicas, DEFAULT_REPLICAS)


def revision_history_limit(rollout: Rollout) -> int:
    return _or(rollout.spec.revision_history_limit, DEFAULT_REVISION_HISTORY_LIMIT)


def progress_deadline_seconds(rollout: Rollout) -> int:
    return _or(rollout.spec.progress_deadline_seconds, DEFAULT_PROGRESS_DEADLINE_SECONDS)


def min_ready_seconds(rollout: Rollout) -> int:
    return _or(rollout.spec.min_ready_seconds, DEFAULT_MIN_READY_SECONDS)


def successful_run_history_limit(rollout: Rollout) -> int:
    analysis = rollout.spec.analysis
    return _or(analysis.successful_run_history_limit if analysis else None, DEFAULT_ANALYSIS_RUN_HISTORY)


def unsuccessful_run_history_limit(rollout: Rollout) -> int:
    analysis = rollout.spec.analysis
    return _or(analysis.unsuccessful_run_history_limit if analysis else None, DEFAULT_ANALYSIS_RUN_HISTORY)


def max_surge(canary: CanaryStrategy) -> IntOrStr:
    return DEFAULT_MAX_SURGE if canary.max_surge is None else canary.max_surge


def max_unavailable(strategy: CanaryStrategy | BlueGreenStrategy) -> IntOrStr:
    return DEFAULT_MAX_UNAVAILABLE if strategy.max_unavailable is None else strategy.max_unavailable


def max_surge_replicas(rollout: Rollout, canary: CanaryStrategy) -> int:
    """Extra pods allowed above spec.replicas (percentages round up)."""
    return resolve_int_or_percent(canary.max_surge, replicas(rollout), round_up=True, default=DEFAULT_MAX_SURGE)


def max_unavailable_replicas(rollout: Rollout, strategy: CanaryStrategy | BlueGreenStrategy) -> int:
    """Pods that may be unavailable (percentages round down); 1 when both this and maxSurge resolve to 0."""
    total = replicas(rollout)
    value = resolve_int_or_percent(
        strategy.max_unavailable, total, round_up=False, default=DEFAULT_MAX_UNAVAILABLE
    )
    surge = max_surge_replicas(rollout, strategy) if isinstance(strategy, CanaryStrategy) else 1
    return 1 if value == 0 and surge == 0 else value


def max_traffic_weight(rollout: Rollout) -> int:
    canary = rollout.spec.strategy.canary
    routing = canary.traffic_routing if canary else None
    return _or(routing.max_traffic_weight if routing else None, DEFAULT_MAX_TRAFFIC_WEIGHT)


def scale_down_delay_seconds(strategy: CanaryStrategy | BlueGreenStrategy) -> int:
    """Delay before the previous stable ReplicaSet is scaled down; canary only has one with traffic routing."""
    if isinstance(strategy, CanaryStrategy) and strategy.traffic_routing is None:
        return 0
    return _or(strategy.scale_down_delay_seconds, DEFAULT_SCALE_DOWN_DELAY_SECONDS)


def abort_scale_down_delay_seconds(strategy: CanaryStrategy | BlueGreenStrategy) -> int:
    return _or(strategy.abort_scale_down_delay_seconds, DEFAULT_ABORT_SCALE_DOWN_DELAY_SECONDS)


def min_pods_per_replica_set(canary: CanaryStrategy) -> int:
    return _or(canary.min_pods_per_replica_set, DEFAULT_MIN_PODS_PER_REPLICA_SET)


def auto_promotion_enabled(blue_green: BlueGreenStrategy) -> bool:
    value = blue_green.auto_promotion_enabled
    return DEFAULT_AUTO_PROMOTION_ENABLED if value is None else value


def auto_promotion_seconds(blue_green: BlueGreenStrategy) -> int:
    return _or(blue_green.auto_promotion_seconds, DEFAULT_AUTO_PROMOTION_SECONDS)


def _int(value: IntOrStr | None, default: int) -> int:
    """An int-or-string limit after argument substitution (an unresolved string falls back to the default)."""
    if value is None:
        return default
    if isinstance(value, int):
        return value
    try:
        return int(value.strip())
    except ValueError:
        return default


def failure_limit(metric: Metric) -> int:
    return _int(metric.failure_limit, DEFAULT_FAILURE_LIMIT)


def inconclusive_limit(metric: Metric) -> int:
    return _int(metric.inconclusive_limit, DEFAULT_INCONCLUSIVE_LIMIT)


def consecutive_error_limit(metric: Metric) -> int:
    return _int(metric.consecutive_error_limit, DEFAULT_CONSECUTIVE_ERROR_LIMIT)


def consecutive_success_limit(metric: Metric) -> int:
    return _int(metric.consecutive_success_limit, DEFAULT_CONSECUTIVE_SUCCESS_LIMIT)


def measurements_retained() -> int:
    return DEFAULT_MEASUREMENTS_RETAINED


def effective_count(metric: Metric) -> int | None:
    """Measurements a metric takes: 1 without interval and count, None (unlimited) with an interval and no
    positive count, else count."""
    count = _int(metric.count, 0)
    if count > 0:
        return count
    return None if metric.interval else 1


def interval_seconds(metric: Metric) -> float | None:
    return parse_duration(metric.interval, bare_number_is_seconds=False) if metric.interval else None


def initial_delay_seconds(metric: Metric) -> float:
    if not metric.initial_delay:
        return 0.0
    return parse_duration(metric.initial_delay, bare_number_is_seconds=False)
