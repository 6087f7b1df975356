"""Message text for analysis runs: Argo's wording for phase reasons, and secret redaction.

Every message built from measurement or provider text passes through `redact` so that secret argument
values never reach a status, an event or a log line.
"""

from __future__ import annotations

from collections.abc import Iterable

REDACTED = "*****"
RUN_TERMINATED = "Run Terminated"
METRIC_TERMINATED = "Metric Terminated"
UNRESOLVED_ARGS_PREFIX = "Unable to resolve metric arguments: "
SPEC_INVALID_PREFIX = "Analysis spec invalid: "


def redact(text: str, secret_values: Iterable[str]) -> str:
    """`text` with every non-empty secret value replaced by `*****` (longest first, so a secret that
    contains another is hidden whole)."""
    for secret in sorted({s for s in secret_values if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def failed_reason(failed: int, limit: int) -> str:
    return f"failed ({failed}) > failureLimit ({limit})"


def inconclusive_reason(inconclusive: int, limit: int) -> str:
    return f"inconclusive ({inconclusive}) > inconclusiveLimit ({limit})"


def consecutive_error_reason(errors: int, limit: int) -> str:
    return f"consecutiveErrors ({errors}) > consecutiveErrorLimit ({limit})"


def success_limit_not_reached_reason(successes: int, limit: int) -> str:
    return f"consecutiveSuccess ({successes}) < consecutiveSuccessLimit ({limit}) after count was reached"


def with_error_message(text: str, last_message: str | None) -> str:
    """Argo appends the metric's last measurement message to a run-level reason."""
    if last_message:
        return f'{text}: "Error Message: {last_message}"'
    return text


def run_metric_message(metric: str, phase: str, reason: str, last_message: str | None) -> str:
    """`Metric "m" assessed Failed due to failed (1) > failureLimit (0)` [+ last measurement message]."""
    return with_error_message(f'Metric "{metric}" assessed {phase} due to {reason}', last_message)


def dry_run_metric_message(phase: str, reason: str) -> str:
    """The metric-level message of a dry-run metric (the run's phase ignores it)."""
    return f"Metric assessed {phase} due to {reason}"
