"""A provider value judged by successCondition / failureCondition (reference 2.4, measurement)."""

from __future__ import annotations

from typing import Any

import pytest

from rollouts.analysis.assessment import assess_measurement_value, judge_outcome
from rollouts.analysis.outcome import MeasurementOutcome
from rollouts.spec.analysis import Metric


def metric(success: str | None = None, failure: str | None = None) -> Metric:
    return Metric.model_validate(
        {
            "name": "m",
            "provider": {"prometheus": {"query": "q"}},
            "successCondition": success,
            "failureCondition": failure,
        }
    )


TABLE = [
    pytest.param(None, None, [0.1], "Successful", id="neither-successful"),
    pytest.param("result[0] >= 0.95", None, [0.99], "Successful", id="only-success-true"),
    pytest.param("result[0] >= 0.95", None, [0.5], "Failed", id="only-success-false"),
    pytest.param(None, "result[0] >= 10", [12], "Failed", id="only-failure-true"),
    pytest.param(None, "result[0] >= 10", [3], "Successful", id="only-failure-false"),
    pytest.param("result[0] >= 0.90", "result[0] < 0.50", [0.3], "Failed", id="both-failure-true"),
    pytest.param("result[0] >= 0.90", "result[0] < 0.50", [0.95], "Successful", id="both-success-true"),
    pytest.param(
        "result[0] >= 0.90", "result[0] < 0.50", [0.7], "Inconclusive", id="both-neither-inconclusive"
    ),
    pytest.param("result == true", "result == true", True, "Failed", id="both-true-failure-wins"),
    pytest.param(
        "result.ok && result.successPercent >= 0.90",
        None,
        {"ok": True, "successPercent": 0.95},
        "Successful",
        id="web-json",
    ),
    pytest.param("default(result, 0) < 0.05", None, None, "Successful", id="default-on-nil"),
]


@pytest.mark.parametrize(("success", "failure", "value", "phase"), TABLE)
def test_assess_measurement_value(success: str | None, failure: str | None, value: Any, phase: str) -> None:
    assert assess_measurement_value(metric(success, failure), value) == (phase, None)


ERRORS = [
    pytest.param("result[0] >= 0.95", None, [], "metric result is nil or empty", id="empty-vector"),
    pytest.param("result[0] >= 0.95", None, None, "metric result is nil or empty", id="nil-result"),
    pytest.param("result[0]", None, [1.0], "expected bool", id="not-bool"),
    pytest.param("result[0] >= 0.9", "result[5] > 1", [1.0], "", id="error-in-failure-condition"),
    pytest.param("result >= (", None, [1.0], "", id="syntax-error"),
]


@pytest.mark.parametrize(("success", "failure", "value", "fragment"), ERRORS)
def test_expression_errors_are_measurement_errors(
    success: str | None, failure: str | None, value: Any, fragment: str
) -> None:
    phase, message = assess_measurement_value(metric(success, failure), value)
    assert phase == "Error"
    assert message and fragment in message


OUTCOMES = [
    pytest.param(MeasurementOutcome(error="HTTP 503"), ("Error", "HTTP 503"), id="provider-error"),
    pytest.param(
        MeasurementOutcome(phase="Failed", value=[1.0]),
        ("Failed", None),
        id="provider-phase-ignores-conditions",
    ),
    pytest.param(MeasurementOutcome(value=[0.5]), ("Failed", None), id="conditions-judge-value"),
]


@pytest.mark.parametrize(("outcome", "expected"), OUTCOMES)
def test_judge_outcome(outcome: MeasurementOutcome, expected: tuple[str, str | None]) -> None:
    assert judge_outcome(metric("result[0] >= 0.95"), outcome) == expected
