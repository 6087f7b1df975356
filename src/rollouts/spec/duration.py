"""Durations in Argo's forms: Go durations (`30s`, `5m`, `1h30m`, `250ms`) and bare integers as seconds."""

from __future__ import annotations

import math
import re

_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


class DurationError(ValueError):
    """A duration that is neither a Go duration nor a number of seconds."""


def parse_duration(value: str | int | float, *, bare_number_is_seconds: bool = True) -> float:
    """Seconds in a duration.

    Go's `time.ParseDuration` grammar (a sequence of number+unit, optional sign) plus Argo's leniency for
    pause durations: an integer, or a string of digits, is a number of seconds.
    """
    if isinstance(value, bool):
        raise DurationError(f"{value!r} is not a duration (use a form like 30s, 5m, 1h30m)")
    if isinstance(value, int | float):
        if not bare_number_is_seconds:
            raise DurationError(f"{value!r} needs a unit (s, m or h), e.g. {value}s")
        try:
            return float(value)
        except OverflowError:  # an integer past any float (10**400): longer than every limit callers check
            return math.inf if value > 0 else -math.inf
    text = value.strip()
    if bare_number_is_seconds and re.fullmatch(r"\d+", text):
        return float(text)
    sign = 1.0
    if text[:1] in ("+", "-"):  # not `in "+-"`: the empty string is in every string
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    total, pos = 0.0, 0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise DurationError(f"{value!r} is not a duration (use a form like 30s, 5m, 1h30m)")
    return sign * total


def format_duration(seconds: float) -> str:
    """A compact human form such as `1h5m`, `45s`, `250ms`."""
    if seconds < 1 and seconds > 0:
        return f"{round(seconds * 1000)}ms"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    out = ""
    if hours:
        out += f"{hours}h"
    if minutes:
        out += f"{minutes}m"
    if secs or not out:
        out += f"{secs}s"
    return out
