"""Invariants of assessment under random measurement sequences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rollouts.analysis.advance import advance_run
from rollouts.analysis.assessment import COMPLETED, PHASE_ORDER, assess_run, record_measurement
from rollouts.analysis.outcome import MeasurementOutcome
from rollouts.spec.analysis import AnalysisRun, AnalysisRunStatus, Measurement, MetricResult

T0 = datetime(2024, 1, 1, tzinfo=UTC)
MEASURED = ["Successful", "Failed", "Inconclusive", "Error"]

phases = st.sampled_from(MEASURED)
limits = st.fixed_dictionaries(
    {
        "interval": st.just("10s"),
        "count": st.integers(min_value=0, max_value=6),
        "inconclusiveLimit": st.integers(min_value=0, max_value=2),
        "consecutiveErrorLimit": st.integers(min_value=0, max_value=4),
    }
)


def outcome(phase: str) -> MeasurementOutcome:
    if phase == "Error":
        return MeasurementOutcome(error="boom")
    return MeasurementOutcome(phase=phase)  # type: ignore[arg-type]


def run_with(metric_fields: list[dict[str, Any]], terminate: bool = False) -> AnalysisRun:
    metrics = [
        {"name": f"m{i}", "provider": {"job": {"spec": {"template": {"spec": {"containers": []}}}}}, **f}
        for i, f in enumerate(metric_fields)
    ]
    return AnalysisRun.model_validate(
        {"metadata": {"name": "r"}, "spec": {"metrics": metrics, "terminate": terminate}}
    )


@given(st.lists(phases, max_size=30))
def test_errors_never_count_toward_count(sequence: list[str]) -> None:
    result = MetricResult(name="m")
    for i, phase in enumerate(sequence):
        stamp = T0 + timedelta(seconds=i)
        measurement = Measurement(phase=phase, started_at=stamp, finished_at=stamp)  # type: ignore[arg-type]
        result = record_measurement(result, measurement, 5)
    non_errors = sum(p != "Error" for p in sequence)
    assert result.count == non_errors == result.successful + result.failed + result.inconclusive
    assert result.error == len(sequence) - non_errors
    trailing = len(sequence) - len("".join("x" if p == "Error" else "." for p in sequence).rstrip("x"))
    assert result.consecutive_error == trailing
    assert len(result.measurements) == min(5, len(sequence))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(limits, min_size=1, max_size=3), st.lists(st.lists(phases, min_size=1, max_size=3), max_size=12)
)
def test_completed_phases_are_monotone(fields: list[dict[str, Any]], rounds: list[list[str]]) -> None:
    run = run_with(fields)
    seen_metric: dict[str, str] = {}
    seen_run: AnalysisRunStatus | None = None
    for step, round_phases in enumerate(rounds):
        now = T0 + timedelta(seconds=10 * step)
        taken = {f"m{i}": outcome(p) for i, p in enumerate(round_phases[: len(fields)])}
        run = advance_run(run, now, taken)
        assert run.status is not None
        if seen_run is not None:
            assert run.status == seen_run  # a completed run never changes
        if run.status.phase in COMPLETED:
            seen_run = run.status
        for result in run.status.metric_results:
            if result.name in seen_metric:
                assert result.phase == seen_metric[result.name]  # a completed metric never changes
            elif result.phase in COMPLETED:
                seen_metric[result.name] = result.phase


@given(st.lists(phases, min_size=1, max_size=6), st.booleans())
def test_run_phase_is_worst_metric_phase(metric_phases: list[str], terminate: bool) -> None:
    run = run_with([{} for _ in metric_phases], terminate=terminate)
    results = []
    for i, phase in enumerate(metric_phases):
        m = Measurement(phase=phase, started_at=T0, finished_at=T0)  # type: ignore[arg-type]
        results.append(MetricResult(name=f"m{i}", phase=phase, measurements=[m]))  # type: ignore[arg-type]
    run = run.model_copy(update={"status": AnalysisRunStatus(phase="Running", metric_results=results)})
    status = assess_run(run, T0)
    assert status.phase == max(metric_phases, key=PHASE_ORDER.index)
