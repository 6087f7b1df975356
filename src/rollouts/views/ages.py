"""Times as the views show them: RFC3339 parsing and Kubernetes' short human durations (`3h5m`, `2d21h`)."""

from __future__ import annotations

from datetime import UTC, datetime

from rollouts.humanize import human_duration

__all__ = ["age", "human_duration", "parse_time"]


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def age(text: str | None, now: datetime) -> str:
    """`2d21h` since an RFC3339 time; `<unknown>` without one."""
    then = parse_time(text)
    if then is None:
        return "<unknown>"
    return human_duration((now - then).total_seconds())
