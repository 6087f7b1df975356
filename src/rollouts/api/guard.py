"""What the dashboard checks before any endpoint runs, and the limits that keep one client from exhausting
it: the strict Host header check, a token offered where it does not belong (the URL, a cookie), the
Origin / Sec-Fetch-Site check of mutations (CSRF), the token check of everything but the page's own three
files (before any body is read), the request body cap (1 MiB) and the caps on open event streams (per
client and in all).

Plain ASGI middleware and a small counter, so these run before FastAPI parses anything."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fastapi.responses import StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rollouts.api.token import auth_problem, tokens_match
from rollouts.netaddr import HostHeaderError, is_loopback_host, parse_host_header

MAX_BODY_BYTES = 1024 * 1024
MAX_STREAMS = 64
MAX_STREAMS_PER_CLIENT = 16
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The only paths served without the token: the page and its two files, which hold no data (the page reads
# the token from its URL fragment, which browsers never send, and then asks /api/* with it), and the API's
# description. Everything else, unknown paths included, needs it.
PUBLIC_PATHS = frozenset({"/", "/static/app.js", "/static/app.css", "/api/v1/openapi.json"})
# Parameter and cookie names that can only mean someone tried to pass the token there.
CREDENTIAL_NAMES = frozenset({"token", "access_token", "accesstoken", "bearer", "auth", "authorization",
                              "api_key", "apikey", "rollouts_token"})
# Sec-Fetch-Site values of a request the page itself made (or the user typed); others come from other sites.
OWN_FETCH_SITES = frozenset({"same-origin", "none"})


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def reply(send: Send, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
    """A JSON problem answer ({"detail": ...}, as FastAPI's own errors), sent without reading the body."""
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
           (b"connection", b"close")]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def host_problem(value: str | None, *, loopback_only: bool) -> tuple[int, str] | None:
    """400 for a missing or malformed Host header; 421 for a foreign one on a loopback bind (a
    DNS-rebinding page reaches us under its own name)."""
    if value is None:
        return 400, "the request has no Host header"
    try:
        host, _ = parse_host_header(value)
    except HostHeaderError as exc:
        return 400, str(exc)
    if loopback_only and not is_loopback_host(host):
        return 421, "this dashboard answers only to localhost addresses (Host localhost, 127.0.0.1 or [::1])"
    return None


def misplaced_token_problem(scope: Scope, token: str) -> tuple[int, str] | None:
    """401 when the request carries a credential in its query string or a cookie: the token is accepted
    only from the Authorization header (URLs end up in histories, logs and Referer headers; cookies are
    sent by a browser to any page's request). Other cookies (other local apps share localhost) are ignored."""
    query = scope.get("query_string", b"").decode("latin-1")
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key.lower() in CREDENTIAL_NAMES or (value and tokens_match(value, token)):
            return 401, (f"the query parameter {key!r} looks like a credential: the dashboard token is accepted "
                         "only in the 'Authorization: Bearer <token>' header, never in the URL")
    raw = header(scope, b"cookie")
    if raw:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(raw)
        except CookieError:
            return None  # a cookie header we cannot read carries nothing we would accept either
        for name, morsel in jar.items():
            if name.lower() in CREDENTIAL_NAMES or (morsel.value and tokens_match(morsel.value, token)):
                return 401, (f"the cookie {name!r} looks like a credential: the dashboard token is accepted only "
                             "in the 'Authorization: Bearer <token>' header, never in a cookie")
    return None


