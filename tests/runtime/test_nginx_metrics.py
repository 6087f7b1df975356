"""ingress-nginx's metric series from the local ingress proxy: names, types, label names and values, buckets,
and bounded cardinality (hostile paths, hosts and methods create no series), over real HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from rollouts.runtime.local.nginx_metrics import (
    DURATION,
    REQUESTS,
    NginxIngressMetrics,
    canary_upstream,
    method_label,
)
from rollouts.runtime.local.routing import Backend
from tests.runtime.test_proxy import ingresses, many, rig, run

CONTROLLER = {"controller_class": "k8s.io/ingress-nginx", "controller_namespace": "ingress-nginx",
              "controller_pod": "rollouts-local-ingress"}
BASE = {**CONTROLLER, "host": "app.example.com", "ingress": "app", "namespace": "ns", "path": "/",
        "service": "app-stable", "method": "GET"}


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            # prometheus_client's parser names counter samples with _total whatever the text says.
            if sample.name in (name, f"{name}_total"):
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def key(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({**BASE, **labels}.items()))


def test_nginx_series_names_types_labels_and_buckets(tmp_path: Path) -> None:
    async def body() -> None:
        async with rig(tmp_path, 0) as r:
            await many(r, 7)
            await many(r, 3, **{"X-Canary": "true"})
            await r.get("/status/500", **{"X-Canary": "true"})
            text = r.proxy.render_metrics().decode()
            found = families(text)
            assert found[REQUESTS].type == "counter" and found[DURATION].type == "histogram"
            # The counter is exported without a _total suffix, as ingress-nginx's Go client does.
            assert f"# TYPE {REQUESTS} counter" in text and f"{REQUESTS}_total" not in text
            assert f'\n{REQUESTS}{{canary="",controller_class=' in text
            canary = "ns-app-canary-80"
            assert samples(text, REQUESTS) == {
                key(canary="", status="200"): 7.0,
                key(canary=canary, status="200"): 3.0,
                key(canary=canary, status="500"): 1.0,
            }
            buckets = samples(text, f"{DURATION}_bucket")
            les = sorted({float(dict(k)["le"]) for k in buckets})
            assert les == [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, float("inf")]
            assert buckets[tuple(sorted({**dict(key(canary="", status="200")), "le": "+Inf"}.items()))] == 7.0
            assert samples(text, f"{DURATION}_count")[key(canary=canary, status="500")] == 1.0
            # The proxy's own per-version series are still there, beside ingress-nginx's.
            assert "http_requests_total{" in text

    run(body())


def test_nginx_series_served_on_the_admin_listener(tmp_path: Path) -> None:
    async def body() -> None:
        async with rig(tmp_path, 0, metrics_port=0) as r:
            await r.get("/")
            assert r.proxy.metrics_address is not None
            host, port = r.proxy.metrics_address
            async with r.client.get(f"http://{host}:{port}/metrics") as resp:
                assert resp.status == 200
                assert f'{REQUESTS}{{canary="",' in await resp.text()

    run(body())


def test_hostile_request_paths_do_not_create_series(tmp_path: Path) -> None:
    async def body() -> None:
        async with rig(tmp_path, 0) as r:
            await r.get("/")
            before = r.proxy.nginx_metrics.series_count()
            for i in range(200):
                await r.get(f"/user/{i}/{'x' * (i % 7)}?token=secret{i}")
            for path in ['/"quoted"', "/new\\nline", "/%00", "/" + "a" * 4000]:
                await r.get(path)
            async with r.client.get(r.url + "/", headers={"Host": "evil.example.com"}) as resp:
                assert resp.status == 404  # no rule: not counted at all
            for method in ("BREW", "PROPFIND", "XYZZY1"):
                async with r.client.request(method, r.url + "/", headers={"Host": "app.example.com"}) as resp:
                    await resp.read()
            text = r.proxy.render_metrics().decode()
            assert {dict(k)["path"] for k in samples(text, REQUESTS)} == {"/"}
            assert {dict(k)["host"] for k in samples(text, REQUESTS)} == {"app.example.com"}
            assert {dict(k)["method"] for k in samples(text, REQUESTS)} == {"GET", "OTHER"}
            assert "secret" not in text and "evil" not in text
            # 200 paths, 4 odd ones, 3 odd methods: one new series (method OTHER), nothing per path.
            assert r.proxy.nginx_metrics.series_count() == before + 1

    run(body())


def test_removed_ingress_series_are_dropped(tmp_path: Path) -> None:
    async def body() -> None:
        async with rig(tmp_path, 0) as r:
            await many(r, 3)
            assert r.proxy.nginx_metrics.series_count() == 1
            await r.proxy.update_ingresses(ingresses(0))  # same Ingresses: kept
            assert r.proxy.nginx_metrics.series_count() == 1
            await r.proxy.update_ingresses([])
            assert r.proxy.nginx_metrics.series_count() == 0
            assert REQUESTS not in r.proxy.render_metrics().decode()

    run(body())


UPSTREAM_CASES = [
    ("stable-is-empty", Backend("app-stable", "stable", "app", "ns", service_port=80), ""),
    ("canary-port-number", Backend("app-canary", "canary", "c", "ns", service_port=8080), "ns-app-canary-8080"),
    ("canary-port-name", Backend("app-canary", "canary", "c", "ns", service_port="http"), "ns-app-canary-http"),
    ("canary-no-port", Backend("app-canary", "canary", "c", "ns"), "ns-INVALID"),
]


@pytest.mark.parametrize(("backend", "expected"), [c[1:] for c in UPSTREAM_CASES], ids=[c[0] for c in UPSTREAM_CASES])
def test_canary_label_is_the_canary_upstream_name(backend: Backend, expected: str) -> None:
    assert canary_upstream(backend) == expected


METHOD_CASES = [("get", "get", "GET"), ("patch", "PATCH", "PATCH"), ("invented", "BREW", "OTHER"),
                ("empty", "", "OTHER")]


@pytest.mark.parametrize(("method", "expected"), [c[1:] for c in METHOD_CASES], ids=[c[0] for c in METHOD_CASES])
def test_method_label_is_bounded(method: str, expected: str) -> None:
    assert method_label(method) == expected


def test_label_values_are_escaped_and_bucket_bounds_formatted() -> None:
    metrics = NginxIngressMetrics(controller_pod='pod"1')
    backend = Backend("svc", "stable", "ing", "ns", stable_ingress="ing", path='/a"b', stable_service="svc")
    metrics.observe(backend, "GET", 503, 0.3)
    text = metrics.render().decode()
    assert 'controller_pod="pod\\"1"' in text and 'path="/a\\"b"' in text
    assert f'{DURATION}_bucket{{canary="",controller_class="k8s.io/ingress-nginx"' in text
    assert ',le="0.25"} 0' in text and ',le="0.5"} 1' in text and ',le="10"} 1' in text
    assert NginxIngressMetrics().render() == b""
