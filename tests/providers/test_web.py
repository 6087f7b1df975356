"""The web provider against a local HTTP server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rollouts.analysis.providers import WebMetricProvider
from tests.providers.conftest import Reply, ScriptedServer, Seen, make_ctx, metric, run

DOCUMENT = {"data": {"ok": True, "rate": 0.97, "name": "canary",
                     "items": [{"n": "a", "v": 1}, {"n": "b", "v": 2}]}}


def measure(m: Any, **ctx: Any) -> Any:
    return run(WebMetricProvider().measure(m, make_ctx(**ctx)))


@pytest.mark.parametrize(("json_path", "value", "printed"), [
    pytest.param("{$.data.ok}", True, "true", id="dollar-dot"),
    pytest.param("{.data.ok}", True, "true", id="kubernetes-dot"),
    pytest.param("{$.data.rate}", 0.97, "0.97", id="number"),
    pytest.param("{.data.name}", "canary", "canary", id="string-unquoted"),
    pytest.param("{.data.items[1].v}", 2, "2", id="index"),
    pytest.param("{.data.items[*].v}", [1, 2], "[1,2]", id="wildcard-list"),
    pytest.param('{.data.items[?(@.n=="b")].v}', 2, "2", id="filter"),
    pytest.param(None, DOCUMENT, json.dumps(DOCUMENT, separators=(",", ":")), id="default-whole-document"),
    pytest.param("{$}", DOCUMENT, json.dumps(DOCUMENT, separators=(",", ":")), id="explicit-whole-document"),
])
def test_get_json_path(server: ScriptedServer, json_path: str | None, value: Any, printed: str) -> None:
    server.routes["/status"] = Reply(body=DOCUMENT)
    spec: dict[str, Any] = {"url": server.url + "/status?x=1"}
    if json_path is not None:
        spec["jsonPath"] = json_path
    outcome = measure(metric(web=spec))
    assert outcome.error is None
    assert (outcome.value, outcome.printed) == (value, printed)
    assert type(outcome.value) is type(value)
    [seen] = server.seen
    assert (seen.method, seen.path, seen.query) == ("GET", "/status", {"x": ["1"]})


def echo(seen: Seen) -> Reply:
    return Reply(body={"method": seen.method, "contentType": seen.headers.get("Content-Type"),
                       "auth": seen.headers.get("Authorization"), "received": seen.body.decode()})


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_json_body_is_sent_as_json(server: ScriptedServer, method: str) -> None:
    server.routes["/echo"] = echo
    outcome = measure(metric(web={"url": server.url + "/echo", "method": method,
                                  "headers": [{"key": "Authorization", "value": "Bearer abc"}],
                                  "jsonBody": {"n": 5, "tags": ["a"]}, "jsonPath": "{$}"}))
    assert outcome.error is None
    assert outcome.value["method"] == method
    assert outcome.value["contentType"] == "application/json"
    assert outcome.value["auth"] == "Bearer abc"
    assert json.loads(outcome.value["received"]) == {"n": 5, "tags": ["a"]}


def test_plain_body_is_sent_verbatim(server: ScriptedServer) -> None:
    server.routes["/echo"] = echo
    outcome = measure(metric(web={"url": server.url + "/echo", "method": "POST", "body": "a=1&b=2",
                                  "headers": [{"key": "Content-Type", "value": "text/plain"}],
                                  "jsonPath": "{.received}"}))
    assert (outcome.error, outcome.value) == (None, "a=1&b=2")
    assert server.seen[0].headers["Content-Type"] == "text/plain"


@pytest.mark.parametrize(("body", "value"), [
    pytest.param("healthy\n", "healthy\n", id="text-with-newline"),
    pytest.param("<html>ok</html>", "<html>ok</html>", id="html"),
    pytest.param("", "", id="empty"),
])
def test_non_json_body_is_the_raw_string(server: ScriptedServer, body: str, value: str) -> None:
    server.routes["/plain"] = Reply(body=body, content_type="text/plain")
    outcome = measure(metric(web={"url": server.url + "/plain", "jsonPath": "{$.ignored}"}))
    assert (outcome.error, outcome.value, outcome.printed) == (None, value, value)


def test_json_scalar_body(server: ScriptedServer) -> None:
    server.routes["/n"] = Reply(body="42", content_type="application/json")
    outcome = measure(metric(web={"url": server.url + "/n"}))
    assert (outcome.error, outcome.value, outcome.printed) == (None, 42, "42")


@pytest.mark.parametrize(("status", "fragment"), [(404, "404"), (500, "500"), (302, "302")])
def test_non_2xx_is_an_error(server: ScriptedServer, status: int, fragment: str) -> None:
    server.routes["/x"] = Reply(status, "nope")
    outcome = measure(metric(web={"url": server.url + "/x"}))
    assert outcome.error is not None
    assert f"non 2xx response code {fragment}" in outcome.error and server.url + "/x" in outcome.error


def test_json_path_miss_is_an_error(server: ScriptedServer) -> None:
    server.routes["/status"] = Reply(body=DOCUMENT)
    outcome = measure(metric(web={"url": server.url + "/status", "jsonPath": "{$.data.missing}"}))
    assert outcome.error is not None and "{$.data.missing} matched nothing" in outcome.error


@pytest.mark.parametrize(("spec", "fragment"), [
    pytest.param({"method": "GET", "body": "x"}, "only sent with method POST or PUT", id="get-with-body"),
    pytest.param({"method": "POST", "body": "x", "jsonBody": {}}, "either body or jsonBody",
                 id="both-bodies"),
    pytest.param({"jsonPath": "{$.a[}"}, "not a valid JSONPath", id="bad-json-path"),
    pytest.param({"jsonPath": "ok: {.a} {.b}"}, "only one {...} expression", id="template-text"),
    pytest.param({"url": ""}, "provider.web.url is required", id="no-url"),
])
def test_spec_problems_are_errors_without_a_request(server: ScriptedServer, spec: dict[str, Any],
                                                    fragment: str) -> None:
    outcome = measure(metric(web={"url": server.url + "/x", **spec}))
    assert outcome.error is not None and fragment in outcome.error
    assert server.seen == []


def test_timeout(server: ScriptedServer) -> None:
    server.routes["/slow"] = Reply(body=DOCUMENT, hold=True)
    outcome = measure(metric(web={"url": server.url + "/slow", "timeoutSeconds": 1}))
    assert outcome.error is not None and "no answer within 1s" in outcome.error


def test_connection_refused(closed_port: int) -> None:
    url = f"http://127.0.0.1:{closed_port}/status"
    outcome = measure(metric(web={"url": url}))
    assert outcome.error is not None and url in outcome.error and "connection failed" in outcome.error


def test_secrets_in_url_and_headers_are_redacted(server: ScriptedServer) -> None:
    secret = "k3y&v@lue"
    server.routes["/x"] = lambda seen: Reply(403, f"denied key={seen.query.get('key')} "
                                                  f"header={seen.headers.get('X-Api-Key')}")
    outcome = measure(metric(web={"url": f"{server.url}/x?key=k3y%26v%40lue",
                                  "headers": [{"key": "X-Api-Key", "value": secret}]}),
                      secrets=[secret])
    assert outcome.error is not None and "403" in outcome.error
    assert secret not in outcome.error and "k3y%26v%40lue" not in outcome.error
    assert outcome.error.count("*****") == 3


# -- 12.5 (c): a secretKeyRef value in a web metric's URL, headers or body is never shown ---------------------

SECRET = "s3cr3t-T0ken_value"


def _secret_run(url: str, json_path: str) -> Any:
    from rollouts.spec.analysis import AnalysisRun

    return AnalysisRun.model_validate({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": "shop-abc-1", "namespace": "shop", "uid": "u-secret"},
        "spec": {
            "args": [{"name": "api-token", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}}],
            "metrics": [{"name": "check", "successCondition": "result == 'fine'", "provider": {"web": {
                "url": url + "?token={{args.api-token}}", "method": "POST", "jsonPath": json_path,
                "headers": [{"key": "X-Token", "value": "{{args.api-token}}"}],
                "jsonBody": {"token": "{{args.api-token}}"}}}}],
        },
    })


def _run_to_completion(run: Any) -> Any:
    import asyncio
    import time
    from datetime import UTC, datetime

    from rollouts.analysis.executor import AnalysisExecutor, store_secret_lookup

    async def go() -> Any:
        executor = AnalysisExecutor(secret_lookup=store_secret_lookup(
            lambda ns, name: {"stringData": {"token": SECRET}}))
        current = run
        deadline = time.monotonic() + 15
        try:
            while time.monotonic() < deadline:
                current, _ = executor.step(current, datetime.now(UTC))
                results = current.status.metric_results if current.status is not None else None
                if results and results[0].measurements and results[0].measurements[-1].phase != "Running":
                    return current  # one measurement taken: enough to see what it recorded
                await executor.wait_any(0.2)
        finally:
            await executor.close()
        raise AssertionError(f"no measurement was taken: {current.status}")

    return asyncio.run(go())


def _echo_secret(status: int) -> Any:
    def reply(seen: Seen) -> Reply:
        assert seen.query["token"] == [SECRET] and seen.headers["X-Token"] == SECRET  # it was really sent
        return Reply(status=status, body={"echo": f"token {seen.query['token'][0]} accepted"})

    return reply


@pytest.mark.parametrize(("route", "json_path", "phase"), [
    pytest.param(_echo_secret(200), "{$.echo}", "Failed", id="value-quotes-the-secret"),
    pytest.param(_echo_secret(500), "{$.echo}", "Error", id="server-error-quotes-the-secret"),
    pytest.param(_echo_secret(200), "{$.missing}", "Error", id="json-path-matches-nothing"),
    pytest.param(None, "{$.echo}", "Error", id="connection-refused"),
])
def test_secret_arg_in_web_url_redacted_from_logs_and_run_messages(
        server: ScriptedServer, closed_port: int, caplog: pytest.LogCaptureFixture,
        route: Any, json_path: str, phase: str) -> None:
    import logging
    from urllib.parse import quote

    url = server.url + "/check" if route is not None else f"http://127.0.0.1:{closed_port}/check"
    if route is not None:
        server.routes["/check"] = route
    caplog.set_level(logging.DEBUG)  # every logger: ours and the HTTP client's own
    done = _run_to_completion(_secret_run(url, json_path))
    assert done.status.metric_results[0].measurements[-1].phase == phase
    stored = done.model_dump_json(by_alias=True)
    assert "*****" in stored
    for form in (SECRET, quote(SECRET, safe="")):
        assert form not in stored
        assert form not in caplog.text
    if route is not None:
        assert server.seen, "the request was never made"
