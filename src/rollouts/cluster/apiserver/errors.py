"""Kubernetes `Status` errors: the reasons and codes clients branch on, and the mapping from store errors."""

from __future__ import annotations

from typing import Any

from rollouts.cluster.apiserver.resources import BY_KIND, Resource
from rollouts.store.protocol import AlreadyExists, Conflict, Expired, Invalid, NotFound, StoreError

JSONObject = dict[str, Any]


class ApiError(Exception):
    """An error answer: HTTP code, Kubernetes reason, message and optional details (name, kind, causes)."""

    def __init__(self, code: int, reason: str, message: str, details: JSONObject | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details = details or {}

    def status(self) -> JSONObject:
        body: JSONObject = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def _details(resource: Resource, name: str | None) -> JSONObject:
    details: JSONObject = {"kind": resource.plural}
    if resource.group:
        details["group"] = resource.group
    if name:
        details["name"] = name
    return details


def not_found(resource: Resource, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{resource.qualified} "{name}" not found', _details(resource, name))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def method_not_allowed(message: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def unsupported_media_type(message: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def gone(exc: Expired) -> ApiError:
    return ApiError(410, "Expired", f"too old resource version: {exc.since} ({exc.oldest})")


def invalid(resource: Resource, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 Invalid with one cause per field, as kube-apiserver reports failed validation."""
    summary = "; ".join(f"{field}: {message}" if field else message for field, message in causes)
    details = _details(resource, name)
    details["kind"] = resource.kind
    details["causes"] = [
        {"reason": "FieldValueInvalid", "message": message, "field": field} for field, message in causes
    ]
    return ApiError(422, "Invalid", f'{resource.kind}.{resource.group or "core"} "{name}" is invalid: {summary}',
                    details)


def from_store(exc: StoreError, resource: Resource, name: str | None, *, writing: bool) -> ApiError:
    """The Status a store error means; `Invalid` is 422 for writes and 400 for reads (selectors)."""
    shown = name or getattr(exc, "name", "") or ""
    if isinstance(exc, NotFound):
        found = BY_KIND.get(exc.kind) or resource
        return ApiError(404, "NotFound", f'{found.qualified} "{exc.name}" not found', _details(found, exc.name))
    if isinstance(exc, AlreadyExists):
        return ApiError(409, "AlreadyExists", f'{resource.qualified} "{exc.name}" already exists',
                        _details(resource, exc.name))
    if isinstance(exc, Conflict):
        return ApiError(409, "Conflict", str(exc), _details(resource, exc.name))
    if isinstance(exc, Expired):
        return gone(exc)
    if isinstance(exc, Invalid) and writing:
        return invalid(resource, shown, [_split_cause(str(exc))])
    return bad_request(str(exc))


def _split_cause(message: str) -> tuple[str, str]:
    """`Kind.metadata.name: msg` -> ("metadata.name", "msg"); a message without a field path keeps ""."""
    head, sep, rest = message.partition(": ")
    if sep and "." in head and " " not in head:
        return head.split(".", 1)[1], rest
    return "", message

