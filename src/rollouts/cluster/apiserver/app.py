"""The aiohttp application: authentication, URL routing, and the HTTP side of every verb (bodies,
query parameters, Table responses, paging, watch streams, Pod logs). Object semantics live in `objects`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import contextvars
import dataclasses
import hmac
import json
import logging
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from rollouts.cluster.apiserver import discovery, openapi, prometheus_sd, protobuf
from rollouts.cluster.apiserver.bodies import decode_yaml
from rollouts.cluster.apiserver.customresources import CRD_KIND
from rollouts.cluster.apiserver.errors import (
    ApiError,
    bad_request,
    from_store,
    gone,
    method_not_allowed,
    unauthorized,
)
from rollouts.cluster.apiserver.feed import Entry, Feed
from rollouts.cluster.apiserver.metrics import ApiMetrics
from rollouts.cluster.apiserver.objects import Objects
from rollouts.cluster.apiserver.previous import PreviousStates
from rollouts.cluster.apiserver.resources import Registry, Resource
from rollouts.cluster.apiserver.storage_errors import storage_error
from rollouts.cluster.apiserver.tables import to_table, wants_table
from rollouts.cluster.apiserver.traffic import TrafficEndpoints
from rollouts.cluster.store import SQLiteStore
from rollouts.runtime.local.traffic import TrafficStats
from rollouts.store.patch import json_patch, merge_patch
from rollouts.store.protocol import Change, Expired, StoreError
from rollouts.store.selectors import FieldSelector, LabelSelector, parse_field_selector, parse_label_selector

JSONObject = dict[str, Any]
log = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
LIST_SNAPSHOTS = 8  # paged lists whose first snapshot is kept for their next pages
_TRUE = ("1", "true", "True")


@dataclass
class Settings:
    """Tunables; tests shorten the bookmark interval and the log polling."""

    bookmark_interval: float = 30.0
    log_poll_interval: float = 0.2
    default_watch_timeout: float = 1800.0
    watch_memory: int = 4096  # changes the shared feed keeps in memory for watches
    logs_dir: Path | None = None


@dataclass(frozen=True)
class Target:
    """What a resource URL names."""

    resource: Resource
    namespace: str | None
    name: str | None
    sub: str | None


def _json(body: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    response = web.Response(body=json.dumps(body).encode(), status=status, content_type="application/json")
    for text in warnings or []:
        response.headers.add("Warning", '299 - "' + text.replace('"', "'") + '"')
    return response


def _error(exc: ApiError) -> web.Response:
    return _json(exc.status(), exc.code)


def _too_large(request: web.Request) -> ApiError:
    return ApiError(413, "RequestEntityTooLarge",
                    f"the request body is larger than {request.client_max_size} bytes, this server's limit")


def _encode_continue(version: int, namespace: str, name: str) -> str:
    raw = json.dumps({"v": version, "k": [namespace, name]}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return int(data["v"]), (str(data["k"][0]), str(data["k"][1]))
    except (ValueError, KeyError, IndexError, TypeError, binascii.Error):
        raise bad_request(f'continue: "{token}" is not a continue token this server issued') from None


# The resource a request was routed to, for the middleware's metrics and log (same task as the handler).
_TARGET: contextvars.ContextVar[Target | None] = contextvars.ContextVar("target", default=None)


def _verb(request: web.Request, target: Target) -> str:
    """Kubernetes' verb for a request (the one RBAC and apiserver metrics use)."""
    method = request.method
    if method == "GET":
        if target.name is not None:
            return "get"
        return "watch" if request.query.get("watch") in _TRUE else "list"
    if method == "DELETE":
        return "delete" if target.name is not None else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


def _key(obj: JSONObject) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