def origin_problem(scope: Scope) -> tuple[int, str] | None:
    """403 for a mutation a browser sent from another site: an Origin that is not this server's own
    (scheme, host and port of the Host header), `Origin: null`, or a Sec-Fetch-Site other than
    same-origin / none. Clients that send neither header (curl, the CLI) are judged by the token alone."""
    site = header(scope, b"sec-fetch-site")
    if site is not None and site.lower() not in OWN_FETCH_SITES:
        return 403, (f"Sec-Fetch-Site {site!r}: actions are accepted only from the dashboard's own page "
                     "(same-origin), not from another site")
    origin = header(scope, b"origin")
    if origin is None:
        return None
    host = header(scope, b"host") or ""
    scheme = str(scope.get("scheme") or "http")
    if not _same_origin(origin, scheme, host):
        return 403, (f"Origin {origin!r} is not this dashboard ({scheme}://{host}): actions are accepted only "
                     "from the dashboard's own page")
    return None


def _same_origin(origin: str, scheme: str, host: str) -> bool:
    default = {"http": 80, "https": 443}
    try:
        parts = urlsplit(origin)
        origin_host, origin_port = parse_host_header(parts.netloc)
        own_host, own_port = parse_host_header(host)
    except (HostHeaderError, ValueError):
        return False  # "null" (a sandboxed or file: page) and anything malformed
    if parts.scheme != scheme or parts.path not in ("", "/") or parts.query or parts.fragment:
        return False
    return (origin_host == own_host
            and (origin_port or default.get(parts.scheme)) == (own_port or default.get(scheme)))


class RequestGuard:
    """Host check, then a token in the URL or a cookie (refused), then for mutations the Origin, then
    (for anything but the page's own files) the token, then the body cap; the body is read here, at most
    `limit` bytes of it, and handed on only once all of these passed."""

    def __init__(self, app: ASGIApp, *, token: str, loopback_only: bool, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.token = token
        self.loopback_only = loopback_only
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = host_problem(header(scope, b"host"), loopback_only=self.loopback_only)
        if problem is None:
            problem = misplaced_token_problem(scope, self.token)
        if problem is None and scope["method"] not in SAFE_METHODS:
            problem = origin_problem(scope)
        if problem is None and not (scope["method"] in SAFE_METHODS and scope["path"] in PUBLIC_PATHS):
            problem = auth_problem(header(scope, b"authorization"), self.token)
        if problem is not None and problem[0] == 401:
            await reply(send, *problem, headers={"www-authenticate": "Bearer"})
            return
        if problem is not None:
            await reply(send, *problem)
            return
        length = header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            status = 413 if length.isdigit() else 400
            await reply(send, status, f"the request body is larger than {self.limit} bytes" if status == 413
                        else "Content-Length is not a number")
            return
        if scope["method"] in SAFE_METHODS:
            # No endpoint reads the body of a read: it is never buffered (a declared large one was refused).
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await reply(send, 413, f"the request body is larger than {self.limit} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


class StreamLimitReached(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class StreamLimits:
    """Counts open event streams by client address; `acquire` refuses past either cap."""

    def __init__(self, total: int = MAX_STREAMS, per_client: int = MAX_STREAMS_PER_CLIENT) -> None:
        self.total = total
        self.per_client = per_client
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, client: str) -> Callable[[], None]:
        """Counts one stream for `client`; returns the function that ends the count (call it once)."""
        with self._lock:
            mine = self._open.get(client, 0)
            if mine >= self.per_client:
                raise StreamLimitReached(429, f"too many open event streams from {client} ({mine}, at most "
                                              f"{self.per_client} per client): close other dashboard tabs")
            if sum(self._open.values()) >= self.total:
                raise StreamLimitReached(503, f"the dashboard already serves {self.total} event streams, its "
                                              "limit: try again when some have closed")
            self._open[client] = mine + 1
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if released:
                    return
                released = True
                left = self._open.get(client, 0) - 1
                if left > 0:
                    self._open[client] = left
                else:
                    self._open.pop(client, None)

        return release

    def open_streams(self) -> int:
        with self._lock:
            return sum(self._open.values())


class CountedStream(StreamingResponse):
    """A streaming response that ends its stream count however it ends (finished, cancelled, never
    started because the client went away)."""

    def __init__(self, content: Any, release: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()
