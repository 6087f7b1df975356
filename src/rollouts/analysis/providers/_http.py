"""HTTP pieces the Prometheus and web providers share: headers, authentication (basic, OAuth2 client
credentials), plain-language descriptions of transport failures, a client that logs no URLs, and `send`:
one exchange bounded in time (connect to last byte) and in body size."""

from __future__ import annotations

import asyncio
import functools
import ssl
from typing import Any

import httpx

from rollouts.safeurl import quiet_client_logs
from rollouts.spec.analysis import Authentication, KeyValue

# httpx logs each request's full URL at INFO: a secret argument in a query string (`?token={{args.t}}`)
# would reach the log in clear, past every redaction of ours.
quiet_client_logs()


# A metric answer is a number or a few series; a body past this (decoded) size is a misbehaving source, and
# reading it whole would stall the operator's loop and memory. Prometheus' largest sane answers (a vector of
# some thousand series) stay well below.
MAX_BODY_BYTES = 8 * 1024 * 1024


class RequestFailed(Exception):
    """A request could not produce an answer worth judging; the text is the measurement's error."""


async def send(http: httpx.AsyncClient, method: str, url: str, *, timeout: float, auth: Any = httpx.USE_CLIENT_DEFAULT,
               limit: int = MAX_BODY_BYTES, **request: Any) -> httpx.Response:
    """One request whose whole exchange takes at most `timeout` seconds and whose body is at most `limit`
    bytes. httpx's own timeout bounds each read, not the answer: a source trickling a byte a second would
    otherwise hold a measurement forever. A late answer raises httpx.ReadTimeout, an oversized one
    RequestFailed naming the cap; the response returned has its body read."""
    built = http.build_request(method, url, **request)
    try:
        async with asyncio.timeout(timeout):
            response = await http.send(built, auth=auth, stream=True)
            try:
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise RequestFailed(_too_large(response.status_code, f"{int(declared)} bytes declared", limit))
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise RequestFailed(_too_large(response.status_code, f"more than {limit} bytes", limit))
                    chunks.append(chunk)
            finally:
                await response.aclose()
    except TimeoutError as exc:
        raise httpx.ReadTimeout(f"the whole answer did not arrive within {timeout:g}s", request=built) from exc
    # The body is decoded already (gzip and the like): the copy must not announce an encoding again.
    headers = [(k, v) for k, v in response.headers.multi_items()
               if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
    return httpx.Response(response.status_code, headers=headers, content=b"".join(chunks), request=built)


def _too_large(status: int, size: str, limit: int) -> str:
    return (f"HTTP {status}, answer body too large ({size}; the cap is {limit // (1024 * 1024)} MiB): "
            "a metric answer is expected to be a few values")


def client(*, timeout: float, insecure: bool | None) -> httpx.AsyncClient:
    """A client for one measurement (the TLS context is shared: building one costs more than a query)."""
    return httpx.AsyncClient(timeout=timeout, verify=_tls(bool(insecure)))


@functools.cache
def _tls(insecure: bool) -> ssl.SSLContext:
    return httpx.create_ssl_context(verify=not insecure)


def header_dict(headers: list[KeyValue] | None) -> dict[str, str]:
    return {item.key: item.value for item in headers or []}


async def authorize(
    client: httpx.AsyncClient, auth: Authentication | None, headers: dict[str, str], *, field: str
) -> httpx.Auth | None:
    """Apply `authentication` to a request about to be made: returns basic auth, or adds a bearer token
    obtained with OAuth2 client credentials to `headers`. `field` is the spec path for messages."""
    if auth is None:
        return None
    if auth.sigv4 is not None:
        raise RequestFailed(
            f"{field}.sigv4: AWS SigV4 signing is not supported by this controller; "
            "use basicAuth, oauth2 or headers instead"
        )
    if auth.oauth2 is not None and auth.oauth2.token_url:
        headers["Authorization"] = f"Bearer {await _oauth2_token(client, auth, field=field)}"
    if auth.basic_auth is not None:
        return httpx.BasicAuth(auth.basic_auth.username, auth.basic_auth.password)
    return None


async def _oauth2_token(client: httpx.AsyncClient, auth: Authentication, *, field: str) -> str:
    oauth2 = auth.oauth2
    assert oauth2 is not None and oauth2.token_url
    form = {"grant_type": "client_credentials"}
    if oauth2.client_id:
        form["client_id"] = oauth2.client_id
    if oauth2.client_secret:
        form["client_secret"] = oauth2.client_secret
    if oauth2.scopes:
        form["scope"] = " ".join(oauth2.scopes)
    try:
        response = await client.post(oauth2.token_url, data=form)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise RequestFailed(f"{field}.oauth2: token request to {oauth2.token_url} failed: "
                            f"{describe(exc)}") from exc
    if not response.is_success:
        raise RequestFailed(f"{field}.oauth2: token endpoint {oauth2.token_url} answered HTTP "
                            f"{response.status_code}")
    try:
        token = response.json()["access_token"]
    except (ValueError, KeyError, TypeError) as exc:
        raise RequestFailed(
            f"{field}.oauth2: token endpoint {oauth2.token_url} gave no access_token"
        ) from exc
    return str(token)


def describe(exc: httpx.HTTPError | httpx.InvalidURL) -> str:
    """A transport failure in words; httpx's own text is kept because it names the cause."""
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        return f"connection failed ({text})"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    return text


def snippet(text: str, limit: int = 300) -> str:
    """The start of a response body, on one line, for error messages."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "..."
