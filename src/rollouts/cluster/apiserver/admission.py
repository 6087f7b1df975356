"""Admission: objects are checked with the same validation `rollouts lint` runs before they are stored.

Errors become a 422 Invalid with one cause per field; warnings are returned for `Warning` headers.
Kinds the validation does not model (Pods, ReplicaSets, Events, ...) are admitted as they are.
"""

from __future__ import annotations

from typing import Any

from rollouts.spec.kinds import KINDS
from rollouts.spec.loader import LoadedObject
from rollouts.spec.validation import validate_objects

# Fields the server owns: not part of what a user wrote, so not held against the object.
_SERVER_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
                    "deletionGracePeriodSeconds", "managedFields", "selfLink")


def review(obj: dict[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    """(errors as (field path, message), warnings as text) for one object about to be stored."""
    if (obj.get("apiVersion"), obj.get("kind")) not in KINDS:
        return [], []
    data = {k: v for k, v in obj.items() if k != "status"}
    meta = data.get("metadata")
    if isinstance(meta, dict):
        data["metadata"] = {k: v for k, v in meta.items() if k not in _SERVER_METADATA}
    [checked] = validate_objects([LoadedObject(data=data, source="request", line=1)])
    errors = [(p.path, p.message) for p in checked.problems if p.is_error]
    # References to other objects are checked against the input by lint; here the input is one object of
    # a whole cluster, so "not in the input" would be noise.
    warnings = [f"{p.path}: {p.message}" if p.path else p.message for p in checked.problems
                if not p.is_error and "is not in the input" not in p.message]
    return errors, warnings
