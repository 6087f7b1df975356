"""The contract every metric provider meets: what a measurement is given (MeasureContext), what a provider
is (Provider), and the redaction of secret values that every provider applies to what it reports."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from urllib.parse import quote, quote_plus

from rollouts.analysis.outcome import MeasurementOutcome
from rollouts.spec.analysis import Metric

REDACTED = "*****"


@dataclass(frozen=True, kw_only=True)
class MeasureContext:
    """Where a measurement is taken and what must never be shown.

    measurement_index is 1-based (Argo numbers job measurements from 1).
    secrets: resolved secret values; each is shown as ***** in any message or log line.
    env: overrides on top of the process environment (addresses such as ROLLOUTS_PROMETHEUS_ADDRESS,
    and the base environment of job processes).
    run_started_at: when the analysis run started (its stored status.startedAt), so a provider that counts
    "since the run started" counts the same after a controller restart; None when unknown.
    args: the run's resolved arguments, secret values included: never log or show them (left out of repr).
    owner: the name of the Rollout that owns the run (its ownerReference), None for a standalone run.
    labels: the run's labels (`rollouts-pod-template-hash` names the revision under test).
    """

    namespace: str
    run_name: str
    metric_name: str
    measurement_index: int
    secrets: Sequence[str] = field(default=(), repr=False)
    env: Mapping[str, str] = field(default_factory=dict)
    run_started_at: datetime | None = None
    args: Mapping[str, str] = field(default_factory=dict, repr=False)
    owner: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        """The process environment with this context's overrides applied."""
        return {**os.environ, **self.env}

    def redact(self, text: str) -> str:
        """`text` with every secret value (also in its URL-encoded forms) replaced by *****."""
        return redact(text, self.secrets)

    def error(self, message: str, **metadata: str) -> MeasurementOutcome:
        """A failed measurement (phase Error) whose message carries no secret."""
        clean = {key: self.redact(value) for key, value in metadata.items()}
        return MeasurementOutcome(error=self.redact(message), metadata=clean)


class Provider(Protocol):
    """Takes one measurement of a metric. Never raises for a failed measurement: it returns an outcome
    with `error` set. Cancellation propagates after the provider has cleaned up what it started."""

    type_label: str

    async def measure(self, metric: Metric, ctx: MeasureContext) -> MeasurementOutcome: ...


def redact(text: str, secrets: Sequence[str]) -> str:
    """Replace every non-empty secret in `text` by *****.

    Longest first, so a secret containing another is not left half-shown; URL-encoded forms too, because
    URLs in HTTP error messages carry their query string encoded."""
    forms: set[str] = set()
    for secret in secrets:
        if secret:
            forms.update({secret, quote(secret, safe=""), quote_plus(secret), quote(secret)})
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, REDACTED)
    return text


def tail(text: str, lines: int = 10, width: int = 2000) -> str:
    """The last lines of a (possibly long) text, for error messages."""
    kept = "\n".join(text.rstrip().splitlines()[-lines:])
    return kept if len(kept) <= width else "..." + kept[-width:]
