"""How a batch/v1 Job's outcome reads: the reasons and messages of its Complete/Failed conditions, as the
Kubernetes Job controller writes them (and the local cluster's Job controller, which adds the reasons of a Job
this host cannot run at all), shared by whoever writes those conditions and the `job` metric provider that
reads them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEADLINE_REASON = "DeadlineExceeded"
DEADLINE_MESSAGE = "Job was active longer than specified deadline"
BACKOFF_REASON = "BackoffLimitExceeded"
BACKOFF_MESSAGE = "Job has reached the specified backoff limit"

# A Job this host cannot run at all (Kubernetes would keep its pod pending): failed at once, with a message
# saying what to change. Providers report these as errors of the measurement, not as failed checks.
INVALID_REASON = "InvalidJobSpec"
IMAGE_REASON = "ImageNotResolvable"
START_REASON = "StartError"
UNRUNNABLE_REASONS = frozenset({INVALID_REASON, IMAGE_REASON, START_REASON})


def terminal_condition(job: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Job's Complete or Failed condition with status True, if it has one."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return dict(condition)
    return None
