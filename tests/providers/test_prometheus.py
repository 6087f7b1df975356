"""The Prometheus provider against a local HTTP server speaking Prometheus' query API."""

from __future__ import annotations

import base64
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rollouts.analysis.providers import PrometheusMetricProvider
from rollouts.analysis.providers.prometheus import eval_time_expression, format_float
from tests.providers.conftest import Reply, ScriptedServer, make_ctx, metric, run


def success(result_type: str, result: Any) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": result_type, "result": result}}


def vector(*values: str) -> dict[str, Any]:
    return success("vector", [{"metric": {"pod": f"p{i}"}, "value": [1700000000.5, v]}
                              for i, v in enumerate(values)])


def measure(m: Any, **ctx: Any) -> Any:
    return run(PrometheusMetricProvider(clock=lambda: 1_000_000.0).measure(m, make_ctx(**ctx)))


RESULTS = [
    pytest.param(vector("0.98"), [0.98], "[0.98]", id="vector-one"),
    pytest.param(vector(), [], "[]", id="vector-empty"),
    pytest.param(vector("1", "0.5", "NaN"), [1.0, 0.5, math.nan], "[1,0.5,NaN]", id="vector-many"),
    pytest.param(success("scalar", [1700000000, "0.25"]), 0.25, "0.25", id="scalar"),
    pytest.param(success("scalar", [1700000000, "NaN"]), math.nan, "NaN", id="scalar-nan"),
    pytest.param(success("scalar", [1700000000, "+Inf"]), math.inf, "+Inf", id="scalar-inf"),
    pytest.param(success("matrix", [{"metric": {}, "values": [[1, "1"], [2, "2"]]},
                                    {"metric": {}, "values": [[1, "3.5"]]}]),
                 [1.0, 2.0, 3.5], "[1,2,3.5]", id="matrix-flattened"),
    pytest.param(success("string", [1700000000, "hello"]), "hello", "hello", id="string"),
]


def same(a: Any, b: Any) -> bool:
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize(("answer", "value", "printed"), RESULTS)
def test_result_typing_and_printing(server: ScriptedServer, answer: Any, value: Any, printed: str) -> None:
    server.routes["/api/v1/query"] = Reply(body=answer)
    query = 'sum(rate(http_requests_total{code!~"5.."}[1m])) / sum(rate(http_requests_total[1m]))'
    outcome = measure(metric(prometheus={"address": server.url, "query": query}))
    assert outcome.error is None
    assert same(outcome.value, value), outcome.value
    assert outcome.printed == printed
    assert outcome.metadata == {"ResolvedPrometheusQuery": query, "PrometheusAddress": server.url.rstrip("/")}
    assert outcome.phase is None
    [seen] = server.seen
    assert (seen.method, seen.params()["query"]) == ("POST", query)


def test_falls_back_to_get_when_post_is_refused(server: ScriptedServer) -> None:
    server.routes[("POST", "/api/v1/query")] = Reply(405, "method not allowed")
    server.routes[("GET", "/api/v1/query")] = Reply(body=vector("7"))
    outcome = measure(metric(prometheus={"address": server.url + "/", "query": "up"}))
    assert (outcome.error, outcome.value) == (None, [7.0])
    assert [s.method for s in server.seen] == ["POST", "GET"]
    assert server.seen[1].query["query"] == ["up"]


def test_range_query_window_from_time_expressions(server: ScriptedServer) -> None:
    server.routes["/api/v1/query_range"] = Reply(body=success("matrix", [{"values": [[1, "0.9"]]}]))
    outcome = measure(metric(prometheus={
        "address": server.url, "query": "up",
        "rangeQuery": {"start": 'now() - duration("5m")', "end": "now()", "step": "1m"},
    }))
    assert (outcome.error, outcome.value, outcome.printed) == (None, [0.9], "[0.9]")
    params = server.seen[0].params()
    assert (params["start"], params["end"], params["step"]) == ("999700", "1000000", "60")


@pytest.mark.parametrize(("range_query", "fragment"), [
    pytest.param({"start": "yesterday", "step": "1m"}, "rangeQuery.start", id="bad-start"),
    pytest.param({"start": "now()", "end": 'now() - duration("5x")', "step": "1m"}, "rangeQuery.end",
                 id="bad-end-duration"),
    pytest.param({"start": 'now() - duration("5m")'}, "rangeQuery.step is required", id="no-step"),
    pytest.param({"start": "now()", "end": 'now() - duration("1m")', "step": "1m"}, "is before start",
                 id="end-before-start"),
], )
def test_range_query_errors_name_the_field(server: ScriptedServer, range_query: dict[str, str],
                                           fragment: str) -> None:
    outcome = measure(metric(prometheus={"address": server.url, "query": "up", "rangeQuery": range_query}))
    assert outcome.error is not None and fragment in outcome.error
    assert server.seen == []


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("now()", 1000.0, id="now"),
    pytest.param(' now( ) - duration("5m") ', 700.0, id="minus"),
    pytest.param("now() + duration('1h')", 4600.0, id="plus-single-quotes"),
    pytest.param('now() - duration("1h") + duration("30s")', -2570.0, id="chain"),
])
def test_time_expressions(text: str, expected: float) -> None:
    assert eval_time_expression(text, now=1000.0) == expected


