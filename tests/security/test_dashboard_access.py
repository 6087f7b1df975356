"""The dashboard's access guarantees: every data call needs the token in the Authorization header (a token
in the query string or a cookie is refused and never logged), mutations from another site's page are
refused (Origin, Sec-Fetch-Site), and static paths cannot reach the file system."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from tests.dashboard.helpers import AUTH, BASE, TOKEN, seed, seeded_db


class Collected(logging.Handler):
    """Every log record of every logger, uvicorn's own (which do not propagate) included."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.getMessage()} {record.args!r}")


LOGS = Collected()


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard as `rollouts dashboard` builds it (build_server: its uvicorn configuration, logging
    included), served from a thread, with every logger's records collected."""
    from rollouts.api.server import bound_port, build_server, serve_until, wait_started
    from tests.dashboard.helpers import api_served, kube_factory

    db = seeded_db(tmp_path_factory.mktemp("dash") / "state.db", seed)
    loggers = [logging.getLogger(name) for name in ("", "uvicorn", "uvicorn.access", "uvicorn.error")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(LOGS)
        logger.setLevel(logging.DEBUG)
    with api_served(db) as kubeconfig:
        server = build_server(kube_factory(kubeconfig), "127.0.0.1", 0, TOKEN)
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()
        thread = threading.Thread(target=loop.run_until_complete, args=(serve_until(server, stop),), daemon=True)
        thread.start()
        asyncio.run_coroutine_threadsafe(wait_started(server), loop).result(20)
        try:
            yield f"http://127.0.0.1:{bound_port(server)}"
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(10)
            for logger, level in zip(loggers, levels, strict=True):
                logger.removeHandler(LOGS)
                logger.setLevel(level)


@pytest.mark.parametrize(("path", "headers"), [
    pytest.param(f"/api/v1/rollouts?token={TOKEN}", {}, id="query-token-named"),
    pytest.param(f"/api/v1/rollouts?access_token={TOKEN}", {}, id="query-access-token"),
    pytest.param(f"/api/v1/rollouts?x={TOKEN}", {}, id="query-token-value-under-any-name"),
    pytest.param(f"/api/v1/rollouts?token={TOKEN}", AUTH, id="query-token-even-with-the-header"),
    pytest.param("/api/v1/rollouts", {"Cookie": f"token={TOKEN}"}, id="cookie-token"),
    pytest.param("/api/v1/rollouts", {"Cookie": f"session={TOKEN}"}, id="cookie-token-value"),
    pytest.param("/api/v1/rollouts", {**AUTH, "Cookie": f"rollouts_token={TOKEN}"}, id="cookie-even-with-header"),
    pytest.param(f"/?token={TOKEN}", {}, id="page-with-query-token"),
])
def test_dashboard_refuses_token_in_query_or_cookie_and_never_logs_it(
        url: str, path: str, headers: dict[str, str]) -> None:
    before = len(LOGS.lines)
    answer = httpx.get(url + path, headers=headers, timeout=10)
    assert answer.status_code == 401, answer.text
    assert "Authorization: Bearer" in answer.json()["detail"]
    assert TOKEN not in answer.text
    assert httpx.get(url + "/nothing?probe=1", headers=AUTH, timeout=10).status_code == 404
    assert not [line for line in LOGS.lines[before:] if TOKEN in line]


def test_dashboard_ignores_cookies_of_other_local_apps(url: str) -> None:
    """localhost cookies are shared by every port: another app's cookie neither grants nor blocks access."""
    cookie = {"Cookie": "grafana_session=abc123; theme=dark"}
    assert httpx.get(url + "/api/v1/rollouts", headers=cookie, timeout=10).status_code == 401
    assert httpx.get(url + "/api/v1/rollouts", headers={**AUTH, **cookie}, timeout=10).status_code == 200


@pytest.mark.parametrize(("extra", "status"), [
    pytest.param({"Origin": "https://evil.example"}, 403, id="foreign-origin"),
    pytest.param({"Origin": "http://127.0.0.1:1"}, 403, id="other-port-same-host"),
    pytest.param({"Origin": "null"}, 403, id="null-origin"),
    pytest.param({"Sec-Fetch-Site": "cross-site"}, 403, id="sec-fetch-cross-site"),
    pytest.param({"Sec-Fetch-Site": "same-site"}, 403, id="sec-fetch-same-site"),
    pytest.param({"Origin": "SELF", "Sec-Fetch-Site": "same-origin"}, 200, id="own-page"),
    pytest.param({}, 200, id="no-browser-headers-cli"),
])
def test_dashboard_refuses_mutations_from_a_foreign_origin(url: str, extra: dict[str, str], status: int) -> None:
    headers = {**AUTH, **{k: (url if v == "SELF" else v) for k, v in extra.items()}}
    answer = httpx.post(f"{url}{BASE}/pause", headers=headers, timeout=10)
    assert answer.status_code in ((status, 409) if status == 200 else (status,)), answer.text
    if status == 403:
        assert "dashboard's own page" in answer.json()["detail"]


def test_dashboard_refuses_a_foreign_host_dns_rebinding(url: str) -> None:
    answer = httpx.get(url + "/api/v1/rollouts", headers={**AUTH, "Host": "attacker.example"}, timeout=10)
    assert answer.status_code == 421
    page = httpx.get(url + "/", headers={"Host": "attacker.example"}, timeout=10)
    assert page.status_code == 421


def _raw_get(url: str, target: str) -> bytes:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                     "Connection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize("target", [
    "/static/../token.py", "/static/..%2ftoken.py", "/static/%2e%2e/%2e%2e/pyproject.toml",
    "/static/%252e%252e%252fapp.py", "/static/app.js/../../app.py", "/static//etc/passwd",
    "/static/..\\..\\app.py", "/static/index.html", "/static/", "/static", "/../../../../etc/passwd",
    "/static/app.js%00.py",
], ids=lambda t: t)
def test_dashboard_static_paths_contained(url: str, target: str) -> None:
    """Only the page's three files are served, from a table read once at start-up: no request path, however
    encoded, reaches the file system (so `..` and symlinks in the package folder cannot be followed)."""
    answer = _raw_get(url, target)
    status = answer.split(b" ", 2)[1]
    assert status in (b"404", b"400"), answer[:200]
    for secret in (b"root:x:", b"[project]", b"def create_app", b"hmac"):
        assert secret not in answer


def test_dashboard_static_files_are_a_fixed_table() -> None:
    from rollouts.api.app import create_app
    from rollouts.store.protocol import ObjectStore

    def no_store() -> ObjectStore:
        raise AssertionError("not used")

    app = create_app(no_store, token=TOKEN, bind_host="127.0.0.1")
    static = sorted(getattr(r, "path", "") for r in app.routes if "static" in getattr(r, "path", ""))
    assert static == ["/static/app.css", "/static/app.js"]  # no path parameter: nothing to traverse
    assert not any("{" in getattr(r, "path", "") and "static" in getattr(r, "path", "") for r in app.routes)
