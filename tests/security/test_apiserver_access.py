"""The local cluster's API server: every request but the health checks needs the bearer token in the
Authorization header (a token in the query string or a cookie is no credential, and is never logged), and
request bodies are capped with a Kubernetes Status 413 instead of being read to the end."""

from __future__ import annotations

import json
import logging
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.conftest import Cluster, start_cluster

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    home: Path = tmp_path_factory.mktemp("api")
    served, stop = start_cluster(home)
    try:
        yield served
    finally:
        stop()


@pytest.mark.parametrize(("path", "headers"), [
    pytest.param(CONFIGMAPS, {}, id="no-token"),
    pytest.param(f"{CONFIGMAPS}?access_token=TOKEN", {}, id="query-access-token"),
    pytest.param(f"{CONFIGMAPS}?token=TOKEN", {}, id="query-token"),
    pytest.param(CONFIGMAPS, {"Cookie": "token=TOKEN"}, id="cookie"),
    pytest.param(CONFIGMAPS, {"Authorization": "Basic TOKEN"}, id="basic-scheme"),
    pytest.param(CONFIGMAPS, {"Authorization": "Bearer TOKENx"}, id="wrong-token"),
    pytest.param("/metrics", {}, id="metrics"),
    pytest.param("/version", {}, id="version"),
    pytest.param("/openapi/v3", {}, id="openapi"),
    pytest.param("/traffic/v1/services", {}, id="traffic"),
])
def test_api_server_refuses_requests_without_the_token_header(
        cluster: Cluster, path: str, headers: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG), cluster.http(token=None) as http:
        answer = http.get(path.replace("TOKEN", cluster.token),
                          headers={k: v.replace("TOKEN", cluster.token) for k, v in headers.items()})
    assert answer.status_code == 401, answer.text
    assert answer.json()["kind"] == "Status" and answer.json()["reason"] == "Unauthorized"
    assert cluster.token not in caplog.text


def test_api_server_health_checks_open_and_empty(cluster: Cluster) -> None:
    with cluster.http(token=None) as http:
        for path in ("/healthz", "/livez", "/readyz"):
            answer = http.get(path)
            assert (answer.status_code, answer.text) == (200, "ok")


def _configmap(size: int) -> bytes:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"},
                       "data": {"blob": "x" * size}}).encode()


def test_api_server_caps_request_bodies_with_a_413_status(cluster: Cluster) -> None:
    with cluster.http() as http:
        declared = http.post(CONFIGMAPS, content=_configmap(9 * 1024 * 1024),
                             headers={"Content-Type": "application/json"})
        assert declared.status_code == 413, declared.text[:300]
        status = declared.json()
        assert (status["kind"], status["reason"], status["code"]) == ("Status", "RequestEntityTooLarge", 413)
        assert "larger than 8388608 bytes" in status["message"]

        body = _configmap(9 * 1024 * 1024)

        def chunks() -> Iterator[bytes]:  # no Content-Length: the cap is met while reading
            for start in range(0, len(body), 1 << 20):
                yield body[start:start + (1 << 20)]

        chunked = http.post(CONFIGMAPS, content=chunks(), headers={"Content-Type": "application/json"})
        assert chunked.status_code == 413, chunked.text[:300]
        assert chunked.json()["reason"] == "RequestEntityTooLarge"
        assert http.get(f"{CONFIGMAPS}/big").status_code == 404  # nothing stored
        assert http.post(CONFIGMAPS, content=_configmap(1000),
                         headers={"Content-Type": "application/json"}).status_code == 201


def test_api_server_refuses_a_declared_huge_body_before_reading_it(cluster: Cluster) -> None:
    """A 64 MiB Content-Length and no body: the answer comes at once, not after waiting for the bytes."""
    host, port = "127.0.0.1", int(cluster.url.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=cluster.ca)
    with socket.create_connection((host, port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=host) as sock:
        sock.sendall((f"POST {CONFIGMAPS} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {cluster.token}"
                      f"\r\nContent-Type: application/json\r\nContent-Length: {64 * 1024 * 1024}\r\n\r\n").encode())
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b'"RequestEntityTooLarge"' in answer
