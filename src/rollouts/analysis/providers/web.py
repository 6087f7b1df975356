"""The `web` metric provider: one HTTP request; a JSON answer gives the typed value at `jsonPath`
(Kubernetes-style JSONPath, `{$}` by default), any other answer gives its body as a string."""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

import httpx
from jsonpath_ng import JSONPath
from jsonpath_ng.ext import parse as parse_jsonpath

from rollouts.analysis.outcome import MeasurementOutcome
from rollouts.analysis.providers._http import (
    RequestFailed,
    authorize,
    client,
    describe,
    header_dict,
    send,
    snippet,
)
from rollouts.analysis.providers.base import MeasureContext
from rollouts.kube.dns import ResolveError, resolve_url
from rollouts.spec.analysis import Metric, WebProvider

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10
DEFAULT_JSON_PATH = "{$}"
FIELD = "provider.web"


class WebMetricProvider:
    """Measures a metric with an HTTP request."""

    type_label = "Web"

    async def measure(self, metric: Metric, ctx: MeasureContext) -> MeasurementOutcome:
        spec = metric.provider.web
        if spec is None:
            return ctx.error(f"metric {metric.name!r} has no {FIELD} section")
        method = spec.method or "GET"
        try:
            path = compile_json_path(spec.json_path or DEFAULT_JSON_PATH)
            response = await _request(spec, method, ctx.namespace)
        except RequestFailed as exc:
            log.debug("web measurement of %s failed: %s", metric.name, ctx.redact(str(exc)))
            return ctx.error(str(exc))
        text = response.text
        try:
            document = json.loads(text)
        except ValueError:
            # Not JSON: the conditions get the body itself (asInt()/asFloat() convert it).
            return MeasurementOutcome(value=text, printed=text)
        try:
            matches = [match.value for match in path.find(document)]
        except Exception as exc:  # evaluation errors of filters surface as assorted types
            return ctx.error(f"{FIELD}.jsonPath {spec.json_path}: cannot be evaluated on the answer: {exc}")
        if not matches:
            return ctx.error(f"{FIELD}.jsonPath {spec.json_path or DEFAULT_JSON_PATH} matched nothing in the "
                             f"answer of {method} {spec.url}: {snippet(text)}")
        value = matches[0] if len(matches) == 1 else matches
        return MeasurementOutcome(value=value, printed=ctx.redact(_print(value)))


async def _request(spec: WebProvider, method: str, namespace: str = "default") -> httpx.Response:
    if not spec.url:
        raise RequestFailed(f"{FIELD}.url is required")
    try:
        # A cluster Service name reaches the local cluster's listener when the operator installed a
        # resolver (rollouts.kube.dns); messages keep the URL as the template wrote it.
        resolved = await resolve_url(spec.url, namespace)
    except ResolveError as exc:
        raise RequestFailed(f"{method} {spec.url}: {exc}") from exc
    if spec.body is not None and spec.json_body is not None:
        raise RequestFailed(f"{FIELD}: set either body or jsonBody, not both")
    has_body = spec.body is not None or spec.json_body is not None
    if has_body and method not in ("POST", "PUT"):
        raise RequestFailed(f"{FIELD}: a body is only sent with method POST or PUT (method is {method})")
    timeout = float(spec.timeout_seconds if spec.timeout_seconds and spec.timeout_seconds > 0
                    else DEFAULT_TIMEOUT_SECONDS)
    headers = header_dict(spec.headers)
    if resolved.host and not any(key.lower() == "host" for key in headers):
        headers["Host"] = resolved.host
    content: bytes | None = None
    if spec.json_body is not None:
        content = json.dumps(spec.json_body).encode()
        if not any(key.lower() == "content-type" for key in headers):
            headers["Content-Type"] = "application/json"
    elif spec.body is not None:
        content = spec.body.encode()
    async with client(timeout=timeout, insecure=spec.insecure) as http:
        try:
            auth = await authorize(http, spec.authentication, headers, field=f"{FIELD}.authentication")
            response = await send(http, method, resolved.url, timeout=timeout, content=content, headers=headers,
                                  auth=auth)
        except httpx.TimeoutException as exc:
            raise RequestFailed(f"{method} {spec.url}: no answer within {timeout:g}s (timeout)") from exc
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise RequestFailed(f"{method} {spec.url}: {describe(exc)}") from exc
    if not response.is_success:
        raise RequestFailed(f"{method} {spec.url}: received non 2xx response code {response.status_code}: "
                            f"{snippet(response.text)}")
    return response


@functools.lru_cache(maxsize=256)
def compile_json_path(expression: str) -> JSONPath:
    """A Kubernetes-style JSONPath template (`{$.data.ok}`, `{.data.ok}`) as a jsonpath-ng path."""
    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    elif "{" in text or "}" in text:
        raise RequestFailed(f"{FIELD}.jsonPath {expression!r}: only one {{...}} expression is supported, "
                            "e.g. {$.data.ok}")
    if not text or text == "$":
        text = "$"
    elif text.startswith((".", "[")):
        text = "$" + text
    elif not text.startswith("$"):
        text = "$." + text
    try:
        return parse_jsonpath(text)
    except Exception as exc:  # jsonpath-ng's lexer and parser raise several unrelated types
        raise RequestFailed(f"{FIELD}.jsonPath {expression!r} is not a valid JSONPath: {exc}") from exc


def _print(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))
