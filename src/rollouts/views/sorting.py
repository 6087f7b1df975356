"""Row order of `get` tables: kubectl's `--sort-by` JSONPath (`.lastTimestamp`, `{.metadata.name}`) and
the default order of events (by last timestamp, oldest first, as `kubectl events` prints them)."""

from __future__ import annotations

import re
from typing import Any

from rollouts.views.ages import parse_time

Obj = dict[str, Any]

_PATH = re.compile(r"^\{?\.?([A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*)\}?$")
EVENT_TIME_PATHS = (("lastTimestamp",), ("eventTime",), ("firstTimestamp",), ("metadata", "creationTimestamp"))


class SortError(ValueError):
    """A --sort-by expression that is not a field path."""


def parse_sort_by(expression: str) -> tuple[str, ...]:
    """`.metadata.creationTimestamp` or `{.metadata.creationTimestamp}` -> ("metadata", "creationTimestamp")."""
    match = _PATH.match(expression.strip())
    if not match:
        raise SortError(f'--sort-by: "{expression}" is not a field path such as .lastTimestamp or '
                        ".metadata.creationTimestamp")
    return tuple(match.group(1).split("."))


def _field(obj: Obj, path: tuple[str, ...]) -> Any:
    value: Any = obj
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _version(obj: Obj) -> int:
    text = str(_field(obj, ("metadata", "resourceVersion")) or "0")
    return int(text) if text.isdigit() else 0


def _key(value: Any) -> tuple[int, float, str]:
    """Numbers and RFC 3339 times sort by value (whatever their precision), everything else as text;
    objects without the field come first, as kubectl prints them."""
    if value is None or value == "":
        return (0, 0.0, "")
    if isinstance(value, bool | int | float):
        return (1, float(value), "")
    when = parse_time(value) if isinstance(value, str) and "T" in value else None
    if when is not None:
        return (1, when.timestamp(), "")
    return (2, 0.0, str(value))


def sort_objects(objs: list[Obj], path: tuple[str, ...]) -> list[Obj]:
    """Stable sort by the field at `path`; ties keep the order of the writes (resourceVersion)."""
    return sorted(objs, key=lambda o: (_key(_field(o, path)), _version(o)))


def event_time(event: Obj) -> Any:
    """When an event last happened: lastTimestamp, else eventTime, firstTimestamp, creationTimestamp."""
    for path in EVENT_TIME_PATHS:
        value = _field(event, path)
        if value:
            return value
    return None


def sort_events(events: list[Obj]) -> list[Obj]:
    """kubectl's order for events: by when each last happened, oldest first."""
    return sorted(events, key=lambda e: (_key(event_time(e)), _version(e)))