class ApiServer:
    """Serves one store; `build()` returns the aiohttp application."""

    def __init__(self, store: SQLiteStore, token: str, settings: Settings | None = None, *,
                 traffic: TrafficStats | None = None) -> None:
        """`traffic`: the runtime's request counters served under /traffic/v1 (None: zeros and nulls)."""
        self.store = store
        self.registry = Registry()
        self.objects = Objects(store, registry=self.registry)
        self.objects.seed_definitions()
        self.objects.reload_definitions()
        self._previous = PreviousStates(store.path)
        self._token = token
        self.settings = settings or Settings()
        self.feed = Feed(store, retain=self.settings.watch_memory)
        # Paged lists being read: (kind, namespace, selectors, resourceVersion) -> the items of the first
        # page's snapshot; the next pages slice it (as kube-apiserver serves one snapshot) instead of
        # listing and decoding every object of the kind again for each page.
        self._pages: OrderedDict[tuple[str, str | None, str, str, int], list[JSONObject]] = OrderedDict()
        self.metrics = ApiMetrics()
        self.traffic = TrafficEndpoints(traffic)

    def build(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=8 * 1024 * 1024)
        app.router.add_get("/version", self._version)
        app.router.add_get("/api", self._api)
        app.router.add_get("/apis", self._apis)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/openapi/v3", self._openapi_root)
        app.router.add_get("/openapi/v3/{tail:.+}", self._openapi_document)
        for path in PUBLIC_PATHS:
            app.router.add_get(path, self._health)
        app.router.add_route("*", "/api/{tail:.+}", self._resource)
        app.router.add_route("*", "/apis/{tail:.+}", self._resource)
        self.traffic.add_routes(app)
        prometheus_sd.add_routes(app, self.store.list)  # Prometheus' http_sd_configs (Debian's has no k8s SD)
        app.on_cleanup.append(self._close_feed)
        return app

    async def _close_feed(self, app: web.Application) -> None:
        await self.feed.close()

    # ---- middleware and small endpoints ----------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if request.path not in PUBLIC_PATHS:
            header = request.headers.get("Authorization", "")
            given = header[7:].strip() if header.startswith("Bearer ") else ""
            if not given or not hmac.compare_digest(given.encode(), self._token.encode()):
                return _error(unauthorized())
        started = time.perf_counter()
        _TARGET.set(None)
        response = await self._answer(request, handler)
        self._observe(request, response.status, time.perf_counter() - started)
        return response

    async def _answer(self, request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return _error(exc)
        except web.HTTPException as exc:
            if exc.status == 404:
                return _error(ApiError(404, "NotFound", "the server could not find the requested resource"))
            if exc.status == 405:
                return _error(method_not_allowed(f"{request.method} is not supported on {request.path}"))
            if exc.status == 413:  # aiohttp's body cap, hit while reading (a chunked body has no length)
                return _error(_too_large(request))
            raise
        except sqlite3.Error as exc:  # a store call outside _call (watch, list versions)
            log.warning("storage error serving %s %s: %s", request.method, request.path, exc)
            return _error(storage_error(exc, self.store.path))
        except Exception:
            log.exception("internal error serving %s %s", request.method, request.path)
            return _error(ApiError(500, "InternalError", "an internal error occurred; see the server log"))

    def _observe(self, request: web.Request, code: int, seconds: float) -> None:
        """Metrics for every answer, and one log line for every write (who changed what, with what result)."""
        target = _TARGET.get()
        verb = _verb(request, target) if target else request.method.lower()
        group = target.resource.group if target else ""
        resource = target.resource.plural if target else ""
        sub = (target.sub or "") if target else ""
        self.metrics.requests.labels(verb, group, resource, sub, str(code)).inc()
        if verb != "watch" and not (sub == "log" and request.query.get("follow") in _TRUE):
            self.metrics.duration.labels(verb, group, resource, sub).observe(seconds)
        if request.method in ("POST", "PUT", "PATCH", "DELETE") and target is not None:
            where = f"{target.namespace}/" if target.namespace else ""
            log.info("%s %s %s%s%s -> %d (%s, %.1f ms)", verb, target.resource.qualified, where,
                     target.name or "*", f"/{sub}" if sub else "", code,
                     request.headers.get("User-Agent", "-"), seconds * 1000)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.exposition(), content_type="text/plain", charset="utf-8")

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _version(self, request: web.Request) -> web.Response:
        return _json(discovery.version_info())

    async def _api(self, request: web.Request) -> web.Response:
        return _json(discovery.core_versions(request.host))

    async def _apis(self, request: web.Request) -> web.Response:
        return _json(discovery.group_list(self.registry))

    async def _openapi_root(self, request: web.Request) -> web.Response:
        return _json(openapi.root(self.registry))

    async def _openapi_document(self, request: web.Request) -> web.Response:
        parts = request.match_info["tail"].split("/")
        group, version = ("", parts[1]) if parts[0] == "api" and len(parts) == 2 else (
            (parts[1], parts[2]) if parts[0] == "apis" and len(parts) == 3 else ("", ""))
        found = openapi.document(self.registry, group, version) if version else None
        if found is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return _json(found)

    # ---- routing ---------------------------------------------------------------------------------

    async def _resource(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if parts[0] == "api":
            group, rest = "", parts[1:]
        else:
            group, rest = parts[1], parts[2:]
        if not rest:
            if group and request.method == "GET" and (found := self._discover(discovery.group, group)):
                return _json(found)
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        version, rest = rest[0], rest[1:]
        if not rest:
            listing = self._discover(discovery.resource_list, group, version)
            if listing is None or request.method != "GET":
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return _json(listing)
        try:
            target = self._target(group, version, rest)
        except ApiError:
            await asyncio.to_thread(self.objects.reload_definitions)  # a CRD another process stored?
            target = self._target(group, version, rest)
        _TARGET.set(target)
        response = await self._dispatch(request, target)
        if target.resource.kind == CRD_KIND and request.method in ("POST", "PUT", "PATCH", "DELETE"):
            # Registration follows the stored CRDs (a dry run left them as they were).
            await asyncio.to_thread(self.objects.reload_definitions)
        return response

    def _discover(self, document: Callable[..., JSONObject | None], *args: str) -> JSONObject | None:
        return document(self.registry, *args)

    def _target(self, group: str, version: str, rest: list[str]) -> Target:
        namespace = None
        # /api/v1/namespaces/NAME[/status] names a Namespace; with more segments, a namespace's contents.
        if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
            namespace, rest = rest[1], rest[2:]
        resource = self.registry.by_path(group, version, rest[0])
        if resource is None or len(rest) > 3 or (namespace is not None and not resource.namespaced):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if name is not None and resource.namespaced and namespace is None:
            # As kube-apiserver: a namespaced object is only addressed inside its namespace.
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        allowed = {"status": resource.status, "scale": resource.scale, "log": resource.log,
                   "finalize": resource.kind == "Namespace"}
        if sub is not None and not allowed.get(sub):
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({rest[0]}/{sub})")
        return Target(resource, namespace, name, sub)

    async def _call(self, target: Target, fn: Callable[..., Any], *args: Any, writing: bool = True) -> Any:
        # The store is synchronous and may wait for another process's write lock: keep the loop free.
        try:
            return await asyncio.to_thread(fn, *args)
        except StoreError as exc:
            raise from_store(exc, target.resource, target.name, writing=writing) from None
        except sqlite3.Error as exc:  # disk full, locked past the busy timeout, I/O error: say which
            log.warning("storage error serving %s %s: %s", target.resource.plural, target.name or "", exc)
            raise storage_error(exc, self.store.path) from None

    async def _body(self, request: web.Request) -> Any:
        if (request.content_length or 0) > request.client_max_size:
            raise _too_large(request)  # refused before a byte of it is read
        raw = await request.read()
        if not raw:
            return {}
        if request.content_type == protobuf.CONTENT_TYPE:
            try:
                return protobuf.decode(raw)
            except (protobuf.ProtobufError, UnicodeDecodeError) as exc:
                raise ApiError(415, "UnsupportedMediaType", str(exc)) from None
        try:
            if "yaml" in request.content_type:
                # The manifest loader's composer, off the loop: PyYAML's own loader took seconds on a small
                # body, and held every other request meanwhile (bodies.py).
                return await asyncio.to_thread(decode_yaml, raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError, RecursionError) as exc:
            what = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise bad_request(f"the request body is not valid {request.content_type or 'JSON'}: {what}") from None

    async def _dispatch(self, request: web.Request, target: Target) -> web.StreamResponse:
        method, q, res, o = request.method, request.query, target.resource, self.objects
        ns, name, sub = target.namespace, target.name, target.sub
        if q.get("dryRun") not in (None, "", "All"):
            raise bad_request(f'dryRun: "{q.get("dryRun")}" is not All')
        dry_run = q.get("dryRun") == "All"

        async def call(verb: Callable[..., Any], *args: Any) -> Any:
            if dry_run:
                return await self._call(target, o.rehearse, verb, *args)
            return await self._call(target, verb, *args)
        if name is None:
            if method == "GET" and q.get("watch") in _TRUE:
                return await self._watch(request, target)
            if method == "GET":
                return await self._list(request, target)
            if method == "POST":
                obj, warnings = await call(o.create, res, ns, await self._body(request))
                _TARGET.set(dataclasses.replace(target, name=obj["metadata"].get("name")))  # for the log line
                return _json(obj, 201, warnings)
            if method == "DELETE":
                options = await self._delete_options(request)
                deleted = await call(o.delete_collection, res, ns, q.get("labelSelector"),
                                     q.get("fieldSelector"), options)
                return _json({"kind": res.kind + "List", "apiVersion": res.api_version, "metadata": {},
                              "items": deleted})
            raise method_not_allowed(f"{method} is not supported on a collection of {res.qualified}")
        if sub == "log":
            return await self._log(request, target)
        if sub == "scale":
            return await self._scale(request, target)
        if method == "GET":
            obj = await self._call(target, o.get, res, ns, name, writing=False)
            return self._render(request, res, [obj], (obj.get("metadata") or {}).get("resourceVersion", ""),
                                single=True)
        if method == "PUT":
            obj, warnings = await call(o.update, res, ns, name, await self._body(request), sub)
            return _json(obj, 200, warnings)
        if method == "PATCH":
            obj, warnings = await call(o.patch, res, ns, name, request.content_type, await self._body(request),
                                       sub, q.get("fieldManager", ""), q.get("force") in _TRUE)
            return _json(obj, 200, warnings)
        if method == "DELETE":
            options = await self._delete_options(request)
            return _json(await call(o.delete, res, ns, name, options))
        raise method_not_allowed(f"{method} is not supported on {res.qualified}")

    async def _delete_options(self, request: web.Request) -> JSONObject:
        body = await self._body(request)
        options = dict(body) if isinstance(body, dict) else {}
        if request.query.get("propagationPolicy"):
            options["propagationPolicy"] = request.query["propagationPolicy"]
        return options

    # ---- list, tables and CRDs ---------------------------------------------------------------------

    def _render(self, request: web.Request, res: Resource, items: list[JSONObject], version: Any,
                single: bool = False, list_meta: JSONObject | None = None) -> web.Response:
        meta = list_meta or {"resourceVersion": str(version)}
        if wants_table(request.headers.get("Accept", "")):
            return _json(to_table(res.kind, items, meta, request.query.get("includeObject", "PartialObjectMetadata"),
                                  columns=res.printer_columns if res.custom else None))
        if single:
            return _json(items[0])
        return _json({"kind": res.kind + "List", "apiVersion": res.api_version, "metadata": meta, "items": items})

    async def _list(self, request: web.Request, target: Target) -> web.Response:
        q, res = request.query, target.resource
        try:
            limit = int(q.get("limit") or 0)
        except ValueError:
            raise bad_request(f'limit: "{q.get("limit")}" is not a whole number') from None
        selectors = (q.get("labelSelector") or "", q.get("fieldSelector") or "")
        snapshot: list[JSONObject] | None = None
        if q.get("continue"):
            version, after = _decode_continue(q["continue"])
            snapshot = self._pages.pop((res.kind, target.namespace, *selectors, version), None)
        if snapshot is None:
            items, version = await self._call(target, self.objects.list_with_version, res, target.namespace,
                                              q.get("labelSelector"), q.get("fieldSelector"), writing=False)
        else:
            items = snapshot
        meta: JSONObject = {"resourceVersion": str(version)}
        if q.get("continue"):
            # The next page continues after the last key served: over the first page's snapshot while it is
            # kept, else over the current contents; the list keeps the resourceVersion of its first page.
            version, after = _decode_continue(q["continue"])
            meta["resourceVersion"] = str(version)
            items = items[bisect.bisect_right([_key(i) for i in items], after):]
        if limit > 0 and len(items) > limit:
            meta["continue"] = _encode_continue(version, *_key(items[limit - 1]))
            meta["remainingItemCount"] = len(items) - limit
            self._pages[(res.kind, target.namespace, *selectors, version)] = items
            while len(self._pages) > LIST_SNAPSHOTS:
                self._pages.popitem(last=False)
            items = items[:limit]
        return self._render(request, res, items, version, list_meta=meta)

    # ---- watch -----------------------------------------------------------------------------------

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        q, res = request.query, target.resource
        try:
            labels = parse_label_selector(q.get("labelSelector"))
            fields = parse_field_selector(q.get("fieldSelector"))
            timeout = float(q.get("timeoutSeconds") or self.settings.default_watch_timeout)
        except StoreError as exc:
            raise bad_request(str(exc)) from None
        except ValueError:
            raise bad_request(f'timeoutSeconds: "{q.get("timeoutSeconds")}" is not a number') from None
        start = q.get("resourceVersion") or "0"
        if not start.isdigit():
            raise bad_request(f'resourceVersion: "{start}" is not a resourceVersion this server issued')
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        open_watches = self.metrics.longrunning.labels("watch", res.group, res.plural)
        open_watches.inc()
        try:
            return await self._stream_watch(request, target, response, labels, fields, timeout, start)
        finally:
            open_watches.dec()

    async def _stream_watch(self, request: web.Request, target: Target, response: web.StreamResponse,
                            labels: LabelSelector, fields: FieldSelector, timeout: float,
                            start: str) -> web.StreamResponse:
        q, res = request.query, target.resource
        bookmarks = q.get("allowWatchBookmarks") in _TRUE
        table = wants_table(request.headers.get("Accept", ""))
        include = q.get("includeObject", "PartialObjectMetadata")

        async def send(kind: str, obj: JSONObject) -> None:
            if table and kind != "ERROR" and kind != "BOOKMARK":
                obj = to_table(res.kind, [obj], {"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                               include, columns=res.printer_columns if res.custom else None)
            await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

        def wanted(namespace: str, obj: JSONObject) -> bool:
            if target.namespace is not None and namespace != target.namespace:
                return False
            return labels.matches((obj.get("metadata") or {}).get("labels")) and fields.matches(obj)

        selective = bool(q.get("labelSelector") or q.get("fieldSelector"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            since = int(start)
            if since == 0:
                # As kube-apiserver: without a version, the current objects come first as ADDED events.
                items, since = await self._call(target, self.objects.list_with_version, res, target.namespace,
                                                q.get("labelSelector"), q.get("fieldSelector"), writing=False)
                for obj in items:
                    await send("ADDED", obj)
            else:
                try:
                    # The store decides what history is retained: ask it once, even when the shared
                    # memory of the feed still holds older changes.
                    await self.store.watch_async(since, {res.kind}, timeout=0, limit=1)
                except Expired as exc:
                    await send("ERROR", gone(exc).status())
                    await response.write_eof()
                    return response
            while (remaining := deadline - loop.time()) > 0:
                wait = min(remaining, self.settings.bookmark_interval)
                shared = await self.feed.after(since, res.kind, wait)
                if shared is None:
                    # Older than the shared memory of the feed: read the store, which also says 410.
                    before = self.store.current_version()
                    try:
                        changes = await self.store.watch_async(since, {res.kind}, timeout=wait)
                    except Expired as exc:
                        await send("ERROR", gone(exc).status())
                        break
                    entries, position = [Entry(c) for c in changes], max(since, before)
                else:
                    entries, position = shared
                if not entries:
                    # Nothing of this kind up to `position`: a resumed watch may start there.
                    since = max(since, position)
                    if bookmarks:
                        await send("BOOKMARK", {"kind": res.kind, "apiVersion": res.api_version,
                                                "metadata": {"resourceVersion": str(since)}})
                    continue
                for entry in entries:
                    change = entry.change
                    since = change.resource_version
                    kind = self._event_type(change, selective, wanted)
                    if kind is None:
                        continue
                    if kind == change.type and not table:
                        await response.write(entry.line())
                    else:
                        await send(kind, change.object)
        except (ConnectionResetError, asyncio.CancelledError):
            return response
        await response.write_eof()
        return response

    def _event_type(self, change: Change, selective: bool, wanted: Callable[[str, JSONObject], bool]) -> str | None:
        """The event a selective watch reports: a MODIFIED object that enters the selection is ADDED, one
        that leaves it is DELETED (with its new state), one that stays out is not reported."""
        matches = wanted(change.namespace, change.object)
        if not selective or change.type != "MODIFIED":
            return change.type if matches else None
        before = self._previous.before(change.kind, change.namespace, change.name, change.resource_version)
        matched = before is not None and wanted(change.namespace, before)
        if matches:
            return "MODIFIED" if matched else "ADDED"
        return "DELETED" if matched else None

    # ---- subresources ----------------------------------------------------------------------------

    async def _scale(self, request: web.Request, target: Target) -> web.Response:
        res, o, ns, name = target.resource, self.objects, target.namespace, str(target.name)
        if request.method == "GET":
            obj = await self._call(target, o.get, res, ns, name, writing=False)
            return _json(o.scale_of(res, obj))
        body = await self._body(request)
        if request.method == "PUT":
            return _json(await self._call(target, o.write_scale, res, ns, name, lambda scale: body))
        if request.method == "PATCH":
            kind = request.content_type
            if kind == "application/json-patch+json":
                return _json(await self._call(target, o.write_scale, res, ns, name, lambda s: json_patch(s, body)))
            if kind in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                return _json(await self._call(target, o.write_scale, res, ns, name, lambda s: merge_patch(s, body)))
            raise ApiError(415, "UnsupportedMediaType", f'the body of the request was in an unknown format: "{kind}"')
        raise method_not_allowed(f"{request.method} is not supported on {res.plural}/scale")

    async def _log(self, request: web.Request, target: Target) -> web.StreamResponse:
        if request.method != "GET":
            raise method_not_allowed("pods/log supports GET only")
        res, ns, name = target.resource, target.namespace, str(target.name)
        await self._call(target, self.objects.get, res, ns, name, writing=False)
        folder = self.settings.logs_dir
        path = folder / f"{name}.log" if folder else None
        if path is None or not path.is_file():
            raise bad_request(f'pod "{name}" has no log on this server (no {path or "logs folder"})')
        data = path.read_bytes()
        tail = request.query.get("tailLines")
        if tail and tail.isdigit():
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-int(tail):]) if int(tail) else b""
        if request.query.get("follow") not in _TRUE:
            return web.Response(body=data, content_type="text/plain")
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        offset = path.stat().st_size
        try:
            await response.write(data)
            while True:
                await asyncio.sleep(self.settings.log_poll_interval)
                size = path.stat().st_size if path.exists() else 0
                if size < offset:
                    offset = 0  # the file was truncated or replaced: start over
                if size > offset:
                    with path.open("rb") as handle:
                        handle.seek(offset)
                        chunk = handle.read(size - offset)
                    offset += len(chunk)
                    await response.write(chunk)
                elif not await asyncio.to_thread(self._exists, res, ns, name):
                    break
        except (ConnectionResetError, asyncio.CancelledError):
            return response
        await response.write_eof()
        return response

    def _exists(self, res: Resource, namespace: str | None, name: str) -> bool:
        try:
            self.objects.get(res, namespace, name)
        except StoreError:
            return False
        return True
