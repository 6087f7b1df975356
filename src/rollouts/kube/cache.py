"""`CachedStore`: the operator's object store. Reads answer from informer caches, writes go to the API.

controller-runtime's split client, for our `ObjectStore` contract (rollouts.store.protocol):
- one `Informer` (list+watch, resume from the last resourceVersion, relist on 410) per kind the operator
  reads (`DEFAULT_KINDS`); `get`/`list`/`list_with_version` of those kinds answer from memory, without an
  API call. Kinds not cached (Secrets, ConfigMaps, Events, Leases...) and namespaces outside the scope
  are read through the `KubeStore`;
- writes (`create`, `update`, `update_status`, `patch`, `delete`) go through the `KubeStore`, and the
  answer is folded into the cache at once, so the next read sees the writer's own write (the watch
  event of that write, arriving later, is dropped as not newer). A write answered 409 re-reads the
  object into the cache before the `Conflict` is raised, so the caller's retry works on fresh data;
- a write left unanswered (no answer, 5xx: the API may have applied it, its watch event may never come
  before the next decision) marks the object; `confirmed` re-reads a marked object from the API before a
  decision starts from it, so a decision is not taken again from the state that write replaced (its events
  would be named after that older state and recorded a second time);
- `subscribe(callback)`: callback(kind, event_type, obj) for every change of the cache, once
  (ADDED / MODIFIED / DELETED), whether it came from a watch, a relist or a write;
- scope: one namespace or all (None), and an optional label selector on the kinds Argo filters by
  `--instance-id` (Rollouts, AnalysisRuns, Experiments); `instance_selector` builds Argo's selector;
- events: created through the API and correlated in memory (a repeat bumps the count with a patch), as
  client-go's recorder does, instead of listing the involved object's Events on every call; one event per
  decision; writes the API cannot take for now queued and retried (rollouts.kube.events);
- release history: each Rollout's `<rollout>.rollout-history` ConfigMap is read from one more informer,
  over the ConfigMaps carrying the history label only (other ConfigMaps, notification settings, are read
  through the API); recording a revision is then one write, not a read and a write. A stale copy costs one
  re-read: a 409 or an AlreadyExists on a history write re-reads it from the API before the retry;
- listing history (`list_revisions`), the change feed, transactions: delegated to the `KubeStore`.

Objects returned by `list` are the cache's own: read-only, as client-go's listers' are; `get` returns a
copy (callers edit a fetched object and write it back). Use it from the event loop's thread, where the
informers run.
"""

from __future__ import annotations

import builtins
import copy
import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, Literal

from lightkube import AsyncClient, operators

from rollouts.kube.client import KubeStore
from rollouts.kube.events import EventRecorder, unavailable
from rollouts.kube.informer import Informer, JSONObject
from rollouts.kube.kinds import kind_of
from rollouts.store import history
from rollouts.store.protocol import (
    AlreadyExists,
    Change,
    ChangeType,
    Conflict,
    NotFound,
    Outcome,
    PatchType,
    Revision,
)
from rollouts.store.selectors import LabelSelector, parse_field_selector, parse_label_selector

# What the controller reads while reconciling (controller/observe.py, apply.py, the job provider).
DEFAULT_KINDS: tuple[str, ...] = ("Rollout", "ReplicaSet", "Pod", "Service", "Ingress", "AnalysisRun",
                                  "AnalysisTemplate", "ClusterAnalysisTemplate", "Job")
INSTANCE_ID_LABEL = "argo-rollouts.argoproj.io/controller-instance-id"
# The kinds Argo's controller filters with its instance-id selector; the others are read unfiltered.
FILTERED_KINDS: frozenset[str] = frozenset({"Rollout", "AnalysisRun", "Experiment"})

log = logging.getLogger("rollouts.kube.cache")

Subscriber = Callable[[str, ChangeType, JSONObject], None]


def instance_selector(instance_id: str | None) -> str:
    """Argo's filter: with an instance id only objects labelled with it; without, only unlabelled ones
    (a rollout claimed by another controller instance is left to it)."""
    return f"{INSTANCE_ID_LABEL}={instance_id}" if instance_id else f"!{INSTANCE_ID_LABEL}"


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _selector(text: str | None) -> LabelSelector:
    return parse_label_selector(text)


