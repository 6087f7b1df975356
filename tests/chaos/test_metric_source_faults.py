"""The metric source down, slow past the provider timeout, or answering garbage: through the real prometheus
and web providers over real HTTP, each fault is an Error measurement (NaN: an Inconclusive one, as Argo's
rules give), bounded in time and memory; one release-level run of the bench family on a real cluster."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from rollouts.analysis.assessment import judge_outcome
from rollouts.analysis.providers import PrometheusMetricProvider, WebMetricProvider
from rollouts.analysis.providers._http import MAX_BODY_BYTES
from rollouts.analysis.providers.base import MeasureContext
from rollouts.spec.analysis import Metric

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from chaoslib import metric_source  # noqa: E402
from chaoslib.metric_source import MetricSource, metric_spec  # noqa: E402

CTX = MeasureContext(namespace="default", run_name="shop-abc-2", metric_name="success-rate", measurement_index=1)
PROVIDERS = {"prometheus": PrometheusMetricProvider, "web": WebMetricProvider}

# (fault, provider, measurement phase, words the message must carry)
CASES = [
    ("refused", "prometheus", "Error", "connection failed"),
    ("refused", "web", "Error", "connection failed"),
    ("slow", "prometheus", "Error", "timeout"),
    ("slow", "web", "Error", "timeout"),
    ("html", "prometheus", "Error", "not a Prometheus API answer"),
    ("html", "web", "Error", "mismatched types"),
    ("huge", "prometheus", "Error", "too large"),
    ("huge", "web", "Error", "too large"),
    ("empty", "prometheus", "Error", "nil or empty"),
    ("empty", "web", "Error", "matched nothing"),
    ("nan", "prometheus", "Inconclusive", ""),
    ("nan", "web", "Inconclusive", ""),
    ("ok", "prometheus", "Successful", ""),
    ("ok", "web", "Successful", ""),
]


def measure(provider: str, source: MetricSource) -> tuple[str, str, float, Any]:
    metric = Metric.model_validate(metric_spec(provider, source.address))
    started = time.monotonic()
    outcome = asyncio.run(PROVIDERS[provider]().measure(metric, CTX))
    phase, message = judge_outcome(metric, outcome)
    return phase, message or "", time.monotonic() - started, outcome


@pytest.mark.parametrize(("fault", "provider", "phase", "words"), CASES,
                         ids=[f"{fault}-{provider}" for fault, provider, _, _ in CASES])
def test_metric_source_fault_is_judged_by_argo_rules(fault: str, provider: str, phase: str, words: str) -> None:
    with MetricSource(fault) as source:
        got, message, seconds, outcome = measure(provider, source)
    assert got == phase, (message, outcome)
    assert words.lower() in message.lower(), message
    # Bounded: the provider timeout (1 s) ends a trickled answer; the cap ends a huge one early.
    assert seconds < metric_source.TIMEOUT_SECONDS + 2.5, seconds


def test_metric_source_trickling_a_good_answer_past_the_timeout_is_an_error() -> None:
    # Each byte arrives well within httpx's per-read timeout; only a deadline on the whole answer stops the
    # measurement from waiting for (and then trusting) a value that came 25 s late.
    with MetricSource("slow") as source:
        phase, message, seconds, _ = measure("prometheus", source)
    assert phase == "Error" and seconds < metric_source.TIMEOUT_SECONDS + 1.5, (phase, message, seconds)


def test_metric_source_huge_body_is_cut_at_the_cap() -> None:
    with MetricSource("huge") as source:
        _, message, _, outcome = measure("web", source)
    assert outcome.error and f"{MAX_BODY_BYTES // (1024 * 1024)} MiB" in message
    assert len(outcome.error) < 1000  # the body is not quoted into the message


@pytest.mark.integration
def test_metric_source_release_never_advances_on_missing_data(tmp_path: Path) -> None:
    # A good answer trickled past the 1 s timeout; consecutiveErrorLimit 1 keeps it to two 10 s retries.
    outcomes = metric_source.run(1, seed=7, workdir=tmp_path, error_limit=1, only=("slow", "prometheus"))
    assert len(outcomes) == 1, [o.detail or o.final for o in outcomes]  # the control run promoted
    outcome = outcomes[0]
    assert outcome.ok and outcome.failures == 0, (outcome.fault, outcome.final, outcome.detail)
