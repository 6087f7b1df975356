"""Value ranges Argo's API can store: counts and seconds are int32 (Kubernetes caps replicas there),
pause durations are int32 seconds (`RolloutPause.DurationSeconds`), metric durations are Go durations
(int64 nanoseconds). A value beyond them is refused by lint/apply and by the engine's validation, so it
never reaches the arithmetic of a reconcile (where it would overflow a date)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

INT32_MAX = 2**31 - 1
# Go's time.Duration is int64 nanoseconds: about 2562047 hours.
GO_DURATION_MAX_SECONDS = (2**63 - 1) / 1e9


def int32_overflows(model: BaseModel, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], int]]:
    """(wire field path, value) of every integer in `model` (nested models and lists included) outside
    the int32 range."""
    fields = type(model).model_fields
    for name, value in model:
        info = fields.get(name)
        key = (info.alias or name) if info is not None else name
        yield from _walk(value, (*path, key))


def _walk(value: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], int]]:
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if not -INT32_MAX - 1 <= value <= INT32_MAX:
            yield path, value
    elif isinstance(value, BaseModel):
        yield from int32_overflows(value, path)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _walk(item, (*path, i))
    elif isinstance(value, dict):
        for k, item in value.items():
            yield from _walk(item, (*path, str(k)))


def int32_message(value: int) -> str:
    return f"{value} is out of range (at most {INT32_MAX}, an int32 as Kubernetes stores it)"


def dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out
