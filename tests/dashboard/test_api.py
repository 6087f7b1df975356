"""The dashboard API against a real uvicorn server: reads, the token rules for mutations, the patches the
mutations write, security headers, static files that cannot escape their folder, and the SSE stream."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from rollouts.cluster.store import SQLiteStore
from tests.dashboard.helpers import AUTH, BASE, TOKEN, in_process_client, live_server, seed, seeded_db


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return seeded_db(tmp_path / "state.db", seed)


@pytest.fixture
def server(db: Path) -> Iterator[httpx.Client]:
    """A client of a real uvicorn server."""
    with live_server(db) as url, httpx.Client(base_url=url, timeout=10, headers=AUTH) as http:
        yield http


@pytest.fixture
def client(db: Path) -> Iterator[httpx.Client]:
    """An in-process client (same app, no socket): for the many table-driven cases."""
    with in_process_client(db) as http:
        yield http


def rollout(db: Path) -> dict[str, Any]:
    with SQLiteStore(db) as store:
        return store.get("Rollout", "default", "shop")


def test_list_and_detail_share_the_views_model(server: httpx.Client) -> None:
    client = server
    listed = client.get("/api/v1/rollouts", params={"namespace": "default"})
    assert listed.status_code == 200
    [item] = listed.json()
    assert (item["name"], item["status"], item["step"], item["setWeight"], item["actualWeight"]) == (
        "shop", "Paused", "1/4", 30, 30)
    detail = client.get(BASE).json()
    assert [s["state"] for s in detail["steps"]] == ["done", "current", "pending", "pending"]
    assert {i["image"]: i["tags"] for i in detail["images"]} == {
        "rollouts-demo:yellow": ["canary"], "rollouts-demo:blue": ["stable"]}
    assert client.get("/api/v1/rollouts", params={"namespace": "other"}).json() == []
    assert client.get("/api/v1/namespaces").json() == {"namespaces": ["default"]}


def test_history_analysis_runs_and_events(client: httpx.Client) -> None:
    history = client.get(f"{BASE}/history").json()["items"]
    assert [(r["revision"], r["outcome"], r["images"]) for r in history] == [
        (1, "promoted", {"shop": "rollouts-demo:blue"}), (2, "current", {"shop": "rollouts-demo:yellow"})]
    [run] = client.get(f"{BASE}/analysisruns").json()["items"]
    [metric] = run["metrics"]
    assert run["phase"] == "Running" and run["kind"] == "Step"
    assert metric["thresholds"] == [
        {"kind": "success", "operator": ">=", "value": 0.95, "index": 0},
        {"kind": "failure", "operator": "<", "value": 0.9, "index": 0},
    ]
    assert [m["numbers"] for m in metric["measurements"]] == [[0.99], [0.97]]
    events = client.get(f"{BASE}/events").json()["items"]
    assert [e["reason"] for e in events] == ["RolloutUpdated", "RolloutPaused"]


def test_history_derives_outcomes_like_the_cli(db: Path, client: httpx.Client) -> None:
    """A revision replaced before promotion reads `superseded`, and the one undone reads `rolled back`,
    in the API as in `rollouts history` (both use rollouts.views.history)."""
    with SQLiteStore(db) as store:
        for revision, pod_hash in ((3, "ccc333"), (4, "aaa111")):
            store.record_revision("default", "shop", revision, pod_hash, {"shop": "x"}, {"spec": {}})
        store.patch("Rollout", "default", "shop", {"status": {"currentPodHash": "aaa111"}}, subresource="status")
    history = client.get(f"{BASE}/history").json()["items"]
    assert [(r["revision"], r["outcome"], r["live"]) for r in history] == [
        (1, "promoted", False), (2, "superseded", False), (3, "rolled back", False),
        (4, "promoted", True)]  # an undo to the template still stable: a fast rollback, stable at once
    assert history[2]["cause"] == "rolled back to revision 1 (re-released as revision 4)"


def test_unknown_rollout_is_404(client: httpx.Client) -> None:
    for path in ("", "/history", "/analysisruns", "/events"):
        response = client.get(f"/api/v1/rollouts/default/nope{path}")
        assert response.status_code == 404, path
        assert response.json() == {"detail": 'rollouts.argoproj.io "nope" not found in namespace "default"'}


MUTATIONS = [
    ("promote", None), ("promote-full", None), ("abort", None), ("retry", None), ("pause", None),
    ("resume", None), ("restart", None), ("undo/1", None), ("set-image", {"container": "shop", "image": "x:1"}),
]


def test_mutations_need_the_token(client: httpx.Client, db: Path) -> None:
    client.headers.pop("Authorization")
    before = rollout(db)
    for verb, body in MUTATIONS:
        missing = client.post(f"{BASE}/{verb}", json=body)
        assert missing.status_code == 401, verb
        assert missing.headers["www-authenticate"] == "Bearer"
        wrong = client.post(f"{BASE}/{verb}", json=body, headers={"Authorization": f"Bearer {TOKEN}x"})
        assert wrong.status_code == 403, verb
        not_bearer = client.post(f"{BASE}/{verb}", json=body, headers={"Authorization": f"Basic {TOKEN}"})
        assert not_bearer.status_code == 401, verb
        # A cookie carrying the token is no credential (cross-site requests carry cookies, not headers).
        cookie = client.post(f"{BASE}/{verb}", json=body, headers={"Cookie": f"token={TOKEN}"})
        assert cookie.status_code == 401, verb
    assert rollout(db)["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def _get(obj: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        obj = obj.get(key) if isinstance(obj, dict) else None  # type: ignore[assignment]
    return obj


CHANGES = [
    ("promote", None, "status.pauseConditions", None),
    ("promote-full", None, "status.promoteFull", True),
    ("abort", None, "status.abort", True),
    ("pause", None, "spec.paused", True),
    ("resume", None, "status.pauseConditions", None),
    ("undo/1", None, "spec.template.spec.containers", [{"name": "shop", "image": "rollouts-demo:blue"}]),
    ("set-image", {"container": "shop", "image": "rollouts-demo:green"}, "spec.template.spec.containers",
     [{"name": "shop", "image": "rollouts-demo:green"}]),
]


@pytest.mark.parametrize(("verb", "body", "field", "value"), CHANGES, ids=[c[0] for c in CHANGES])
def test_mutation_with_the_token_writes_the_cli_patch(
    client: httpx.Client, db: Path, verb: str, body: Any, field: str, value: Any
) -> None:
    response = client.post(f"{BASE}/{verb}", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["changed"] is True
    assert _get(rollout(db), field) == value


def test_retry_clears_abort_and_restart_sets_restart_at(client: httpx.Client, db: Path) -> None:
    assert client.post(f"{BASE}/abort", headers=AUTH).status_code == 200
    assert client.post(f"{BASE}/retry", headers=AUTH).json() == {"message": "rollout 'shop' restarted",
                                                                  "changed": True}
    assert rollout(db)["status"]["abort"] is False
    assert client.post(f"{BASE}/restart", headers=AUTH).status_code == 200
    assert rollout(db)["spec"]["restartAt"].endswith("Z")


@pytest.mark.parametrize(("verb", "body", "status", "text"), [
    ("undo/7", None, 409, "unable to find specified revision 7 in history"),
    ("set-image", {"container": "web", "image": "x:1"}, 409, "unable to find container named 'web'"),
    ("set-image", {"container": "", "image": "x:1"}, 422, ""),
], ids=["undo-unknown-revision", "set-image-unknown-container", "set-image-empty-container"])
def test_actions_that_do_not_apply(client: httpx.Client, verb: str, body: Any, status: int, text: str) -> None:
    response = client.post(f"{BASE}/{verb}", json=body, headers=AUTH)
    assert response.status_code == status
    assert text in str(response.json()["detail"])


@pytest.mark.parametrize("bind_host", ["127.0.0.1", "0.0.0.0"], ids=["loopback", "every-interface"])
def test_reading_is_refused_without_token_on_any_bind(db: Path, bind_host: str) -> None:
    with live_server(db, bind_host=bind_host) as url, httpx.Client(base_url=url, timeout=10) as http:
        for path in ("/api/v1/namespaces", "/api/v1/rollouts", BASE, f"{BASE}/analysisruns",
                     "/api/v1/rollouts/default/watch", "/docs", "/nothing"):
            answer = http.get(path)
            assert answer.status_code == 401, (path, answer.text)
            assert answer.headers["www-authenticate"] == "Bearer"
        assert http.get(BASE, headers={"Authorization": "Bearer nope-nope-nope-nope"}).status_code == 403
        assert http.get(BASE, headers=AUTH).status_code == 200
        assert http.get("/").status_code == 200  # the page itself holds no data


def test_security_headers_on_every_response(server: httpx.Client) -> None:
    client = server
    for path in ("/", "/static/app.js", "/api/v1/namespaces", "/api/v1/rollouts/default/nope", "/nothing"):
        response = client.get(path)
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "set-cookie" not in response.headers
        assert "access-control-allow-origin" not in response.headers
    preflight = client.options(f"{BASE}/abort", headers={"Origin": "https://evil.example",
                                                       "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers


def test_the_page_has_no_inline_script(client: httpx.Client) -> None:
    page = client.get("/").text
    assert '<script src="/static/app.js" defer></script>' in page
    assert "<script>" not in page and "onclick=" not in page and "style=" not in page


def test_foreign_host_header_is_refused_on_loopback(client: httpx.Client) -> None:
    response = client.get("/api/v1/namespaces", headers={"Host": "rebound.example:3100"})
    assert response.status_code == 421
    assert client.get("/api/v1/namespaces", headers={"Host": "localhost:3100"}).status_code == 200


TRAVERSALS = [
    "/static/..%2f..%2fapp.py", "/static/..%2fapp.py", "/static/%2e%2e/%2e%2e/token.py", "/static/../app.py",
    "/..%2f..%2fpyproject.toml", "/static/app.js%2f..%2f..%2fapp.py", "/static/%2e%2e%5capp.py",
    "/static/index.html/..%2f..%2f__init__.py", "/static/", "/static/app.py", "/etc/passwd",
]


def test_static_paths_cannot_escape(client: httpx.Client) -> None:
    for path in TRAVERSALS:
        response = client.get(path)
        assert response.status_code == 404, path
        assert b"import" not in response.content


def test_sse_delivers_an_update_after_a_store_write(db: Path) -> None:
    with live_server(db) as url, httpx.Client(base_url=url, timeout=10, headers=AUTH) as http:
        events: list[tuple[str, str]] = []
        got_snapshot = threading.Event()
        got_update = threading.Event()

        def read() -> None:
            with http.stream("GET", "/api/v1/rollouts/default/watch") as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                kind = ""
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        events.append((kind, line[6:]))
                        (got_snapshot if kind == "snapshot" else got_update).set()
                        if kind == "update":
                            return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert got_snapshot.wait(10), "no snapshot"
        with SQLiteStore(db) as store:
            store.patch("Rollout", "default", "shop", {"status": {"currentStepIndex": 3}}, subresource="status")
        assert got_update.wait(10), f"no update after the write (got {events})"
        reader.join(5)
    assert events[0][0] == "snapshot" and '"step":"1/4"' in events[0][1]
    assert events[-1][0] == "update" and '"step":"3/4"' in events[-1][1] and '"setWeight":60' in events[-1][1]


def test_rollout_stream_sends_heartbeats_and_detail(db: Path) -> None:
    with live_server(db, heartbeat=0.2) as url, httpx.Client(base_url=url, timeout=10, headers=AUTH) as http:
        lines: list[str] = []
        with http.stream("GET", f"{BASE}/watch") as response:
            for line in response.iter_lines():
                lines.append(line)
                if line == ": heartbeat":
                    break
        assert http.get(f"{BASE.replace('shop', 'nope')}/watch").status_code == 404
    data = next(line for line in lines if line.startswith("data: "))
    assert '"rollout":{"name":"shop"' in data and '"analysisRuns":[{' in data and '"history":[{' in data


def test_real_server_refuses_mutations_without_a_valid_token(server: httpx.Client, db: Path) -> None:
    server.headers.pop("Authorization")
    before = rollout(db)["metadata"]["resourceVersion"]
    assert server.post(f"{BASE}/abort").status_code == 401
    assert server.post(f"{BASE}/abort", headers={"Authorization": "Bearer wrong-token-wrong-token"}).status_code == 403
    assert rollout(db)["metadata"]["resourceVersion"] == before
    assert server.post(f"{BASE}/abort", headers=AUTH).status_code == 200
    assert rollout(db)["status"]["abort"] is True


def test_raw_traversal_requests_on_the_wire(server: httpx.Client) -> None:
    """Paths sent exactly as written (no client-side normalisation of `..`)."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(str(server.base_url))
    for raw in ("/static/../app.py", "/static/..%2f..%2fapi%2fapp.py", "/static/%2e%2e%2f%2e%2e%2fpyproject.toml"):
        with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
            # With the token: what answers is the routing, not the token check.
            sock.sendall(f"GET {raw} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                         "Connection: close\r\n\r\n".encode())
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 404"), (raw, answer[:200])


def test_abort_over_a_kube_store_lands_as_the_status_patch_in_the_store(db: Path) -> None:
    """The dashboard's abort, made through the Kubernetes API: exactly the kubectl plugin's patch (a merge
    patch of status.abort on the status subresource), stored by the API server, the spec untouched."""
    from fastapi.testclient import TestClient

    from rollouts.api.app import create_app
    from rollouts.kube.client import KubeStore
    from rollouts.kube.config import load_config
    from tests.dashboard.helpers import api_served

    sent: list[tuple[Any, ...]] = []

    class Recording(KubeStore):
        def patch(self, kind: str, namespace: str, name: str, patch: Any, patch_type: Any = "merge",
                  subresource: Any = None) -> dict[str, Any]:
            sent.append((kind, namespace, name, patch, patch_type, subresource))
            return super().patch(kind, namespace, name, patch, patch_type, subresource)

    before = rollout(db)
    with api_served(db) as kubeconfig:
        app = create_app(lambda: Recording(load_config(kubeconfig=kubeconfig)), token=TOKEN, bind_host="127.0.0.1")
        with TestClient(app, base_url="http://127.0.0.1:3100") as http:
            response = http.post(f"{BASE}/abort", headers=AUTH)
    assert response.status_code == 200, response.text
    assert sent == [("Rollout", "default", "shop", {"status": {"abort": True}}, "merge", "status")]
    after = rollout(db)
    assert after["status"]["abort"] is True
    assert after["spec"] == before["spec"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]  # a status write only
    assert int(after["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])


def _dashboard_over(kubeconfig: Path) -> Any:
    from fastapi.testclient import TestClient

    from rollouts.api.app import create_app
    from tests.dashboard.helpers import kube_factory

    app = create_app(kube_factory(kubeconfig), token=TOKEN, bind_host="127.0.0.1")
    return TestClient(app, base_url="http://127.0.0.1:3100", raise_server_exceptions=False, headers=AUTH)


def test_unreachable_cluster_api_is_a_503_naming_the_server(db: Path) -> None:
    """The cluster's API server is down: reads, the live stream and actions answer 503 with the server's
    address (the page shows the detail and retries), not a 500."""
    from tests.cluster.conftest import start_cluster

    cluster, stop = start_cluster(db.parent)
    stop()  # its kubeconfig stays, pointing at a port nothing listens on any more
    with _dashboard_over(cluster.kubeconfig) as http:
        for method, path, headers in (("GET", "/api/v1/rollouts", {}), ("GET", BASE, {}),
                                      ("GET", "/api/v1/rollouts/default/watch", {}),
                                      ("POST", f"{BASE}/abort", AUTH)):
            response = http.request(method, path, headers=headers)
            assert response.status_code == 503, (path, response.text)
            assert response.json()["detail"].startswith(
                f"the Kubernetes API failed: cannot reach the Kubernetes API at {cluster.url}"), response.text
            assert response.headers["retry-after"] == "5"


def test_rejected_credentials_are_a_502_naming_the_server(db: Path, tmp_path: Path) -> None:
    with api_served_with_token(db, tmp_path, "not-the-token") as (kubeconfig, url), _dashboard_over(kubeconfig) as http:
        response = http.get("/api/v1/rollouts")
    assert response.status_code == 502, response.text
    assert f"the API server at {url} rejected the credentials" in response.json()["detail"]


@contextmanager
def api_served_with_token(db: Path, tmp_path: Path, token: str) -> Iterator[tuple[Path, str]]:
    """The store served API-only, reached with a kubeconfig that carries `token` instead of the real one."""
    from tests.cluster.conftest import start_cluster

    cluster, stop = start_cluster(db.parent)
    try:
        wrong = tmp_path / "wrong-kubeconfig"
        wrong.write_text(cluster.kubeconfig.read_text().replace(cluster.token, token))
        yield wrong, cluster.url
    finally:
        stop()


@pytest.mark.parametrize(("forbidden", "offered"), [(False, ["default", "team"]), (True, ["team"])],
                         ids=["cluster-wide-list", "namespaced-role"])
def test_namespaces_offer_the_contexts_namespace(db: Path, forbidden: bool, offered: list[str]) -> None:
    """A kubeconfig context in namespace `team`: offered beside the namespaces that hold rollouts; where
    a namespaced Role forbids listing across namespaces (403), it is the only one offered, not a 502."""
    from fastapi.testclient import TestClient

    from rollouts.api.app import create_app
    from rollouts.kube.client import ApiError, KubeStore
    from rollouts.kube.config import load_config
    from tests.dashboard.helpers import api_served

    class Namespaced(KubeStore):
        def list(self, kind: str, namespace: str | None = None, label_selector: str | None = None,
                 field_selector: str | None = None) -> list[dict[str, Any]]:
            if forbidden and namespace is None:
                raise ApiError(403, "Forbidden", f'{kind.lower()}s is forbidden: cannot list at the cluster scope')
            return super().list(kind, namespace, label_selector, field_selector)

    with api_served(db) as kubeconfig:
        app = create_app(lambda: Namespaced(load_config(kubeconfig=kubeconfig, namespace="team")), token=TOKEN,
                         bind_host="127.0.0.1")
        with TestClient(app, base_url="http://127.0.0.1:3100", headers=AUTH) as http:
            assert http.get("/api/v1/namespaces").json() == {"namespaces": offered}


def test_streams_of_one_rollout_share_one_read_per_change(db: Path) -> None:
    """Three tabs on the same rollout page, one change: the API is read for one recomputation, as with a
    single tab (each tab reading it again would triple the reads)."""
    import json

    from rollouts.kube.client import KubeStore
    from rollouts.kube.config import load_config

    reads: list[str] = []

    class Counting(KubeStore):
        def list(self, kind: str, namespace: str | None = None, label_selector: str | None = None,
                 field_selector: str | None = None) -> list[dict[str, Any]]:
            reads.append(kind)
            return super().list(kind, namespace, label_selector, field_selector)

    def counting(kubeconfig: Path) -> Any:
        return lambda: Counting(load_config(kubeconfig=kubeconfig))

    with live_server(db, store_factory=counting) as url, httpx.Client(base_url=url, timeout=10, headers=AUTH) as http:
        steps: list[list[str]] = []
        snapshots = threading.Semaphore(0)
        updates = threading.Semaphore(0)

        def follow(tab: int) -> None:
            try:
                with http.stream("GET", f"{BASE}/watch") as response:
                    kind = ""
                    for line in response.iter_lines():
                        if line.startswith("event: "):
                            kind = line[7:]
                        elif line.startswith("data: "):
                            steps[tab].append(json.loads(line[6:])["rollout"]["step"])
                            (snapshots if kind == "snapshot" else updates).release()
            except httpx.HTTPError:
                pass  # the client closed under the open stream at the end of the test

        def open_tabs(count: int) -> None:
            for _ in range(count):
                steps.append([])
                threading.Thread(target=follow, args=(len(steps) - 1,), daemon=True).start()
                assert snapshots.acquire(timeout=10), "no snapshot"

        def change_and_count(step: int, tabs: int) -> int:
            before = len(reads)
            with SQLiteStore(db) as store:
                store.patch("Rollout", "default", "shop", {"status": {"currentStepIndex": step}},
                            subresource="status")
            for _ in range(tabs):
                assert updates.acquire(timeout=10), f"not every tab updated ({steps})"
            return len(reads) - before

        open_tabs(1)
        one_tab = change_and_count(2, 1)
        open_tabs(2)
        three_tabs = change_and_count(3, 3)
    assert one_tab > 0
    assert three_tabs == one_tab, (one_tab, three_tabs)
    assert [s[-1] for s in steps] == ["3/4", "3/4", "3/4"]
