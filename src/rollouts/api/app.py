"""The dashboard's HTTP application: the versioned JSON API under /api/v1 (with its OpenAPI document), the
server-sent event streams driven by the store's change feed (one follower for all of them, changes.py),
and the page's three static files. The store is any `ObjectStore`; `rollouts dashboard` and the
controller give it a `KubeStore`, so everything it reads and writes goes through the Kubernetes API.

Access rules: every /api/* call, read or mutation, needs the bearer token in the Authorization header (401
without, 403 with a wrong one); only the page and its two static files load without it (the page takes
the token from its URL fragment). A token in the query string or a cookie is refused; mutations from
another site's page (Origin, Sec-Fetch-Site) are refused. No cookies are ever read or set, no CORS headers
are sent, and every response carries a strict Content-Security-Policy."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rollouts.api import actions
from rollouts.api.availability import Availability, availability, undo_availability
from rollouts.api.changes import ChangeHub
from rollouts.api.guard import (
    MAX_BODY_BYTES,
    MAX_STREAMS,
    MAX_STREAMS_PER_CLIENT,
    CountedStream,
    RequestGuard,
    StreamLimitReached,
    StreamLimits,
)
from rollouts.api.models import (
    ActionOutcome,
    AnalysisRunList,
    EventList,
    History,
    NamespaceList,
    Problem,
    RevisionView,
    SetImageRequest,
    analysis_run_view,
    event_view,
    revision_view,
)
from rollouts.api.schema import mirror
from rollouts.api.token import auth_problem, is_loopback
from rollouts.api.weights import WeightHistory, weight_history
from rollouts.kube.client import ApiError, Unreachable
from rollouts.store.protocol import AlreadyExists, Conflict, Invalid, NotFound, ObjectStore, StoreError
from rollouts.views.history import history as history_entries
from rollouts.views.info import RolloutNotFound, list_rollout_infos, rollout_info
from rollouts.views.model import RolloutInfo

Clock = Callable[[], datetime]

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
STATIC_FILES = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
WATCH_KINDS = {"Rollout", "ReplicaSet", "Pod", "AnalysisRun", "Event"}
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"

RolloutInfoModel = mirror(RolloutInfo)
BEARER = HTTPBearer(auto_error=False, description="the dashboard token (rollouts dashboard --show-token)")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
Namespace = Annotated[str, Path(pattern=NAME_PATTERN, max_length=253, description="namespace")]
Name = Annotated[str, Path(pattern=NAME_PATTERN, max_length=253, description="rollout name")]
MUTATION_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "no bearer token (or one in the URL or a cookie)"},
    403: {"model": Problem, "description": "a wrong bearer token, or a request from another site's page"},
    404: {"model": Problem, "description": "no such rollout"},
    409: {"model": Problem, "description": "the action does not apply to the rollout in its current state"},
    413: {"model": Problem, "description": "a request body larger than 1 MiB"},
    502: {"model": Problem, "description": "the cluster's Kubernetes API answered with an error"},
    503: {"model": Problem, "description": "the cluster's Kubernetes API cannot be reached"},
}
READ_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "no bearer token (or one in the URL or a cookie)"},
    403: {"model": Problem, "description": "a wrong bearer token"},
    404: {"model": Problem, "description": "no such rollout"},
    502: {"model": Problem, "description": "the cluster's Kubernetes API answered with an error"},
    503: {"model": Problem, "description": "the cluster's Kubernetes API cannot be reached"},
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _static(name: str) -> bytes:
    return resources.files("rollouts.api").joinpath("static", name).read_bytes()


class SecurityHeaders:
    """Adds the security headers to every response (the guard's refusals included) and drops any cookie."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.decode().lower() != "set-cookie"]
                present = {k.decode().lower() for k, _ in headers}
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items() if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


async def _store_failure(_: Request, exc: StoreError) -> Response:
    """The cluster's API failed under a request (what no endpoint turned into a 404 or 409 itself): 503 when
    it cannot be reached (the page retries), 404/409 for an object gone or changed under a write, 422 when
    it refused a write as invalid, 502 for any other error answer (credentials, RBAC, 5xx). The detail
    names the API server and what it said."""
    if isinstance(exc, Unreachable):
        status, headers = 503, {"retry-after": "5"}
    elif isinstance(exc, NotFound):
        status, headers = 404, {}  # deleted between the check and the write
    elif isinstance(exc, (Conflict, AlreadyExists)):
        status, headers = 409, {}
    elif isinstance(exc, Invalid):
        status, headers = 422, {}
    else:
        status, headers = 502, {}
    return JSONResponse({"detail": f"the Kubernetes API failed: {exc}"}, status_code=status, headers=headers)


def _event(kind: str, payload: Any, version: int) -> bytes:
    return f"event: {kind}\nid: {version}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def create_app(
    store_factory: Callable[[], ObjectStore],
    *,
    token: str,
    bind_host: str,
    clock: Clock = _utcnow,
    heartbeat: float = 15.0,
    max_body: int = MAX_BODY_BYTES,
    max_streams: int = MAX_STREAMS,
    max_streams_per_client: int = MAX_STREAMS_PER_CLIENT,
) -> FastAPI:
    """The dashboard application. `store_factory` is called once, on first use; the store is closed on
    shutdown. `bind_host`: on a loopback bind only loopback Host headers are answered (DNS rebinding)."""
    if not token:
        raise ValueError("the dashboard needs a token for mutations")
    opened: list[ObjectStore] = []
    opening = threading.Lock()
    closing = threading.Event()

    def store() -> ObjectStore:
        # Called from many worker threads at once: exactly one store (one KubeStore's connections and
        # watch streams are shared by all of them).
        with opening:
            if not opened:
                opened.append(store_factory())
            return opened[0]

    # One follower of the store's change feed for every event stream (see api/changes.py).
    hub = ChangeHub(store, WATCH_KINDS)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        closing.set()
        await run_in_threadpool(hub.close)
        for item in opened:
            item.close()

    app = FastAPI(
        title="rollouts dashboard API", version="1", lifespan=lifespan,
        openapi_url="/api/v1/openapi.json", docs_url=None, redoc_url=None, swagger_ui_oauth2_redirect_url=None,
        description="Rollouts, their analysis runs, history and events; operator actions behind a bearer token.",
    )
    # Added first, so it runs inside SecurityHeaders: its refusals carry the security headers too.
    app.add_middleware(RequestGuard, token=token, loopback_only=is_loopback(bind_host), limit=max_body)
    app.add_middleware(SecurityHeaders)
    limits = StreamLimits(total=max_streams, per_client=max_streams_per_client)
    app.state.stream_limits = limits
    # Called by whoever stops the server: open event streams end instead of holding the shutdown.
    app.state.close_streams = closing.set

    def check(credentials: HTTPAuthorizationCredentials | None) -> None:
        given = f"Bearer {credentials.credentials}" if credentials is not None else None
        problem = auth_problem(given, token)
        if problem is not None:
            raise HTTPException(problem[0], problem[1],
                                headers={"WWW-Authenticate": "Bearer"} if problem[0] == 401 else None)

    def reader(credentials: Credentials) -> None:
        # The guard already refused a request without the token; this also documents it in OpenAPI.
        check(credentials)

    def writer(credentials: Credentials) -> None:
        check(credentials)

    read = APIRouter(prefix="/api/v1", dependencies=[Depends(reader)], responses=READ_ERRORS)
    write = APIRouter(prefix="/api/v1", dependencies=[Depends(writer)], responses=MUTATION_ERRORS)

    def info(ns: str, name: str) -> dict[str, Any]:
        try:
            return rollout_info(store(), ns, name, clock()).to_dict()
        except RolloutNotFound as exc:
            raise HTTPException(404, str(exc)) from None

    def require(ns: str, name: str) -> dict[str, Any]:
        try:
            obj, _ = actions.load_rollout(store(), ns, name)
        except RolloutNotFound as exc:
            raise HTTPException(404, str(exc)) from None
        return obj

    def revisions(ns: str, name: str) -> list[RevisionView]:
        # The same derived outcomes (superseded, rolled back) as `rollouts history` shows.
        return [revision_view(e) for e in history_entries(store().list_revisions(ns, name), require(ns, name))]

    def owned_runs(ns: str, name: str) -> list[dict[str, Any]]:
        runs = [run for run in store().list("AnalysisRun", ns)
                if any(ref.get("kind") == "Rollout" and ref.get("name") == name
                       for ref in (run.get("metadata") or {}).get("ownerReferences") or [])]
        return sorted(runs, key=lambda r: ((r.get("metadata") or {}).get("creationTimestamp") or "",
                                           (r.get("metadata") or {}).get("name") or ""))

    def events(ns: str, name: str) -> EventList:
        found = rollout_events_raw(ns, name)
        found.sort(key=lambda e: (e.get("lastTimestamp") or "", e.get("metadata", {}).get("resourceVersion", "")))
        return EventList(items=[event_view(e) for e in found])

    def rollout_events_raw(ns: str, name: str) -> list[dict[str, Any]]:
        return [e for e in store().list("Event", ns, field_selector=f"involvedObject.name={name}")
                if (e.get("involvedObject") or {}).get("kind") == "Rollout"]

    def actions_of(ns: str, name: str) -> dict[str, Availability]:
        return availability(require(ns, name))

    def detail(ns: str, name: str) -> dict[str, Any]:
        return {
            "rollout": info(ns, name),
            "analysisRuns": AnalysisRunList(items=[analysis_run_view(r) for r in owned_runs(ns, name)])
            .model_dump(by_alias=True)["items"],
            "history": [r.model_dump(by_alias=True) for r in revisions(ns, name)],
            # What the page needs to tell the truth: which buttons apply now, and the weight since the start.
            "actions": {verb: a.model_dump(by_alias=True) for verb, a in actions_of(ns, name).items()},
            "weightHistory": weight_history(rollout_events_raw(ns, name)).model_dump(by_alias=True),
        }

    @read.get("/namespaces", response_model=NamespaceList, summary="Namespaces that hold rollouts")
    def namespaces() -> NamespaceList:
        # The kubeconfig context's namespace is offered too; where only that namespace may be read (a
        # namespaced Role forbids listing across namespaces), it is the only one offered.
        config = getattr(store(), "config", None)
        own = str(getattr(config, "namespace", "") or "default")
        try:
            found = {(r.get("metadata") or {}).get("namespace") or "default" for r in store().list("Rollout")}
        except ApiError as exc:
            if exc.code != 403:
                raise
            return NamespaceList(namespaces=[own])
        return NamespaceList(namespaces=sorted(found | {"default", own}))

    @read.get("/rollouts", response_model=list[RolloutInfoModel],  # type: ignore[valid-type]
              summary="Rollouts (of one namespace)")
    def rollouts(
        namespace: Annotated[str | None, Query(pattern=NAME_PATTERN, max_length=253,
                                               description="only this namespace (default: all)")] = None,
    ) -> list[dict[str, Any]]:
        return [i.to_dict() for i in list_rollout_infos(store(), namespace or None, clock())]

    # The last view each stream key computed, by feed version: streams of one view (several tabs, several
    # users) woken by the same change share one computation instead of each reading the API again.
    views: dict[tuple[str, ...], tuple[int, Any]] = {}
    view_locks: dict[tuple[str, ...], asyncio.Lock] = {}

    async def view_at(key: tuple[str, ...], version: int, compute: Callable[[], Any]) -> Any:
        lock = view_locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = views.get(key)
            if cached is not None and cached[0] == version:
                return cached[1]
            payload = await run_in_threadpool(compute)
            views[key] = (version, payload)
            return payload

    def stream(request: Request, key: tuple[str, ...], ns: str, compute: Callable[[], Any]) -> StreamingResponse:
        async def events_out() -> AsyncIterator[bytes]:
            # Subscribed before the snapshot is computed: a change in between is delivered, not lost.
            try:
                sub = await run_in_threadpool(hub.subscribe, asyncio.get_running_loop())
            except StoreError:
                return  # the API went away since the request was checked: the page reconnects
            try:
                version = sub.version
                try:
                    last = await run_in_threadpool(compute)  # a snapshot is always read afresh
                except StoreError:
                    return
                yield _event("snapshot", last, version)
                beat = time.monotonic()
                while not closing.is_set() and not await request.is_disconnected():
                    # Short waits so that a closing server ends its streams promptly.
                    news = await sub.next(timeout=min(heartbeat, 0.5))
                    if news is None:
                        if time.monotonic() - beat >= heartbeat:
                            beat = time.monotonic()
                            yield b": heartbeat\n\n"
                        continue
                    version, namespaces = news
                    if namespaces is not None and ns not in namespaces:
                        continue
                    try:
                        payload = await view_at(key, version, compute)
                    except HTTPException:
                        yield _event("deleted", None, version)
                        return
                    except StoreError:
                        return  # the API failed mid-stream: end it, the page reconnects and says so
                    if payload != last:
                        last = payload
                        yield _event("update", payload, version)
            finally:
                hub.unsubscribe(sub)

        client = request.client.host if request.client is not None else "unknown"
        try:
            release = limits.acquire(client)
        except StreamLimitReached as exc:
            raise HTTPException(exc.status, exc.detail,
                                headers={"retry-after": "10"} if exc.status == 503 else None) from None
        return CountedStream(events_out(), release, media_type="text/event-stream",
                             headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    sse_doc: dict[int | str, dict[str, Any]] = {200: {
        "description": "server-sent events: `snapshot` first, then `update` on each change; `: heartbeat` "
                       "comments while idle",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }, 429: {"model": Problem, "description": "too many open event streams from this client"},
        503: {"model": Problem, "description": "too many open event streams in all"}}

    @read.get("/rollouts/{ns}/watch", response_class=StreamingResponse, responses=sse_doc,
              summary="Stream the rollouts of a namespace")
    def watch_namespace(request: Request, ns: Namespace) -> StreamingResponse:
        store().current_version()  # an unreachable API is a 503 the page shows, not a stream that dies
        return stream(request, ("list", ns), ns,
                      lambda: [i.to_dict() for i in list_rollout_infos(store(), ns, clock())])

    @read.get("/rollouts/{ns}/{name}/watch", response_class=StreamingResponse, responses=sse_doc,
              summary="Stream one rollout with its analysis runs and history")
    def watch_rollout(request: Request, ns: Namespace, name: Name) -> StreamingResponse:
        require(ns, name)
        return stream(request, ("detail", ns, name), ns, lambda: detail(ns, name))

    @read.get("/rollouts/{ns}/{name}", response_model=RolloutInfoModel, summary="One rollout")
    def rollout(ns: Namespace, name: Name) -> dict[str, Any]:
        return info(ns, name)

    @read.get("/rollouts/{ns}/{name}/history", response_model=History, summary="Revisions and their outcomes")
    def history(ns: Namespace, name: Name) -> History:
        return History(items=revisions(ns, name))

    @read.get("/rollouts/{ns}/{name}/analysisruns", response_model=AnalysisRunList,
              summary="Analysis runs with measurements and gate thresholds")
    def analysis_runs(ns: Namespace, name: Name) -> AnalysisRunList:
        require(ns, name)
        return AnalysisRunList(items=[analysis_run_view(r) for r in owned_runs(ns, name)])

    @read.get("/rollouts/{ns}/{name}/events", response_model=EventList, summary="Events, oldest first")
    def rollout_events(ns: Namespace, name: Name) -> EventList:
        require(ns, name)
        return events(ns, name)

    @read.get("/rollouts/{ns}/{name}/weights", response_model=WeightHistory,
              summary="The canary's traffic weight since the current release started (from its events)")
    def rollout_weights(ns: Namespace, name: Name) -> WeightHistory:
        require(ns, name)
        return weight_history(rollout_events_raw(ns, name))

    @read.get("/rollouts/{ns}/{name}/actions", response_model=dict[str, Availability],
              summary="Which actions apply to the rollout now, and why not")
    def rollout_actions(ns: Namespace, name: Name) -> dict[str, Availability]:
        return actions_of(ns, name)

    def run(action: Callable[[], actions.ActionResult]) -> ActionOutcome:
        try:
            result = action()
        except RolloutNotFound as exc:
            raise HTTPException(404, str(exc)) from None
        except actions.ActionError as exc:
            raise HTTPException(409, str(exc)) from None
        return ActionOutcome(message=result.message, changed=result.changed)

    verbs: dict[str, tuple[str, Callable[[ObjectStore, str, str], actions.ActionResult]]] = {
        "promote": ("Promote: finish the current pause or step", actions.promote),
        "promote-full": ("Promote fully: skip every remaining step, pause and analysis",
                         lambda s, ns, n: actions.promote(s, ns, n, full=True)),
        "abort": ("Abort: traffic and replicas go back to the stable version", actions.abort),
        "retry": ("Retry an aborted rollout from its first step", actions.retry),
        "pause": ("Pause: steps stop advancing", actions.pause),
        "resume": ("Resume without skipping the current step", actions.resume),
        "restart": ("Restart the pods", lambda s, ns, n: actions.restart(s, ns, n, clock())),
    }

    def add_verb(verb: str, summary: str, apply: Callable[[ObjectStore, str, str], actions.ActionResult]) -> None:
        def endpoint(ns: Namespace, name: Name) -> ActionOutcome:
            state = actions_of(ns, name)[verb]
            if not state.allowed:
                raise HTTPException(409, f"{verb} does not apply to rollout {ns}/{name} now: {state.reason}")
            return run(lambda: apply(store(), ns, name))

        endpoint.__name__ = f"post_{verb.replace('-', '_')}"
        write.post(f"/rollouts/{{ns}}/{{name}}/{verb}", response_model=ActionOutcome, summary=summary)(endpoint)

    for verb, (summary, apply) in verbs.items():
        add_verb(verb, summary, apply)

    @write.post("/rollouts/{ns}/{name}/undo/{revision}", response_model=ActionOutcome,
                summary="Go back to a revision's pod template (0: the previous revision)")
    def post_undo(ns: Namespace, name: Name,
                  revision: Annotated[int, Path(ge=0, le=2**31 - 1)]) -> ActionOutcome:
        live = [r.revision for r in revisions(ns, name) if r.live]
        state = undo_availability(revision in live)
        if not state.allowed:
            raise HTTPException(409, f"undo to revision {revision} does not apply to rollout {ns}/{name}: "
                                     f"{state.reason}")
        return run(lambda: actions.undo(store(), ns, name, revision))

    @write.post("/rollouts/{ns}/{name}/set-image", response_model=ActionOutcome,
                summary="Set a container's image (starts a release)")
    def post_set_image(ns: Namespace, name: Name, body: SetImageRequest) -> ActionOutcome:
        return run(lambda: actions.set_image(store(), ns, name, body.container, body.image))

    app.include_router(read)
    app.include_router(write)
    app.add_exception_handler(StoreError, _store_failure)  # type: ignore[arg-type]

    def page(name: str, media_type: str) -> Callable[[], Awaitable[Response]]:
        content = _static(name)

        async def serve() -> Response:
            return Response(content, media_type=media_type, headers={"cache-control": "no-cache"})

        return serve

    app.get("/", include_in_schema=False)(page("index.html", "text/html; charset=utf-8"))
    for file, media in STATIC_FILES.items():
        # A fixed table of names: nothing from the request ever reaches a file system path.
        app.get(f"/static/{file}", include_in_schema=False)(page(file, media))
    return app

