"""A metric's numbers (count, limits, interval, initialDelay) read and checked after argument
substitution, and validation of a run's metrics with Argo's wording."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rollouts.spec.analysis import DEFAULT_CONSECUTIVE_ERROR_LIMIT, Metric
from rollouts.spec.duration import DurationError, parse_duration
from rollouts.spec.intorstr import IntOrStr
from rollouts.spec.ranges import GO_DURATION_MAX_SECONDS, INT32_MAX
from rollouts.spec.rollout import DryRun, MeasurementRetention


class LimitsError(ValueError):
    """A count or limit that is not an integer once arguments are substituted, or a bad duration."""


@dataclass(frozen=True)
class MetricLimits:
    """The numbers that drive a metric's phase. `effective_count` None means unlimited."""

    effective_count: int | None
    failure_limit: int
    inconclusive_limit: int
    consecutive_error_limit: int
    consecutive_success_limit: int
    interval: float | None
    initial_delay: float | None


def _int(metric: Metric, field: str, value: IntOrStr | None, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > INT32_MAX:
            raise LimitsError(f"metrics[{metric.name}].{field}: {value} is out of range (at most {INT32_MAX})")
        return value
    text = str(value).strip()
    if re.fullmatch(r"[+-]?\d+", text):
        number = int(text)
        if abs(number) > INT32_MAX:
            raise LimitsError(f"metrics[{metric.name}].{field}: {number} is out of range (at most {INT32_MAX})")
        return number
    raise LimitsError(f"metrics[{metric.name}].{field}: {value!r} is not an integer")


def _duration(metric: Metric, field: str, value: str | None) -> float | None:
    if value is None or value == "":
        return None
    try:
        seconds = parse_duration(value, bare_number_is_seconds=False)
    except DurationError as exc:
        raise LimitsError(f"metrics[{metric.name}].{field}: {exc}") from exc
    if seconds > GO_DURATION_MAX_SECONDS:
        raise LimitsError(f"metrics[{metric.name}].{field}: {value!r} is longer than the longest Go duration (2562047h)")
    return seconds


def metric_limits(metric: Metric) -> MetricLimits:
    """The metric's numbers with Argo's defaults (count: 1 without interval, unlimited with one)."""
    count = _int(metric, "count", metric.count, 0)
    interval = _duration(metric, "interval", metric.interval)
    effective: int | None = count
    if count == 0:
        effective = 1 if interval is None else None
    return MetricLimits(
        effective_count=effective,
        failure_limit=_int(metric, "failureLimit", metric.failure_limit, 0),
        inconclusive_limit=_int(metric, "inconclusiveLimit", metric.inconclusive_limit, 0),
        consecutive_error_limit=_int(
            metric, "consecutiveErrorLimit", metric.consecutive_error_limit, DEFAULT_CONSECUTIVE_ERROR_LIMIT
        ),
        consecutive_success_limit=_int(
            metric, "consecutiveSuccessLimit", metric.consecutive_success_limit, 0
        ),
        interval=interval,
        initial_delay=_duration(metric, "initialDelay", metric.initial_delay),
    )


def _validate_metric(metric: Metric) -> str | None:
    """Argo's `ValidateMetric` (utils/analysis/factory.go), its checks in its order and wording, plus
    the ranges Argo's types impose (int32 counts, Go durations)."""
    try:
        count = _int(metric, "count", metric.count, 0)
        failure = _int(metric, "failureLimit", metric.failure_limit, 0)
        inconclusive = _int(metric, "inconclusiveLimit", metric.inconclusive_limit, 0)
        errors = _int(metric, "consecutiveErrorLimit", metric.consecutive_error_limit, DEFAULT_CONSECUTIVE_ERROR_LIMIT)
        success = _int(metric, "consecutiveSuccessLimit", metric.consecutive_success_limit, 0)
    except LimitsError as exc:
        return str(exc)
    if success < 0:
        return "consecutiveSuccessLimit must be >= 0"
    if failure < -1:
        return "failureLimit must be >= 0, or -1 to be disabled"
    if success == 0 and failure == -1:
        return "failureLimit and consecutiveSuccessLimit cannot both be disabled"
    if inconclusive < 0:
        return "inconclusiveLimit must be >= 0"
    if errors < 0:
        return "consecutiveErrorLimit must be >= 0"
    if count > 0:
        if success >= 0 and failure >= 0:
            if count < failure + success:
                return (
                    f"count ({count}) must be >= failureLimit + consecutiveSuccessLimit "
                    f"({failure} + {success}) if both >= 0"
                )
        elif success >= 0 and failure < 0 and count < success:
            return "count must be >= consecutiveSuccessLimit"
        if count < inconclusive:
            return "count must be >= inconclusiveLimit"
    if count > 1 and not metric.interval:
        return "interval must be specified when count > 1"
    # Argo still calls initialDelay "startDelay" in this message.
    for label, value in (("interval", metric.interval), ("startDelay", metric.initial_delay)):
        if value:
            try:
                parse_duration(value, bare_number_is_seconds=False)
            except DurationError as exc:
                return f"invalid {label} string: {exc}"
    try:
        metric_limits(metric)  # the ranges
    except LimitsError as exc:
        return str(exc)
    kinds = metric.provider.kinds()
    providers = len(kinds) - ("plugin" in kinds) + len(metric.provider.plugin or {})
    if providers == 0:
        return "no provider specified"
    if providers > 1:
        return "multiple providers specified"
    return None


def _rules_match(
    rules: Sequence[DryRun | MeasurementRetention] | None, metrics: Sequence[Metric], what: str
) -> str | None:
    for index, rule in enumerate(rules or []):
        try:
            pattern = re.compile(rule.metric_name)
        except re.error as exc:
            return (
                f"{what}[{index}]: metricName {rule.metric_name!r} is not a valid regular expression ({exc})"
            )
        if not any(pattern.search(m.name) for m in metrics):
            return f"{what}[{index}]: Rule didn't match any metric name(s)"
    return None


def validate_metrics(
    metrics: Sequence[Metric],
    dry_run: Sequence[DryRun] | None = None,
    measurement_retention: Sequence[MeasurementRetention] | None = None,
) -> str | None:
    """Why these (argument-substituted) metrics cannot run, or None."""
    if not metrics:
        return "no metrics specified"
    names: set[str] = set()
    for index, metric in enumerate(metrics):
        if metric.name in names:
            return f"metrics[{index}]: duplicate name '{metric.name}'"
        names.add(metric.name)
        problem = _validate_metric(metric)
        if problem is not None:
            return f"metrics[{index}]: {problem}"
    return _rules_match(dry_run, metrics, "dryRun") or _rules_match(
        measurement_retention, metrics, "measurementRetention"
    )


def is_dry_run(rules: Sequence[DryRun] | None, metric_name: str) -> bool:
    """Whether any dryRun rule (an unanchored regular expression, `.*` = all) selects the metric."""
    return any(_search(rule.metric_name, metric_name) for rule in rules or [])


def retention_limit(rules: Sequence[MeasurementRetention] | None, metric_name: str, default: int) -> int:
    """How many measurements to keep for a metric: the last matching rule with a positive limit wins."""
    limit = default
    for rule in rules or []:
        if _search(rule.metric_name, metric_name):
            limit = rule.limit if rule.limit > 0 else default
    return limit


def _search(pattern: str, name: str) -> bool:
    try:
        return re.search(pattern, name) is not None
    except re.error:
        return False
