"""Schema (structural) checking of one manifest object: pydantic's errors turned into findings at Argo field
paths (`spec.strategy.canary.steps[2].setWeight`), with "did you mean" for unknown fields and what a
wrongly typed field accepts. Also builds a best-effort model with the offending fields removed, so that
semantic rules can still report on the rest of the object."""

from __future__ import annotations

import copy
import difflib
import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from rollouts.spec.kinds import UnknownKindError, model_for, parse_object
from rollouts.spec.problems import FieldPath, Finding

_MISSING = object()

_EXPECTED: dict[str, str] = {
    "int": "an integer",
    "float": "a number",
    "string": "a string",
    "str": "a string",
    "bool": "true or false",
    "dict": "a mapping",
    "model": "a mapping",
    "model_attributes": "a mapping",
    "list": "a list",
    "datetime": "an RFC 3339 time such as 2024-05-01T12:00:00Z",
    "none": "null",
    "int_from_float": "a whole number",
}


def describe(value: Any) -> str:
    """A short rendering of an input value for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f'"{text}"'
    return str(value)


def _descend(annotation: Any, segment: str | int) -> Any:
    """The type of `segment` inside a value of type `annotation`, or None when it has no such part."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        for arg in get_args(annotation):
            found = _descend(arg, segment)
            if found is not None:
                return found
        return None
    if isinstance(segment, int):
        return get_args(annotation)[0] if origin is list and get_args(annotation) else None
    if origin is dict:
        args = get_args(annotation)
        return args[1] if len(args) == 2 else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, info in annotation.model_fields.items():
            if segment in (info.alias, name):
                return info.annotation
    return None


