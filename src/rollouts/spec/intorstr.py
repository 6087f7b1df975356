"""Kubernetes int-or-percent values (`maxSurge: 25%`) resolved against a replica count."""

from __future__ import annotations

import math

IntOrStr = int | str


class IntOrPercentError(ValueError):
    """A value that is neither an integer nor a percentage like `25%`."""


def resolve_int_or_percent(value: IntOrStr | None, total: int, *, round_up: bool, default: IntOrStr) -> int:
    """The absolute number a value stands for: integers as they are, `N%` of `total` rounded as asked."""
    if value is None:
        value = default
    if isinstance(value, bool):
        raise IntOrPercentError(f"{value!r} is not an integer or a percentage")
    if isinstance(value, int):
        return value
    text = value.strip()
    if text.endswith("%"):
        try:
            percent = float(text[:-1])
        except ValueError as exc:
            raise IntOrPercentError(f"{value!r} is not a percentage like 25%") from exc
        exact = percent * total / 100.0
        return math.ceil(exact - 1e-9) if round_up else math.floor(exact + 1e-9)
    try:
        return int(text)
    except ValueError as exc:
        raise IntOrPercentError(f"{value!r} is not an integer or a percentage like 25%") from exc