@pytest.mark.parametrize(("number", "text"), [
    (1.0, "1"), (0.98, "0.98"), (1e-7, "0.0000001"), (1e21, "1000000000000000000000"), (-2.5, "-2.5"),
    (math.inf, "+Inf"), (-math.inf, "-Inf"), (math.nan, "NaN"), (0.0, "0"),
], ids=lambda v: str(v))
def test_format_float(number: float, text: str) -> None:
    assert format_float(number) == text


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_format_float_round_trips_without_exponent(number: float) -> None:
    text = format_float(number)
    assert "e" not in text.lower()
    assert float(text) == number


@pytest.mark.parametrize(("reply", "fragments"), [
    pytest.param(Reply(400, {"status": "error", "errorType": "bad_data", "error": "parse error at char 3"}),
                 ["HTTP 400", "bad_data", "parse error at char 3"], id="error-status"),
    pytest.param(Reply(200, {"status": "error", "errorType": "execution", "error": "too many samples"}),
                 ["execution", "too many samples"], id="error-status-on-200"),
    pytest.param(Reply(500, "upstream exploded"), ["HTTP 500", "upstream exploded"], id="500-text"),
    pytest.param(Reply(200, success("weird", [])), ["'weird' is not supported"], id="unknown-type"),
])
def test_failed_queries_are_errors_naming_the_address(server: ScriptedServer, reply: Reply,
                                                      fragments: list[str]) -> None:
    server.routes["/api/v1/query"] = reply
    outcome = measure(metric(prometheus={"address": server.url, "query": "up"}))
    assert outcome.error is not None
    for fragment in [server.url, *fragments]:
        assert fragment in outcome.error
    assert outcome.metadata == {"ResolvedPrometheusQuery": "up", "PrometheusAddress": server.url.rstrip("/")}


def test_slow_server_times_out(server: ScriptedServer) -> None:
    server.routes["/api/v1/query"] = Reply(body=vector("1"), hold=True)
    outcome = measure(metric(prometheus={"address": server.url, "query": "up", "timeout": 1}))
    assert outcome.error is not None
    assert server.url in outcome.error and "within 1s" in outcome.error


def test_connection_refused(closed_port: int) -> None:
    address = f"http://127.0.0.1:{closed_port}"
    outcome = measure(metric(prometheus={"address": address, "query": "up"}))
    assert outcome.error is not None
    assert address in outcome.error and "connection failed" in outcome.error


@pytest.mark.parametrize("variable", ["ROLLOUTS_PROMETHEUS_ADDRESS", "ARGO_ROLLOUTS_PROMETHEUS_ADDRESS"])
def test_address_from_environment(server: ScriptedServer, variable: str,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROLLOUTS_PROMETHEUS_ADDRESS", raising=False)
    monkeypatch.delenv("ARGO_ROLLOUTS_PROMETHEUS_ADDRESS", raising=False)
    server.routes["/api/v1/query"] = Reply(body=vector("3"))
    outcome = measure(metric(prometheus={"query": "up"}), env={variable: server.url})
    assert (outcome.error, outcome.value) == (None, [3.0])


def test_no_address_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROLLOUTS_PROMETHEUS_ADDRESS", raising=False)
    monkeypatch.delenv("ARGO_ROLLOUTS_PROMETHEUS_ADDRESS", raising=False)
    outcome = measure(metric(prometheus={"query": "up"}))
    assert outcome.error is not None
    assert "provider.prometheus.address" in outcome.error and "ROLLOUTS_PROMETHEUS_ADDRESS" in outcome.error


def test_headers_and_basic_auth_are_sent(server: ScriptedServer) -> None:
    server.routes["/api/v1/query"] = Reply(body=vector("1"))
    outcome = measure(metric(prometheus={
        "address": server.url, "query": "up",
        "headers": [{"key": "X-Scope-OrgID", "value": "tenant-a"}],
        "authentication": {"basicAuth": {"username": "reader", "password": "pw"}},
    }))
    assert outcome.error is None
    headers = server.seen[0].headers
    assert headers["X-Scope-OrgID"] == "tenant-a"
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"reader:pw").decode()


