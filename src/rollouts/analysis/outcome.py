"""What a provider hands back for one measurement, before the conditions judge it.

Shared by the providers (which produce it) and the pure assessment (which records it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# A provider that decides the phase itself (job: exit code) sets `phase`; otherwise the metric's
# success/failure conditions judge `value`.
ProviderPhase = Literal["Successful", "Failed", "Inconclusive", "Error"]


@dataclass(frozen=True, kw_only=True)
class MeasurementOutcome:
    """One finished measurement as taken by a provider.

    value: the `result` the conditions see (float, list of floats, dict, str, bool, None).
    printed: the value as stored in the AnalysisRun (`[0.98]`, `NaN`, JSON text).
    error: set when the provider failed (HTTP error, query failure, unreachable): the measurement is an Error.
    phase: set by providers that judge on their own (job); conditions are then ignored.
    message: why a provider that judges on its own chose that phase (exit code, deadline).
    metadata: provider details kept with the measurement (resolved query, job name, ...).
    """

    value: Any = None
    printed: str = ""
    error: str | None = None
    phase: ProviderPhase | None = None
    message: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