def _lightkube_labels(selector: LabelSelector) -> dict[str, Any]:
    """Our parsed selector as lightkube's `labels=` argument (which renders it back for the API)."""
    out: dict[str, Any] = {}
    for req in selector.requirements:
        match req.op:
            case "exists":
                out[req.key] = operators.exists()
            case "!":
                out[req.key] = operators.not_exists()
            case "=":
                out[req.key] = operators.equal(req.values[0])
            case "!=":
                out[req.key] = operators.not_equal(req.values[0])
            case "in":
                out[req.key] = operators.in_(list(req.values))
            case "notin":
                out[req.key] = operators.not_in(list(req.values))
    return out


def _report(kind: str, exc: BaseException) -> None:
    # A dropped watch is reopened and a failing subscriber skipped by the informer; say so, once each time.
    log.warning("%s informer: %s: %s", kind, type(exc).__name__, exc)


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


class CachedStore:
    def __init__(self, store: KubeStore, client: AsyncClient, *, kinds: Iterable[str] = DEFAULT_KINDS,
                 namespace: str | None = None, label_selector: str | None = None,
                 server_timeout: int = 300, page_size: int = 500, history_cache: bool = True,
                 on_error: Callable[[BaseException], None] | None = None) -> None:
        self.store, self.client = store, client
        self.namespace = namespace or None
        self.label_selector = label_selector or None
        self._selector = _selector(self.label_selector)  # raises Invalid, naming the bad selector
        self._subscribers: list[Subscriber] = []
        self.events = EventRecorder(store)
        # (kind, namespace, name) of objects whose last write went unanswered: the cache may not hold what the
        # API holds for them (see `confirmed`).
        self.unanswered: set[tuple[str, str, str]] = set()
        self.informers: dict[str, Informer] = {}
        # The history ConfigMaps only (by their label): not in `informers`, so a get of any other
        # ConfigMap still goes to the API, and nothing is routed to the work queues from it.
        self.history_informer: Informer | None = None
        if history_cache:
            self.history_informer = Informer(
                client, "ConfigMap", namespace=self.namespace, labels={history.HISTORY_LABEL: operators.exists()},
                on_error=on_error or functools.partial(_report, "ConfigMap"), server_timeout=server_timeout,
                page_size=page_size)
        for kind in kinds:
            k = kind_of(kind)
            filtered = self.label_selector is not None and kind in FILTERED_KINDS
            self.informers[kind] = Informer(
                client, kind, namespace=self.namespace if k.namespaced else None,
                labels=_lightkube_labels(self._selector) if filtered else None,
                on_add=functools.partial(self._publish, kind, "ADDED"),
                on_update=functools.partial(self._publish_update, kind),
                on_delete=functools.partial(self._publish, kind, "DELETED"),
                on_error=on_error or functools.partial(_report, kind), server_timeout=server_timeout,
                page_size=page_size)

    @classmethod
    def connect(cls, store: KubeStore, **options: Any) -> CachedStore:
        """A cache over `store`'s cluster, with a lightkube async client built from the same config."""
        return cls(store, AsyncClient(config=store.config.to_lightkube()), **options)

    # -- running ---------------------------------------------------------------------------------------

    def _every_informer(self) -> builtins.list[Informer]:
        extra = [self.history_informer] if self.history_informer is not None else []
        return [*self.informers.values(), *extra]

    async def start(self) -> None:
        for informer in self._every_informer():
            if informer._task is None:
                informer.start()
        self.events.start()

    async def wait_synced(self, timeout: float | None = None) -> None:
        import asyncio

        await asyncio.wait_for(asyncio.gather(*(i.wait_synced() for i in self._every_informer())), timeout)

    @property
    def has_synced(self) -> bool:
        return all(i.has_synced for i in self._every_informer())

    async def stop(self) -> None:
        for informer in self._every_informer():
            await informer.stop()
        await self.events.stop()

    async def aclose(self) -> None:
        await self.stop()
        await self.client.close()
        self.store.close()

    # -- change notifications --------------------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback(kind, event_type, obj)` on every change of the cache; returns the unsubscriber."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)
        return unsubscribe

    def _publish(self, kind: str, event: ChangeType, obj: JSONObject) -> None:
        for callback in list(self._subscribers):
            callback(kind, event, obj)  # a raise is reported by the informer's on_error

    def _publish_update(self, kind: str, old: JSONObject, new: JSONObject) -> None:
        self._publish(kind, "MODIFIED", new)

    # -- what the cache covers -------------------------------------------------------------------------

    def _ns(self, kind: str, namespace: str | None) -> str:
        if not kind_of(kind).namespaced:
            return ""
        return namespace or self.store.config.namespace

    def _informer(self, kind: str, namespace: str | None, name: str = "") -> Informer | None:
        """The informer that answers for `kind` in `namespace` (None: all namespaces), if any; a history
        ConfigMap (by `name`) is answered by the history informer once it has listed."""
        informer = self.informers.get(kind)
        if informer is None and kind == "ConfigMap" and name.endswith(history.HISTORY_SUFFIX):
            synced = self.history_informer is not None and self.history_informer.has_synced
            informer = self.history_informer if synced else None
        if informer is None:
            return None
        if self.namespace is not None and kind_of(kind).namespaced and namespace not in (None, self.namespace):
            return None
        return informer

    def _in_view(self, kind: str, obj: Mapping[str, Any]) -> bool:
        if self.label_selector is not None and kind in FILTERED_KINDS:
            return self._selector.matches(_labels(obj))
        return True

    def peek(self, kind: str, namespace: str, name: str) -> JSONObject | None:
        """The cached object itself (read-only), or None; never an API call."""
        informer = self.informers.get(kind)
        return informer.get(self._ns(kind, namespace), name) if informer is not None else None

    def confirmed(self, kind: str, namespace: str, name: str) -> JSONObject | None:
        """The cached object as `peek` gives it, re-read from the API first when a write of it went unanswered
        since: what a decision must start from. Raises what the read raises (the API still away), so the
        decision waits for an answer rather than starting from the state the unanswered write may have replaced."""
        key = (kind, self._ns(kind, namespace), name)
        if key in self.unanswered:
            try:
                self._fold(kind, self.store.get(kind, namespace, name))
            except NotFound:
                self._forget(kind, namespace, name)
            self.unanswered.discard(key)
        return self.peek(kind, namespace, name)

    def cached(self, kind: str) -> builtins.list[JSONObject]:
        """Every cached object of `kind` (read-only)."""
        informer = self.informers.get(kind)
        return informer.list() if informer is not None else []

    # -- reads -----------------------------------------------------------------------------------------

    def get(self, kind: str, namespace: str, name: str) -> JSONObject:
        ns = self._ns(kind, namespace)
        informer = self._informer(kind, ns, name)
        if informer is None:
            return self.store.get(kind, namespace, name)
        found = informer.get(ns, name)
        if found is None:
            raise NotFound(kind, ns, name)
        return copy.deepcopy(found)

    def list(self, kind: str, namespace: str | None = None, label_selector: str | None = None,
             field_selector: str | None = None) -> builtins.list[JSONObject]:
        return self.list_with_version(kind, namespace, label_selector, field_selector)[0]

    def list_with_version(self, kind: str, namespace: str | None = None, label_selector: str | None = None,
                          field_selector: str | None = None) -> tuple[builtins.list[JSONObject], int]:
        ns = namespace if kind_of(kind).namespaced else None
        informer = self._informer(kind, ns)
        if informer is None:
            return self.store.list_with_version(kind, namespace, label_selector, field_selector)
        labels = _selector(label_selector)
        fields = parse_field_selector(field_selector)
        items = [obj for obj in informer.list(ns)
                 if (not labels.requirements or labels.matches(_labels(obj))) and fields.matches(obj)]
        version = informer.resource_version or "0"
        return items, int(version) if version.isdigit() else 0

    # -- writes ----------------------------------------------------------------------------------------

    def _fold(self, kind: str, answer: JSONObject) -> JSONObject:
        meta = answer.get("metadata") or {}
        informer = self._informer(kind, meta.get("namespace") or None, str(meta.get("name") or ""))
        if informer is not None and answer.get("kind") == kind:
            if self._in_view(kind, answer):
                informer.fold(copy.deepcopy(answer))
            else:
                informer.fold_delete(answer)  # relabelled out of this controller's view
        return answer

    def _forget(self, kind: str, namespace: str, name: str) -> None:
        ns = self._ns(kind, namespace)
        informer = self._informer(kind, ns, name)
        if informer is not None:
            informer.fold_delete({"metadata": {"namespace": ns, "name": name}})

    def _reread(self, kind: str, namespace: str, name: str) -> None:
        """After a 409: the object as the API has it now, into the cache (or out of it, if gone)."""
        if self._informer(kind, self._ns(kind, namespace), name) is None:
            return
        try:
            self._fold(kind, self.store.get(kind, namespace, name))
        except NotFound:
            self._forget(kind, namespace, name)
        self._answered(kind, namespace, name)

    def _unanswered(self, kind: str, namespace: str, name: str, exc: BaseException) -> None:
        if unavailable(exc) and self._informer(kind, self._ns(kind, namespace), name) is not None:
            self.unanswered.add((kind, self._ns(kind, namespace), name))

    def _answered(self, kind: str, namespace: str, name: str) -> None:
        self.unanswered.discard((kind, self._ns(kind, namespace), name))

    def _write(self, kind: str, namespace: str, name: str, call: Callable[[], JSONObject]) -> JSONObject:
        if self.events.pending:
            self.events.flush()  # events a decision could not record yet go before what follows them (its status)
        try:
            answer = call()
        except Conflict:
            self._reread(kind, namespace, name)
            raise
        except AlreadyExists:
            if self.informers.get(kind) is None:
                self._reread(kind, namespace, name)  # a history ConfigMap the cache missed: retry on it
            raise
        except NotFound:
            self._forget(kind, namespace, name)
            self._answered(kind, namespace, name)
            raise
        except Exception as exc:
            self._unanswered(kind, namespace, name, exc)
            raise
        self._answered(kind, namespace, name)
        return self._fold(kind, answer)

    @staticmethod
    def _target(obj: Mapping[str, Any]) -> tuple[str, str, str]:
        meta = obj.get("metadata") or {}
        return str(obj.get("kind") or ""), str(meta.get("namespace") or ""), str(meta.get("name") or "")

    def create(self, obj: Mapping[str, Any]) -> JSONObject:
        kind, namespace, name = self._target(obj)
        return self._write(kind, namespace, name, lambda: self.store.create(obj))

    def update(self, obj: Mapping[str, Any]) -> JSONObject:
        kind, namespace, name = self._target(obj)
        return self._write(kind, namespace, name, lambda: self.store.update(obj))

    def update_status(self, obj: Mapping[str, Any]) -> JSONObject:
        kind, namespace, name = self._target(obj)
        return self._write(kind, namespace, name, lambda: self.store.update_status(obj))

    def patch(self, kind: str, namespace: str, name: str, patch: Any, patch_type: PatchType = "merge",
              subresource: Literal["status"] | None = None) -> JSONObject:
        return self._write(kind, namespace, name,
                           lambda: self.store.patch(kind, namespace, name, patch, patch_type, subresource))

    def delete(self, kind: str, namespace: str, name: str, resource_version: str | None = None) -> JSONObject:
        try:
            answer = self.store.delete(kind, namespace, name, resource_version)
        except NotFound:
            self._forget(kind, namespace, name)
            raise
        except Conflict:
            self._reread(kind, namespace, name)
            raise
        except Exception as exc:
            self._unanswered(kind, namespace, name, exc)
            raise
        self._answered(kind, namespace, name)
        if answer.get("kind") == kind and (answer.get("metadata") or {}).get("deletionTimestamp"):
            self._fold(kind, answer)  # still terminating (finalizers, a pod's grace period): it stays
        else:
            self._forget(kind, namespace, name)
        return answer

    # -- delegated to the API ------------------------------------------------------------------------

    def watch(self, since: int, kinds: set[str] | None = None, timeout: float = 10.0,
              limit: int = 1000) -> builtins.list[Change]:
        return self.store.watch(since, kinds, timeout, limit)

    async def watch_async(self, since: int, kinds: set[str] | None = None, timeout: float = 10.0,
                          limit: int = 1000) -> builtins.list[Change]:
        return await self.store.watch_async(since, kinds, timeout, limit)

    def current_version(self) -> int:
        return self.store.current_version()

    def record_event(self, involved: Mapping[str, Any], type: str, reason: str, message: str,
                     source: str = "rollouts-controller") -> JSONObject:
        """A core/v1 Event through `self.events` (rollouts.kube.events): correlated in memory, one per decision
        named in `involved["decision"]`, kept and retried while the API cannot take it."""
        return self.events.record(involved, type, reason, message, source)

    def record_revision(self, namespace: str, rollout: str, revision: int, pod_hash: str,
                        images: Mapping[str, str], template: Mapping[str, Any], outcome: Outcome = "current",
                        cause: str = "") -> Revision:
        # Through this cache: the Rollout the history ConfigMap is owned by is read from it, not the API.
        return history.record(self, namespace, rollout, revision, pod_hash, images, template, outcome, cause,
                              _timestamp())

    def set_revision_outcome(self, namespace: str, rollout: str, revision: int, outcome: Outcome,
                             cause: str = "") -> Revision:
        return history.set_outcome(self, namespace, rollout, revision, outcome, cause, _timestamp())

    def list_revisions(self, namespace: str, rollout: str) -> builtins.list[Revision]:
        return self.store.list_revisions(namespace, rollout)

    def transaction(self) -> AbstractContextManager[None]:
        return self.store.transaction()

    def close(self) -> None:
        self.store.close()