def _model_class(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_class(arg)
        if found is not None:
            return found
    return None


def field_names(model: type[BaseModel], path: FieldPath) -> list[str]:
    """The valid (wire) field names of the mapping at `path` inside `model`, or [] when unknown."""
    annotation: Any = model
    for segment in path:
        annotation = _descend(annotation, segment)
        if annotation is None:
            return []
    cls = _model_class(annotation)
    if cls is None:
        return []
    return [info.alias or name for name, info in cls.model_fields.items()]


def _normalise(loc: tuple[Any, ...], data: Any, error_type: str) -> FieldPath:
    """The data path of a pydantic error location: union-member labels (`int`, `str`) dropped."""
    path: list[str | int] = []
    current = data
    for index, segment in enumerate(loc):
        last = index == len(loc) - 1
        in_map = isinstance(current, dict) and isinstance(segment, str) and segment in current
        in_list = isinstance(current, list) and isinstance(segment, int) and 0 <= segment < len(current)
        if in_map or in_list:
            path.append(segment)
            current = current[segment]
        elif last and error_type == "missing" and isinstance(current, dict) and isinstance(segment, str):
            path.append(segment)
        # anything else is a label pydantic adds for a union member: not part of the manifest
    return tuple(path)


def _value_at(data: Any, path: FieldPath) -> Any:
    current = data
    for segment in path:
        try:
            current = current[segment]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return current


def _expected(err: dict[str, Any]) -> str:
    kind = str(err["type"])
    if kind == "literal_error":
        return "one of " + str((err.get("ctx") or {}).get("expected", "the listed values"))
    if kind == "int_from_float":
        return _EXPECTED["int_from_float"]
    for suffix in ("_type", "_parsing"):
        if kind.endswith(suffix):
            base = kind[: -len(suffix)]
            return _EXPECTED.get(base, base.replace("_", " "))
    return ""


def _message(model: type[BaseModel], path: FieldPath, errs: list[dict[str, Any]], data: Any) -> str:
    kinds = {str(e["type"]) for e in errs}
    if "extra_forbidden" in kinds:
        key = path[-1] if path else ""
        names = field_names(model, path[:-1])
        close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
        if close:
            return f'unknown field (did you mean "{close[0]}"?)'
        if names:
            return "unknown field (valid fields: " + ", ".join(names) + ")"
        return "unknown field"
    if "missing" in kinds:
        return "required field is missing"
    expected = []
    for err in errs:
        what = _expected(err)
        if what and what not in expected:
            expected.append(what)
    got = describe(_value_at(data, path))
    if expected:
        return "must be " + " or ".join(expected) + f" (got {got})"
    return "; ".join(dict.fromkeys(str(e["msg"]) for e in errs))


# Errors of one validation turned into findings; a hostile object (a list of 50,000 wrong items) makes pydantic
# report every one, and describing them all would take longer than any reader would look.
MAX_ERRORS = 500


def findings_from_error(model: type[BaseModel], exc: ValidationError, data: Any) -> list[Finding]:
    """One finding per manifest field pydantic complained about (for the first MAX_ERRORS errors)."""
    grouped: dict[FieldPath, list[dict[str, Any]]] = {}
    for err in exc.errors(include_url=False)[:MAX_ERRORS]:
        path = _normalise(tuple(err["loc"]), data, str(err["type"]))
        grouped.setdefault(path, []).append(dict(err))
    return [
        Finding(path, _message(model, path, errs, data), "error", structural=True)
        for path, errs in grouped.items()
    ]


def _prune(data: Any, path: FieldPath, missing: bool) -> FieldPath | None:
    """Remove the field at fault (or, for a missing field, the mapping that lacks it); the removed path.

    List items are emptied rather than removed, since later indexes would shift and findings would point
    elsewhere.
    """
    target = path[:-1] if missing else path
    if not target:
        return None
    parent = _value_at(data, target[:-1])
    if isinstance(target[-1], int):
        # a wrong list item becomes an empty mapping, which is enough for lists of objects (steps, metrics)
        if isinstance(parent, list) and parent[target[-1]] != {}:
            parent[target[-1]] = {}
            return target
        # an empty mapping is still wrong there (it lacks a required field): drop the whole list instead
        return _prune(data, target[:-1], missing=False) if len(target) > 1 else None
    if isinstance(parent, dict) and target[-1] in parent:
        del parent[target[-1]]
        return target
    return None


def _header_message(data: dict[str, Any], key: str, example: str) -> str:
    value = data.get(key, _MISSING)
    if value is _MISSING or value is None or value == "":
        return f"required (a string such as {example})"
    return f"must be a string such as {example} (got {describe(value)})"


def check_structure(data: dict[str, Any]) -> tuple[BaseModel | None, list[Finding], list[FieldPath]]:
    """The object's model (best effort), its structural findings, and the paths removed to build the model."""
    header = [
        Finding((key,), _header_message(data, key, example), "error", structural=True)
        for key, example in (("apiVersion", "argoproj.io/v1alpha1"), ("kind", "Rollout"))
        if not isinstance(data.get(key), str) or not data.get(key)
    ]
    if header:
        return None, header, []
    try:
        return parse_object(data, strict=True), [], []
    except UnknownKindError as exc:
        path: FieldPath = ("kind",) if isinstance(data.get("kind"), str) else ()
        return None, [Finding(path, str(exc), "error", structural=True)], []
    except ValidationError as exc:
        cls = model_for(str(data.get("apiVersion")), str(data.get("kind")))
        findings = findings_from_error(cls, exc, data)
        if exc.error_count() > MAX_ERRORS:
            # too broken for a best-effort model to say anything more
            total = Finding((), f"{exc.error_count()} schema errors in this object; the first {MAX_ERRORS} are "
                            "described", "error", structural=True)
            return None, [total, *findings], []
    pruned_data = copy.deepcopy(data)
    removed: list[FieldPath] = []
    current = findings
    for _ in range(4):
        progress = False
        for finding in current:
            missing = finding.message == "required field is missing"
            gone = _prune(pruned_data, finding.path, missing)
            if gone is not None:
                removed.append(gone)
                progress = True
        if not progress:
            return None, findings, removed
        try:
            return parse_object(pruned_data, strict=True), findings, removed
        except ValidationError as again:
            current = findings_from_error(cls, again, pruned_data)
        except UnknownKindError:
            return None, findings, removed
    return None, findings, removed
