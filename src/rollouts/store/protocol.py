"""The object store contract: what the controller, runtime and CLI may ask of a store, and its errors.

Objects are plain JSON documents shaped like Kubernetes objects (apiVersion, kind, metadata, spec,
status). A store keys them by (kind, namespace, name); cluster-scoped kinds use namespace "".
Implementations: `rollouts.cluster.store.SQLiteStore` (local runtime); a Kubernetes adapter can satisfy
the same protocol.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

JSONObject = dict[str, Any]
ChangeType = Literal["ADDED", "MODIFIED", "DELETED"]
PatchType = Literal["merge", "json"]
Outcome = Literal["current", "promoted", "aborted", "rolled-back", "superseded"]

OUTCOMES: tuple[str, ...] = ("current", "promoted", "aborted", "rolled-back", "superseded")

# Kinds that live outside any namespace; they are stored under namespace "".
CLUSTER_SCOPED_KINDS: frozenset[str] = frozenset({"ClusterAnalysisTemplate", "Namespace"})

_IRREGULAR_PLURALS = {"Ingress": "ingresses", "Endpoints": "endpoints"}


def resource_name(kind: str) -> str:
    """The lowercase plural Kubernetes uses in messages, e.g. Rollout -> rollouts."""
    return _IRREGULAR_PLURALS.get(kind, kind.lower() + "s")


def describe(kind: str, namespace: str, name: str) -> str:
    where = f' in namespace "{namespace}"' if namespace else ""
    return f'{resource_name(kind)} "{name}"{where}'


class StoreError(Exception):
    """Base of every error a store raises on purpose."""


class NotFound(StoreError):
    def __init__(self, kind: str, namespace: str, name: str, detail: str = "") -> None:
        self.kind, self.namespace, self.name = kind, namespace, name
        super().__init__(f"{describe(kind, namespace, name)} not found{detail}")


class AlreadyExists(StoreError):
    def __init__(self, kind: str, namespace: str, name: str) -> None:
        self.kind, self.namespace, self.name = kind, namespace, name
        super().__init__(f"{describe(kind, namespace, name)} already exists")


class Conflict(StoreError):
    """A write carried a resourceVersion that is no longer the stored one."""

    def __init__(self, kind: str, namespace: str, name: str, given: str, current: str) -> None:
        self.kind, self.namespace, self.name = kind, namespace, name
        self.given, self.current = given, current
        super().__init__(
            f'Operation cannot be fulfilled on {resource_name(kind)} "{name}": the object has been modified; '
            f"please apply your changes to the latest version and try again "
            f"(resourceVersion {given} was given, the stored one is {current})"
        )


class Invalid(StoreError):
    """The request is malformed: a missing field, a bad selector, a failed JSON patch `test`."""


class Expired(StoreError):
    """A watch asked for changes older than the compacted feed keeps; the watcher must list again."""

    def __init__(self, since: int, oldest: int) -> None:
        self.since, self.oldest = since, oldest
        super().__init__(
            f"too old resource version: {since} (changes up to {oldest} were compacted); list again and "
            f"watch from the list's version"
        )


@dataclass(frozen=True)
class Change:
    """One entry of the change feed: what happened to which object at which resourceVersion."""

    resource_version: int
    kind: str
    namespace: str
    name: str
    type: ChangeType
    object: JSONObject = field(compare=False)


@dataclass(frozen=True)
class Revision:
    """One release of a Rollout as remembered for `history` and `undo`; outlives its ReplicaSet."""

    namespace: str
    rollout: str
    revision: int
    pod_hash: str
    images: Mapping[str, str]  # container name -> image
    template: JSONObject
    created_at: str
    outcome: str
    cause: str
    updated_at: str


@runtime_checkable
class ObjectStore(Protocol):
    """Operations of an object store. All methods are safe to call from several threads."""

    def get(self, kind: str, namespace: str, name: str) -> JSONObject: ...

    def list(
        self,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> builtins.list[JSONObject]: ...

    def list_with_version(
        self,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[builtins.list[JSONObject], int]:
        """The list and the feed version it reflects, read atomically: watch from that version."""
        ...

    def create(self, obj: Mapping[str, Any]) -> JSONObject: ...

    def update(self, obj: Mapping[str, Any]) -> JSONObject: ...

    def update_status(self, obj: Mapping[str, Any]) -> JSONObject: ...

    def patch(
        self,
        kind: str,
        namespace: str,
        name: str,
        patch: Any,
        patch_type: PatchType = "merge",
        subresource: Literal["status"] | None = None,
    ) -> JSONObject: ...

    def delete(
        self, kind: str, namespace: str, name: str, resource_version: str | None = None
    ) -> JSONObject: ...

    def watch(
        self, since: int, kinds: set[str] | None = None, timeout: float = 10.0, limit: int = 1000
    ) -> builtins.list[Change]:
        """Changes after `since`, oldest first, waiting up to `timeout` s; `Expired` if compacted away."""
        ...

    async def watch_async(
        self, since: int, kinds: set[str] | None = None, timeout: float = 10.0, limit: int = 1000
    ) -> builtins.list[Change]: ...

    def current_version(self) -> int: ...

    def record_event(
        self,
        involved: Mapping[str, Any],
        type: str,
        reason: str,
        message: str,
        source: str = "rollouts-controller",
    ) -> JSONObject: ...

    def record_revision(
        self,
        namespace: str,
        rollout: str,
        revision: int,
        pod_hash: str,
        images: Mapping[str, str],
        template: Mapping[str, Any],
        outcome: Outcome = "current",
        cause: str = "",
    ) -> Revision: ...

    def set_revision_outcome(
        self, namespace: str, rollout: str, revision: int, outcome: Outcome, cause: str = ""
    ) -> Revision: ...

    def list_revisions(self, namespace: str, rollout: str) -> builtins.list[Revision]: ...

    def transaction(self) -> AbstractContextManager[None]: ...

    def close(self) -> None: ...


def iter_owner_uids(obj: Mapping[str, Any]) -> Iterator[str]:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        uid = ref.get("uid") if isinstance(ref, Mapping) else None
        if isinstance(uid, str) and uid:
            yield uid