def test_oauth2_client_credentials_token_is_used(server: ScriptedServer) -> None:
    server.routes["/token"] = Reply(body={"access_token": "tok-123", "token_type": "bearer"})
    server.routes["/api/v1/query"] = Reply(body=vector("1"))
    outcome = measure(metric(prometheus={
        "address": server.url, "query": "up",
        "authentication": {"oauth2": {"tokenUrl": server.url + "/token", "clientId": "id",
                                      "clientSecret": "sec", "scopes": ["read", "metrics"]}},
    }))
    assert outcome.error is None
    token_request, query_request = server.seen
    assert token_request.form() == {"grant_type": ["client_credentials"], "client_id": ["id"],
                                    "client_secret": ["sec"], "scope": ["read metrics"]}
    assert query_request.headers["Authorization"] == "Bearer tok-123"


def test_sigv4_is_reported_as_unsupported(server: ScriptedServer) -> None:
    outcome = measure(metric(prometheus={"address": server.url, "query": "up",
                                         "authentication": {"sigv4": {"region": "eu-west-1"}}}))
    assert outcome.error is not None and "sigv4" in outcome.error
    assert server.seen == []


def test_secrets_never_appear_in_errors(closed_port: int, server: ScriptedServer) -> None:
    secret = "s3cr3t/p@ss word"
    address = f"http://admin:{secret}@127.0.0.1:{closed_port}"
    refused = measure(metric(prometheus={"address": address, "query": f'up{{token="{secret}"}}'}),
                      secrets=[secret])
    # The server echoes the secret header back in its error body.
    server.routes["/api/v1/query"] = lambda seen: Reply(
        500, f"bad header {seen.headers.get('X-Token')} for {seen.params()['query']}")
    echoed = measure(metric(prometheus={"address": server.url, "query": f'up{{token="{secret}"}}',
                                        "headers": [{"key": "X-Token", "value": secret}]}),
                     secrets=[secret])
    for outcome in (refused, echoed):
        assert outcome.error is not None and "*****" in outcome.error
        assert secret not in outcome.error
        assert secret not in outcome.metadata["ResolvedPrometheusQuery"]
    assert "HTTP 500" in echoed.error


# -- a prometheus metric without a query: lint warns (Argo's schema allows it); measuring is an Error --------


@pytest.mark.parametrize(
    "spec",
    [{}, {"query": ""}, {"query": "  \n\t "}],
    ids=["query-missing", "query-empty", "query-blank"],
)
def test_prometheus_metric_without_query_is_an_error_measurement(server: ScriptedServer,
                                                                 spec: dict[str, str]) -> None:
    # A permissive endpoint answers anything with a value: the provider must not ask it at all.
    server.routes["/api/v1/query"] = Reply(body=vector("1"))
    outcome = measure(metric("error-rate", prometheus={"address": server.url, **spec}))
    assert outcome.error is not None and outcome.value is None
    assert "metric 'error-rate': provider.prometheus.query is empty: give a PromQL expression" in outcome.error
    assert server.seen == []


def test_prometheus_metric_without_query_is_an_error_in_the_run(server: ScriptedServer) -> None:
    import asyncio
    import time
    from datetime import UTC, datetime

    from rollouts.analysis.executor import AnalysisExecutor
    from rollouts.spec.analysis import AnalysisRun

    server.routes["/api/v1/query"] = Reply(body=vector("1"))
    # The query comes from an argument that resolves to nothing: the same Error, not a Successful run.
    run_object = AnalysisRun.model_validate({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": "shop-abc-1", "namespace": "shop", "uid": "u-empty-query"},
        "spec": {"args": [{"name": "q", "value": ""}],
                 "metrics": [{"name": "error-rate", "successCondition": "result[0] >= 0",
                              "provider": {"prometheus": {"address": server.url, "query": "{{args.q}}"}}}]},
    })

    async def first_measurement() -> Any:
        executor = AnalysisExecutor()
        current = run_object
        deadline = time.monotonic() + 15
        try:
            while time.monotonic() < deadline:
                current, _ = executor.step(current, datetime.now(UTC))
                results = current.status.metric_results if current.status is not None else None
                if results and results[0].measurements:
                    return current
                await executor.wait_any(0.2)
        finally:
            await executor.close()
        raise AssertionError(f"no measurement was taken: {current.status}")

    done = asyncio.run(first_measurement())
    [measurement] = done.status.metric_results[0].measurements
    assert measurement.phase == "Error"
    assert "provider.prometheus.query is empty" in (measurement.message or "")
    assert server.seen == []
