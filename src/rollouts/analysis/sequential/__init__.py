"""Anytime-valid sequential judgement of a canary against the stable version (pure: no I/O, no clock).

- evalue.py: the mixture likelihood ratio (an e-value) of the two-sample count test.
- judge.py: the verdict of one measurement: hard-outage guard, minimum sample, error and latency tests,
  sample budget.
"""

from rollouts.analysis.sequential.evalue import canary_share, log_e_value, log_e_value_ratios
from rollouts.analysis.sequential.judge import (
    DEFAULT_ALPHA,
    DEFAULT_MIN_SAMPLES,
    ArmCounts,
    SequentialSettings,
    Verdict,
    assess_sequential,
)

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_MIN_SAMPLES",
    "ArmCounts",
    "SequentialSettings",
    "Verdict",
    "assess_sequential",
    "canary_share",
    "log_e_value",
    "log_e_value_ratios",
]
