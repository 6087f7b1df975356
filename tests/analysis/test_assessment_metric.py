"""Metric bookkeeping and metric phase (reference 2.4, rules 1-5), table-driven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rollouts.analysis.assessment import assess_metric_phase, record_measurement
from rollouts.spec.analysis import Measurement, Metric, MetricResult

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def metric(**fields: Any) -> Metric:
    return Metric.model_validate({"name": "m", "provider": {"web": {"url": "http://x"}}, **fields})


def done(phase: str, at: int = 0) -> Measurement:
    return Measurement(
        phase=phase, started_at=T0 + timedelta(seconds=at), finished_at=T0 + timedelta(seconds=at)
    )  # type: ignore[arg-type]


def result_of(*phases: str) -> MetricResult:
    result = MetricResult(name="m", phase="Running")
    for i, phase in enumerate(phases):
        result = record_measurement(result, done(phase, i), 10)
    return result


# --- bookkeeping -----------------------------------------------------------------------------------

BOOKKEEPING = [
    # phases, (count, successful, failed, inconclusive, error, consecutiveError, consecutiveSuccess)
    pytest.param(["Successful"], (1, 1, 0, 0, 0, 0, 1), id="success-counts"),
    pytest.param(["Failed"], (1, 0, 1, 0, 0, 0, 0), id="failure-counts"),
    pytest.param(["Inconclusive"], (1, 0, 0, 1, 0, 0, 0), id="inconclusive-counts"),
    pytest.param(["Error"], (0, 0, 0, 0, 1, 1, 0), id="error-not-in-count"),
    pytest.param(
        ["Error", "Error", "Successful"], (1, 1, 0, 0, 2, 0, 1), id="success-resets-consecutive-error"
    ),
    pytest.param(["Error", "Failed"], (1, 0, 1, 0, 1, 0, 0), id="failure-resets-consecutive-error"),
    pytest.param(
        ["Successful", "Successful", "Error"], (2, 2, 0, 0, 1, 1, 0), id="error-resets-consecutive-success"
    ),
    pytest.param(
        ["Successful", "Inconclusive", "Successful"], (3, 2, 0, 1, 0, 0, 1), id="inconclusive-resets-success"
    ),
]


@pytest.mark.parametrize(("phases", "expected"), BOOKKEEPING)
def test_record_measurement_counters(phases: list[str], expected: tuple[int, ...]) -> None:
    r = result_of(*phases)
    got = (
        r.count,
        r.successful,
        r.failed,
        r.inconclusive,
        r.error,
        r.consecutive_error,
        r.consecutive_success,
    )
    assert got == expected


@pytest.mark.parametrize(
    ("limit", "kept"), [(10, 10), (3, 3), (1, 1)], ids=["default-10", "limit-3", "limit-1"]
)
def test_record_measurement_keeps_last_n(limit: int, kept: int) -> None:
    result = MetricResult(name="m")
    for i in range(15):
        result = record_measurement(result, done("Successful", i), limit)
    assert len(result.measurements) == kept
    assert result.measurements[-1].started_at == T0 + timedelta(seconds=14)
    assert result.count == 15


def test_record_measurement_replaces_in_flight_measurement() -> None:
    running = Measurement(phase="Running", started_at=T0, resume_at=T0 + timedelta(seconds=5))
    result = record_measurement(MetricResult(name="m"), running, 10)
    assert (len(result.measurements), result.count) == (1, 0)
    result = record_measurement(result, done("Failed", 9), 10)
    assert [m.phase for m in result.measurements] == ["Failed"]
    assert (result.count, result.failed) == (1, 1)


# --- metric phase ----------------------------------------------------------------------------------

PHASES = [
    # rule 1
    pytest.param({}, [], False, "Pending", "", id="r1-no-measurements-pending"),
    pytest.param({}, [], True, "Successful", "", id="r1-no-measurements-terminating-successful"),
    pytest.param({}, ["Running"], False, "Running", "", id="r1-in-flight-running"),
    # rule 2: each limit
    pytest.param(
        {"interval": "1m", "count": 5},
        ["Failed"],
        False,
        "Failed",
        'Metric "m" assessed Failed due to failed (1) > failureLimit (0)',
        id="r2-failure-limit-default-0",
    ),
    pytest.param(
        {"interval": "1m", "count": 5, "failureLimit": 1},
        ["Failed"],
        False,
        "Running",
        "",
        id="r2-within-failure-limit",
    ),
    pytest.param(
        {"interval": "1m", "count": 5, "failureLimit": 1},
        ["Failed", "Failed"],
        False,
        "Failed",
        'Metric "m" assessed Failed due to failed (2) > failureLimit (1)',
        id="r2-failure-limit-exceeded",
    ),
    pytest.param(
        {"interval": "1m", "count": 5, "failureLimit": -1, "consecutiveSuccessLimit": 2},
        ["Failed", "Failed", "Failed"],
        False,
        "Running",
        "",
        id="r2-failure-limit-disabled",
    ),
    pytest.param(
        {"interval": "1m", "count": 5},
        ["Inconclusive"],
        False,
        "Inconclusive",
        'Metric "m" assessed Inconclusive due to inconclusive (1) > inconclusiveLimit (0)',
        id="r2-inconclusive-limit",
    ),
    pytest.param(
        {"interval": "1m", "count": 5, "inconclusiveLimit": 2},
        ["Inconclusive"] * 2,
        False,
        "Running",
        "",
        id="r2-within-inconclusive",
    ),
    pytest.param(
        {"interval": "1m", "count": 5}, ["Error"] * 4, False, "Running", "", id="r2-four-errors-tolerated"
    ),
    pytest.param(
        {"interval": "1m", "count": 5},
        ["Error"] * 5,
        False,
        "Error",
        'Metric "m" assessed Error due to consecutiveErrors (5) > consecutiveErrorLimit (4)',
        id="r2-consecutive-error-limit-default-4",
    ),
    pytest.param(
        {"interval": "1m", "count": 5, "consecutiveErrorLimit": 0},
        ["Error"],
        False,
        "Error",
        'Metric "m" assessed Error due to consecutiveErrors (1) > consecutiveErrorLimit (0)',
        id="r2-consecutive-error-limit-0",
    ),
    pytest.param(
        {"interval": "1m", "count": 9},
        ["Error", "Error", "Successful", "Error"],
        False,
        "Running",
        "",
        id="r2-errors-not-consecutive",
    ),
    # rule 2: order, later overriding
    pytest.param(
        {"interval": "1m", "count": 5},
        ["Failed", "Inconclusive"],
        False,
        "Inconclusive",
        'Metric "m" assessed Inconclusive due to inconclusive (1) > inconclusiveLimit (0)',
        id="r2-inconclusive-overrides-failed",
    ),
    pytest.param(
        {"interval": "1m", "count": 9, "consecutiveErrorLimit": 1},
        ["Failed", "Inconclusive", "Error", "Error"],
        False,
        "Error",
        'Metric "m" assessed Error due to consecutiveErrors (2) > consecutiveErrorLimit (1)',
        id="r2-error-overrides-both",
    ),
    # rule 3
    pytest.param(
        {"interval": "1m", "count": 5, "failureLimit": 2, "consecutiveSuccessLimit": 2},
        ["Failed", "Successful", "Successful"],
        False,
        "Successful",
        "",
        id="r3-consecutive-success-reached",
    ),
    pytest.param(
        {"interval": "1m", "count": 5, "failureLimit": 2, "consecutiveSuccessLimit": 2},
        ["Successful", "Failed", "Successful"],
        False,
        "Running",
        "",
        id="r3-consecutive-success-broken",
    ),
    # rule 4: effective count
    pytest.param({}, ["Successful"], False, "Successful", "", id="r4-no-count-no-interval-is-one"),
    pytest.param({"count": 0}, ["Successful"], False, "Successful", "", id="r4-count-0-no-interval-is-one"),
    pytest.param(
        {"interval": "1m", "count": 3}, ["Successful"] * 2, False, "Running", "", id="r4-count-not-reached"
    ),
    pytest.param(
        {"interval": "1m", "count": 3}, ["Successful"] * 3, False, "Successful", "", id="r4-count-reached"
    ),
    pytest.param(
        {"interval": "1m", "count": 3, "failureLimit": 1},
        ["Successful", "Failed", "Successful"],
        False,
        "Successful",
        "",
        id="r4-failures-within-limit",
    ),
    pytest.param(
        {"interval": "1m", "count": 2},
        ["Successful", "Error", "Error"],
        False,
        "Running",
        "",
        id="r4-errors-do-not-count",
    ),
    pytest.param(
        {"interval": "1m", "count": "3"}, ["Successful"] * 3, False, "Successful", "", id="r4-count-as-string"
    ),
    pytest.param(
        {"interval": "1m", "count": 3, "failureLimit": 2, "consecutiveSuccessLimit": 2},
        ["Successful", "Failed", "Successful"],
        False,
        "Inconclusive",
        'Metric "m" assessed Inconclusive due to consecutiveSuccess (1) < consecutiveSuccessLimit (2) '
        "after count was reached",
        id="r4-both-enabled-neither-hit-inconclusive",
    ),
    pytest.param(
        {"interval": "1m", "count": 3, "failureLimit": -1, "consecutiveSuccessLimit": 2},
        ["Successful", "Failed", "Successful"],
        False,
        "Failed",
        'Metric "m" assessed Failed due to consecutiveSuccess (1) < consecutiveSuccessLimit (2) '
        "after count was reached",
        id="r4-only-success-limit-not-hit-failed",
    ),
    # rule 5: unlimited
    pytest.param({"interval": "1m"}, ["Successful"] * 20, False, "Running", "", id="r5-unlimited-runs"),
    pytest.param(
        {"interval": "1m"},
        ["Successful"] * 3,
        True,
        "Successful",
        "",
        id="r5-unlimited-terminating-successful",
    ),
    pytest.param(
        {"interval": "1m", "count": 5}, ["Successful"], True, "Successful", "", id="terminating-before-count"
    ),
    pytest.param(
        {"interval": "1m", "count": 5},
        ["Failed"],
        True,
        "Failed",
        'Metric "m" assessed Failed due to failed (1) > failureLimit (0)',
        id="terminating-keeps-violated-failure-limit",
    ),
]


@pytest.mark.parametrize(("fields", "phases", "terminating", "phase", "message"), PHASES)
def test_assess_metric_phase(
    fields: dict[str, Any], phases: list[str], terminating: bool, phase: str, message: str
) -> None:
    result = MetricResult(name="m", phase="Running")
    for i, p in enumerate(phases):
        m = Measurement(phase="Running", started_at=T0) if p == "Running" else done(p, i)
        result = record_measurement(result, m, 100)
    assert assess_metric_phase(metric(**fields), result, terminating=terminating, dry_run=False) == (
        phase,
        message,
    )


def test_error_message_appended_from_last_measurement() -> None:
    result = MetricResult(name="m", phase="Running")
    for i in range(5):
        m = Measurement(
            phase="Error", message="connection refused", started_at=T0, finished_at=T0 + timedelta(seconds=i)
        )
        result = record_measurement(result, m, 10)
    phase, message = assess_metric_phase(metric(), result, terminating=False, dry_run=False)
    assert phase == "Error"
    assert message == (
        'Metric "m" assessed Error due to consecutiveErrors (5) > consecutiveErrorLimit (4): '
        '"Error Message: connection refused"'
    )


def test_dry_run_message_wording() -> None:
    phase, message = assess_metric_phase(metric(), result_of("Failed"), terminating=False, dry_run=True)
    assert (phase, message) == ("Failed", "Metric assessed Failed due to failed (1) > failureLimit (0)")


@pytest.mark.parametrize("phase", ["Successful", "Failed", "Error", "Inconclusive"])
def test_completed_metric_never_changes(phase: str) -> None:
    result = result_of("Successful").model_copy(update={"phase": phase})
    assert assess_metric_phase(metric(interval="1m"), result, terminating=True, dry_run=False)[0] == phase


def test_unresolved_limit_is_error() -> None:
    phase, message = assess_metric_phase(
        metric(interval="1m", count="{{args.count}}"),
        result_of("Successful"),
        terminating=False,
        dry_run=False,
    )
    assert phase == "Error"
    assert "count" in message and "{{args.count}}" in message
