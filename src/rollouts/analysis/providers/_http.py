"""HTTP pieces the Prometheus and web providers share: headers, authentication (basic, OAuth2 client
credentials), plain-language descriptions of transport failures, and a client that logs no URLs."""

from __future__ import annotations

import functools
import ssl

import httpx

from rollouts.safeurl import quiet_client_logs
from rollouts.spec.analysis import Authentication, KeyValue

# httpx logs each request's full URL at INFO: a secret argument in a query string (`?token={{args.t}}`)
# would reach the log in clear, past every redaction of ours.
quiet_client_logs()


class RequestFailed(Exception):
    """A request could not produce an answer worth judging; the text is the measurement's error."""


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
